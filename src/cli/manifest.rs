//! `bitbucket-access manifest`: prints connector.json, the connector's manifest.

use super::{Cli, EXIT_OK};

/// Options of `manifest`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Prints the compiled-in manifest exactly as shipped.
pub async fn run(_cli: &Cli, _args: &Args) -> u8 {
    print!("{}", crate::manifest::MANIFEST_JSON);
    EXIT_OK
}
