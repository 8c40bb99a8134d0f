//! `GET /v1/audits/latest`: the newest stored audit report, in the format the `Accept` header
//! asks for.
//!
//! - JSON (`application/json`, also for no `Accept`, `*/*` or `application/*`): the report's
//!   JSON file as the audit wrote it, every row of the matrix included, streamed from disk.
//! - CSV (`text/csv` or `text/*`): one section of the report per request, the same bytes as
//!   the `audit-<time>-<section>.csv` file `audit --format csv` writes: rendered from the
//!   stored report, but the matrix, whose rows only the file holds. The `section` query
//!   parameter picks it (`findings` when left out); the `X-Audit-Section` header names it.
//!
//! Both carry the report's store id and hash in `X-Audit-Report-Id` and `X-Audit-Report-Sha256`,
//! and an answer read from a file the SHA-256 recorded for it in `X-Audit-File-Sha256`. No
//! stored report, or its file gone, is a 404 saying what to do; an `Accept` that allows neither
//! format is a 406.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio_util::io::ReaderStream;

use super::{ApiError, ApiState};
use crate::audit::{self, render_csv, LatestReport};

/// The section a CSV answer holds when the request names none.
pub const DEFAULT_SECTION: &str = "findings";

/// The query of `GET /v1/audits/latest`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatestQuery {
    /// The CSV section (one of `audit::render_csv::SECTIONS`).
    #[serde(default)]
    pub section: Option<String>,
}

/// A format this endpoint serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The stored report.
    Json,
    /// One section as CSV.
    Csv,
}

/// The newest stored audit report.
pub async fn latest(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    query: Result<Query<LatestQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    let format = negotiate(headers.get(header::ACCEPT))?;
    let section = section(query.section.as_deref())?;
    let Some(latest) = audit::latest(state.store.as_ref())
        .await
        .map_err(|e| ApiError::internal("the latest audit report", &e))?
    else {
        return Err(ApiError::not_found(
            "no audit report is stored yet: run `bitbucket-access audit`, or wait for serve's \
             scheduled audit",
        ));
    };
    let mut out = HeaderMap::new();
    out.insert("x-audit-report-id", HeaderValue::from(latest.id.0));
    if let Ok(sha) = HeaderValue::from_str(&latest.report.sha256) {
        out.insert("x-audit-report-sha256", sha);
    }
    let (content_type, body) = match format {
        Format::Json => (
            "application/json",
            written_file(&latest, ".json", &mut out).await?,
        ),
        Format::Csv if section == render_csv::MATRIX_SECTION => {
            let suffix = format!("-{section}.csv");
            let body = written_file(&latest, &suffix, &mut out).await?;
            ("text/csv; charset=utf-8", body)
        }
        Format::Csv => {
            let mut text = Vec::new();
            render_csv::write(&latest.report, section, &mut text).map_err(|e| {
                ApiError::internal(&format!("the CSV of audit report {}", latest.id.0), &e)
            })?;
            ("text/csv; charset=utf-8", Body::from(text))
        }
    };
    out.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if format == Format::Csv {
        out.insert("x-audit-section", HeaderValue::from_static(section));
        if let Ok(disposition) = HeaderValue::from_str(&format!(
            "attachment; filename=\"audit-{}-{section}.csv\"",
            latest.id.0
        )) {
            out.insert(header::CONTENT_DISPOSITION, disposition);
        }
    }
    Ok((StatusCode::OK, out, body).into_response())
}

/// The file the audit wrote whose name ends with `suffix`, streamed from disk (the matrix's
/// rows are only in the files: the stored report holds every other section and the matrix's
/// hash). `X-Audit-File-Sha256` carries the SHA-256 recorded when it was written, so a client
/// can check the bytes it received; `audit verify` checks the file itself.
async fn written_file(
    latest: &LatestReport,
    suffix: &str,
    out: &mut HeaderMap,
) -> Result<Body, ApiError> {
    let id = latest.id.0;
    let Some(file) = latest.file(suffix) else {
        return Err(ApiError::not_found(format!(
            "audit report {id} was not written as `*{suffix}`: run `bitbucket-access audit` with \
             that format (the matrix's rows are only in the JSON and access_matrix CSV files); \
             every other CSV section is served from the store"
        )));
    };
    let opened = tokio::fs::File::open(&file.path).await.map_err(|e| {
        ApiError::not_found(format!(
            "the file of audit report {id}, {}, cannot be read ({e}): restore it or run \
             `bitbucket-access audit` again",
            file.path
        ))
    })?;
    if let Ok(sha) = HeaderValue::from_str(&file.sha256) {
        out.insert("x-audit-file-sha256", sha);
    }
    Ok(Body::from_stream(ReaderStream::new(opened)))
}

/// The section named (or the default), as the renderer spells it.
fn section(asked: Option<&str>) -> Result<&'static str, ApiError> {
    let asked = asked.unwrap_or(DEFAULT_SECTION);
    render_csv::SECTIONS
        .iter()
        .map(|(name, _)| *name)
        .find(|name| *name == asked)
        .ok_or_else(|| {
            let known: Vec<&str> = render_csv::SECTIONS.iter().map(|(n, _)| *n).collect();
            ApiError::invalid(
                "section",
                format!(
                    "{asked:?} is not a section of the report: use one of {}",
                    known.join(", ")
                ),
            )
        })
}

/// The format `Accept` prefers: for each format the quality of the most specific media range
/// that matches it, the higher quality winning and JSON winning a tie.
pub fn negotiate(accept: Option<&HeaderValue>) -> Result<Format, ApiError> {
    let Some(value) = accept else {
        return Ok(Format::Json);
    };
    let text = value.to_str().unwrap_or_default();
    if text.trim().is_empty() {
        return Ok(Format::Json);
    }
    let ranges: Vec<(String, f32)> = text.split(',').filter_map(media_range).collect();
    let quality = |kind: &str, subtype: &str| -> f32 {
        let exact = format!("{kind}/{subtype}");
        let any_sub = format!("{kind}/*");
        [exact.as_str(), any_sub.as_str(), "*/*"]
            .iter()
            .find_map(|wanted| ranges.iter().find(|(r, _)| r == wanted).map(|(_, q)| *q))
            .unwrap_or(0.0)
    };
    let json = quality("application", "json");
    let csv = quality("text", "csv");
    match (json > 0.0, csv > 0.0) {
        (false, false) => Err(ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "not_acceptable",
            format!(
                "Accept {text:?} allows no format of this endpoint: ask for application/json \
                 (the report) or text/csv (one section)"
            ),
        )),
        _ if csv > json => Ok(Format::Csv),
        _ => Ok(Format::Json),
    }
}

/// One media range of an `Accept` header, lower-cased, with its quality (1 when not given); a
/// range whose quality does not parse is left out.
fn media_range(part: &str) -> Option<(String, f32)> {
    let mut pieces = part.split(';');
    let range = pieces.next()?.trim().to_ascii_lowercase();
    if range.is_empty() {
        return None;
    }
    let mut q = 1.0;
    for param in pieces {
        if let Some((name, value)) = param.split_once('=') {
            if name.trim().eq_ignore_ascii_case("q") {
                q = value.trim().parse::<f32>().ok()?;
            }
        }
    }
    Some((range, q))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick(accept: &str) -> Result<Format, u16> {
        negotiate(Some(&HeaderValue::from_str(accept).expect("header")))
            .map_err(|e| e.status.as_u16())
    }

    #[test]
    fn accept_picks_the_format_a_client_prefers() {
        assert_eq!(negotiate(None), Ok(Format::Json));
        assert_eq!(pick("application/json"), Ok(Format::Json));
        assert_eq!(pick("*/*"), Ok(Format::Json));
        assert_eq!(pick("text/csv"), Ok(Format::Csv));
        assert_eq!(pick("TEXT/CSV; charset=utf-8"), Ok(Format::Csv));
        assert_eq!(pick("text/*, application/json;q=0.5"), Ok(Format::Csv));
        assert_eq!(pick("text/csv;q=0.4, */*;q=0.9"), Ok(Format::Json));
        assert_eq!(pick("application/json;q=0, text/csv"), Ok(Format::Csv));
        assert_eq!(pick("application/xml"), Err(406));
        assert_eq!(pick("*/*;q=0"), Err(406));
        assert_eq!(pick("text/html, application/pdf"), Err(406));
    }
}
