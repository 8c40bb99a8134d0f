//! A batch of replaces behaves exactly like the same replaces one at a time, on SQLite and on
//! PostgreSQL (when `TEST_POSTGRES_URL` is set). The store reads and writes a batch with a few
//! multi-row statements; these scenarios pin that down against the one-by-one path: drift,
//! expected changes, the mass-change guard, cascades, a listing twice in one batch, account
//! profiles shared between listings, and outcomes in request order.

use std::sync::Arc;

use bitbucket_access::domain::{
    Account, AccountId, AccountKind, GroupSlug, Principal, RepoLevel, RepoRef, RepoSlug,
    WorkspaceSlug,
};
use bitbucket_access::store::{
    open, AuditFilter, ExpectedChange, Fact, ListingKey, MassChangeGuard, ReplaceListing,
    ReplaceOutcome, Store,
};
use chrono::{DateTime, Duration, TimeZone, Utc};

#[macro_use]
mod support_db;

on_both_backends!(
    a_mixed_batch_equals_the_same_replaces_one_by_one,
    a_large_batch_of_new_listings_is_stored_completely,
);

fn t(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 1, 9, 0, 0)
        .single()
        .expect("a valid time")
        + Duration::minutes(minutes)
}

fn slug(ws: &str) -> WorkspaceSlug {
    WorkspaceSlug::parse(ws).expect("slug")
}

fn repo_users(ws: &str, repo: &str) -> ListingKey {
    ListingKey::RepositoryUserPermissions(RepoRef {
        workspace: slug(ws),
        slug: RepoSlug::parse(repo).expect("slug"),
    })
}

/// An account private to one workspace (so the two workspaces of a scenario share none),
/// with a display name that can change.
fn account(ws: &str, id: &str, name: &str) -> Account {
    Account {
        account_id: AccountId::parse(format!("{ws}-{id}")).expect("account id"),
        uuid: None,
        display_name: name.to_owned(),
        nickname: None,
        kind: AccountKind::User,
    }
}

fn perm(ws: &str, id: &str, level: RepoLevel) -> Fact {
    Fact::RepositoryUserPermission {
        account: account(ws, id, id),
        level,
    }
}

fn repositories(ws: &str, slugs: &[&str]) -> ReplaceListing {
    let facts = slugs
        .iter()
        .map(|s| Fact::Repository {
            slug: RepoSlug::parse(*s).expect("slug"),
            uuid: None,
            name: (*s).to_owned(),
            project: None,
            is_private: true,
        })
        .collect();
    ReplaceListing::new(ListingKey::Repositories(slug(ws)), facts, t(0))
}

/// The stored state every scenario starts from, written one listing at a time.
async fn seed(store: &Arc<dyn Store>, ws: &str) {
    let big: Vec<Fact> = (0..12)
        .map(|i| perm(ws, &format!("u{i}"), RepoLevel::Read))
        .collect();
    let requests = vec![
        repositories(ws, &["api", "web", "old", "big"]),
        ReplaceListing::new(
            repo_users(ws, "api"),
            vec![perm(ws, "alice", RepoLevel::Read)],
            t(0),
        ),
        ReplaceListing::new(
            repo_users(ws, "web"),
            vec![
                perm(ws, "bob", RepoLevel::Read),
                perm(ws, "carol", RepoLevel::Write),
            ],
            t(0),
        ),
        ReplaceListing::new(
            repo_users(ws, "old"),
            vec![perm(ws, "dave", RepoLevel::Read)],
            t(0),
        ),
        ReplaceListing::new(repo_users(ws, "big"), big, t(0)),
    ];
    for request in requests {
        store.replace_listing(request).await.expect("seed");
    }
    store
        .record_listing_failure(&repo_users(ws, "web"), t(1), "timed out")
        .await
        .expect("record a failure");
}

/// The batch under test, deliberately out of key order.
fn batch(ws: &str) -> Vec<ReplaceListing> {
    let mut web = ReplaceListing::new(
        repo_users(ws, "web"),
        vec![
            perm(ws, "bob", RepoLevel::Write),
            perm(ws, "erin", RepoLevel::Read),
        ],
        t(10),
    );
    // The connector granted erin itself: not drift. Bob's change and carol's removal are.
    web.expected = vec![ExpectedChange {
        item: format!("{ws}-erin"),
        level: Some("read".to_owned()),
    }];
    let mut big = ReplaceListing::new(repo_users(ws, "big"), vec![], t(10));
    big.guard = Some(MassChangeGuard::default());
    let fresh = ReplaceListing::new(
        repo_users(ws, "wiki"),
        vec![Fact::RepositoryUserPermission {
            // The same account as in `web`, with a new profile: written once, by this listing.
            account: account(ws, "bob", "Bob Renamed"),
            level: RepoLevel::Admin,
        }],
        t(10),
    );
    let members = ReplaceListing::new(
        ListingKey::GroupMembers {
            workspace: slug(ws),
            group: GroupSlug::parse("devs").expect("slug"),
        },
        vec![Fact::GroupMember {
            account: account(ws, "alice", "alice"),
        }],
        t(10),
    );
    let mut repos = repositories(ws, &["api", "web", "big", "wiki"]);
    repos.observed_at = t(10);
    vec![
        web,
        ReplaceListing::new(
            repo_users(ws, "api"),
            vec![perm(ws, "alice", RepoLevel::Write)],
            t(10),
        ),
        big,
        // `old` disappears: its permissions and freshness go with it.
        repos,
        // Read again in the same batch after the cascade removed it: a fresh baseline.
        ReplaceListing::new(
            repo_users(ws, "old"),
            vec![perm(ws, "dave", RepoLevel::Admin)],
            t(10),
        ),
        fresh,
        // The same listing twice: the second is compared with what the first stored.
        ReplaceListing::new(
            repo_users(ws, "api"),
            vec![perm(ws, "alice", RepoLevel::Admin)],
            t(11),
        ),
        members,
    ]
}

/// What an outcome says, without the workspace in its drift keys.
fn summary(o: &ReplaceOutcome) -> (u64, u64, u64, u64, u64, bool, usize, u64, bool) {
    (
        o.inserted,
        o.updated,
        o.deleted,
        o.cascaded,
        o.accounts_written,
        o.baseline,
        o.drift.len(),
        o.rows_written,
        o.held.is_some(),
    )
}

/// The workspace's stored user permissions, with the workspace prefix of account ids removed.
async fn permissions(store: &Arc<dyn Store>, ws: &str) -> Vec<(String, String, RepoLevel)> {
    let mut out: Vec<_> = store
        .repository_permissions(&slug(ws))
        .await
        .expect("read permissions")
        .into_iter()
        .filter_map(|p| match p.principal {
            Principal::User { account_id } => Some((
                p.repository.to_string(),
                account_id.as_str().trim_start_matches(ws).to_owned(),
                p.level,
            )),
            Principal::Group { .. } => None,
        })
        .collect();
    out.sort();
    out
}

/// Listings with their read time and failures, without the workspace.
async fn freshness(store: &Arc<dyn Store>, ws: &str) -> Vec<String> {
    let mut out: Vec<String> = store
        .listings_by_age(&slug(ws))
        .await
        .expect("listings by age")
        .into_iter()
        .map(|s| format!("{} {:?} {:?}", s.key, s.read_at, s.cost_requests))
        .chain(
            store
                .listing_failures(&slug(ws))
                .await
                .expect("failures")
                .into_iter()
                .map(|f| format!("failed {}", f.key)),
        )
        .map(|line| line.replace(ws, "WS"))
        .collect();
    out.sort();
    out
}

async fn audit_len(store: &Arc<dyn Store>) -> usize {
    store
        .list_audit(&AuditFilter::default())
        .await
        .expect("audit")
        .len()
}

async fn a_mixed_batch_equals_the_same_replaces_one_by_one(url: String) {
    let store: Arc<dyn Store> = open(&url).await.expect("the store opens");
    seed(&store, "alpha").await;
    seed(&store, "bravo").await;

    // Workspace "alpha": each request alone, in the order a batch handles them (by key, stable).
    let before = audit_len(&store).await;
    let mut order: Vec<(usize, ReplaceListing)> = batch("alpha").into_iter().enumerate().collect();
    order.sort_by(|a, b| a.1.key.cmp(&b.1.key));
    let mut alone = vec![None; order.len()];
    for (index, request) in order {
        alone[index] = Some(summary(
            &store.replace_listing(request).await.expect("replace"),
        ));
    }
    let alone: Vec<_> = alone.into_iter().map(|o| o.expect("an outcome")).collect();
    let audit_alone = audit_len(&store).await - before;

    // Workspace "bravo": the same requests as one batch.
    let before = audit_len(&store).await;
    let batched: Vec<_> = store
        .replace_listings(batch("bravo"))
        .await
        .expect("batch")
        .iter()
        .map(summary)
        .collect();
    let audit_batched = audit_len(&store).await - before;

    assert_eq!(batched, alone, "outcomes differ (in request order)");
    assert_eq!(audit_batched, audit_alone, "audit entries differ");
    assert_eq!(
        permissions(&store, "bravo").await,
        permissions(&store, "alpha").await
    );
    assert_eq!(
        freshness(&store, "bravo").await,
        freshness(&store, "alpha").await
    );

    // The behaviour itself, so that both paths cannot be wrong together.
    let (web, api, big, repos, old, fresh, api_again) = (
        &batched[0],
        &batched[1],
        &batched[2],
        &batched[3],
        &batched[4],
        &batched[5],
        &batched[6],
    );
    assert_eq!((web.1, web.0, web.2, web.6), (1, 1, 1, 2), "web: {web:?}");
    assert_eq!((api.1, api.6), (1, 1), "api: {api:?}");
    assert!(big.8 && big.7 == 1, "the guard holds the emptied listing");
    assert_eq!((repos.0, repos.2, repos.3), (1, 1, 1), "repos: {repos:?}");
    assert!(old.5 && old.0 == 1, "old is a fresh baseline: {old:?}");
    assert_eq!(fresh.4, 1, "bob's new profile is written once");
    assert_eq!((api_again.1, api_again.6), (1, 1));
    let levels = permissions(&store, "bravo").await;
    assert!(levels.contains(&("api".into(), "-alice".into(), RepoLevel::Admin)));
    assert!(levels.contains(&("old".into(), "-dave".into(), RepoLevel::Admin)));
    assert_eq!(levels.iter().filter(|l| l.0 == "big").count(), 12);
    let bob = store
        .account(&AccountId::parse("bravo-bob").expect("id"))
        .await
        .expect("account")
        .expect("bob is stored");
    assert_eq!(bob.display_name, "Bob Renamed");
    assert!(!freshness(&store, "bravo")
        .await
        .iter()
        .any(|l| l.starts_with("failed")));
}

async fn a_large_batch_of_new_listings_is_stored_completely(url: String) {
    let store: Arc<dyn Store> = open(&url).await.expect("the store opens");
    // More listings than one statement's chunk, each with several rows and shared accounts.
    let requests: Vec<ReplaceListing> = (0..300)
        .map(|i| {
            ReplaceListing::new(
                repo_users("acme", &format!("r{i}")),
                (0..5)
                    .map(|u| perm("acme", &format!("u{}", (i + u) % 40), RepoLevel::Read))
                    .collect(),
                t(0),
            )
        })
        .collect();
    let outcomes = store.replace_listings(requests).await.expect("batch");
    assert_eq!(outcomes.len(), 300);
    assert!(outcomes.iter().all(|o| o.baseline && o.inserted == 5));
    assert_eq!(
        outcomes.iter().map(|o| o.accounts_written).sum::<u64>(),
        40,
        "each account is written once"
    );
    assert_eq!(permissions(&store, "acme").await.len(), 1_500);
    for i in 0..300 {
        let fresh = store
            .listing_freshness(&repo_users("acme", &format!("r{i}")))
            .await
            .expect("freshness")
            .expect("every listing is marked fresh");
        assert_eq!((fresh.read_at, fresh.item_count), (t(0), 5));
    }
}
