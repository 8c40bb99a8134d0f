// The append-only, hash-chained audit log.
// Included by `sql.rs`; see there for the names in scope.

/// The key of the advisory lock that serialises appends on PostgreSQL, so that two
/// transactions never chain onto the same tail (SQLite's `BEGIN IMMEDIATE` already does).
const AUDIT_CHAIN_LOCK_KEY: &str = "audit_log_chain";

/// The hash of the last entry, or the genesis value when the log is empty or its last entry was
/// written before the chain began. Call it holding the chain lock.
async fn chain_tail(tx: &mut Tx) -> Result<String, StoreError> {
    if let Some(lock) = LOCK_LISTING {
        sqlx::query(lock)
            .bind(AUDIT_CHAIN_LOCK_KEY)
            .execute(&mut **tx)
            .await
            .map_err(db_err("lock the audit log's tail"))?;
    }
    let tail: Option<Option<String>> =
        sqlx::query_scalar("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1")
            .fetch_optional(&mut **tx)
            .await
            .map_err(db_err("read the audit log's tail"))?;
    Ok(tail.flatten().unwrap_or_else(|| chain::GENESIS.to_owned()))
}

/// Appends entries in order, each chained to the one before it. Every writer of the audit log
/// goes through here, inside its own write transaction.
async fn insert_audit(tx: &mut Tx, entries: &[NewAuditEntry]) -> Result<Vec<AuditId>, StoreError> {
    let mut ids = Vec::with_capacity(entries.len());
    if entries.is_empty() {
        return Ok(ids);
    }
    let mut prev = chain_tail(tx).await?;
    for chunk in entries.chunks(CHUNK) {
        let mut links = Vec::with_capacity(chunk.len());
        for e in chunk {
            let stored = NewAuditEntry {
                at: micros(e.at),
                ..e.clone()
            };
            let hash = chain::entry_hash(&stored, &prev);
            links.push((prev, hash.clone()));
            prev = hash;
        }
        let mut qb = QueryBuilder::<Db>::new(
            "INSERT INTO audit_log (occurred_at, actor, kind, subject, before_value, after_value, details, prev_hash, hash) ",
        );
        qb.push_values(chunk.iter().zip(links), |mut b, (e, (prev_hash, hash))| {
            b.push_bind(micros(e.at))
                .push_bind(e.actor.clone())
                .push_bind(e.kind.as_str())
                .push_bind(e.subject.clone())
                .push_bind(e.before.as_ref().map(json_text))
                .push_bind(e.after.as_ref().map(json_text))
                .push_bind(json_text(&e.details))
                .push_bind(prev_hash)
                .push_bind(hash);
        });
        qb.push(" RETURNING id");
        let rows = qb
            .build()
            .fetch_all(&mut **tx)
            .await
            .map_err(db_err("append to the audit log"))?;
        for row in rows {
            ids.push(AuditId(
                row.try_get(0).map_err(db_err("decode an audit id"))?,
            ));
        }
    }
    Ok(ids)
}

pub(crate) async fn append_audit(
    pool: &Pool<Db>,
    entry: &NewAuditEntry,
) -> Result<AuditId, StoreError> {
    let mut tx = pool
        .begin_with(BEGIN_WRITE)
        .await
        .map_err(db_err("begin a transaction"))?;
    let ids = insert_audit(&mut tx, std::slice::from_ref(entry)).await?;
    tx.commit().await.map_err(db_err("commit an audit entry"))?;
    ids.first().copied().ok_or(StoreError::Database {
        action: "append to the audit log",
        message: "the database returned no id".to_owned(),
    })
}

const AUDIT_COLS: &str =
    "id, occurred_at, actor, kind, subject, before_value, after_value, details, prev_hash, hash";

fn audit_entry_from_row(row: &<Db as sqlx::Database>::Row) -> Result<AuditEntry, StoreError> {
    let decode = db_err("decode an audit entry");
    let kind: String = row.try_get(3).map_err(&decode)?;
    let before: Option<String> = row.try_get(5).map_err(&decode)?;
    let after: Option<String> = row.try_get(6).map_err(&decode)?;
    let details: String = row.try_get(7).map_err(&decode)?;
    Ok(AuditEntry {
        id: AuditId(row.try_get(0).map_err(&decode)?),
        entry: NewAuditEntry {
            at: row.try_get(1).map_err(&decode)?,
            actor: row.try_get(2).map_err(&decode)?,
            kind: AuditKind::parse(&kind)?,
            subject: row.try_get(4).map_err(&decode)?,
            before: before
                .as_deref()
                .map(|t| parse_json("audit before", t))
                .transpose()?,
            after: after
                .as_deref()
                .map(|t| parse_json("audit after", t))
                .transpose()?,
            details: parse_json("audit details", &details)?,
        },
    })
}

pub(crate) async fn list_audit(
    pool: &Pool<Db>,
    filter: &AuditFilter,
) -> Result<Vec<AuditEntry>, StoreError> {
    let mut qb = QueryBuilder::<Db>::new(format!("SELECT {AUDIT_COLS} FROM audit_log WHERE 1 = 1"));
    if !filter.kinds.is_empty() {
        let kinds: BTreeSet<&str> = filter.kinds.iter().map(|k| k.as_str()).collect();
        qb.push(" AND kind IN (");
        let mut list = qb.separated(", ");
        for kind in kinds {
            list.push_bind(kind);
        }
        qb.push(")");
    }
    if let Some(since) = filter.since {
        qb.push(" AND occurred_at >= ").push_bind(micros(since));
    }
    if let Some(until) = filter.until {
        qb.push(" AND occurred_at < ").push_bind(micros(until));
    }
    qb.push(" ORDER BY id");
    if let Some(limit) = filter.limit {
        qb.push(" LIMIT ").push_bind(to_i64("audit limit", limit)?);
    }
    let rows = qb
        .build()
        .fetch_all(pool)
        .await
        .map_err(db_err("read the audit log"))?;
    rows.iter().map(audit_entry_from_row).collect()
}

/// Up to `limit` entries after `after` (from the first when `None`), by id, with their links.
pub(crate) async fn audit_chain(
    pool: &Pool<Db>,
    after: Option<AuditId>,
    limit: u64,
) -> Result<Vec<ChainedAuditEntry>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {AUDIT_COLS} FROM audit_log WHERE id > $1 ORDER BY id LIMIT $2"
    ))
    .bind(after.map_or(i64::MIN, |a| a.0))
    .bind(to_i64("audit chain page", limit)?)
    .fetch_all(pool)
    .await
    .map_err(db_err("read the audit log's chain"))?;
    rows.iter()
        .map(|row| {
            let decode = db_err("decode an audit entry's links");
            Ok(ChainedAuditEntry {
                entry: audit_entry_from_row(row)?,
                prev_hash: row.try_get(8).map_err(&decode)?,
                hash: row.try_get(9).map_err(&decode)?,
            })
        })
        .collect()
}
