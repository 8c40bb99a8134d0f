//! The store's connection URL, kept in a newtype so a password inside it never reaches a log line,
//! an error message or `Debug` output. It is the one URL type of the program: the config parses
//! it and the store connects with it, and both show it through the one redaction below.

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

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        })
    }
}

/// A validated `sqlite:` or `postgres:` URL.
///
/// The only way to see the full URL is [`DatabaseUrl::expose_url`], which the store calls when it
/// connects. `Debug` and `Display` show [`DatabaseUrl::redacted`]: the URL with the password of
/// its user info and any `password=` query parameter replaced by `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    url: String,
    redacted: String,
    backend: Backend,
}

/// The default store: an SQLite file beside the config file, created on first use.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://bitbucket-access.db";

impl DatabaseUrl {
    /// Parses a store URL. Relative SQLite paths are resolved against `base_dir` (the directory of
    /// the config file), so the store does not move when the program runs from another directory;
    /// an empty `base_dir` leaves them relative to the working directory.
    ///
    /// The error is a plain sentence that never repeats the URL, since it may hold a password.
    pub fn parse(text: &str, base_dir: &Path) -> Result<DatabaseUrl, String> {
        let (url, backend) = resolve(text, base_dir)?;
        Ok(DatabaseUrl {
            redacted: redact_url(&url),
            url,
            backend,
        })
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
    pub fn redacted(&self) -> &str {
        &self.redacted
    }

    /// Turns a driver message into one that cannot hold the URL's password, in any of the forms
    /// a driver might repeat it (the whole URL, the password as written, percent-decoded).
    pub fn scrub(&self, message: impl fmt::Display) -> String {
        let mut message = message.to_string().replace(&self.url, &self.redacted);
        for secret in self.passwords() {
            let decoded = percent_decode(&secret);
            for form in [secret, decoded] {
                if !form.is_empty() {
                    message = message.replace(&form, "***");
                }
            }
        }
        message
    }

    /// The passwords the URL holds: in its user info and in `password=` query parameters.
    fn passwords(&self) -> Vec<String> {
        let Ok(parsed) = url::Url::parse(&self.url) else {
            return Vec::new();
        };
        let mut out: Vec<String> = parsed.password().map(str::to_owned).into_iter().collect();
        out.extend(
            parsed
                .query_pairs()
                .filter(|(k, _)| k.eq_ignore_ascii_case("password"))
                .map(|(_, v)| v.into_owned()),
        );
        // The raw query text too: `query_pairs` decodes, a driver may echo the encoded form.
        if let Some(query) = parsed.query() {
            out.extend(query.split('&').filter_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                k.eq_ignore_ascii_case("password").then(|| v.to_owned())
            }));
        }
        out
    }
}

/// Checks the scheme and resolves a relative SQLite path against `base_dir`.
fn resolve(text: &str, base_dir: &Path) -> Result<(String, Backend), String> {
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
        let keep =
            path == ":memory:" || Path::new(path).is_absolute() || base_dir.as_os_str().is_empty();
        let url = if keep {
            text.to_string()
        } else {
            let mut url = format!("sqlite://{}", base_dir.join(path).display());
            if let Some(q) = query {
                url.push('?');
                url.push_str(q);
            }
            url
        };
        return Ok((url, Backend::Sqlite));
    }
    if text.starts_with("postgres://") || text.starts_with("postgresql://") {
        let parsed =
            url::Url::parse(text).map_err(|e| format!("is not a valid PostgreSQL URL ({e})"))?;
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err("a PostgreSQL URL needs a host, as in postgres://user@db.example.com/bitbucket_access".into());
        }
        return Ok((text.to_string(), Backend::Postgres));
    }
    Err(
        "must start with sqlite:// or postgres:// (for example sqlite://bitbucket-access.db)"
            .into(),
    )
}

/// Replaces the password of a URL's user info and the value of every `password=` query
/// parameter by `***`. A URL with neither comes back as written. A string that does not parse
/// as a URL is shown only by its scheme, since it could hold a password in a shape the parser did
/// not recognise.
pub fn redact_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return match url.split_once(':') {
            // Only a real scheme is shown: anything else may be part of the user info.
            Some((scheme, _))
                if !scheme.is_empty()
                    && scheme
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
            {
                format!("{scheme}:(unparsable URL)")
            }
            _ => "(unparsable URL)".to_owned(),
        };
    };
    let user_password = parsed.password().is_some();
    let query_password = parsed
        .query_pairs()
        .any(|(k, _)| k.eq_ignore_ascii_case("password"));
    if !user_password && !query_password {
        return url.to_owned();
    }
    if user_password && parsed.set_password(Some("***")).is_err() {
        return format!("{}:(unparsable URL)", parsed.scheme());
    }
    if query_password {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let v = if k.eq_ignore_ascii_case("password") {
                    "***".to_owned()
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

fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(high), Some(low)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                // Two hex digits make one byte, which always fits.
                out.push((high * 16 + low) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DatabaseUrl").field(&self.redacted).finish()
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_user_info_and_query_passwords() {
        for text in [
            "postgres://svc:hunter2-secret@db.example.com:5432/ba?password=hunter3&sslmode=require",
            "postgresql://svc@db.example.com/ba?sslmode=require&PASSWORD=hunter3",
            "sqlite:///var/lib/ba.db?password=hunter3",
        ] {
            let url = DatabaseUrl::parse(text, Path::new("/")).expect("valid url");
            for shown in [
                format!("{url:?}"),
                url.to_string(),
                url.redacted().to_owned(),
            ] {
                assert!(!shown.contains("hunter2"), "{shown}");
                assert!(!shown.contains("hunter3"), "{shown}");
                assert!(shown.contains("***"), "{shown}");
            }
            assert_eq!(url.expose_url(), text);
        }
        let url = DatabaseUrl::parse(
            "postgres://svc:hunter2-secret@db.example.com:5432/ba?sslmode=require",
            Path::new("/"),
        )
        .expect("valid url");
        assert_eq!(
            url.redacted(),
            "postgres://svc:***@db.example.com:5432/ba?sslmode=require"
        );
        assert_eq!(url.backend(), Backend::Postgres);
    }

    #[test]
    fn scrub_removes_every_form_of_the_password() {
        let url = DatabaseUrl::parse(
            "postgres://app:s3cr%40t@db.example:5432/access?password=q%2Fpw",
            Path::new("/"),
        )
        .expect("valid url");
        let scrubbed = url.scrub("failed for s3cr@t, s3cr%40t, q/pw and q%2Fpw");
        for secret in ["s3cr", "q/pw", "q%2Fpw"] {
            assert!(!scrubbed.contains(secret), "{scrubbed}");
        }
    }

    #[test]
    fn urls_without_a_password_show_as_written() {
        assert_eq!(
            redact_url("sqlite://data/access.db"),
            "sqlite://data/access.db"
        );
        assert_eq!(redact_url("sqlite::memory:"), "sqlite::memory:");
        assert_eq!(redact_url("mysql//u:pw@h"), "(unparsable URL)");
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
        let here = DatabaseUrl::parse("sqlite://data/ba.db", Path::new("")).expect("valid");
        assert_eq!(here.expose_url(), "sqlite://data/ba.db");
    }

    #[test]
    fn other_schemes_are_refused_without_echoing_the_url() {
        let err = DatabaseUrl::parse("mysql://u:topsecret@h/db", Path::new("/")).unwrap_err();
        assert!(!err.contains("topsecret"));
    }
}
