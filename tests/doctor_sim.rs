//! `doctor` against the simulator, through the library: each credential problem of issue 4 is
//! diagnosed with the right fix, a healthy setup reports everything ready, and no secret shows
//! in the report, its JSON or the logs.

mod doctor_support;

use bitbucket_access::doctor::CapabilityState;
use bitbucket_access::jira::JiraErrorKind;
use bitbucket_sim::JiraAccountType;
use doctor_support::*;

const WRITE_PERMISSION: &str = "write:permission:bitbucket";

#[tokio::test]
async fn a_healthy_token_is_ready_everywhere_and_names_the_account() {
    let sim = start_sim(401).await;
    let logs = LogCapture::default();
    let _guard = logs.install();
    let (jira_user, jira_key) = sim.jira_credentials();
    let config = config(
        &sim,
        &sim.admin_email(),
        &sim.admin_token(),
        Some((&jira_user, &jira_key)),
    );

    let before = sim.with_world(|w| w.clone());
    let report = run_doctor(&config).await;

    assert!(report.healthy(), "problems: {:#?}", report.problems);
    let (admin_name, admin_id) = sim.with_world(|w| {
        let admin = w.admin().expect("service account");
        (admin.display_name.clone(), admin.account_id.clone())
    });
    assert!(report.authentication.ok);
    assert_eq!(
        report.authentication.display_name.as_deref(),
        Some(admin_name.as_str())
    );
    assert_eq!(
        report.authentication.account_id.as_deref(),
        Some(admin_id.as_str())
    );
    for cap in &report.capabilities {
        assert_eq!(cap.state, CapabilityState::Ready, "capability {}", cap.id);
    }
    assert_eq!(report.capabilities.len(), 11);

    // With no `workspaces` in the config, exactly the administered ones are managed.
    let (owned, member) = owned_and_member_workspaces(&sim);
    assert!(!owned.is_empty() && !member.is_empty());
    for w in &report.workspaces {
        assert!(w.visible);
        assert_eq!(w.administrator, owned.contains(&w.slug), "{}", w.slug);
        assert_eq!(w.managed, w.administrator, "{}", w.slug);
    }
    assert_eq!(report.workspaces.len(), owned.len() + member.len());

    // The doctor's own request count is what the simulator served, and small.
    let used = report.budget.requests_used_by_doctor;
    let jira_requests: u64 = sim
        .request_counts()
        .iter()
        .filter(|(k, _)| k.contains("/rest/api/3/"))
        .map(|(_, v)| *v)
        .sum();
    assert_eq!(used, sim.total_requests() - jira_requests);
    assert!((5..=20).contains(&used), "the doctor used {used} requests");
    assert_eq!(report.budget.usable_per_hour, 900);

    // The write probes changed nothing in the world.
    assert_eq!(sim.with_world(|w| w.clone()), before);

    assert_report_has_no_secret(&report, &logs, &sim);
}

#[tokio::test]
async fn a_wrong_email_gets_the_email_rule_in_the_fix() {
    let sim = start_sim(402).await;
    let logs = LogCapture::default();
    let _guard = logs.install();
    let config = config(&sim, "someone.else@example.com", &sim.admin_token(), None);

    let report = run_doctor(&config).await;

    assert!(!report.healthy());
    assert!(!report.authentication.ok);
    assert!(report
        .authentication
        .error
        .as_deref()
        .is_some_and(|e| e.contains("401")));
    assert_eq!(report.problems.len(), 1, "{:#?}", report.problems);
    let problem = &report.problems[0];
    assert!(problem.what.contains("someone.else@example.com"));
    assert!(
        problem.fix.contains("Atlassian account e-mail"),
        "fix: {}",
        problem.fix
    );
    // Nothing can be said about scopes when authentication fails.
    for cap in &report.capabilities {
        match cap.id.as_str() {
            // Without Jira credentials this one is not configured, whatever the token.
            "identity_email_lookup" => assert!(
                matches!(cap.state, CapabilityState::NotConfigured { .. }),
                "{cap:?}"
            ),
            _ => assert!(
                matches!(cap.state, CapabilityState::Unverified { .. }),
                "{cap:?}"
            ),
        }
    }
    assert_report_has_no_secret(&report, &logs, &sim);
}

#[tokio::test]
async fn a_token_without_write_permission_names_the_grant_capabilities_and_the_scope() {
    let sim = start_sim(403).await;
    let logs = LogCapture::default();
    let _guard = logs.install();
    let all = bitbucket_sim::endpoints::connector_scopes();
    let scopes: Vec<&str> = all
        .iter()
        .map(String::as_str)
        .filter(|s| *s != WRITE_PERMISSION)
        .collect();
    let token = sim.issue_token(&sim.admin_email(), &scopes);
    let config = config(&sim, &sim.admin_email(), &token, None);

    let report = run_doctor(&config).await;

    assert!(!report.healthy());
    let missing = CapabilityState::MissingScopes {
        scopes: vec![WRITE_PERMISSION.to_string()],
    };
    for id in [
        "grant_repository",
        "grant_project",
        "time_bound_grants_with_restore",
    ] {
        assert_eq!(capability(&report, id), &missing, "{id}");
    }
    // Every capability that does not write permissions still works.
    for id in [
        "sync",
        "revoke_repository",
        "revoke_project",
        "drift_detection",
    ] {
        assert_eq!(capability(&report, id), &CapabilityState::Ready, "{id}");
    }
    // One new token fixes all three, so it is one problem naming them and the scope.
    assert_eq!(report.problems.len(), 1, "{:#?}", report.problems);
    let problem = &report.problems[0];
    for id in [
        "grant_repository",
        "grant_project",
        "time_bound_grants_with_restore",
    ] {
        assert!(problem.what.contains(id), "{}", problem.what);
    }
    assert!(problem.what.contains(WRITE_PERMISSION), "{}", problem.what);
    assert!(problem.fix.contains(WRITE_PERMISSION), "{}", problem.fix);
    assert!(problem.fix.contains("new API token"), "{}", problem.fix);
    assert_report_has_no_secret(&report, &logs, &sim);
}

#[tokio::test]
async fn a_workspace_the_account_does_not_administer_is_a_problem_when_configured() {
    let sim = start_sim(404).await;
    let logs = LogCapture::default();
    let _guard = logs.install();
    let (owned, member) = owned_and_member_workspaces(&sim);
    let mut cfg = config(&sim, &sim.admin_email(), &sim.admin_token(), None);
    cfg.workspaces = owned.iter().chain(member.iter()).cloned().collect();

    let report = run_doctor(&cfg).await;

    assert!(!report.healthy());
    for slug in &owned {
        let w = report
            .workspaces
            .iter()
            .find(|w| &w.slug == slug)
            .expect("listed");
        assert!(w.visible && w.administrator && w.managed, "{slug}");
    }
    for slug in &member {
        let w = report
            .workspaces
            .iter()
            .find(|w| &w.slug == slug)
            .expect("listed");
        assert!(w.visible && !w.administrator && w.managed, "{slug}");
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.what.contains(slug.as_str()) && p.fix.contains("administrator")),
            "{:#?}",
            report.problems
        );
    }
    // That workspace is the only problem: the administered one is fully usable.
    assert_eq!(
        report.problems.len(),
        member.len(),
        "{:#?}",
        report.problems
    );
    for cap in &report.capabilities {
        if cap.id != "identity_email_lookup" {
            assert_eq!(cap.state, CapabilityState::Ready, "{}", cap.id);
        }
    }
    assert_report_has_no_secret(&report, &logs, &sim);
}

#[tokio::test]
async fn a_scoped_jira_token_is_explained_as_needing_a_classic_token() {
    let sim = start_sim(405).await;
    let logs = LogCapture::default();
    let _guard = logs.install();
    let (jira_user, _) = sim.jira_credentials();
    let scoped = sim.jira_scoped_token();
    let config = config(
        &sim,
        &sim.admin_email(),
        &sim.admin_token(),
        Some((&jira_user, &scoped)),
    );

    // The client recognises the simulator's answer as a scoped token.
    let jira = bitbucket_access::connect::jira_client(&config)
        .expect("configured")
        .expect("client");
    let err = jira.myself().await.expect_err("scoped token refused");
    assert_eq!(err.kind, JiraErrorKind::ScopedToken);
    assert_eq!(err.status, Some(401));

    let report = run_doctor(&config).await;
    assert!(!report.healthy());
    let check = report.jira.as_ref().expect("jira checked");
    assert!(!check.ok);
    assert_eq!(report.problems.len(), 1, "{:#?}", report.problems);
    let problem = &report.problems[0];
    assert!(problem.what.contains("scoped"), "{}", problem.what);
    assert!(problem.fix.contains("classic API token"), "{}", problem.fix);
    assert!(problem.fix.contains("*.atlassian.net"), "{}", problem.fix);
    assert_report_has_no_secret(&report, &logs, &sim);
}

/// (people of account type `atlassian`, those whose e-mail Jira shows), as the simulator has them.
fn jira_people(sim: &bitbucket_sim::SimHandle) -> (usize, usize) {
    sim.with_world(|w| {
        let people: Vec<_> = w
            .users
            .values()
            .filter(|u| u.jira_account_type == Some(JiraAccountType::Atlassian))
            .collect();
        let visible = people.iter().filter(|u| u.email_visible_in_jira).count();
        (people.len(), visible)
    })
}

#[tokio::test]
async fn hidden_jira_emails_are_counted_and_all_hidden_is_a_problem() {
    let sim = start_sim(406).await;
    let logs = LogCapture::default();
    let _guard = logs.install();
    let (jira_user, jira_key) = sim.jira_credentials();
    let config = config(
        &sim,
        &sim.admin_email(),
        &sim.admin_token(),
        Some((&jira_user, &jira_key)),
    );

    // Some addresses hidden: counted, a warning, still healthy.
    let (people, visible) = jira_people(&sim);
    assert!(visible > 0 && visible < people, "{visible} of {people}");
    let report = run_doctor(&config).await;
    let check = report.jira.as_ref().expect("jira checked");
    assert!(check.ok);
    assert_eq!(check.people_sampled, Some(people));
    assert_eq!(check.emails_visible, Some(visible));
    assert!(report.healthy(), "{:#?}", report.problems);
    assert_eq!(report.warnings.len(), 1, "{:#?}", report.warnings);
    assert!(report.warnings[0]
        .what
        .contains(&format!("{} of the {people}", people - visible)));

    // Every address hidden: Jira cannot match anyone, which the doctor reports as a problem.
    sim.with_world(|w| {
        for u in w.users.values_mut() {
            u.email_visible_in_jira = false;
        }
    });
    let report = run_doctor(&config).await;
    let check = report.jira.as_ref().expect("jira checked");
    assert_eq!(check.people_sampled, Some(people));
    assert_eq!(check.emails_visible, Some(0));
    assert!(!report.healthy());
    assert_eq!(report.problems.len(), 1, "{:#?}", report.problems);
    assert!(report.problems[0].what.contains(&format!("all {people}")));
    assert!(report.problems[0].fix.contains("visibility"));
    assert_report_has_no_secret(&report, &logs, &sim);
}

#[tokio::test]
async fn a_legacy_app_password_is_told_to_become_an_api_token() {
    let sim = start_sim(407).await;
    let logs = LogCapture::default();
    let _guard = logs.install();
    let (nickname, password) = sim.legacy_app_password();
    let config = config(&sim, &nickname, &password, None);

    let report = run_doctor(&config).await;

    assert!(!report.healthy());
    assert!(!report.authentication.ok);
    assert!(report
        .authentication
        .error
        .as_deref()
        .is_some_and(|e| e.contains("410") && e.contains("CHANGE-3222")));
    assert_eq!(report.problems.len(), 1, "{:#?}", report.problems);
    let problem = &report.problems[0];
    assert!(problem.what.contains("app password"), "{}", problem.what);
    assert!(problem.what.contains("CHANGE-3222"), "{}", problem.what);
    assert!(problem.fix.contains("API token"), "{}", problem.fix);
    assert!(problem.fix.contains(WRITE_PERMISSION), "{}", problem.fix);
    assert!(problem.fix.contains("`email`"), "{}", problem.fix);
    assert_report_has_no_secret(&report, &logs, &sim);
}
