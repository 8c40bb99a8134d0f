//! `schedules.time_zone`: the zone cron expressions are read in, and how a cron time becomes an
//! instant in it.
//!
//! A cron expression names wall-clock times. In UTC or at a fixed offset (`+01:00`) each one is
//! exactly one instant. In a named zone (`Europe/Paris`, from the IANA database that
//! `chrono-tz` carries), daylight-saving changes make some wall-clock times happen never (the
//! clocks jump forward over them) or twice (the clocks go back over them). The rules, chosen so
//! that a daily job runs exactly once on either day and a frequent job keeps its rhythm:
//!
//! - **A time the clocks skip** fires once, at the moment they jump: a daily 02:30 job on the
//!   day Paris goes from 02:00 straight to 03:00 runs at 03:00 local time (01:00 UTC), not at
//!   all would lose a day's run. Several skipped times of one expression fire together, once.
//! - **A time that happens twice** fires at its first occurrence only, so a daily job is never
//!   run twice; unless the expression's hour field is `*` (it fires every hour or more often):
//!   then it fires at both, so an every-minute expiry keeps running through the repeated hour.

use std::fmt;

use chrono::{
    DateTime, Duration, FixedOffset, LocalResult, NaiveDateTime, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;
use cron::TimeUnitSpec;

/// What the problem message suggests instead of a value that is not a zone.
const HINT: &str = "write an IANA zone name such as \"Europe/Paris\" or \"America/New_York\", \
                    UTC, or a fixed offset such as \"+01:00\"";

/// More than any daylight-saving shift (the largest in use is two hours): the span around a
/// wall-clock time within which its instant can lie, relative to the offset in force now.
const MAX_SHIFT: Duration = Duration::hours(3);

/// `schedules.time_zone`: UTC, a fixed offset such as `+01:00`, or an IANA zone name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduleZone(Zone);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Zone {
    Fixed(FixedOffset),
    Named(Tz),
}

impl ScheduleZone {
    /// UTC.
    pub fn utc() -> Self {
        ScheduleZone(Zone::Fixed(
            FixedOffset::east_opt(0).expect("zero is a valid offset"),
        ))
    }

    /// Parses `UTC`, `Z`, `+HH:MM` / `-HH:MM` (within ±18 hours) or an IANA zone name such as
    /// `Europe/Paris` (spelled as the database spells it).
    pub fn parse(text: &str) -> Result<ScheduleZone, String> {
        let t = text.trim();
        if t.eq_ignore_ascii_case("utc") || t == "Z" {
            return Ok(Self::utc());
        }
        if let Some(rest) = t.strip_prefix('+') {
            return fixed(text, 1, rest);
        }
        if let Some(rest) = t.strip_prefix('-') {
            return fixed(text, -1, rest);
        }
        match t.parse::<Tz>() {
            Ok(tz) => Ok(ScheduleZone(Zone::Named(tz))),
            Err(_) => Err(format!("{text:?} is not a known time zone; {HINT}")),
        }
    }

    /// Whether this is a named zone, whose clocks change for daylight-saving time.
    pub fn is_named(&self) -> bool {
        matches!(self.0, Zone::Named(_))
    }

    /// The first time `schedule` fires strictly after `now`, its wall-clock times read in this
    /// zone by the rules of the module documentation.
    pub fn next_after(
        &self,
        schedule: &cron::Schedule,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        match self.0 {
            Zone::Fixed(offset) => schedule
                .after(&now.with_timezone(&offset))
                .next()
                .map(|t| t.with_timezone(&Utc)),
            Zone::Named(tz) => next_in_named_zone(schedule, tz, now),
        }
    }
}

/// A fixed offset from its sign and `HH:MM`.
fn fixed(text: &str, sign: i32, rest: &str) -> Result<ScheduleZone, String> {
    let parsed = rest
        .split_once(':')
        .and_then(|(h, m)| Some((h.parse::<i32>().ok()?, m.parse::<i32>().ok()?)))
        .filter(|(h, m)| (0..=18).contains(h) && (0..60).contains(m) && rest.len() == 5);
    let Some((hours, minutes)) = parsed else {
        return Err(format!("{text:?} is not a time zone; {HINT}"));
    };
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
        .map(|offset| ScheduleZone(Zone::Fixed(offset)))
        .ok_or_else(|| format!("{text:?} is out of range; {HINT}"))
}

/// The next instant after `now` of `schedule` read in `tz`.
///
/// The cron crate walks wall-clock times; an instant is found for each (none, one or two, see
/// [`instants`]). Near a change of the clocks, wall-clock order is not instant order (the
/// repeated hour comes after the hour that followed it on the wall), so the walk starts
/// [`MAX_SHIFT`] before now's wall-clock time and goes on until no later wall-clock time can
/// give an earlier instant than the best found.
fn next_in_named_zone(
    schedule: &cron::Schedule,
    tz: Tz,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let both = schedule.hours().is_all();
    let wall_now = now.with_timezone(&tz).naive_local();
    let offset_now = wall_now - now.naive_utc();
    let start = Utc.from_utc_datetime(&(wall_now - MAX_SHIFT));
    let mut best: Option<DateTime<Utc>> = None;
    for wall in schedule.after(&start) {
        let wall = wall.naive_utc();
        let earliest_possible = wall - offset_now - MAX_SHIFT;
        if best.is_some_and(|b| earliest_possible > b.naive_utc()) {
            break;
        }
        for instant in instants(tz, wall, both) {
            if instant > now && best.is_none_or(|b| instant < b) {
                best = Some(instant);
            }
        }
    }
    best
}

/// The instants at which the wall-clock time `wall` in `tz` fires: itself; the moment the
/// clocks jump when they skip it; its first occurrence when it happens twice, or both when
/// `both` (the expression fires every hour).
fn instants(tz: Tz, wall: NaiveDateTime, both: bool) -> Vec<DateTime<Utc>> {
    match tz.from_local_datetime(&wall) {
        LocalResult::Single(t) => vec![t.with_timezone(&Utc)],
        LocalResult::Ambiguous(first, second) if both => {
            vec![first.with_timezone(&Utc), second.with_timezone(&Utc)]
        }
        LocalResult::Ambiguous(first, _) => vec![first.with_timezone(&Utc)],
        LocalResult::None => clocks_jump(tz, wall).into_iter().collect(),
    }
}

/// The moment the clocks jump over `wall`: the first whole minute after it that exists (every
/// change of the clocks in use falls on a whole minute).
fn clocks_jump(tz: Tz, wall: NaiveDateTime) -> Option<DateTime<Utc>> {
    let mut t = wall.with_second(0)?.with_nanosecond(0)?;
    for _ in 0..24 * 60 {
        t += Duration::minutes(1);
        if let Some(found) = tz.from_local_datetime(&t).earliest() {
            return Some(found.with_timezone(&Utc));
        }
    }
    None
}

impl fmt::Display for ScheduleZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Zone::Fixed(offset) if offset.local_minus_utc() == 0 => f.write_str("UTC"),
            Zone::Fixed(offset) => write!(f, "{offset}"),
            Zone::Named(tz) => f.write_str(tz.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("an RFC 3339 time")
            .with_timezone(&Utc)
    }

    fn times(expression: &str, zone: &str, from: &str, n: usize) -> Vec<DateTime<Utc>> {
        let schedule = cron::Schedule::from_str(expression).expect("cron");
        let zone = ScheduleZone::parse(zone).expect("zone");
        let mut now = at(from);
        let mut out = Vec::new();
        for _ in 0..n {
            now = zone.next_after(&schedule, now).expect("a next time");
            out.push(now);
        }
        out
    }

    #[test]
    fn a_skipped_time_fires_once_when_the_clocks_jump() {
        // Paris, 29 March 2026: 02:00 CET becomes 03:00 CEST at 01:00 UTC.
        assert_eq!(
            times("0 30 2 * * *", "Europe/Paris", "2026-03-27T12:00:00Z", 3),
            vec![
                at("2026-03-28T01:30:00Z"),
                at("2026-03-29T01:00:00Z"),
                at("2026-03-30T00:30:00Z"),
            ]
        );
        // Every quarter of an hour: the four skipped times fire together, once.
        assert_eq!(
            times("0 */15 * * * *", "Europe/Paris", "2026-03-29T00:40:00Z", 4),
            vec![
                at("2026-03-29T00:45:00Z"),
                at("2026-03-29T01:00:00Z"),
                at("2026-03-29T01:15:00Z"),
                at("2026-03-29T01:30:00Z"),
            ]
        );
    }

    #[test]
    fn a_repeated_time_fires_once_unless_the_expression_is_hourly() {
        // Paris, 25 October 2026: 03:00 CEST becomes 02:00 CET at 01:00 UTC.
        assert_eq!(
            times("0 30 2 * * *", "Europe/Paris", "2026-10-24T12:00:00Z", 2),
            vec![at("2026-10-25T00:30:00Z"), at("2026-10-26T01:30:00Z")]
        );
        assert_eq!(
            times("0 30 * * * *", "Europe/Paris", "2026-10-24T23:00:00Z", 4),
            vec![
                at("2026-10-24T23:30:00Z"),
                at("2026-10-25T00:30:00Z"),
                at("2026-10-25T01:30:00Z"),
                at("2026-10-25T02:30:00Z"),
            ]
        );
    }

    #[test]
    fn names_offsets_and_utc_are_accepted_and_shown_as_written() {
        for (text, shown) in [
            ("UTC", "UTC"),
            ("+01:00", "+01:00"),
            ("America/New_York", "America/New_York"),
        ] {
            assert_eq!(ScheduleZone::parse(text).expect(text).to_string(), shown);
        }
        let err = ScheduleZone::parse("Mars/Olympus").expect_err("unknown");
        assert!(err.contains("\"Europe/Paris\""), "{err}");
        assert!(ScheduleZone::parse("+25:00").is_err());
    }
}
