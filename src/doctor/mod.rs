//! `doctor`: the "Test Connection" of the connector.
//!
//! It answers, with as few requests as it can, whether everything the config asks for will work:
//! who the token authenticates as; which workspaces that account sees and administers; for each
//! capability of `connector.json`, whether the token carries its scopes; whether the Jira
//! credentials work and can see e-mail addresses; and the request budget the connector will use.
//! Every problem comes with its fix in one sentence.
//!
//! # How scopes are probed
//! Bitbucket does not list a token's scopes, but a request that lacks one is refused with 403 and,
//! usually, a `detail` naming the scopes the token has (`granted`) and those the endpoint wanted
//! (`required`). The doctor sends one cheap request per scope family: reads of the user, the
//! workspaces, the projects and the repositories of an administered workspace, and, for the write
//! scopes, a `PUT` and a `DELETE` of the explicit permission of an account that cannot exist
//! (`{00000000-0000-4000-8000-000000000000}`) on one repository and one project. Such a write
//! changes nothing: Bitbucket checks scopes first and then answers 404 or 400 for the unknown
//! account. A success, or a 400/402/404/409/422 (answers given after the scope check), proves the
//! scopes of that request; 401, 410, 429, 5xx and network failures prove nothing, and leave the
//! capabilities that depend on them "unverified" rather than "ready". The repository and project
//! probes use the first managed, administered workspace that has a repository (a project).
//!
//! # Problems and warnings
//! Every missing scope is gathered into one problem naming the capabilities that need it, since
//! one new token fixes them all. Things that work but not fully (some Jira users hide their
//! e-mail address) are warnings: they are reported with their fix but keep the report healthy.

use crate::bitbucket::templates::{
    PROJECTS, PROJECT_USER, PROJECT_USERS, REPOSITORIES, REPO_USER, REPO_USERS, USER,
    USER_WORKSPACES, WORKSPACE_PERMISSIONS,
};
use crate::bitbucket::{
    ApiError, BitbucketClient, ErrorDetail, ErrorKind, PermissionLevel, PermissionTarget, Removal,
};
use crate::config::Config;
use crate::endpoints;
use crate::jira::{AccountType, JiraClient, JiraErrorKind};
use crate::manifest::Manifest;
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use std::collections::BTreeSet;

/// An account id no Atlassian account can have, used by the non-mutating write probes.
pub const PROBE_ACCOUNT: &str = "{00000000-0000-4000-8000-000000000000}";

/// How many Jira users the doctor samples to tell whether e-mail addresses are visible.
const JIRA_SAMPLE: u32 = 100;

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
    /// The request budget the connector will keep to.
    pub budget: BudgetCheck,
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

/// What one probe learned.
#[derive(Debug, Default)]
struct ScopeKnowledge {
    /// Scopes proven present.
    granted: BTreeSet<String>,
    /// Scopes proven missing.
    missing: BTreeSet<String>,
    /// The complete list of the token's scopes, when a 403 told it.
    complete: Option<BTreeSet<String>>,
    /// Endpoints refused because the account is not an administrator.
    not_admin: BTreeSet<String>,
    /// Endpoints the doctor could not probe, with the reason.
    unprobed: Vec<(String, String)>,
}

impl ScopeKnowledge {
    /// Records the outcome of a request to the endpoint `method path`.
    fn record<T>(&mut self, method: &str, path: &str, outcome: &Result<T, ApiError>) {
        let required: Vec<String> = endpoints::scopes(method, path).to_vec();
        match outcome {
            Ok(_) => self.granted.extend(required),
            Err(e) if e.kind == ErrorKind::Forbidden => match &e.detail {
                Some(ErrorDetail::Scopes { granted, required }) => {
                    let granted: BTreeSet<String> = granted.iter().cloned().collect();
                    for scope in required {
                        if !granted.contains(scope) {
                            self.missing.insert(scope.clone());
                        }
                    }
                    self.granted.extend(granted.iter().cloned());
                    self.complete = Some(granted);
                }
                _ => {
                    self.not_admin.insert(format!("{method} {path}"));
                }
            },
            Err(e) if e.status.is_some_and(answered_after_scope_check) => {
                self.granted.extend(required)
            }
            // 401, 410, 429, 5xx and transport failures happen before (or instead of) the
            // scope check, so they prove nothing about the token's scopes.
            Err(e) => self
                .unprobed
                .push((format!("{method} {path}"), e.to_string())),
        }
    }

    /// What the doctor can say about a capability needing `scopes` and calling `calls`.
    fn state_for(&self, scopes: &[String], calls: &[String]) -> CapabilityState {
        let mut missing: Vec<String> = scopes
            .iter()
            .filter(|s| {
                self.missing.contains(*s)
                    || self.complete.as_ref().is_some_and(|all| !all.contains(*s))
            })
            .cloned()
            .collect();
        missing.dedup();
        if !missing.is_empty() {
            return CapabilityState::MissingScopes { scopes: missing };
        }
        if calls.iter().any(|c| self.not_admin.contains(c)) {
            return CapabilityState::NotAdministrator;
        }
        let unknown: Vec<&String> = scopes
            .iter()
            .filter(|s| !self.granted.contains(*s))
            .collect();
        if unknown.is_empty() {
            CapabilityState::Ready
        } else {
            let why = self
                .unprobed
                .first()
                .map(|(call, why)| format!("{call} could not be probed: {why}"))
                .unwrap_or_else(|| "nothing in the managed workspaces to probe".to_string());
            CapabilityState::Unverified {
                reason: format!(
                    "{} not proven ({why})",
                    unknown
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        }
    }
}

/// Whether Bitbucket gives this status only after it has accepted the token's scopes: the
/// request was well-formed and authorised, and failed on its content (unknown account, bad
/// body, seat limit, conflict). 401, 403, 410, 429 and 5xx come earlier or say nothing.
fn answered_after_scope_check(status: u16) -> bool {
    matches!(status, 400 | 402 | 404 | 409 | 422)
}

/// Runs every check. It never fails: what goes wrong becomes a [`Problem`] in the report.
pub async fn run(
    config: &Config,
    bitbucket: &BitbucketClient,
    jira: Option<&JiraClient>,
) -> DoctorReport {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let mut knowledge = ScopeKnowledge::default();

    // 1. Authentication.
    let user = bitbucket.user().await;
    knowledge.record("GET", USER, &user);
    let authentication = match &user {
        Ok(account) => AuthCheck {
            ok: true,
            email: config.email.clone(),
            display_name: account.display_name.clone(),
            account_id: account.account_id.clone(),
            error: None,
        },
        Err(e) => {
            // A missing read:user scope still proves the credentials themselves work.
            let authenticated = e.kind == ErrorKind::Forbidden;
            if !authenticated {
                problems.push(refused_credentials(config, e));
            }
            AuthCheck {
                ok: authenticated,
                email: config.email.clone(),
                display_name: None,
                account_id: None,
                error: Some(e.to_string()),
            }
        }
    };

    let mut workspaces = Vec::new();
    if authentication.ok {
        workspaces = check_workspaces(config, bitbucket, &mut knowledge, &mut problems).await;
        probe_managed(bitbucket, &workspaces, &mut knowledge).await;
    } else {
        knowledge
            .unprobed
            .push(("all endpoints".into(), "authentication failed".into()));
    }

    // 2. Capabilities.
    let manifest = Manifest::get();
    let mut capabilities = Vec::new();
    let mut lacking: BTreeSet<String> = BTreeSet::new();
    let mut lacking_for: Vec<String> = Vec::new();
    for cap in &manifest.capabilities {
        let state = if cap.id == "identity_email_lookup" && config.jira.is_none() {
            CapabilityState::NotConfigured {
                reason: "no jira_credentials; e-mails come only from the workspace-member lookup"
                    .into(),
            }
        } else if !authentication.ok {
            CapabilityState::Unverified {
                reason: "authentication failed".into(),
            }
        } else {
            knowledge.state_for(&cap.scopes, &cap.endpoints)
        };
        match &state {
            // One token fixes every missing scope at once, so they become a single problem
            // (written after the loop) rather than one per capability with the same fix.
            CapabilityState::MissingScopes { scopes } => {
                lacking.extend(scopes.iter().cloned());
                lacking_for.push(cap.id.clone());
            }
            CapabilityState::NotAdministrator => problems.push(Problem {
                what: format!("capability {}: {} is not an administrator where it must be", cap.id, config.email),
                fix: "make the account an administrator of the managed workspaces (or of the repositories and projects it manages)".into(),
            }),
            CapabilityState::Unverified { reason } if authentication.ok => problems.push(Problem {
                what: format!("capability {} could not be verified: {reason}", cap.id),
                fix: "run doctor again once a managed workspace has a repository and a project, or check the network".into(),
            }),
            _ => {}
        }
        capabilities.push(CapabilityCheck {
            id: cap.id.clone(),
            state,
        });
    }

    if !lacking.is_empty() {
        let scopes = lacking.into_iter().collect::<Vec<_>>().join(", ");
        problems.push(Problem {
            what: format!(
                "the API token lacks {scopes}, which {} need{}",
                lacking_for.join(", "),
                if lacking_for.len() == 1 { "s" } else { "" }
            ),
            fix: format!(
                "create a new API token for {} with the scopes of the current one plus {scopes} \
                     (scopes cannot be added to an existing token) and put it in `app_token`.",
                config.email
            ),
        });
    }

    // 3. Jira.
    let jira_check = match (config.jira.as_ref(), jira) {
        (Some(creds), Some(client)) => {
            Some(check_jira(creds.url.as_str(), client, &mut problems, &mut warnings).await)
        }
        _ => None,
    };

    let budget = BudgetCheck {
        requests_per_hour: config.request_budget.requests_per_hour,
        reserve: config.request_budget.reserve,
        usable_per_hour: config
            .request_budget
            .requests_per_hour
            .saturating_sub(config.request_budget.reserve),
        max_in_flight: config.request_budget.max_in_flight,
        requests_used_by_doctor: bitbucket.requests_used(),
    };
    if budget.usable_per_hour == 0 {
        problems.push(Problem {
            what: "the request budget leaves nothing for the connector".into(),
            fix: "lower request_budget.reserve below request_budget.requests_per_hour".into(),
        });
    }

    DoctorReport {
        authentication,
        workspaces,
        capabilities,
        jira: jira_check,
        budget,
        problems,
        warnings,
    }
}

/// The problem for credentials Bitbucket refused, with the fix that fits the refusal.
fn refused_credentials(config: &Config, e: &ApiError) -> Problem {
    if e.removed == Some(Removal::AppPasswords) {
        // The one refusal whose fix is not "check the token": app passwords are gone for good,
        // so say exactly what to create instead.
        return Problem {
            what: format!(
                "`app_token` is a Bitbucket app password, and Bitbucket no longer accepts app \
                 passwords (HTTP 410, CHANGE-3222) for {}",
                config.email
            ),
            fix: format!(
                "create an Atlassian API token with scopes at \
                 https://id.atlassian.com/manage-profile/security/api-tokens (choose Bitbucket and \
                 select {}), put it in `app_token`, and set `email` to the Atlassian account \
                 e-mail address of its owner.",
                {
                    let mut scopes = Manifest::get().all_scopes();
                    scopes.sort_unstable();
                    scopes.join(", ")
                }
            ),
        };
    }
    let what = match e.status {
        Some(401) => format!(
            "Bitbucket rejected the API token with the username {} (HTTP 401: {})",
            config.email, e.message
        ),
        _ => format!(
            "Bitbucket refused the credentials of {}: {}",
            config.email, e.message
        ),
    };
    Problem {
        what,
        fix: e.hint.clone(),
    }
}

async fn check_workspaces(
    config: &Config,
    bitbucket: &BitbucketClient,
    knowledge: &mut ScopeKnowledge,
    problems: &mut Vec<Problem>,
) -> Vec<WorkspaceCheck> {
    let listed = bitbucket.workspaces().list().collect_all().await;
    knowledge.record("GET", USER_WORKSPACES, &listed);
    let listed = match listed {
        Ok(l) => l,
        Err(e) => {
            problems.push(Problem {
                what: format!("cannot list the account's workspaces: {}", e.message),
                fix: e.hint.clone(),
            });
            return Vec::new();
        }
    };
    let mut out: Vec<WorkspaceCheck> = listed
        .iter()
        .map(|w| WorkspaceCheck {
            slug: w.workspace.slug.clone(),
            visible: true,
            administrator: w.administrator,
            managed: if config.workspaces.is_empty() {
                w.administrator
            } else {
                config.workspaces.contains(&w.workspace.slug)
            },
        })
        .collect();
    for slug in &config.workspaces {
        match out.iter().find(|w| &w.slug == slug) {
            None => {
                problems.push(Problem {
                    what: format!("workspace {slug} (in `workspaces`) is not visible to {}", config.email),
                    fix: format!(
                        "check the slug in the workspace's URL (bitbucket.org/{slug}) and that {} is a member of it",
                        config.email
                    ),
                });
                out.push(WorkspaceCheck { slug: slug.clone(), visible: false, administrator: false, managed: true });
            }
            Some(w) if !w.administrator => problems.push(Problem {
                what: format!("{} does not administer workspace {slug}", config.email),
                fix: format!(
                    "ask an owner of {slug} to make {} an administrator, or remove {slug} from `workspaces`",
                    config.email
                ),
            }),
            Some(_) => {}
        }
    }
    if config.workspaces.is_empty() && !out.iter().any(|w| w.administrator) {
        problems.push(Problem {
            what: format!("{} administers no workspace, so there is nothing to manage", config.email),
            fix: "make the account an administrator of the workspaces to manage, or list them in `workspaces`".into(),
        });
    }
    out
}

/// Sends the scope probes: the workspace-level reads against the first managed, administered
/// workspace, and the repository and project probes against the first such workspace that has
/// a repository (a project), so one empty workspace does not leave capabilities unverified.
async fn probe_managed(
    bitbucket: &BitbucketClient,
    workspaces: &[WorkspaceCheck],
    knowledge: &mut ScopeKnowledge,
) {
    let candidates: Vec<&str> = workspaces
        .iter()
        .filter(|w| w.managed && w.administrator)
        .map(|w| w.slug.as_str())
        .collect();
    let Some(first) = candidates.first().copied() else {
        knowledge.unprobed.push((
            "workspace probes".into(),
            "no managed workspace the account administers".into(),
        ));
        return;
    };
    let first_member = async {
        let mut s = bitbucket.workspaces().permissions(first);
        s.next().await.transpose()
    }
    .await;
    knowledge.record("GET", WORKSPACE_PERMISSIONS, &first_member);

    let mut repo_target: Option<(&str, String)> = None;
    let mut project_target: Option<(&str, String)> = None;
    for ws in &candidates {
        if repo_target.is_none() {
            let repo = bitbucket.repositories(ws).list(None).try_next().await;
            knowledge.record("GET", REPOSITORIES, &repo);
            repo_target = repo
                .ok()
                .flatten()
                .and_then(|r| r.slug().map(str::to_owned))
                .map(|slug| (*ws, slug));
        }
        if project_target.is_none() {
            let project = bitbucket.projects(ws).list().try_next().await;
            knowledge.record("GET", PROJECTS, &project);
            project_target = project.ok().flatten().map(|p| (*ws, p.key));
        }
        if repo_target.is_some() && project_target.is_some() {
            break;
        }
    }

    let perms = bitbucket.permissions();
    match &repo_target {
        Some((ws, slug)) => {
            let target = PermissionTarget::Repository {
                workspace: ws,
                repo_slug: slug,
            };
            let list = perms.list_users(target).try_next().await;
            knowledge.record("GET", REPO_USERS, &list);
            let put = perms
                .put_user(target, PROBE_ACCOUNT, PermissionLevel::Read)
                .await;
            knowledge.record("PUT", REPO_USER, &put);
            let delete = perms.delete_user(target, PROBE_ACCOUNT).await;
            knowledge.record("DELETE", REPO_USER, &delete);
        }
        None => knowledge.unprobed.push((
            format!("PUT {REPO_USER}"),
            "no managed workspace has a repository".into(),
        )),
    }
    match &project_target {
        Some((ws, key)) => {
            let target = PermissionTarget::Project {
                workspace: ws,
                project_key: key,
            };
            let list = perms.list_users(target).try_next().await;
            knowledge.record("GET", PROJECT_USERS, &list);
            let put = perms
                .put_user(target, PROBE_ACCOUNT, PermissionLevel::Read)
                .await;
            knowledge.record("PUT", PROJECT_USER, &put);
            let delete = perms.delete_user(target, PROBE_ACCOUNT).await;
            knowledge.record("DELETE", PROJECT_USER, &delete);
        }
        None => knowledge.unprobed.push((
            format!("PUT {PROJECT_USER}"),
            "no managed workspace has a project".into(),
        )),
    }
}

async fn check_jira(
    url: &str,
    jira: &JiraClient,
    problems: &mut Vec<Problem>,
    warnings: &mut Vec<Problem>,
) -> JiraCheck {
    let mut check = JiraCheck {
        ok: false,
        url: url.to_string(),
        display_name: None,
        emails_visible: None,
        people_sampled: None,
        error: None,
    };
    match jira.myself().await {
        Ok(me) => {
            check.ok = true;
            check.display_name = Some(me.display_name);
        }
        Err(e) => {
            let what = if e.kind == JiraErrorKind::ScopedToken {
                "Jira refused a scoped API token on the site URL".to_string()
            } else {
                format!("Jira refused the credentials: {}", e.message)
            };
            problems.push(Problem {
                what,
                fix: e.hint.clone(),
            });
            check.error = Some(e.to_string());
            return check;
        }
    }
    let sample: Result<Vec<_>, _> = jira
        .users_search_paged(JIRA_SAMPLE)
        .take(JIRA_SAMPLE as usize)
        .try_collect()
        .await;
    match sample {
        Ok(users) => {
            let people: Vec<_> = users
                .iter()
                .filter(|u| u.account_type == AccountType::Atlassian)
                .collect();
            let visible = people.iter().filter(|u| u.email.is_some()).count();
            check.people_sampled = Some(people.len());
            check.emails_visible = Some(visible);
            let fix = "ask users (or an organization admin, for managed accounts) to set their \
                e-mail visibility to Anyone, or map the others in identity.overrides_file";
            if !people.is_empty() && visible == 0 {
                problems.push(Problem {
                    what: format!(
                        "Jira hides the e-mail address of all {} people sampled, so Jira cannot \
                         match any account to an e-mail address",
                        people.len()
                    ),
                    fix: fix.into(),
                });
            } else if visible < people.len() {
                warnings.push(Problem {
                    what: format!(
                        "Jira hides the e-mail address of {} of the {} people sampled; those \
                         accounts can only be matched through Bitbucket or the overrides file",
                        people.len() - visible,
                        people.len()
                    ),
                    fix: fix.into(),
                });
            }
        }
        Err(e) => {
            problems.push(Problem {
                what: format!("Jira cannot list users: {}", e.message),
                fix: "give the Jira account the Browse users and groups global permission".into(),
            });
            check.error = Some(e.to_string());
        }
    }
    check
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bitbucket::AuthMethod;

    fn answer(status: u16, body: &str, method: &str, path: &'static str) -> Result<(), ApiError> {
        Err(ApiError::from_response(
            status,
            body.as_bytes(),
            method,
            path,
            AuthMethod::ApiToken,
            1,
        ))
    }

    fn scopes(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_404_to_a_write_probe_proves_its_scopes() {
        let mut k = ScopeKnowledge::default();
        k.record("PUT", REPO_USER, &answer(404, "", "PUT", REPO_USER));
        let needed = endpoints::scopes("PUT", REPO_USER).to_vec();
        assert!(!needed.is_empty());
        assert_eq!(k.state_for(&needed, &[]), CapabilityState::Ready);
    }

    #[test]
    fn rate_limits_and_server_errors_prove_nothing() {
        for status in [429, 500, 503, 401] {
            let mut k = ScopeKnowledge::default();
            k.record("PUT", REPO_USER, &answer(status, "", "PUT", REPO_USER));
            let needed = endpoints::scopes("PUT", REPO_USER).to_vec();
            assert!(
                matches!(
                    k.state_for(&needed, &[]),
                    CapabilityState::Unverified { .. }
                ),
                "HTTP {status}"
            );
        }
    }

    #[test]
    fn a_scope_403_names_what_is_missing_for_every_capability() {
        let mut k = ScopeKnowledge::default();
        let body = r#"{"type":"error","error":{"message":"Your credentials lack one or more required privilege scopes.","detail":{"granted":["read:repository:bitbucket","admin:repository:bitbucket"],"required":["admin:repository:bitbucket","write:permission:bitbucket"]}}}"#;
        k.record("PUT", REPO_USER, &answer(403, body, "PUT", REPO_USER));
        // The granted list is complete, so a scope no probe asked about is known missing too.
        assert_eq!(
            k.state_for(
                &scopes(&["read:repository:bitbucket", "delete:permission:bitbucket"]),
                &[]
            ),
            CapabilityState::MissingScopes {
                scopes: scopes(&["delete:permission:bitbucket"])
            }
        );
        assert_eq!(
            k.state_for(&scopes(&["read:repository:bitbucket"]), &[]),
            CapabilityState::Ready
        );
    }

    #[test]
    fn a_403_without_scopes_means_not_an_administrator() {
        let mut k = ScopeKnowledge::default();
        let body = r#"{"type":"error","error":{"message":"You must be an administrator of this repository"}}"#;
        k.record("PUT", REPO_USER, &answer(403, body, "PUT", REPO_USER));
        assert_eq!(
            k.state_for(&[], &[format!("PUT {REPO_USER}")]),
            CapabilityState::NotAdministrator
        );
    }
}
