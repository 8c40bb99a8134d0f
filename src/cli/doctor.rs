//! `bitbucket-access doctor [--format table|json]`: the "Test Connection" of the connector.
//!
//! Loads the config, builds the Bitbucket and Jira clients, runs [`crate::doctor::run`] and
//! prints the report: a table for people, or the report as JSON. Exit 0 when everything the
//! config asks for will work, 1 when the report lists a problem, 2 for a config that cannot be
//! loaded or clients that cannot be built. Nothing printed contains a secret: the report holds
//! the account e-mail and never a token.

use super::{load_config, Cli, EXIT_FAILURE, EXIT_OK, EXIT_USAGE};
use crate::clock::SystemClock;
use crate::connect;
use crate::doctor::{self, CapabilityState, DoctorReport, Problem};
use crate::http::RetryPolicy;
use serde::Serialize;
use std::fmt::Write as _;

/// How the report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// A readable report.
    #[default]
    Table,
    /// The report as one JSON document.
    Json,
}

/// Options of `doctor`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// How to print the report.
    #[arg(long, value_enum, default_value_t = Format::Table, value_name = "FORMAT")]
    pub format: Format,
}

/// The JSON document: the report with its verdict, so scripts need not recompute it.
#[derive(Serialize)]
struct JsonReport<'a> {
    healthy: bool,
    #[serde(flatten)]
    report: &'a DoctorReport,
}

/// Runs every check and prints the report; exit 0 when healthy, 1 otherwise.
pub async fn run(cli: &Cli, args: &Args) -> u8 {
    let config = match load_config(cli) {
        Ok(config) => config,
        Err(code) => return code,
    };
    // A person is waiting: tell them about a rate limit within seconds instead of retrying
    // for minutes.
    let bitbucket = match connect::bitbucket_client_with(&config, RetryPolicy::interactive()) {
        Ok(client) => client,
        Err(error) => {
            eprintln!("error: cannot set up the Bitbucket client: {error}");
            return EXIT_USAGE;
        }
    };
    // A token that works only through the API gateway (a scoped token) is used there; any
    // other refusal is left for the Jira check to explain on the site client.
    let (jira, route) = match connect::jira_connect(&config, RetryPolicy::interactive()).await {
        Some(Ok((client, route))) => (Some(client), Some(route)),
        _ => match connect::jira_client_with(&config, RetryPolicy::interactive()) {
            None => (None, None),
            Some(Ok(client)) => (Some(client), None),
            Some(Err(error)) => {
                eprintln!("error: cannot set up the Jira client: {error}");
                return EXIT_USAGE;
            }
        },
    };
    let mut report = doctor::run(&config, &bitbucket, jira.as_ref()).await;
    if let (Some(check), Some(route)) = (report.jira.as_mut(), route) {
        check.route = Some(route.to_string());
    }
    if let Err(error) = doctor::org::run(&mut report, &config, &SystemClock).await {
        eprintln!("error: cannot set up the Organizations API client: {error}");
        return EXIT_USAGE;
    }
    let printed = match args.format {
        Format::Table => Ok(render_table(&report, config.api.bitbucket_url.as_str())),
        Format::Json => serde_json::to_string_pretty(&JsonReport {
            healthy: report.healthy(),
            report: &report,
        })
        .map(|json| json + "\n"),
    };
    match printed {
        Ok(text) => print!("{text}"),
        Err(error) => {
            eprintln!("error: cannot print the report: {error}");
            return EXIT_FAILURE;
        }
    }
    if report.healthy() {
        EXIT_OK
    } else {
        EXIT_FAILURE
    }
}

fn yes_no(value: bool) -> &'static str {
    if value {
        "yes"
    } else {
        "no"
    }
}

/// The capability's state in a few words, with the scopes to add when some are missing.
fn describe(state: &CapabilityState) -> String {
    match state {
        CapabilityState::Ready => "ready".into(),
        CapabilityState::MissingScopes { scopes } => {
            format!("missing scopes: add {}", scopes.join(", "))
        }
        CapabilityState::NotAdministrator => "not an administrator where it must be".into(),
        CapabilityState::Unverified { reason } => format!("unverified: {reason}"),
        CapabilityState::NotConfigured { reason } => format!("not configured: {reason}"),
    }
}

fn write_findings(out: &mut String, title: &str, findings: &[Problem]) {
    let _ = writeln!(out, "\n{title} ({}):", findings.len());
    for (n, finding) in findings.iter().enumerate() {
        let _ = writeln!(out, "  {}. {}", n + 1, finding.what);
        let _ = writeln!(out, "     fix: {}", finding.fix);
    }
}

/// The report as people read it.
pub fn render_table(report: &DoctorReport, bitbucket_url: &str) -> String {
    let mut out = String::new();
    let auth = &report.authentication;
    let _ = writeln!(out, "Bitbucket {bitbucket_url}");
    if auth.ok {
        let who = match (&auth.display_name, &auth.account_id) {
            (Some(name), Some(id)) => format!("{name} (account {id})"),
            (Some(name), None) => name.clone(),
            (None, Some(id)) => format!("account {id}"),
            (None, None) => "an account whose profile the token cannot read".into(),
        };
        let _ = writeln!(
            out,
            "  authentication  OK: {} authenticates as {who}",
            auth.email
        );
    } else {
        let _ = writeln!(
            out,
            "  authentication  FAILED for {}: {}",
            auth.email,
            auth.error.as_deref().unwrap_or("refused")
        );
    }

    let _ = writeln!(out, "\nWorkspaces:");
    if report.workspaces.is_empty() {
        let _ = writeln!(out, "  (none could be listed)");
    } else {
        let width = report
            .workspaces
            .iter()
            .map(|w| w.slug.chars().count())
            .max()
            .unwrap_or(0)
            .max("WORKSPACE".len());
        let _ = writeln!(out, "  {:<width$}  VISIBLE  ADMIN  MANAGED", "WORKSPACE");
        for w in &report.workspaces {
            let _ = writeln!(
                out,
                "  {:<width$}  {:<7}  {:<5}  {}",
                w.slug,
                yes_no(w.visible),
                yes_no(w.administrator),
                yes_no(w.managed)
            );
        }
    }

    let _ = writeln!(out, "\nCapabilities:");
    let width = report
        .capabilities
        .iter()
        .map(|c| c.id.chars().count())
        .max()
        .unwrap_or(0);
    for c in &report.capabilities {
        let _ = writeln!(out, "  {:<width$}  {}", c.id, describe(&c.state));
    }

    match &report.jira {
        None => {
            let _ = writeln!(
                out,
                "\nJira: not configured (e-mail addresses come from Bitbucket and the overrides file)"
            );
        }
        Some(jira) if jira.ok => {
            let _ = writeln!(
                out,
                "\nJira {}: OK as {}",
                jira.url,
                jira.display_name.as_deref().unwrap_or("an unnamed account")
            );
            if let Some(route) = &jira.route {
                let _ = writeln!(out, "  reached through {route}");
            }
            match (jira.emails_visible, jira.people_sampled) {
                (Some(visible), Some(sampled)) => {
                    let _ = writeln!(
                        out,
                        "  e-mail addresses visible for {visible} of {sampled} people sampled"
                    );
                }
                _ => {
                    let _ = writeln!(
                        out,
                        "  users could not be listed: {}",
                        jira.error.as_deref().unwrap_or("unknown error")
                    );
                }
            }
        }
        Some(jira) => {
            let _ = writeln!(
                out,
                "\nJira {}: FAILED: {}",
                jira.url,
                jira.error.as_deref().unwrap_or("refused")
            );
        }
    }

    if let Some(org) = &report.org {
        let state = if org.ok { "OK" } else { "FAILED" };
        let _ = writeln!(out, "\nAtlassian organization {}: {state}", org.org_id);
        if org.ok {
            let _ = writeln!(out, "  linked workspaces     {}", org.linked.join(", "));
            let _ = writeln!(out, "  not linked            {}", org.unlinked.join(", "));
            let _ = writeln!(
                out,
                "  Bitbucket events seen {}",
                yes_no(org.bitbucket_events)
            );
        }
    }

    let b = &report.budget;
    let _ = writeln!(out, "\nRequest budget:");
    let _ = writeln!(out, "  per hour          {}", b.requests_per_hour);
    let _ = writeln!(out, "  reserve           {}", b.reserve);
    let _ = writeln!(out, "  usable per hour   {}", b.usable_per_hour);
    let _ = writeln!(out, "  in flight at most {}", b.max_in_flight);
    let _ = writeln!(out, "  used by doctor    {}", b.requests_used_by_doctor);

    let store = &report.store;
    let state = |ok: bool| if ok { "yes" } else { "NO" };
    let _ = writeln!(out, "\nStore {}:", store.url);
    let _ = writeln!(
        out,
        "  reachable           {}",
        state(store.health.reachable)
    );
    let _ = writeln!(
        out,
        "  writable            {}",
        state(store.health.writable)
    );
    let _ = writeln!(
        out,
        "  migrations current  {}",
        state(store.health.migrations_current)
    );
    if let Some(note) = &store.health.note {
        let _ = writeln!(out, "  note                {note}");
    }

    if !report.warnings.is_empty() {
        write_findings(&mut out, "Warnings", &report.warnings);
    }
    if report.problems.is_empty() {
        let _ = writeln!(
            out,
            "\nNo problems: everything the config asks for will work."
        );
    } else {
        write_findings(&mut out, "Problems", &report.problems);
    }
    out
}
