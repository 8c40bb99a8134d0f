//! The user's JSON config, loaded once into typed sections.
//!
//! Loading runs in four steps, and every problem of every step is reported at once, each with the
//! JSON pointer of the value that caused it:
//! 1. parse the JSON and refuse the legacy `user` + `app_password` shape with advice;
//! 2. replace `${ENV_VAR}` strings by their values;
//! 3. validate against `schemas/config.schema.json` (the published contract);
//! 4. semantic checks the schema cannot express: cron expressions, URLs (https, or http only for
//!    loopback hosts), durations, listen addresses, secret files.
//!
//! Secrets become [`SecretString`] as soon as they are read; no message names a secret's value.

mod database_url;
mod duration;
mod env;
mod error;
mod raw;
mod schema;

pub use database_url::{redact_url, Backend, DatabaseUrl, DEFAULT_DATABASE_URL};
pub use duration::{format_duration, parse_duration, HumanDuration};
pub use error::{ConfigError, Problem};
pub use raw::{Level, RawConfig, ReportFormat};
pub use schema::{is_valid as schema_accepts, SCHEMA_JSON};

use raw::{
    RawApi, RawAuditPolicy, RawGrantPolicy, RawIdentity, RawJira, RawRequestBudget, RawSchedules,
    RawServer, SecretSource,
};
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;
use url::Url;

/// The config file used when neither `--config` nor `BITBUCKET_ACCESS_CONFIG` names one.
pub const DEFAULT_CONFIG_PATH: &str = "bitbucket-access.json";

/// Default Bitbucket API base URL (without `/2.0`).
pub const DEFAULT_BITBUCKET_URL: &str = "https://api.bitbucket.org";

/// The longest duration any setting accepts; longer values are surely mistakes, and would
/// overflow timers.
pub const MAX_DURATION: Duration = Duration::from_secs(3650 * 86_400);

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
    /// API endpoints and timeouts.
    pub api: ApiSettings,
    /// The HTTP API of `serve`.
    pub server: ServerSettings,
    /// Identity matching.
    pub identity: IdentitySettings,
}

/// Jira Cloud credentials (Basic `user:key`).
pub struct JiraCredentials {
    /// The Jira site, such as `https://acme.atlassian.net`.
    pub url: Url,
    /// Email of the account that owns the Jira API token.
    pub user: String,
    /// The Jira API token.
    pub key: SecretString,
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
            .map_err(|e| format!("is not a valid cron expression ({}); write six fields with seconds first, such as \"0 0 6 * * Mon-Fri\"", last_line(&e.to_string())))
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

/// `schedules`.
#[derive(Debug, Clone)]
pub struct Schedules {
    /// When to sync Bitbucket into the store.
    pub sync: CronSchedule,
    /// When to write the audit report.
    pub audit: CronSchedule,
    /// When to apply expired grants.
    pub expiry: CronSchedule,
}

/// `grant_policy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantPolicy {
    /// Duration of a grant whose request names none.
    pub default_duration: Duration,
    /// The longest time-bound grant.
    pub max_duration: Duration,
    /// Levels the connector may grant.
    pub allowed_levels: Vec<Level>,
    /// Whether grants without an end are allowed.
    pub allow_standing_grants: bool,
    /// Whether every grant must name a ticket.
    pub require_ticket: bool,
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
    /// Bearer token the HTTP API requires, when set.
    pub api_token: Option<SecretString>,
}

/// `identity`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentitySettings {
    /// Manual account-to-email overrides (resolved against the config's directory).
    pub overrides_file: Option<PathBuf>,
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
            .field("api", &self.api)
            .field("server", &self.server)
            .field("identity", &self.identity)
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
        }
    }
}

impl Default for GrantPolicy {
    fn default() -> Self {
        GrantPolicy {
            default_duration: Duration::from_secs(8 * 3600),
            max_duration: Duration::from_secs(30 * 86_400),
            allowed_levels: vec![Level::Read, Level::Write, Level::CreateRepo],
            allow_standing_grants: true,
            require_ticket: false,
        }
    }
}

impl AuditPolicy {
    fn defaults(base_dir: &Path) -> AuditPolicy {
        AuditPolicy {
            allowed_email_domains: Vec::new(),
            max_admins_per_repository: None,
            max_workspace_owners: None,
            flag_unmatched_accounts: true,
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
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
        }
    }
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            api_token: None,
        }
    }
}

impl Config {
    /// Reads and validates the config file at `path`, resolving `${ENV_VAR}` from the process
    /// environment and relative paths against the file's directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base_dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        // An absolute base keeps relative paths in the config valid if the process later
        // changes directory (a service manager may start `serve` anywhere).
        let base_dir = std::fs::canonicalize(&base_dir).unwrap_or(base_dir);
        let env = |name: &str| std::env::var(name).ok();
        let mut config = Config::from_json_str(&text, &env, &base_dir)?;
        config.source = Some(path.to_path_buf());
        Ok(config)
    }

    /// Validates config text. `env` resolves `${NAME}` references (injected so tests need not
    /// touch the process environment); relative paths resolve against `base_dir`.
    pub fn from_json_str(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
        base_dir: &Path,
    ) -> Result<Config, ConfigError> {
        let mut value: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                // serde_json's syntax errors name a position, never the text around it.
                let message = format!(
                    "is not valid JSON: {} at line {} column {}",
                    syntax_category(&e),
                    e.line(),
                    e.column()
                );
                return Err(ConfigError::Invalid {
                    problems: vec![Problem::new("", message)],
                });
            }
        };
        let mut problems = Vec::new();
        let legacy = legacy_shape(&value);
        if let Some(problem) = &legacy {
            problems.push(problem.clone());
        }
        env::substitute(&mut value, "", env, &mut problems);
        let schema_problems: Vec<Problem> = schema::problems(&value)
            .into_iter()
            .filter(|p| legacy.is_none() || !is_explained_by_legacy(p))
            .collect();
        let schema_ok = schema_problems.is_empty();
        problems.extend(schema_problems);

        let mut builder = Builder {
            base_dir,
            problems: Vec::new(),
        };
        let built = if schema_ok && legacy.is_none() {
            match serde_json::from_value::<RawConfig>(value) {
                Ok(raw) => builder.config(raw),
                Err(_) => {
                    // The agreement test makes this unreachable; the serde text is not shown
                    // because it may quote a value.
                    builder.problems.push(Problem::new(
                        "",
                        "passes the schema but not the program's config types; this is a bug in bitbucket-access, please report it",
                    ));
                    None
                }
            }
        } else {
            builder.check_sections(&value);
            None
        };
        problems.extend(builder.problems);
        match built {
            Some(config) if problems.is_empty() => Ok(config),
            _ => {
                dedup(&mut problems);
                problems.sort_by(|a, b| a.pointer.cmp(&b.pointer));
                Err(ConfigError::Invalid { problems })
            }
        }
    }

    /// A config for the built-in simulator (demo and tests): the given endpoint, credentials and
    /// store, every other setting at its default.
    pub fn for_simulator(
        bitbucket_url: Url,
        email: impl Into<String>,
        app_token: SecretString,
        jira: Option<JiraCredentials>,
        database_url: DatabaseUrl,
    ) -> Config {
        Config {
            source: None,
            email: email.into(),
            app_token,
            jira,
            workspaces: Vec::new(),
            database_url,
            schedules: Schedules::default(),
            grant_policy: GrantPolicy::default(),
            audit_policy: AuditPolicy::defaults(Path::new(".")),
            request_budget: RequestBudget::default(),
            api: ApiSettings::with_bitbucket_url(bitbucket_url),
            server: ServerSettings::default(),
            identity: IdentitySettings::default(),
        }
    }

    /// The email Bitbucket's Basic authentication expects as the user name.
    pub fn bitbucket_email(&self) -> &str {
        &self.email
    }
}

fn syntax_category(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Eof => "the text ends too early",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected data",
        serde_json::error::Category::Io => "read error",
    }
}

fn dedup(problems: &mut Vec<Problem>) {
    let mut seen = std::collections::HashSet::new();
    problems.retain(|p| seen.insert((p.pointer.clone(), p.message.clone())));
}

/// The message for configs written for app passwords, which Atlassian switched off in 2026.
fn legacy_shape(value: &Value) -> Option<Problem> {
    let object = value.as_object()?;
    let has_password = object.contains_key("app_password");
    let has_user_only = object.contains_key("user") && !object.contains_key("email");
    if !has_password && !has_user_only {
        return None;
    }
    let scopes = crate::manifest::Manifest::get().all_scopes().join(", ");
    let pointer = if has_password {
        "/app_password"
    } else {
        "/user"
    };
    Some(Problem::new(
        pointer,
        format!(
            "this is the legacy `user` + `app_password` shape. Bitbucket app passwords were switched off by Atlassian in 2026 (requests now get HTTP 410, CHANGE-3222), so it cannot work. \
Create an Atlassian API token with scopes instead: id.atlassian.com > Security > API tokens > Create API token with scopes, choose the Bitbucket app and the scopes {scopes}. \
Put the token in `app_token` (or its path in `app_token_file`) and the Atlassian account's email address, not the Bitbucket username, in `email`."
        ),
    ))
}

/// Schema problems that only restate the legacy-shape problem.
fn is_explained_by_legacy(p: &Problem) -> bool {
    matches!(
        p.pointer.as_str(),
        "/app_password" | "/user" | "/email" | "/app_token" | "/app_token_file"
    )
}

/// Whether `host` is a loopback host name or address.
fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Runs the semantic checks and assembles the typed config, collecting problems.
struct Builder<'a> {
    base_dir: &'a Path,
    problems: Vec<Problem>,
}

impl Builder<'_> {
    fn problem(&mut self, pointer: &str, message: impl Into<String>) {
        self.problems.push(Problem::new(pointer, message));
    }

    /// Semantic checks for the sections that are well formed, when the schema check failed
    /// elsewhere: so a bad cron expression is reported together with an unknown field.
    fn check_sections(&mut self, value: &Value) {
        fn section<T: DeserializeOwned>(value: &Value, key: &str) -> Option<T> {
            value
                .get(key)
                .and_then(|v| serde_json::from_value(v.clone()).ok())
        }
        if let Some(email) = value.get("email").and_then(Value::as_str) {
            self.email("/email", email);
        }
        // Jira fields are checked one by one: a missing key must not hide a non-https URL.
        if let Some(url) = value
            .pointer("/jira_credentials/url")
            .and_then(Value::as_str)
        {
            self.base_url("/jira_credentials/url", url, "the Jira site");
        }
        if let Some(user) = value
            .pointer("/jira_credentials/user")
            .and_then(Value::as_str)
        {
            self.email("/jira_credentials/user", user);
        }
        for pointer in ["/app_token_file", "/jira_credentials/key_file"] {
            if let Some(file) = value.pointer(pointer).and_then(Value::as_str) {
                self.secret(SecretSource::File(file.to_string()), pointer);
            }
        }
        if let Some(workspaces) = section::<Vec<String>>(value, "workspaces") {
            self.workspaces(Some(workspaces));
        }
        if let Some(url) = value.get("database_url").and_then(Value::as_str) {
            self.database_url(Some(url.to_string()));
        }
        if let Some(raw) = section::<RawSchedules>(value, "schedules") {
            self.schedules(Some(raw));
        }
        if let Some(raw) = section::<RawGrantPolicy>(value, "grant_policy") {
            self.grant_policy(Some(raw));
        }
        if let Some(raw) = section::<RawAuditPolicy>(value, "audit_policy") {
            self.audit_policy(Some(raw));
        }
        if let Some(raw) = section::<RawRequestBudget>(value, "request_budget") {
            self.request_budget(Some(raw));
        }
        if let Some(raw) = section::<RawApi>(value, "api") {
            self.api(Some(raw));
        }
        if let Some(raw) = section::<RawServer>(value, "server") {
            self.server(Some(raw));
        }
        if let Some(raw) = section::<RawIdentity>(value, "identity") {
            self.identity(Some(raw));
        }
    }

    fn config(&mut self, raw: RawConfig) -> Option<Config> {
        let email = self.email("/email", &raw.email);
        let app_token = self.secret(raw.app_token, "/app_token_file");
        let jira = raw.jira_credentials.map(|j| self.jira(j));
        let workspaces = self.workspaces(raw.workspaces);
        let database_url = self.database_url(raw.database_url);
        let schedules = self.schedules(raw.schedules);
        let grant_policy = self.grant_policy(raw.grant_policy);
        let audit_policy = self.audit_policy(raw.audit_policy);
        let request_budget = self.request_budget(raw.request_budget);
        let api = self.api(raw.api);
        let server = self.server(raw.server);
        let identity = self.identity(raw.identity);
        Some(Config {
            source: None,
            email: email?,
            app_token: app_token?,
            jira: match jira {
                Some(j) => Some(j?),
                None => None,
            },
            workspaces: workspaces?,
            database_url: database_url?,
            schedules: schedules?,
            grant_policy: grant_policy?,
            audit_policy: audit_policy?,
            request_budget: request_budget?,
            api: api?,
            server: server?,
            identity: identity?,
        })
    }

    fn email(&mut self, pointer: &str, email: &str) -> Option<String> {
        let valid = match email.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !email.chars().any(char::is_whitespace)
            }
            None => false,
        };
        if valid {
            Some(email.to_string())
        } else {
            self.problem(
                pointer,
                "must be the email address of the Atlassian account (Bitbucket authenticates API tokens with email:token; a username does not work)",
            );
            None
        }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.base_dir.join(relative)
    }

    fn secret(&mut self, source: SecretSource, file_pointer: &str) -> Option<SecretString> {
        match source {
            SecretSource::Value(value) => Some(SecretString::from(value)),
            SecretSource::File(file) => {
                let path = self.path(&file);
                match std::fs::read_to_string(&path) {
                    Ok(content) => {
                        let trimmed = content.trim();
                        if trimmed.is_empty() {
                            self.problem(
                                file_pointer,
                                format!("the file {} is empty", path.display()),
                            );
                            None
                        } else {
                            Some(SecretString::from(trimmed.to_string()))
                        }
                    }
                    Err(e) => {
                        self.problem(
                            file_pointer,
                            format!("cannot read the file {}: {}", path.display(), e.kind()),
                        );
                        None
                    }
                }
            }
        }
    }

    /// A base URL that must be https, or http on a loopback host.
    fn base_url(&mut self, pointer: &str, text: &str, what: &str) -> Option<Url> {
        let url = match Url::parse(text) {
            Ok(url) => url,
            Err(e) => {
                self.problem(
                    pointer,
                    format!(
                        "is not a valid URL ({e}); write the {what} such as https://example.com"
                    ),
                );
                return None;
            }
        };
        match url.scheme() {
            "https" => {}
            "http" if is_loopback_host(&url) => {}
            "http" => {
                self.problem(
                    pointer,
                    format!("must use https:// ({what} over plain http:// is allowed only for loopback hosts: 127.0.0.0/8, ::1, localhost)"),
                );
                return None;
            }
            other => {
                self.problem(pointer, format!("must be an https:// URL, not {other}:"));
                return None;
            }
        }
        if url.host().is_none() {
            self.problem(pointer, "needs a host name");
            return None;
        }
        if !url.username().is_empty() || url.password().is_some() {
            self.problem(
                pointer,
                "must not contain credentials; they belong in their own fields",
            );
            return None;
        }
        if url.query().is_some() || url.fragment().is_some() {
            self.problem(pointer, "must not have a query or a fragment");
            return None;
        }
        let mut url = url;
        let trimmed = url.path().trim_end_matches('/').to_string();
        url.set_path(&trimmed);
        Some(url)
    }

    fn jira(&mut self, raw: RawJira) -> Option<JiraCredentials> {
        let url = self.base_url("/jira_credentials/url", &raw.url, "the Jira site");
        let user = self.email("/jira_credentials/user", &raw.user);
        let key = self.secret(raw.key, "/jira_credentials/key_file");
        Some(JiraCredentials {
            url: url?,
            user: user?,
            key: key?,
        })
    }

    fn workspaces(&mut self, raw: Option<Vec<String>>) -> Option<Vec<String>> {
        let Some(list) = raw else {
            return Some(Vec::new());
        };
        if list.is_empty() {
            self.problem(
                "/workspaces",
                "is empty, which would manage nothing; list workspace slugs, or leave the field out to manage every workspace the token's account administers",
            );
            return None;
        }
        let before = self.problems.len();
        let mut out: Vec<String> = Vec::new();
        for (i, slug) in list.iter().enumerate() {
            let pointer = format!("/workspaces/{i}");
            let valid = !slug.is_empty()
                && slug
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !valid {
                self.problem(&pointer, "is not a workspace slug (letters, digits, -, _ and . only, as in the workspace's URL)");
            } else if out.contains(slug) {
                self.problem(
                    &pointer,
                    format!("lists the workspace {slug} a second time"),
                );
            } else {
                out.push(slug.clone());
            }
        }
        (self.problems.len() == before).then_some(out)
    }

    fn database_url(&mut self, raw: Option<String>) -> Option<DatabaseUrl> {
        let text = raw.unwrap_or_else(|| DEFAULT_DATABASE_URL.to_string());
        match DatabaseUrl::parse(&text, self.base_dir) {
            Ok(url) => Some(url),
            Err(message) => {
                self.problem("/database_url", message);
                None
            }
        }
    }

    fn cron(
        &mut self,
        pointer: &str,
        raw: Option<String>,
        default: &CronSchedule,
    ) -> Option<CronSchedule> {
        let Some(expression) = raw else {
            return Some(default.clone());
        };
        match CronSchedule::parse(&expression) {
            Ok(schedule) => Some(schedule),
            Err(message) => {
                self.problem(pointer, message);
                None
            }
        }
    }

    fn schedules(&mut self, raw: Option<RawSchedules>) -> Option<Schedules> {
        let defaults = Schedules::default();
        let Some(raw) = raw else {
            return Some(defaults);
        };
        let sync = self.cron("/schedules/sync", raw.sync, &defaults.sync);
        let audit = self.cron("/schedules/audit", raw.audit, &defaults.audit);
        let expiry = self.cron("/schedules/expiry", raw.expiry, &defaults.expiry);
        Some(Schedules {
            sync: sync?,
            audit: audit?,
            expiry: expiry?,
        })
    }

    fn nonzero(
        &mut self,
        pointer: &str,
        d: Option<HumanDuration>,
        default: Duration,
    ) -> Option<Duration> {
        match d {
            None => Some(default),
            Some(HumanDuration(d)) if d > MAX_DURATION => {
                self.problem(
                    pointer,
                    "is longer than the 3650 days (ten years) any setting allows",
                );
                None
            }
            Some(HumanDuration(d)) if d.is_zero() => {
                self.problem(pointer, "must be longer than zero");
                None
            }
            Some(HumanDuration(d)) => Some(d),
        }
    }

    fn grant_policy(&mut self, raw: Option<RawGrantPolicy>) -> Option<GrantPolicy> {
        let defaults = GrantPolicy::default();
        let Some(raw) = raw else {
            return Some(defaults);
        };
        let default_duration = self.nonzero(
            "/grant_policy/default_duration",
            raw.default_duration,
            defaults.default_duration,
        );
        let max_duration = self.nonzero(
            "/grant_policy/max_duration",
            raw.max_duration,
            defaults.max_duration,
        );
        if let (Some(d), Some(m)) = (default_duration, max_duration) {
            if d > m {
                self.problem(
                    "/grant_policy/default_duration",
                    format!(
                        "({}) is longer than max_duration ({})",
                        format_duration(d),
                        format_duration(m)
                    ),
                );
                return None;
            }
        }
        let allowed_levels = match raw.allowed_levels {
            None => defaults.allowed_levels,
            Some(levels) if levels.is_empty() => {
                self.problem(
                    "/grant_policy/allowed_levels",
                    "is empty, so nothing could be granted; list at least one level",
                );
                return None;
            }
            Some(mut levels) => {
                levels.sort();
                levels.dedup();
                levels
            }
        };
        Some(GrantPolicy {
            default_duration: default_duration?,
            max_duration: max_duration?,
            allowed_levels,
            allow_standing_grants: raw
                .allow_standing_grants
                .unwrap_or(defaults.allow_standing_grants),
            require_ticket: raw.require_ticket.unwrap_or(defaults.require_ticket),
        })
    }

    fn audit_policy(&mut self, raw: Option<RawAuditPolicy>) -> Option<AuditPolicy> {
        let defaults = AuditPolicy::defaults(self.base_dir);
        let Some(raw) = raw else {
            return Some(defaults);
        };
        let before = self.problems.len();
        let mut domains = Vec::new();
        for (i, domain) in raw
            .allowed_email_domains
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let d = domain.trim().to_ascii_lowercase();
            let valid = d.contains('.')
                && !d.starts_with('.')
                && !d.ends_with('.')
                && d.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
            if valid {
                if !domains.contains(&d) {
                    domains.push(d);
                }
            } else {
                self.problem(
                    &format!("/audit_policy/allowed_email_domains/{i}"),
                    "is not an email domain; write the part after the @, such as acme.com",
                );
            }
        }
        let grace = self.nonzero_or_zero(
            "/audit_policy/expired_grant_grace",
            raw.expired_grant_grace,
            defaults.expired_grant_grace,
        );
        let mut formats = raw.report_formats.unwrap_or(defaults.report_formats);
        let mut seen = Vec::new();
        formats.retain(|f| {
            let new = !seen.contains(f);
            seen.push(*f);
            new
        });
        let report_dir = raw
            .report_dir
            .map(|d| self.path(&d.0))
            .unwrap_or(defaults.report_dir);
        (self.problems.len() == before).then_some(AuditPolicy {
            allowed_email_domains: domains,
            max_admins_per_repository: raw
                .max_admins_per_repository
                .and_then(|n| u32::try_from(n).ok()),
            max_workspace_owners: raw.max_workspace_owners.and_then(|n| u32::try_from(n).ok()),
            flag_unmatched_accounts: raw
                .flag_unmatched_accounts
                .unwrap_or(defaults.flag_unmatched_accounts),
            expired_grant_grace: grace?,
            report_formats: formats,
            report_dir,
        })
    }

    /// A grace period may be zero (flag at once), but not absurdly long.
    fn nonzero_or_zero(
        &mut self,
        pointer: &str,
        d: Option<HumanDuration>,
        default: Duration,
    ) -> Option<Duration> {
        match d {
            Some(HumanDuration(d)) if d.is_zero() => Some(d),
            other => self.nonzero(pointer, other, default),
        }
    }

    fn request_budget(&mut self, raw: Option<RawRequestBudget>) -> Option<RequestBudget> {
        let defaults = RequestBudget::default();
        let Some(raw) = raw else {
            return Some(defaults);
        };
        // The raw integers are already within the schema's bounds, so the conversions hold.
        let u32_or =
            |n: Option<u64>, default: u32| n.and_then(|n| u32::try_from(n).ok()).unwrap_or(default);
        let budget = RequestBudget {
            requests_per_hour: u32_or(raw.requests_per_hour, defaults.requests_per_hour),
            reserve: u32_or(raw.reserve, defaults.reserve),
            max_in_flight: raw
                .max_in_flight
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(defaults.max_in_flight),
        };
        if budget.reserve >= budget.requests_per_hour {
            self.problem(
                "/request_budget/reserve",
                format!(
                    "({}) must be less than requests_per_hour ({}), or nothing would be left for syncs",
                    budget.reserve, budget.requests_per_hour
                ),
            );
            return None;
        }
        Some(budget)
    }

    fn api(&mut self, raw: Option<RawApi>) -> Option<ApiSettings> {
        let default_url = Url::parse(DEFAULT_BITBUCKET_URL).expect("the default URL is valid");
        let defaults = ApiSettings::with_bitbucket_url(default_url);
        let Some(raw) = raw else {
            return Some(defaults);
        };
        let bitbucket_url = match raw.bitbucket_url {
            Some(text) => self.base_url("/api/bitbucket_url", &text.0, "the Bitbucket API"),
            None => Some(defaults.bitbucket_url),
        };
        let connect_timeout = self.nonzero(
            "/api/connect_timeout",
            raw.connect_timeout,
            defaults.connect_timeout,
        );
        let read_timeout =
            self.nonzero("/api/read_timeout", raw.read_timeout, defaults.read_timeout);
        Some(ApiSettings {
            bitbucket_url: bitbucket_url?,
            connect_timeout: connect_timeout?,
            read_timeout: read_timeout?,
        })
    }

    fn server(&mut self, raw: Option<RawServer>) -> Option<ServerSettings> {
        let defaults = ServerSettings::default();
        let Some(raw) = raw else {
            return Some(defaults);
        };
        let listen = match raw.listen {
            None => Some(defaults.listen),
            Some(text) => match text.parse::<SocketAddr>() {
                Ok(addr) => Some(addr),
                Err(_) => {
                    self.problem(
                        "/server/listen",
                        "is not an address and port, such as 127.0.0.1:8080 or [::1]:8080",
                    );
                    None
                }
            },
        };
        let api_token = match raw.api_token {
            None => Some(None),
            Some(source) => self.secret(source, "/server/api_token_file").map(Some),
        };
        if let (Some(addr), Some(None)) = (listen, &api_token) {
            if !is_loopback_ip(addr.ip()) {
                self.problem(
                    "/server/listen",
                    "is not a loopback address, so the HTTP API would be reachable by others; set server.api_token or server.api_token_file",
                );
                return None;
            }
        }
        Some(ServerSettings {
            listen: listen?,
            api_token: api_token?,
        })
    }

    fn identity(&mut self, raw: Option<RawIdentity>) -> Option<IdentitySettings> {
        let Some(raw) = raw else {
            return Some(IdentitySettings::default());
        };
        let overrides_file = match raw.overrides_file {
            None => None,
            Some(file) => {
                let path = self.path(&file.0);
                if !path.is_file() {
                    self.problem(
                        "/identity/overrides_file",
                        format!("names {}, which is not a readable file", path.display()),
                    );
                    return None;
                }
                Some(path)
            }
        };
        Some(IdentitySettings { overrides_file })
    }
}

fn is_loopback_ip(ip: IpAddr) -> bool {
    ip.is_loopback()
}
