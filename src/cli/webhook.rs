//! `webhook install [--workspace WS] --url URL` and `webhook uninstall [--workspace WS] --url
//! URL`: the workspace webhooks that tell `serve` about repository and project changes, signed
//! with `server.webhook_secret`.
//!
//! Install is idempotent: a webhook to the same URL is replaced (so a changed secret or event
//! list takes effect), never doubled. Uninstall removes only webhooks to that URL.

use futures::TryStreamExt;
use secrecy::ExposeSecret;

use super::{load_config, Cli, EXIT_FAILURE, EXIT_OK, EXIT_USAGE};
use crate::bitbucket::{ApiError, BitbucketClient};

/// The events that change what the connector governs.
pub const EVENTS: &[&str] = &[
    "repo:created",
    "repo:deleted",
    "repo:transfer",
    "repo:updated",
    "project:updated",
];

const DESCRIPTION: &str = "bitbucket-access: targeted refresh";

/// `webhook` subcommands.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

/// What to do.
#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Register the webhook in each managed workspace (or one).
    Install(Target),
    /// Remove it.
    Uninstall(Target),
}

/// Where.
#[derive(Debug, clap::Args)]
pub struct Target {
    /// Only this workspace (default: the config's workspaces, else every one administered).
    #[arg(long)]
    pub workspace: Option<String>,
    /// The address Bitbucket delivers to: serve's `/webhooks/bitbucket`, as reachable from the
    /// internet (such as https://access.example.com/webhooks/bitbucket).
    #[arg(long)]
    pub url: String,
}

/// Replaces any webhook to `url` in `workspace` with one for [`EVENTS`] signed with `secret`.
pub async fn install(
    client: &BitbucketClient,
    workspace: &str,
    url: &str,
    secret: &str,
) -> Result<String, ApiError> {
    uninstall(client, workspace, url).await?;
    let hook = client
        .hooks(workspace)
        .create(url, DESCRIPTION, EVENTS, secret)
        .await?;
    Ok(hook.uuid)
}

/// Removes every webhook to `url` in `workspace`; returns how many.
pub async fn uninstall(
    client: &BitbucketClient,
    workspace: &str,
    url: &str,
) -> Result<usize, ApiError> {
    let hooks: Vec<_> = client.hooks(workspace).list().try_collect().await?;
    let mut removed = 0;
    for hook in hooks.iter().filter(|h| h.url == url) {
        client.hooks(workspace).delete(&hook.uuid).await?;
        removed += 1;
    }
    Ok(removed)
}

/// Runs `webhook`.
pub async fn run(cli: &Cli, args: &Args) -> u8 {
    let config = match load_config(cli) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let target = match &args.action {
        Action::Install(t) | Action::Uninstall(t) => t,
    };
    if url::Url::parse(&target.url).is_err() {
        eprintln!(
            "error: --url {:?} is not a URL; give serve's address, such as https://access.example.com/webhooks/bitbucket",
            target.url
        );
        return EXIT_USAGE;
    }
    let client = match crate::connect::bitbucket_client(&config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_FAILURE;
        }
    };
    let workspaces = match &target.workspace {
        Some(ws) => vec![ws.clone()],
        None if !config.workspaces.is_empty() => config.workspaces.clone(),
        None => {
            eprintln!("error: name the workspace with --workspace (the config lists none)");
            return EXIT_USAGE;
        }
    };
    let mut code = EXIT_OK;
    for ws in &workspaces {
        let result = match &args.action {
            Action::Install(_) => {
                let Some(secret) = config.server.webhook_secret.as_ref() else {
                    eprintln!(
                        "error: set server.webhook_secret first: deliveries are signed with it"
                    );
                    return EXIT_USAGE;
                };
                install(&client, ws, &target.url, secret.expose_secret())
                    .await
                    .map(|uuid| {
                        format!(
                            "{ws}: webhook {uuid} delivers {} to {}",
                            EVENTS.join(", "),
                            target.url
                        )
                    })
            }
            Action::Uninstall(_) => uninstall(&client, ws, &target.url)
                .await
                .map(|n| format!("{ws}: removed {n} webhook(s) to {}", target.url)),
        };
        match result {
            Ok(line) => println!("{line}"),
            Err(e) => {
                eprintln!("error: {ws}: {e}");
                code = EXIT_FAILURE;
            }
        }
    }
    code
}
