//! `bitbucket-access access repo WS/REPO` and `access user ACCOUNT_ID|EMAIL`.

use super::output::{render, Format, Rows};
use super::{load_config, Cli, EXIT_FAILURE, EXIT_OK};
use crate::access::{for_account, for_repository, AccessError, AccessRow};
use crate::store::OpenMode;

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
    let result: Result<Vec<AccessRow>, AccessError> = match &args.what {
        What::Repo { repository } => for_repository(store.as_ref(), repository).await,
        What::User { account } => for_account(store.as_ref(), account)
            .await
            .map(|(_, rows)| rows),
    };
    match result {
        Ok(rows) => {
            print!("{}", render_rows(args.format, &rows));
            EXIT_OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_FAILURE
        }
    }
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
                    r.level.clone(),
                    r.sources.join("; "),
                ]
            })
            .collect(),
        json: &rows,
    };
    render(format, &table).unwrap_or_else(|e| format!("error: {e}\n"))
}
