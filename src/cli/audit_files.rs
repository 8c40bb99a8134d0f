//! The report files of an audit: each format rendered straight into its file and hashed on the
//! way. The effective access matrix is computed once more, a batch of repositories at a time,
//! and each batch goes to every file that shows it at once (one writer thread per such file,
//! each with a short queue), so the matrix is never held whole.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::audit::OutputFormat;
use crate::audit::{self, Audit, MatrixRow, Report};
use crate::store::chain::Sha256Writer;
use crate::store::ReportFile;

/// Writes one file into `dir`, hashing its bytes on the way.
fn write_file(
    dir: &Path,
    name: &str,
    render: impl FnOnce(&mut dyn std::io::Write) -> Result<(), String>,
) -> Result<ReportFile, String> {
    let path = dir.join(name);
    let failed = |e: String| format!("cannot write {}: {e}", path.display());
    let file = std::fs::File::create(&path).map_err(|e| failed(e.to_string()))?;
    let mut out = Sha256Writer::new(std::io::BufWriter::with_capacity(1 << 16, file));
    render(&mut out).map_err(failed)?;
    let sha256 = out.finish().map_err(|e| failed(e.to_string()))?;
    Ok(ReportFile {
        path: path.display().to_string(),
        sha256,
    })
}

/// A file that holds the matrix's rows.
#[derive(Debug, Clone, Copy)]
enum Streamed {
    Json,
    Markdown,
    Html,
    CsvMatrix,
}

impl Streamed {
    fn write(
        self,
        report: &Report,
        rows: impl Iterator<Item = MatrixRow>,
        out: &mut dyn std::io::Write,
    ) -> Result<(), String> {
        match self {
            Streamed::Json => audit::render_json::write(report, rows, out),
            Streamed::Markdown => audit::render_md::write(report, rows, out),
            Streamed::Html => audit::render_html::write(report, rows, out),
            Streamed::CsvMatrix => return audit::render_csv::write_matrix(rows, out),
        }
        .map_err(|e| e.to_string())
    }
}

/// Renders the audit in each format and writes the files into `dir` (created if missing):
/// `audit-<time>.json`, `.md`, `.html`, and `audit-<time>-<section>.csv`. Returns each file
/// with the SHA-256 of its bytes, in format order.
///
/// The matrix is computed once more, a batch of repositories at a time, and each batch goes
/// to every file that shows it at once: each such file is written by its own thread from a
/// short queue of batches, so the matrix is never held whole and the files are written side by
/// side. Nothing else is large; those files are written one at a time.
pub fn write_report(
    audit: &Audit,
    dir: &Path,
    formats: &[OutputFormat],
) -> Result<Vec<ReportFile>, String> {
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create the report folder {}: {e}", dir.display()))?;
    let report = &audit.report;
    let stem = format!("audit-{}", report.generated_at.format("%Y%m%dT%H%M%S%.6fZ"));
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mut files: Vec<Option<ReportFile>> = Vec::new();
    let mut streamed: Vec<(usize, String, Streamed)> = Vec::new();
    for format in formats {
        match format {
            OutputFormat::Json => {
                streamed.push((files.len(), format!("{stem}.json"), Streamed::Json))
            }
            OutputFormat::Md => {
                streamed.push((files.len(), format!("{stem}.md"), Streamed::Markdown))
            }
            OutputFormat::Html => {
                streamed.push((files.len(), format!("{stem}.html"), Streamed::Html))
            }
            OutputFormat::Csv => {
                for (section, _) in audit::render_csv::SECTIONS {
                    let name = format!("{stem}-{section}.csv");
                    if *section == audit::render_csv::MATRIX_SECTION {
                        streamed.push((files.len(), name, Streamed::CsvMatrix));
                        files.push(None);
                    } else {
                        files.push(Some(write_file(&dir, &name, |out| {
                            audit::render_csv::write(report, section, out)
                        })?));
                    }
                }
                continue;
            }
        }
        files.push(None);
    }
    for (index, file) in write_streamed(audit, &dir, streamed)? {
        files[index] = Some(file);
    }
    Ok(files.into_iter().flatten().collect())
}

/// Batches queued for each writer: enough to keep it busy while the next batch is computed.
const QUEUED_BATCHES: usize = 2;

/// Writes the files that hold the matrix's rows, each on its own thread, feeding them the
/// matrix's batches as they are computed.
fn write_streamed(
    audit: &Audit,
    dir: &Path,
    streamed: Vec<(usize, String, Streamed)>,
) -> Result<Vec<(usize, ReportFile)>, String> {
    if streamed.is_empty() {
        return Ok(Vec::new());
    }
    let report = &audit.report;
    std::thread::scope(|scope| {
        let mut queues = Vec::new();
        let mut writers = Vec::new();
        for (index, name, kind) in streamed {
            let (queue, batches) =
                std::sync::mpsc::sync_channel::<Arc<Vec<MatrixRow>>>(QUEUED_BATCHES);
            queues.push(queue);
            writers.push((
                index,
                name.clone(),
                scope.spawn(move || {
                    write_file(dir, &name, |out| {
                        // Cloning a row copies no text: its texts are shared.
                        let rows = batches
                            .iter()
                            .flat_map(|batch| (0..batch.len()).map(move |i| batch[i].clone()));
                        kind.write(report, rows, out)
                    })
                }),
            ));
        }
        for batch in audit.matrix.batches() {
            let batch = Arc::new(batch);
            // A writer that has stopped reading (the HTML page's row cap, or a failed file,
            // whose error comes from its thread) is fed no more.
            queues.retain(|queue| queue.send(batch.clone()).is_ok());
            if queues.is_empty() {
                break;
            }
        }
        drop(queues);
        writers
            .into_iter()
            .map(|(index, name, writer)| {
                let file = writer
                    .join()
                    .map_err(|_| format!("writing {name} failed unexpectedly"))??;
                Ok((index, file))
            })
            .collect()
    })
}

/// [`write_report`] off the async runtime's threads (it computes and writes for seconds on a
/// large world); gives the audit back with the files.
pub async fn write_report_blocking(
    audit: Audit,
    dir: PathBuf,
    formats: Vec<OutputFormat>,
) -> Result<(Audit, Vec<ReportFile>), String> {
    tokio::task::spawn_blocking(move || {
        let files = write_report(&audit, &dir, &formats)?;
        Ok((audit, files))
    })
    .await
    .map_err(|e| format!("writing the report failed unexpectedly: {e}"))?
}
