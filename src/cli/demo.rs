//! `bitbucket-access demo`: the whole loop on a built-in simulated Bitbucket, no account needed.
//!
//! It starts the simulator in-process with a small seeded world, points a fresh SQLite store at
//! it, syncs, explains the access of one repository, makes a change "out of band" (as a person
//! in Bitbucket's UI would), syncs again and shows the drift that the second sync recorded.
//! Last, it grants a 10-second write over a standing read and shows the read restored.

use super::access::render_rows;
use super::identities::{identity_rows, render_rows as render_identities, IdentityRow};
use super::output::Format;
use super::sync::summary;
use super::{Cli, EXIT_FAILURE, EXIT_OK};
use crate::config::{Config, DatabaseUrl, RequestBudget};
use crate::domain::Source;
use crate::domain::{AccountId, IdentitySource};
use crate::http::{Budget, RetryPolicy, Scrubber};
use crate::identity::Sources;
use crate::jira::JiraSettings;
use crate::store::{AuditFilter, AuditKind, OpenMode};
use crate::sync::SyncOptions;
use bitbucket_sim::{JiraAccountType, Level, Role, Sim, SimHandle, SimOptions, World, WorldSpec};
use secrecy::SecretString;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The simulated account's hourly request allowance, and the demo's budget.
const DEMO_REQUESTS_PER_HOUR: u32 = 100_000;

/// Options of `demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Seed of the generated world (the same seed gives the same world).
    #[arg(long, default_value_t = 2026)]
    pub seed: u64,
    /// Where to keep the demo's SQLite store; default: a new file in a temporary folder.
    #[arg(long, value_name = "PATH")]
    pub database: Option<PathBuf>,
}

fn step(n: u32, text: &str) {
    println!("\n== {n}. {text}");
}

/// Runs the demo. Exit 0 when every step worked.
pub async fn run(_cli: &Cli, args: &Args) -> u8 {
    match demo(args).await {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("error: demo failed: {e}");
            EXIT_FAILURE
        }
    }
}

async fn demo(args: &Args) -> Result<(), String> {
    step(1, "Start a simulated Bitbucket Cloud with a seeded world");
    let spec = WorldSpec {
        seed: args.seed,
        ..WorldSpec::demo()
    };
    // The simulated account gets a large hourly allowance (as Bitbucket's scaled limits give
    // big workspaces) so that the demo's syncs take seconds instead of being paced over an hour.
    let sim_options = SimOptions {
        rate_limit_per_hour: DEMO_REQUESTS_PER_HOUR,
        ..SimOptions::default()
    };
    let sim = Sim::start(World::generate(&spec), sim_options)
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "   {} workspaces, {} repositories, {} users at {}",
        spec.workspaces,
        spec.repositories,
        spec.users,
        sim.bitbucket_url()
    );

    step(2, "Open a fresh SQLite store");
    let (_dir, path) = match &args.database {
        Some(p) => (None, p.clone()),
        None => {
            let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
            let path = dir.path().join("demo.db");
            (Some(dir), path)
        }
    };
    let url = format!("sqlite://{}", path.display());
    let database_url =
        DatabaseUrl::parse(&url, std::path::Path::new(".")).map_err(|e| e.to_string())?;
    let bitbucket_url = url::Url::parse(&sim.bitbucket_url()).map_err(|e| e.to_string())?;
    let mut config = Config::for_simulator(
        bitbucket_url,
        sim.admin_email(),
        SecretString::from(sim.admin_token()),
        None,
        database_url,
    );
    config.request_budget = RequestBudget {
        requests_per_hour: DEMO_REQUESTS_PER_HOUR,
        reserve: 0,
        max_in_flight: 8,
    };
    let store = crate::store::open_with(&config.database_url, OpenMode::ReadWrite)
        .await
        .map_err(|e| e.to_string())?;
    println!("   {}", path.display());

    step(3, "Sync every workspace the service account administers");
    let client = crate::connect::bitbucket_client(&config).map_err(|e| e.to_string())?;
    let options = SyncOptions {
        cross_check_sample: 3,
        ..Default::default()
    };
    let first = crate::sync::run(store.as_ref(), &client, &options)
        .await
        .map_err(|e| e.to_string())?;
    print!("{}", summary(&first));

    step(
        4,
        "Match accounts to people: Jira, and an override for one hidden email",
    );
    show_identities(&sim, store.as_ref()).await?;

    // A private repository of the first workspace and a plain member without explicit access.
    let (ws, repo, member) = sim
        .with_world(|w: &mut World| {
            let workspace = w.workspaces.values().next()?;
            let repo = workspace.repositories.values().find(|r| r.is_private)?;
            let member = workspace
                .members
                .iter()
                .find(|(_, m)| m.role == Role::Member)
                .map(|(id, _)| id.clone())?;
            Some((workspace.slug.clone(), repo.slug.clone(), member))
        })
        .ok_or("the generated world has no private repository with a plain member")?;

    step(5, &format!("Who can reach {ws}/{repo}, and why"));
    let answer = crate::access::for_repository(store.as_ref(), &format!("{ws}/{repo}"))
        .await
        .map_err(|e| e.to_string())?;
    print!("{}", render_rows(Format::Table, &answer.rows));

    step(
        6,
        &format!("Someone grants {member} admin on {ws}/{repo} in Bitbucket's UI (out of band)"),
    );
    sim.with_world(|w: &mut World| {
        w.set_repo_user_permission(&ws, &repo, &member, Some(Level::Admin))
    })
    .map_err(|e| e.to_string())?;

    step(
        7,
        "Sync again: only the change is written, and it is recorded as drift",
    );
    let second = crate::sync::run(store.as_ref(), &client, &options)
        .await
        .map_err(|e| e.to_string())?;
    print!("{}", summary(&second));
    let drift = store
        .list_audit(&AuditFilter {
            kinds: vec![AuditKind::Drift],
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    for d in &drift {
        println!(
            "   drift: {} before={} after={}",
            d.entry.subject,
            d.entry
                .before
                .as_ref()
                .map(|v| v.to_string())
                .unwrap_or_else(|| "none".into()),
            d.entry
                .after
                .as_ref()
                .map(|v| v.to_string())
                .unwrap_or_else(|| "none".into()),
        );
    }

    step(8, &format!("What {member} can reach now"));
    let (_, answer) = crate::access::for_account(store.as_ref(), &member)
        .await
        .map_err(|e| e.to_string())?;
    // Every member reaches every public repository; the demo shows the rest.
    let rows: Vec<_> = answer
        .rows
        .into_iter()
        .filter(|r| {
            r.sources
                .iter()
                .any(|s| s.source != Source::PublicRepository)
        })
        .collect();
    print!("{}", render_rows(Format::Table, &rows));

    grant_on_standing_read(&sim, store.as_ref(), &client, &ws, &repo, &member).await?;
    println!(
        "\nDone. Point a config at your own workspace and run `bitbucket-access doctor` next."
    );
    Ok(())
}

/// Step 9: a 10-second write on top of a standing read, shown, expired by the watch loop, and
/// the read shown restored.
async fn grant_on_standing_read(
    sim: &SimHandle,
    store: &dyn crate::store::Store,
    client: &crate::bitbucket::BitbucketClient,
    ws: &str,
    repo: &str,
    skip: &str,
) -> Result<(), String> {
    use crate::domain::{GrantLevel, GrantTarget, Principal, RepoRef};
    let other = sim
        .with_world(|w: &mut World| {
            let workspace = w.workspaces.get(ws)?;
            let id = workspace
                .members
                .iter()
                .find(|(id, m)| m.role == Role::Member && id.as_str() != skip)
                .map(|(id, _)| id.clone())?;
            w.set_repo_user_permission(ws, repo, &id, Some(Level::Read))
                .ok()?;
            Some(id)
        })
        .ok_or("the generated world has no second plain member")?;
    step(
        9,
        &format!("Grant {other} write on {ws}/{repo} for 10 seconds, over a standing read"),
    );
    let clock = crate::clock::SystemClock;
    let mut settings = crate::grants::EngineSettings::new("demo");
    settings.actor = "expiry".to_owned();
    let engine = crate::grants::Engine::new(store, client, &clock, settings);
    let plan = crate::grants::GrantPlan {
        principal: Principal::User {
            account_id: AccountId::parse(other.clone()).map_err(|e| e.to_string())?,
        },
        target: GrantTarget::Repository {
            repository: RepoRef {
                workspace: crate::domain::WorkspaceSlug::parse(ws.to_owned())
                    .map_err(|e| e.to_string())?,
                slug: crate::domain::RepoSlug::parse(repo.to_owned()).map_err(|e| e.to_string())?,
            },
        },
        level: GrantLevel::Write,
        expires_at: Some(chrono::Utc::now() + chrono::Duration::seconds(10)),
        requested_by: "demo@example.com".to_owned(),
        reason: Some("the demo".to_owned()),
        ticket: Some("DEMO-1".to_owned()),
    };
    let grant = engine.grant(&plan).await.map_err(|e| e.to_string())?;
    print!(
        "{}",
        super::grants::render_grants(Format::Table, std::slice::from_ref(&grant))
    );
    show_account(store, ws, repo, &other, "now").await?;
    println!("   waiting for the expiry (`expire --watch` runs the same loop)...");
    let id = grant.id;
    engine
        .watch(async {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                match store.grant(id).await {
                    Ok(Some(g)) if g.state.is_final() => break,
                    Err(_) => break,
                    _ => {}
                }
            }
        })
        .await
        .map_err(|e| e.to_string())?;
    let ended = store
        .grant(id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the grant disappeared")?;
    let level = sim.with_world(|w: &mut World| {
        w.workspaces[ws].repositories[repo]
            .user_permissions
            .get(&other)
            .map_or("none", |l| l.as_str())
    });
    println!(
        "   grant {id} is {}; Bitbucket holds {level} for {other}: the read is restored",
        ended.state
    );
    show_account(store, ws, repo, &other, "after the expiry").await
}

/// The access rows of one account on one repository.
async fn show_account(
    store: &dyn crate::store::Store,
    ws: &str,
    repo: &str,
    account: &str,
    when: &str,
) -> Result<(), String> {
    let answer = crate::access::for_repository(store, &format!("{ws}/{repo}"))
        .await
        .map_err(|e| e.to_string())?;
    let rows: Vec<_> = answer
        .rows
        .into_iter()
        .filter(|r| r.account_id == account)
        .collect();
    println!("   {when}:");
    print!("{}", render_rows(Format::Table, &rows));
    Ok(())
}

/// Runs identity matching against the simulator's Jira with one override, and shows a matched,
/// a hidden and an overridden account.
async fn show_identities(sim: &SimHandle, store: &dyn crate::store::Store) -> Result<(), String> {
    let (user, key) = sim.jira_credentials();
    let jira_url = url::Url::parse(&sim.jira_url()).map_err(|e| e.to_string())?;
    let settings = JiraSettings::new(jira_url.clone(), user, SecretString::from(key));
    let budget = std::sync::Arc::new(Budget::new(settings.budget));
    let (jira, route) = crate::jira::connect(
        settings,
        &jira_url,
        RetryPolicy::interactive(),
        budget,
        Scrubber::new(),
    )
    .await
    .map_err(|e| e.to_string())?;
    println!("   Jira reached through {route}");
    // The person behind one synced account whose email Jira hides, as an identity team would
    // name it in the override file.
    let synced: Vec<String> = store
        .accounts()
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|a| a.account_id.to_string())
        .collect();
    let hidden = sim.with_world(|w: &mut World| {
        w.users
            .values()
            .find(|u| {
                u.jira_account_type == Some(JiraAccountType::Atlassian)
                    && !u.email_visible_in_jira
                    && synced.contains(&u.account_id)
            })
            .map(|u| (u.account_id.clone(), u.email.clone()))
    });
    let mut overrides = BTreeMap::new();
    if let Some((id, email)) = &hidden {
        let id = AccountId::parse(id.clone()).map_err(|e| e.to_string())?;
        overrides.insert(id, email.clone());
    }
    let sources = Sources {
        jira: Some(&jira),
        overrides: Some(&overrides),
        ..Sources::default()
    };
    let report = crate::identity::refresh(store, sources, chrono::Utc::now())
        .await
        .map_err(|e| e.to_string())?;
    println!("   {}", report.summary());
    let rows = identity_rows(store).await.map_err(|e| e.to_string())?;
    let wanted = [
        IdentitySource::JiraUsersSearch,
        IdentitySource::Unmatched,
        IdentitySource::Manual,
    ];
    let shown: Vec<IdentityRow> =
        rows.into_iter()
            .fold(Vec::new(), |mut picked: Vec<IdentityRow>, row| {
                // The unmatched example is a person whose email Jira hides, not an app.
                let hidden_person = row.source != IdentitySource::Unmatched
                    || row.account_type == crate::domain::AccountType::Atlassian;
                if wanted.contains(&row.source)
                    && hidden_person
                    && !picked.iter().any(|p| p.source == row.source)
                {
                    picked.push(row);
                }
                picked
            });
    print!("{}", render_identities(Format::Table, &shown));
    Ok(())
}
