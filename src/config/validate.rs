//! Semantic checks the schema cannot express (cron expressions, URLs, durations, listen
//! addresses, secret files, list rules), collecting every problem with its JSON pointer while it
//! assembles the typed [`Config`](super::Config).

use super::database_url::{DatabaseUrl, DEFAULT_DATABASE_URL};
use super::duration::{format_duration, HumanDuration};
use super::error::Problem;
use super::raw::{
    RawApi, RawAtlassianAdmin, RawAuditPolicy, RawConfig, RawGrantPolicy, RawIdentity, RawJira,
    RawMassChangeGuard, RawRequestBudget, RawSchedules, RawServer, SecretSource,
};
use super::secret;
use super::types::{
    ApiSettings, ApiToken, AtlassianAdmin, AuditPolicy, Config, CronSchedule, GrantPolicy,
    IdentitySettings, JiraCredentials, MassChangeLimits, RequestBudget, ScheduleZone, Schedules,
    ServerSettings, DEFAULT_ADMIN_URL, DEFAULT_IDENTITY_REFRESH, DEFAULT_ORG_POLL_INTERVAL,
    LEGACY_TOKEN_NAME,
};
use super::{DEFAULT_BITBUCKET_URL, MAX_DURATION};
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;
use url::Url;

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
pub(super) struct Builder<'a> {
    base_dir: &'a Path,
    pub(super) problems: Vec<Problem>,
}

impl<'a> Builder<'a> {
    /// A builder that resolves relative paths against `base_dir`.
    pub(super) fn new(base_dir: &'a Path) -> Builder<'a> {
        Builder {
            base_dir,
            problems: Vec::new(),
        }
    }

    fn problem(&mut self, pointer: &str, message: impl Into<String>) {
        self.problems.push(Problem::new(pointer, message));
    }

    /// Semantic checks for the sections that are well formed, when the schema check failed
    /// elsewhere: so a bad cron expression is reported together with an unknown field.
    pub(super) fn check_sections(&mut self, value: &Value) {
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
        for file_pointer in [
            "/app_token_file",
            "/jira_credentials/key_file",
            "/server/api_token_file",
            "/atlassian_admin/api_key_file",
        ] {
            if let Some(file) = value.pointer(file_pointer).and_then(Value::as_str) {
                self.secret(SecretSource::File(file.to_string()), file_pointer);
            }
            let inline = file_pointer.trim_end_matches("_file");
            if let Some(token) = value.pointer(inline).and_then(Value::as_str) {
                self.secret(SecretSource::Value(token.to_string()), file_pointer);
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
        if let Some(url) = value
            .pointer("/atlassian_admin/url")
            .and_then(Value::as_str)
        {
            self.base_url("/atlassian_admin/url", url, "the Organizations API");
        }
    }

    pub(super) fn config(&mut self, raw: RawConfig) -> Option<Config> {
        let email = self.email("/email", &raw.email);
        let app_token = self.secret(raw.app_token, "/app_token_file");
        let jira = raw.jira_credentials.map(|j| self.jira(j));
        let workspaces = self.workspaces(raw.workspaces);
        let database_url = self.database_url(raw.database_url);
        let schedules = self.schedules(raw.schedules);
        let grant_policy = self.grant_policy(raw.grant_policy);
        let audit_policy = self.audit_policy(raw.audit_policy);
        let request_budget = self.request_budget(raw.request_budget);
        let mass_change_guard = mass_change_guard(raw.mass_change_guard);
        let api = self.api(raw.api);
        let server = self.server(raw.server);
        let identity = self.identity(raw.identity);
        let atlassian_admin = raw.atlassian_admin.map(|a| self.atlassian_admin(a));
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
            mass_change_guard,
            api: api?,
            server: server?,
            identity: identity?,
            atlassian_admin: match atlassian_admin {
                Some(a) => Some(a?),
                None => None,
            },
        })
    }

    fn email(&mut self, pointer: &str, email: &str) -> Option<String> {
        match secret::email_problem(email) {
            None => Some(email.to_string()),
            Some(message) => {
                self.problem(pointer, message);
                None
            }
        }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.base_dir.join(relative)
    }

    /// A secret given inline (reported at the field without `_file`) or through a file
    /// (reported at `file_pointer`), bounded and checked for the characters a token may hold.
    fn secret(&mut self, source: SecretSource, file_pointer: &str) -> Option<SecretString> {
        let (pointer, value) = match source {
            SecretSource::Value(value) => (file_pointer.trim_end_matches("_file"), value),
            SecretSource::File(file) => match secret::read_file(&self.path(&file)) {
                Ok(value) => (file_pointer, value),
                Err(message) => {
                    self.problem(file_pointer, message);
                    return None;
                }
            },
        };
        match secret::token_problem(&value) {
            None => Some(SecretString::from(value)),
            Some(message) => {
                self.problem(pointer, message);
                None
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
        let gateway_url = match raw.gateway_url {
            Some(text) => self.base_url("/jira_credentials/gateway_url", &text, "the API gateway"),
            None => Url::parse(crate::jira::DEFAULT_GATEWAY).ok(),
        };
        Some(JiraCredentials {
            url: url?,
            user: user?,
            key: key?,
            gateway_url: gateway_url?,
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
        let mut seen: HashSet<&str> = HashSet::with_capacity(list.len());
        for (i, slug) in list.iter().enumerate() {
            let pointer = format!("/workspaces/{i}");
            let valid = !slug.is_empty()
                && slug
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !valid {
                self.problem(&pointer, "is not a workspace slug (letters, digits, -, _ and . only, as in the workspace's URL)");
            } else if !seen.insert(slug) {
                self.problem(
                    &pointer,
                    format!("lists the workspace {slug} a second time"),
                );
            }
        }
        (self.problems.len() == before).then_some(list)
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
        let time_zone = match raw.time_zone {
            None => Some(defaults.time_zone),
            Some(text) => match ScheduleZone::parse(&text) {
                Ok(zone) => Some(zone),
                Err(message) => {
                    self.problem("/schedules/time_zone", message);
                    None
                }
            },
        };
        Some(Schedules {
            sync: sync?,
            audit: audit?,
            expiry: expiry?,
            time_zone: time_zone?,
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
            on_conflict: raw.on_conflict.unwrap_or(defaults.on_conflict),
        })
    }

    fn audit_policy(&mut self, raw: Option<RawAuditPolicy>) -> Option<AuditPolicy> {
        let defaults = AuditPolicy::defaults(self.base_dir);
        let Some(raw) = raw else {
            return Some(defaults);
        };
        let before = self.problems.len();
        let mut domains = Vec::new();
        let mut seen_domains = HashSet::new();
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
                if seen_domains.insert(d.clone()) {
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
        let mut seen = HashSet::new();
        formats.retain(|f| seen.insert(*f));
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
            flag_direct_user_permissions: raw
                .flag_direct_user_permissions
                .unwrap_or(defaults.flag_direct_user_permissions),
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
        let mut tokens = Some(Vec::with_capacity(raw.tokens.len()));
        let mut names = std::collections::HashSet::new();
        for (i, entry) in raw.tokens.into_iter().enumerate() {
            let pointer = format!("/server/tokens/{i}");
            if entry.name == LEGACY_TOKEN_NAME || !names.insert(entry.name.clone()) {
                self.problem(
                    &format!("{pointer}/name"),
                    format!(
                        "{:?} is already taken (by another token or by server.api_token); give each token its own name",
                        entry.name
                    ),
                );
                tokens = None;
                continue;
            }
            match self.secret(entry.token, &format!("{pointer}/token_file")) {
                Some(token) => {
                    if let Some(list) = tokens.as_mut() {
                        list.push(ApiToken {
                            name: entry.name,
                            token,
                            role: entry.role,
                        });
                    }
                }
                None => tokens = None,
            }
        }
        let webhook_secret = match raw.webhook_secret {
            None => Some(None),
            Some(source) => self.secret(source, "/server/webhook_secret_file").map(Some),
        };
        let no_tokens = matches!(api_token, Some(None)) && raw_tokens_empty(tokens.as_deref());
        if let (Some(addr), true) = (listen, no_tokens) {
            if !is_loopback_ip(addr.ip()) {
                self.problem(
                    "/server/listen",
                    "is not a loopback address, so the HTTP API would be reachable by others; set server.tokens (or server.api_token)",
                );
                return None;
            }
        }
        Some(ServerSettings {
            listen: listen?,
            api_token: api_token?,
            tokens: tokens?,
            webhook_secret: webhook_secret?,
        })
    }

    fn atlassian_admin(&mut self, raw: RawAtlassianAdmin) -> Option<AtlassianAdmin> {
        let api_key = self.secret(raw.api_key, "/atlassian_admin/api_key_file");
        let url = match raw.url {
            Some(text) => self.base_url("/atlassian_admin/url", &text, "the Organizations API"),
            None => Url::parse(DEFAULT_ADMIN_URL).ok(),
        };
        let poll_interval = self.nonzero(
            "/atlassian_admin/poll_interval",
            raw.poll_interval,
            DEFAULT_ORG_POLL_INTERVAL,
        );
        // The id is a path segment of every request: a slash or space would change the path.
        let org_id = if raw
            .org_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            Some(raw.org_id)
        } else {
            self.problem(
                "/atlassian_admin/org_id",
                "must be the organization id from admin.atlassian.com (letters, digits, '-' and '_'); copy it from the admin URL admin.atlassian.com/o/{org_id}",
            );
            None
        };
        Some(AtlassianAdmin {
            org_id: org_id?,
            api_key: api_key?,
            url: url?,
            poll_interval: poll_interval?,
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
        let refresh_interval = self.nonzero(
            "/identity/refresh_interval",
            raw.refresh_interval,
            DEFAULT_IDENTITY_REFRESH,
        )?;
        Some(IdentitySettings {
            overrides_file,
            refresh_interval,
        })
    }
}

fn is_loopback_ip(ip: IpAddr) -> bool {
    ip.is_loopback()
}

/// The guard's limits; the schema already bounds both numbers, so nothing can be wrong here.
fn mass_change_guard(raw: Option<RawMassChangeGuard>) -> MassChangeLimits {
    let defaults = MassChangeLimits::default();
    let Some(raw) = raw else {
        return defaults;
    };
    MassChangeLimits {
        max_percent: raw
            .max_percent
            .and_then(|n| u8::try_from(n).ok())
            .unwrap_or(defaults.max_percent),
        min_count: raw.min_count.unwrap_or(defaults.min_count),
    }
}

/// Whether no named token was configured (`None`: the list had problems, which are reported).
fn raw_tokens_empty(tokens: Option<&[ApiToken]>) -> bool {
    tokens.is_some_and(<[ApiToken]>::is_empty)
}
