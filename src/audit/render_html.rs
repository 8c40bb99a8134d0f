//! The report as one self-contained HTML page: inline CSS and JavaScript, no external asset,
//! no network. Every table can be filtered (a text box) and sorted (click a column header); the
//! findings can also be filtered by severity and kind. Without JavaScript the page still shows
//! every row it holds.
//!
//! The effective access matrix of a large world (hundreds of thousands of rows) would make a
//! page no browser can filter or sort, so the page holds at most [`HTML_MATRIX_ROWS`] of its
//! rows, the first in report order (workspace, repository, account), and says so above the
//! table; the JSON, CSV and Markdown files hold every row.

use std::io::Write;

use super::cells;
use super::model::{MatrixRow, Report};
use super::Audit;

/// The most matrix rows the page holds.
pub const HTML_MATRIX_ROWS: usize = 10_000;

/// Escapes text for HTML content and attribute values.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
body { font-family: system-ui, sans-serif; margin: 2rem; color: #1d1d1f; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
table { border-collapse: collapse; width: 100%; font-size: 0.9rem; }
th, td { border: 1px solid #d0d0d5; padding: 0.3rem 0.5rem; text-align: left; vertical-align: top; }
th { background: #f2f2f5; cursor: pointer; user-select: none; }
th.asc::after { content: " \25B2"; } th.desc::after { content: " \25BC"; }
tr.critical td:first-child { border-left: 4px solid #c62828; }
tr.warning td:first-child { border-left: 4px solid #ef8f00; }
tr.info td:first-child { border-left: 4px solid #1565c0; }
.controls { margin: 0.5rem 0; display: flex; gap: 0.5rem; align-items: center; }
code { font-size: 0.85rem; word-break: break-all; }
.count { color: #555; }
"#;

const SCRIPT: &str = r#"
(function () {
  function cellText(row, i) { var c = row.cells[i]; return c ? c.textContent.trim() : ""; }
  function update(table) {
    var box = document.querySelector('input[data-filter="' + table.id + '"]');
    var text = box ? box.value.toLowerCase() : "";
    var selects = document.querySelectorAll('select[data-filter="' + table.id + '"]');
    var rows = table.tBodies[0].rows, shown = 0;
    for (var r = 0; r < rows.length; r++) {
      var row = rows[r], ok = row.textContent.toLowerCase().indexOf(text) !== -1;
      for (var s = 0; s < selects.length; s++) {
        var want = selects[s].value, col = +selects[s].getAttribute("data-column");
        if (want && cellText(row, col) !== want) { ok = false; }
      }
      row.hidden = !ok; if (ok) { shown++; }
    }
    var count = document.querySelector('[data-count="' + table.id + '"]');
    if (count) { count.textContent = shown + " of " + rows.length + " shown"; }
  }
  function sortBy(table, th, i) {
    var asc = !th.classList.contains("asc");
    var ths = table.tHead.rows[0].cells;
    for (var h = 0; h < ths.length; h++) { ths[h].classList.remove("asc", "desc"); }
    th.classList.add(asc ? "asc" : "desc");
    var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = cellText(a, i), y = cellText(b, i), nx = parseFloat(x), ny = parseFloat(y);
      var d = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
      return asc ? d : -d;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  }
  var tables = document.querySelectorAll("table.report");
  Array.prototype.forEach.call(tables, function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      th.addEventListener("click", function () { sortBy(table, th, i); });
    });
    var controls = document.querySelectorAll('[data-filter="' + table.id + '"]');
    Array.prototype.forEach.call(controls, function (c) {
      c.addEventListener("input", function () { update(table); });
      c.addEventListener("change", function () { update(table); });
    });
    update(table);
  });
})();
"#;

/// What a table shows above its rows.
struct Head<'a> {
    id: &'a str,
    title: &'a str,
    header: &'a [&'a str],
    /// Rows in the table.
    count: usize,
    /// Drop-down filters: `(column, values)`.
    selects: &'a [(usize, Vec<String>)],
    /// A paragraph (HTML, escaped by the caller) under the title.
    note: Option<&'a str>,
}

/// A filterable, sortable table; `rows` are `(row class, cells)`.
fn table(
    out: &mut dyn Write,
    id: &str,
    title: &str,
    header: &[&str],
    rows: impl ExactSizeIterator<Item = (String, Vec<String>)>,
    selects: &[(usize, Vec<String>)],
) -> std::io::Result<()> {
    let head = Head {
        id,
        title,
        header,
        count: rows.len(),
        selects,
        note: None,
    };
    table_of(out, &head, rows)
}

/// A table of `head.count` rows.
fn table_of(
    out: &mut dyn Write,
    head: &Head<'_>,
    rows: impl Iterator<Item = (String, Vec<String>)>,
) -> std::io::Result<()> {
    let Head {
        id,
        title,
        header,
        count,
        selects,
        note,
    } = *head;
    writeln!(out, "<h2>{}</h2>", esc(title))?;
    if let Some(note) = note {
        writeln!(out, "{note}")?;
    }
    write!(
        out,
        "<div class=\"controls\"><input type=\"search\" placeholder=\"Filter\" data-filter=\"{id}\" aria-label=\"Filter {title}\">",
        title = esc(title)
    )?;
    for (column, values) in selects {
        write!(
            out,
            "<select data-filter=\"{id}\" data-column=\"{column}\" aria-label=\"{}\"><option value=\"\">all {}</option>",
            esc(header[*column]),
            esc(header[*column])
        )?;
        for v in values {
            write!(out, "<option>{}</option>", esc(v))?;
        }
        out.write_all("</select>".as_bytes())?;
    }
    writeln!(
        out,
        "<span class=\"count\" data-count=\"{id}\">{count} rows</span></div>"
    )?;
    write!(out, "<table class=\"report\" id=\"{id}\"><thead><tr>")?;
    for h in header {
        write!(out, "<th>{}</th>", esc(h))?;
    }
    out.write_all("</tr></thead><tbody>\n".as_bytes())?;
    for (class, cells) in rows {
        write!(out, "<tr class=\"{}\">", esc(&class))?;
        for c in cells {
            write!(out, "<td>{}</td>", esc(&c))?;
        }
        out.write_all("</tr>\n".as_bytes())?;
    }
    out.write_all("</tbody></table>\n".as_bytes())?;
    Ok(())
}

/// The audit as a self-contained HTML page, as text (for tests and small audits: the text is
/// held whole).
pub fn render(audit: &Audit) -> String {
    let mut out = Vec::new();
    // Writing into memory cannot fail.
    let _ = write(&audit.report, audit.matrix.rows(), &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// Writes the report as a self-contained HTML page, with at most [`HTML_MATRIX_ROWS`] of the
/// matrix's rows from `rows` (it reads no further).
pub fn write(
    r: &Report,
    rows: impl Iterator<Item = MatrixRow>,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    write_capped(r, rows, HTML_MATRIX_ROWS, out)
}

/// [`write`] with at most `cap` matrix rows.
pub fn write_capped(
    r: &Report,
    rows: impl Iterator<Item = MatrixRow>,
    cap: usize,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let title = format!("Permission audit, {}", r.generated_at.to_rfc3339());
    write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t}</title><style>{STYLE}</style></head><body>\n<h1>{t}</h1>\n",
        t = esc(&title)
    )?;
    writeln!(
        out,
        "<ul><li>Workspaces: {}</li><li>Report SHA-256: <code id=\"sha256\">{}</code></li>\
         <li>Previous report: {}</li><li>Findings: {} ({} new, {} resolved)</li>\
         <li>Oldest fact: {}</li></ul>",
        esc(&r.workspaces.join(", ")),
        esc(&r.sha256),
        r.previous.as_ref().map_or("none".to_owned(), |p| format!(
            "{} <code>{}</code>",
            esc(&p.generated_at.to_rfc3339()),
            esc(&p.sha256)
        )),
        r.summary.findings,
        r.changes.new.len(),
        r.changes.resolved.len(),
        esc(&r
            .freshness
            .oldest_read_at
            .map_or("never read".to_owned(), |t| t.to_rfc3339())),
    )?;

    let mut kinds: Vec<String> = r.findings.iter().map(|f| f.kind.to_string()).collect();
    kinds.sort();
    kinds.dedup();
    let new: std::collections::HashSet<&str> = r.changes.new.iter().map(String::as_str).collect();
    let mut finding_columns = cells::FINDING.to_vec();
    finding_columns.push("change");
    let plain = |cells: Vec<String>| (String::new(), cells);
    table(
        out,
        "findings",
        "Findings",
        &finding_columns,
        r.findings.iter().map(|f| {
            let mut row = cells::finding(f);
            row.push(
                if new.contains(f.id.as_str()) {
                    "new"
                } else {
                    ""
                }
                .to_owned(),
            );
            (f.severity.as_str().to_owned(), row)
        }),
        &[
            (0, vec!["critical".into(), "warning".into(), "info".into()]),
            (1, kinds),
        ],
    )?;
    table(
        out,
        "resolved",
        "Resolved since the previous report",
        cells::FINDING,
        r.changes
            .resolved
            .iter()
            .map(|f| (f.severity.as_str().to_owned(), cells::finding(f))),
        &[],
    )?;
    table(
        out,
        "administrators",
        "Administrators",
        cells::ADMIN,
        r.administrators.iter().map(cells::admin).map(plain),
        &[],
    )?;
    table(
        out,
        "grants",
        "Grants",
        cells::GRANT,
        r.grants.iter().map(cells::grant).map(plain),
        &[],
    )?;
    table(
        out,
        "drift",
        "Drift since the previous report",
        cells::DRIFT,
        r.drift.entries.iter().map(cells::drift).map(plain),
        &[],
    )?;
    table(
        out,
        "sync-runs",
        "Sync runs behind the facts",
        cells::SYNC_RUN,
        r.freshness.sync_runs.iter().map(cells::sync_run).map(plain),
        &[],
    )?;
    let total = usize::try_from(r.summary.access_rows).unwrap_or(usize::MAX);
    let shown = total.min(cap);
    // Said above the table, where a reader looks: the page is not the whole matrix.
    let note = (shown < total).then(|| {
        format!(
            "<p id=\"access-capped\">This page shows the first {shown} of the {total} rows of \
             the effective access matrix (by workspace, repository and account); filtering and \
             sorting apply to these rows. The JSON, CSV and Markdown files of this report hold \
             every row (matrix SHA-256 <code>{}</code>).</p>",
            esc(&r.access_matrix_sha256)
        )
    });
    let head = Head {
        id: "access",
        title: "Effective access",
        header: cells::MATRIX,
        count: shown,
        selects: &[(4, vec!["admin".into(), "write".into(), "read".into()])],
        note: note.as_deref(),
    };
    table_of(
        out,
        &head,
        rows.take(shown)
            .map(|row| (String::new(), cells::matrix(&row))),
    )?;
    write!(out, "<script>{SCRIPT}</script>\n</body></html>\n")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::esc;

    #[test]
    fn text_from_the_store_cannot_open_a_tag() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }
}
