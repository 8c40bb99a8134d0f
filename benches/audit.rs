//! The audit benchmark: the sync benchmark's world (5,000 repositories, 2,000 users, 200
//! groups in 4 workspaces; the simulator in its own process) synced into SQLite, then one audit
//! of every workspace: the report built from the store (the matrix streamed a batch of
//! repositories at a time), written in every format (JSON, CSV, Markdown, HTML) and stored.
//! Prints the wall time (and when the report was built and written), the size of each format
//! and the peak memory of this process during the audit (`VmHWM`, reset before it where the
//! kernel allows), each target with PASS or FAIL, and exits non-zero when a target is missed.
//!
//! Run: `cargo bench --bench audit` (builds `bitbucket-sim` in release mode first). Set
//! `BITBUCKET_SIM_BIN` to use an already built simulator.

use std::time::{Duration, Instant};

use bitbucket_access::audit::{self, AuditSettings};
use bitbucket_access::cli::audit::{write_report_blocking, OutputFormat};
use bitbucket_access::clock::SystemClock;
use bitbucket_access::config::{Config, DatabaseUrl, GrantPolicy};
use bitbucket_access::store;
use bitbucket_access::sync::{self, SyncOptions};
use secrecy::SecretString;

#[path = "support/sim_process.rs"]
mod sim_process;
use sim_process::*;

/// Targets of issue 13, on this machine.
const MAX_AUDIT_TIME: Duration = Duration::from_secs(10);
const MAX_AUDIT_PEAK_MIB: f64 = 300.0;

/// Every format: the matrix goes into the JSON, the matrix CSV, the Markdown and the HTML page
/// (capped) at once.
const FORMATS: [OutputFormat; 4] = [
    OutputFormat::Json,
    OutputFormat::Csv,
    OutputFormat::Md,
    OutputFormat::Html,
];

async fn bench() -> Result<bool, String> {
    let bin = sim_binary()?;
    let sim = start_sim(&bin, &FULL, Duration::ZERO).await?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store = store::open(&url).await.map_err(|e| e.to_string())?;
    let client = client_for(&sim, unpaced_budget())?;
    let t0 = Instant::now();
    let options = SyncOptions {
        cross_check_sample: 0,
        ..SyncOptions::default()
    };
    sync::run(store.as_ref(), &client, &options)
        .await
        .map_err(|e| format!("sync failed: {e}"))?;
    println!(
        "synced {} repositories in {:.1} s",
        FULL.repositories,
        t0.elapsed().as_secs_f64()
    );

    let config = Config::for_simulator(
        sim.url.clone(),
        sim.email.clone(),
        SecretString::from(sim.token.clone()),
        None,
        DatabaseUrl::parse(&url, dir.path()).map_err(|e| e.to_string())?,
    );
    let settings = AuditSettings {
        workspaces: Vec::new(),
        policy: config.audit_policy.clone(),
        grant_policy: GrantPolicy::default(),
    };
    let reset = reset_peak();
    let cpu0 = cpu_time();
    let t0 = Instant::now();
    let audit = audit::build(store.as_ref(), &SystemClock, &settings)
        .await
        .map_err(|e| format!("audit failed: {e}"))?;
    let built = t0.elapsed();
    let out = dir.path().join("reports");
    let (audit, files) = write_report_blocking(audit, out, FORMATS.to_vec()).await?;
    let written = t0.elapsed();
    audit::record(store.as_ref(), &audit, files.clone())
        .await
        .map_err(|e| format!("storing the report failed: {e}"))?;
    let wall = t0.elapsed();
    let cpu = cpu_time().saturating_sub(cpu0);
    let peak = peak_mib();

    println!(
        "audit of {} workspaces: {} access rows, {} administrators, {} findings",
        audit.workspaces.len(),
        audit.summary.access_rows,
        audit.administrators.len(),
        audit.summary.findings,
    );
    println!(
        "  built (counts, findings, matrix hash) in {:.2} s, files written by {:.2} s, stored by {:.2} s",
        built.as_secs_f64(),
        written.as_secs_f64(),
        wall.as_secs_f64()
    );
    for (name, suffix) in [
        ("JSON", ".json"),
        ("CSV (all sections)", ".csv"),
        ("Markdown", ".md"),
        ("HTML", ".html"),
    ] {
        let bytes: u64 = files
            .iter()
            .filter(|f| f.path.ends_with(suffix))
            .filter_map(|f| std::fs::metadata(&f.path).ok())
            .map(|m| m.len())
            .sum();
        println!("  {name}: {:.1} MiB", bytes as f64 / 1_048_576.0);
    }
    let time_ok = wall <= MAX_AUDIT_TIME;
    let peak_ok = peak <= MAX_AUDIT_PEAK_MIB;
    let verdict = |ok: bool| if ok { "PASS" } else { "FAIL" };
    println!(
        "  time: {:.2} s (CPU {:.2} s), target < {} s: {}",
        wall.as_secs_f64(),
        cpu.as_secs_f64(),
        MAX_AUDIT_TIME.as_secs(),
        verdict(time_ok)
    );
    println!(
        "  peak memory: {peak:.0} MiB{}, target < {MAX_AUDIT_PEAK_MIB:.0} MiB: {}",
        if reset {
            ""
        } else {
            " (includes the sync: the kernel refused to reset the peak)"
        },
        verdict(peak_ok)
    );
    Ok(time_ok && peak_ok)
}

fn main() {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            std::process::exit(2);
        }
    };
    match runtime.block_on(bench()) {
        Ok(true) => println!("all targets met"),
        Ok(false) => {
            println!("FAILED targets");
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
}
