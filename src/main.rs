//! The `bitbucket-access` binary: parses the command line, sets up logging, runs the command.
//!
//! This is the only place that installs the tracing subscriber; it reads argv and, through
//! clap, the `BITBUCKET_ACCESS_CONFIG` variable.

use bitbucket_access::cli::{self, Cli, EXIT_USAGE};
use clap::Parser;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            // --help and --version are "errors" to clap that go to stdout and mean success;
            // every other parse error is bad usage, exit code 2.
            let _ = error.print();
            return if error.use_stderr() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    if let Err(error) = bitbucket_access::telemetry::init(cli.log_format) {
        eprintln!("error: {error}");
        return ExitCode::from(EXIT_USAGE);
    }
    cli::run(cli).await
}
