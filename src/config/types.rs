//! The typed config: the sections a loaded config holds, their defaults and their redacting
//! `Debug` impls. Building these from the raw JSON happens in `validate.rs`.

use super::database_url::DatabaseUrl;
use super::raw::{ApiRole, ReportFormat};
pub use super::zone::ScheduleZone;
use super::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT};
use crate::domain::ProjectLevel;
use secrecy::SecretString;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;
use url::Url;

/// A loaded, validated config.
pub struct Config {
    /// The file the config came from, when it came from a file.
    pub source: Option<PathBuf>,
    /// Email of the Atlassian account that owns the API token (the Basic-auth user name).
    pub email: String,
    /// The Atlassian API token.
    pub app_token: SecretString,
    /// Jira credentials for identity matching, when configured.
    pub jira: Option<JiraCredentials>,
    /// Workspace slugs to manage; empty means every workspace the token's account administers.
    pub workspaces: Vec<String>,
    /// The store.
    pub database_url: DatabaseUrl,
    /// When `serve` runs its jobs.
    pub schedules: Schedules,
    /// Limits on grants.
    pub grant_policy: GrantPolicy,
    /// What audits flag.
    pub audit_policy: AuditPolicy,
    /// How many Bitbucket requests may be spent.
    pub request_budget: RequestBudget,
    /// When a sync holds back a listing that would remove most of its stored facts.
    pub mass_change_guard: MassChangeLimits,
    /// API endpoints and timeouts.
    pub api: ApiSettings,
    /// The HTTP API of `serve`.
    pub server: ServerSettings,
    /// Identity matching.
    pub identity: IdentitySettings,
    /// The Atlassian organization (Organizations API), when configured.
    pub atlassian_admin: Option<AtlassianAdmin>,
}

/// The Organizations REST API's default base.
pub const DEFAULT_ADMIN_URL: &str = "https://api.atlassian.com/admin";

/// How often `serve` polls the organization's events, unless `poll_interval` says.
pub const DEFAULT_ORG_POLL_INTERVAL: Duration = Duration::from_secs(60);

/// `atlassian_admin`: an organization API key (Bearer) and where to use it.
pub struct AtlassianAdmin {
    /// The organization's id (from admin.atlassian.com).
    pub org_id: String,
    /// The organization API key.
    pub api_key: SecretString,
    /// The API's base, `https://api.atlassian.com/admin` unless a proxy or test says.
    pub url: Url,
    /// How often the events stream is polled.
    pub poll_interval: Duration,
}

impl fmt::Debug for AtlassianAdmin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AtlassianAdmin")
            .field("org_id", &self.org_id)
            .field("api_key", &"[redacted]")
            .field("url", &self.url.as_str())
            .field("poll_interval", &self.poll_interval)
            .finish()
    }
}

/// Jira Cloud credentials (Basic `user:key`).
pub struct JiraCredentials {
    /// The Jira site, such as `https://acme.atlassian.net`.
    pub url: Url,
    /// Email of the account that owns the Jira API token.
    pub user: String,
    /// The Jira API token.
    pub key: SecretString,
    /// Atlassian's API gateway, where scoped tokens work (default `https://api.atlassian.com`).
    pub gateway_url: Url,
}

/// A cron expression, parsed.
#[derive(Clone)]
pub struct CronSchedule {
    expression: String,
    schedule: cron::Schedule,
}

impl CronSchedule {
    /// Parses an expression in the `cron` crate's syntax (six or seven fields, seconds first).
    pub fn parse(expression: &str) -> Result<CronSchedule, String> {
        let fields = expression.split_whitespace().count();
        if fields == 5 {
            return Err(format!(
                "has 5 fields, but schedules need 6 with seconds first (sec min hour day-of-month month day-of-week), for example \"0 {}\"",
                expression.trim()
            ));
        }
        cron::Schedule::from_str(expression)
            .map(|schedule| CronSchedule { expression: expression.to_string(), schedule })
            .map_err(|e| {
                let text = e.to_string();
                let detail = last_line(&text);
                let detail = restate_bound(detail).unwrap_or_else(|| detail.to_string());
                format!("is not a valid cron expression ({detail}); write six fields with seconds first, such as \"0 0 6 * * Mon-Fri\"")
            })
    }

    /// The expression as written.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The parsed schedule, for computing the next run times (in UTC).
    pub fn schedule(&self) -> &cron::Schedule {
        &self.schedule
    }
}

impl fmt::Debug for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CronSchedule({:?})", self.expression)
    }
}

/// The last non-empty line of a parser message: the cron crate's errors start with the input and
/// a caret line, which read badly inside a one-line problem.
fn last_line(text: &str) -> &str {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(text)
        .trim()
}

/// The inclusive range of each cron field, by the name the cron crate gives it.
const CRON_FIELDS: [(&str, &str, u32, u32); 7] = [
    ("Seconds", "seconds", 0, 59),
    ("Minutes", "minutes", 0, 59),
    ("Hours", "hours", 0, 23),
    ("Days of Month", "day of month", 1, 31),
    ("Months", "month", 1, 12),
    ("Days of Week", "day of week", 1, 7),
    ("Years", "year", 1970, 2100),
];

/// Rewrites the cron crate's out-of-range messages, which state an exclusive-sounding bound
/// ("Minutes must be less than 59" while 59 is accepted), to state the real inclusive range.
fn restate_bound(detail: &str) -> Option<String> {
    if let Some(rest) = detail.strip_prefix("Invalid range for ") {
        let (field, range) = rest.split_once(": ")?;
        let &(_, name, min, max) = CRON_FIELDS.iter().find(|(n, ..)| *n == field)?;
        return Some(format!(
            "the {name} range {range} must lie within {min}–{max} and start at or before its end"
        ));
    }
    let (field, rest) = detail.split_once(" must be ")?;
    let &(_, name, min, max) = CRON_FIELDS.iter().find(|(n, ..)| *n == field)?;
    let given = rest
        .split_once("('")
        .and_then(|(_, v)| v.split_once('\''))
        .map(|(v, _)| v)?;
    if rest.starts_with("between 1 and") {
        return Some(format!(
            "the step of {name} must be 1–{max} ({given} given)"
        ));
    }
    Some(format!("{name} must be {min}–{max} ({given} given)"))
}

/// `schedules`.
#[derive(Debug, Clone)]
pub struct Schedules {
    /// When to sync Bitbucket into the store.
    pub sync: CronSchedule,
    /// When to write the audit report.
    pub audit: CronSchedule,
    /// When to apply expired grants.
    pub expiry: CronSchedule,
    /// The zone the expressions are read in (UTC unless `schedules.time_zone` says).
    pub time_zone: ScheduleZone,
}

/// `grant_policy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantPolicy {
    /// Duration of a grant whose request names none.
    pub default_duration: Duration,
    /// The longest time-bound grant.
    pub max_duration: Duration,
    /// Levels the connector may grant.
    pub allowed_levels: Vec<ProjectLevel>,
    /// Whether grants without an end are allowed.
    pub allow_standing_grants: bool,
    /// Whether every grant must name a ticket.
    pub require_ticket: bool,
    /// What a restore does when the level was changed in Bitbucket by someone else.
    pub on_conflict: OnConflict,
}

/// `grant_policy.on_conflict`: what to do with a level someone else changed meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnConflict {
    /// Leave their change alone and record a conflict (the default).
    #[default]
    Keep,
    /// Put the level the connector wants back and record the conflict.
    Enforce,
}

/// `audit_policy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditPolicy {
    /// The company's email domains, lower case; empty turns the outsider check off.
    pub allowed_email_domains: Vec<String>,
    /// Flag repositories with more admins than this.
    pub max_admins_per_repository: Option<u32>,
    /// Flag workspaces with more owners than this.
    pub max_workspace_owners: Option<u32>,
    /// Flag accounts that match no person.
    pub flag_unmatched_accounts: bool,
    /// Flag direct user permissions on repositories where a group would do.
    pub flag_direct_user_permissions: bool,
    /// How long an ended grant may still be present before it is flagged.
    pub expired_grant_grace: Duration,
    /// Formats the scheduled audit writes.
    pub report_formats: Vec<ReportFormat>,
    /// Where the scheduled audit writes (resolved against the config's directory).
    pub report_dir: PathBuf,
}

/// `request_budget`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestBudget {
    /// Requests allowed in any rolling hour.
    pub requests_per_hour: u32,
    /// Requests per hour kept for interactive work while a sync runs; less than `requests_per_hour`.
    pub reserve: u32,
    /// Concurrent requests at most (at least 1).
    pub max_in_flight: usize,
}

impl Default for RequestBudget {
    fn default() -> Self {
        RequestBudget {
            requests_per_hour: 1000,
            reserve: 100,
            max_in_flight: 4,
        }
    }
}

/// `mass_change_guard`: a sync that would remove more than `max_percent` percent of a
/// listing's stored facts, and at least `min_count` of them, keeps them until
/// `sync --accept-mass-change`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MassChangeLimits {
    /// The share of a listing's stored facts one run may remove, in percent (1–100).
    pub max_percent: u8,
    /// Removals smaller than this are never held.
    pub min_count: u64,
}

impl Default for MassChangeLimits {
    fn default() -> Self {
        MassChangeLimits {
            max_percent: 50,
            min_count: 10,
        }
    }
}

/// `api`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiSettings {
    /// Base URL of the Bitbucket API, without `/2.0` and without a trailing slash.
    pub bitbucket_url: Url,
    /// Connection timeout.
    pub connect_timeout: Duration,
    /// Whole-response timeout.
    pub read_timeout: Duration,
}

/// `server`.
pub struct ServerSettings {
    /// Listen address.
    pub listen: SocketAddr,
    /// Bearer token the HTTP API requires, when set (a `granter` named `api_token`).
    pub api_token: Option<SecretString>,
    /// The HTTP API's named tokens, each with a role.
    pub tokens: Vec<ApiToken>,
    /// The secret Bitbucket signs webhook deliveries with.
    pub webhook_secret: Option<SecretString>,
}

/// The name `server.api_token` goes by among the tokens.
pub const LEGACY_TOKEN_NAME: &str = "api_token";

/// One bearer token of the HTTP API (`server.tokens`).
#[derive(Clone)]
pub struct ApiToken {
    /// Who holds it; recorded as the requester of the grants it makes.
    pub name: String,
    /// The token.
    pub token: SecretString,
    /// What it may do.
    pub role: ApiRole,
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiToken")
            .field("name", &self.name)
            .field("token", &"[redacted]")
            .field("role", &self.role)
            .finish()
    }
}

impl ServerSettings {
    /// Every token the API accepts: the named ones, and `api_token` as a granter.
    pub fn all_tokens(&self) -> Vec<ApiToken> {
        let mut all = self.tokens.clone();
        if let Some(token) = &self.api_token {
            all.push(ApiToken {
                name: LEGACY_TOKEN_NAME.to_owned(),
                token: token.clone(),
                role: ApiRole::Granter,
            });
        }
        all
    }
}

/// How often identity matching runs after a sync, unless `identity.refresh_interval` says.
pub const DEFAULT_IDENTITY_REFRESH: Duration = Duration::from_secs(24 * 3600);

/// `identity`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentitySettings {
    /// Manual account-to-email overrides (resolved against the config's directory).
    pub overrides_file: Option<PathBuf>,
    /// How long matches stay fresh before a sync refreshes them.
    pub refresh_interval: Duration,
}

impl Default for IdentitySettings {
    fn default() -> Self {
        IdentitySettings {
            overrides_file: None,
            refresh_interval: DEFAULT_IDENTITY_REFRESH,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("source", &self.source)
            .field("email", &self.email)
            .field("app_token", &"[redacted]")
            .field("jira", &self.jira)
            .field("workspaces", &self.workspaces)
            .field("database_url", &self.database_url)
            .field("schedules", &self.schedules)
            .field("grant_policy", &self.grant_policy)
            .field("audit_policy", &self.audit_policy)
            .field("request_budget", &self.request_budget)
            .field("mass_change_guard", &self.mass_change_guard)
            .field("api", &self.api)
            .field("server", &self.server)
            .field("identity", &self.identity)
            .field("atlassian_admin", &self.atlassian_admin)
            .finish()
    }
}

impl fmt::Debug for JiraCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JiraCredentials")
            .field("url", &self.url.as_str())
            .field("user", &self.user)
            .field("key", &"[redacted]")
            .finish()
    }
}

impl fmt::Debug for ServerSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerSettings")
            .field("listen", &self.listen)
            .field("api_token", &self.api_token.as_ref().map(|_| "[redacted]"))
            .field("tokens", &self.tokens)
            .field(
                "webhook_secret",
                &self.webhook_secret.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

impl Default for Schedules {
    fn default() -> Self {
        let parse = |e: &str| CronSchedule::parse(e).expect("built-in schedules are valid");
        Schedules {
            sync: parse("0 0 * * * *"),
            audit: parse("0 0 6 * * *"),
            expiry: parse("0 * * * * *"),
            time_zone: ScheduleZone::utc(),
        }
    }
}

impl Default for GrantPolicy {
    fn default() -> Self {
        GrantPolicy {
            default_duration: Duration::from_secs(8 * 3600),
            max_duration: Duration::from_secs(30 * 86_400),
            allowed_levels: vec![
                ProjectLevel::Read,
                ProjectLevel::Write,
                ProjectLevel::CreateRepo,
            ],
            allow_standing_grants: true,
            require_ticket: false,
            on_conflict: OnConflict::Keep,
        }
    }
}

impl AuditPolicy {
    /// The defaults, with reports written below `base_dir`.
    pub(super) fn defaults(base_dir: &Path) -> AuditPolicy {
        AuditPolicy {
            allowed_email_domains: Vec::new(),
            max_admins_per_repository: None,
            max_workspace_owners: None,
            flag_unmatched_accounts: true,
            flag_direct_user_permissions: false,
            expired_grant_grace: Duration::from_secs(15 * 60),
            report_formats: vec![ReportFormat::Json, ReportFormat::Markdown],
            report_dir: base_dir.join("reports"),
        }
    }
}

impl ApiSettings {
    /// Defaults with another Bitbucket base URL (the simulator's, in tests and the demo).
    pub fn with_bitbucket_url(bitbucket_url: Url) -> ApiSettings {
        ApiSettings {
            bitbucket_url,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            read_timeout: DEFAULT_READ_TIMEOUT,
        }
    }
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            api_token: None,
            tokens: Vec::new(),
            webhook_secret: None,
        }
    }
}
