//! `/metrics` as numbers: each sample of the Prometheus text by its series (`name{labels}`),
//! and the growth of each series between two scrapes.

use std::collections::BTreeMap;

/// Every sample of the page at `{base}/metrics`, by series.
pub async fn scrape(http: &reqwest::Client, base: &str) -> BTreeMap<String, f64> {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// The series that changed from `before` to `after`, with how much (a series new in `after`
/// counts from zero).
pub fn deltas(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, d)| *d != 0.0)
        .collect()
}
