//! The user's JSON config, loaded once into typed sections.
//!
//! Loading runs in four steps, and every problem of every step is reported at once, each with the
//! JSON pointer of the value that caused it:
//! 1. parse the JSON strictly (`json`: a key written twice is an error, a byte order mark is
//!    accepted) and refuse the legacy `user` + `app_password` shape with advice;
//! 2. expand `${NAME}` references from the environment (`env`), whole values or inside strings;
//! 3. validate against `schemas/config.schema.json` (`schema`, the published contract);
//! 4. semantic checks the schema cannot express (`validate`): cron expressions, URLs (https, or
//!    http only for loopback hosts), durations, listen addresses, lists, and the bounds on secret
//!    files, tokens and emails (`secret`).
//!
//! The typed result is in `types`. Secrets become [`SecretString`] as soon as they are read; no
//! message names a secret's value.

mod database_url;
mod duration;
mod env;
mod error;
mod json;
mod raw;
mod schema;
mod secret;
mod types;
mod validate;
mod zone;

pub use database_url::{redact_url, Backend, DatabaseUrl, DEFAULT_DATABASE_URL};
pub use duration::{format_duration, parse_duration, HumanDuration};
pub use error::{ConfigError, Problem};
pub use raw::{ApiRole, RawConfig, ReportFormat};
pub use schema::{is_valid as schema_accepts, SCHEMA_JSON};
pub use secret::{MAX_EMAIL_LEN, MAX_SECRET_FILE_BYTES, MAX_TOKEN_LEN};
pub use types::{
    ApiSettings, ApiToken, AtlassianAdmin, AuditPolicy, Config, CronSchedule, GrantPolicy,
    IdentitySettings, JiraCredentials, MassChangeLimits, OnConflict, RequestBudget, ScheduleZone,
    Schedules, ServerSettings, DEFAULT_ADMIN_URL, DEFAULT_ORG_POLL_INTERVAL, LEGACY_TOKEN_NAME,
};

use secrecy::SecretString;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;
use url::Url;
use validate::Builder;

/// The config file used when neither `--config` nor `BITBUCKET_ACCESS_CONFIG` names one.
pub const DEFAULT_CONFIG_PATH: &str = "bitbucket-access.json";

/// Default Bitbucket API base URL (without `/2.0`).
pub const DEFAULT_BITBUCKET_URL: &str = "https://api.bitbucket.org";

/// How long a connection to an API may take to open, unless `api.connect_timeout` says otherwise.
/// Every HTTP client uses this one default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an API response may take, unless `api.read_timeout` says otherwise.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest duration any setting accepts; longer values are surely mistakes, and would
/// overflow timers.
pub const MAX_DURATION: Duration = Duration::from_secs(3650 * 86_400);

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
        let mut value = json::parse(text).map_err(|problems| ConfigError::Invalid { problems })?;
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

        let mut builder = Builder::new(base_dir);
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
            mass_change_guard: MassChangeLimits::default(),
            api: ApiSettings::with_bitbucket_url(bitbucket_url),
            server: ServerSettings::default(),
            identity: IdentitySettings::default(),
            atlassian_admin: None,
        }
    }

    /// The email Bitbucket's Basic authentication expects as the user name.
    pub fn bitbucket_email(&self) -> &str {
        &self.email
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
