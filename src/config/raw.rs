//! The config file's shape as serde types, field for field what `schemas/config.schema.json`
//! describes. These types reject exactly what the schema rejects (the agreement test in
//! `tests/config_schema_agreement.rs` proves it on examples); semantic checks (cron expressions,
//! URLs, files) come afterwards, in the parent module's `Builder`.

use super::duration::HumanDuration;
use crate::domain::ProjectLevel;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// Deserialises a field that may be absent but, when present, must not be `null`: the schema
/// gives each optional field a type, and `null` is not of that type.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// Deserialises a section that may be absent but, when present, must be a JSON object. Serde's
/// derived structs also accept an array of field values, which the schema does not, so the
/// section is first read as a map.
fn object<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Option<T>, D::Error> {
    let map = Map::<String, Value>::deserialize(d)?;
    T::deserialize(Value::Object(map))
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// Deserialises an optional integer in `MIN..=MAX`. JSON Schema counts `3.0` as the integer 3,
/// so a number with a zero fraction is accepted too, exactly as the schema's `integer` does.
fn integer<'de, D: Deserializer<'de>, const MIN: u64, const MAX: u64>(
    d: D,
) -> Result<Option<u64>, D::Error> {
    let number = serde_json::Number::deserialize(d)?;
    let value = match (number.as_u64(), number.as_f64()) {
        (Some(n), _) => Some(n),
        (None, Some(f)) if f.fract() == 0.0 && (0.0..=MAX as f64).contains(&f) => Some(f as u64),
        _ => None,
    };
    match value {
        Some(n) if (MIN..=MAX).contains(&n) => Ok(Some(n)),
        _ => Err(serde::de::Error::custom(format!(
            "must be an integer from {MIN} to {MAX}"
        ))),
    }
}

/// The largest value of a `u32` field, as the schema's `maximum` writes it.
const U32_MAX: u64 = u32::MAX as u64;

/// The most concurrent requests the schema allows.
pub const MAX_IN_FLIGHT: u64 = 256;

/// A string that must not be empty (the schema's `minLength: 1`).
#[derive(Clone, PartialEq, Eq)]
pub struct NonEmpty(pub(super) String);

impl<'de> Deserialize<'de> for NonEmpty {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.is_empty() {
            return Err(serde::de::Error::custom("must not be empty"));
        }
        Ok(NonEmpty(text))
    }
}

/// An audit report format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportFormat {
    /// Machine-readable JSON.
    Json,
    /// Spreadsheet evidence for auditors.
    Csv,
    /// Markdown, for people and tickets.
    Markdown,
    /// A standalone HTML page.
    Html,
}

impl ReportFormat {
    /// The format's name as the config writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ReportFormat::Json => "json",
            ReportFormat::Csv => "csv",
            ReportFormat::Markdown => "markdown",
            ReportFormat::Html => "html",
        }
    }
}

/// What an HTTP API token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiRole {
    /// Reads only (GET).
    Reader,
    /// Reads, and also creates and ends grants and starts syncs.
    Granter,
}

/// A secret given inline or through a file: exactly one of the two.
#[derive(Clone)]
pub enum SecretSource {
    /// The value itself, written in the config or read from `${ENV_VAR}`.
    Value(String),
    /// The path of a file that holds the value.
    File(String),
}

/// Top-level fields before the exactly-one rule for the token is applied.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfigFields {
    #[serde(rename = "$schema")]
    #[serde(default, deserialize_with = "present")]
    _schema: Option<String>,
    email: NonEmpty,
    #[serde(default, deserialize_with = "present")]
    app_token: Option<NonEmpty>,
    #[serde(default, deserialize_with = "present")]
    app_token_file: Option<NonEmpty>,
    #[serde(default, deserialize_with = "object")]
    jira_credentials: Option<RawJira>,
    #[serde(default, deserialize_with = "present")]
    workspaces: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    database_url: Option<NonEmpty>,
    #[serde(default, deserialize_with = "object")]
    schedules: Option<RawSchedules>,
    #[serde(default, deserialize_with = "object")]
    grant_policy: Option<RawGrantPolicy>,
    #[serde(default, deserialize_with = "object")]
    audit_policy: Option<RawAuditPolicy>,
    #[serde(default, deserialize_with = "object")]
    request_budget: Option<RawRequestBudget>,
    #[serde(default, deserialize_with = "object")]
    mass_change_guard: Option<RawMassChangeGuard>,
    #[serde(default, deserialize_with = "object")]
    api: Option<RawApi>,
    #[serde(default, deserialize_with = "object")]
    server: Option<RawServer>,
    #[serde(default, deserialize_with = "object")]
    identity: Option<RawIdentity>,
    #[serde(default, deserialize_with = "object")]
    atlassian_admin: Option<RawAtlassianAdmin>,
}

/// The whole config file.
#[derive(Deserialize)]
#[serde(try_from = "Map<String, Value>")]
pub struct RawConfig {
    pub(super) email: String,
    pub(super) app_token: SecretSource,
    pub(super) jira_credentials: Option<RawJira>,
    pub(super) workspaces: Option<Vec<String>>,
    pub(super) database_url: Option<String>,
    pub(super) schedules: Option<RawSchedules>,
    pub(super) grant_policy: Option<RawGrantPolicy>,
    pub(super) audit_policy: Option<RawAuditPolicy>,
    pub(super) request_budget: Option<RawRequestBudget>,
    pub(super) mass_change_guard: Option<RawMassChangeGuard>,
    pub(super) api: Option<RawApi>,
    pub(super) server: Option<RawServer>,
    pub(super) identity: Option<RawIdentity>,
    pub(super) atlassian_admin: Option<RawAtlassianAdmin>,
}

fn exactly_one(
    value: Option<NonEmpty>,
    file: Option<NonEmpty>,
    names: (&str, &str),
) -> Result<SecretSource, String> {
    match (value, file) {
        (Some(v), None) => Ok(SecretSource::Value(v.0)),
        (None, Some(f)) => Ok(SecretSource::File(f.0)),
        (None, None) => Err(format!("one of `{}` or `{}` is required", names.0, names.1)),
        (Some(_), Some(_)) => Err(format!("give only one of `{}` and `{}`", names.0, names.1)),
    }
}

impl TryFrom<Map<String, Value>> for RawConfig {
    type Error = String;

    fn try_from(map: Map<String, Value>) -> Result<Self, Self::Error> {
        let f: RawConfigFields =
            serde_json::from_value(Value::Object(map)).map_err(|e| e.to_string())?;
        Ok(RawConfig {
            email: f.email.0,
            app_token: exactly_one(
                f.app_token,
                f.app_token_file,
                ("app_token", "app_token_file"),
            )?,
            jira_credentials: f.jira_credentials,
            workspaces: f.workspaces,
            database_url: f.database_url.map(|d| d.0),
            schedules: f.schedules,
            grant_policy: f.grant_policy,
            audit_policy: f.audit_policy,
            request_budget: f.request_budget,
            mass_change_guard: f.mass_change_guard,
            api: f.api,
            server: f.server,
            identity: f.identity,
            atlassian_admin: f.atlassian_admin,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJiraFields {
    url: NonEmpty,
    user: NonEmpty,
    #[serde(default, deserialize_with = "present")]
    key: Option<NonEmpty>,
    #[serde(default, deserialize_with = "present")]
    key_file: Option<NonEmpty>,
    #[serde(default, deserialize_with = "present")]
    gateway_url: Option<NonEmpty>,
}

/// `jira_credentials`.
#[derive(Deserialize)]
#[serde(try_from = "RawJiraFields")]
pub struct RawJira {
    pub(super) url: String,
    pub(super) user: String,
    pub(super) key: SecretSource,
    pub(super) gateway_url: Option<String>,
}

impl TryFrom<RawJiraFields> for RawJira {
    type Error = String;

    fn try_from(f: RawJiraFields) -> Result<Self, Self::Error> {
        Ok(RawJira {
            url: f.url.0,
            user: f.user.0,
            key: exactly_one(f.key, f.key_file, ("key", "key_file"))?,
            gateway_url: f.gateway_url.map(|g| g.0),
        })
    }
}

/// `schedules`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSchedules {
    #[serde(default, deserialize_with = "present")]
    pub(super) sync: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub(super) audit: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub(super) expiry: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub(super) time_zone: Option<String>,
}

/// `grant_policy`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGrantPolicy {
    #[serde(default, deserialize_with = "present")]
    pub(super) default_duration: Option<HumanDuration>,
    #[serde(default, deserialize_with = "present")]
    pub(super) max_duration: Option<HumanDuration>,
    #[serde(default, deserialize_with = "present")]
    pub(super) allowed_levels: Option<Vec<ProjectLevel>>,
    #[serde(default, deserialize_with = "present")]
    pub(super) allow_standing_grants: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    pub(super) require_ticket: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    pub(super) on_conflict: Option<super::types::OnConflict>,
}

/// `audit_policy`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuditPolicy {
    #[serde(default, deserialize_with = "present")]
    pub(super) allowed_email_domains: Option<Vec<String>>,
    #[serde(default, deserialize_with = "integer::<_, 0, U32_MAX>")]
    pub(super) max_admins_per_repository: Option<u64>,
    #[serde(default, deserialize_with = "integer::<_, 0, U32_MAX>")]
    pub(super) max_workspace_owners: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    pub(super) flag_unmatched_accounts: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    pub(super) flag_direct_user_permissions: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    pub(super) expired_grant_grace: Option<HumanDuration>,
    #[serde(default, deserialize_with = "present")]
    pub(super) report_formats: Option<Vec<ReportFormat>>,
    #[serde(default, deserialize_with = "present")]
    pub(super) report_dir: Option<NonEmpty>,
}

/// `request_budget`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRequestBudget {
    #[serde(default, deserialize_with = "integer::<_, 1, U32_MAX>")]
    pub(super) requests_per_hour: Option<u64>,
    #[serde(default, deserialize_with = "integer::<_, 0, U32_MAX>")]
    pub(super) reserve: Option<u64>,
    #[serde(default, deserialize_with = "integer::<_, 1, MAX_IN_FLIGHT>")]
    pub(super) max_in_flight: Option<u64>,
}

/// `mass_change_guard`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMassChangeGuard {
    #[serde(default, deserialize_with = "integer::<_, 1, 100>")]
    pub(super) max_percent: Option<u64>,
    #[serde(default, deserialize_with = "integer::<_, 1, U32_MAX>")]
    pub(super) min_count: Option<u64>,
}

/// `api`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    #[serde(default, deserialize_with = "present")]
    pub(super) bitbucket_url: Option<NonEmpty>,
    #[serde(default, deserialize_with = "present")]
    pub(super) connect_timeout: Option<HumanDuration>,
    #[serde(default, deserialize_with = "present")]
    pub(super) read_timeout: Option<HumanDuration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServerFields {
    #[serde(default, deserialize_with = "present")]
    listen: Option<NonEmpty>,
    #[serde(default, deserialize_with = "present")]
    api_token: Option<NonEmpty>,
    #[serde(default, deserialize_with = "present")]
    api_token_file: Option<NonEmpty>,
    #[serde(default, deserialize_with = "present")]
    tokens: Option<Vec<RawApiToken>>,
    #[serde(default, deserialize_with = "present")]
    webhook_secret: Option<NonEmpty>,
    #[serde(default, deserialize_with = "present")]
    webhook_secret_file: Option<NonEmpty>,
}

/// One entry of `server.tokens` before the exactly-one rule for its secret.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApiTokenFields {
    name: NonEmpty,
    #[serde(default, deserialize_with = "present")]
    token: Option<NonEmpty>,
    #[serde(default, deserialize_with = "present")]
    token_file: Option<NonEmpty>,
    role: ApiRole,
}

/// One entry of `server.tokens`.
#[derive(Deserialize)]
#[serde(try_from = "RawApiTokenFields")]
pub struct RawApiToken {
    pub(super) name: String,
    pub(super) token: SecretSource,
    pub(super) role: ApiRole,
}

impl TryFrom<RawApiTokenFields> for RawApiToken {
    type Error = String;

    fn try_from(f: RawApiTokenFields) -> Result<Self, Self::Error> {
        Ok(RawApiToken {
            name: f.name.0,
            token: exactly_one(f.token, f.token_file, ("token", "token_file"))?,
            role: f.role,
        })
    }
}

/// `server`.
#[derive(Deserialize)]
#[serde(try_from = "RawServerFields")]
pub struct RawServer {
    pub(super) listen: Option<String>,
    pub(super) api_token: Option<SecretSource>,
    pub(super) tokens: Vec<RawApiToken>,
    pub(super) webhook_secret: Option<SecretSource>,
}

impl TryFrom<RawServerFields> for RawServer {
    type Error = String;

    fn try_from(f: RawServerFields) -> Result<Self, Self::Error> {
        let api_token = match (f.api_token, f.api_token_file) {
            (None, None) => None,
            (value, file) => Some(exactly_one(value, file, ("api_token", "api_token_file"))?),
        };
        let webhook_secret = match (f.webhook_secret, f.webhook_secret_file) {
            (None, None) => None,
            (value, file) => Some(exactly_one(
                value,
                file,
                ("webhook_secret", "webhook_secret_file"),
            )?),
        };
        Ok(RawServer {
            listen: f.listen.map(|l| l.0),
            api_token,
            tokens: f.tokens.unwrap_or_default(),
            webhook_secret,
        })
    }
}

/// `identity`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdentity {
    #[serde(default, deserialize_with = "present")]
    pub(super) overrides_file: Option<NonEmpty>,
    #[serde(default, deserialize_with = "present")]
    pub(super) refresh_interval: Option<HumanDuration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAtlassianAdminFields {
    org_id: NonEmpty,
    #[serde(default, deserialize_with = "present")]
    api_key: Option<NonEmpty>,
    #[serde(default, deserialize_with = "present")]
    api_key_file: Option<NonEmpty>,
    #[serde(default, deserialize_with = "present")]
    url: Option<NonEmpty>,
    #[serde(default, deserialize_with = "present")]
    poll_interval: Option<HumanDuration>,
}

/// `atlassian_admin`: the organization API key of the Atlassian organization.
#[derive(Deserialize)]
#[serde(try_from = "RawAtlassianAdminFields")]
pub struct RawAtlassianAdmin {
    pub(super) org_id: String,
    pub(super) api_key: SecretSource,
    pub(super) url: Option<String>,
    pub(super) poll_interval: Option<HumanDuration>,
}

impl TryFrom<RawAtlassianAdminFields> for RawAtlassianAdmin {
    type Error = String;

    fn try_from(f: RawAtlassianAdminFields) -> Result<Self, Self::Error> {
        Ok(RawAtlassianAdmin {
            org_id: f.org_id.0,
            api_key: exactly_one(f.api_key, f.api_key_file, ("api_key", "api_key_file"))?,
            url: f.url.map(|u| u.0),
            poll_interval: f.poll_interval,
        })
    }
}
