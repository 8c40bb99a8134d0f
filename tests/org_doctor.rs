//! `doctor` with `atlassian_admin` against the simulator: a working organization is reported
//! with its linked workspaces and visible Bitbucket events; without Guard, or with a managed
//! workspace not linked, it says so with the fix and stays healthy; a refused key is a problem
//! with its fix.

mod doctor_support;

use bitbucket_access::clock::SystemClock;
use bitbucket_access::config::{AtlassianAdmin, Config, DEFAULT_ORG_POLL_INTERVAL};
use bitbucket_access::doctor::{self, DoctorReport};
use bitbucket_sim::{Level, SimHandle};
use doctor_support::*;
use secrecy::SecretString;
use url::Url;

fn with_org(sim: &SimHandle, key: &str) -> Config {
    let mut config = config(sim, &sim.admin_email(), &sim.admin_token(), None);
    config.atlassian_admin = Some(AtlassianAdmin {
        org_id: sim.org().settings().org_id,
        api_key: SecretString::from(key.to_owned()),
        url: Url::parse(&sim.org_url()).expect("org url"),
        poll_interval: DEFAULT_ORG_POLL_INTERVAL,
    });
    config
}

/// Makes one out-of-band change the organization's audit log records.
fn a_change_happens(sim: &SimHandle) {
    let (owned, _) = owned_and_member_workspaces(sim);
    let ws = owned[0].clone();
    sim.with_world(|w| sim.org().observe(w));
    sim.with_world(|w| {
        let repo = w.workspaces[&ws]
            .repositories
            .keys()
            .next()
            .cloned()
            .expect("repo");
        let member = w.workspaces[&ws]
            .members
            .keys()
            .next()
            .cloned()
            .expect("member");
        w.set_repo_user_permission(&ws, &repo, &member, Some(Level::Admin))
            .expect("grant");
    });
}

async fn doctor_with_org(config: &Config) -> DoctorReport {
    let mut report = run_doctor(config).await;
    doctor::org::run(&mut report, config, &SystemClock)
        .await
        .expect("org client");
    report
}

fn org_findings(report: &DoctorReport) -> Vec<String> {
    report
        .problems
        .iter()
        .chain(&report.warnings)
        .filter(|p| p.what.contains("organization") || p.what.contains("Organizations"))
        .map(|p| format!("{} / {}", p.what, p.fix))
        .collect()
}

#[tokio::test]
async fn a_working_organization_is_reported_with_its_linked_workspaces_and_events() {
    let sim = start_sim(7301).await;
    a_change_happens(&sim);
    let config = with_org(&sim, &sim.org().settings().api_key);
    let report = doctor_with_org(&config).await;
    let org = report.org.as_ref().expect("org checked");
    assert!(org.ok);
    let (owned, _) = owned_and_member_workspaces(&sim);
    assert_eq!(org.linked, owned);
    assert!(org.unlinked.is_empty());
    assert!(org.bitbucket_events);
    assert!(
        org_findings(&report).is_empty(),
        "{:?}",
        org_findings(&report)
    );
    assert!(report.healthy(), "{:?}", report.problems);
    let org_requests: u64 = sim
        .request_counts()
        .iter()
        .filter(|(k, _)| k.contains("/admin/"))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(org_requests, 3, "organization, workspaces, events");
}

#[tokio::test]
async fn without_guard_doctor_says_so_and_stays_healthy() {
    let sim = start_sim(7302).await;
    sim.org().configure(|o| o.guard = false);
    a_change_happens(&sim);
    let report = doctor_with_org(&with_org(&sim, &sim.org().settings().api_key)).await;
    assert!(!report.org.as_ref().expect("checked").bitbucket_events);
    let findings = org_findings(&report);
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert!(findings[0].contains("Atlassian Guard"), "{findings:?}");
    assert!(
        report.healthy(),
        "a missing Guard is a warning: {:?}",
        report.problems
    );
}

#[tokio::test]
async fn an_unlinked_workspace_is_named_with_its_fix() {
    let sim = start_sim(7303).await;
    let (owned, _) = owned_and_member_workspaces(&sim);
    sim.org()
        .configure(|o| o.linked = Some(std::collections::BTreeSet::new()));
    let report = doctor_with_org(&with_org(&sim, &sim.org().settings().api_key)).await;
    let org = report.org.as_ref().expect("checked");
    assert_eq!(org.unlinked, owned);
    let findings = org_findings(&report);
    assert!(
        findings.iter().any(
            |f| f.contains(&format!("workspace {} is not linked", owned[0]))
                && f.contains("admin.atlassian.com")
        ),
        "{findings:?}"
    );
    assert!(report.healthy());
}

#[tokio::test]
async fn a_refused_key_is_a_problem_with_its_fix() {
    let sim = start_sim(7304).await;
    let report = doctor_with_org(&with_org(&sim, "not-the-org-key")).await;
    assert!(!report.org.as_ref().expect("checked").ok);
    assert!(!report.healthy());
    let problem = report
        .problems
        .iter()
        .find(|p| p.what.contains("organization API key"))
        .expect("the refusal is a problem");
    assert!(problem.fix.contains("API keys"), "{problem:?}");
    assert!(!format!("{report:?}").contains("not-the-org-key"));
}
