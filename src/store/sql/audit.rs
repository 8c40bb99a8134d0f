// The append-only audit log.
// Included by `sql.rs`; see there for the names in scope.

async fn insert_audit(tx: &mut Tx, entries: &[NewAuditEntry]) -> Result<Vec<AuditId>, StoreError> {
    let mut ids = Vec::with_capacity(entries.len());
    for chunk in entries.chunks(CHUNK) {
        let mut qb = QueryBuilder::<Db>::new(
            "INSERT INTO audit_log (occurred_at, actor, kind, subject, before_value, after_value, details) ",
        );
        qb.push_values(chunk, |mut b, e| {
            b.push_bind(micros(e.at))
                .push_bind(e.actor.clone())
                .push_bind(e.kind.as_str())
                .push_bind(e.subject.clone())
                .push_bind(e.before.as_ref().map(json_text))
                .push_bind(e.after.as_ref().map(json_text))
                .push_bind(json_text(&e.details));
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

pub(crate) async fn list_audit(
    pool: &Pool<Db>,
    filter: &AuditFilter,
) -> Result<Vec<AuditEntry>, StoreError> {
    let mut qb = QueryBuilder::<Db>::new(
        "SELECT id, occurred_at, actor, kind, subject, before_value, after_value, details \
         FROM audit_log WHERE 1 = 1",
    );
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
    rows.iter()
        .map(|row| {
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
        })
        .collect()
}
