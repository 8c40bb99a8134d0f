//! The sources of identity matching other than the rules themselves: the organization's
//! managed accounts, Jira's user listing and bulk look-up, the override file and an IdP's list
//! of people. Each turns what it read into
//! plain maps; parsing takes text, so the caller decides where the text comes from.

use std::collections::{BTreeMap, BTreeSet};

use futures::TryStreamExt;
use serde::Deserialize;

use super::IdentityError;
use crate::domain::{AccountId, IdentitySource, JiraFact};
use crate::jira::{JiraClient, JiraError};
use crate::org::{OrgClient, OrgError};

/// Longest override or people file read, in bytes: far beyond any organisation's list.
pub const MAX_FILE_BYTES: usize = 16 * 1024 * 1024;
/// Most rows an override or people file may hold.
pub const MAX_ROWS: usize = 200_000;

/// What Jira says about the `wanted` accounts: `users/search` page by page until every wanted
/// account was seen or the listing ends, then `user/bulk` for the accounts it did not return.
/// Accounts Jira does not know are absent.
pub async fn read_jira(
    client: &JiraClient,
    wanted: &[AccountId],
) -> Result<BTreeMap<AccountId, JiraFact>, JiraError> {
    let mut missing: BTreeSet<&str> = wanted.iter().map(AccountId::as_str).collect();
    let mut found = BTreeMap::new();
    let mut users = client.users_search();
    // The stream asks for the next page only when polled, so stopping once every wanted
    // account was seen saves the pages (and the empty last page) nobody needs.
    while !missing.is_empty() {
        let Some(user) = users.try_next().await? else {
            break;
        };
        if missing.remove(user.account_id.as_str()) {
            if let Ok(id) = AccountId::parse(user.account_id.clone()) {
                found.insert(id, user.fact(IdentitySource::JiraUsersSearch));
            }
        }
    }
    drop(users);
    if !missing.is_empty() {
        let ids: Vec<String> = missing.iter().map(|s| (*s).to_owned()).collect();
        for user in client.users_bulk(&ids).await? {
            if let Ok(id) = AccountId::parse(user.account_id.clone()) {
                found
                    .entry(id)
                    .or_insert_with(|| user.fact(IdentitySource::JiraUserBulk));
            }
        }
    }
    Ok(found)
}

/// The email of every managed account of the organization that has one, by account (every page
/// of the organization's users; any failure is the whole listing's).
pub async fn read_org(client: &OrgClient) -> Result<BTreeMap<AccountId, String>, OrgError> {
    Ok(client
        .users()
        .await?
        .into_iter()
        .filter_map(|u| Some((AccountId::parse(u.account_id).ok()?, u.email?)))
        .collect())
}

fn check_size(what: &str, text: &str) -> Result<(), IdentityError> {
    if text.len() > MAX_FILE_BYTES {
        return Err(IdentityError::File {
            what: what.to_owned(),
            problem: format!(
                "is larger than {} MiB; split it or remove what identity matching does not need",
                MAX_FILE_BYTES / (1024 * 1024)
            ),
        });
    }
    Ok(())
}

fn valid_email(email: &str) -> bool {
    let email = email.trim();
    email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.contains('@')
        })
        && !email
            .chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '\\')
}

/// The override file: CSV (`account_id,email` per line, header optional) or JSON
/// (`[{"account_id": "...", "email": "..."}]`), told apart by its first non-blank character.
pub fn parse_overrides(
    name: &str,
    text: &str,
) -> Result<BTreeMap<AccountId, String>, IdentityError> {
    check_size(name, text)?;
    let bad = |line: usize, problem: String| IdentityError::File {
        what: format!("{name} (entry {line})"),
        problem,
    };
    let pairs: Vec<(String, String)> = if text.trim_start().starts_with('[') {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Entry {
            account_id: String,
            email: String,
        }
        let entries: Vec<Entry> = serde_json::from_str(text).map_err(|e| IdentityError::File {
            what: name.to_owned(),
            problem: format!("is not a JSON list of {{\"account_id\", \"email\"}} objects ({e})"),
        })?;
        entries
            .into_iter()
            .map(|e| (e.account_id, e.email))
            .collect()
    } else {
        csv_rows(name, text)?
            .into_iter()
            .map(|(_, row)| row)
            .filter(|row| !row.iter().all(|c| c.trim().is_empty()))
            .filter(|row| !row[0].trim().eq_ignore_ascii_case("account_id"))
            .map(|row| {
                (
                    row[0].trim().to_owned(),
                    row.get(1).map(|e| e.trim().to_owned()).unwrap_or_default(),
                )
            })
            .collect()
    };
    let mut out = BTreeMap::new();
    for (i, (account, email)) in pairs.into_iter().enumerate() {
        let id = AccountId::parse(account.clone())
            .map_err(|e| bad(i + 1, format!("names `{account}`, not an account id ({e})")))?;
        if !valid_email(&email) {
            return Err(bad(
                i + 1,
                format!("gives `{email}` for {account}, which is not an email address"),
            ));
        }
        if let Some(before) = out.insert(id, email.clone()) {
            if !crate::domain::same_email(&before, &email) {
                return Err(bad(
                    i + 1,
                    format!("names {account} a second time, with another email; keep one"),
                ));
            }
        }
    }
    Ok(out)
}

/// An IdP export of people: CSV with an `email` column (and optionally name, department,
/// manager, which matching does not use), or without a header the email first. Returns the
/// distinct addresses in file order; a row without an address names its line of the file.
pub fn parse_people(name: &str, text: &str) -> Result<Vec<String>, IdentityError> {
    check_size(name, text)?;
    let rows = csv_rows(name, text)?;
    let mut rows = rows
        .into_iter()
        .filter(|(_, r)| !r.iter().all(|c| c.trim().is_empty()));
    let Some(first) = rows.next() else {
        return Ok(Vec::new());
    };
    let header = first
        .1
        .iter()
        .position(|c| c.trim().eq_ignore_ascii_case("email"));
    let column = header.unwrap_or(0);
    let data = header.is_none().then_some(first).into_iter().chain(rows);
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (line, row) in data {
        let email = row.get(column).map(|c| c.trim()).unwrap_or_default();
        if !valid_email(email) {
            return Err(IdentityError::File {
                what: format!("{name} (line {line})"),
                problem: format!(
                    "has `{email}` where an email address belongs; fix the line and import \
                     again (nothing was imported)"
                ),
            });
        }
        if seen.insert(email.to_ascii_lowercase()) {
            out.push(email.to_owned());
        }
    }
    Ok(out)
}

/// The records of a CSV text, each with the line of the file it starts on.
fn csv_rows(name: &str, text: &str) -> Result<Vec<(usize, Vec<String>)>, IdentityError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| IdentityError::File {
            what: name.to_owned(),
            problem: format!("is not valid CSV ({e})"),
        })?;
        if rows.len() >= MAX_ROWS {
            return Err(IdentityError::File {
                what: name.to_owned(),
                problem: format!("has more than {MAX_ROWS} rows"),
            });
        }
        // From the byte offset, past the blank lines the reader skipped before the record
        // (its own line count does not count them).
        let bytes = text.as_bytes();
        let mut start = record
            .position()
            .map_or(0, |p| usize::try_from(p.byte()).unwrap_or(usize::MAX))
            .min(bytes.len());
        while matches!(bytes.get(start), Some(b'\n' | b'\r')) {
            start += 1;
        }
        let line = bytes[..start].iter().filter(|b| **b == b'\n').count() + 1;
        rows.push((line, record.iter().map(str::to_owned).collect()));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_read_csv_with_or_without_header_and_json() {
        let csv = parse_overrides("o.csv", "account_id,email\nacc-1, a@x.example\n\n").unwrap();
        assert_eq!(csv.values().next().map(String::as_str), Some("a@x.example"));
        let plain = parse_overrides("o.csv", "acc-1,a@x.example\n").unwrap();
        assert_eq!(plain, csv);
        let json = parse_overrides(
            "o.json",
            r#"[{"account_id":"acc-1","email":"a@x.example"}]"#,
        )
        .unwrap();
        assert_eq!(json, csv);
    }

    #[test]
    fn overrides_refuse_a_bad_email_naming_the_entry() {
        let err = parse_overrides("o.csv", "acc-1,a@x.example\nacc-2,nobody\n").unwrap_err();
        assert!(err.to_string().contains("entry 2"), "{err}");
        assert!(err.to_string().contains("nobody"), "{err}");
    }

    #[test]
    fn people_take_the_email_column_and_drop_repeats() {
        let people = parse_people(
            "p.csv",
            "name,email,department\nAda,ada@x.example,R&D\nAda L,ADA@x.example,R&D\nBo,bo@x.example,\n",
        )
        .unwrap();
        assert_eq!(people, vec!["ada@x.example", "bo@x.example"]);
        // The line of the file, blank lines counted.
        let err = parse_people("p.csv", "email\na@x.example\n\nnot-an-email\n").unwrap_err();
        assert!(err.to_string().contains("p.csv (line 4)"), "{err}");
    }
}
