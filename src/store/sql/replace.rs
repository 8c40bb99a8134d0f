// Replacing complete listings: diff against the stored rows, write the difference, record
// drift, cascade deletions and mark the listings fresh, all inside one transaction. Listings
// are handled in groups whose stored rows, freshness and accounts are read with one query each
// and whose writes are multi-row statements (see `batch.rs`); the outcome of each listing is
// the one a replace of it alone, in key order, would give.
// Included by `sql.rs`; see there for the names in scope.

/// Deletes rows of `table` whose `scope_cols` equal `scope_values` and whose `key_col` is in `keys`.
async fn delete_keys(
    tx: &mut Tx,
    table: &'static str,
    scope_cols: &[&'static str],
    scope_values: &[String],
    key_col: &'static str,
    keys: &[String],
) -> Result<u64, StoreError> {
    let mut cols = scope_cols.to_vec();
    cols.push(key_col);
    let tuples: Vec<Vec<String>> = keys
        .iter()
        .map(|key| {
            let mut tuple = scope_values.to_vec();
            tuple.push(key.clone());
            tuple
        })
        .collect();
    delete_tuples(tx, table, &cols, &tuples).await
}

/// Removes what Bitbucket removes together with a repository, project or group: its explicit
/// permissions or memberships and their freshness. Returns the fact rows removed.
async fn cascade(tx: &mut Tx, key: &ListingKey, deleted: &[String]) -> Result<u64, StoreError> {
    if deleted.is_empty() {
        return Ok(0);
    }
    let ws = key.workspace().to_string();
    let scope = [ws.clone()];
    let (tables, scope_col, listings): (&[&'static str], &'static str, Vec<String>) = match key {
        ListingKey::Repositories(_) => (
            &[
                "repository_user_permissions",
                "repository_group_permissions",
            ],
            "repo_slug",
            deleted
                .iter()
                .flat_map(|slug| {
                    [
                        format!("repo:{ws}/{slug}:users"),
                        format!("repo:{ws}/{slug}:groups"),
                    ]
                })
                .collect(),
        ),
        ListingKey::Projects(_) => (
            &["project_user_permissions", "project_group_permissions"],
            "project_key",
            deleted
                .iter()
                .flat_map(|k| {
                    [
                        format!("project:{ws}/{k}:users"),
                        format!("project:{ws}/{k}:groups"),
                    ]
                })
                .collect(),
        ),
        ListingKey::Groups(_) => (
            &["group_members"],
            "group_slug",
            deleted
                .iter()
                .map(|g| format!("group:{ws}/{g}:members"))
                .collect(),
        ),
        _ => return Ok(0),
    };
    let mut removed = 0;
    for table in tables {
        removed += delete_keys(tx, table, &["workspace"], &scope, scope_col, deleted).await?;
    }
    delete_keys(tx, "listing_freshness", &[], &[], "listing", &listings).await?;
    delete_keys(tx, "listing_failures", &[], &[], "listing", &listings).await?;
    Ok(removed)
}

/// Whether replacing this listing can delete facts of other listings (see [`cascade`]).
fn cascades(key: &ListingKey) -> bool {
    matches!(
        key,
        ListingKey::Repositories(_) | ListingKey::Projects(_) | ListingKey::Groups(_)
    )
}

pub(crate) async fn replace_listings(
    pool: &Pool<Db>,
    requests: Vec<ReplaceListing>,
) -> Result<Vec<ReplaceOutcome>, StoreError> {
    // Process in key order so that concurrent batches take their listing locks in one order
    // and cannot deadlock on them; answer in the caller's order. The sort is stable, so two
    // requests for one listing keep their order.
    let mut order: Vec<(usize, ReplaceListing)> = requests.into_iter().enumerate().collect();
    order.sort_by(|a, b| a.1.key.cmp(&b.1.key));
    let mut tx = pool
        .begin_with(BEGIN_WRITE)
        .await
        .map_err(db_err("begin a transaction"))?;
    // Two replaces of the same listing must not both diff against the same old state, or each
    // would record the same drift.
    let mut listings: Vec<String> = order.iter().map(|(_, r)| r.key.to_string()).collect();
    listings.dedup();
    lock_listings(&mut tx, &listings).await?;

    // A group holds distinct listings that cannot affect each other's rows, so reading all of
    // their state first gives each the state it would see alone. A listing that cascades into
    // others, and a second request for a listing, start a new group.
    let mut outcomes: Vec<(usize, ReplaceOutcome)> = Vec::with_capacity(order.len());
    let mut group: Vec<(usize, ReplaceListing)> = Vec::new();
    for (index, request) in order {
        let split = group.last().is_some_and(|(_, last)| {
            last.key == request.key || cascades(&last.key) || cascades(&request.key)
        });
        if split {
            outcomes.extend(replace_group(&mut tx, std::mem::take(&mut group)).await?);
        }
        group.push((index, request));
    }
    outcomes.extend(replace_group(&mut tx, group).await?);
    tx.commit().await.map_err(db_err("commit listings"))?;
    outcomes.sort_by_key(|(index, _)| *index);
    Ok(outcomes.into_iter().map(|(_, outcome)| outcome).collect())
}

pub(crate) async fn replace_listing(
    pool: &Pool<Db>,
    request: ReplaceListing,
) -> Result<ReplaceOutcome, StoreError> {
    let mut outcomes = replace_listings(pool, vec![request]).await?;
    outcomes.pop().ok_or(StoreError::Database {
        action: "replace a listing",
        message: "no outcome was produced".to_owned(),
    })
}

/// One listing of a group, prepared for the diff.
struct Prepared {
    index: usize,
    request: ReplaceListing,
    observed: listing::Observed,
    scope: Scope,
    listing: String,
}

/// Replaces a group of distinct listings (see [`replace_listings`]), reading their state with
/// one query per kind and writing with multi-row statements.
async fn replace_group(
    tx: &mut Tx,
    group: Vec<(usize, ReplaceListing)>,
) -> Result<Vec<(usize, ReplaceOutcome)>, StoreError> {
    if group.is_empty() {
        return Ok(Vec::new());
    }
    let mut prepared = Vec::with_capacity(group.len());
    for (index, mut request) in group {
        request.observed_at = micros(request.observed_at);
        prepared.push(Prepared {
            index,
            observed: listing::observe(&request)?,
            scope: listing::scope_of(&request.key),
            listing: request.key.to_string(),
            request,
        });
    }
    let listings: Vec<String> = prepared.iter().map(|p| p.listing.clone()).collect();
    let (seen, failed) = seen_listings(tx, &listings).await?;
    let scopes: Vec<&Scope> = prepared.iter().map(|p| &p.scope).collect();
    let mut stored_rows = load_rows_batch(tx, &scopes).await?;
    let account_ids: BTreeSet<String> = prepared
        .iter()
        .flat_map(|p| p.observed.accounts.iter())
        .map(|a| a.account_id.to_string())
        .collect();
    let mut accounts = load_accounts(tx, &account_ids).await?;

    let mut account_writes: BTreeMap<String, &Account> = BTreeMap::new();
    let mut upserts = Vec::new();
    let mut deletes = Vec::new();
    let mut audit = Vec::new();
    let mut fresh = Vec::new();
    let mut outcomes = Vec::with_capacity(prepared.len());
    for p in &prepared {
        let request = &p.request;
        let stored = stored_rows
            .remove(&(p.scope.spec.table, ident_of(&p.scope).1))
            .unwrap_or_default();
        let baseline = !seen.contains(&p.listing) && !request.baseline_is_drift;
        let diff = listing::diff(request, &stored, &p.observed.rows, baseline)?;

        if let Some(held) = held_change(request, &diff, &stored) {
            audit.push(held_entry(p, held));
            outcomes.push((
                p.index,
                ReplaceOutcome {
                    rows_written: 1,
                    held: Some(held),
                    ..ReplaceOutcome::default()
                },
            ));
            continue;
        }

        // Accounts are compared with what the listings before this one left, so each listing
        // counts the profiles it changed, as it would alone.
        let mut accounts_written = 0;
        for account in &p.observed.accounts {
            let id = account.account_id.to_string();
            let values = listing::account_values(account, accounts.get(&id));
            if accounts.get(&id) != Some(&values) {
                accounts_written += 1;
                accounts.insert(id.clone(), values);
                account_writes.insert(id, account);
            }
        }
        let row = |key: &String, values: Vec<ColVal>| RowWrite {
            spec: p.scope.spec,
            scope: p.scope.values.clone(),
            key: key.clone(),
            values,
        };
        upserts.extend(diff.upserts.iter().map(|(k, v)| row(k, v.clone())));
        deletes.extend(diff.deletes.iter().map(|k| row(k, Vec::new())));
        // A change an event shows the connector's own account made is applied but is not
        // drift; any other change is, with the event that explains it when there is one.
        let mut drift_events = diff.drift;
        drift_events.retain(|event| {
            crate::domain::pick_attribution(&event.key, &request.attribution)
                .is_none_or(|a| !a.own)
        });
        audit.extend(drift_events.iter().map(|event| {
            let by = crate::domain::pick_attribution(&event.key, &request.attribution);
            drift_entry(&p.listing, event, by)
        }));
        // A partial listing was not read whole: its freshness (and any failure) stays.
        if !request.partial {
            fresh.push(FreshRow {
                listing: p.listing.clone(),
                workspace: request.key.workspace().to_string(),
                read_at: request.observed_at,
                cost: to_i64("listing cost", request.cost_requests)?,
                items: to_i64("listing size", p.observed.rows.len() as u64)?,
                run: request.run.map(|r| r.0),
            });
        }
        let deleted = diff.deletes.len() as u64;
        let drift = drift_events.len() as u64;
        outcomes.push((
            p.index,
            ReplaceOutcome {
                inserted: diff.inserted,
                updated: diff.updated,
                deleted,
                cascaded: 0,
                accounts_written,
                baseline,
                drift: drift_events,
                rows_written: diff.inserted + diff.updated + deleted + accounts_written + drift,
                held: None,
            },
        ));
    }

    let accounts: Vec<&Account> = account_writes.into_values().collect();
    write_accounts(tx, &accounts).await?;
    upsert_rows_batch(tx, &upserts).await?;
    delete_rows_batch(tx, &deletes).await?;
    // Only a listing that cascades deletes anything of another, and it is alone in its group.
    for (index, outcome) in &mut outcomes {
        let Some(p) = prepared.iter().find(|p| p.index == *index) else {
            continue;
        };
        if outcome.held.is_none() && cascades(&p.request.key) {
            let deleted: Vec<String> = deletes.iter().map(|d| d.key.clone()).collect();
            outcome.cascaded = cascade(tx, &p.request.key, &deleted).await?;
            outcome.rows_written += outcome.cascaded;
        }
    }
    insert_audit(tx, &audit).await?;
    mark_fresh_batch(tx, &fresh).await?;
    // A complete read settles any earlier failure of the listing.
    let settled: Vec<String> = fresh
        .into_iter()
        .map(|f| f.listing)
        .filter(|listing| failed.contains(listing))
        .collect();
    delete_keys(tx, "listing_failures", &[], &[], "listing", &settled).await?;
    Ok(outcomes)
}

/// The change the request's guard holds back, if any.
fn held_change(request: &ReplaceListing, diff: &listing::Diff, stored: &Rows) -> Option<HeldChange> {
    let guard = request.guard?;
    let held = HeldChange {
        would_remove: diff.deletes.len() as u64,
        stored: stored.len() as u64,
    };
    guard.holds(held.would_remove, held.stored).then_some(held)
}

fn held_entry(p: &Prepared, held: HeldChange) -> NewAuditEntry {
    let guard = p.request.guard.unwrap_or_default();
    NewAuditEntry {
        at: p.request.observed_at,
        actor: "sync".to_owned(),
        kind: AuditKind::HeldChange,
        subject: format!("listing {}", p.listing),
        before: None,
        after: None,
        details: serde_json::json!({
            "listing": p.listing,
            "would_remove": held.would_remove,
            "stored": held.stored,
            "observed": p.observed.rows.len(),
            "max_percent": guard.max_percent,
            "min_count": guard.min_count,
        }),
    }
}

fn drift_entry(
    listing: &str,
    event: &DriftEvent,
    by: Option<&crate::domain::Attribution>,
) -> NewAuditEntry {
    let mut details = serde_json::json!({
        "listing": listing,
        "entity": event.kind.as_str(),
        "key": event.key,
    });
    if let Some(by) = by {
        details["attribution"] = serde_json::json!(by);
    }
    NewAuditEntry {
        at: event.observed_at,
        actor: "bitbucket".to_owned(),
        kind: AuditKind::Drift,
        subject: format!("{} {}", event.kind, event.key),
        before: event.before.clone(),
        after: event.after.clone(),
        details,
    }
}
