//! The audit report as data: its sections, its findings with stable kinds, and how it hashes.
//!
//! The effective access matrix is the one section too large to hold: a [`Report`] holds every
//! other section and the matrix's own hash, `access_matrix_sha256` (the SHA-256 of the matrix's
//! compact JSON array); the rows themselves are streamed from the facts into the files (see
//! [`super::Matrix`]). The report's `sha256` is the SHA-256 (lower-case hex) of the report's
//! compact JSON without the matrix's rows and without its last member, `sha256`: the members in
//! the order the report writes them (the schema's order, `access_matrix` left out), no
//! whitespace. So the report's hash covers the matrix through `access_matrix_sha256`, and a
//! stored report can be checked without its rows. The stored form of a report is exactly those
//! bytes with `,"sha256":"<hash>"` put back before the closing brace, so anyone can check a
//! stored report by removing that member and hashing the rest. Every renderer starts from this
//! one value, so every format shows the same hash.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::store::chain::Sha256Writer;

/// The version of the report's JSON shape (`schemas/audit-report.schema.json`).
pub const REPORT_VERSION: u32 = 2;

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing; no action expected.
    Info,
    /// Someone should look at it.
    Warning,
    /// Access that should not be there.
    Critical,
}

impl Severity {
    /// The report's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

macro_rules! finding_kinds {
    ($( $(#[$doc:meta])* $variant:ident => $text:literal, $severity:ident ),+ $(,)?) => {
        /// What a finding is about. The snake_case names are stable: scripts and `--fail-on`
        /// use them.
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
            clap::ValueEnum,
        )]
        pub enum FindingKind {
            $( $(#[$doc])* #[serde(rename = $text)] #[value(name = $text)] $variant, )+
        }

        impl FindingKind {
            /// Every kind, in report order.
            pub const ALL: &'static [FindingKind] = &[$(FindingKind::$variant),+];

            /// The stable name.
            pub fn as_str(self) -> &'static str {
                match self { $(FindingKind::$variant => $text,)+ }
            }

            /// The severity every finding of this kind has.
            pub fn severity(self) -> Severity {
                match self { $(FindingKind::$variant => Severity::$severity,)+ }
            }
        }
    };
}

finding_kinds!(
    /// A repository has more accounts with effective admin than `max_admins_per_repository`.
    AdminLimitExceeded => "admin_limit_exceeded", Warning,
    /// A workspace has more owners than `max_workspace_owners`.
    OwnerLimitExceeded => "owner_limit_exceeded", Warning,
    /// A repository is public: anyone can read it.
    PublicRepository => "public_repository", Warning,
    /// An explicit user permission on a repository, where a group would do.
    DirectUserPermission => "direct_user_permission", Info,
    /// An account with access whose email is outside `allowed_email_domains`.
    OutsideDomain => "outside_domain", Warning,
    /// An account with access that matches no person.
    UnmatchedAccount => "unmatched_account", Warning,
    /// An account inactive in Jira that still has access.
    InactiveWithAccess => "inactive_with_access", Critical,
    /// A change in Bitbucket that the connector did not make.
    Drift => "drift", Warning,
    /// An ended grant whose level is still present in Bitbucket after the grace period.
    ExpiredGrantPresent => "expired_grant_present", Critical,
    /// A grant Bitbucket refused.
    GrantFailed => "grant_failed", Warning,
    /// A grant that met a level someone else changed.
    GrantConflict => "grant_conflict", Warning,
    /// A grant longer than the grant policy allows (or standing where none are allowed).
    GrantTooLong => "grant_too_long", Warning,
    /// Listings the report rests on were never read or their last read failed.
    IncompleteFacts => "incomplete_facts", Warning,
);

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing the audit flags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Finding {
    /// Stable across reports for the same finding: the kind and the subjects
    /// (`public_repository:acme/site`), so two reports can be compared.
    pub id: String,
    /// What it is about.
    pub kind: FindingKind,
    /// How much it matters.
    pub severity: Severity,
    /// What it names: accounts, repositories, workspaces, grants (`grant:12`), audit entries
    /// (`audit_log:40`).
    pub subjects: Vec<String>,
    /// One sentence for people.
    pub message: String,
}

impl Finding {
    /// A finding of `kind` about `subjects`.
    pub fn new(kind: FindingKind, subjects: Vec<String>, message: String) -> Finding {
        Finding {
            id: format!("{}:{}", kind.as_str(), subjects.join("|")),
            kind,
            severity: kind.severity(),
            subjects,
            message,
        }
    }
}

/// Text of a matrix row: cloning a row (to hand one batch to several renderers) then copies
/// no text.
pub type Text = Arc<str>;

/// Serde for [`Text`] as a plain string (serde's own support needs its `rc` feature).
mod text {
    use super::Text;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Text, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(t)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Text, D::Error> {
        String::deserialize(d).map(Text::from)
    }

    /// The same for an optional text.
    pub mod option {
        use super::Text;
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(t: &Option<Text>, s: S) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.serialize_str(t),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Text>, D::Error> {
            Option::<String>::deserialize(d).map(|t| t.map(Text::from))
        }
    }

    /// The same for a list of texts.
    pub mod list {
        use super::Text;
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(t: &[Text], s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(t.iter().map(|t| &**t))
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Text>, D::Error> {
            Vec::<String>::deserialize(d).map(|t| t.into_iter().map(Text::from).collect())
        }
    }
}

/// One account's effective level on one repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatrixRow {
    /// Workspace slug.
    #[serde(with = "text")]
    pub workspace: Text,
    /// Repository slug.
    #[serde(with = "text")]
    pub repository: Text,
    /// Atlassian account id.
    #[serde(with = "text")]
    pub account_id: Text,
    /// Display name.
    #[serde(with = "text")]
    pub display_name: Text,
    /// The person's email, when matched.
    #[serde(with = "text::option")]
    pub email: Option<Text>,
    /// Effective level.
    #[serde(with = "text")]
    pub level: Text,
    /// Every source with its level (`group developers: write`).
    #[serde(with = "text::list")]
    pub sources: Vec<Text>,
}

/// Where an administrator holds admin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminScope {
    /// A workspace owner.
    Workspace,
    /// Admin on a project.
    Project,
    /// Effective admin on a repository.
    Repository,
}

impl AdminScope {
    /// The report's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AdminScope::Workspace => "workspace",
            AdminScope::Project => "project",
            AdminScope::Repository => "repository",
        }
    }
}

/// One administrator of a workspace, project or repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminRow {
    /// Workspace, project or repository.
    pub scope: AdminScope,
    /// Workspace slug.
    pub workspace: String,
    /// The workspace slug, project key or repository slug.
    pub resource: String,
    /// Atlassian account id.
    pub account_id: String,
    /// Display name.
    pub display_name: String,
    /// The person's email, when matched.
    pub email: Option<String>,
    /// Why (`workspace owner`, `group admins`, `direct`).
    pub via: Vec<String>,
}

/// A drift entry of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriftRow {
    /// The audit-log entry's id.
    pub audit_id: i64,
    /// When the listing that showed it was read.
    pub observed_at: DateTime<Utc>,
    /// What changed (`repository_user_permission acme/api 557058:…`).
    pub subject: String,
    /// The stored value before, `null` when the fact is new.
    pub before: Option<serde_json::Value>,
    /// The observed value, `null` when the fact disappeared.
    pub after: Option<serde_json::Value>,
    /// Who made the change, when an organization audit-log event led to it (absent when a
    /// full read found it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_by: Option<DriftActor>,
}

/// Who made a drifted change, from the organization audit-log event that led to its refresh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriftActor {
    /// The actor's Atlassian account id.
    pub account_id: String,
    /// The actor's display name.
    pub name: String,
    /// Whether an API token made the change (else a browser session).
    pub api_token: bool,
    /// The audit-log event's id.
    pub event_id: String,
    /// When the change happened, as the audit log says.
    pub event_time: DateTime<Utc>,
}

/// Drift since the previous report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriftSection {
    /// Entries from this time on (the previous report's generation time), `null`: every entry.
    pub since: Option<DateTime<Utc>>,
    /// The entries, oldest first.
    pub entries: Vec<DriftRow>,
}

/// Why a grant is in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantCategory {
    /// In force.
    Active,
    /// Ended or revoked since the previous report.
    EndedSincePrevious,
    /// Bitbucket refused it.
    Failed,
    /// It met a level someone else changed.
    Conflict,
    /// Ended, yet its level is still present in Bitbucket.
    ExpiredPresent,
}

impl GrantCategory {
    /// The report's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantCategory::Active => "active",
            GrantCategory::EndedSincePrevious => "ended_since_previous",
            GrantCategory::Failed => "failed",
            GrantCategory::Conflict => "conflict",
            GrantCategory::ExpiredPresent => "expired_present",
        }
    }
}

/// One grant in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantRow {
    /// Why it is listed.
    pub category: GrantCategory,
    /// The grant's id.
    pub id: i64,
    /// Its state.
    pub state: String,
    /// Who received it (`user 557058:…`, `group devs`).
    pub principal: String,
    /// `repository` or `project`.
    pub resource_kind: String,
    /// `ws/repo` or `ws/KEY`.
    pub resource: String,
    /// The granted level.
    pub level: String,
    /// The level to restore, `null` for none.
    pub baseline: Option<String>,
    /// Who asked.
    pub requested_by: String,
    /// The ticket.
    pub ticket: Option<String>,
    /// When it started.
    pub starts_at: DateTime<Utc>,
    /// When it ends, `null` for a standing grant.
    pub expires_at: Option<DateTime<Utc>>,
    /// When its state last changed.
    pub updated_at: DateTime<Utc>,
}

/// A listing whose last read failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailedListing {
    /// The listing.
    pub listing: String,
    /// When the read failed.
    pub failed_at: DateTime<Utc>,
    /// Why.
    pub message: String,
}

/// A sync run whose reads the report rests on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncRunRef {
    /// Its id.
    pub id: i64,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended, `null` if it never did.
    pub finished_at: Option<DateTime<Utc>>,
    /// `complete`, `partial`, `failed`, or `null` if it never ended.
    pub outcome: Option<String>,
}

/// How old the facts are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Freshness {
    /// The oldest complete read the report rests on, `null` when nothing was read.
    pub oldest_read_at: Option<DateTime<Utc>>,
    /// Its age at generation time, in seconds.
    pub oldest_fact_age_seconds: Option<i64>,
    /// Listings never read completely (their facts are missing).
    pub never_read: Vec<String>,
    /// Listings whose last read failed (their facts are older).
    pub failed: Vec<FailedListing>,
    /// The sync runs that last read the listings.
    pub sync_runs: Vec<SyncRunRef>,
}

/// The policy values the report applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyUsed {
    /// `audit_policy.allowed_email_domains` (empty: not checked).
    pub allowed_email_domains: Vec<String>,
    /// `audit_policy.max_admins_per_repository`.
    pub max_admins_per_repository: Option<u32>,
    /// `audit_policy.max_workspace_owners`.
    pub max_workspace_owners: Option<u32>,
    /// `audit_policy.flag_unmatched_accounts`.
    pub flag_unmatched_accounts: bool,
    /// `audit_policy.flag_direct_user_permissions`.
    pub flag_direct_user_permissions: bool,
    /// `audit_policy.expired_grant_grace`, in seconds.
    pub expired_grant_grace_seconds: u64,
    /// `grant_policy.max_duration`, in seconds.
    pub max_grant_duration_seconds: u64,
    /// `grant_policy.allow_standing_grants`.
    pub allow_standing_grants: bool,
}

/// The previous report this one compares with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviousReport {
    /// Its store id.
    pub id: i64,
    /// When it was generated.
    pub generated_at: DateTime<Utc>,
    /// Its SHA-256.
    pub sha256: String,
}

/// What changed since the previous report.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Changes {
    /// Ids of findings the previous report did not have (all, when there is none).
    pub new: Vec<String>,
    /// Findings of the previous report that are gone.
    pub resolved: Vec<Finding>,
}

/// Counts for the first look.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    /// Findings in all.
    pub findings: u64,
    /// Findings by kind (kinds without findings left out).
    pub by_kind: BTreeMap<String, u64>,
    /// Findings by severity.
    pub by_severity: BTreeMap<String, u64>,
    /// Rows of the access matrix.
    pub access_rows: u64,
    /// Accounts with access.
    pub accounts_with_access: u64,
}

/// A permission audit report: every section but the matrix's rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// [`REPORT_VERSION`].
    pub report_version: u32,
    /// When it was generated (from the injected clock).
    pub generated_at: DateTime<Utc>,
    /// The workspaces audited.
    pub workspaces: Vec<String>,
    /// The policy values applied.
    pub policy: PolicyUsed,
    /// The report it compares with, `null` for the first.
    pub previous: Option<PreviousReport>,
    /// Counts.
    pub summary: Summary,
    /// Every finding, most severe first, then by kind and id.
    pub findings: Vec<Finding>,
    /// New and resolved findings since the previous report.
    pub changes: Changes,
    /// SHA-256 of the effective access matrix's compact JSON array (its rows are streamed into
    /// the files, not held here).
    pub access_matrix_sha256: String,
    /// Administrators of every workspace, project and repository.
    pub administrators: Vec<AdminRow>,
    /// Drift since the previous report.
    pub drift: DriftSection,
    /// Active, recently ended, failed, conflicting and still-present grants.
    pub grants: Vec<GrantRow>,
    /// The age of the facts and the sync runs behind them.
    pub freshness: Freshness,
    /// SHA-256 of the compact JSON without this field (and without the matrix's rows).
    pub sha256: String,
}

/// The report without its hash, borrowed: what the hash covers, in the report's member order.
#[derive(Serialize)]
struct Content<'a> {
    report_version: u32,
    generated_at: &'a DateTime<Utc>,
    workspaces: &'a [String],
    policy: &'a PolicyUsed,
    previous: &'a Option<PreviousReport>,
    summary: &'a Summary,
    findings: &'a [Finding],
    changes: &'a Changes,
    access_matrix_sha256: &'a str,
    administrators: &'a [AdminRow],
    drift: &'a DriftSection,
    grants: &'a [GrantRow],
    freshness: &'a Freshness,
}

impl Report {
    fn content(&self) -> Content<'_> {
        Content {
            report_version: self.report_version,
            generated_at: &self.generated_at,
            workspaces: &self.workspaces,
            policy: &self.policy,
            previous: &self.previous,
            summary: &self.summary,
            findings: &self.findings,
            changes: &self.changes,
            access_matrix_sha256: &self.access_matrix_sha256,
            administrators: &self.administrators,
            drift: &self.drift,
            grants: &self.grants,
            freshness: &self.freshness,
        }
    }

    /// The SHA-256 of the report's content (its compact JSON without `sha256`; the matrix
    /// counts through `access_matrix_sha256`).
    pub fn content_hash(&self) -> String {
        let mut writer = Sha256Writer::new(std::io::sink());
        // Writing into a sink cannot fail, and a report holds only serialisable values.
        let _ = serde_json::to_writer(&mut writer, &self.content());
        writer.finish().unwrap_or_default()
    }

    /// Sets `sha256` to the content hash.
    pub fn seal(&mut self) {
        self.sha256 = self.content_hash();
    }

    /// The stored form: compact JSON, `sha256` last, without the matrix's rows.
    pub fn stored_form(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a stored report back (the JSON file, which also holds the matrix's rows, does not
    /// parse as one: read it as JSON).
    pub fn parse(text: &str) -> Result<Report, serde_json::Error> {
        serde_json::from_str(text)
    }
}
