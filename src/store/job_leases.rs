//! The values of job leases: which scheduled job (or which `serve` instance, on SQLite) a
//! process holds, until when, and what a claim found.
//!
//! A lease is taken by compare-and-set: only when nobody holds it, its lease has passed, or the
//! caller already holds it. Its holder renews it by heartbeat; a holder that dies stops renewing
//! and the lease is free once `lease_until` has passed.

use chrono::{DateTime, Utc};

/// A held lease as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobLease {
    /// The job's lease name (`sync`, `audit`, `#instance`...).
    pub job: String,
    /// Who holds it: a [`crate::store::RunOwner`] string of the holding process.
    pub holder: String,
    /// Until when, unless renewed.
    pub lease_until: DateTime<Utc>,
    /// The holder's last heartbeat.
    pub heartbeat: DateTime<Utc>,
}

/// A request to take or renew a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobLeaseRequest {
    /// The job's lease name.
    pub job: String,
    /// Who asks.
    pub holder: String,
    /// The caller's time.
    pub now: DateTime<Utc>,
    /// Until when the lease should last.
    pub lease_until: DateTime<Utc>,
    /// For a scheduled run: its cron time. The lease is then not taken when its last holder
    /// was still active at or after that time, because the job already ran for this time
    /// (on an instance whose clock is a little ahead) or was still running when it came.
    pub run_time: Option<DateTime<Utc>>,
}

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseClaim {
    /// The caller holds the lease now.
    Acquired,
    /// Someone else holds a live lease; nothing changed.
    Held(JobLease),
    /// The lease is free, but the job already ran (or still ran) at or after the requested
    /// run time; nothing changed.
    AlreadyRan(JobLease),
}
