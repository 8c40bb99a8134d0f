//! `bitbucket-access migrate`: applies the embedded migrations to the configured store.

use super::{load_config, Cli, EXIT_FAILURE, EXIT_OK};
use crate::store::OpenMode;

/// Options of `migrate`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Opens the store (which applies every pending migration) and says which one it is.
pub async fn run(cli: &Cli, _args: &Args) -> u8 {
    let config = match load_config(cli) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match crate::store::open_with(&config.database_url, OpenMode::ReadWrite).await {
        Ok(store) => {
            println!(
                "migrations applied: {} ({})",
                config.database_url.redacted(),
                store.backend()
            );
            EXIT_OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_FAILURE
        }
    }
}
