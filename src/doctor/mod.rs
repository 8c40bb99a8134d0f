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
    ApiError, BitbucketClient, ErrorKind, PermissionLevel, PermissionTarget, Removal,
};
use crate::config::Config;
use crate::jira::{AccountType, JiraClient, JiraErrorKind};
use crate::manifest::Manifest;
use futures::{StreamExt, TryStreamExt};
use std::collections::BTreeSet;

/// An account id no Atlassian account can have, used by the non-mutating write probes.
pub const PROBE_ACCOUNT: &str = "{00000000-0000-4000-8000-000000000000}";

pub mod org;
mod report;
mod scopes;

pub use report::{
    AuthCheck, BudgetCheck, CapabilityCheck, CapabilityState, DoctorReport, JiraCheck, Problem,
    StoreCheck, WorkspaceCheck,
};
use scopes::ScopeKnowledge;

/// How many Jira users the doctor samples to tell whether e-mail addresses are visible.
const JIRA_SAMPLE: u32 = 100;

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

    // 5. The store: a sync or `access` against a store that does not answer or is read-only
    // would fail only after spending requests, so say it now.
    let store = StoreCheck {
        url: config.database_url.redacted().to_string(),
        health: crate::store::check_health(&config.database_url).await,
    };
    // A schema behind the program is what every store looks like before its first sync, and
    // the next sync or `migrate` brings it up to date: worth saying, not a problem. A store
    // that does not answer or take writes is.
    let store_sound = store.health.reachable && store.health.writable;
    for problem in &store.health.problems {
        let finding = Problem {
            what: format!("store {}: {problem}", store.url),
            fix: if store_sound {
                "`bitbucket-access migrate` (or the next sync) applies the migrations".into()
            } else {
                "fix the store (see the message) or point `database_url` at a store that works"
                    .into()
            },
        };
        if store_sound {
            warnings.push(finding);
        } else {
            problems.push(finding);
        }
    }

    DoctorReport {
        authentication,
        workspaces,
        capabilities,
        jira: jira_check,
        org: None,
        budget,
        store,
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
        route: None,
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
