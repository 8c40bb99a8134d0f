//! Output of data commands: `--format table|json|csv`.

use serde::Serialize;

/// How a data command prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// JSON for machines.
    Json,
    /// CSV for spreadsheets (one header row).
    Csv,
}

/// A result with columns: a header and rows of cells, plus the value printed as JSON.
pub struct Rows<'a, T: Serialize> {
    /// Column names.
    pub header: &'a [&'a str],
    /// Cells, one `Vec` per row, as many as the header.
    pub rows: Vec<Vec<String>>,
    /// What `--format json` prints.
    pub json: &'a T,
}

/// Renders rows in the chosen format.
pub fn render<T: Serialize>(format: Format, rows: &Rows<'_, T>) -> Result<String, String> {
    match format {
        Format::Json => serde_json::to_string_pretty(rows.json)
            .map(|s| s + "\n")
            .map_err(|e| e.to_string()),
        Format::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            w.write_record(rows.header).map_err(|e| e.to_string())?;
            for r in &rows.rows {
                w.write_record(r).map_err(|e| e.to_string())?;
            }
            let bytes = w.into_inner().map_err(|e| e.to_string())?;
            String::from_utf8(bytes).map_err(|e| e.to_string())
        }
        Format::Table => Ok(table(rows.header, &rows.rows)),
    }
}

/// Aligned columns, the last one left unpadded.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let n = cells.len();
        let mut s = String::new();
        for (i, c) in cells.into_iter().enumerate() {
            if i + 1 == n {
                s.push_str(c);
            } else {
                s.push_str(c);
                s.push_str(&" ".repeat(widths[i] - c.chars().count() + 2));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_cells_that_need_it() {
        let json = ();
        let rows = Rows {
            header: &["who", "why"],
            rows: vec![vec!["Zoë, A".into(), "group \"devs\"".into()]],
            json: &json,
        };
        let out = render(Format::Csv, &rows).unwrap();
        assert_eq!(out, "who,why\n\"Zoë, A\",\"group \"\"devs\"\"\"\n");
    }

    #[test]
    fn table_aligns_unicode_by_characters() {
        let out = table(&["a", "b"], &[vec!["ééé".into(), "x".into()]]);
        assert_eq!(out, "a    b\nééé  x\n");
    }
}
