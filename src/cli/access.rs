//! `bitbucket-access access repo WS/REPO` and `access user ACCOUNT_ID|EMAIL`.

use super::output::{render, Format, Rows};
use super::{load_config, Cli, EXIT_FAILURE, EXIT_OK};
use crate::access::{
    for_account, for_repository, AccessAnswer, AccessError, AccessRow, Completeness,
};
use crate::config::Config;
use crate::http::RetryPolicy;
use crate::identity::resolve_email;
use crate::store::{OpenMode, Store};
use crate::sync::format_age;
use chrono::{DateTime, Utc};

/// Options of `access`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to explain.
    #[command(subcommand)]
    pub what: What,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table, global = true)]
    pub format: Format,
}

/// The two questions `access` answers.
#[derive(Debug, clap::Subcommand)]
pub enum What {
    /// Who can reach a repository, at which level, and why.
    Repo {
        /// `WORKSPACE/REPOSITORY`, e.g. `acme/payments-api`.
        repository: String,
    },
    /// What an account can reach, at which level, and why.
    User {
        /// An Atlassian account id, or an email matched to an account.
        account: String,
    },
}

/// Prints the explained access from the store (no Bitbucket request).
pub async fn run(cli: &Cli, args: &Args) -> u8 {
    let config = match load_config(cli) {
        Ok(c) => c,
        Err(code) => return code,
    };
    // Answering never writes: a read-only file works, and a store behind the schema is refused.
    let store = match crate::store::open_with(&config.database_url, OpenMode::ReadOnly).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot open the store: {e}");
            return EXIT_FAILURE;
        }
    };
    let result: Result<AccessAnswer, AccessError> = match &args.what {
        What::Repo { repository } => for_repository(store.as_ref(), repository).await,
        What::User { account } => {
            let who = if account.contains('@') {
                match resolve(&config, store.as_ref(), account).await {
                    Ok(id) => id,
                    Err(code) => return code,
                }
            } else {
                account.clone()
            };
            for_account(store.as_ref(), &who)
                .await
                .map(|(_, answer)| answer)
        }
    };
    match result {
        Ok(answer) => {
            print!("{}", render_answer(args.format, &answer));
            // The table and CSV stay one table on stdout; how complete they are goes beside it.
            eprintln!("{}", completeness_note(&answer.completeness, Utc::now()));
            if answer.completeness.is_complete() {
                EXIT_OK
            } else {
                EXIT_FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_FAILURE
        }
    }
}

/// Resolves an email to an account id the way identity matching does (the store's matches, then
/// Bitbucket's member email filter, then Jira's user search) and says which source answered.
pub(super) async fn resolve(config: &Config, store: &dyn Store, email: &str) -> Result<String, u8> {
    let bitbucket = crate::connect::bitbucket_client(config).ok();
    let workspaces = super::identities::workspaces(config, store)
        .await
        .unwrap_or_default();
    let jira = match crate::connect::jira_connect(config, RetryPolicy::interactive()).await {
        Some(Ok((client, _))) => Some(client),
        _ => None,
    };
    let found = resolve_email(
        store,
        bitbucket.as_ref().map(|b| (b, workspaces.as_slice())),
        jira.as_ref(),
        email,
    )
    .await;
    match found {
        Ok(Some(r)) => {
            eprintln!(
                "{email} is account {} (source {}, found in {})",
                r.account_id, r.source, r.via
            );
            Ok(r.account_id.to_string())
        }
        Ok(None) => {
            eprintln!(
                "error: no account is matched to {email}: not in the store's identity matches, \
                 not found by Bitbucket's member email filter{}; run `bitbucket-access \
                 identities import` with the address or add it to identity.overrides_file",
                if jira.is_some() {
                    " nor by Jira's user search"
                } else {
                    ""
                }
            );
            Err(EXIT_FAILURE)
        }
        Err(e) => {
            eprintln!("error: cannot resolve {email}: {e}");
            Err(EXIT_FAILURE)
        }
    }
}

/// Renders an answer: JSON carries the rows and their completeness, table and CSV the rows.
pub fn render_answer(format: Format, answer: &AccessAnswer) -> String {
    if format == Format::Json {
        return serde_json::to_string_pretty(answer)
            .map(|s| s + "\n")
            .unwrap_or_else(|e| format!("error: {e}\n"));
    }
    render_rows(format, &answer.rows)
}

/// How fresh an answer is and, when it rests on listings never read, which (and what to do).
pub fn completeness_note(c: &Completeness, now: DateTime<Utc>) -> String {
    let age = c.oldest_read_at.map_or_else(
        || "no listing behind this answer was read yet".to_owned(),
        |at| {
            format!(
                "facts as of {} (the oldest listing behind this answer was read {} ago)",
                at.format("%Y-%m-%d %H:%M UTC"),
                format_age((now - at).num_seconds())
            )
        },
    );
    let mut note = age;
    if !c.failed.is_empty() {
        let shown: Vec<String> = c
            .failed
            .iter()
            .take(10)
            .map(|f| f.key.to_string())
            .collect();
        note.push_str(&format!(
            "\nwarning: the last read of {} listing(s) behind this answer failed, so their facts \
             are older: {}; see `bitbucket-access sync`'s report for why",
            c.failed.len(),
            shown.join(", ")
        ));
    }
    if c.is_complete() {
        return note;
    }
    let shown: Vec<String> = c
        .never_read
        .iter()
        .take(10)
        .map(ToString::to_string)
        .collect();
    let more = c.never_read.len() - shown.len();
    format!(
        "{note}\nwarning: this answer rests on {} listing(s) never read, so it may lack rows: \
         {}{}; run `bitbucket-access sync` to read them",
        c.never_read.len(),
        shown.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    )
}

/// Renders access rows in a format.
pub fn render_rows(format: Format, rows: &[AccessRow]) -> String {
    let table = Rows {
        header: &["repository", "account", "name", "email", "level", "why"],
        rows: rows
            .iter()
            .map(|r| {
                vec![
                    format!("{}/{}", r.workspace, r.repository),
                    r.account_id.clone(),
                    r.display_name.clone(),
                    r.email.clone().unwrap_or_default(),
                    r.level.to_string(),
                    r.why().join("; "),
                ]
            })
            .collect(),
        json: &rows,
    };
    render(format, &table).unwrap_or_else(|e| format!("error: {e}\n"))
}
