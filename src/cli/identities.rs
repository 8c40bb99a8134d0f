//! `bitbucket-access identities [--unmatched] [--format table|json|csv]`: every account with the
//! person's email and where it came from; `identities refresh` runs a matching pass now;
//! `identities import PEOPLE.csv` resolves an IdP's list of people through Bitbucket's member
//! email filter.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::output::{render, Format, Rows};
use super::{load_config, Cli, EXIT_FAILURE, EXIT_OK, EXIT_USAGE};
use crate::clock::Clock;
use crate::config::Config;
use crate::domain::{AccountId, AccountKind, AccountType, Conflict, IdentitySource, WorkspaceSlug};
use crate::http::RetryPolicy;
use crate::identity::{self, sources, Sources};
use crate::jira::{JiraClient, JiraRoute};
use crate::org::OrgClient;
use crate::store::{OpenMode, Store};

/// Options of `identities`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Refresh or import instead of listing.
    #[command(subcommand)]
    pub action: Option<Action>,
    /// List only accounts no source matched to a person (app accounts without an email are
    /// not listed: no person stands behind them).
    #[arg(long)]
    pub unmatched: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table, global = true)]
    pub format: Format,
}

/// What `identities` does besides listing.
#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Match every stored account now (the override file, the organization's managed accounts,
    /// Jira, earlier member look-ups).
    Refresh,
    /// Resolve an IdP export (CSV with an `email` column) to accounts through Bitbucket's
    /// member email filter (workspace administrators only), at most 90 addresses per request.
    Import {
        /// The CSV file of people.
        people: PathBuf,
    },
}

/// One row of the listing; these field names are the JSON and CSV interface.
#[derive(Debug, Serialize)]
pub struct IdentityRow {
    /// The account.
    pub account_id: String,
    /// Its display name.
    pub display_name: String,
    /// The person's email, if matched.
    pub email: Option<String>,
    /// Where the email came from.
    pub source: IdentitySource,
    /// When the match was made; `None` for an account never matched.
    pub matched_at: Option<DateTime<Utc>>,
    /// Whether Jira says the account is active.
    pub active: Option<bool>,
    /// The kind of account.
    pub account_type: AccountType,
    /// What does not add up.
    pub conflicts: Vec<Conflict>,
}

const HEADER: &[&str] = &[
    "account_id",
    "display_name",
    "email",
    "source",
    "matched_at",
    "active",
    "account_type",
    "conflicts",
];

/// Runs `identities`.
pub async fn run(cli: &Cli, args: &Args) -> u8 {
    let config = match load_config(cli) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match &args.action {
        None => list(&config, args).await,
        Some(Action::Refresh) => refresh(&config).await,
        Some(Action::Import { people }) => import(&config, people).await,
    }
}

async fn list(config: &Config, args: &Args) -> u8 {
    // Listing never writes: a read-only file works, and a store behind the schema is refused.
    let Some(store) = open_store(config, OpenMode::ReadOnly).await else {
        return EXIT_FAILURE;
    };
    let rows = match identity_rows(store.as_ref()).await {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_FAILURE;
        }
    };
    let rows: Vec<IdentityRow> = rows
        .into_iter()
        .filter(|r| !args.unmatched || r.source == IdentitySource::Unmatched)
        .collect();
    print!("{}", render_rows(args.format, &rows));
    EXIT_OK
}

/// The store, or `None` after saying why it cannot be opened.
async fn open_store(config: &Config, mode: OpenMode) -> Option<std::sync::Arc<dyn Store>> {
    match crate::store::open_with(&config.database_url, mode).await {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("error: cannot open the store: {e}");
            None
        }
    }
}

/// Every stored account with its identity, accounts never matched shown as `unmatched` (or
/// `app` when Bitbucket says it is an app user).
pub async fn identity_rows(
    store: &dyn Store,
) -> Result<Vec<IdentityRow>, crate::store::StoreError> {
    let names: BTreeMap<AccountId, (String, AccountKind)> = store
        .accounts()
        .await?
        .into_iter()
        .map(|a| (a.account_id, (a.display_name, a.kind)))
        .collect();
    let mut identities: BTreeMap<AccountId, crate::domain::Identity> = store
        .identities()
        .await?
        .into_iter()
        .map(|i| (i.account_id.clone(), i))
        .collect();
    let mut ids: Vec<AccountId> = names.keys().cloned().collect();
    ids.extend(
        identities
            .keys()
            .filter(|k| !names.contains_key(*k))
            .cloned(),
    );
    ids.sort();
    Ok(ids
        .into_iter()
        .map(|id| {
            let (display_name, kind) = names.get(&id).cloned().unwrap_or_default();
            let app = kind == AccountKind::AppUser;
            match identities.remove(&id) {
                Some(i) => IdentityRow {
                    account_id: id.to_string(),
                    display_name,
                    email: i.email,
                    source: i.source,
                    matched_at: Some(i.matched_at),
                    active: i.active,
                    account_type: i.account_type,
                    conflicts: i.conflicts,
                },
                None => IdentityRow {
                    account_id: id.to_string(),
                    display_name,
                    email: None,
                    source: if app {
                        IdentitySource::App
                    } else {
                        IdentitySource::Unmatched
                    },
                    matched_at: None,
                    active: None,
                    account_type: if app {
                        AccountType::App
                    } else {
                        AccountType::Unknown
                    },
                    conflicts: Vec::new(),
                },
            }
        })
        .collect())
}

/// Renders identity rows in a format.
pub fn render_rows(format: Format, rows: &[IdentityRow]) -> String {
    let cells = rows
        .iter()
        .map(|r| {
            vec![
                r.account_id.clone(),
                r.display_name.clone(),
                r.email.clone().unwrap_or_default(),
                r.source.to_string(),
                r.matched_at
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    .unwrap_or_default(),
                r.active.map(|a| a.to_string()).unwrap_or_default(),
                r.account_type.as_str().to_owned(),
                r.conflicts
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            ]
        })
        .collect();
    let table = Rows {
        header: HEADER,
        rows: cells,
        json: &rows,
    };
    render(format, &table).unwrap_or_else(|e| format!("error: {e}\n"))
}

/// What a matching pass asks besides the store, built from the config.
pub struct Setup {
    /// The connected Jira client, if configured and usable.
    pub jira: Option<JiraClient>,
    /// The route Jira is reached on.
    pub route: Option<JiraRoute>,
    /// Why Jira is configured but not usable.
    pub jira_problem: Option<String>,
    /// The override file's entries.
    pub overrides: Option<BTreeMap<AccountId, String>>,
    /// The Organizations API client, when `atlassian_admin` is configured.
    pub org: Option<OrgClient>,
    /// Why `atlassian_admin` is configured but its client could not be built.
    pub org_problem: Option<String>,
}

impl Setup {
    /// The sources a pass may ask.
    pub fn sources(&self) -> Sources<'_> {
        Sources {
            jira: self.jira.as_ref(),
            jira_problem: self.jira_problem.as_deref(),
            overrides: self.overrides.as_ref(),
            org: self.org.as_ref(),
            org_problem: self.org_problem.as_deref(),
        }
    }
}

/// Reads the override file, connects Jira and builds the Organizations API client (a Jira or
/// organization failure is kept as the reason it is not read; an unusable override file is an
/// error, since it would silently undo every override). `ask` is false for a pass that asks
/// neither Jira nor the organization (an import).
pub async fn setup(config: &Config, ask: bool) -> Result<Setup, String> {
    let overrides = match &config.identity.overrides_file {
        Some(path) => Some(read_overrides(path)?),
        None => None,
    };
    let (jira, route, jira_problem) = if ask {
        match crate::connect::jira_connect(config, RetryPolicy::default()).await {
            None => (None, None, None),
            Some(Ok((client, route))) => (Some(client), Some(route), None),
            Some(Err(e)) => (None, None, Some(e.to_string())),
        }
    } else {
        (None, None, None)
    };
    let (org, org_problem) = match crate::connect::org_client_with(config, RetryPolicy::default()) {
        Some(Ok(client)) if ask => (Some(client), None),
        Some(Err(e)) if ask => (None, Some(e.to_string())),
        _ => (None, None),
    };
    Ok(Setup {
        jira,
        route,
        jira_problem,
        overrides,
        org,
        org_problem,
    })
}

fn read_text(path: &Path, what: &str) -> Result<String, String> {
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("cannot read the {what} {}: {e}", path.display()))?;
    if meta.len() > sources::MAX_FILE_BYTES as u64 {
        return Err(format!(
            "the {what} {} is larger than {} MiB",
            path.display(),
            sources::MAX_FILE_BYTES / (1024 * 1024)
        ));
    }
    let bytes = std::fs::read(path)
        .map_err(|e| format!("cannot read the {what} {}: {e}", path.display()))?;
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
        format!(
            "the {what} {} is not UTF-8 text (line {line}); save it as UTF-8 and try again",
            path.display()
        )
    })
}

fn read_overrides(path: &Path) -> Result<BTreeMap<AccountId, String>, String> {
    let text = read_text(path, "override file")?;
    sources::parse_overrides(&path.display().to_string(), &text).map_err(|e| e.to_string())
}

/// Runs a matching pass if one is due, after a sync, at the time of the sync's `clock`; says
/// what it did on standard error and returns its report (`None` when not due or it could not
/// run). Never fails the sync: a problem is reported and the matches stay as they were.
pub async fn refresh_if_due(
    config: &Config,
    store: &dyn Store,
    clock: &dyn Clock,
) -> Option<identity::RefreshReport> {
    let now = clock.now();
    match identity::is_due(
        store,
        config.identity.refresh_interval,
        config.jira.is_some(),
        now,
    )
    .await
    {
        Ok(true) => {}
        Ok(false) => return None,
        Err(e) => {
            eprintln!("warning: identity matching skipped: {e}");
            return None;
        }
    }
    let setup = match setup(config, true).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("warning: identity matching skipped: {e}");
            return None;
        }
    };
    match identity::refresh(store, setup.sources(), now).await {
        Ok(report) => {
            eprintln!("{}", report.summary());
            if let Some(warning) = report.override_warning() {
                eprintln!("{warning}");
            }
            Some(report)
        }
        Err(e) => {
            eprintln!("warning: identity matching failed, matches unchanged: {e}");
            None
        }
    }
}

async fn refresh(config: &Config) -> u8 {
    let Some(store) = open_store(config, OpenMode::ReadWrite).await else {
        return EXIT_FAILURE;
    };
    let setup = match setup(config, true).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    if let Some(route) = &setup.route {
        eprintln!("Jira: through {route}");
    }
    match identity::refresh(store.as_ref(), setup.sources(), Utc::now()).await {
        Ok(report) => {
            println!("{}", report.summary());
            if let Some(warning) = report.override_warning() {
                eprintln!("{warning}");
            }
            let jira_ok = report.jira_read || config.jira.is_none();
            let org_ok = report.org_read || config.atlassian_admin.is_none();
            if jira_ok && org_ok {
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

async fn import(config: &Config, people: &Path) -> u8 {
    let emails = match read_text(people, "people file").and_then(|t| {
        sources::parse_people(&people.display().to_string(), &t).map_err(|e| e.to_string())
    }) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let Some(store) = open_store(config, OpenMode::ReadWrite).await else {
        return EXIT_FAILURE;
    };
    let client = match crate::connect::bitbucket_client(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_FAILURE;
        }
    };
    let workspaces = match workspaces(config, store.as_ref()).await {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_FAILURE;
        }
    };
    let setup = match setup(config, false).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    match identity::import_people(
        store.as_ref(),
        &client,
        &workspaces,
        &emails,
        setup.sources(),
        Utc::now(),
    )
    .await
    {
        Ok(report) => {
            println!(
                "imported {} address(es): {} resolved to accounts, {} held by no member",
                report.emails,
                report.resolved,
                report.not_found.len()
            );
            for (email, account) in &report.matches {
                println!("  {email} -> {account}");
            }
            println!("{}", report.pass.summary());
            if let Some(warning) = report.pass.override_warning() {
                eprintln!("{warning}");
            }
            EXIT_OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_FAILURE
        }
    }
}

/// The workspaces to ask: the config's, else every stored one.
pub async fn workspaces(config: &Config, store: &dyn Store) -> Result<Vec<WorkspaceSlug>, String> {
    if !config.workspaces.is_empty() {
        return config
            .workspaces
            .iter()
            .map(|w| WorkspaceSlug::parse(w.clone()).map_err(|e| e.to_string()))
            .collect();
    }
    store
        .workspaces()
        .await
        .map(|list| list.into_iter().map(|w| w.slug).collect())
        .map_err(|e| e.to_string())
}
