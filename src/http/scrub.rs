//! Removing configured secrets from text a server sent before it is printed, logged or stored.
//!
//! A hostile or broken server may echo what it received: the `Authorization` header, the
//! decoded `email:token` pair, or the token inside a URL. [`Scrubber`] knows every configured
//! secret in every form in which it travels (raw, base64 of `user:secret` with and without
//! padding and in its URL-safe alphabet, the full `Basic …` header value, and the URL-encoded
//! forms) and replaces each occurrence with `[redacted]`. The HTTP layer applies it to every
//! server-provided text that goes into an error.

use base64::Engine as _;
use std::fmt;

/// What a secret is replaced with.
pub const REDACTED: &str = "[redacted]";

/// Replaces every known form of the configured secrets in a text.
#[derive(Clone, Default)]
pub struct Scrubber {
    /// Every form to remove, longest first so that a longer form (the header value) is removed
    /// before a shorter one it contains (the base64 pair) could split it.
    needles: Vec<String>,
}

impl fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The needles are the secrets themselves; only their number may be shown.
        f.debug_struct("Scrubber")
            .field("forms", &self.needles.len())
            .finish()
    }
}

impl Scrubber {
    /// A scrubber that knows no secret yet.
    pub fn new() -> Self {
        Scrubber::default()
    }

    /// Adds a secret (a token or key) in its raw and URL-encoded forms.
    pub fn with_secret(mut self, secret: &str) -> Self {
        self.add_text(secret);
        self
    }

    /// Adds the forms a Basic credential travels in: the secret itself, the `user:secret` pair,
    /// its base64 encodings and the full `Basic <b64>` header value.
    pub fn with_basic(mut self, user: &str, secret: &str) -> Self {
        self.add_text(secret);
        let pair = format!("{user}:{secret}");
        self.add_text(&pair);
        let engines = [
            &base64::engine::general_purpose::STANDARD,
            &base64::engine::general_purpose::STANDARD_NO_PAD,
            &base64::engine::general_purpose::URL_SAFE,
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ];
        for engine in engines {
            let encoded = engine.encode(pair.as_bytes());
            self.add_text(&format!("Basic {encoded}"));
            self.add_text(&encoded);
        }
        self
    }

    /// Adds the forms of a Bearer credential: the token and the full header value.
    pub fn with_bearer(mut self, token: &str) -> Self {
        self.add_text(token);
        self.add_text(&format!("Bearer {token}"));
        self
    }

    /// Adds every secret another scrubber knows.
    pub fn merge(mut self, other: &Scrubber) -> Self {
        for needle in &other.needles {
            self.push(needle.clone());
        }
        self
    }

    /// `text` with every occurrence of every known form replaced by `[redacted]`.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for needle in &self.needles {
            if out.contains(needle.as_str()) {
                out = out.replace(needle.as_str(), REDACTED);
            }
        }
        out
    }

    /// Scrubs a byte body read as UTF-8 (invalid sequences replaced).
    pub fn scrub_bytes(&self, body: &[u8]) -> String {
        self.scrub(&String::from_utf8_lossy(body))
    }

    /// Adds `text` raw and URL-encoded (upper- and lower-case escapes, `+` and `%20` spaces).
    fn add_text(&mut self, text: &str) {
        self.push(text.to_owned());
        let encoded: String = url::form_urlencoded::byte_serialize(text.as_bytes()).collect();
        self.push(encoded.replace('+', "%20"));
        self.push(lower_escapes(&encoded));
        self.push(encoded);
    }

    fn push(&mut self, needle: String) {
        if needle.is_empty() || self.needles.contains(&needle) {
            return;
        }
        self.needles.push(needle);
        self.needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
    }
}

/// `%3A` → `%3a`: some servers and proxies re-encode with lower-case hex digits.
fn lower_escapes(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut chars = encoded.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '%' {
            for _ in 0..2 {
                if let Some(hex) = chars.next() {
                    out.push(hex.to_ascii_lowercase());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMAIL: &str = "svc@acme.com";
    const TOKEN: &str = "ATATT3x/Ff+tok=en:with&odd";

    fn scrubber() -> Scrubber {
        Scrubber::new()
            .with_basic(EMAIL, TOKEN)
            .with_secret("jira-key-42")
    }

    fn assert_clean(text: &str) {
        let out = scrubber().scrub(text);
        for secret in [TOKEN, "jira-key-42", &format!("{EMAIL}:{TOKEN}")] {
            assert!(!out.contains(secret), "{secret} survived in {out}");
        }
        assert!(out.contains(REDACTED), "nothing was redacted in {out}");
    }

    #[test]
    fn removes_the_raw_token_and_the_other_key() {
        assert_clean(&format!("bad token {TOKEN} given"));
        assert_clean("key jira-key-42 refused");
    }

    #[test]
    fn removes_the_decoded_pair_and_every_base64_form() {
        assert_clean(&format!("you sent {EMAIL}:{TOKEN}"));
        let pair = format!("{EMAIL}:{TOKEN}");
        for engine in [
            &base64::engine::general_purpose::STANDARD,
            &base64::engine::general_purpose::STANDARD_NO_PAD,
            &base64::engine::general_purpose::URL_SAFE,
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ] {
            let b64 = engine.encode(&pair);
            let out = scrubber().scrub(&format!("Authorization: Basic {b64}"));
            assert_eq!(out, format!("Authorization: {REDACTED}"));
            let out = scrubber().scrub(&format!("header was {b64}."));
            assert!(!out.contains(&b64), "{out}");
        }
    }

    #[test]
    fn removes_url_encoded_forms() {
        let upper: String = url::form_urlencoded::byte_serialize(TOKEN.as_bytes()).collect();
        assert_clean(&format!("GET /x?token={upper}"));
        assert_clean(&format!("GET /x?token={}", lower_escapes(&upper)));
        let pair: String =
            url::form_urlencoded::byte_serialize(format!("{EMAIL}:{TOKEN}").as_bytes()).collect();
        assert_clean(&format!("user={pair}"));
    }

    #[test]
    fn leaves_other_text_alone_and_hides_itself_in_debug() {
        let text = "Rate limit exceeded for svc@acme.com";
        assert_eq!(scrubber().scrub(text), text);
        assert!(!format!("{:?}", scrubber()).contains(TOKEN));
    }

    #[test]
    fn bearer_header_is_removed_whole() {
        let s = Scrubber::new().with_bearer("acc-tok-9");
        assert_eq!(s.scrub("got Bearer acc-tok-9"), format!("got {REDACTED}"));
    }
}
