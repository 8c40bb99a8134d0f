//! `bitbucket-access sync`: reads the managed workspaces into the store.

use super::{load_config, open_store_and_client, Cli, EXIT_FAILURE, EXIT_OK};
use crate::store::MassChangeGuard;
use crate::sync::{format_age, SyncOptions, SyncReport};
use std::io::IsTerminal;

/// Options of `sync`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Sync only this workspace (repeatable); default: the config's `workspaces`, else every
    /// workspace the account administers.
    #[arg(long = "workspace", value_name = "WS")]
    pub workspaces: Vec<String>,
    /// Spend at most this many requests in this run.
    #[arg(long, value_name = "N")]
    pub max_requests: Option<u64>,
    /// Repositories per workspace to cross-check against Bitbucket's effective permissions.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub cross_check: usize,
    /// Print the run's report as JSON instead of a summary.
    #[arg(long)]
    pub json: bool,
    /// Apply listings that would remove most of what the store holds for them (held back by
    /// default, see the summary).
    #[arg(long)]
    pub accept_mass_change: bool,
    /// When the rolling hour's allowance cannot pay for every listing, wait for it to free
    /// requests and finish the deferred listings (the log says how long), instead of leaving
    /// them to the next run. Ctrl-C stops the run; the next sync resumes it.
    #[arg(long)]
    pub wait: bool,
    /// Apply the Atlassian organization's pending audit-log events once (needs
    /// `atlassian_admin`): refresh only what they name, each drift record with who made it,
    /// and print what was done.
    #[arg(long, conflicts_with_all = ["wait", "max_requests"])]
    pub events: bool,
}

/// Runs a sync. Exit 0 when every listing was read, 1 when some were deferred (the rolling hour
/// could not pay for them and `--wait` was not given) or failed or the cross-check disagreed
/// with Bitbucket. A workspace held by another live run is skipped and
/// named, and is not a failure.
pub async fn run(cli: &Cli, args: &Args) -> u8 {
    let config = match load_config(cli) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let (store, client) = match open_store_and_client(&config).await {
        Ok(both) => both,
        Err(code) => return code,
    };
    let workspaces = if args.workspaces.is_empty() {
        config.workspaces.clone()
    } else {
        args.workspaces.clone()
    };
    let options = SyncOptions {
        workspaces,
        max_requests: args.max_requests,
        cross_check_sample: args.cross_check,
        progress: std::io::stderr().is_terminal(),
        mass_change: MassChangeGuard {
            max_percent: config.mass_change_guard.max_percent,
            min_count: config.mass_change_guard.min_count,
            accept: args.accept_mass_change,
        },
        wait: args.wait,
        ..SyncOptions::default()
    };
    match crate::sync::run(store.as_ref(), &client, &options).await {
        Ok(report) => {
            // Identity matching follows a sync when due; it never changes the sync's outcome.
            super::identities::refresh_if_due(&config, store.as_ref(), options.clock.as_ref())
                .await;
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).unwrap_or_default()
                );
            } else {
                print!("{}", summary(&report));
            }
            if report.failures.is_empty()
                && report.findings.is_empty()
                && report.mass_changes_held.is_empty()
                && report.workspaces.iter().all(|w| w.listings_deferred == 0)
            {
                EXIT_OK
            } else {
                EXIT_FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_FAILURE
        }
    }
}

/// The human summary of a run.
pub fn summary(r: &SyncReport) -> String {
    let mut s = String::new();
    let resumed = if r.resumed {
        " (resumed an interrupted run)"
    } else {
        ""
    };
    s += &format!("sync run {}{resumed}: {:?}\n", r.run, r.outcome);
    for w in &r.workspaces {
        let entities: Vec<String> = w.entities.iter().map(|(k, v)| format!("{v} {k}")).collect();
        s += &format!(
            "  {}: {}; {} listings read, {} deferred{}\n",
            w.workspace,
            entities.join(", "),
            w.listings_read,
            w.listings_deferred,
            if w.groups_available {
                ""
            } else {
                "; groups unavailable (1.0 API)"
            }
        );
        if let Some(note) = &w.group_permissions_note {
            s += &format!("    {note}\n");
        }
    }
    for h in &r.held {
        s += &format!(
            "  {}: held by run {} (owner {}), skipped\n",
            h.workspace, h.run, h.owner
        );
    }
    for h in &r.mass_changes_held {
        s += &format!(
            "  {}: held back: it would remove {} of the {} stored facts; the stored facts stay. \
             If Bitbucket really lost them, run `bitbucket-access sync --accept-mass-change`\n",
            h.listing, h.would_remove, h.stored
        );
    }
    s += &format!(
        "  changes: {} inserted, {} updated, {} deleted; {} drift events; {} rows written\n",
        r.inserted, r.updated, r.deleted, r.drift, r.rows_written
    );
    s += &format!(
        "  requests: {} used, {} for a complete read at 100 per page\n",
        r.requests_used, r.minimum_requests
    );
    let age = r
        .oldest_fact_age_seconds
        .map(format_age)
        .unwrap_or_else(|| "-".into());
    s += &format!(
        "  oldest fact: {age}; listings never read: {}\n",
        r.never_read
    );
    s += &format!(
        "  cross-check: {} repositories, {} disagreements\n",
        r.cross_checked,
        r.findings.len()
    );
    for f in &r.findings {
        s += &format!(
            "    {} {}: computed {}, Bitbucket {}\n",
            f.repository,
            f.account_id,
            f.computed.as_deref().unwrap_or("none"),
            f.bitbucket.as_deref().unwrap_or("none")
        );
    }
    for f in &r.failures {
        s += &format!("  not read: {}: {}\n", f.listing, f.error);
    }
    let deferred: u64 = r.workspaces.iter().map(|w| w.listings_deferred).sum();
    if deferred > 0 {
        s += &format!(
            "  deferred: {deferred} listings did not fit in what the rolling hour still allows; \
             the next sync reads them first, or run `sync --wait` to wait for the allowance\n"
        );
    }
    s += &format!("  duration: {} ms\n", r.duration_ms);
    s
}
