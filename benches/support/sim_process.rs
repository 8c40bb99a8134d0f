//! The simulator in its own process and the measurements of this process, shared by the
//! benchmarks (`sync`, `audit`): the simulator's memory is then not counted in this process's
//! peak.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitbucket_access::bitbucket::{Auth, BitbucketClient, Budget, BudgetSettings, ClientSettings};
use secrecy::SecretString;

/// The shape of a simulated world, as `bitbucket-sim` flags.
pub struct Shape {
    pub workspaces: usize,
    pub projects: usize,
    pub repositories: usize,
    pub users: usize,
    pub groups_per_workspace: usize,
}

/// 5,000 repositories, 2,000 users, 200 groups (50 in each of 4 workspaces).
pub const FULL: Shape = Shape {
    workspaces: 4,
    projects: 10,
    repositories: 5_000,
    users: 2_000,
    groups_per_workspace: 50,
};

// ---------------------------------------------------------------------------------------------
// The simulator process.

/// A running `bitbucket-sim`; killed when dropped.
pub struct SimProcess {
    pub child: Child,
    pub url: url::Url,
    pub email: String,
    pub token: String,
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The simulator binary: `BITBUCKET_SIM_BIN`, else built by cargo (release) and located from
/// cargo's own report of the artifact, so the benchmark works from a fresh clone.
pub fn sim_binary() -> Result<PathBuf, String> {
    if let Ok(bin) = std::env::var("BITBUCKET_SIM_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("building bitbucket-sim (release)...");
    let out = Command::new(cargo)
        .args([
            "build",
            "--release",
            "-p",
            "bitbucket-sim",
            "--bin",
            "bitbucket-sim",
            "--message-format=json-render-diagnostics",
        ])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run cargo to build bitbucket-sim: {e}"))?;
    if !out.status.success() {
        return Err("cargo build -p bitbucket-sim failed".into());
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "bitbucket-sim")
        .filter_map(|m| m["executable"].as_str().map(PathBuf::from))
        .next_back()
        .ok_or_else(|| "cargo built bitbucket-sim but did not report its executable".into())
}

/// Starts the simulator with `shape`, reads its URL and credentials from its banner, and waits
/// until it answers an authenticated request.
pub async fn start_sim(
    bin: &PathBuf,
    shape: &Shape,
    latency: Duration,
) -> Result<SimProcess, String> {
    let mut child = Command::new(bin)
        .args(["--port", "0", "--jira-port", "0", "--seed", "2026"])
        .args(["--workspaces", &shape.workspaces.to_string()])
        .args(["--projects", &shape.projects.to_string()])
        .args(["--repositories", &shape.repositories.to_string()])
        .args(["--users", &shape.users.to_string()])
        .args(["--groups", &shape.groups_per_workspace.to_string()])
        .args(["--latency-ms", &latency.as_millis().to_string()])
        // High enough that the simulator's own rate limit never answers 429.
        .args(["--rate-limit", "100000000", "--owner-of-all"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = mpsc::channel();
    // The reader keeps draining the simulator's output so that it never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut proc = SimProcess {
        child,
        url: url::Url::parse("http://127.0.0.1/").map_err(|e| e.to_string())?,
        email: String::new(),
        token: String::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut url = None;
    while url.is_none() || proc.email.is_empty() || proc.token.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .map_err(|_| "the simulator did not print its banner within 60 s".to_string())?;
        let field = |name: &str| {
            line.trim()
                .strip_prefix(name)
                .map(|rest| rest.trim().to_string())
        };
        if let Some(u) = field("bitbucket url:") {
            url = Some(url::Url::parse(&u).map_err(|e| format!("bad simulator url {u}: {e}"))?);
        } else if let Some(e) = field("admin email:") {
            proc.email = e;
        } else if let Some(t) = field("admin token:") {
            proc.token = t;
        }
    }
    proc.url = url.ok_or("no url")?;

    let http = reqwest::Client::new();
    let probe = proc.url.join("2.0/user").map_err(|e| e.to_string())?;
    loop {
        let answer = http
            .get(probe.clone())
            .basic_auth(&proc.email, Some(&proc.token))
            .send()
            .await;
        if matches!(&answer, Ok(r) if r.status().is_success()) {
            return Ok(proc);
        }
        if Instant::now() > deadline {
            return Err(format!("the simulator at {} does not answer", proc.url));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Measurements of this process.

/// User plus system CPU time of this process, from `/proc/self/stat` (clock ticks of 10 ms).
pub fn cpu_time() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    // Fields after the command name (which may contain spaces) start at field 3, `state`;
    // `utime` and `stime` are fields 14 and 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse().ok())
        .collect();
    Duration::from_millis(fields.iter().sum::<u64>() * 10)
}

/// Peak resident memory of this process in MiB (`VmHWM`).
pub fn peak_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Resets the peak so that each sync's own peak is measured; false when the kernel refuses.
pub fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

pub fn client_for(sim: &SimProcess, budget: Arc<Budget>) -> Result<BitbucketClient, String> {
    let settings = ClientSettings {
        budget: budget.settings(),
        ..ClientSettings::new(
            sim.url.clone(),
            Auth::ApiToken {
                email: sim.email.clone(),
                token: SecretString::from(sim.token.clone()),
            },
        )
    };
    BitbucketClient::builder(settings)
        .budget(budget)
        .build()
        .map_err(|e| e.to_string())
}

/// A budget that never paces: ten million requests an hour.
pub fn unpaced_budget() -> Arc<Budget> {
    Arc::new(Budget::new(BudgetSettings {
        requests_per_hour: 10_000_000,
        reserve: 0,
        max_in_flight: 8,
    }))
}
