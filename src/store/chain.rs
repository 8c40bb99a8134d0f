//! The hash chain of the audit log and the canonical JSON its entries are hashed over.
//!
//! An entry's hash is the SHA-256 (lower-case hex) of the canonical JSON array
//! `[occurred_at, actor, kind, subject, before, after, details, prev_hash]`, where
//! `occurred_at` is RFC 3339 in UTC with exactly six fractional digits (the microseconds both
//! backends keep), `before`/`after` are `null` when absent, and `prev_hash` is the hash of the
//! entry before it ([`GENESIS`] for the first chained entry). The id is left out on purpose: the
//! database assigns it while the row is inserted, and the order is already fixed by `prev_hash`.
//!
//! Canonical JSON: object keys sorted by their UTF-8 bytes, no whitespace, serde_json's
//! spelling of strings and numbers. It does not depend on how the JSON was stored or on
//! serde_json's `preserve_order` feature.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::types::NewAuditEntry;

/// The `prev_hash` of the first chained entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The canonical JSON text of a value (sorted keys, no whitespace).
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key.as_str()], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// SHA-256 of bytes, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let mut writer = Sha256Writer::new(std::io::sink());
    // A sink takes every byte.
    let _ = std::io::Write::write_all(&mut writer, bytes);
    writer.finish().unwrap_or_default()
}

/// Passes written bytes on to `inner` and hashes them on the way, so that a large text is
/// hashed while it is written instead of held to be hashed.
pub struct Sha256Writer<W> {
    inner: W,
    digest: Sha256,
}

impl<W: std::io::Write> Sha256Writer<W> {
    /// A writer into `inner`.
    pub fn new(inner: W) -> Self {
        Sha256Writer {
            inner,
            digest: Sha256::new(),
        }
    }

    /// Flushes `inner` and returns the SHA-256 of everything written, lower-case hex.
    pub fn finish(mut self) -> std::io::Result<String> {
        self.inner.flush()?;
        let digest = self.digest.finalize();
        let mut hex = String::with_capacity(64);
        for byte in digest {
            hex.push_str(&format!("{byte:02x}"));
        }
        Ok(hex)
    }
}

impl<W: std::io::Write> std::io::Write for Sha256Writer<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.digest.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The time as the chain encodes it: RFC 3339, UTC, six fractional digits.
fn chain_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The hash of an audit entry whose predecessor has hash `prev_hash`. `entry.at` must already
/// be truncated to microseconds (as stored).
pub fn entry_hash(entry: &NewAuditEntry, prev_hash: &str) -> String {
    let fields = Value::Array(vec![
        Value::String(chain_time(entry.at)),
        Value::String(entry.actor.clone()),
        Value::String(entry.kind.as_str().to_owned()),
        Value::String(entry.subject.clone()),
        entry.before.clone().unwrap_or(Value::Null),
        entry.after.clone().unwrap_or(Value::Null),
        entry.details.clone(),
        Value::String(prev_hash.to_owned()),
    ]);
    sha256_hex(canonical_json(&fields).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::AuditKind;

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let value: Value =
            serde_json::from_str(r#"{"b": 1, "a": {"d": [1, {"z": null, "y": "é"}], "c": true}}"#)
                .expect("json");
        assert_eq!(
            canonical_json(&value),
            r#"{"a":{"c":true,"d":[1,{"y":"é","z":null}]},"b":1}"#
        );
    }

    #[test]
    fn an_entry_hash_changes_with_any_field_and_with_its_predecessor() {
        let at = DateTime::parse_from_rfc3339("2026-12-02T05:00:00.123456Z")
            .expect("time")
            .with_timezone(&Utc);
        let entry = NewAuditEntry {
            at,
            actor: "bitbucket".into(),
            kind: AuditKind::Drift,
            subject: "repository_user_permission acme/api 1".into(),
            before: None,
            after: Some(serde_json::json!({"level": "admin"})),
            details: serde_json::json!({}),
        };
        let base = entry_hash(&entry, GENESIS);
        assert_eq!(base.len(), 64);
        assert_eq!(base, entry_hash(&entry, GENESIS));
        let mut changed = entry.clone();
        changed.after = Some(serde_json::json!({"level": "write"}));
        assert_ne!(base, entry_hash(&changed, GENESIS));
        assert_ne!(base, entry_hash(&entry, &base));
    }

    #[test]
    fn sha256_matches_the_standard_test_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
