//! The HTML report opens in headless Chromium and a reader finds the findings in the rendered
//! page: every finding's kind and subjects, and the row count the page's own script writes
//! (so the script ran). Without Chromium the test says plainly that it did not run, and fails
//! when `REQUIRE_CHROMIUM=1` (as `.ci/run` sets it).

#[macro_use]
mod support_db;
mod audit_support;
mod sync_support;

use bitbucket_access::audit;
use std::process::Command;

/// The Chromium binary, if one is installed.
fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|name| {
            Command::new(name)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_html_report_renders_its_findings_in_headless_chromium() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var("REQUIRE_CHROMIUM").as_deref() != Ok("1"),
            "REQUIRE_CHROMIUM=1 but no chromium is installed: `apt-get install -y chromium`"
        );
        eprintln!(
            "audit_html: DID NOT RUN: chromium is not installed; set REQUIRE_CHROMIUM=1 to make this a failure"
        );
        return;
    };
    let db = support_db::sqlite_db();
    let world = audit_support::build(&db.url, 7601).await;
    let report = audit_support::report(&world).await;
    let dir = tempfile::tempdir().expect("dir");
    let page = dir.path().join("audit.html");
    std::fs::write(&page, audit::render_html::render(&report)).expect("write");
    let html = std::fs::read_to_string(&page).expect("read");
    assert!(
        !html.contains("http://") && !html.contains("https://") && !html.contains(" src="),
        "the page must load nothing from elsewhere"
    );

    let profile = tempfile::tempdir().expect("profile dir");
    let out = tokio::task::spawn_blocking({
        let page = page.clone();
        let profile = profile.path().to_path_buf();
        move || {
            Command::new(browser)
                .args(["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom"])
                .arg(format!("--user-data-dir={}", profile.display()))
                .arg(format!("file://{}", page.display()))
                .output()
                .expect("chromium runs")
        }
    })
    .await
    .expect("join");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dom = String::from_utf8_lossy(&out.stdout);

    // The page's script ran: it wrote the shown/total count of the findings table.
    let n = report.findings.len();
    assert!(
        dom.contains(&format!("{n} of {n} shown")),
        "the script's count is missing from the rendered page"
    );
    // Every finding is in a rendered row, with its kind and subjects.
    for f in &report.findings {
        let subjects = f
            .subjects
            .join(", ")
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        assert!(
            dom.contains(&format!("<td>{}</td>", f.kind)) && dom.contains(&subjects),
            "finding {} not found in the rendered page",
            f.id
        );
    }
    assert!(dom.contains(&report.sha256));
}
