//! The storage suite: the same scenarios on SQLite (always, a fresh file per test) and on
//! PostgreSQL (when `TEST_POSTGRES_URL` is set; each test creates and drops its own database).
//! With `REQUIRE_POSTGRES=1` the PostgreSQL half fails, rather than skips, when no server is
//! reachable.

use std::sync::Arc;

use bitbucket_access::domain::{
    effective_access, Account, AccountId, AccountKind, AccountType, EntityKind, FactKey,
    GrantLevel, GrantState, GrantTarget, GroupSlug, Identity, IdentitySource, NewGrant, Principal,
    ProjectKey, ProjectLevel, ProjectRef, RepoLevel, RepoRef, RepoSlug, Source, WorkspaceRole,
    WorkspaceSlug,
};
use bitbucket_access::store::{
    open, AuditFilter, AuditKind, ExpectedChange, Fact, ListingKey, NewAuditEntry, ReplaceListing,
    Store, StoreError, SyncOutcome, SyncRunFinish,
};
use chrono::{DateTime, Duration, TimeZone, Utc};
use sqlx::Connection;

#[macro_use]
mod support_db;

on_both_backends!(
    migrations_apply_twice,
    first_read_is_a_baseline_and_later_differences_are_drift,
    expected_changes_are_not_drift,
    unchanged_replace_writes_nothing_but_freshness,
    listing_never_replaced_keeps_its_facts,
    removing_a_repository_removes_its_permissions,
    audit_log_refuses_update_and_delete,
    audit_log_filters_by_kind_and_time,
    grants_roundtrip_and_expire_once,
    interrupted_sync_run_can_resume,
    listings_by_age_puts_never_read_first,
    stored_facts_feed_effective_access,
    accounts_and_identities,
    facts_of_another_listing_are_refused,
    password_is_hidden_from_errors_and_debug,
    large_listings_are_written_in_batches,
    concurrent_replaces_of_one_listing_record_drift_once,
    batched_replaces_behave_like_single_ones,
);

// ----- Helpers -----

fn t(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 1, 9, 0, 0)
        .single()
        .expect("a valid time")
        + Duration::minutes(minutes)
        + Duration::microseconds(123_456)
}

fn ws() -> WorkspaceSlug {
    WorkspaceSlug::parse("acme").expect("slug")
}

fn repo(slug: &str) -> RepoRef {
    RepoRef {
        workspace: ws(),
        slug: RepoSlug::parse(slug).expect("slug"),
    }
}

fn account(id: &str) -> Account {
    Account {
        account_id: AccountId::parse(id).expect("account id"),
        uuid: Some(format!("{{{id}-uuid}}")),
        display_name: format!("{id} display"),
        nickname: Some(id.to_owned()),
        kind: AccountKind::User,
    }
}

fn user_perm(id: &str, level: RepoLevel) -> Fact {
    Fact::RepositoryUserPermission {
        account: account(id),
        level,
    }
}

fn repo_users(slug: &str) -> ListingKey {
    ListingKey::RepositoryUserPermissions(repo(slug))
}

async fn store(url: &str) -> Arc<dyn Store> {
    open(url).await.expect("the store opens")
}

async fn replace(
    store: &Arc<dyn Store>,
    key: ListingKey,
    facts: Vec<Fact>,
    at: DateTime<Utc>,
) -> bitbucket_access::store::ReplaceOutcome {
    store
        .replace_listing(ReplaceListing::new(key, facts, at))
        .await
        .expect("replace_listing succeeds")
}

async fn direct_levels(store: &Arc<dyn Store>, slug: &str) -> Vec<(String, RepoLevel)> {
    store
        .repository_permissions(&ws())
        .await
        .expect("read permissions")
        .into_iter()
        .filter(|p| p.repository.as_str() == slug)
        .filter_map(|p| match p.principal {
            Principal::User { account_id } => Some((account_id.to_string(), p.level)),
            Principal::Group { .. } => None,
        })
        .collect()
}

async fn audit_count(store: &Arc<dyn Store>) -> usize {
    store
        .list_audit(&AuditFilter::default())
        .await
        .expect("list audit")
        .len()
}

// ----- Scenarios -----

async fn migrations_apply_twice(url: String) {
    let first = store(&url).await;
    first.migrate().await.expect("a second migrate is a no-op");
    replace(
        &first,
        repo_users("api"),
        vec![user_perm("alice", RepoLevel::Read)],
        t(0),
    )
    .await;
    drop(first);
    let again = store(&url).await;
    assert_eq!(
        direct_levels(&again, "api").await,
        vec![("alice".to_owned(), RepoLevel::Read)],
        "reopening and migrating again keeps the data"
    );
}

async fn first_read_is_a_baseline_and_later_differences_are_drift(url: String) {
    let s = store(&url).await;
    let first = replace(
        &s,
        repo_users("api"),
        vec![
            user_perm("alice", RepoLevel::Read),
            user_perm("bob", RepoLevel::Write),
        ],
        t(0),
    )
    .await;
    assert!(first.baseline);
    assert_eq!((first.inserted, first.updated, first.deleted), (2, 0, 0));
    assert!(
        first.drift.is_empty(),
        "the first read is a baseline, not drift"
    );

    let second = replace(
        &s,
        repo_users("api"),
        vec![
            user_perm("alice", RepoLevel::Write),
            user_perm("carol", RepoLevel::Read),
        ],
        t(60),
    )
    .await;
    assert!(!second.baseline);
    assert_eq!((second.inserted, second.updated, second.deleted), (1, 1, 1));
    assert_eq!(second.drift.len(), 3);
    let by_key = |key: &str| {
        second
            .drift
            .iter()
            .find(|d| d.key.to_string() == key)
            .unwrap_or_else(|| panic!("a drift event for {key}: {:?}", second.drift))
    };
    let alice = by_key("acme/api alice");
    assert_eq!(
        alice.key,
        FactKey::RepositoryUserPermission {
            repository: repo("api"),
            account: AccountId::parse("alice").expect("id"),
        },
        "the drift event carries a typed key"
    );
    assert_eq!(alice.kind, EntityKind::RepositoryUserPermission);
    assert_eq!(alice.before, Some(serde_json::json!({"level": "read"})));
    assert_eq!(alice.after, Some(serde_json::json!({"level": "write"})));
    assert_eq!(alice.observed_at, t(60));
    assert_eq!(by_key("acme/api bob").after, None);
    assert_eq!(by_key("acme/api carol").before, None);

    assert_eq!(
        direct_levels(&s, "api").await,
        vec![
            ("alice".to_owned(), RepoLevel::Write),
            ("carol".to_owned(), RepoLevel::Read)
        ]
    );
    let audit = s
        .list_audit(&AuditFilter {
            kinds: vec![AuditKind::Drift],
            ..AuditFilter::default()
        })
        .await
        .expect("list drift");
    assert_eq!(audit.len(), 3);
    let bob = audit
        .iter()
        .find(|e| e.entry.subject == "repository_user_permission acme/api bob")
        .expect("bob's removal is in the audit log");
    assert_eq!(
        bob.entry.before,
        Some(serde_json::json!({"level": "write"}))
    );
    assert_eq!(bob.entry.after, None);
    assert_eq!(bob.entry.at, t(60));
    assert_eq!(bob.entry.details["listing"], "repo:acme/api:users");
}

async fn expected_changes_are_not_drift(url: String) {
    let s = store(&url).await;
    replace(
        &s,
        repo_users("api"),
        vec![user_perm("alice", RepoLevel::Read)],
        t(0),
    )
    .await;
    let mut request = ReplaceListing::new(
        repo_users("api"),
        vec![
            user_perm("alice", RepoLevel::Write),
            user_perm("bob", RepoLevel::Admin),
        ],
        t(10),
    );
    // The connector raised alice to write itself; bob's admin came from someone else.
    request.expected = vec![ExpectedChange {
        item: "alice".to_owned(),
        level: Some("write".to_owned()),
    }];
    let outcome = s.replace_listing(request).await.expect("replace");
    assert_eq!(outcome.updated, 1);
    assert_eq!(outcome.inserted, 1);
    let keys: Vec<String> = outcome.drift.iter().map(|d| d.key.to_string()).collect();
    assert_eq!(keys, vec!["acme/api bob"]);
}

async fn unchanged_replace_writes_nothing_but_freshness(url: String) {
    let s = store(&url).await;
    let facts = vec![
        user_perm("alice", RepoLevel::Read),
        user_perm("bob", RepoLevel::Admin),
    ];
    let first = replace(&s, repo_users("api"), facts.clone(), t(0)).await;
    assert_eq!(first.accounts_written, 2);
    let members = vec![Fact::WorkspaceMember {
        account: account("alice"),
        role: WorkspaceRole::Member,
    }];
    replace(
        &s,
        ListingKey::WorkspaceMembers(ws()),
        members.clone(),
        t(0),
    )
    .await;
    let audit_before = audit_count(&s).await;

    let again = replace(&s, repo_users("api"), facts, t(30)).await;
    assert_eq!(again.rows_written, 0, "{again:?}");
    assert_eq!((again.inserted, again.updated, again.deleted), (0, 0, 0));
    assert_eq!(again.accounts_written, 0);
    assert!(again.drift.is_empty());
    let again = replace(&s, ListingKey::WorkspaceMembers(ws()), members, t(30)).await;
    assert_eq!(again.rows_written, 0, "{again:?}");
    assert_eq!(audit_count(&s).await, audit_before);

    let fresh = s
        .listing_freshness(&repo_users("api"))
        .await
        .expect("freshness")
        .expect("the listing was read");
    assert_eq!(fresh.read_at, t(30), "the freshness moves on");
    assert_eq!(fresh.item_count, 2);
}

async fn listing_never_replaced_keeps_its_facts(url: String) {
    let s = store(&url).await;
    replace(
        &s,
        repo_users("api"),
        vec![user_perm("alice", RepoLevel::Read)],
        t(0),
    )
    .await;
    replace(
        &s,
        repo_users("web"),
        vec![user_perm("bob", RepoLevel::Write)],
        t(0),
    )
    .await;
    // The read of "web" failed this time: only "api" is replaced, with an empty set.
    replace(&s, repo_users("api"), vec![], t(60)).await;
    assert!(direct_levels(&s, "api").await.is_empty());
    assert_eq!(
        direct_levels(&s, "web").await,
        vec![("bob".to_owned(), RepoLevel::Write)]
    );
    let web = s
        .listing_freshness(&repo_users("web"))
        .await
        .expect("freshness")
        .expect("web was read once");
    assert_eq!(web.read_at, t(0), "its age shows it was not refreshed");
}

async fn removing_a_repository_removes_its_permissions(url: String) {
    let s = store(&url).await;
    let repository = |slug: &str| Fact::Repository {
        slug: RepoSlug::parse(slug).expect("slug"),
        uuid: None,
        name: slug.to_owned(),
        project: None,
        is_private: true,
    };
    replace(
        &s,
        ListingKey::Repositories(ws()),
        vec![repository("api"), repository("web")],
        t(0),
    )
    .await;
    replace(
        &s,
        repo_users("api"),
        vec![user_perm("alice", RepoLevel::Read)],
        t(0),
    )
    .await;
    replace(
        &s,
        repo_users("web"),
        vec![user_perm("bob", RepoLevel::Read)],
        t(0),
    )
    .await;
    let outcome = replace(
        &s,
        ListingKey::Repositories(ws()),
        vec![repository("web")],
        t(5),
    )
    .await;
    assert_eq!(outcome.deleted, 1);
    assert_eq!(outcome.cascaded, 1);
    assert_eq!(outcome.drift.len(), 1);
    assert_eq!(outcome.drift[0].kind, EntityKind::Repository);
    assert!(direct_levels(&s, "api").await.is_empty());
    assert_eq!(direct_levels(&s, "web").await.len(), 1);
    assert!(s
        .listing_freshness(&repo_users("api"))
        .await
        .expect("freshness")
        .is_none());
}

async fn audit_log_refuses_update_and_delete(url: String) {
    let s = store(&url).await;
    let id = s
        .append_audit(&NewAuditEntry {
            at: t(0),
            actor: "alice@acme.com".to_owned(),
            kind: AuditKind::Grant,
            subject: "repository acme/api".to_owned(),
            before: None,
            after: Some(serde_json::json!({"level": "write"})),
            details: serde_json::json!({"ticket": "SEC-1"}),
        })
        .await
        .expect("append");

    let attempts = [
        "UPDATE audit_log SET actor = 'mallory'",
        "DELETE FROM audit_log",
    ];
    for statement in attempts {
        let refused = if url.starts_with("sqlite") {
            let mut conn = sqlx::SqliteConnection::connect(&url)
                .await
                .expect("connect");
            sqlx::query(statement).execute(&mut conn).await.map(|_| ())
        } else {
            let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
            sqlx::query(statement).execute(&mut conn).await.map(|_| ())
        };
        let err = refused
            .expect_err("the audit log refuses changes")
            .to_string();
        assert!(err.contains("append-only"), "{statement}: {err}");
    }
    let entries = s.list_audit(&AuditFilter::default()).await.expect("list");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].id, id);
    assert_eq!(entries[0].entry.actor, "alice@acme.com");
}

async fn audit_log_filters_by_kind_and_time(url: String) {
    let s = store(&url).await;
    for (minute, kind) in [
        (0, AuditKind::Sync),
        (10, AuditKind::Drift),
        (20, AuditKind::Drift),
    ] {
        s.append_audit(&NewAuditEntry {
            at: t(minute),
            actor: "sync".to_owned(),
            kind,
            subject: format!("event at {minute}"),
            before: None,
            after: None,
            details: serde_json::json!({}),
        })
        .await
        .expect("append");
    }
    let drift_after_5 = s
        .list_audit(&AuditFilter {
            kinds: vec![AuditKind::Drift],
            since: Some(t(5)),
            until: Some(t(20)),
            limit: None,
        })
        .await
        .expect("list");
    let subjects: Vec<&str> = drift_after_5
        .iter()
        .map(|e| e.entry.subject.as_str())
        .collect();
    assert_eq!(subjects, vec!["event at 10"]);
    let limited = s
        .list_audit(&AuditFilter {
            limit: Some(2),
            ..AuditFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(limited.len(), 2);
    assert_eq!(limited[0].entry.kind, AuditKind::Sync);
}

async fn grants_roundtrip_and_expire_once(url: String) {
    let s = store(&url).await;
    let new = NewGrant {
        principal: Principal::User {
            account_id: AccountId::parse("557058:alice").expect("id"),
        },
        target: GrantTarget::Repository {
            repository: repo("payments-api"),
        },
        level: GrantLevel::Write,
        baseline: Some(GrantLevel::Read),
        planned: Some(GrantLevel::Write),
        requested_by: "alice@acme.com".to_owned(),
        reason: Some("incident".to_owned()),
        ticket: Some("SEC-123".to_owned()),
        created_at: t(0),
        starts_at: t(0),
        expires_at: Some(t(480)),
        state: GrantState::Pending,
    };
    let grant = s.insert_grant(&new).await.expect("insert");
    assert_eq!(grant.target, new.target);
    assert_eq!(grant.principal, new.principal);
    assert_eq!(grant.expires_at, Some(t(480)));
    assert_eq!(grant.ticket.as_deref(), Some("SEC-123"));
    assert!(s.active_grants().await.expect("active").is_empty());

    assert!(s
        .transition_grant(grant.id, GrantState::Pending, GrantState::Active, t(1))
        .await
        .expect("activate"));
    assert!(!s
        .transition_grant(grant.id, GrantState::Pending, GrantState::Active, t(1))
        .await
        .expect("second activate"));
    assert_eq!(s.active_grants().await.expect("active").len(), 1);
    assert!(s.grants_due(t(479)).await.expect("due").is_empty());
    let due = s.grants_due(t(480)).await.expect("due");
    assert_eq!(due.len(), 1);
    assert!(due[0].is_due(t(480)));

    // Two instances race to expire it: exactly one wins.
    let first = s
        .transition_grant(grant.id, GrantState::Active, GrantState::Ended, t(481))
        .await
        .expect("expire");
    let second = s
        .transition_grant(grant.id, GrantState::Active, GrantState::Ended, t(481))
        .await
        .expect("expire again");
    assert!(first && !second);
    let stored = s.grant(grant.id).await.expect("get").expect("exists");
    assert_eq!(stored.state, GrantState::Ended);
    assert_eq!(stored.updated_at, t(481));

    let project_grant = s
        .insert_grant(&NewGrant {
            principal: Principal::Group {
                slug: GroupSlug::parse("devs").expect("slug"),
            },
            target: GrantTarget::Project {
                project: ProjectRef {
                    workspace: ws(),
                    key: ProjectKey::parse("PAY").expect("key"),
                },
            },
            level: GrantLevel::CreateRepo,
            baseline: None,
            planned: Some(GrantLevel::CreateRepo),
            expires_at: None,
            ..new
        })
        .await
        .expect("insert a project grant");
    let read_back = s
        .grant(project_grant.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(read_back, project_grant);
}

async fn interrupted_sync_run_can_resume(url: String) {
    let s = store(&url).await;
    let run = s.start_sync_run(t(0), &[ws()]).await.expect("start");
    for slug in ["api", "web"] {
        let mut request = ReplaceListing::new(repo_users(slug), vec![], t(1));
        request.run = Some(run);
        request.cost_requests = 2;
        s.replace_listing(request).await.expect("replace");
    }
    // The process dies here. The next sync finds the unfinished run and what it completed.
    let unfinished = s
        .unfinished_sync_run()
        .await
        .expect("read")
        .expect("an unfinished run");
    assert_eq!(unfinished.id, run);
    assert_eq!(unfinished.workspaces, vec![ws()]);
    let done = s.completed_listings(run).await.expect("completed");
    assert_eq!(done, vec![repo_users("api"), repo_users("web")]);

    s.finish_sync_run(
        run,
        &SyncRunFinish {
            finished_at: t(5),
            outcome: SyncOutcome::Complete,
            counts: serde_json::json!({"repositories": 2}),
            requests_used: 40,
            minimum_requests: 38,
        },
    )
    .await
    .expect("finish");
    assert!(s.unfinished_sync_run().await.expect("read").is_none());
    let last = s.last_sync_run().await.expect("read").expect("a run");
    assert_eq!(last.outcome, Some(SyncOutcome::Complete));
    assert_eq!(last.finished_at, Some(t(5)));
    assert_eq!((last.requests_used, last.minimum_requests), (40, 38));
    assert_eq!(last.counts["repositories"], 2);
    // The run's requests count against the hour after it finished, and not after that.
    assert_eq!(s.requests_since(t(4), None).await.expect("sum"), 40);
    assert_eq!(s.requests_since(t(6), None).await.expect("sum"), 0);
}

async fn listings_by_age_puts_never_read_first(url: String) {
    let s = store(&url).await;
    replace(
        &s,
        ListingKey::Repositories(ws()),
        vec![Fact::Repository {
            slug: RepoSlug::parse("api").expect("slug"),
            uuid: None,
            name: "api".to_owned(),
            project: None,
            is_private: true,
        }],
        t(10),
    )
    .await;
    replace(&s, repo_users("api"), vec![], t(5)).await;
    let statuses = s.listings_by_age(&ws()).await.expect("plan");
    let keys: Vec<String> = statuses.iter().map(|st| st.key.to_string()).collect();
    assert_eq!(
        keys,
        vec![
            "workspace:acme",
            "workspace:acme:members",
            "workspace:acme:projects",
            "workspace:acme:groups",
            "repo:acme/api:groups",
            "repo:acme/api:users",
            "workspace:acme:repositories",
        ]
    );
    assert!(statuses[..5].iter().all(|st| st.read_at.is_none()));
    assert_eq!(statuses[5].read_at, Some(t(5)));
    assert_eq!(statuses[5].cost_requests, Some(1));
}

async fn stored_facts_feed_effective_access(url: String) {
    let s = store(&url).await;
    let project = ProjectRef {
        workspace: ws(),
        key: ProjectKey::parse("PAY").expect("key"),
    };
    let devs = GroupSlug::parse("devs").expect("slug");
    replace(
        &s,
        ListingKey::WorkspaceMembers(ws()),
        vec![
            Fact::WorkspaceMember {
                account: account("alice"),
                role: WorkspaceRole::Member,
            },
            Fact::WorkspaceMember {
                account: account("olga"),
                role: WorkspaceRole::Owner,
            },
        ],
        t(0),
    )
    .await;
    replace(
        &s,
        ListingKey::Repositories(ws()),
        vec![Fact::Repository {
            slug: RepoSlug::parse("api").expect("slug"),
            uuid: Some("{r1}".to_owned()),
            name: "API".to_owned(),
            project: Some(project.key.clone()),
            is_private: true,
        }],
        t(0),
    )
    .await;
    replace(
        &s,
        ListingKey::GroupMembers {
            workspace: ws(),
            group: devs.clone(),
        },
        vec![Fact::GroupMember {
            account: account("alice"),
        }],
        t(0),
    )
    .await;
    replace(
        &s,
        ListingKey::ProjectGroupPermissions(project.clone()),
        vec![Fact::ProjectGroupPermission {
            group: devs.clone(),
            level: ProjectLevel::CreateRepo,
        }],
        t(0),
    )
    .await;
    replace(
        &s,
        repo_users("api"),
        vec![user_perm("alice", RepoLevel::Read)],
        t(0),
    )
    .await;

    let facts = s.workspace_facts(&ws()).await.expect("facts");
    let access = effective_access(&facts);
    let alice = access
        .iter()
        .find(|e| e.account_id.as_str() == "alice")
        .expect("alice reaches api");
    assert_eq!(alice.level, RepoLevel::Write);
    assert_eq!(
        alice.sources[0].source,
        Source::ProjectGroup {
            key: project.key.clone(),
            group: devs
        }
    );
    assert_eq!(alice.sources[1].source, Source::Direct);
    let olga = access
        .iter()
        .find(|e| e.account_id.as_str() == "olga")
        .expect("the owner reaches api");
    assert_eq!(olga.level, RepoLevel::Admin);
}

async fn accounts_and_identities(url: String) {
    let s = store(&url).await;
    replace(
        &s,
        repo_users("api"),
        vec![user_perm("alice", RepoLevel::Read)],
        t(0),
    )
    .await;
    let mut renamed = account("alice");
    renamed.display_name = "Alice Liddell".to_owned();
    let outcome = replace(
        &s,
        repo_users("api"),
        vec![Fact::RepositoryUserPermission {
            account: renamed.clone(),
            level: RepoLevel::Read,
        }],
        t(1),
    )
    .await;
    assert_eq!(outcome.accounts_written, 1);
    assert!(outcome.drift.is_empty(), "a new display name is not drift");
    let id = AccountId::parse("alice").expect("id");
    assert_eq!(s.account(&id).await.expect("get"), Some(renamed.clone()));

    s.upsert_identity(&Identity {
        account_id: id.clone(),
        email: Some("Alice@Acme.com".to_owned()),
        source: IdentitySource::JiraUsersSearch,
        matched_at: t(2),
        active: Some(true),
        account_type: AccountType::Atlassian,
        conflicts: vec![],
    })
    .await
    .expect("identity");
    assert_eq!(
        s.account_by_email("alice@acme.com").await.expect("lookup"),
        Some(renamed)
    );
    assert_eq!(
        s.account_by_email("bob@acme.com").await.expect("lookup"),
        None
    );
    let identities = s.identities().await.expect("identities");
    assert_eq!(identities.len(), 1);
    assert_eq!(identities[0].matched_at, t(2));
}

async fn facts_of_another_listing_are_refused(url: String) {
    let s = store(&url).await;
    let err = s
        .replace_listing(ReplaceListing::new(
            ListingKey::WorkspaceMembers(ws()),
            vec![user_perm("alice", RepoLevel::Read)],
            t(0),
        ))
        .await
        .expect_err("a permission is not a member");
    assert!(matches!(err, StoreError::FactMismatch { .. }), "{err}");
    assert!(s
        .listing_freshness(&ListingKey::WorkspaceMembers(ws()))
        .await
        .expect("freshness")
        .is_none());
}

async fn password_is_hidden_from_errors_and_debug(url: String) {
    // Nothing listens on port 1: the error must name the server but not the password.
    let err = open("postgres://app:hunter2-secret@127.0.0.1:1/access")
        .await
        .expect_err("nothing listens on port 1");
    for shown in [err.to_string(), format!("{err:?}")] {
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("127.0.0.1:1"), "{shown}");
        assert!(shown.contains("PostgreSQL"), "{shown}");
    }
    eprintln!("error shown for an unreachable server: {err}");
    let bad = open("mysql://root:hunter2-secret@db/x")
        .await
        .expect_err("unsupported");
    assert!(!bad.to_string().contains("hunter2"), "{bad}");

    if url.starts_with("postgres") {
        // The local server trusts connections, so a URL with a password connects: its Debug
        // output must still hide the password.
        let mut with_password = url::Url::parse(&url).expect("url");
        with_password
            .set_password(Some("hunter2-secret"))
            .expect("a postgres URL takes a password");
        let s = open(with_password.as_str()).await.expect("open");
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("***"), "{shown}");
    }
}

async fn large_listings_are_written_in_batches(url: String) {
    let s = store(&url).await;
    let key = ListingKey::WorkspaceMembers(ws());
    let member = |i: usize, role: WorkspaceRole| Fact::WorkspaceMember {
        account: account(&format!("user-{i:04}")),
        role,
    };
    let first: Vec<Fact> = (0..1500)
        .map(|i| member(i, WorkspaceRole::Member))
        .collect();
    let outcome = replace(&s, key.clone(), first, t(0)).await;
    assert_eq!((outcome.inserted, outcome.accounts_written), (1500, 1500));

    // Half leave, a quarter become owners, 200 join.
    let second: Vec<Fact> = (750..1700)
        .map(|i| {
            let role = if i < 1125 {
                WorkspaceRole::Owner
            } else {
                WorkspaceRole::Member
            };
            member(i, role)
        })
        .collect();
    let outcome = replace(&s, key.clone(), second, t(1)).await;
    assert_eq!(
        (outcome.inserted, outcome.updated, outcome.deleted),
        (200, 375, 750)
    );
    assert_eq!(outcome.drift.len(), 200 + 375 + 750);
    let members = s.workspace_members(&ws()).await.expect("members");
    assert_eq!(members.len(), 950);
    let owners = members
        .iter()
        .filter(|m| m.role == WorkspaceRole::Owner)
        .count();
    assert_eq!(owners, 375);
}

async fn concurrent_replaces_of_one_listing_record_drift_once(url: String) {
    let s = store(&url).await;
    replace(
        &s,
        repo_users("api"),
        vec![user_perm("alice", RepoLevel::Read)],
        t(0),
    )
    .await;
    let facts = vec![user_perm("alice", RepoLevel::Admin)];
    let (a, b) = tokio::join!(
        s.replace_listing(ReplaceListing::new(repo_users("api"), facts.clone(), t(1))),
        s.replace_listing(ReplaceListing::new(repo_users("api"), facts, t(1))),
    );
    let drift = a.expect("first").drift.len() + b.expect("second").drift.len();
    assert_eq!(drift, 1, "the same change is one drift event");
}

async fn batched_replaces_behave_like_single_ones(url: String) {
    let s = store(&url).await;
    replace(
        &s,
        repo_users("web"),
        vec![user_perm("bob", RepoLevel::Read)],
        t(0),
    )
    .await;
    let outcomes = s
        .replace_listings(vec![
            ReplaceListing::new(
                repo_users("web"),
                vec![user_perm("bob", RepoLevel::Write)],
                t(1),
            ),
            ReplaceListing::new(
                repo_users("api"),
                vec![user_perm("alice", RepoLevel::Read)],
                t(1),
            ),
        ])
        .await
        .expect("batch");
    assert_eq!(outcomes.len(), 2);
    assert_eq!((outcomes[0].updated, outcomes[0].drift.len()), (1, 1));
    assert!(outcomes[1].baseline && outcomes[1].inserted == 1);

    // One bad request rolls the whole batch back.
    let failed = s
        .replace_listings(vec![
            ReplaceListing::new(repo_users("web"), vec![], t(2)),
            ReplaceListing::new(
                ListingKey::Groups(ws()),
                vec![user_perm("bob", RepoLevel::Read)],
                t(2),
            ),
        ])
        .await;
    assert!(failed.is_err());
    assert_eq!(
        direct_levels(&s, "web").await,
        vec![("bob".to_owned(), RepoLevel::Write)]
    );
}

/// With `REQUIRE_POSTGRES=1`, an unreachable PostgreSQL is a failure that says what to do, never
/// a silent skip, and the message hides the URL's password. Runs one PostgreSQL scenario of this
/// very binary in a child process pointed at a closed port.
#[test]
fn required_postgres_that_is_down_fails_with_a_clear_message() {
    if std::env::var_os("BBA_STORE_SUITE_CHILD").is_some() {
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "postgres::interrupted_sync_run_can_resume",
            "--nocapture",
        ])
        .env("BBA_STORE_SUITE_CHILD", "1")
        .env("REQUIRE_POSTGRES", "1")
        .env(
            "TEST_POSTGRES_URL",
            "postgres://postgres:hunter2secret@127.0.0.1:1/postgres",
        )
        .output()
        .expect("run the child");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "the child passed:\n{text}");
    assert!(
        text.contains("REQUIRE_POSTGRES=1 but PostgreSQL at"),
        "no clear message:\n{text}"
    );
    assert!(!text.contains("hunter2secret"), "password shown:\n{text}");
}
