// Replacing one complete listing: diff against the stored rows, write the difference, record
// drift, cascade deletions and mark the listing fresh, all inside the caller's transaction.
// Included by `sql.rs`; see there for the names in scope.

fn push_scope(qb: &mut QueryBuilder<'static, Db>, scope: &Scope) {
    qb.push(" WHERE 1 = 1");
    for (col, value) in scope.spec.scope_cols.iter().zip(&scope.values) {
        qb.push(" AND ")
            .push(*col)
            .push(" = ")
            .push_bind(value.clone());
    }
    if let Some(key) = &scope.only_key {
        qb.push(" AND ")
            .push(scope.spec.key_col)
            .push(" = ")
            .push_bind(key.clone());
    }
}

async fn load_rows(tx: &mut Tx, scope: &Scope) -> Result<Rows, StoreError> {
    let spec = scope.spec;
    let mut qb = QueryBuilder::<Db>::new("SELECT ");
    qb.push(spec.key_col);
    for (col, _) in spec.value_cols {
        qb.push(", ").push(*col);
    }
    qb.push(" FROM ").push(spec.table);
    push_scope(&mut qb, scope);
    let rows = qb
        .build()
        .fetch_all(&mut **tx)
        .await
        .map_err(db_err("read the stored facts of a listing"))?;
    let mut out = Rows::new();
    for row in rows {
        let decode = db_err("decode a stored fact");
        let key: String = row.try_get(0).map_err(&decode)?;
        let mut values = Vec::with_capacity(spec.value_cols.len());
        for (i, (_, kind)) in spec.value_cols.iter().enumerate() {
            values.push(match kind {
                ColKind::Text => ColVal::Text(row.try_get(i + 1).map_err(&decode)?),
                ColKind::Bool => ColVal::Bool(row.try_get(i + 1).map_err(&decode)?),
            });
        }
        out.insert(key, values);
    }
    Ok(out)
}

async fn upsert_rows(
    tx: &mut Tx,
    scope: &Scope,
    rows: &[(String, Vec<ColVal>)],
) -> Result<(), StoreError> {
    let spec = scope.spec;
    let mut conflict_cols: Vec<&str> = spec.scope_cols.to_vec();
    conflict_cols.push(spec.key_col);
    for chunk in rows.chunks(CHUNK) {
        let mut qb = QueryBuilder::<Db>::new("INSERT INTO ");
        qb.push(spec.table)
            .push(" (")
            .push(conflict_cols.join(", "));
        for (col, _) in spec.value_cols {
            qb.push(", ").push(*col);
        }
        qb.push(") ");
        qb.push_values(chunk, |mut b, (key, values)| {
            for value in &scope.values {
                b.push_bind(value.clone());
            }
            b.push_bind(key.clone());
            for value in values {
                match value {
                    ColVal::Text(text) => b.push_bind(text.clone()),
                    ColVal::Bool(flag) => b.push_bind(*flag),
                };
            }
        });
        qb.push(" ON CONFLICT (")
            .push(conflict_cols.join(", "))
            .push(")");
        if spec.value_cols.is_empty() {
            qb.push(" DO NOTHING");
        } else {
            let sets: Vec<String> = spec
                .value_cols
                .iter()
                .map(|(col, _)| format!("{col} = excluded.{col}"))
                .collect();
            qb.push(" DO UPDATE SET ").push(sets.join(", "));
        }
        qb.build()
            .execute(&mut **tx)
            .await
            .map_err(db_err("write the facts of a listing"))?;
    }
    Ok(())
}

/// Deletes rows of `table` whose `scope_cols` equal `scope_values` and whose `key_col` is in `keys`.
async fn delete_keys(
    tx: &mut Tx,
    table: &'static str,
    scope_cols: &[&'static str],
    scope_values: &[String],
    key_col: &'static str,
    keys: &[String],
) -> Result<u64, StoreError> {
    let mut affected = 0;
    for chunk in keys.chunks(CHUNK) {
        let mut qb = QueryBuilder::<Db>::new("DELETE FROM ");
        qb.push(table).push(" WHERE 1 = 1");
        for (col, value) in scope_cols.iter().zip(scope_values) {
            qb.push(" AND ")
                .push(*col)
                .push(" = ")
                .push_bind(value.clone());
        }
        qb.push(" AND ").push(key_col).push(" IN (");
        let mut list = qb.separated(", ");
        for key in chunk {
            list.push_bind(key.clone());
        }
        qb.push(")");
        affected += qb
            .build()
            .execute(&mut **tx)
            .await
            .map_err(db_err("delete facts of a listing"))?
            .rows_affected();
    }
    Ok(affected)
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

pub(crate) async fn replace_listings(
    pool: &Pool<Db>,
    requests: Vec<ReplaceListing>,
) -> Result<Vec<ReplaceOutcome>, StoreError> {
    // Process in key order so that concurrent batches take their listing locks in one order
    // and cannot deadlock on them; answer in the caller's order.
    let mut order: Vec<(usize, ReplaceListing)> = requests.into_iter().enumerate().collect();
    order.sort_by(|a, b| a.1.key.cmp(&b.1.key));
    let mut tx = pool
        .begin_with(BEGIN_WRITE)
        .await
        .map_err(db_err("begin a transaction"))?;
    let mut outcomes: Vec<(usize, ReplaceOutcome)> = Vec::with_capacity(order.len());
    for (index, request) in order {
        outcomes.push((index, replace_in_tx(&mut tx, request).await?));
    }
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

async fn replace_in_tx(
    tx: &mut Tx,
    mut request: ReplaceListing,
) -> Result<ReplaceOutcome, StoreError> {
    request.observed_at = micros(request.observed_at);
    let observed = listing::observe(&request)?;
    let scope = listing::scope_of(&request.key);
    let listing_text = request.key.to_string();
    let cost = to_i64("listing cost", request.cost_requests)?;
    let items = to_i64("listing size", observed.rows.len() as u64)?;

    if let Some(lock) = LOCK_LISTING {
        // Two replaces of the same listing must not both diff against the same old state, or
        // each would record the same drift.
        sqlx::query(lock)
            .bind(&listing_text)
            .execute(&mut **tx)
            .await
            .map_err(db_err("lock a listing"))?;
    }
    let seen_before = sqlx::query("SELECT listing FROM listing_freshness WHERE listing = $1")
        .bind(&listing_text)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_err("read listing freshness"))?
        .is_some();
    let stored = load_rows(tx, &scope).await?;
    let baseline = !seen_before && !request.baseline_is_drift;
    let diff = listing::diff(&request, &stored, &observed.rows, baseline)?;

    if let Some(guard) = request.guard {
        let held = HeldChange {
            would_remove: diff.deletes.len() as u64,
            stored: stored.len() as u64,
        };
        if guard.holds(held.would_remove, held.stored) {
            let entry = NewAuditEntry {
                at: request.observed_at,
                actor: "sync".to_owned(),
                kind: AuditKind::HeldChange,
                subject: format!("listing {listing_text}"),
                before: None,
                after: None,
                details: serde_json::json!({
                    "listing": listing_text,
                    "would_remove": held.would_remove,
                    "stored": held.stored,
                    "observed": observed.rows.len(),
                    "max_percent": guard.max_percent,
                    "min_count": guard.min_count,
                }),
            };
            insert_audit(tx, std::slice::from_ref(&entry)).await?;
            return Ok(ReplaceOutcome {
                rows_written: 1,
                held: Some(held),
                ..ReplaceOutcome::default()
            });
        }
    }

    let accounts_written = upsert_accounts(tx, &observed.accounts).await?;
    upsert_rows(tx, &scope, &diff.upserts).await?;
    let deleted = delete_keys(
        tx,
        scope.spec.table,
        scope.spec.scope_cols,
        &scope.values,
        scope.spec.key_col,
        &diff.deletes,
    )
    .await?;
    let cascaded = cascade(tx, &request.key, &diff.deletes).await?;

    let audit: Vec<NewAuditEntry> = diff
        .drift
        .iter()
        .map(|event| NewAuditEntry {
            at: event.observed_at,
            actor: "bitbucket".to_owned(),
            kind: AuditKind::Drift,
            subject: format!("{} {}", event.kind, event.key),
            before: event.before.clone(),
            after: event.after.clone(),
            details: serde_json::json!({
                "listing": listing_text,
                "entity": event.kind.as_str(),
                "key": event.key,
            }),
        })
        .collect();
    insert_audit(tx, &audit).await?;

    sqlx::query(
        "INSERT INTO listing_freshness \
         (listing, workspace, read_at, cost_requests, item_count, resume_cursor, last_run_id) \
         VALUES ($1, $2, $3, $4, $5, NULL, $6) \
         ON CONFLICT (listing) DO UPDATE SET read_at = excluded.read_at, \
         cost_requests = excluded.cost_requests, item_count = excluded.item_count, \
         resume_cursor = NULL, last_run_id = excluded.last_run_id",
    )
    .bind(&listing_text)
    .bind(request.key.workspace().to_string())
    .bind(request.observed_at)
    .bind(cost)
    .bind(items)
    .bind(request.run.map(|r| r.0))
    .execute(&mut **tx)
    .await
    .map_err(db_err("mark a listing fresh"))?;
    // A complete read settles any earlier failure of the listing.
    delete_keys(
        tx,
        "listing_failures",
        &[],
        &[],
        "listing",
        std::slice::from_ref(&listing_text),
    )
    .await?;

    let rows_written = diff.inserted
        + diff.updated
        + deleted
        + cascaded
        + accounts_written
        + diff.drift.len() as u64;
    Ok(ReplaceOutcome {
        inserted: diff.inserted,
        updated: diff.updated,
        deleted,
        cascaded,
        accounts_written,
        baseline,
        drift: diff.drift,
        rows_written,
        held: None,
    })
}
