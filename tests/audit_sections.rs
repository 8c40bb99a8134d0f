//! The audit report's sections on a world built to hold every kind of finding (synced from the
//! simulator), on SQLite and PostgreSQL: the matrix, administrators, identity findings, drift,
//! grants, policy findings and freshness; every report validates against the committed schema;
//! a second report names the first and lists new and resolved findings.

#[macro_use]
mod support_db;
mod audit_support;
mod sync_support;

use audit_support::*;
use bitbucket_access::audit::{self, Audit, FindingKind, GrantCategory, Report};
use bitbucket_access::clock::Clock;
use bitbucket_access::domain::{AccountId, AccountType, Identity, IdentitySource};
use bitbucket_sim::Level;
use chrono::Duration;
use std::collections::BTreeSet;

on_both_backends!(
    every_section_holds_what_the_world_has,
    a_second_report_names_the_first_and_lists_new_and_resolved_findings,
    a_report_streamed_in_batches_equals_the_one_batch_report,
);

fn schema() -> jsonschema::Validator {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/audit-report.schema.json"),
    )
    .expect("the schema is committed");
    let schema: serde_json::Value = serde_json::from_str(&text).expect("the schema is JSON");
    jsonschema::validator_for(&schema).expect("the schema compiles")
}

/// Validates a report's JSON (as the JSON renderer writes it) against the schema.
pub fn assert_valid(report: &Audit) {
    let value: serde_json::Value =
        serde_json::from_str(&audit::render_json::render(report)).expect("JSON");
    let validator = schema();
    let errors: Vec<String> = validator
        .iter_errors(&value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "schema errors: {errors:#?}");
}

fn finding<'a>(report: &'a Report, kind: FindingKind, subject: &str) -> &'a audit::Finding {
    report
        .findings
        .iter()
        .find(|f| f.kind == kind && f.subjects.iter().any(|s| s == subject))
        .unwrap_or_else(|| panic!("no {kind} finding about {subject}: {:#?}", report.findings))
}

async fn every_section_holds_what_the_world_has(url: String) {
    let w = build(&url, 7301).await;
    let r = report(&w).await;
    let ws = &w.ws;
    let repo = format!("{ws}/{}", w.repo);

    // Every kind of finding, each with its severity.
    let kinds: BTreeSet<FindingKind> = r.findings.iter().map(|f| f.kind).collect();
    let all: BTreeSet<FindingKind> = FindingKind::ALL.iter().copied().collect();
    assert_eq!(kinds, all, "{:#?}", r.findings);
    assert!(r.findings.iter().all(|f| f.severity == f.kind.severity()));
    assert_eq!(r.findings[0].severity, audit::Severity::Critical);

    // Matrix: account, person, repository, level, sources.
    let matrix: Vec<audit::MatrixRow> = r.matrix.rows().collect();
    assert_eq!(matrix.len() as u64, r.summary.access_rows);
    let row = matrix
        .iter()
        .find(|m| *m.repository == *w.repo && *m.account_id == *w.direct_admin)
        .expect("the direct admin's row");
    assert_eq!(&*row.level, "admin");
    assert_eq!(row.email.as_deref(), Some("contractor@outside.example"));
    assert!(
        row.sources.iter().any(|s| &**s == "direct: admin"),
        "{row:?}"
    );
    assert!(matrix.iter().any(|m| &*m.repository == PUBLIC_REPO
        && m.sources.iter().any(|s| &**s == "public repository: read")));

    // Administrators of the workspace, the project and the repository.
    let admins = |scope: audit::AdminScope, resource: &str| -> BTreeSet<String> {
        r.administrators
            .iter()
            .filter(|a| a.scope == scope && a.resource == resource)
            .map(|a| a.account_id.clone())
            .collect()
    };
    let owners = admins(audit::AdminScope::Workspace, ws);
    assert!(owners.contains(&w.second_owner) && owners.contains(&w.sim.admin_account_id()));
    assert!(admins(audit::AdminScope::Project, &w.project).contains(&w.drifter));
    let repo_admins = admins(audit::AdminScope::Repository, &w.repo);
    assert!(repo_admins.contains(&w.direct_admin) && repo_admins.contains(&w.second_owner));

    // Identity findings.
    finding(&r, FindingKind::OutsideDomain, &w.direct_admin);
    finding(&r, FindingKind::OutsideDomain, "contractor@outside.example");
    finding(&r, FindingKind::InactiveWithAccess, &w.leftover);
    finding(&r, FindingKind::UnmatchedAccount, &w.drifter);
    assert!(!r
        .findings
        .iter()
        .any(|f| f.kind == FindingKind::UnmatchedAccount && f.subjects.contains(&w.second_owner)));

    // Policy findings.
    finding(&r, FindingKind::OwnerLimitExceeded, ws);
    finding(&r, FindingKind::AdminLimitExceeded, &repo);
    finding(
        &r,
        FindingKind::PublicRepository,
        &format!("{ws}/{PUBLIC_REPO}"),
    );
    let direct = finding(&r, FindingKind::DirectUserPermission, &w.direct_admin);
    assert_eq!(direct.subjects[0], repo);

    // Drift: the out-of-band read, with before and after.
    let drift = r
        .drift
        .entries
        .iter()
        .find(|d| d.subject.contains(&w.drifter) && d.subject.contains(&w.repo))
        .expect("the drift entry");
    assert!(drift.before.is_none() && drift.after.is_some());
    assert_eq!(r.drift.since, None);
    finding(
        &r,
        FindingKind::Drift,
        &format!("audit_log:{}", drift.audit_id),
    );

    // Grants, by category, and their findings.
    let in_category = |c: GrantCategory| -> BTreeSet<i64> {
        r.grants
            .iter()
            .filter(|g| g.category == c)
            .map(|g| g.id)
            .collect()
    };
    assert!(in_category(GrantCategory::Active).contains(&w.grant_active.0));
    assert!(in_category(GrantCategory::Failed).contains(&w.grant_failed.0));
    assert!(in_category(GrantCategory::Conflict).contains(&w.grant_conflict.0));
    assert!(in_category(GrantCategory::ExpiredPresent).contains(&w.grant_ended_present.0));
    assert!(in_category(GrantCategory::EndedSincePrevious).contains(&w.grant_ended_present.0));
    finding(
        &r,
        FindingKind::ExpiredGrantPresent,
        &format!("grant:{}", w.grant_ended_present),
    );
    finding(
        &r,
        FindingKind::GrantFailed,
        &format!("grant:{}", w.grant_failed),
    );
    finding(
        &r,
        FindingKind::GrantConflict,
        &format!("grant:{}", w.grant_conflict),
    );
    finding(
        &r,
        FindingKind::GrantTooLong,
        &format!("grant:{}", w.grant_too_long),
    );
    assert!(!r
        .findings
        .iter()
        .any(|f| f.kind == FindingKind::GrantTooLong
            && f.subjects.contains(&format!("grant:{}", w.grant_active))));

    // Freshness: the oldest read, the sync run that read every listing last, the failed listing.
    let last = w.store.last_sync_run().await.expect("runs").expect("a run");
    let runs: Vec<i64> = r.freshness.sync_runs.iter().map(|s| s.id).collect();
    assert_eq!(runs, vec![last.id.0]);
    assert_eq!(
        r.freshness.sync_runs[0].outcome.as_deref(),
        Some("complete")
    );
    let oldest = r.freshness.oldest_read_at.expect("read");
    assert!(oldest <= w.now);
    assert_eq!(
        r.freshness.oldest_fact_age_seconds,
        Some((w.now - oldest).num_seconds())
    );
    assert_eq!(r.freshness.failed.len(), 1);
    assert!(r.freshness.failed[0].listing.contains(&w.other_repo));
    finding(&r, FindingKind::IncompleteFacts, ws);

    // Generation time, policy values, hash; nothing compared on the first report.
    assert_eq!(r.generated_at, w.now);
    assert_eq!(r.policy.max_admins_per_repository, Some(1));
    assert_eq!(r.policy.allowed_email_domains, vec![DOMAIN.to_owned()]);
    assert!(r.previous.is_none());
    assert_eq!(r.changes.new.len(), r.findings.len());
    assert_eq!(r.sha256, r.content_hash());
    // The documented rule: the stored form without its last member, `sha256`, hashes to it.
    let stored = r.stored_form();
    let member = format!(",\"sha256\":\"{}\"}}", r.sha256);
    let body = format!(
        "{}}}",
        stored
            .strip_suffix(&member)
            .expect("sha256 is the last member")
    );
    assert_eq!(
        bitbucket_access::store::chain::sha256_hex(body.as_bytes()),
        r.sha256
    );
    assert_eq!(r.summary.findings as usize, r.findings.len());
    assert_valid(&r);

    // A report of the same store with no policy switches still validates.
    let mut plain = settings(ws);
    plain.policy = default_policy();
    let quiet = audit::build(w.store.as_ref(), &w.clock, &plain)
        .await
        .expect("audit");
    assert!(!quiet.findings.iter().any(
        |f| f.kind == FindingKind::DirectUserPermission || f.kind == FindingKind::OutsideDomain
    ));
    assert_valid(&quiet);
}

async fn a_second_report_names_the_first_and_lists_new_and_resolved_findings(url: String) {
    let w = build(&url, 7302).await;
    let first = report(&w).await;
    let files = vec![bitbucket_access::store::ReportFile {
        path: "/reports/audit-first.json".to_owned(),
        sha256: first.sha256.clone(),
    }];
    audit::record(w.store.as_ref(), &first, files.clone())
        .await
        .expect("store the first report");
    // The newest stored report, as readers outside the audit (the HTTP API) get it.
    let latest = audit::latest(w.store.as_ref())
        .await
        .expect("read")
        .expect("a stored report");
    assert_eq!(latest.report, first.report);
    assert_eq!(latest.file(".json"), Some(&files[0]));

    // The contractor becomes a company account; someone changes another permission.
    w.store
        .replace_identities(
            &[Identity {
                account_id: AccountId::parse(w.direct_admin.clone()).expect("id"),
                email: Some(format!("contractor@{DOMAIN}")),
                source: IdentitySource::Manual,
                matched_at: w.now,
                active: Some(true),
                account_type: AccountType::Atlassian,
                conflicts: Vec::new(),
            }],
            &[],
        )
        .await
        .expect("identity");
    w.clock.advance(Duration::minutes(5));
    let (ws, repo, second) = (w.ws.clone(), w.repo.clone(), w.second_owner.clone());
    w.sim
        .with_world(|world| world.set_repo_user_permission(&ws, &repo, &second, Some(Level::Write)))
        .expect("out-of-band change");
    let sync_clock = bitbucket_access::clock::ManualClock::new(w.clock.now());
    let options = bitbucket_access::sync::SyncOptions {
        workspaces: vec![w.ws.clone()],
        clock: std::sync::Arc::new(sync_clock),
        ..Default::default()
    };
    bitbucket_access::sync::run(w.store.as_ref(), &sync_support::client(&w.sim, 4), &options)
        .await
        .expect("sync");
    w.clock.advance(Duration::minutes(1));

    let second_report = report(&w).await;
    let previous = second_report
        .previous
        .as_ref()
        .expect("names the first report");
    assert_eq!(previous.sha256, first.sha256);
    assert_eq!(previous.generated_at, first.generated_at);
    assert_eq!(second_report.drift.since, Some(first.generated_at));

    // The new drift is new; the outsider finding and the earlier drift are resolved.
    let new_drift = second_report
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::Drift && f.message.contains(&w.second_owner))
        .expect("the new drift");
    assert!(second_report.changes.new.contains(&new_drift.id));
    let resolved: BTreeSet<FindingKind> = second_report
        .changes
        .resolved
        .iter()
        .map(|f| f.kind)
        .collect();
    assert!(
        resolved.contains(&FindingKind::OutsideDomain),
        "{resolved:?}"
    );
    assert!(resolved.contains(&FindingKind::Drift), "{resolved:?}");
    // Standing findings are neither new nor resolved.
    let public = format!("public_repository:{}/{PUBLIC_REPO}", w.ws);
    assert!(!second_report.changes.new.contains(&public));
    assert!(second_report.findings.iter().any(|f| f.id == public));
    assert_valid(&second_report);
}

/// Every file of the audit in `dir`, by name.
fn written(audit: &Audit, dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    use bitbucket_access::cli::audit::{write_report, OutputFormat};
    let formats = [
        OutputFormat::Json,
        OutputFormat::Csv,
        OutputFormat::Md,
        OutputFormat::Html,
    ];
    write_report(audit, dir, &formats)
        .expect("write")
        .into_iter()
        .map(|f| {
            let bytes = std::fs::read(&f.path).expect("read back");
            assert_eq!(
                bitbucket_access::store::chain::sha256_hex(&bytes),
                f.sha256,
                "{}",
                f.path
            );
            let name = std::path::Path::new(&f.path)
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            (name, bytes)
        })
        .collect()
}

async fn a_report_streamed_in_batches_equals_the_one_batch_report(url: String) {
    let w = build(&url, 7303).await;
    let settings = settings(&w.ws);
    let whole = audit::build_in_batches(w.store.as_ref(), &w.clock, &settings, usize::MAX)
        .await
        .expect("audit in one batch");
    let batched = audit::build_in_batches(w.store.as_ref(), &w.clock, &settings, 1)
        .await
        .expect("audit a repository at a time");
    assert_eq!(whole.matrix.batches().count(), 1);
    assert!(batched.matrix.batches().count() >= 3);

    // The same report: counts, administrators, findings, the matrix's hash, the report's hash.
    assert_eq!(batched.report, whole.report);
    let rows: Vec<audit::MatrixRow> = whole.matrix.rows().collect();
    assert_eq!(batched.matrix.rows().collect::<Vec<_>>(), rows);
    assert_eq!(rows.len() as u64, whole.summary.access_rows);

    // The same bytes in every file, each holding every row.
    let (a, b) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let one = written(&whole, a.path());
    let many = written(&batched, b.path());
    assert_eq!(one.len(), 3 + audit::render_csv::SECTIONS.len());
    assert_eq!(one, many);
    let text = |suffix: &str| -> String {
        let (_, bytes) = one.iter().find(|(n, _)| n.ends_with(suffix)).expect(suffix);
        String::from_utf8(bytes.clone()).expect("UTF-8")
    };

    // The JSON file holds every row, and they hash to the report's access_matrix_sha256,
    // which the report's own hash covers.
    let json: serde_json::Value = serde_json::from_str(&text(".json")).expect("JSON");
    assert_eq!(
        json["access_matrix"],
        serde_json::to_value(&rows).expect("rows")
    );
    // (The rows' own order of members: a parsed `Value` would sort them.)
    let compact = serde_json::to_string(&rows).expect("compact");
    assert_eq!(
        bitbucket_access::store::chain::sha256_hex(compact.as_bytes()),
        whole.access_matrix_sha256
    );
    assert_eq!(
        json["access_matrix_sha256"],
        whole.access_matrix_sha256.as_str()
    );
    assert_eq!(json["sha256"], whole.sha256.as_str());
    let csv_rows = text("-access_matrix.csv").lines().count() - 1;
    assert_eq!(csv_rows, rows.len());
    assert!(text(".md").contains(&format!("| {} |", rows[rows.len() - 1].sources.join(", "))));

    // A page capped below the matrix's size says so, and holds only the rows it shows.
    let mut page = Vec::new();
    audit::render_html::write_capped(&whole, whole.matrix.rows(), 2, &mut page).expect("page");
    let page = String::from_utf8(page).expect("UTF-8");
    assert!(
        page.contains(&format!("shows the first 2 of the {} rows", rows.len())),
        "the page must say it is capped"
    );
    let access_table = page
        .split("id=\"access\"")
        .nth(1)
        .expect("the access table");
    assert_eq!(access_table.matches("<tr class=").count(), 2);
    assert!(
        !text(".html").contains("access-capped"),
        "a small matrix is shown whole"
    );
}
