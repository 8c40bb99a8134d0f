// The statements that read and write many listings at once: the stored rows and freshness of
// a batch of listings in one query per table, and their inserts, updates, deletes and
// freshness rows in multi-row statements. PostgreSQL pays a network round trip per statement,
// so a batch of 64 small permission listings costs about ten statements instead of several
// hundred. Included by `sql.rs`; see there for the names in scope.

/// Whether a statement whose text depends on how many rows it carries is kept prepared by the
/// connection. On PostgreSQL a kept statement saves a round trip each time a batch of the same
/// size comes again. SQLite keeps each prepared statement in the connection's memory, and a
/// statement of hundreds of rows is a large program: a cache full of them (one per size, per
/// connection) raised a first sync's peak memory by about ten MiB, while preparing one again
/// costs no round trip.
const KEEP_BATCH_STATEMENTS: bool = !matches!(<Db as sqlx::Database>::NAME.as_bytes(), b"SQLite");

/// The columns and values that pick out one listing's rows in its table: the scope columns,
/// or for the workspace listing (which has none) its single key.
fn ident_of(scope: &Scope) -> (Vec<&'static str>, Vec<String>) {
    match &scope.only_key {
        Some(key) => (vec![scope.spec.key_col], vec![key.clone()]),
        None => (scope.spec.scope_cols.to_vec(), scope.values.clone()),
    }
}

/// Appends ` (c1, c2) IN ((v, v), (v, v))`: a row-value list both backends accept.
fn push_tuple_in(qb: &mut QueryBuilder<'static, Db>, cols: &[&str], tuples: &[Vec<String>]) {
    qb.push(" (").push(cols.join(", ")).push(") IN (");
    for (i, tuple) in tuples.iter().enumerate() {
        qb.push(if i == 0 { "(" } else { ", (" });
        let mut values = qb.separated(", ");
        for value in tuple {
            values.push_bind(value.clone());
        }
        qb.push(")");
    }
    qb.push(")");
}

/// Which of `listings` have a freshness row (were read completely before) and which have a
/// failed read on record, in one query per chunk.
async fn seen_listings(
    tx: &mut Tx,
    listings: &[String],
) -> Result<(BTreeSet<String>, BTreeSet<String>), StoreError> {
    let (mut seen, mut failed) = (BTreeSet::new(), BTreeSet::new());
    for chunk in listings.chunks(CHUNK / 2) {
        let mut qb = QueryBuilder::<Db>::new(
            "SELECT listing, 0 AS failed FROM listing_freshness WHERE listing IN (",
        );
        let mut list = qb.separated(", ");
        for listing in chunk {
            list.push_bind(listing.clone());
        }
        qb.push(") UNION ALL SELECT listing, 1 AS failed FROM listing_failures WHERE listing IN (");
        let mut list = qb.separated(", ");
        for listing in chunk {
            list.push_bind(listing.clone());
        }
        qb.push(")");
        let rows = qb
            .build()
            .persistent(KEEP_BATCH_STATEMENTS)
            .fetch_all(&mut **tx)
            .await
            .map_err(db_err("read listing freshness"))?;
        for row in rows {
            let decode = db_err("decode listing freshness");
            let listing: String = row.try_get(0).map_err(&decode)?;
            let is_failure: i32 = row.try_get(1).map_err(&decode)?;
            if is_failure == 0 {
                seen.insert(listing);
            } else {
                failed.insert(listing);
            }
        }
    }
    Ok((seen, failed))
}

/// Stored rows keyed by table and by the ident values of each listing (see [`ident_of`]).
type RowsByListing = BTreeMap<(&'static str, Vec<String>), Rows>;

/// The stored rows of several listings, with one query per table (and chunk).
async fn load_rows_batch(tx: &mut Tx, scopes: &[&Scope]) -> Result<RowsByListing, StoreError> {
    let mut by_table: BTreeMap<&'static str, Vec<&Scope>> = BTreeMap::new();
    for scope in scopes {
        by_table.entry(scope.spec.table).or_default().push(scope);
    }
    let mut out = RowsByListing::new();
    for (table, scopes) in by_table {
        let spec = scopes[0].spec;
        let (cols, _) = ident_of(scopes[0]);
        for chunk in scopes.chunks(CHUNK / cols.len()) {
            let idents: Vec<Vec<String>> = chunk.iter().map(|s| ident_of(s).1).collect();
            for ident in &idents {
                out.entry((table, ident.clone())).or_default();
            }
            let mut qb = QueryBuilder::<Db>::new("SELECT ");
            qb.push(cols.join(", ")).push(", ").push(spec.key_col);
            for (col, _) in spec.value_cols {
                qb.push(", ").push(*col);
            }
            qb.push(" FROM ").push(table).push(" WHERE");
            push_tuple_in(&mut qb, &cols, &idents);
            let rows = qb
                .build()
                .persistent(KEEP_BATCH_STATEMENTS)
                .fetch_all(&mut **tx)
                .await
                .map_err(db_err("read the stored facts of a listing"))?;
            let n = cols.len();
            for row in rows {
                let decode = db_err("decode a stored fact");
                let mut ident = Vec::with_capacity(n);
                for i in 0..n {
                    ident.push(row.try_get::<String, _>(i).map_err(&decode)?);
                }
                let key: String = row.try_get(n).map_err(&decode)?;
                let mut values = Vec::with_capacity(spec.value_cols.len());
                for (i, (_, kind)) in spec.value_cols.iter().enumerate() {
                    values.push(match kind {
                        ColKind::Text => ColVal::Text(row.try_get(n + 1 + i).map_err(&decode)?),
                        ColKind::Bool => ColVal::Bool(row.try_get(n + 1 + i).map_err(&decode)?),
                    });
                }
                out.entry((table, ident)).or_default().insert(key, values);
            }
        }
    }
    Ok(out)
}

/// One fact row to write or delete: its table, scope values, item key and value columns.
struct RowWrite {
    spec: &'static TableSpec,
    scope: Vec<String>,
    key: String,
    values: Vec<ColVal>,
}

fn by_table(rows: &[RowWrite]) -> BTreeMap<&'static str, Vec<&RowWrite>> {
    let mut out: BTreeMap<&'static str, Vec<&RowWrite>> = BTreeMap::new();
    for row in rows {
        out.entry(row.spec.table).or_default().push(row);
    }
    out
}

/// Inserts or updates rows of any tables, one multi-row statement per table and chunk.
async fn upsert_rows_batch(tx: &mut Tx, rows: &[RowWrite]) -> Result<(), StoreError> {
    for (table, rows) in by_table(rows) {
        let spec = rows[0].spec;
        let mut conflict_cols: Vec<&str> = spec.scope_cols.to_vec();
        conflict_cols.push(spec.key_col);
        // Each row binds its scope, key and values; keep a statement under the parameter limits.
        let per_row = conflict_cols.len() + spec.value_cols.len();
        for chunk in rows.chunks((CHUNK * 4 / per_row).max(1)) {
            let mut qb = QueryBuilder::<Db>::new("INSERT INTO ");
            qb.push(table).push(" (").push(conflict_cols.join(", "));
            for (col, _) in spec.value_cols {
                qb.push(", ").push(*col);
            }
            qb.push(") ");
            qb.push_values(chunk, |mut b, row| {
                for value in &row.scope {
                    b.push_bind(value.clone());
                }
                b.push_bind(row.key.clone());
                for value in &row.values {
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
                .persistent(KEEP_BATCH_STATEMENTS)
                .execute(&mut **tx)
                .await
                .map_err(db_err("write the facts of a listing"))?;
        }
    }
    Ok(())
}

/// Deletes the rows of `table` whose `cols` hold one of `tuples`, one statement per chunk.
/// Returns the rows removed.
async fn delete_tuples(
    tx: &mut Tx,
    table: &str,
    cols: &[&str],
    tuples: &[Vec<String>],
) -> Result<u64, StoreError> {
    let mut affected = 0;
    for chunk in tuples.chunks((CHUNK / cols.len().max(1)).max(1)) {
        let mut qb = QueryBuilder::<Db>::new("DELETE FROM ");
        qb.push(table).push(" WHERE");
        push_tuple_in(&mut qb, cols, chunk);
        affected += qb
            .build()
            .persistent(KEEP_BATCH_STATEMENTS)
            .execute(&mut **tx)
            .await
            .map_err(db_err("delete facts of a listing"))?
            .rows_affected();
    }
    Ok(affected)
}

/// Deletes fact rows of any tables by scope and key, one statement per table and chunk.
/// Returns the rows removed.
async fn delete_rows_batch(tx: &mut Tx, rows: &[RowWrite]) -> Result<u64, StoreError> {
    let mut affected = 0;
    for (table, rows) in by_table(rows) {
        let spec = rows[0].spec;
        let mut cols: Vec<&str> = spec.scope_cols.to_vec();
        cols.push(spec.key_col);
        let tuples: Vec<Vec<String>> = rows
            .iter()
            .map(|row| {
                let mut tuple = row.scope.clone();
                tuple.push(row.key.clone());
                tuple
            })
            .collect();
        affected += delete_tuples(tx, table, &cols, &tuples).await?;
    }
    Ok(affected)
}

/// One listing's new freshness row.
struct FreshRow {
    listing: String,
    workspace: String,
    read_at: DateTime<Utc>,
    cost: i64,
    items: i64,
    run: Option<i64>,
}

/// Marks listings fresh (clearing their resume cursors) in one statement per chunk. The
/// listings must be distinct: one statement cannot update a row twice.
async fn mark_fresh_batch(tx: &mut Tx, rows: &[FreshRow]) -> Result<(), StoreError> {
    for chunk in rows.chunks(CHUNK / 6) {
        let mut qb = QueryBuilder::<Db>::new(
            "INSERT INTO listing_freshness \
             (listing, workspace, read_at, cost_requests, item_count, resume_cursor, last_run_id) ",
        );
        qb.push_values(chunk, |mut b, row| {
            b.push_bind(row.listing.clone())
                .push_bind(row.workspace.clone())
                .push_bind(row.read_at)
                .push_bind(row.cost)
                .push_bind(row.items)
                .push_bind(None::<String>)
                .push_bind(row.run);
        });
        qb.push(
            " ON CONFLICT (listing) DO UPDATE SET read_at = excluded.read_at, \
             cost_requests = excluded.cost_requests, item_count = excluded.item_count, \
             resume_cursor = NULL, last_run_id = excluded.last_run_id",
        );
        qb.build()
            .persistent(KEEP_BATCH_STATEMENTS)
            .execute(&mut **tx)
            .await
            .map_err(db_err("mark a listing fresh"))?;
    }
    Ok(())
}
