//! The store's error type and the database URL redaction it relies on.
//!
//! No sqlx type leaves the store: database errors are kept as text, with any password of the
//! URL removed, so a `StoreError` can be logged or shown as is.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL is not one the store understands.
    #[error(
        "unsupported database URL {url}: use sqlite://PATH (a file, created if missing) \
         or postgres://USER@HOST/DB"
    )]
    UnsupportedUrl {
        /// The URL with its password removed.
        url: String,
    },
    /// The database could not be opened or reached.
    #[error("cannot open the {backend} database at {url}: {message}")]
    Connect {
        /// `SQLite` or `PostgreSQL`.
        backend: &'static str,
        /// The URL with its password removed.
        url: String,
        /// What the driver said.
        message: String,
    },
    /// Applying the embedded migrations failed.
    #[error("cannot apply the database migrations: {message}")]
    Migrate {
        /// What the driver said.
        message: String,
    },
    /// A query failed.
    #[error("database error while trying to {action}: {message}")]
    Database {
        /// What the store was doing.
        action: &'static str,
        /// What the driver said.
        message: String,
    },
    /// A fact passed to `replace_listing` does not belong to the listing's kind.
    #[error("listing {listing} cannot hold a fact of kind {fact}")]
    FactMismatch {
        /// The listing.
        listing: String,
        /// The offending fact's kind.
        fact: &'static str,
    },
    /// A stored value could not be read back.
    #[error("the store holds an unreadable {what}: {detail}")]
    Corrupt {
        /// What was being read.
        what: &'static str,
        /// Why it is unreadable.
        detail: String,
    },
    /// A number is out of the range the store can hold.
    #[error("{what} is out of range: {value}")]
    OutOfRange {
        /// Which number.
        what: &'static str,
        /// Its value.
        value: String,
    },
}

/// A database URL whose password never shows in `Debug` or `Display`.
#[derive(Clone)]
pub struct DatabaseUrl {
    secret: SecretString,
    redacted: String,
}

impl DatabaseUrl {
    /// Wraps a URL.
    pub fn new(url: &str) -> Self {
        Self {
            secret: SecretString::from(url.to_owned()),
            redacted: redact_url(url),
        }
    }

    /// The URL with its password replaced by `***`, fit for logs and errors.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }

    /// The full URL, for the driver only.
    pub(crate) fn expose(&self) -> &str {
        self.secret.expose_secret()
    }

    /// The password, when the URL holds one (to scrub it from driver messages).
    pub(crate) fn password(&self) -> Option<String> {
        url::Url::parse(self.expose())
            .ok()
            .and_then(|u| u.password().map(str::to_owned))
            .filter(|p| !p.is_empty())
    }

    /// Turns a driver message into one that cannot hold the password.
    pub(crate) fn scrub(&self, message: impl fmt::Display) -> String {
        let message = message.to_string();
        let message = message.replace(self.expose(), &self.redacted);
        match self.password() {
            Some(password) => {
                let decoded = percent_decode(&password);
                message.replace(&password, "***").replace(&decoded, "***")
            }
            None => message,
        }
    }
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

/// Replaces the password of a URL by `***`. A string that does not parse as a URL is shown only
/// by its scheme, since it could hold a password in a shape the parser did not recognise.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                // Setting a password only fails for URLs that cannot hold one, which then hold none.
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => match url.split_once(':') {
            Some((scheme, _)) if !scheme.contains('@') => format!("{scheme}:(unparsable URL)"),
            _ => "(unparsable URL)".to_owned(),
        },
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_the_password_only() {
        let url = DatabaseUrl::new("postgres://app:s3cr%40t@db.example:5432/access");
        assert_eq!(url.redacted(), "postgres://app:***@db.example:5432/access");
        assert!(!format!("{url:?}").contains("s3cr"));
        assert!(!format!("{url}").contains("s3cr"));
        let scrubbed = url.scrub("failed for s3cr@t and s3cr%40t");
        assert!(!scrubbed.contains("s3cr"), "{scrubbed}");
        assert_eq!(
            redact_url("sqlite://data/access.db"),
            "sqlite://data/access.db"
        );
    }
}
