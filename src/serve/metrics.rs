//! `/metrics`: what `serve` counts, and the Prometheus text format (version 0.0.4) it is
//! written in.
//!
//! Two kinds of figures:
//! - **recorded** as things happen, in [`Metrics`]: job runs by outcome, sync durations and
//!   outcomes per workspace, Jira requests (each identity pass has its own short-lived client),
//!   expiry lateness (a histogram the expiry loop and pass feed) and audit findings by kind (a gauge
//!   the audit adapter sets);
//! - **read at scrape time** into a [`Scrape`]: Bitbucket requests by endpoint and status and
//!   the budget left (from the one long-lived client's budget), grants by state, the last
//!   finished sync and the oldest fact per workspace (from the store), and each job's next run
//!   and consecutive failures (from the scheduler).
//!
//! The text is written by [`TextWriter`], a small typed writer, rather than the
//! `prometheus-client` crate: a dozen families, half of them computed from the store at scrape
//! time (which that crate wants as custom collectors), do not justify a new dependency, and the
//! format's rules (one `# HELP` and `# TYPE` per family before its samples, escaped label
//! values, cumulative histogram buckets ending in `+Inf` equal to `_count`) fit in one place
//! here. The tests parse the output back.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

/// The content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds (seconds) of the sync duration histogram.
const SYNC_BUCKETS: [f64; 8] = [1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0];

/// Upper bounds (seconds) of the expiry lateness histogram: an expiry runs every minute by
/// default, so most grants end within a minute of their time.
const LATENESS_BUCKETS: [f64; 9] = [0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 900.0];

/// How a scheduled sync ended, as its metric labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SyncResult {
    /// Every listing read.
    Complete,
    /// Some listings deferred by the budget or held by the mass-change guard.
    Partial,
    /// The run failed, or some listings could not be read.
    Failed,
    /// Another run held the workspace.
    Held,
}

impl SyncResult {
    fn label(self) -> &'static str {
        match self {
            SyncResult::Complete => "complete",
            SyncResult::Partial => "partial",
            SyncResult::Failed => "failed",
            SyncResult::Held => "held",
        }
    }
}

/// How a job run ended, as its metric labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RunResult {
    /// It did its work.
    Success,
    /// It failed (and will be retried).
    Failure,
    /// It had nothing to do, ran elsewhere, or is not available in this build.
    Skipped,
}

impl RunResult {
    fn label(self) -> &'static str {
        match self {
            RunResult::Success => "success",
            RunResult::Failure => "failure",
            RunResult::Skipped => "skipped",
        }
    }
}

/// A histogram with fixed upper bounds.
#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    /// Observations at or below each bound (not cumulative; summed when written).
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, value: f64) {
        if let Some(i) = self.bounds.iter().position(|b| value <= *b) {
            self.counts[i] += 1;
        }
        self.sum += value;
        self.count += 1;
    }
}

#[derive(Debug)]
struct Recorded {
    job_runs: BTreeMap<(String, RunResult), u64>,
    sync_runs: BTreeMap<(String, SyncResult), u64>,
    sync_duration: BTreeMap<String, Histogram>,
    jira_requests: BTreeMap<(String, String), u64>,
    expiry_lateness: Histogram,
    audit_findings: BTreeMap<String, u64>,
    org_events: BTreeMap<&'static str, u64>,
}

/// What `serve` records as it runs. Shared by the scheduler, the jobs and the HTTP server.
#[derive(Debug)]
pub struct Metrics {
    recorded: Mutex<Recorded>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            recorded: Mutex::new(Recorded {
                job_runs: BTreeMap::new(),
                sync_runs: BTreeMap::new(),
                sync_duration: BTreeMap::new(),
                jira_requests: BTreeMap::new(),
                expiry_lateness: Histogram::new(&LATENESS_BUCKETS),
                audit_findings: BTreeMap::new(),
                org_events: BTreeMap::new(),
            }),
        }
    }
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Recorded> {
        // Counters stay meaningful after a panic elsewhere: each update is one statement.
        self.recorded.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one run of `job`.
    pub fn record_run(&self, job: &str, result: RunResult) {
        *self
            .lock()
            .job_runs
            .entry((job.to_owned(), result))
            .or_insert(0) += 1;
    }

    /// Counts one scheduled sync of `workspace` (`*` for every administered one) and its
    /// duration.
    pub fn record_sync(&self, workspace: &str, result: SyncResult, seconds: f64) {
        let mut r = self.lock();
        *r.sync_runs
            .entry((workspace.to_owned(), result))
            .or_insert(0) += 1;
        r.sync_duration
            .entry(workspace.to_owned())
            .or_insert_with(|| Histogram::new(&SYNC_BUCKETS))
            .observe(seconds);
    }

    /// Adds the attempts of a client that is going away (per `METHOD template` and status).
    pub fn add_requests(&self, service: &str, counts: &BTreeMap<(String, String), u64>) {
        let mut r = self.lock();
        for ((key, status), n) in counts {
            *r.jira_requests
                .entry((format!("{service} {key}"), status.clone()))
                .or_insert(0) += n;
        }
    }

    /// The expiry loop and pass report how late a grant ended (its application time less its
    /// expiry), once per grant applied.
    pub fn observe_expiry_lateness(&self, seconds: f64) {
        self.lock().expiry_lateness.observe(seconds.max(0.0));
    }

    /// The audit adapter sets the findings of the latest report, by kind (replacing the last).
    pub fn set_audit_findings(&self, by_kind: BTreeMap<String, u64>) {
        self.lock().audit_findings = by_kind;
    }

    /// Counts what one pass over the organization's events did: events applied, the
    /// connector's own, unknown actions (refreshed conservatively), events elsewhere, drift
    /// records, Bitbucket requests, and passes another instance held.
    pub fn record_org_events(&self, report: &crate::sync::events::EventsReport) {
        let mut r = self.lock();
        let mut add = |outcome: &'static str, n: u64| {
            *r.org_events.entry(outcome).or_insert(0) += n;
        };
        if report.held_by.is_some() {
            add("pass_held", 1);
            return;
        }
        add("pass", 1);
        add("applied", report.applied);
        add("own", report.own);
        add("unknown_action", report.unknown.len() as u64);
        add("elsewhere", report.elsewhere);
        add("drift", report.drift());
        add("bitbucket_requests", report.bitbucket_requests());
    }

    /// Counts a pass over the organization's events that failed.
    pub fn record_org_events_failure(&self) {
        *self.lock().org_events.entry("pass_failed").or_insert(0) += 1;
    }

    /// An organization events figure (`applied`, `unknown_action`, `drift`...).
    pub fn org_events(&self, what: &str) -> u64 {
        self.lock().org_events.get(what).copied().unwrap_or(0)
    }

    /// Runs of `job` that ended with `result`.
    pub fn runs(&self, job: &str, result: RunResult) -> u64 {
        self.lock()
            .job_runs
            .get(&(job.to_owned(), result))
            .copied()
            .unwrap_or(0)
    }
}

/// One job as the scheduler sees it at scrape time.
#[derive(Debug, Clone)]
pub struct JobFigures {
    /// The job's name.
    pub job: String,
    /// When it runs next, if scheduled.
    pub next_run: Option<DateTime<Utc>>,
    /// Failures since its last success.
    pub consecutive_failures: u32,
}

/// The figures read at scrape time.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    /// Bitbucket attempts per (`METHOD template`, status).
    pub bitbucket_requests: BTreeMap<(String, String), u64>,
    /// Sync requests the rolling hour still allows this process.
    pub budget_available: u64,
    /// Requests this process sent in the rolling hour.
    pub budget_used: u64,
    /// Grants by state.
    pub grants: BTreeMap<String, u64>,
    /// When each workspace's last finished sync ended.
    pub last_sync: BTreeMap<String, DateTime<Utc>>,
    /// Age in seconds of each workspace's oldest stored listing.
    pub oldest_fact_age: BTreeMap<String, i64>,
    /// The scheduler's jobs.
    pub jobs: Vec<JobFigures>,
}

/// The prefix of every metric name.
const PREFIX: &str = "bitbucket_access";

impl Metrics {
    /// The whole `/metrics` page.
    pub fn render(&self, scrape: &Scrape) -> String {
        let r = self.lock();
        let mut w = TextWriter::default();

        let requests = w.family(
            "http_requests_total",
            "Attempts sent to Bitbucket and Jira (retries included), by endpoint template and status code (or timeout/error).",
            Kind::Counter,
        );
        for ((key, status), n) in &scrape.bitbucket_requests {
            let (method, endpoint) = split_key(key);
            w.sample(
                &requests,
                &[
                    ("service", "bitbucket"),
                    ("method", method),
                    ("endpoint", endpoint),
                    ("status", status),
                ],
                *n as f64,
            );
        }
        for ((key, status), n) in &r.jira_requests {
            let (service, rest) = key.split_once(' ').unwrap_or(("jira", key));
            let (method, endpoint) = split_key(rest);
            w.sample(
                &requests,
                &[
                    ("service", service),
                    ("method", method),
                    ("endpoint", endpoint),
                    ("status", status),
                ],
                *n as f64,
            );
        }

        let available = w.family(
            "budget_available_requests",
            "Sync requests the rolling hour still allows this process (other instances' requests already taken off).",
            Kind::Gauge,
        );
        w.sample(&available, &[], scrape.budget_available as f64);
        let used = w.family(
            "budget_used_requests",
            "Requests this process sent to Bitbucket in the rolling hour.",
            Kind::Gauge,
        );
        w.sample(&used, &[], scrape.budget_used as f64);

        let runs = w.family(
            "job_runs_total",
            "Scheduled job runs by outcome (skipped: nothing to do, held elsewhere, or not available in this build).",
            Kind::Counter,
        );
        for ((job, result), n) in &r.job_runs {
            w.sample(
                &runs,
                &[("job", job), ("outcome", result.label())],
                *n as f64,
            );
        }
        let failing = w.family(
            "job_consecutive_failures",
            "Failures of each job since its last success; three or more make /readyz fail.",
            Kind::Gauge,
        );
        for job in &scrape.jobs {
            w.sample(
                &failing,
                &[("job", &job.job)],
                f64::from(job.consecutive_failures),
            );
        }
        let next = w.family(
            "job_next_run_timestamp_seconds",
            "When each job runs next (Unix time).",
            Kind::Gauge,
        );
        for job in &scrape.jobs {
            if let Some(at) = job.next_run {
                w.sample(&next, &[("job", &job.job)], at.timestamp() as f64);
            }
        }

        let events = w.family(
            "org_events_total",
            "Organization audit-log event passes and what they did, by kind (pass, pass_held, pass_failed, applied, own, unknown_action, elsewhere, drift, bitbucket_requests).",
            Kind::Counter,
        );
        for (kind, n) in &r.org_events {
            w.sample(&events, &[("kind", kind)], *n as f64);
        }

        let syncs = w.family(
            "sync_runs_total",
            "Scheduled syncs by workspace and outcome (complete, partial, failed, held).",
            Kind::Counter,
        );
        for ((ws, result), n) in &r.sync_runs {
            w.sample(
                &syncs,
                &[("workspace", ws), ("outcome", result.label())],
                *n as f64,
            );
        }
        let duration = w.family(
            "sync_duration_seconds",
            "Duration of scheduled syncs by workspace.",
            Kind::Histogram,
        );
        for (ws, h) in &r.sync_duration {
            w.histogram(&duration, &[("workspace", ws)], h);
        }
        let last = w.family(
            "sync_last_finished_timestamp_seconds",
            "When the last sync of each workspace finished (Unix time, any instance).",
            Kind::Gauge,
        );
        for (ws, at) in &scrape.last_sync {
            w.sample(&last, &[("workspace", ws)], at.timestamp() as f64);
        }
        let oldest = w.family(
            "oldest_fact_age_seconds",
            "Age of the oldest stored listing of each workspace.",
            Kind::Gauge,
        );
        for (ws, age) in &scrape.oldest_fact_age {
            w.sample(&oldest, &[("workspace", ws)], *age as f64);
        }

        let grants = w.family("grants", "Grants by state.", Kind::Gauge);
        for (state, n) in &scrape.grants {
            w.sample(&grants, &[("state", state)], *n as f64);
        }
        let lateness = w.family(
            "expiry_lateness_seconds",
            "How long after its end each expired grant was applied.",
            Kind::Histogram,
        );
        w.histogram(&lateness, &[], &r.expiry_lateness);
        let findings = w.family(
            "audit_findings",
            "Findings of the latest audit report by kind.",
            Kind::Gauge,
        );
        for (kind, n) in &r.audit_findings {
            w.sample(&findings, &[("kind", kind)], *n as f64);
        }
        w.finish()
    }
}

/// `GET /path` into its method and template.
fn split_key(key: &str) -> (&str, &str) {
    key.split_once(' ').unwrap_or(("GET", key))
}

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (names end in `_total`).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Cumulative buckets, a sum and a count.
    Histogram,
}

/// A declared family: samples can only be written to a family whose header was written.
#[derive(Debug)]
pub struct Family(String);

/// Writes the Prometheus text format.
#[derive(Debug, Default)]
pub struct TextWriter {
    out: String,
}

impl TextWriter {
    /// Declares a family (`# HELP` and `# TYPE`); `name` is without the program's prefix.
    pub fn family(&mut self, name: &str, help: &str, kind: Kind) -> Family {
        let full = format!("{PREFIX}_{name}");
        debug_assert!(kind != Kind::Counter || full.ends_with("_total"));
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {full} {help}");
        let _ = writeln!(self.out, "# TYPE {full} {kind}");
        Family(full)
    }

    /// One sample of a counter or gauge.
    pub fn sample(&mut self, family: &Family, labels: &[(&str, &str)], value: f64) {
        self.line(&family.0, "", labels, None, value);
    }

    fn histogram(&mut self, family: &Family, labels: &[(&str, &str)], h: &Histogram) {
        let mut cumulative = 0u64;
        for (bound, n) in h.bounds.iter().zip(&h.counts) {
            cumulative += n;
            self.line(
                &family.0,
                "_bucket",
                labels,
                Some(&format_value(*bound)),
                cumulative as f64,
            );
        }
        self.line(&family.0, "_bucket", labels, Some("+Inf"), h.count as f64);
        self.line(&family.0, "_sum", labels, None, h.sum);
        self.line(&family.0, "_count", labels, None, h.count as f64);
    }

    fn line(
        &mut self,
        name: &str,
        suffix: &str,
        labels: &[(&str, &str)],
        le: Option<&str>,
        value: f64,
    ) {
        let mut parts: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
            .collect();
        if let Some(le) = le {
            parts.push(format!("le=\"{le}\""));
        }
        let labels = if parts.is_empty() {
            String::new()
        } else {
            format!("{{{}}}", parts.join(","))
        };
        let _ = writeln!(self.out, "{name}{suffix}{labels} {}", format_value(value));
    }

    /// The text written.
    pub fn finish(self) -> String {
        self.out
    }
}

/// A label value with `\`, `"` and newlines escaped, as the format requires.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn format_value(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped_and_histograms_are_cumulative() {
        let metrics = Metrics::default();
        metrics.record_sync("a\"b", SyncResult::Complete, 3.0);
        metrics.record_sync("a\"b", SyncResult::Partial, 100.0);
        let text = metrics.render(&Scrape::default());
        assert!(text.contains(
            "bitbucket_access_sync_runs_total{workspace=\"a\\\"b\",outcome=\"complete\"} 1"
        ));
        assert!(text.contains(
            "bitbucket_access_sync_duration_seconds_bucket{workspace=\"a\\\"b\",le=\"5\"} 1"
        ));
        assert!(text.contains(
            "bitbucket_access_sync_duration_seconds_bucket{workspace=\"a\\\"b\",le=\"300\"} 2"
        ));
        assert!(text.contains(
            "bitbucket_access_sync_duration_seconds_bucket{workspace=\"a\\\"b\",le=\"+Inf\"} 2"
        ));
        assert!(
            text.contains("bitbucket_access_sync_duration_seconds_sum{workspace=\"a\\\"b\"} 103")
        );
    }

    #[test]
    fn the_expiry_and_audit_hooks_show_in_their_families() {
        let metrics = Metrics::default();
        metrics.observe_expiry_lateness(0.2);
        metrics.observe_expiry_lateness(40.0);
        metrics.set_audit_findings(BTreeMap::from([("outsider".to_owned(), 3)]));
        let text = metrics.render(&Scrape::default());
        assert!(text.contains("bitbucket_access_expiry_lateness_seconds_bucket{le=\"0.5\"} 1"));
        assert!(text.contains("bitbucket_access_expiry_lateness_seconds_count 2"));
        assert!(text.contains("bitbucket_access_audit_findings{kind=\"outsider\"} 3"));
    }
}
