//! Effective access from the facts of one repository or one person (issue 15): the HTTP API
//! reads only what an answer rests on (`Store::repository_facts`, `Store::account_facts`), and
//! the answers must be exactly those the domain's rules give on the whole workspace. Checked for
//! every repository and every account of a generated, synced world, on both backends: levels,
//! sources, names, matched emails, completeness (with a failed read) and grant notes.

#[macro_use]
mod support_db;
mod sync_support;

use std::collections::BTreeMap;

use bitbucket_access::access::{for_account, for_repository, AccessRow};
use bitbucket_access::domain::{
    effective_access_for_account, effective_access_for_repository, AccountType, EffectiveAccess,
    Identity, IdentitySource, Principal, RepoLevel, RepoRef, WorkspaceSlug,
};
use bitbucket_access::store::ListingKey;
use bitbucket_access::sync::{self, SyncOptions};
use bitbucket_sim::{World, WorldSpec};
use sync_support::{client, grant_write_for_an_hour, owned_workspaces, start_sim_with};

on_both_backends!(per_repository_and_per_person_answers_equal_the_workspace_wide_ones);

/// What a row says, without the presentation order.
type Said = (String, String, String, RepoLevel, Vec<String>);

fn said_of_rows(rows: &[AccessRow]) -> Vec<Said> {
    let mut out: Vec<Said> = rows
        .iter()
        .map(|r| {
            (
                r.workspace.clone(),
                r.repository.clone(),
                r.account_id.clone(),
                r.level,
                r.sources.iter().map(|s| format!("{s:?}")).collect(),
            )
        })
        .collect();
    out.sort();
    out
}

fn said_of_domain(ws: &WorkspaceSlug, found: &[EffectiveAccess]) -> Vec<Said> {
    let mut out: Vec<Said> = found
        .iter()
        .map(|e| {
            (
                ws.to_string(),
                e.repository.to_string(),
                e.account_id.to_string(),
                e.level,
                e.sources.iter().map(|s| format!("{s:?}")).collect(),
            )
        })
        .collect();
    out.sort();
    out
}

async fn per_repository_and_per_person_answers_equal_the_workspace_wide_ones(url: String) {
    let sim = start_sim_with(World::generate(&WorldSpec {
        workspaces: 2,
        projects_per_workspace: 3,
        repositories: 40,
        users: 30,
        groups: 4,
        public_ratio: 0.3,
        ..WorldSpec::tiny(1551)
    }))
    .await;
    let store = bitbucket_access::store::open(&url).await.expect("store");
    let options = SyncOptions {
        workspaces: owned_workspaces(&sim),
        cross_check_sample: 0,
        ..SyncOptions::default()
    };
    sync::run(store.as_ref(), &client(&sim, 4), &options)
        .await
        .expect("sync");

    // Some matched emails, a failed read and a grant, so every part of an answer has content.
    let accounts = store.accounts().await.expect("accounts");
    for a in accounts.iter().take(5) {
        store
            .upsert_identity(&Identity {
                account_id: a.account_id.clone(),
                email: Some(format!(
                    "{}@acme.test",
                    a.account_id.as_str().replace(':', "-")
                )),
                source: IdentitySource::Manual,
                matched_at: chrono::Utc::now(),
                active: Some(true),
                account_type: AccountType::Atlassian,
                conflicts: Vec::new(),
            })
            .await
            .expect("identity");
    }
    let names: BTreeMap<String, (String, Option<String>)> =
        bitbucket_access::access::account_names(store.as_ref())
            .await
            .expect("names")
            .into_iter()
            .collect();
    let ws = WorkspaceSlug::parse(owned_workspaces(&sim).remove(0)).expect("slug");
    let facts = store.workspace_facts(&ws).await.expect("facts");
    let failed_repo = facts.repositories[0].slug.clone();
    let failed_key = ListingKey::RepositoryUserPermissions(RepoRef {
        workspace: ws.clone(),
        slug: failed_repo.clone(),
    });
    store
        .record_listing_failure(&failed_key, chrono::Utc::now(), "503 from Bitbucket")
        .await
        .expect("failure recorded");
    let direct = facts
        .repository_permissions
        .iter()
        .find(|p| p.level == RepoLevel::Write && matches!(p.principal, Principal::User { .. }))
        .expect("a direct write permission in the world");
    let Principal::User { account_id } = &direct.principal else {
        unreachable!("filtered above")
    };
    let granted = RepoRef {
        workspace: ws.clone(),
        slug: direct.repository.clone(),
    };
    grant_write_for_an_hour(store.as_ref(), &granted, account_id.to_string()).await;

    let mut rows_seen = 0;
    for workspace in store.workspaces().await.expect("workspaces") {
        let ws = workspace.slug;
        let facts = store.workspace_facts(&ws).await.expect("facts");
        let statuses = store.listings_by_age(&ws).await.expect("statuses");
        let failures = store.listing_failures(&ws).await.expect("failures");
        for repo in &facts.repositories {
            let answer = for_repository(store.as_ref(), &format!("{ws}/{}", repo.slug))
                .await
                .expect("answer");
            let whole = effective_access_for_repository(&facts, &repo.slug);
            assert_eq!(
                said_of_rows(&answer.rows),
                said_of_domain(&ws, &whole),
                "{ws}/{}",
                repo.slug
            );
            rows_seen += answer.rows.len();
            for row in &answer.rows {
                let expected = names.get(&row.account_id).cloned().unwrap_or_default();
                assert_eq!((row.display_name.clone(), row.email.clone()), expected);
            }
            // The answer rests on the workspace's own listings, every group's members, and the
            // permissions of this repository and its project.
            let relevant = |key: &ListingKey| match key {
                ListingKey::RepositoryUserPermissions(r)
                | ListingKey::RepositoryGroupPermissions(r) => r.slug == repo.slug,
                ListingKey::ProjectUserPermissions(p) | ListingKey::ProjectGroupPermissions(p) => {
                    Some(&p.key) == repo.project.as_ref()
                }
                _ => true,
            };
            let never_read: Vec<ListingKey> = statuses
                .iter()
                .filter(|s| relevant(&s.key) && s.read_at.is_none())
                .map(|s| s.key.clone())
                .collect();
            let oldest = statuses
                .iter()
                .filter(|s| relevant(&s.key))
                .filter_map(|s| s.read_at)
                .min();
            let failed: Vec<_> = failures
                .iter()
                .filter(|f| relevant(&f.key))
                .cloned()
                .collect();
            assert_eq!(answer.completeness.never_read, never_read);
            assert_eq!(answer.completeness.oldest_read_at, oldest);
            assert_eq!(answer.completeness.failed, failed);
            assert_eq!(
                answer.completeness.failed.len(),
                usize::from(ws == failed_key.workspace().clone() && repo.slug == failed_repo),
                "only the repository whose read failed says so"
            );
            if ws == granted.workspace && repo.slug == granted.slug {
                let row = answer
                    .rows
                    .iter()
                    .find(|r| r.account_id == account_id.as_str())
                    .expect("the granted account has a row");
                assert_eq!(row.grants.len(), 1, "the grant is named: {row:?}");
            }
        }
    }
    assert!(rows_seen > 100, "a world with content: {rows_seen} rows");

    let workspaces = store.workspaces().await.expect("workspaces");
    let mut all_facts = Vec::new();
    for w in &workspaces {
        all_facts.push((
            w.slug.clone(),
            store.workspace_facts(&w.slug).await.expect("facts"),
        ));
    }
    for account in &accounts {
        let (id, answer) = for_account(store.as_ref(), account.account_id.as_str())
            .await
            .expect("answer");
        assert_eq!(id, account.account_id.as_str());
        let mut expected = Vec::new();
        for (ws, facts) in &all_facts {
            expected.extend(said_of_domain(
                ws,
                &effective_access_for_account(facts, &account.account_id),
            ));
        }
        expected.sort();
        assert_eq!(
            said_of_rows(&answer.rows),
            expected,
            "{}",
            account.account_id
        );
    }
}
