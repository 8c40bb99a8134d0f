//! `webhook install` and `uninstall` (issue 15, item 4) against the simulator: install
//! registers one workspace webhook for repository and project events with the secret; a second
//! install replaces it instead of adding another; uninstall removes it.

mod grants_support;
mod sync_support;

use bitbucket_access::cli::webhook::{install, uninstall, EVENTS};

const URL: &str = "https://access.example.com/webhooks/bitbucket";

#[tokio::test]
async fn install_registers_one_signed_webhook_and_uninstall_removes_it() {
    let sim = sync_support::start_sim_with(grants_support::world(1541, 2)).await;
    let client = sync_support::client(&sim, 4);
    let ws = grants_support::owned(&sim);
    let hooks = |sim: &bitbucket_sim::SimHandle| {
        sim.with_world(|w| {
            w.workspaces[&ws]
                .hooks
                .values()
                .cloned()
                .collect::<Vec<_>>()
        })
    };
    install(&client, &ws, URL, "hook-secret")
        .await
        .expect("install");
    install(&client, &ws, URL, "hook-secret-2")
        .await
        .expect("install again");
    let installed = hooks(&sim);
    assert_eq!(
        installed.len(),
        1,
        "a second install replaces: {installed:?}"
    );
    assert_eq!(installed[0].url, URL);
    assert_eq!(installed[0].secret.as_deref(), Some("hook-secret-2"));
    for event in [
        "repo:created",
        "repo:deleted",
        "repo:transfer",
        "repo:updated",
        "project:updated",
    ] {
        assert!(installed[0].events.iter().any(|e| e == event), "{event}");
    }
    assert_eq!(installed[0].events.len(), EVENTS.len());
    assert_eq!(uninstall(&client, &ws, URL).await.expect("uninstall"), 1);
    assert!(hooks(&sim).is_empty());
    assert_eq!(uninstall(&client, &ws, URL).await.expect("nothing left"), 0);
}
