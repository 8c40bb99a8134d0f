//! `bitbucket-access audit`: writes the permission audit report from the store, and
//! `audit verify`: checks the audit log's hash chain and every stored report.

use std::path::{Path, PathBuf};

pub use super::audit_files::{write_report, write_report_blocking};
use super::{load_config, Cli, EXIT_FAILURE, EXIT_OK, EXIT_USAGE};
use crate::audit::{self, AuditError, AuditSettings, FindingKind, Report};
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, ReportFormat};
use crate::store::{OpenMode, ReportFile, Store};
use crate::sync::SyncOptions;

/// Options of `audit`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    /// `verify`: check the audit log's hash chain and every stored report.
    #[command(subcommand)]
    pub command: Option<AuditCommand>,
    /// Audit only this workspace (repeatable); default: every stored workspace.
    #[arg(long = "workspace", value_name = "WS")]
    pub workspaces: Vec<String>,
    /// A format to write (repeatable); default: `audit_policy.report_formats`.
    #[arg(long = "format", value_enum, value_name = "FORMAT")]
    pub formats: Vec<OutputFormat>,
    /// The folder to write to; default: `audit_policy.report_dir`.
    #[arg(long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Sync the workspaces first (as `bitbucket-access sync` would).
    #[arg(long)]
    pub sync: bool,
    /// Exit 1 when the report holds a finding of this kind (repeatable).
    #[arg(long = "fail-on", value_enum, value_name = "KIND")]
    pub fail_on: Vec<FindingKind>,
}

/// The subcommands of `audit`.
#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Check the audit log's hash chain and every stored report (and its files); exit 1
    /// naming the first broken link.
    Verify {
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// A report format on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// JSON (schemas/audit-report.schema.json).
    Json,
    /// CSV, one file per section.
    Csv,
    /// Markdown.
    #[value(alias = "markdown")]
    Md,
    /// One self-contained HTML page.
    Html,
}

impl From<ReportFormat> for OutputFormat {
    fn from(format: ReportFormat) -> Self {
        match format {
            ReportFormat::Json => OutputFormat::Json,
            ReportFormat::Csv => OutputFormat::Csv,
            ReportFormat::Markdown => OutputFormat::Md,
            ReportFormat::Html => OutputFormat::Html,
        }
    }
}

/// The settings an audit runs with, from the config.
pub fn settings(config: &Config, workspaces: Vec<String>) -> AuditSettings {
    AuditSettings {
        workspaces,
        policy: config.audit_policy.clone(),
        grant_policy: config.grant_policy.clone(),
    }
}

/// Builds, writes and stores a report; returns it with its files.
pub async fn produce(
    store: &dyn Store,
    clock: &dyn Clock,
    settings: &AuditSettings,
    dir: &Path,
    formats: &[OutputFormat],
) -> Result<(Report, Vec<ReportFile>), String> {
    let audit = audit::build(store, clock, settings)
        .await
        .map_err(|e| e.to_string())?;
    let (audit, files) = write_report_blocking(audit, dir.to_path_buf(), formats.to_vec()).await?;
    audit::record(store, &audit.report, files.clone())
        .await
        .map_err(|e| e.to_string())?;
    Ok((audit.report, files))
}

/// The human summary of a written report.
pub fn summary(report: &Report, files: &[ReportFile]) -> String {
    let mut s = format!(
        "audit report {}: {} findings ({} new, {} resolved), {} access rows for {} accounts\n",
        report.sha256,
        report.summary.findings,
        report.changes.new.len(),
        report.changes.resolved.len(),
        report.summary.access_rows,
        report.summary.accounts_with_access
    );
    for (kind, n) in &report.summary.by_kind {
        s += &format!("  findings of kind {kind}: {n}\n");
    }
    for f in files {
        s += &format!("  written: {}\n", f.path);
    }
    s
}

/// The demo's last step: an audit of the demo's store in every format, written beside the
/// demo's database when it names one, else into a new folder that outlives the demo; prints
/// where.
pub async fn demo_audit(
    store: &dyn Store,
    config: &Config,
    database: Option<&Path>,
) -> Result<(), String> {
    println!("\n== 9. Audit: who has admin, who is outside, what drifted, in every format");
    let dir = match database.and_then(Path::parent) {
        Some(parent) => parent.join("audit"),
        None => tempfile::Builder::new()
            .prefix("bitbucket-access-demo-audit-")
            .tempdir()
            .map_err(|e| e.to_string())?
            .keep(),
    };
    let formats = [
        OutputFormat::Json,
        OutputFormat::Csv,
        OutputFormat::Md,
        OutputFormat::Html,
    ];
    let (report, files) = produce(
        store,
        &SystemClock,
        &settings(config, Vec::new()),
        &dir,
        &formats,
    )
    .await?;
    print!("{}", summary(&report, &files));
    println!(
        "   the audit is in {} (open the .html file in a browser)",
        dir.display()
    );
    Ok(())
}

/// Runs `audit` or `audit verify`.
pub async fn run(cli: &Cli, args: &Args) -> u8 {
    let config = match load_config(cli) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Some(AuditCommand::Verify { json }) = &args.command {
        return verify(&config, *json).await;
    }
    let store = match crate::store::open(config.database_url.expose_url()).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot open the store: {e}");
            return EXIT_FAILURE;
        }
    };
    if args.sync {
        if let Err(e) = sync_first(&config, store.as_ref(), args).await {
            eprintln!("error: the sync before the audit failed: {e}");
            return EXIT_FAILURE;
        }
    }
    let formats: Vec<OutputFormat> = if args.formats.is_empty() {
        config
            .audit_policy
            .report_formats
            .iter()
            .map(|f| OutputFormat::from(*f))
            .collect()
    } else {
        args.formats.clone()
    };
    let dir = args
        .output
        .clone()
        .unwrap_or_else(|| config.audit_policy.report_dir.clone());
    let settings = settings(&config, args.workspaces.clone());
    let audit = match audit::build(store.as_ref(), &SystemClock, &settings).await {
        Ok(r) => r,
        Err(e @ AuditError::UnknownWorkspace { .. }) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_FAILURE;
        }
    };
    let (audit, files) = match write_report_blocking(audit, dir, formats).await {
        Ok(written) => written,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_FAILURE;
        }
    };
    let report = audit.report;
    if let Err(e) = audit::record(store.as_ref(), &report, files.clone()).await {
        eprintln!("error: the report was written but could not be stored: {e}");
        return EXIT_FAILURE;
    }
    print!("{}", summary(&report, &files));
    let present = audit::has_any(&report, &args.fail_on);
    if present.is_empty() {
        EXIT_OK
    } else {
        let names: Vec<&str> = present.iter().map(|k| k.as_str()).collect();
        eprintln!("findings of --fail-on kinds present: {}", names.join(", "));
        EXIT_FAILURE
    }
}

async fn sync_first(config: &Config, store: &dyn Store, args: &Args) -> Result<(), String> {
    let client = crate::connect::bitbucket_client(config).map_err(|e| e.to_string())?;
    let options = SyncOptions {
        workspaces: if args.workspaces.is_empty() {
            config.workspaces.clone()
        } else {
            args.workspaces.clone()
        },
        ..SyncOptions::default()
    };
    let report = crate::sync::run(store, &client, &options)
        .await
        .map_err(|e| e.to_string())?;
    eprint!("{}", super::sync::summary(&report));
    Ok(())
}

async fn verify(config: &Config, json: bool) -> u8 {
    let store = match crate::store::open_with(&config.database_url, OpenMode::ReadOnly).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot open the store: {e}");
            return EXIT_FAILURE;
        }
    };
    let read = |path: &str| std::fs::read(path).ok();
    let result = match audit::verify::verify(store.as_ref(), &read).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_FAILURE;
        }
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&result).unwrap_or_default()
        );
    } else {
        println!(
            "audit log: {} chained entries checked{}",
            result.entries_checked,
            match (result.entries_before_chain, result.chain_starts_at) {
                (0, _) => String::new(),
                (n, Some(first)) => format!(
                    "; {n} entries written before the chain began (at entry {first}) cannot be checked"
                ),
                (n, None) => format!("; {n} entries written before the chain began cannot be checked"),
            }
        );
        println!(
            "audit reports: {} checked, {} files checked, {} files missing",
            result.reports_checked,
            result.files_checked,
            result.files_missing.len()
        );
        for path in &result.files_missing {
            println!("  missing (moved or deleted): {path}");
        }
    }
    if result.is_intact() {
        if !json {
            println!("intact");
        }
        EXIT_OK
    } else {
        for broken in &result.broken {
            eprintln!("broken: {broken}");
        }
        EXIT_FAILURE
    }
}
