//! The command line: `bitbucket-access [--config PATH] [--log-format text|json] <command>`.
//!
//! Each command lives in its own file with an `Args` struct and a `run` function; this module
//! holds the global options, the [`Command`] enum and the dispatch. Exit codes are part of the
//! interface: 0 success, 1 failure or findings, 2 bad usage or a bad config.

mod access;
pub mod audit;
mod audit_files;
mod demo;
mod doctor;
pub(crate) mod grants;
pub mod identities;
mod manifest;
mod migrate;
pub mod output;
mod serve;
mod sync;
mod sync_events;
mod validate;
pub mod webhook;

use crate::config::{Config, ConfigError, DEFAULT_CONFIG_PATH};
use crate::telemetry::LogFormat;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit status for success.
pub const EXIT_OK: u8 = 0;
/// Exit status for a failure, or for findings the user must act on.
pub const EXIT_FAILURE: u8 = 1;
/// Exit status for bad usage or a bad config.
pub const EXIT_USAGE: u8 = 2;

/// Access governance for Bitbucket Cloud: sync, explain, grant and audit repository access.
#[derive(Debug, Parser)]
#[command(name = "bitbucket-access", version, about, propagate_version = true)]
pub struct Cli {
    /// Path of the JSON config file.
    #[arg(long, global = true, env = "BITBUCKET_ACCESS_CONFIG", default_value = DEFAULT_CONFIG_PATH, value_name = "PATH")]
    pub config: PathBuf,

    /// How log lines on standard error are written (RUST_LOG sets the level, default info).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, value_name = "FORMAT")]
    pub log_format: LogFormat,

    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the config file against the schema and its rules, without any network access.
    Validate(validate::Args),
    /// Print the connector manifest (connector.json).
    Manifest(manifest::Args),
    /// Test the connection: credentials, workspaces, token scopes, Jira and the request budget.
    Doctor(doctor::Args),
    /// Apply the store's migrations (SQLite or PostgreSQL, from `database_url`).
    Migrate(migrate::Args),
    /// Read the managed workspaces' access into the store, within the request budget.
    Sync(sync::Args),
    /// Run the scheduled jobs (sync, identity refresh, audit, expiry) with /healthz, /readyz
    /// and /metrics on server.listen, until SIGTERM or SIGINT.
    Serve(serve::Args),
    /// Explain effective access from the store: `access repo WS/REPO`, `access user ID|EMAIL`.
    Access(access::Args),
    /// Every account with the person's email, its source and conflicts; refresh or import.
    Identities(identities::Args),
    /// Give a user or group a level on a repository or project (or a place in a group), for a
    /// while; what stood before comes back at the end.
    Grant(grants::GrantArgs),
    /// Register (`install`) or remove (`uninstall`) the workspace webhooks that send
    /// repository and project changes to serve's /webhooks/bitbucket.
    Webhook(webhook::Args),
    /// End a grant early (`revoke GRANT_ID`), or remove a standing permission the connector did
    /// not create (`revoke --user U --repo WS/REPO`).
    Revoke(grants::RevokeArgs),
    /// List grants: in force and unfinished by default, `--active`, or `--all`.
    Grants(grants::ListArgs),
    /// End the grants that are due (one pass), or keep doing so with `--watch`.
    Expire(grants::ExpireArgs),
    /// Write the permission audit report from the store; `audit verify` checks its history.
    Audit(audit::Args),
    /// Try everything on a built-in simulated Bitbucket, no account or config needed.
    Demo(demo::Args),
}

/// Runs the parsed command line and returns the process exit code.
pub async fn run(cli: Cli) -> ExitCode {
    let code = match &cli.command {
        Command::Validate(args) => validate::run(&cli, args).await,
        Command::Manifest(args) => manifest::run(&cli, args).await,
        Command::Doctor(args) => doctor::run(&cli, args).await,
        Command::Migrate(args) => migrate::run(&cli, args).await,
        Command::Sync(args) if args.events => sync_events::run(&cli, args).await,
        Command::Sync(args) => sync::run(&cli, args).await,
        Command::Serve(args) => serve::run(&cli, args).await,
        Command::Access(args) => access::run(&cli, args).await,
        Command::Identities(args) => identities::run(&cli, args).await,
        Command::Grant(args) => grants::run_grant(&cli, args).await,
        Command::Webhook(args) => webhook::run(&cli, args).await,
        Command::Revoke(args) => grants::run_revoke(&cli, args).await,
        Command::Grants(args) => grants::run_list(&cli, args).await,
        Command::Expire(args) => grants::run_expire(&cli, args).await,
        Command::Audit(args) => audit::run(&cli, args).await,
        Command::Demo(args) => demo::run(&cli, args).await,
    };
    ExitCode::from(code)
}

/// Loads the config named on the command line, or prints every problem to standard error and
/// returns the exit code the command should end with.
pub fn load_config(cli: &Cli) -> Result<Config, u8> {
    match Config::load(&cli.config) {
        Ok(config) => Ok(config),
        Err(error) => {
            report_config_error(&cli.config, &error);
            Err(EXIT_USAGE)
        }
    }
}

/// Opens the store read-write and builds the Bitbucket client (for `sync` and `serve`), or
/// prints why not and returns the exit code.
pub async fn open_store_and_client(
    config: &Config,
) -> Result<
    (
        std::sync::Arc<dyn crate::store::Store>,
        crate::bitbucket::BitbucketClient,
    ),
    u8,
> {
    let store = match crate::store::open(config.database_url.expose_url()).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot open the store: {e}");
            return Err(EXIT_FAILURE);
        }
    };
    match crate::connect::bitbucket_client(config) {
        Ok(client) => Ok((store, client)),
        Err(e) => {
            eprintln!("error: {e}");
            Err(EXIT_FAILURE)
        }
    }
}

fn report_config_error(path: &std::path::Path, error: &ConfigError) {
    match error {
        ConfigError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "error: no config file at {} (pass --config PATH or set BITBUCKET_ACCESS_CONFIG)",
                path.display()
            );
        }
        ConfigError::Read { .. } => eprintln!("error: {error}"),
        ConfigError::Invalid { problems } => {
            let n = problems.len();
            eprintln!(
                "error: the config {} has {n} problem{}:",
                path.display(),
                if n == 1 { "" } else { "s" }
            );
            for problem in problems {
                eprintln!("  {problem}");
            }
        }
    }
}
