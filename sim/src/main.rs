//! `bitbucket-sim`: serves a generated world on loopback and prints its URLs and the admin
//! credentials, for manual testing and the demo.

use std::time::Duration;

use bitbucket_sim::{Sim, SimOptions, World, WorldSpec};

const USAGE: &str = "usage: bitbucket-sim [--port P] [--jira-port P] [--seed S] [--size tiny|demo|large] [--rate-limit N]";

struct Args {
    port: u16,
    jira_port: u16,
    seed: u64,
    size: String,
    rate_limit: u32,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        port: 7990,
        jira_port: 0,
        seed: 2026,
        size: "demo".into(),
        rate_limit: 1000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            return Err(USAGE.into());
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
            "--size" => a.size = value,
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
        }
    }
    Ok(a)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("{msg}");
            std::process::exit(2);
        }
    };
    let spec = match args.size.as_str() {
        "tiny" => WorldSpec::tiny(args.seed),
        "demo" => WorldSpec {
            seed: args.seed,
            ..WorldSpec::demo()
        },
        "large" => WorldSpec::large(args.seed),
        other => {
            eprintln!("unknown size {other}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let world = World::generate(&spec);
    let workspaces: Vec<String> = world.workspaces.keys().cloned().collect();
    let opts = SimOptions {
        rate_limit_per_hour: args.rate_limit,
        bitbucket_port: args.port,
        jira_port: args.jira_port,
        ..SimOptions::default()
    };
    let sim = Sim::start(world, opts).await?;
    let (jira_user, jira_token) = sim.jira_credentials();
    println!(
        "bitbucket-sim serving {} world (seed {})",
        args.size, args.seed
    );
    println!("  workspaces:     {}", workspaces.join(", "));
    println!("  bitbucket url:  {}", sim.bitbucket_url());
    println!("  jira url:       {}", sim.jira_url());
    println!("  admin email:    {}", sim.admin_email());
    println!("  admin token:    {}", sim.admin_token());
    println!("  jira user:      {jira_user}");
    println!("  jira token:     {jira_token}");
    println!("Press Ctrl-C to stop.");
    tokio::signal::ctrl_c().await?;
    sim.shutdown();
    tokio::time::sleep(Duration::from_millis(50)).await;
    Ok(())
}
