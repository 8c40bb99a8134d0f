// Idempotency keys of the HTTP API's grant creation (`grant_idempotency`).
// Included by `sql.rs`; see there for the names in scope.

pub(crate) async fn claim_idempotency_key(
    pool: &Pool<Db>,
    key: &IdempotencyKey,
    fingerprint: &str,
    now: DateTime<Utc>,
) -> Result<IdempotencyClaim, StoreError> {
    // The primary key decides between two concurrent first requests: one inserts, the other
    // reads what the first stored.
    let inserted = sqlx::query(
        "INSERT INTO grant_idempotency (requester, idem_key, fingerprint, created_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (requester, idem_key) DO NOTHING",
    )
    .bind(key.requester.clone())
    .bind(key.key.clone())
    .bind(fingerprint.to_owned())
    .bind(micros(now))
    .execute(pool)
    .await
    .map_err(db_err("record an idempotency key"))?
    .rows_affected()
        == 1;
    if inserted {
        return Ok(IdempotencyClaim::Claimed);
    }
    let row = sqlx::query(
        "SELECT fingerprint, grant_id FROM grant_idempotency WHERE requester = $1 AND idem_key = $2",
    )
    .bind(key.requester.clone())
    .bind(key.key.clone())
    .fetch_one(pool)
    .await
    .map_err(db_err("read an idempotency key"))?;
    let fingerprint: String = row.try_get("fingerprint").map_err(db_err("read an idempotency key"))?;
    let grant: Option<i64> = row.try_get("grant_id").map_err(db_err("read an idempotency key"))?;
    Ok(IdempotencyClaim::Seen {
        fingerprint,
        grant: grant.map(GrantId),
    })
}

pub(crate) async fn bind_idempotency_key(
    pool: &Pool<Db>,
    key: &IdempotencyKey,
    grant: GrantId,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE grant_idempotency SET grant_id = $1 WHERE requester = $2 AND idem_key = $3",
    )
    .bind(grant.0)
    .bind(key.requester.clone())
    .bind(key.key.clone())
    .execute(pool)
    .await
    .map_err(db_err("bind an idempotency key to its grant"))?;
    Ok(())
}

pub(crate) async fn release_idempotency_key(
    pool: &Pool<Db>,
    key: &IdempotencyKey,
) -> Result<(), StoreError> {
    sqlx::query(
        "DELETE FROM grant_idempotency WHERE requester = $1 AND idem_key = $2 AND grant_id IS NULL",
    )
    .bind(key.requester.clone())
    .bind(key.key.clone())
    .execute(pool)
    .await
    .map_err(db_err("release an idempotency key"))?;
    Ok(())
}
