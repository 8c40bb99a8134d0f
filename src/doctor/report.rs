//! The doctor's report: what was checked, the state of each capability, and every problem
//! with its fix. Serialized as is by `doctor --format json`.

use crate::store::StoreHealth;
use serde::Serialize;

/// The full result of a doctor run.
#[derive(Debug, Clone, Serialize)]
pub struct DoctorReport {
    /// Whether Basic `email:token` authentication works, and as whom.
    pub authentication: AuthCheck,
    /// Every workspace the account can see, and the configured ones it cannot.
    pub workspaces: Vec<WorkspaceCheck>,
    /// One line per capability of `connector.json`.
    pub capabilities: Vec<CapabilityCheck>,
    /// The Jira credentials, when configured.
    pub jira: Option<JiraCheck>,
    /// The Atlassian organization checks, when `atlassian_admin` is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org: Option<super::org::OrgCheck>,
    /// The request budget the connector will keep to.
    pub budget: BudgetCheck,
    /// The configured store: does it answer, take writes, and have every migration.
    pub store: StoreCheck,
    /// Every problem, each with its fix. Empty means everything the config asks for will work.
    pub problems: Vec<Problem>,
    /// Things that work, but less well than they could (some e-mail addresses hidden, say);
    /// they do not make the report unhealthy.
    pub warnings: Vec<Problem>,
}

impl DoctorReport {
    /// True when nothing stands in the way of what the config asks for.
    pub fn healthy(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The store check.
#[derive(Debug, Clone, Serialize)]
pub struct StoreCheck {
    /// The store's URL, without its password.
    pub url: String,
    /// What the probes found.
    #[serde(flatten)]
    pub health: StoreHealth,
}

/// Something that will not work, and how to fix it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Problem {
    /// What does not work.
    pub what: String,
    /// The fix, in one sentence.
    pub fix: String,
}

/// The authentication check.
#[derive(Debug, Clone, Serialize)]
pub struct AuthCheck {
    /// Whether Bitbucket accepted the credentials.
    pub ok: bool,
    /// The configured account e-mail (not a secret).
    pub email: String,
    /// Display name and account id of the authenticated account.
    pub display_name: Option<String>,
    /// Atlassian account id.
    pub account_id: Option<String>,
    /// Bitbucket's answer when it refused.
    pub error: Option<String>,
}

/// One workspace.
#[derive(Debug, Clone, Serialize)]
pub struct WorkspaceCheck {
    /// Slug.
    pub slug: String,
    /// Whether the account can see it.
    pub visible: bool,
    /// Whether the account administers it (needed to read and change permissions).
    pub administrator: bool,
    /// Whether the connector will manage it (named in `workspaces`, or administered when the
    /// config names none).
    pub managed: bool,
}

/// The state of one capability.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum CapabilityState {
    /// Every scope it needs was proven present.
    Ready,
    /// These scopes are missing from the token.
    MissingScopes {
        /// The missing scopes.
        scopes: Vec<String>,
    },
    /// The scopes are there but the account is not an administrator where it must be.
    NotAdministrator,
    /// It could not be checked (the reason says why).
    Unverified {
        /// Why.
        reason: String,
    },
    /// It needs something the config does not have (Jira credentials, say); not a problem.
    NotConfigured {
        /// What is missing.
        reason: String,
    },
}

/// One capability.
#[derive(Debug, Clone, Serialize)]
pub struct CapabilityCheck {
    /// Capability id from `connector.json`.
    pub id: String,
    /// Its state.
    #[serde(flatten)]
    pub state: CapabilityState,
}

/// The Jira check.
#[derive(Debug, Clone, Serialize)]
pub struct JiraCheck {
    /// Whether the credentials work.
    pub ok: bool,
    /// The site URL.
    pub url: String,
    /// The account the credentials authenticate as.
    pub display_name: Option<String>,
    /// Among the sampled people (account type `atlassian`), how many show an e-mail address.
    pub emails_visible: Option<usize>,
    /// How many people were sampled.
    pub people_sampled: Option<usize>,
    /// Jira's answer when it refused.
    pub error: Option<String>,
    /// How the client reaches Jira: the site (classic token) or the API gateway (scoped token).
    pub route: Option<String>,
}

/// The request budget.
#[derive(Debug, Clone, Serialize)]
pub struct BudgetCheck {
    /// Bitbucket's limit the config assumes, per rolling hour.
    pub requests_per_hour: u32,
    /// Requests left for other tools that use the same account.
    pub reserve: u32,
    /// Requests the connector allows itself per rolling hour.
    pub usable_per_hour: u32,
    /// Requests in flight at most.
    pub max_in_flight: usize,
    /// Requests this doctor run sent to Bitbucket.
    pub requests_used_by_doctor: u64,
}
