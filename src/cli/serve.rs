//! `bitbucket-access serve`: runs the scheduled jobs and the health and metrics endpoints until
//! SIGTERM or SIGINT (see [`crate::serve`]).

use std::sync::Arc;
use std::time::Duration;

use super::{load_config, open_store_and_client, Cli, EXIT_FAILURE, EXIT_OK, EXIT_USAGE};
use crate::config::parse_duration;
use crate::serve::{ServeError, ServeOptions};

/// Options of `serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// How long a job's lease (and a sync run's) lasts without renewal: another instance takes
    /// a dead instance's job over about this long after it died. Renewed every quarter of it.
    #[arg(long, default_value = "60s", value_parser = duration_arg, value_name = "DURATION")]
    pub lease: Duration,
    /// How long SIGTERM or SIGINT waits for the running job before abandoning it (a sync run
    /// is resumed by the next sync).
    #[arg(long, default_value = "30s", value_parser = duration_arg, value_name = "DURATION")]
    pub shutdown_grace: Duration,
    /// `/readyz` fails when a workspace's last finished sync is older than this (default:
    /// three sync periods, at least 1h).
    #[arg(long, value_parser = duration_arg, value_name = "DURATION")]
    pub max_sync_age: Option<Duration>,
    /// The first retry's delay after a job fails (doubling with each further failure).
    #[arg(long, default_value = "30s", value_parser = duration_arg, value_name = "DURATION")]
    pub retry_after: Duration,
}

fn duration_arg(text: &str) -> Result<Duration, String> {
    parse_duration(text)
}

/// Runs until a signal; exit 0 after a clean shutdown, 1 when it cannot start, 2 on a bad
/// config.
pub async fn run(cli: &Cli, args: &Args) -> u8 {
    let config = match load_config(cli) {
        Ok(c) => Arc::new(c),
        Err(code) => return code,
    };
    if args.lease < Duration::from_secs(2) {
        eprintln!("error: --lease must be at least 2s (it is renewed every quarter of it)");
        return EXIT_USAGE;
    }
    let (store, client) = match open_store_and_client(&config).await {
        Ok(both) => both,
        Err(code) => return code,
    };
    let mut options = ServeOptions::for_config(&config);
    options.lease = crate::sync::LeaseSettings {
        lease: args.lease,
        heartbeat: args.lease / 4,
    };
    options.shutdown_grace = args.shutdown_grace;
    options.max_sync_age = args.max_sync_age;
    options.retry_base = args.retry_after;
    let running = match crate::serve::start(config, store, client, options).await {
        Ok(r) => r,
        Err(e @ ServeError::Lease(_)) | Err(e @ ServeError::Listen { .. }) => {
            eprintln!("error: {e}");
            return EXIT_FAILURE;
        }
    };
    eprintln!("serving on http://{}", running.local_addr());
    match shutdown_signal().await {
        Ok(name) => tracing::info!(signal = name, "stopping"),
        Err(e) => {
            eprintln!("error: cannot listen for signals: {e}");
            running.shutdown().await;
            return EXIT_FAILURE;
        }
    }
    let report = running.shutdown().await;
    if !report.abandoned.is_empty() {
        eprintln!(
            "stopped; abandoned after the grace period: {} (resumable)",
            report.abandoned.join(", ")
        );
    }
    EXIT_OK
}

/// Waits for SIGTERM or SIGINT and names it.
async fn shutdown_signal() -> std::io::Result<&'static str> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::select! {
            _ = term.recv() => Ok("SIGTERM"),
            _ = int.recv() => Ok("SIGINT"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await?;
        Ok("Ctrl-C")
    }
}
