//! Shared set-up of the `serve` tests: configs for the simulator, a job runner that records
//! what it ran (and can hold a job or make it fail), a check of the Prometheus text format, and
//! `serve` processes of the real binary whose log is collected as they run.

#![allow(dead_code)]

use bitbucket_access::clock::{Clock, ManualClock};
use bitbucket_access::config::{Config, CronSchedule, DatabaseUrl};
use bitbucket_access::serve::lease::Leases;
use bitbucket_access::serve::{Job, JobError, JobOutcome, JobRunner};
use bitbucket_access::store::Store;
use bitbucket_access::sync::LeaseSettings;
use bitbucket_sim::SimHandle;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use secrecy::SecretString;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use url::Url;

/// A time as RFC 3339.
pub fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("an RFC 3339 time")
        .with_timezone(&Utc)
}

/// A cron schedule.
pub fn cron(expression: &str) -> CronSchedule {
    CronSchedule::parse(expression).expect("a valid cron expression")
}

/// A config for the simulator's service account on the store at `url`.
pub fn sim_config(
    sim: &SimHandle,
    url: &str,
    workspaces: &[String],
    requests_per_hour: u32,
) -> Config {
    let mut config = Config::for_simulator(
        Url::parse(&sim.bitbucket_url()).expect("simulator url"),
        sim.admin_email(),
        SecretString::from(sim.admin_token()),
        None,
        DatabaseUrl::parse(url, Path::new(".")).expect("database url"),
    );
    config.workspaces = workspaces.to_vec();
    config.request_budget.requests_per_hour = requests_per_hour;
    config.request_budget.reserve = 0;
    config.request_budget.max_in_flight = 2;
    config.server.listen = "127.0.0.1:0".parse().expect("an address");
    config
}

// ----- A job runner that records -----

/// What a [`Recorder`] does when asked to run a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Done at once.
    Succeed,
    /// Fails at once.
    Fail,
    /// Waits for a permit of the gate, then is done.
    Gated,
}

/// Records every run (job name and the clock's time when it started), counts how many run at
/// once, and behaves as told.
pub struct Recorder {
    pub clock: ManualClock,
    pub runs: Mutex<Vec<(String, DateTime<Utc>)>>,
    pub running: AtomicUsize,
    pub most_at_once: AtomicUsize,
    pub behaviour: Mutex<Behaviour>,
    pub gate: Arc<Semaphore>,
    pub entered: AtomicBool,
}

impl Recorder {
    pub fn new(clock: ManualClock, behaviour: Behaviour) -> Arc<Self> {
        Arc::new(Recorder {
            clock,
            runs: Mutex::new(Vec::new()),
            running: AtomicUsize::new(0),
            most_at_once: AtomicUsize::new(0),
            behaviour: Mutex::new(behaviour),
            gate: Arc::new(Semaphore::new(0)),
            entered: AtomicBool::new(false),
        })
    }

    pub fn set(&self, behaviour: Behaviour) {
        *self.behaviour.lock().unwrap() = behaviour;
    }

    /// The runs so far.
    pub fn runs(&self) -> Vec<(String, DateTime<Utc>)> {
        self.runs.lock().unwrap().clone()
    }

    /// The times `job` started.
    pub fn times_of(&self, job: &str) -> Vec<DateTime<Utc>> {
        self.runs()
            .into_iter()
            .filter(|(j, _)| j == job)
            .map(|(_, t)| t)
            .collect()
    }

    /// Waits (at most 10 s) until `n` runs were recorded.
    pub async fn wait_for_runs(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.runs.lock().unwrap().len() < n {
            assert!(
                Instant::now() < deadline,
                "expected {n} runs, saw {:?}",
                self.runs()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// Lets a shared recorder be the runner of several schedulers.
pub struct Shared(pub Arc<Recorder>);

impl JobRunner for Shared {
    fn run<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, Result<JobOutcome, JobError>> {
        Box::pin(async move {
            let r = &self.0;
            r.runs.lock().unwrap().push((job.name(), r.clock.now()));
            let now_running = r.running.fetch_add(1, Ordering::SeqCst) + 1;
            r.most_at_once.fetch_max(now_running, Ordering::SeqCst);
            let behaviour = *r.behaviour.lock().unwrap();
            let out = match behaviour {
                Behaviour::Succeed => Ok(JobOutcome::Done {
                    detail: "recorded".into(),
                }),
                Behaviour::Fail => Err(JobError::Identity("the test made it fail".into())),
                Behaviour::Gated => {
                    r.entered.store(true, Ordering::SeqCst);
                    r.gate.acquire().await.expect("gate open").forget();
                    Ok(JobOutcome::Done {
                        detail: "released".into(),
                    })
                }
            };
            r.running.fetch_sub(1, Ordering::SeqCst);
            out
        })
    }
}

// ----- The Prometheus text format -----

/// One sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Parses the text format strictly: every sample belongs to a family declared by `# HELP` and
/// `# TYPE` before it (histogram samples as `_bucket`, `_sum`, `_count`), names and label names
/// are valid, label values are properly quoted and escaped, values are numbers, counters end in
/// `_total`, and histogram buckets are cumulative with `+Inf` equal to `_count`.
pub fn parse_prometheus(text: &str) -> Result<Vec<Sample>, String> {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut helped: Vec<String> = Vec::new();
    let mut samples = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let at = |m: String| format!("line {}: {m}: {line}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or("");
            if !valid_name(name) {
                return Err(at("bad family name".into()));
            }
            helped.push(name.to_owned());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .ok_or_else(|| at("TYPE without a type".into()))?;
            if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                return Err(at("unknown type".into()));
            }
            if types.insert(name.to_owned(), kind.to_owned()).is_some() {
                return Err(at("family declared twice".into()));
            }
            if kind == "counter" && !name.ends_with("_total") {
                return Err(at("counter name without _total".into()));
            }
            if helped.last().map(String::as_str) != Some(name) {
                return Err(at("TYPE not right after its HELP".into()));
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (name, rest) = match line.find(['{', ' ']) {
            Some(i) => line.split_at(i),
            None => return Err(at("no value".into())),
        };
        if !valid_name(name) {
            return Err(at("bad metric name".into()));
        }
        let family = types
            .keys()
            .find(|f| {
                name == f.as_str()
                    || (types[*f] == "histogram"
                        && ["_bucket", "_sum", "_count"]
                            .iter()
                            .any(|s| name == format!("{f}{s}")))
            })
            .ok_or_else(|| at("sample of an undeclared family".into()))?;
        let _ = family;
        let mut labels = BTreeMap::new();
        let mut rest = rest;
        if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.char_indices().peekable();
            let end;
            loop {
                // label name
                let mut key = String::new();
                while let Some((_, c)) = chars.peek().copied() {
                    if c == '=' || c == '}' {
                        break;
                    }
                    key.push(c);
                    chars.next();
                }
                match chars.next() {
                    Some((i, '}')) if key.is_empty() => {
                        end = Some(i);
                        break;
                    }
                    Some((_, '=')) => {}
                    _ => return Err(at("bad label".into())),
                }
                if !valid_name(&key) {
                    return Err(at(format!("bad label name {key:?}")));
                }
                if chars.next().map(|(_, c)| c) != Some('"') {
                    return Err(at("label value not quoted".into()));
                }
                let mut value = String::new();
                loop {
                    match chars.next() {
                        Some((_, '\\')) => match chars.next() {
                            Some((_, '\\')) => value.push('\\'),
                            Some((_, '"')) => value.push('"'),
                            Some((_, 'n')) => value.push('\n'),
                            _ => return Err(at("bad escape".into())),
                        },
                        Some((_, '"')) => break,
                        Some((_, c)) => value.push(c),
                        None => return Err(at("unterminated label value".into())),
                    }
                }
                if labels.insert(key, value).is_some() {
                    return Err(at("label given twice".into()));
                }
                match chars.next() {
                    Some((_, ',')) => continue,
                    Some((i, '}')) => {
                        end = Some(i);
                        break;
                    }
                    _ => return Err(at("expected , or }".into())),
                }
            }
            let end = end.ok_or_else(|| at("unterminated labels".into()))?;
            rest = &body[end + 1..];
        }
        let value_text = rest
            .strip_prefix(' ')
            .ok_or_else(|| at("no space before the value".into()))?;
        let value = match value_text {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v
                .parse::<f64>()
                .map_err(|_| at("value is not a number".into()))?,
        };
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    check_histograms(&types, &samples)?;
    Ok(samples)
}

fn check_histograms(types: &BTreeMap<String, String>, samples: &[Sample]) -> Result<(), String> {
    for (family, _) in types.iter().filter(|(_, k)| k.as_str() == "histogram") {
        let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        let mut counts: BTreeMap<String, f64> = BTreeMap::new();
        for s in samples {
            let mut others = s.labels.clone();
            let le = others.remove("le");
            let key = format!("{others:?}");
            if s.name == format!("{family}_bucket") {
                let le = le.ok_or("a bucket without le")?;
                let bound = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().map_err(|_| "bad le")?
                };
                series.entry(key).or_default().push((bound, s.value));
            } else if s.name == format!("{family}_count") {
                counts.insert(key, s.value);
            }
        }
        for (key, buckets) in series {
            let mut last = (f64::NEG_INFINITY, 0.0);
            for (bound, v) in &buckets {
                if *bound <= last.0 || *v < last.1 {
                    return Err(format!("{family}{key}: buckets not increasing"));
                }
                last = (*bound, *v);
            }
            if last.0 != f64::INFINITY || counts.get(&key) != Some(&last.1) {
                return Err(format!(
                    "{family}{key}: +Inf bucket missing or not equal to _count"
                ));
            }
        }
    }
    Ok(())
}

/// The sum of the samples named `name` whose labels include every pair of `with`.
pub fn sum(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            with.iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

// ----- `serve` processes of the real binary -----

/// A `serve` process whose standard error is collected while it runs.
pub struct ServeProcess {
    pub child: Child,
    pub log: Arc<Mutex<String>>,
}

impl ServeProcess {
    /// Starts `bitbucket-access --config CONFIG serve ARGS` in `dir`.
    pub fn spawn(sim: &SimHandle, dir: &Path, config: &Path, args: &[&str]) -> ServeProcess {
        let mut child = Command::new(assert_cmd::cargo::cargo_bin("bitbucket-access"))
            .current_dir(dir)
            .env_remove("BITBUCKET_ACCESS_CONFIG")
            .env("RUST_LOG", "info")
            .env("BB_TOKEN", sim.admin_token())
            .arg("--config")
            .arg(config)
            .arg("serve")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("serve starts");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        ServeProcess { child, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits (in real time, at most `limit`) until the log contains `text`.
    pub async fn wait_for_log(&self, text: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.log().contains(text) {
            assert!(
                Instant::now() < deadline,
                "no {text:?} in the log within {limit:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends a signal (`TERM`, `KILL`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} {}", self.pid());
    }

    /// Waits (at most `limit`) for the exit code; `None` when killed by a signal.
    pub async fn wait(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "serve did not exit within {limit:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        // A failed test must not leave the process running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A config file for the real binary: the simulator's account (token from `$BB_TOKEN`), the
/// store at `url`, the given workspaces and schedules.
pub fn write_config(
    sim: &SimHandle,
    dir: &Path,
    url: &str,
    workspaces: &[String],
    sync_cron: &str,
) -> PathBuf {
    let path = dir.join("bitbucket-access.json");
    let config = serde_json::json!({
        "email": sim.admin_email(),
        "app_token": "${BB_TOKEN}",
        "database_url": url,
        "workspaces": workspaces,
        "schedules": {"sync": sync_cron, "audit": "0 0 6 * * *", "expiry": "0 * * * * *"},
        "request_budget": {"requests_per_hour": 100000, "reserve": 0, "max_in_flight": 1},
        "api": {"bitbucket_url": sim.bitbucket_url()},
        "server": {"listen": "127.0.0.1:0"},
    });
    std::fs::write(&path, config.to_string()).expect("write config");
    path
}

/// Waits (at most 10 s) until `n` tasks sleep on the manual clock.
pub async fn asleep(clock: &ManualClock, n: usize) {
    if tokio::time::timeout(Duration::from_secs(10), clock.wait_for_sleepers(n))
        .await
        .is_err()
    {
        panic!("{n} sleepers expected, {} asleep", clock.sleepers());
    }
}

/// The clock as an `Arc<dyn Clock>`.
pub fn dyn_clock(clock: &ManualClock) -> Arc<dyn Clock> {
    Arc::new(clock.clone())
}

/// Leases of an hour: the tests move the manual clock by minutes while the heartbeats (in real
/// time) do not get a chance to renew, and a lease that passed would rightly let the other
/// instance in.
pub fn leases(store: &Arc<dyn Store>, clock: &ManualClock) -> Leases {
    Leases::new(
        Arc::clone(store),
        dyn_clock(clock),
        LeaseSettings {
            lease: Duration::from_secs(3600),
            heartbeat: Duration::from_secs(900),
        },
    )
}
