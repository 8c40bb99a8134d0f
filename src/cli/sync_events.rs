//! `bitbucket-access sync --events`: applies the Atlassian organization's pending audit-log
//! events once, as `serve` does every `atlassian_admin.poll_interval`, and prints what it did.

use std::collections::BTreeSet;

use super::{load_config, open_store_and_client, Cli, EXIT_FAILURE, EXIT_OK, EXIT_USAGE};
use crate::domain::WorkspaceSlug;
use crate::store::MassChangeGuard;
use crate::sync::events::{apply_pending, EventsOptions, EventsReport};

/// Applies the pending events. Exit 0 when every event was applied (or there was none, or
/// another instance is applying them), 1 when something could not be read now (the same
/// events are read again next time) or the pass failed, 2 without `atlassian_admin`.
pub async fn run(cli: &Cli, args: &super::sync::Args) -> u8 {
    let config = match load_config(cli) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let org = match crate::connect::org_client_with(&config, crate::http::RetryPolicy::default()) {
        None => {
            eprintln!("error: sync --events reads the Atlassian organization's audit log: add an atlassian_admin block (org_id, api_key or api_key_file) to the config, or run sync without --events");
            return EXIT_USAGE;
        }
        Some(Err(e)) => {
            eprintln!("error: {e}");
            return EXIT_FAILURE;
        }
        Some(Ok(org)) => org,
    };
    let (store, client) = match open_store_and_client(&config).await {
        Ok(both) => both,
        Err(code) => return code,
    };
    let names = if args.workspaces.is_empty() {
        config.workspaces.clone()
    } else {
        args.workspaces.clone()
    };
    let mut managed = BTreeSet::new();
    for name in names {
        match WorkspaceSlug::parse(name.clone()) {
            Ok(ws) => {
                managed.insert(ws);
            }
            Err(e) => {
                eprintln!("error: workspace {name:?}: {e}");
                return EXIT_USAGE;
            }
        }
    }
    let options = EventsOptions {
        managed,
        mass_change: MassChangeGuard {
            max_percent: config.mass_change_guard.max_percent,
            min_count: config.mass_change_guard.min_count,
            accept: args.accept_mass_change,
        },
        ..EventsOptions::default()
    };
    match apply_pending(store.as_ref(), &client, &org, &options).await {
        Ok(report) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).unwrap_or_default()
                );
            } else {
                print!("{}", summary(&report));
            }
            if report.retry {
                EXIT_FAILURE
            } else {
                EXIT_OK
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_FAILURE
        }
    }
}

/// The human summary of a pass.
pub fn summary(r: &EventsReport) -> String {
    let mut s = format!("organization events: {}\n", r.summary());
    for u in &r.unknown {
        s += &format!(
            "  unknown action {} (event {}): refreshed {}\n",
            u.action,
            u.event_id,
            u.targets
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let Some(refresh) = &r.refresh {
        s += &format!(
            "  refresh: {} target(s) came to {} read(s), {} stored; {} inserted, {} updated, {} deleted\n",
            refresh.targets, refresh.reads, refresh.stored, refresh.inserted, refresh.updated, refresh.deleted
        );
        for d in &refresh.deferred {
            s += &format!("  deferred (the rolling hour's allowance): {d}\n");
        }
        for f in &refresh.failures {
            s += &format!("  failed: {}: {}\n", f.listing, f.error);
        }
        for h in &refresh.held {
            s += &format!(
                "  held by sync run {} of {}: {}\n",
                h.run, h.owner, h.workspace
            );
        }
    }
    match (&r.cursor_after, r.cursor_moved) {
        (Some(c), true) => s += &format!("  cursor moved to {c}\n"),
        (_, _) if r.lost_race => s += "  another instance moved the cursor meanwhile\n",
        _ => {}
    }
    s
}
