//! `bitbucket-sim`: serves a generated world on loopback and prints its URLs and the admin
//! credentials, for manual testing, the demo and the connector's sync benchmark.
//!
//! A preset size (`--size`) can be reshaped flag by flag (`--workspaces`, `--projects`,
//! `--repositories`, `--users`, `--groups`), so the benchmark can ask for a world of any shape
//! without the simulator growing a preset for each. `--latency-ms` delays every Bitbucket
//! response, and `--owner-of-all` makes the service account an owner of every workspace (by
//! default it is only a member of the last one, to test refusals), so that a sync reads the whole
//! world.

use std::time::Duration;

use bitbucket_sim::{Role, Sim, SimOptions, World, WorldSpec};

const USAGE: &str =
    "usage: bitbucket-sim [--port P] [--jira-port P] [--seed S] [--size tiny|demo|large] \
[--rate-limit N] [--workspaces N] [--projects N] [--repositories N] [--users N] [--groups N] \
[--latency-ms N] [--owner-of-all] [--refuse-group-privileges STATUS]

  --size          preset world shape (default demo); the flags below override parts of it
  --workspaces    number of workspaces
  --projects      projects in each workspace
  --repositories  repositories in total, spread over the workspaces
  --users         users in total (besides the service account)
  --groups        groups in each workspace
  --latency-ms    delay added before every Bitbucket response
  --owner-of-all  make the service account an owner of every workspace
  --rate-limit    requests per user in a rolling hour (default 1000)
  --refuse-group-privileges  answer /1.0/group-privileges with STATUS (410, 403, 404, ...)";

#[derive(Debug)]
struct Args {
    port: u16,
    jira_port: u16,
    seed: u64,
    size: String,
    rate_limit: u32,
    workspaces: Option<usize>,
    projects: Option<usize>,
    repositories: Option<usize>,
    users: Option<usize>,
    groups: Option<usize>,
    latency_ms: u64,
    owner_of_all: bool,
    refuse_group_privileges: u16,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut a = Args {
        port: 7990,
        jira_port: 0,
        seed: 2026,
        size: "demo".into(),
        rate_limit: 1000,
        workspaces: None,
        projects: None,
        repositories: None,
        users: None,
        groups: None,
        latency_ms: 0,
        owner_of_all: false,
        refuse_group_privileges: 0,
    };
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--help" | "-h" => return Err(USAGE.into()),
            "--owner-of-all" => {
                a.owner_of_all = true;
                continue;
            }
            _ => {}
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let bad = |_| format!("invalid value for {flag}: {value}\n{USAGE}");
        match flag.as_str() {
            "--port" => a.port = value.parse().map_err(bad)?,
            "--jira-port" => a.jira_port = value.parse().map_err(bad)?,
            "--seed" => a.seed = value.parse().map_err(bad)?,
            "--rate-limit" => a.rate_limit = value.parse().map_err(bad)?,
            "--workspaces" => a.workspaces = Some(value.parse().map_err(bad)?),
            "--projects" => a.projects = Some(value.parse().map_err(bad)?),
            "--repositories" => a.repositories = Some(value.parse().map_err(bad)?),
            "--users" => a.users = Some(value.parse().map_err(bad)?),
            "--groups" => a.groups = Some(value.parse().map_err(bad)?),
            "--latency-ms" => a.latency_ms = value.parse().map_err(bad)?,
            "--refuse-group-privileges" => {
                a.refuse_group_privileges = value.parse().map_err(bad)?
            }
            "--size" => a.size = value,
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
        }
    }
    Ok(a)
}

/// The world shape the arguments ask for: the preset, then each override.
fn spec_of(args: &Args) -> Result<WorldSpec, String> {
    let mut spec = match args.size.as_str() {
        "tiny" => WorldSpec::tiny(args.seed),
        "demo" => WorldSpec {
            seed: args.seed,
            ..WorldSpec::demo()
        },
        "large" => WorldSpec::large(args.seed),
        other => return Err(format!("unknown size {other}\n{USAGE}")),
    };
    if let Some(n) = args.workspaces {
        // Zero workspaces would make an empty world that no command can use.
        spec.workspaces = n.max(1);
        // The preset's admin-managed workspace may not exist in a smaller world.
        spec.admin_managed_workspace = spec
            .admin_managed_workspace
            .filter(|i| *i < spec.workspaces);
    }
    if let Some(n) = args.projects {
        spec.projects_per_workspace = n.max(1);
    }
    if let Some(n) = args.repositories {
        spec.repositories = n;
    }
    if let Some(n) = args.users {
        spec.users = n;
    }
    if let Some(n) = args.groups {
        spec.groups = n;
    }
    Ok(spec)
}

/// Makes the service account an owner of every workspace it belongs to.
fn make_admin_owner_of_all(world: &mut World) {
    let admin = world.admin_account_id.clone();
    for ws in world.workspaces.values_mut() {
        if let Some(m) = ws.members.get_mut(&admin) {
            m.role = Role::Owner;
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (args, spec) = match parse_args(std::env::args().skip(1)).and_then(|a| {
        let spec = spec_of(&a)?;
        Ok((a, spec))
    }) {
        Ok(v) => v,
        Err(msg) => {
            eprintln!("{msg}");
            std::process::exit(2);
        }
    };
    let mut world = World::generate(&spec);
    if args.owner_of_all {
        make_admin_owner_of_all(&mut world);
    }
    let workspaces: Vec<String> = world.workspaces.keys().cloned().collect();
    let repositories: usize = world
        .workspaces
        .values()
        .map(|w| w.repositories.len())
        .sum();
    let opts = SimOptions {
        rate_limit_per_hour: args.rate_limit,
        bitbucket_port: args.port,
        jira_port: args.jira_port,
        ..SimOptions::default()
    };
    let sim = Sim::start(world, opts).await?;
    if args.latency_ms > 0 {
        sim.faults()
            .set_latency(Duration::from_millis(args.latency_ms));
    }
    sim.faults()
        .refuse_group_privileges(args.refuse_group_privileges);
    let (jira_user, jira_token) = sim.jira_credentials();
    println!(
        "bitbucket-sim serving {} world (seed {}): {repositories} repositories, {} users, {} groups per workspace",
        args.size, args.seed, spec.users, spec.groups
    );
    println!("  workspaces:     {}", workspaces.join(", "));
    println!("  bitbucket url:  {}", sim.bitbucket_url());
    println!("  jira url:       {}", sim.jira_url());
    println!("  admin email:    {}", sim.admin_email());
    println!("  admin token:    {}", sim.admin_token());
    println!("  jira user:      {jira_user}");
    println!("  jira token:     {jira_token}");
    if args.latency_ms > 0 {
        println!("  latency:        {} ms per response", args.latency_ms);
    }
    if args.refuse_group_privileges > 0 {
        println!(
            "  group-privileges refused with {}",
            args.refuse_group_privileges
        );
    }
    println!("Press Ctrl-C to stop.");
    tokio::signal::ctrl_c().await?;
    sim.shutdown();
    tokio::time::sleep(Duration::from_millis(50)).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, String> {
        parse_args(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn no_flags_serve_the_demo_world_on_the_usual_port() {
        let a = parse(&[]).expect("defaults parse");
        assert_eq!(a.port, 7990);
        assert_eq!(a.rate_limit, 1000);
        assert!(!a.owner_of_all);
        assert_eq!(spec_of(&a).expect("demo spec"), WorldSpec::demo());
    }

    #[test]
    fn shape_flags_override_the_preset() {
        let a = parse(&[
            "--size",
            "large",
            "--seed",
            "7",
            "--workspaces",
            "2",
            "--repositories",
            "50",
            "--users",
            "30",
            "--groups",
            "4",
            "--projects",
            "3",
            "--latency-ms",
            "100",
            "--owner-of-all",
        ])
        .expect("flags parse");
        let spec = spec_of(&a).expect("spec");
        assert_eq!(spec.seed, 7);
        assert_eq!(
            (
                spec.workspaces,
                spec.repositories,
                spec.users,
                spec.groups,
                spec.projects_per_workspace
            ),
            (2, 50, 30, 4, 3)
        );
        // The large preset's admin-managed workspace (index 3) does not exist in two.
        assert_eq!(spec.admin_managed_workspace, None);
        assert_eq!(a.latency_ms, 100);
        assert!(a.owner_of_all);
    }

    #[test]
    fn the_group_privileges_refusal_is_a_flag() {
        assert_eq!(parse(&[]).expect("parses").refuse_group_privileges, 0);
        let a = parse(&["--refuse-group-privileges", "410"]).expect("parses");
        assert_eq!(a.refuse_group_privileges, 410);
        assert!(parse(&["--refuse-group-privileges", "gone"])
            .unwrap_err()
            .contains("usage"));
    }

    #[test]
    fn bad_flags_are_refused_with_the_usage() {
        assert!(parse(&["--repositories", "many"])
            .unwrap_err()
            .contains("usage"));
        assert!(parse(&["--bogus", "1"])
            .unwrap_err()
            .contains("unknown flag"));
        assert!(parse(&["--users"]).unwrap_err().contains("needs a value"));
        assert!(spec_of(&parse(&["--size", "huge"]).expect("parses"))
            .unwrap_err()
            .contains("unknown size"));
    }

    #[test]
    fn owner_of_all_lets_the_service_account_administer_every_workspace() {
        let mut world = World::generate(&WorldSpec::tiny(1));
        let admin = world.admin_account_id.clone();
        let owned = |w: &World| {
            w.workspaces
                .values()
                .filter(|ws| {
                    ws.members
                        .get(&admin)
                        .is_some_and(|m| m.role == Role::Owner)
                })
                .count()
        };
        assert_eq!(owned(&world), world.workspaces.len() - 1);
        make_admin_owner_of_all(&mut world);
        assert_eq!(owned(&world), world.workspaces.len());
    }
}
