//! The `atlassian_admin` checks: the organization API key works, the organization exists,
//! which managed workspaces are linked to it, and whether Bitbucket events are visible (they
//! need Atlassian Guard). Each problem comes with its fix; without the block nothing is asked.
//! None of these requests is Bitbucket's: the organization has limits of its own.

use serde::Serialize;

use super::report::{DoctorReport, Problem};
use crate::clock::Clock;
use crate::config::Config;
use crate::http::RetryPolicy;
use crate::org::{OrgClient, OrgError};

/// How far back the doctor looks for a Bitbucket event.
const EVENT_LOOKBACK_DAYS: i64 = 30;

/// What the organization checks found.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct OrgCheck {
    /// The organization's id, as configured.
    pub org_id: String,
    /// Whether the key was accepted and the organization found.
    pub ok: bool,
    /// The organization's name.
    pub name: Option<String>,
    /// Managed workspaces linked to the organization.
    pub linked: Vec<String>,
    /// Managed workspaces not linked to it: their changes never appear as events.
    pub unlinked: Vec<String>,
    /// Whether a Bitbucket event was seen in the last 30 days.
    pub bitbucket_events: bool,
}

/// Runs the organization checks when the config has `atlassian_admin` (a person is waiting:
/// the interactive retry policy), for the workspaces the report found managed. Fails only when
/// the client cannot be built.
pub async fn run(
    report: &mut DoctorReport,
    config: &Config,
    clock: &dyn Clock,
) -> Result<(), OrgError> {
    let Some(admin) = &config.atlassian_admin else {
        return Ok(());
    };
    let Some(client) = crate::connect::org_client_with(config, RetryPolicy::interactive()) else {
        return Ok(());
    };
    let client = client?;
    let managed: Vec<String> = report
        .workspaces
        .iter()
        .filter(|w| w.managed)
        .map(|w| w.slug.clone())
        .collect();
    check(report, &admin.org_id, &client, &managed, clock.now()).await;
    Ok(())
}

/// Runs the organization checks for the workspaces the connector manages and adds them, with
/// their problems and warnings, to `report`.
pub async fn check(
    report: &mut DoctorReport,
    org_id: &str,
    client: &OrgClient,
    managed: &[String],
    now: chrono::DateTime<chrono::Utc>,
) {
    let mut out = OrgCheck {
        org_id: org_id.to_owned(),
        ok: false,
        name: None,
        linked: Vec::new(),
        unlinked: Vec::new(),
        bitbucket_events: false,
    };
    match client.organization().await {
        Ok(org) => {
            out.ok = true;
            out.name = Some(org.name);
        }
        Err(e) => {
            report.problems.push(refused(&e));
            report.org = Some(out);
            return;
        }
    }
    match client.linked_workspaces().await {
        Ok(linked) => {
            for ws in managed {
                if linked.contains(ws) {
                    out.linked.push(ws.clone());
                } else {
                    out.unlinked.push(ws.clone());
                }
            }
        }
        Err(e) => report.problems.push(refused(&e)),
    }
    for ws in &out.unlinked {
        report.warnings.push(Problem {
            what: format!("workspace {ws} is not linked to organization {org_id}: its changes are not in the organization's audit log, so they are seen only by the scheduled sync"),
            fix: format!("link {ws} to the organization in admin.atlassian.com > Products, or leave it: sync works as before"),
        });
    }
    let from = now - chrono::Duration::days(EVENT_LOOKBACK_DAYS);
    match client.events(None, Some(from), 100).await {
        Ok(page) => {
            out.bitbucket_events = page
                .events
                .iter()
                .any(|e| e.action.starts_with("bitbucket."));
            if !out.bitbucket_events {
                report.warnings.push(Problem {
                    what: format!("no Bitbucket event in organization {org_id}'s audit log for {EVENT_LOOKBACK_DAYS} days: without Atlassian Guard the log holds none, so drift is seen only by the scheduled sync"),
                    fix: "subscribe the organization to Atlassian Guard (admin.atlassian.com > Billing) and link the workspaces; sync works as before without it".into(),
                });
            }
        }
        Err(e) => report.problems.push(refused(&e)),
    }
    report.org = Some(out);
}

/// The problem for a refused request, with its fix.
fn refused(e: &OrgError) -> Problem {
    let fix = match e {
        OrgError::Unauthorized { .. } => "create an organization API key in admin.atlassian.com > Settings > API keys (with read:events:admin) and put it in atlassian_admin.api_key or api_key_file",
        OrgError::NotFound { .. } => "copy the organization id from the admin URL admin.atlassian.com/o/{org_id} into atlassian_admin.org_id",
        OrgError::Other { .. } => "check atlassian_admin.url and the network; run doctor again",
    };
    Problem {
        what: e.to_string(),
        fix: fix.to_owned(),
    }
}
