//! `bitbucket-access access repo WS/REPO` and `access user ACCOUNT_ID|EMAIL`.

use super::output::{render, Format, Rows};
use super::{load_config, Cli, EXIT_FAILURE, EXIT_OK};
use crate::access::{for_account, for_repository, AccessAnswer, AccessError, AccessRow};
use crate::store::OpenMode;
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
        What::User { account } => for_account(store.as_ref(), account)
            .await
            .map(|(_, answer)| answer),
    };
    match result {
        Ok(answer) => {
            print!("{}", render_answer(args.format, &answer, Utc::now()));
            let c = &answer.completeness;
            if c.is_complete() {
                return EXIT_OK;
            }
            let shown: Vec<String> = c
                .never_read
                .iter()
                .take(10)
                .map(|k| k.to_string())
                .collect();
            let more = c.never_read.len().saturating_sub(shown.len());
            eprintln!(
                "warning: this answer rests on {} listing(s) never read, so it may lack rows: {}{}; \
                 run `bitbucket-access sync` to read them",
                c.never_read.len(),
                shown.join(", "),
                if more > 0 { format!(" and {more} more") } else { String::new() }
            );
            EXIT_FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_FAILURE
        }
    }
}

/// Renders an answer: the rows, and (in a table) a line on how fresh they are; JSON carries
/// the completeness beside the rows. CSV holds the rows only, so that it stays one table.
pub fn render_answer(format: Format, answer: &AccessAnswer, now: DateTime<Utc>) -> String {
    if format == Format::Json {
        return serde_json::to_string_pretty(answer)
            .map(|s| s + "\n")
            .unwrap_or_else(|e| format!("error: {e}\n"));
    }
    let mut out = render_rows(format, &answer.rows);
    if format == Format::Table {
        let c = &answer.completeness;
        let age = c.oldest_read_at.map_or_else(
            || "no listing behind it was read yet".to_owned(),
            |at| {
                format!(
                    "oldest listing read {} ago",
                    format_age((now - at).num_seconds())
                )
            },
        );
        out.push_str(&format!("\nfacts: {age}"));
        if !c.is_complete() {
            out.push_str(&format!("; {} listing(s) never read", c.never_read.len()));
        }
        out.push('\n');
    }
    out
}

/// Renders access rows in a format.
pub fn render_rows(format: Format, rows: &[AccessRow]) -> String {
    let table = Rows {
        header: &["repository", "account", "name", "level", "why"],
        rows: rows
            .iter()
            .map(|r| {
                vec![
                    format!("{}/{}", r.workspace, r.repository),
                    r.account_id.clone(),
                    r.display_name.clone(),
                    r.level.to_string(),
                    r.why().join("; "),
                ]
            })
            .collect(),
        json: &rows,
    };
    render(format, &table).unwrap_or_else(|e| format!("error: {e}\n"))
}
