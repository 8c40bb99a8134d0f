//! Which listings a sync reads when its request budget cannot pay for all of them.
//!
//! A listing is one paginated read that replaces one set of stored facts (the members of a
//! workspace, the explicit user permissions of one repository, ...). Its cost is the number of
//! pages it needs at 100 items per page, at least one. The planner takes every candidate listing
//! with its cost and how stale its stored facts are, and picks, within the requests available,
//! in this order:
//!
//! 1. structural listings (workspace, members, projects, repositories, groups): without them the
//!    sync cannot even tell which repositories exist;
//! 2. listings never read (new repositories and projects among them);
//! 3. listings of resources with active grants: the grant engine relies on their facts;
//! 4. everything else, oldest read first.
//!
//! The order inside a class is stable (by key) so that two runs with the same state agree.

use chrono::{DateTime, Utc};

/// Why a listing deserves a place in this run; lower sorts first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// Needed to know what exists at all.
    Structural,
    /// Never read completely.
    NeverRead,
    /// The resource carries an active grant.
    ActiveGrant,
    /// Read before; refreshed oldest first.
    Stale,
}

/// A listing the sync could read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate<K> {
    /// What to read.
    pub key: K,
    /// Pages it is expected to need (at least one).
    pub cost: u64,
    /// When its facts were last read completely.
    pub last_read: Option<DateTime<Utc>>,
    /// Its class.
    pub priority: Priority,
}

/// The planner's answer: what to read now, and what waits for a later run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan<K> {
    /// In the order they should be read.
    pub read: Vec<Candidate<K>>,
    /// What the budget could not pay for this run.
    pub deferred: Vec<Candidate<K>>,
}

/// Number of pages a listing of `items` needs at `page_size` per page; an empty listing still
/// costs the one request that finds it empty.
pub fn pages_for(items: u64, page_size: u64) -> u64 {
    items.div_ceil(page_size.max(1)).max(1)
}

/// Orders the candidates and keeps those the `available` requests can pay for. A candidate that
/// does not fit is deferred, but cheaper ones after it may still fit, so a single large listing
/// never starves the rest.
pub fn plan<K: Ord + Clone>(mut candidates: Vec<Candidate<K>>, available: u64) -> Plan<K> {
    candidates.sort_by(|a, b| {
        a.priority
            .cmp(&b.priority)
            .then_with(|| a.last_read.cmp(&b.last_read))
            .then_with(|| a.key.cmp(&b.key))
    });
    let mut left = available;
    let mut read = Vec::new();
    let mut deferred = Vec::new();
    for c in candidates {
        if c.cost <= left {
            left -= c.cost;
            read.push(c);
        } else {
            deferred.push(c);
        }
    }
    Plan { read, deferred }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn cand(key: &str, cost: u64, day: Option<u32>, priority: Priority) -> Candidate<String> {
        Candidate {
            key: key.to_string(),
            cost,
            last_read: day.map(|d| Utc.with_ymd_and_hms(2026, 11, d, 0, 0, 0).unwrap()),
            priority,
        }
    }

    #[test]
    fn pages_round_up_and_never_reach_zero() {
        assert_eq!(pages_for(0, 100), 1);
        assert_eq!(pages_for(100, 100), 1);
        assert_eq!(pages_for(101, 100), 2);
    }

    #[test]
    fn budget_goes_to_structure_then_new_then_granted_then_oldest() {
        let p = plan(
            vec![
                cand("old", 1, Some(1), Priority::Stale),
                cand("older", 1, Some(2), Priority::Stale),
                cand("granted", 1, Some(20), Priority::ActiveGrant),
                cand("new", 1, None, Priority::NeverRead),
                cand("repos", 2, Some(22), Priority::Structural),
            ],
            5,
        );
        let keys: Vec<_> = p.read.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(keys, ["repos", "new", "granted", "old"]);
        assert_eq!(p.deferred.len(), 1);
        assert_eq!(p.deferred[0].key, "older");
    }

    #[test]
    fn a_large_listing_does_not_starve_cheaper_ones() {
        let p = plan(
            vec![
                cand("big", 10, None, Priority::NeverRead),
                cand("small", 1, None, Priority::NeverRead),
            ],
            3,
        );
        assert_eq!(p.read.len(), 1);
        assert_eq!(p.read[0].key, "small");
    }
}
