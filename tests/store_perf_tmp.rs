use bitbucket_access::domain::*;
use bitbucket_access::store::*;
#[tokio::test(flavor = "multi_thread")]
async fn perf() {
    let dir = tempfile::tempdir().unwrap();
    let url = std::env::var("PERF_URL").unwrap_or(format!("sqlite://{}/p.db", dir.path().display()));
    let s = open(&url).await.unwrap();
    let ws = WorkspaceSlug::parse("acme").unwrap();
    for round in 0..2 {
        let start = std::time::Instant::now();
        let mut rows = 0;
        for r in 0..5000 {
            let repo = RepoRef { workspace: ws.clone(), slug: RepoSlug::parse(format!("r{r}")).unwrap() };
            let facts = (0..3).map(|u| Fact::RepositoryUserPermission { account: Account { account_id: AccountId::parse(format!("u{}", (r * 7 + u) % 2000)).unwrap(), uuid: None, display_name: "x".into(), nickname: None }, level: RepoLevel::Write }).collect();
            rows += s.replace_listing(ReplaceListing::new(ListingKey::RepositoryUserPermissions(repo.clone()), facts, chrono::Utc::now())).await.unwrap().rows_written;
            let facts = vec![Fact::RepositoryGroupPermission { group: GroupSlug::parse(format!("g{}", r % 200)).unwrap(), level: RepoLevel::Read }];
            rows += s.replace_listing(ReplaceListing::new(ListingKey::RepositoryGroupPermissions(repo), facts, chrono::Utc::now())).await.unwrap().rows_written;
        }
        eprintln!("round {round}: {:?} rows {rows}", start.elapsed());
    }
}
