//! `bitbucket-access validate`: loads the config, checks it against the schema and the semantic
//! rules, and prints a summary without any secret. No network access.

use super::{load_config, Cli, EXIT_OK};
use crate::config::{format_duration, Backend, Config};

/// Options of `validate`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Validates the config; exit 0 when usable, 2 with every problem listed otherwise.
pub async fn run(cli: &Cli, _args: &Args) -> u8 {
    let config = match load_config(cli) {
        Ok(config) => config,
        Err(code) => return code,
    };
    println!("config OK: {}", cli.config.display());
    for (label, value) in summary(&config) {
        println!("  {label:<15} {value}");
    }
    EXIT_OK
}

fn list<T: AsRef<str>>(items: &[T]) -> String {
    items
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The settings in effect, one line each; secrets appear only as "set".
pub fn summary(config: &Config) -> Vec<(&'static str, String)> {
    let jira = match &config.jira {
        Some(j) => format!("{} as {} (key set, hidden)", j.url, j.user),
        None => "not configured (identity matching uses Bitbucket and the overrides file)".into(),
    };
    let workspaces = if config.workspaces.is_empty() {
        "every workspace the account administers".into()
    } else {
        list(&config.workspaces)
    };
    let backend = match config.database_url.backend() {
        Backend::Sqlite => "SQLite",
        Backend::Postgres => "PostgreSQL",
    };
    let g = &config.grant_policy;
    let levels: Vec<&str> = g.allowed_levels.iter().map(|l| l.as_str()).collect();
    let a = &config.audit_policy;
    let formats: Vec<&str> = a.report_formats.iter().map(|f| f.as_str()).collect();
    let limit = |n: Option<u32>| n.map_or("no limit".to_string(), |n| n.to_string());
    let b = &config.request_budget;
    vec![
        ("account:", format!("{} (API token set, hidden)", config.bitbucket_email())),
        ("jira:", jira),
        ("workspaces:", workspaces),
        ("store:", format!("{} ({backend})", config.database_url)),
        (
            "schedules:",
            format!(
                "sync \"{}\", audit \"{}\", expiry \"{}\" (time zone {}{})",
                config.schedules.sync.expression(),
                config.schedules.audit.expression(),
                config.schedules.expiry.expression(),
                config.schedules.time_zone,
                if config.schedules.time_zone.is_named() {
                    ", daylight-saving time followed"
                } else {
                    ""
                }
            ),
        ),
        (
            "grant policy:",
            format!(
                "default {}, max {}, levels {}; standing grants {}; ticket {}",
                format_duration(g.default_duration),
                format_duration(g.max_duration),
                levels.join(", "),
                if g.allow_standing_grants { "allowed" } else { "refused" },
                if g.require_ticket { "required" } else { "optional" }
            ),
        ),
        (
            "audit policy:",
            format!(
                "email domains {}; admins per repository {}; workspace owners {}; unmatched accounts {}; grace {}; formats {} in {}",
                if a.allowed_email_domains.is_empty() { "not checked".to_string() } else { list(&a.allowed_email_domains) },
                limit(a.max_admins_per_repository),
                limit(a.max_workspace_owners),
                if a.flag_unmatched_accounts { "flagged" } else { "not flagged" },
                format_duration(a.expired_grant_grace),
                formats.join(", "),
                a.report_dir.display()
            ),
        ),
        (
            "request budget:",
            format!("{} requests/hour, {} reserved, {} in flight", b.requests_per_hour, b.reserve, b.max_in_flight),
        ),
        (
            "bitbucket api:",
            format!(
                "{} (connect timeout {}, read timeout {})",
                config.api.bitbucket_url,
                format_duration(config.api.connect_timeout),
                format_duration(config.api.read_timeout)
            ),
        ),
        (
            "server:",
            format!(
                "{} ({})",
                config.server.listen,
                if config.server.api_token.is_some() { "API token set, hidden" } else { "no API token" }
            ),
        ),
        (
            "identity:",
            match &config.identity.overrides_file {
                Some(path) => format!("overrides from {}", path.display()),
                None => "no overrides file".into(),
            },
        ),
    ]
}
