//! The store's connection URL, kept in a newtype so a password inside it never reaches a log line,
//! an error message or `Debug` output.

use std::fmt;
use std::path::Path;

/// Which storage backend a [`DatabaseUrl`] selects; the store picks its implementation from this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An SQLite file (or `sqlite::memory:`), the zero-setup default.
    Sqlite,
    /// A PostgreSQL server, for production and for several instances sharing one store.
    Postgres,
}

/// A validated `sqlite:` or `postgres:` URL.
///
/// The only way to see the full URL is [`DatabaseUrl::expose_url`], which the store calls when it
/// connects. `Debug` and `Display` show the URL with any password replaced by `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    url: String,
    backend: Backend,
}

/// The default store: an SQLite file beside the config file, created on first use.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://bitbucket-access.db";

impl DatabaseUrl {
    /// Parses a store URL. Relative SQLite paths are resolved against `base_dir` (the directory of
    /// the config file), so the store does not move when the program runs from another directory.
    ///
    /// The error is a plain sentence that never repeats the URL, since it may hold a password.
    pub fn parse(text: &str, base_dir: &Path) -> Result<DatabaseUrl, String> {
        if let Some(rest) = text.strip_prefix("sqlite:") {
            let path_and_query = rest.strip_prefix("//").unwrap_or(rest);
            let (path, query) = match path_and_query.split_once('?') {
                Some((p, q)) => (p, Some(q)),
                None => (path_and_query, None),
            };
            if path.is_empty() {
                return Err(
                    "an SQLite URL needs a file path, as in sqlite://bitbucket-access.db".into(),
                );
            }
            let url = if path == ":memory:" || Path::new(path).is_absolute() {
                text.to_string()
            } else {
                let full = base_dir.join(path);
                let mut url = format!("sqlite://{}", full.display());
                if let Some(q) = query {
                    url.push('?');
                    url.push_str(q);
                }
                url
            };
            return Ok(DatabaseUrl {
                url,
                backend: Backend::Sqlite,
            });
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            let parsed = url::Url::parse(text)
                .map_err(|e| format!("is not a valid PostgreSQL URL ({e})"))?;
            if parsed.host_str().is_none_or(str::is_empty) {
                return Err("a PostgreSQL URL needs a host, as in postgres://user@db.example.com/bitbucket_access".into());
            }
            return Ok(DatabaseUrl {
                url: text.to_string(),
                backend: Backend::Postgres,
            });
        }
        Err(
            "must start with sqlite:// or postgres:// (for example sqlite://bitbucket-access.db)"
                .into(),
        )
    }

    /// The backend the URL selects.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The full URL, password included. Only the store should call this, to connect.
    pub fn expose_url(&self) -> &str {
        &self.url
    }

    /// The URL with any password replaced by `***`, safe to log and print.
    pub fn redacted(&self) -> String {
        if self.backend == Backend::Sqlite {
            return self.url.clone();
        }
        match url::Url::parse(&self.url) {
            Ok(mut parsed) => {
                if parsed.password().is_some() && parsed.set_password(Some("***")).is_err() {
                    return "postgres://***".into();
                }
                // A password can also hide in the query string (`?password=...`).
                let has_query_secret = parsed
                    .query_pairs()
                    .any(|(k, _)| k.eq_ignore_ascii_case("password"));
                if has_query_secret {
                    let pairs: Vec<(String, String)> = parsed
                        .query_pairs()
                        .map(|(k, v)| {
                            let v = if k.eq_ignore_ascii_case("password") {
                                "***".to_string()
                            } else {
                                v.into_owned()
                            };
                            (k.into_owned(), v)
                        })
                        .collect();
                    parsed.query_pairs_mut().clear().extend_pairs(pairs);
                }
                parsed.to_string()
            }
            Err(_) => "postgres://***".into(),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DatabaseUrl")
            .field(&self.redacted())
            .finish()
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_password() {
        let url = DatabaseUrl::parse(
            "postgres://svc:hunter2-secret@db.example.com:5432/ba?password=hunter3&sslmode=require",
            Path::new("/"),
        )
        .expect("valid url");
        for shown in [format!("{url:?}"), url.to_string(), url.redacted()] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(!shown.contains("hunter3"), "{shown}");
            assert!(shown.contains("db.example.com"), "{shown}");
        }
        assert!(url.expose_url().contains("hunter2-secret"));
        assert_eq!(url.backend(), Backend::Postgres);
    }

    #[test]
    fn relative_sqlite_paths_resolve_against_the_config_directory() {
        let url = DatabaseUrl::parse("sqlite://data/ba.db?mode=rwc", Path::new("/etc/ba"))
            .expect("valid");
        assert_eq!(url.expose_url(), "sqlite:///etc/ba/data/ba.db?mode=rwc");
        assert_eq!(url.backend(), Backend::Sqlite);
        let abs = DatabaseUrl::parse("sqlite:///var/lib/ba.db", Path::new("/etc")).expect("valid");
        assert_eq!(abs.expose_url(), "sqlite:///var/lib/ba.db");
        let mem = DatabaseUrl::parse("sqlite::memory:", Path::new("/etc")).expect("valid");
        assert_eq!(mem.expose_url(), "sqlite::memory:");
    }

    #[test]
    fn other_schemes_are_refused_without_echoing_the_url() {
        let err = DatabaseUrl::parse("mysql://u:topsecret@h/db", Path::new("/")).unwrap_err();
        assert!(!err.contains("topsecret"));
    }
}
