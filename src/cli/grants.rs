//! `grant`, `revoke`, `grants` and `expire`: the grant commands over the grants engine.
//!
//! Refusals (preflight, policy) name their reason, change nothing and exit 1; bad usage exits 2
//! (clap). `grant --dry-run` prints the Bitbucket calls the grant would make and writes nothing.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::output::{render, Format, Rows};
use super::{load_config, Cli, EXIT_FAILURE, EXIT_OK, EXIT_USAGE};
use crate::clock::{Clock, SystemClock};
use crate::config::{parse_duration, Config};
use crate::domain::{
    AccountId, Grant, GrantLevel, GrantState, GrantTarget, GroupSlug, Principal, ProjectKey,
    ProjectRef, RepoRef, RepoSlug, SlotKey, WorkspaceSlug,
};
use crate::grants::{preflight, Engine, EngineSettings, GrantDuration, GrantError, GrantRequest};
use crate::store::{GrantFilter, OpenMode, Store};

/// Who and on what, shared by `grant` and `revoke --user/--group`.
#[derive(Debug, clap::Args)]
pub struct SlotArgs {
    /// The account (account id, or an email matched to an account).
    #[arg(long, value_name = "ACCOUNT_ID|EMAIL", conflicts_with = "group")]
    pub user: Option<String>,
    /// A group (its slug).
    #[arg(long, value_name = "SLUG")]
    pub group: Option<String>,
    /// A repository, `WORKSPACE/REPOSITORY`.
    #[arg(long, value_name = "WS/REPO", conflicts_with_all = ["project", "member_of"])]
    pub repo: Option<String>,
    /// A project, `WORKSPACE/PROJECT_KEY`.
    #[arg(long, value_name = "WS/PROJECT_KEY", conflicts_with = "member_of")]
    pub project: Option<String>,
    /// Membership of a group, `WORKSPACE/GROUP` (a user only, through the 1.0 groups API).
    #[arg(long, value_name = "WS/GROUP")]
    pub member_of: Option<String>,
}

/// Options of `grant`.
#[derive(Debug, clap::Args)]
pub struct GrantArgs {
    #[command(flatten)]
    pub slot: SlotArgs,
    /// The level: read, write, admin (projects also create-repo); memberships need none.
    #[arg(long)]
    pub level: Option<String>,
    /// How long, such as 90m, 8h or 7d.
    #[arg(long = "for", value_name = "DURATION", conflicts_with_all = ["until", "permanent"])]
    pub for_: Option<String>,
    /// Until when (RFC 3339, such as 2026-12-24T18:00:00Z).
    #[arg(long, value_name = "RFC3339", conflicts_with = "permanent")]
    pub until: Option<String>,
    /// No end (if the policy allows standing grants).
    #[arg(long)]
    pub permanent: bool,
    /// Why.
    #[arg(long)]
    pub reason: Option<String>,
    /// The ticket it answers, such as SEC-123.
    #[arg(long)]
    pub ticket: Option<String>,
    /// Who asked (default: the config's email).
    #[arg(long)]
    pub requested_by: Option<String>,
    /// Print the Bitbucket calls the grant would make; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Output format (table or json).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Options of `revoke`.
#[derive(Debug, clap::Args)]
pub struct RevokeArgs {
    /// The grant to end early.
    #[arg(value_name = "GRANT_ID", conflicts_with_all = ["user", "group"])]
    pub id: Option<i64>,
    #[command(flatten)]
    pub slot: SlotArgs,
    /// Why (recorded in the audit log).
    #[arg(long)]
    pub reason: Option<String>,
    /// Who revokes (default: the config's email).
    #[arg(long)]
    pub requested_by: Option<String>,
}

/// Options of `grants`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only grants in force (active or satisfied); the default also shows pending, ending and
    /// conflicts.
    #[arg(long, conflicts_with = "all")]
    pub active: bool,
    /// Every grant, ended ones too.
    #[arg(long)]
    pub all: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Options of `expire`.
#[derive(Debug, clap::Args)]
pub struct ExpireArgs {
    /// Keep running: end each grant at its time until interrupted (Ctrl-C, SIGTERM).
    #[arg(long)]
    pub watch: bool,
}

/// A grant as the commands print it.
#[derive(Debug, Serialize)]
pub struct GrantView {
    /// The grant's id.
    pub id: i64,
    /// Where it stands.
    pub state: GrantState,
    /// Who.
    pub principal: Principal,
    /// On what.
    pub target: GrantTarget,
    /// The level it gives.
    pub level: GrantLevel,
    /// The level that stood before.
    pub baseline: Option<GrantLevel>,
    /// When it ends.
    pub ends_at: Option<DateTime<Utc>>,
    /// Who asked.
    pub requested_by: String,
    /// The ticket.
    pub ticket: Option<String>,
    /// Why.
    pub reason: Option<String>,
}

impl From<&Grant> for GrantView {
    fn from(g: &Grant) -> Self {
        GrantView {
            id: g.id.0,
            state: g.state,
            principal: g.principal.clone(),
            target: g.target.clone(),
            level: g.level,
            baseline: g.baseline,
            ends_at: g.expires_at,
            requested_by: g.requested_by.clone(),
            ticket: g.ticket.clone(),
            reason: g.reason.clone(),
        }
    }
}

pub(super) fn render_grants(format: Format, grants: &[Grant]) -> String {
    let views: Vec<GrantView> = grants.iter().map(GrantView::from).collect();
    let rows = views
        .iter()
        .map(|v| {
            vec![
                v.id.to_string(),
                v.state.to_string(),
                v.principal.to_string(),
                v.target.to_string(),
                v.level.to_string(),
                v.baseline
                    .map_or_else(|| "none".to_owned(), |b| b.to_string()),
                v.ends_at
                    .map_or_else(|| "never".to_owned(), |e| e.to_rfc3339()),
                v.requested_by.clone(),
                v.ticket.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let table = Rows {
        header: &[
            "id",
            "state",
            "who",
            "target",
            "level",
            "baseline",
            "ends",
            "requested by",
            "ticket",
        ],
        rows,
        json: &views,
    };
    render(format, &table).unwrap_or_else(|e| format!("error: {e}\n"))
}

/// `WS/NAME` split, or a usage error naming the flag.
fn pair(flag: &str, value: &str) -> Result<(String, String), String> {
    match value.split_once('/') {
        Some((ws, name)) if !ws.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ws.to_owned(), name.to_owned()))
        }
        _ => Err(format!(
            "--{flag} {value:?} is not WORKSPACE/NAME (for example acme/payments-api)"
        )),
    }
}

fn target(args: &SlotArgs) -> Result<GrantTarget, String> {
    let ws = |w: String| WorkspaceSlug::parse(w).map_err(|e| e.to_string());
    if let Some(r) = &args.repo {
        let (w, slug) = pair("repo", r)?;
        return Ok(GrantTarget::Repository {
            repository: RepoRef {
                workspace: ws(w)?,
                slug: RepoSlug::parse(slug).map_err(|e| e.to_string())?,
            },
        });
    }
    if let Some(p) = &args.project {
        let (w, key) = pair("project", p)?;
        return Ok(GrantTarget::Project {
            project: ProjectRef {
                workspace: ws(w)?,
                key: ProjectKey::parse(key).map_err(|e| e.to_string())?,
            },
        });
    }
    if let Some(g) = &args.member_of {
        let (w, group) = pair("member-of", g)?;
        return Ok(GrantTarget::GroupMembership {
            workspace: ws(w)?,
            group: GroupSlug::parse(group).map_err(|e| e.to_string())?,
        });
    }
    Err(
        "name the target with --repo WS/REPO, --project WS/PROJECT_KEY or --member-of WS/GROUP"
            .to_owned(),
    )
}

async fn principal(config: &Config, store: &dyn Store, args: &SlotArgs) -> Result<Principal, u8> {
    match (&args.user, &args.group) {
        (Some(user), None) => {
            let id = if user.contains('@') {
                super::access::resolve(config, store, user).await?
            } else {
                user.clone()
            };
            AccountId::parse(id)
                .map(|account_id| Principal::User { account_id })
                .map_err(|e| usage(&e.to_string()))
        }
        (None, Some(group)) => GroupSlug::parse(group.clone())
            .map(|slug| Principal::Group { slug })
            .map_err(|e| usage(&e.to_string())),
        _ => Err(usage(
            "name who with --user ACCOUNT_ID|EMAIL or --group SLUG",
        )),
    }
}

fn usage(message: &str) -> u8 {
    eprintln!("error: {message}");
    EXIT_USAGE
}

struct Context {
    config: Config,
    store: Arc<dyn Store>,
    client: crate::bitbucket::BitbucketClient,
}

async fn context(cli: &Cli, mode: OpenMode) -> Result<Context, u8> {
    let config = load_config(cli)?;
    let store = crate::store::open_with(&config.database_url, mode)
        .await
        .map_err(|e| {
            eprintln!("error: cannot open the store: {e}");
            EXIT_FAILURE
        })?;
    let client = crate::connect::bitbucket_client(&config).map_err(|e| {
        eprintln!("error: {e}");
        EXIT_FAILURE
    })?;
    Ok(Context {
        config,
        store,
        client,
    })
}

fn engine<'a>(ctx: &'a Context, clock: &'a dyn Clock, actor: &str) -> Engine<'a> {
    let mut settings = EngineSettings::new("cli");
    settings.actor = actor.to_owned();
    settings.on_conflict = ctx.config.grant_policy.on_conflict;
    settings.max_in_flight = ctx.config.request_budget.max_in_flight.max(1);
    Engine::new(ctx.store.as_ref(), &ctx.client, clock, settings)
}

fn fail(e: &GrantError) -> u8 {
    eprintln!("error: {e}");
    EXIT_FAILURE
}

/// `grant`.
pub async fn run_grant(cli: &Cli, args: &GrantArgs) -> u8 {
    let target = match target(&args.slot) {
        Ok(t) => t,
        Err(m) => return usage(&m),
    };
    let level = match (&args.level, &target) {
        (Some(l), _) => match GrantLevel::parse(l) {
            Ok(l) => l,
            Err(e) => return usage(&e.to_string()),
        },
        (None, GrantTarget::GroupMembership { .. }) => GrantLevel::Member,
        (None, _) => return usage("name the level with --level read|write|admin|create-repo"),
    };
    let duration = match (&args.for_, &args.until, args.permanent) {
        (Some(d), _, _) => match parse_duration(d) {
            Ok(d) => GrantDuration::For(d),
            Err(e) => return usage(&format!("--for {d:?}: {e}")),
        },
        (_, Some(u), _) => match DateTime::parse_from_rfc3339(u) {
            Ok(at) => GrantDuration::Until(at.with_timezone(&Utc)),
            Err(e) => {
                return usage(&format!(
                "--until {u:?} is not an RFC 3339 time ({e}); write it like 2026-12-24T18:00:00Z"
            ))
            }
        },
        (_, _, true) => GrantDuration::Permanent,
        _ => GrantDuration::PolicyDefault,
    };
    // A dry run never writes, so it opens the store read-only.
    let mode = if args.dry_run {
        OpenMode::ReadOnly
    } else {
        OpenMode::ReadWrite
    };
    let ctx = match context(cli, mode).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let principal = match principal(&ctx.config, ctx.store.as_ref(), &args.slot).await {
        Ok(p) => p,
        Err(code) => return code,
    };
    let requested_by = args
        .requested_by
        .clone()
        .unwrap_or_else(|| ctx.config.email.clone());
    let request = GrantRequest {
        principal,
        target,
        level,
        duration,
        reason: args.reason.clone(),
        ticket: args.ticket.clone(),
        requested_by: requested_by.clone(),
    };
    let clock = SystemClock;
    let plan = match preflight(&ctx.client, &ctx.config.grant_policy, clock.now(), &request).await {
        Ok(plan) => plan,
        Err(e) => return fail(&e),
    };
    let engine = engine(&ctx, &clock, &requested_by);
    if args.dry_run {
        return match engine.dry_run(&plan).await {
            Ok(calls) => {
                for call in calls {
                    println!("{} {}", call.method, call.path);
                }
                EXIT_OK
            }
            Err(e) => fail(&e),
        };
    }
    match engine.grant(&plan).await {
        Ok(grant) => {
            print!(
                "{}",
                render_grants(args.format, std::slice::from_ref(&grant))
            );
            match grant.state {
                GrantState::Active | GrantState::Satisfied => EXIT_OK,
                state => {
                    eprintln!("error: grant {} is {state}; see the audit log", grant.id);
                    EXIT_FAILURE
                }
            }
        }
        Err(e) => fail(&e),
    }
}

/// `revoke`.
pub async fn run_revoke(cli: &Cli, args: &RevokeArgs) -> u8 {
    let ctx = match context(cli, OpenMode::ReadWrite).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let actor = args
        .requested_by
        .clone()
        .unwrap_or_else(|| ctx.config.email.clone());
    let clock = SystemClock;
    let engine = engine(&ctx, &clock, &actor);
    if let Some(id) = args.id {
        return match engine.revoke(crate::domain::GrantId(id), &actor).await {
            Ok(grant) => {
                print!(
                    "{}",
                    render_grants(Format::Table, std::slice::from_ref(&grant))
                );
                if grant.state == GrantState::Revoked {
                    EXIT_OK
                } else {
                    eprintln!("error: grant {id} is {}; see the audit log", grant.state);
                    EXIT_FAILURE
                }
            }
            Err(e) => fail(&e),
        };
    }
    let target = match target(&args.slot) {
        Ok(t) => t,
        Err(m) => return usage(&format!("give GRANT_ID, or {m}")),
    };
    let principal = match principal(&ctx.config, ctx.store.as_ref(), &args.slot).await {
        Ok(p) => p,
        Err(code) => return code,
    };
    let slot = SlotKey { principal, target };
    match engine
        .revoke_standing(&slot, &actor, args.reason.as_deref())
        .await
    {
        Ok(Some(level)) => {
            println!("removed {level} from {slot}; the audit log records it for a later grant");
            EXIT_OK
        }
        Ok(None) => EXIT_OK,
        Err(e) => fail(&e),
    }
}

/// `grants`.
pub async fn run_list(cli: &Cli, args: &ListArgs) -> u8 {
    let config = match load_config(cli) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let store = match crate::store::open_with(&config.database_url, OpenMode::ReadOnly).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot open the store: {e}");
            return EXIT_FAILURE;
        }
    };
    let states = if args.all {
        Vec::new()
    } else if args.active {
        GrantState::IN_FORCE.to_vec()
    } else {
        GrantState::ALL
            .iter()
            .copied()
            .filter(|s| !s.is_final() || *s == GrantState::Conflict)
            .collect()
    };
    match store
        .list_grants(&GrantFilter {
            states,
            ..GrantFilter::default()
        })
        .await
    {
        Ok(grants) => {
            print!("{}", render_grants(args.format, &grants));
            EXIT_OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_FAILURE
        }
    }
}

/// `expire`.
pub async fn run_expire(cli: &Cli, args: &ExpireArgs) -> u8 {
    let ctx = match context(cli, OpenMode::ReadWrite).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let clock = SystemClock;
    let engine = engine(&ctx, &clock, "expiry");
    if args.watch {
        return match engine.watch(shutdown()).await {
            Ok(()) => EXIT_OK,
            Err(e) => {
                eprintln!("error: {e}");
                EXIT_FAILURE
            }
        };
    }
    match engine.expire_pass().await {
        Ok(report) => {
            println!(
                "ended {}, revoked {}, applied {}, conflicts {}, to retry {}, errors {}",
                report.ended,
                report.revoked,
                report.applied,
                report.conflicts,
                report.retry_later,
                report.errors
            );
            if report.errors + report.retry_later > 0 {
                EXIT_FAILURE
            } else {
                EXIT_OK
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_FAILURE
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
