//! `GET /v1/audits/latest` (issue 15): the newest stored report as JSON (the file the audit
//! wrote, matrix rows included, its recorded hash in a header, valid against the report's
//! schema) or one section as CSV (byte for byte the file `audit --format csv` wrote), chosen by
//! `Accept`; 404 before any audit or when the file is gone, 406 for a
//! format it does not serve, 422 for an unknown section. Every answer is checked against
//! `schemas/openapi.json`.

#[macro_use]
mod support_db;
mod api_support;
mod grants_support;
mod sync_support;

use std::path::Path;

use api_support::*;
use bitbucket_access::audit::Report;
use bitbucket_access::cli::audit::{produce, settings, OutputFormat};
use bitbucket_access::clock::ManualClock;
use bitbucket_access::sync::{self, SyncOptions};
use serde_json::Value;
use sha2::Digest;
use sync_support::owned_workspaces;

on_both_backends!(
    latest_audit_is_served_as_stored_json_or_as_csv_sections,
    no_stored_audit_or_an_unserved_format_answer_the_error_shape,
);

/// Syncs the API's store from its simulator and stores an audit report written as JSON and CSV
/// into `dir`; returns the report.
async fn audit_once(api: &Api, dir: &Path) -> Report {
    let options = SyncOptions {
        workspaces: owned_workspaces(&api.sim),
        cross_check_sample: 0,
        ..SyncOptions::default()
    };
    sync::run(api.store.as_ref(), &client(&api.sim, 4), &options)
        .await
        .expect("sync");
    let settings = settings(&config(), owned_workspaces(&api.sim));
    let (report, _) = produce(
        api.store.as_ref(),
        &ManualClock::new(t0()),
        &settings,
        dir,
        &[OutputFormat::Json, OutputFormat::Csv],
    )
    .await
    .expect("audit");
    report
}

/// The path of the file the audit wrote whose name ends with `suffix`.
fn written_path(dir: &Path, suffix: &str) -> std::path::PathBuf {
    std::fs::read_dir(dir)
        .expect("report folder")
        .map(|e| e.expect("entry").path())
        .find(|p| p.to_string_lossy().ends_with(suffix))
        .unwrap_or_else(|| panic!("no {suffix} file written"))
}

/// The text of the file the audit wrote whose name ends with `suffix`, and its SHA-256.
fn written_file(dir: &Path, suffix: &str) -> (String, String) {
    let bytes = std::fs::read(written_path(dir, suffix)).expect("report file");
    let sha = format!("{:x}", sha2::Sha256::digest(&bytes));
    (String::from_utf8(bytes).expect("UTF-8"), sha)
}

/// The CSV file the audit wrote for `section`.
fn written_csv(dir: &Path, section: &str) -> String {
    written_file(dir, &format!("-{section}.csv")).0
}

async fn latest_audit_is_served_as_stored_json_or_as_csv_sections(url: String) {
    let api = Api::start(1561, &url).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let report = audit_once(&api, dir.path()).await;
    assert!(
        !report.findings.is_empty(),
        "the world gives findings to serve"
    );

    // JSON, asked for or by default: the stored report, whose hash a client can check.
    for accept in [None, Some("application/json"), Some("*/*")] {
        let headers: Vec<(&str, &str)> = accept.iter().map(|a| ("accept", *a)).collect();
        let (status, head, text) = api
            .get_text("/v1/audits/latest", Some(READER), &headers)
            .await;
        assert_eq!(status, 200, "{accept:?}: {text}");
        let (written, written_sha) = written_file(dir.path(), ".json");
        assert_eq!(text, written, "{accept:?}: the JSON file the audit wrote");
        assert_eq!(head["x-audit-report-sha256"], report.sha256.as_str());
        assert_eq!(head["x-audit-file-sha256"], written_sha.as_str());
        let served: Value = serde_json::from_str(&text).expect("JSON");
        let schema: Value = serde_json::from_str(
            &std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/audit-report.schema.json"),
            )
            .expect("report schema"),
        )
        .expect("schema JSON");
        let validator = jsonschema::validator_for(&schema).expect("valid schema");
        assert!(validator.is_valid(&served), "the report validates");
    }

    // CSV: findings unless another section is named, each the file the audit wrote.
    let (status, head, text) = api
        .get_text("/v1/audits/latest", Some(READER), &[("accept", "text/csv")])
        .await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(head["x-audit-section"], "findings");
    assert_eq!(text, written_csv(dir.path(), "findings"));
    assert!(text.starts_with("id,kind,severity,subjects,message\n"));
    assert_eq!(
        text.lines().count(),
        report.findings.len() + 1,
        "one line per finding under the header"
    );
    for section in ["access_matrix", "grants", "freshness", "report"] {
        let (status, head, text) = api
            .get_text(
                &format!("/v1/audits/latest?section={section}"),
                Some(GRANTER),
                &[("accept", "text/csv;q=0.9, application/json;q=0.1")],
            )
            .await;
        assert_eq!(status, 200, "{section}: {text}");
        assert_eq!(head["x-audit-section"], section);
        assert_eq!(text, written_csv(dir.path(), section), "{section}");
    }

    // The matrix's rows are only in the files: with the JSON file gone, the JSON answer is a
    // 404 naming it and saying what to do, while the sections the store holds are still served.
    let json = written_path(dir.path(), ".json");
    std::fs::remove_file(&json).expect("remove the JSON file");
    let (status, _, text) = api.get_text("/v1/audits/latest", Some(READER), &[]).await;
    assert_eq!(status, 404, "{text}");
    let error: Value = serde_json::from_str(&text).expect("JSON");
    let message = error["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(&*json.to_string_lossy()), "{message}");
    assert!(message.contains("bitbucket-access audit"), "{message}");
    let (status, _, text) = api
        .get_text("/v1/audits/latest", Some(READER), &[("accept", "text/csv")])
        .await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(text, written_csv(dir.path(), "findings"));

    // A section that does not exist names the parameter; no token is a 401.
    let (status, _, text) = api
        .get_text(
            "/v1/audits/latest?section=secrets",
            Some(READER),
            &[("accept", "text/csv")],
        )
        .await;
    assert_eq!(status, 422);
    let error: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(error["error"]["field"], "section");
    assert!(error["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("access_matrix"));
    let (status, _, _) = api.get_text("/v1/audits/latest", None, &[]).await;
    assert_eq!(status, 401);
}

async fn no_stored_audit_or_an_unserved_format_answer_the_error_shape(url: String) {
    let api = Api::start(1562, &url).await;
    let (status, answer) = api
        .call("GET", "/v1/audits/latest", Some(READER), None, &[])
        .await;
    assert_eq!(status, 404, "{answer}");
    assert_eq!(answer["error"]["code"], "not_found");
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("bitbucket-access audit"));
    let dir = tempfile::tempdir().expect("temp dir");
    audit_once(&api, dir.path()).await;
    for accept in ["application/xml", "text/html, application/json;q=0"] {
        let (status, answer) = api
            .call(
                "GET",
                "/v1/audits/latest",
                Some(READER),
                None,
                &[("accept", accept)],
            )
            .await;
        assert_eq!(status, 406, "{accept}: {answer}");
        assert_eq!(answer["error"]["code"], "not_acceptable");
        assert!(answer["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("text/csv"));
    }
}
