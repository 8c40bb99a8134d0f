//! Human-written durations such as `8h`, `90m`, `1h30m` or `7d`, as the config writes them.
//!
//! The grammar is one or more `<digits><unit>` pairs with the units `s`, `m`, `h`, `d` and `w`.
//! The schema's `pattern` for durations says the same thing; the agreement test keeps them equal.

use serde::{Deserialize, Deserializer};
use std::fmt;
use std::time::Duration;

/// The JSON Schema pattern that matches exactly what [`parse_duration`] accepts.
pub const DURATION_PATTERN: &str = "^([0-9]+[smhdw])+$";

/// A duration read from the config, remembering how the user wrote it for messages.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

impl fmt::Debug for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", format_duration(self.0))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        // The schema's pattern accepts any number of digits, so an absurdly large duration
        // still deserialises (as the largest duration) and the semantic check refuses it with
        // its pointer; only text outside the grammar fails here.
        match parse_duration(&text) {
            Ok(d) => Ok(HumanDuration(d)),
            Err(_) if matches_grammar(&text) => Ok(HumanDuration(Duration::MAX)),
            Err(message) => Err(serde::de::Error::custom(message)),
        }
    }
}

/// Parses `8h`, `1h30m`, `45s`, `7d`, `2w`. Returns a plain sentence on error.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    const HINT: &str =
        "write a duration as a number and a unit (s, m, h, d or w), such as 8h or 1h30m";
    if text.is_empty() {
        return Err(HINT.into());
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for ch in text.chars() {
        if ch.is_ascii_digit() {
            digits.push(ch);
            continue;
        }
        let unit: u64 = match ch {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return Err(HINT.into()),
        };
        if digits.is_empty() {
            return Err(HINT.into());
        }
        let n: u64 = digits
            .parse()
            .map_err(|_| "the duration is too large".to_string())?;
        total = n
            .checked_mul(unit)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(|| "the duration is too large".to_string())?;
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(HINT.into());
    }
    Ok(Duration::from_secs(total))
}

/// Whether `text` has the shape [`DURATION_PATTERN`] describes, whatever the size of its numbers.
fn matches_grammar(text: &str) -> bool {
    let mut saw_digit = false;
    let mut saw_pair = false;
    for ch in text.chars() {
        if ch.is_ascii_digit() {
            saw_digit = true;
        } else if saw_digit && matches!(ch, 's' | 'm' | 'h' | 'd' | 'w') {
            saw_digit = false;
            saw_pair = true;
        } else {
            return false;
        }
    }
    saw_pair && !saw_digit
}

/// Formats a duration in the same grammar, largest units first (`1d2h`; `90s` becomes `1m30s`).
pub fn format_duration(d: Duration) -> String {
    let mut secs = d.as_secs();
    if secs == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    // Weeks are accepted on input but not produced: "30d" reads better than "4w2d".
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_single_and_compound_units() {
        assert_eq!(parse_duration("8h"), Ok(Duration::from_secs(8 * 3600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86400)));
        assert_eq!(parse_duration("2w"), Ok(Duration::from_secs(14 * 86400)));
        assert_eq!(parse_duration("45s"), Ok(Duration::from_secs(45)));
    }

    #[test]
    fn refuses_what_the_schema_pattern_refuses() {
        for bad in ["", "8", "h", "8 h", "8H", "1.5h", "-1h", "8hours", "h8"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(parse_duration("99999999999999999999w").is_err());
    }

    #[test]
    fn formats_back_into_the_grammar() {
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::from_secs(8 * 3600)), "8h");
        assert_eq!(format_duration(Duration::from_secs(0)), "0s");
    }
}
