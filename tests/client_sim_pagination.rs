//! The Bitbucket client's listings against the simulator over real HTTP: every item of a
//! listing that takes many pages arrives exactly once (page-number and opaque-cursor `next`
//! links alike), and a page that is cut short, truncated on the wire or not JSON ends the
//! listing with an error rather than a shorter list.

use bitbucket_access::bitbucket::{
    Auth, BitbucketClient, ClientSettings, ErrorKind, Paged, RetryPolicy,
};
use bitbucket_sim::{Role, Sim, SimHandle, SimOptions, World, WorldSpec};
use futures::TryStreamExt;
use secrecy::SecretString;
use std::collections::BTreeSet;
use url::Url;

/// The client asks for 100 items a page (Bitbucket's maximum).
const PAGE: usize = 100;

/// A world with enough repositories and members that every listing takes several pages.
async fn start_big_sim(seed: u64) -> SimHandle {
    let spec = WorldSpec {
        repositories: 460,
        users: 230,
        ..WorldSpec::tiny(seed)
    };
    Sim::start(World::generate(&spec), SimOptions::default())
        .await
        .expect("simulator starts")
}

fn client(sim: &SimHandle, retry: RetryPolicy) -> BitbucketClient {
    let settings = ClientSettings::new(
        Url::parse(&sim.bitbucket_url()).expect("url"),
        Auth::ApiToken {
            email: sim.admin_email(),
            token: SecretString::from(sim.admin_token()),
        },
    );
    BitbucketClient::builder(settings)
        .retry_policy(retry)
        .build()
        .expect("client")
}

/// The slug of the workspace the service account owns that has the most repositories.
fn biggest_owned_workspace(sim: &SimHandle) -> String {
    let admin = sim.admin_account_id();
    sim.with_world(|w| {
        w.workspaces
            .values()
            .filter(|ws| matches!(ws.members.get(&admin), Some(m) if m.role == Role::Owner))
            .max_by_key(|ws| ws.repositories.len())
            .map(|ws| ws.slug.clone())
            .expect("an owned workspace")
    })
}

fn pages_for(items: usize) -> u64 {
    items.div_ceil(PAGE).max(1) as u64
}

fn repo_slugs(sim: &SimHandle, ws: &str) -> BTreeSet<String> {
    sim.with_world(|w| w.workspaces[ws].repositories.keys().cloned().collect())
}

async fn all_repo_slugs(paged: Paged<bitbucket_access::bitbucket::Repository>) -> Vec<String> {
    paged
        .collect_all()
        .await
        .expect("listing completes")
        .iter()
        .map(|r| r.slug().expect("slug").to_string())
        .collect()
}

#[tokio::test]
async fn repositories_follow_opaque_cursors_to_the_last_item() {
    let sim = start_big_sim(61).await;
    let ws = biggest_owned_workspace(&sim);
    let expected = repo_slugs(&sim, &ws);
    assert!(
        expected.len() > 2 * PAGE,
        "only {} repositories",
        expected.len()
    );
    let c = client(&sim, RetryPolicy::immediate(1));

    let got = all_repo_slugs(c.repositories(&ws).list(None)).await;

    assert_eq!(got.len(), expected.len(), "an item was lost or repeated");
    assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), expected);
    assert_eq!(
        sim.request_count("GET", "/2.0/repositories/{workspace}"),
        pages_for(expected.len())
    );
}

#[tokio::test]
async fn effective_permissions_and_members_are_read_in_full() {
    let sim = start_big_sim(62).await;
    let ws = biggest_owned_workspace(&sim);
    let c = client(&sim, RetryPolicy::immediate(1));

    // An opaque-cursor listing without `size`: only following `next` gets everything.
    let expected: BTreeSet<(String, String)> = sim
        .effective_permissions(&ws)
        .into_iter()
        .map(|p| (p.account_id, p.repo_slug))
        .collect();
    assert!(expected.len() > 3 * PAGE, "only {} entries", expected.len());
    let got = c
        .permissions()
        .workspace_repositories(&ws, None)
        .collect_all()
        .await
        .expect("listing completes");
    assert_eq!(got.len(), expected.len(), "an entry was lost or repeated");
    let got: BTreeSet<(String, String)> = got
        .into_iter()
        .map(|p| {
            (
                p.user.account_id.expect("account id"),
                p.repository.slug().expect("repo slug").to_string(),
            )
        })
        .collect();
    assert_eq!(got, expected);
    assert_eq!(
        sim.request_count(
            "GET",
            "/2.0/workspaces/{workspace}/permissions/repositories"
        ),
        pages_for(expected.len())
    );

    // A page-number listing.
    let members: BTreeSet<String> =
        sim.with_world(|w| w.workspaces[&ws].members.keys().cloned().collect());
    assert!(members.len() > PAGE, "only {} members", members.len());
    let got: BTreeSet<String> = c
        .workspaces()
        .members(&ws)
        .map_ok(|m| m.user.account_id.expect("account id"))
        .try_collect()
        .await
        .expect("listing completes");
    assert_eq!(got, members);
    assert_eq!(
        sim.request_count("GET", "/2.0/workspaces/{workspace}/members"),
        pages_for(members.len())
    );
}

#[tokio::test]
async fn a_page_cut_short_is_an_error_never_a_shorter_list() {
    let sim = start_big_sim(63).await;
    let ws = biggest_owned_workspace(&sim);
    let c = client(&sim, RetryPolicy::immediate(1));

    // Well-formed JSON missing half of `values`, `next` and `size` untouched.
    sim.faults().short_next_page(1);
    let err = c
        .repositories(&ws)
        .list(None)
        .collect_all()
        .await
        .expect_err("a short page must not pass as the whole listing");
    assert_eq!(err.kind, ErrorKind::Incomplete, "{err}");
    assert!(err.message.contains("announced"), "{err}");

    sim.faults().short_next_page(1);
    let err = c
        .workspaces()
        .members(&ws)
        .collect_all()
        .await
        .expect_err("a short page of members must not pass");
    assert_eq!(err.kind, ErrorKind::Incomplete, "{err}");

    // With the fault spent, the same listing is whole again.
    let got = all_repo_slugs(c.repositories(&ws).list(None)).await;
    assert_eq!(got.len(), repo_slugs(&sim, &ws).len());
}

#[tokio::test]
async fn a_page_truncated_on_the_wire_is_an_error_or_read_again_in_full() {
    let sim = start_big_sim(64).await;
    let ws = biggest_owned_workspace(&sim);
    let expected = repo_slugs(&sim, &ws);

    // Without retries the cut body ends the listing with an error.
    sim.faults().truncate_next_page(1);
    let err = client(&sim, RetryPolicy::immediate(1))
        .repositories(&ws)
        .list(None)
        .collect_all()
        .await
        .expect_err("a truncated page must not pass");
    assert_eq!(err.kind, ErrorKind::Incomplete, "{err}");

    // With retries (a GET is safe to repeat) the page is fetched again and nothing is lost.
    sim.reset_counters();
    sim.faults().truncate_next_page(1);
    let got = all_repo_slugs(
        client(&sim, RetryPolicy::immediate(3))
            .repositories(&ws)
            .list(None),
    )
    .await;
    assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), expected);
    assert_eq!(
        sim.request_count("GET", "/2.0/repositories/{workspace}"),
        pages_for(expected.len()) + 1
    );

    // A complete HTTP answer whose JSON is cut in the middle is an error too.
    sim.faults().malformed_next(1);
    let err = client(&sim, RetryPolicy::immediate(3))
        .repositories(&ws)
        .list(None)
        .collect_all()
        .await
        .expect_err("a page that is not JSON must not pass");
    assert_eq!(err.kind, ErrorKind::Incomplete, "{err}");
}
