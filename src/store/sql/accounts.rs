// Accounts (upserted from the profiles facts carry) and identity matches.
// Included by `sql.rs`; see there for the names in scope.

/// The stored values of the given accounts (those that exist), in one query per chunk.
async fn load_accounts(
    tx: &mut Tx,
    ids: &BTreeSet<String>,
) -> Result<BTreeMap<String, Vec<ColVal>>, StoreError> {
    let ids: Vec<&String> = ids.iter().collect();
    let mut stored: BTreeMap<String, Vec<ColVal>> = BTreeMap::new();
    for chunk in ids.chunks(CHUNK) {
        let mut qb = QueryBuilder::<Db>::new(
            "SELECT account_id, uuid, display_name, nickname, kind FROM accounts \
             WHERE account_id IN (",
        );
        let mut list = qb.separated(", ");
        for id in chunk {
            list.push_bind((*id).clone());
        }
        qb.push(")");
        let rows = qb
            .build()
            .fetch_all(&mut **tx)
            .await
            .map_err(db_err("read accounts"))?;
        for row in rows {
            let decode = db_err("decode an account");
            let id: String = row.try_get(0).map_err(&decode)?;
            let display_name: String = row.try_get(2).map_err(&decode)?;
            stored.insert(
                id,
                vec![
                    ColVal::Text(row.try_get(1).map_err(&decode)?),
                    ColVal::Text(Some(display_name)),
                    ColVal::Text(row.try_get(3).map_err(&decode)?),
                    ColVal::Text(row.try_get(4).map_err(&decode)?),
                ],
            );
        }
    }
    debug_assert!(listing::ACCOUNT_COLS.len() == 4);
    Ok(stored)
}

/// Inserts or updates accounts, one multi-row statement per chunk. The accounts must be
/// distinct: one statement cannot update a row twice. An `unknown` kind (a listing that does
/// not carry the type) keeps the kind already stored.
async fn write_accounts(tx: &mut Tx, accounts: &[&Account]) -> Result<(), StoreError> {
    for chunk in accounts.chunks(CHUNK) {
        let mut qb = QueryBuilder::<Db>::new(
            "INSERT INTO accounts (account_id, uuid, display_name, nickname, kind) ",
        );
        qb.push_values(chunk, |mut b, account| {
            b.push_bind(account.account_id.to_string())
                .push_bind(account.uuid.clone())
                .push_bind(account.display_name.clone())
                .push_bind(account.nickname.clone())
                .push_bind(account.kind.as_str());
        });
        qb.push(
            " ON CONFLICT (account_id) DO UPDATE SET uuid = excluded.uuid, \
             display_name = excluded.display_name, nickname = excluded.nickname, \
             kind = CASE WHEN excluded.kind = 'unknown' THEN accounts.kind ELSE excluded.kind END",
        );
        qb.build()
            .execute(&mut **tx)
            .await
            .map_err(db_err("write accounts"))?;
    }
    Ok(())
}

fn account_from_row(row: &<Db as sqlx::Database>::Row) -> Result<Account, StoreError> {
    let decode = db_err("decode an account");
    Ok(Account {
        account_id: account_id(row.try_get(0).map_err(&decode)?)?,
        uuid: row.try_get(1).map_err(&decode)?,
        display_name: row.try_get(2).map_err(&decode)?,
        nickname: row.try_get(3).map_err(&decode)?,
        kind: crate::domain::AccountKind::parse(
            row.try_get::<Option<String>, _>(4)
                .map_err(&decode)?
                .as_deref(),
        ),
    })
}

pub(crate) async fn accounts(pool: &Pool<Db>) -> Result<Vec<Account>, StoreError> {
    let rows = sqlx::query(
        "SELECT account_id, uuid, display_name, nickname, kind FROM accounts ORDER BY account_id",
    )
    .fetch_all(pool)
    .await
    .map_err(db_err("read accounts"))?;
    rows.iter().map(account_from_row).collect()
}

pub(crate) async fn account(
    pool: &Pool<Db>,
    id: &AccountId,
) -> Result<Option<Account>, StoreError> {
    let row = sqlx::query(
        "SELECT account_id, uuid, display_name, nickname, kind FROM accounts WHERE account_id = $1",
    )
    .bind(id.to_string())
    .fetch_optional(pool)
    .await
    .map_err(db_err("read an account"))?;
    row.as_ref().map(account_from_row).transpose()
}

pub(crate) async fn account_by_email(
    pool: &Pool<Db>,
    email: &str,
) -> Result<Option<Account>, StoreError> {
    let row = sqlx::query(
        "SELECT a.account_id, a.uuid, a.display_name, a.nickname, a.kind FROM accounts a \
         JOIN identities i ON i.account_id = a.account_id \
         WHERE lower(i.email) = lower($1) ORDER BY a.account_id LIMIT 1",
    )
    .bind(email.to_owned())
    .fetch_optional(pool)
    .await
    .map_err(db_err("look up an account by email"))?;
    row.as_ref().map(account_from_row).transpose()
}

const IDENTITY_COLS: &str =
    "account_id, email, source, matched_at, active, account_type, conflicts";

fn conflicts_text(identity: &Identity) -> Result<String, StoreError> {
    serde_json::to_string(&identity.conflicts)
        .map_err(|e| corrupt("identity conflicts")(e.to_string()))
}

/// Writes identities (insert or replace by account) and the audit entries of their changes in
/// one transaction, so a change is never recorded without its identity or lost without its
/// entry.
pub(crate) async fn replace_identities(
    pool: &Pool<Db>,
    identities: &[Identity],
    changes: &[NewAuditEntry],
) -> Result<(), StoreError> {
    let mut tx = pool
        .begin_with(BEGIN_WRITE)
        .await
        .map_err(db_err("begin a transaction"))?;
    for chunk in identities.chunks(CHUNK / 2) {
        let mut rows = Vec::with_capacity(chunk.len());
        for identity in chunk {
            rows.push((identity, conflicts_text(identity)?));
        }
        let mut qb = QueryBuilder::<Db>::new(format!("INSERT INTO identities ({IDENTITY_COLS}) "));
        qb.push_values(rows, |mut b, (identity, conflicts)| {
            b.push_bind(identity.account_id.to_string())
                .push_bind(identity.email.clone())
                .push_bind(identity.source.as_str())
                .push_bind(micros(identity.matched_at))
                .push_bind(identity.active)
                .push_bind(identity.account_type.as_str())
                .push_bind(conflicts);
        });
        qb.push(
            " ON CONFLICT (account_id) DO UPDATE SET email = excluded.email, \
             source = excluded.source, matched_at = excluded.matched_at, \
             active = excluded.active, account_type = excluded.account_type, \
             conflicts = excluded.conflicts",
        );
        qb.build()
            .execute(&mut *tx)
            .await
            .map_err(db_err("write identities"))?;
    }
    if !changes.is_empty() {
        insert_audit(&mut tx, changes).await?;
    }
    tx.commit().await.map_err(db_err("commit identities"))?;
    Ok(())
}

pub(crate) async fn upsert_identity(
    pool: &Pool<Db>,
    identity: &Identity,
) -> Result<(), StoreError> {
    replace_identities(pool, std::slice::from_ref(identity), &[]).await
}

pub(crate) async fn identities(pool: &Pool<Db>) -> Result<Vec<Identity>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {IDENTITY_COLS} FROM identities ORDER BY account_id"
    ))
    .fetch_all(pool)
    .await
    .map_err(db_err("read identities"))?;
    rows.iter()
        .map(|row| {
            let decode = db_err("decode an identity");
            let source: String = row.try_get(2).map_err(&decode)?;
            let account_type: String = row.try_get(5).map_err(&decode)?;
            let conflicts: String = row.try_get(6).map_err(&decode)?;
            Ok(Identity {
                account_id: account_id(row.try_get(0).map_err(&decode)?)?,
                email: row.try_get(1).map_err(&decode)?,
                source: IdentitySource::parse(&source)
                    .ok_or_else(|| corrupt("identity source")(format!("{source:?}")))?,
                matched_at: row.try_get(3).map_err(&decode)?,
                active: row.try_get(4).map_err(&decode)?,
                account_type: AccountType::parse(&account_type),
                conflicts: serde_json::from_str(&conflicts)
                    .map_err(|e| corrupt("identity conflicts")(e.to_string()))?,
            })
        })
        .collect()
}

pub(crate) async fn record_identity_refresh(
    pool: &Pool<Db>,
    refresh: &IdentityRefresh,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO identity_refreshes (at, jira_read, message, requests) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(micros(refresh.at))
    .bind(refresh.jira_read)
    .bind(refresh.message.clone())
    .bind(to_i64("identity refresh requests", refresh.requests)?)
    .execute(pool)
    .await
    .map_err(db_err("record an identity refresh"))?;
    Ok(())
}

pub(crate) async fn last_identity_refresh(
    pool: &Pool<Db>,
) -> Result<Option<IdentityRefresh>, StoreError> {
    let row = sqlx::query(
        "SELECT at, jira_read, message, requests FROM identity_refreshes \
         ORDER BY id DESC LIMIT 1",
    )
    .fetch_optional(pool)
    .await
    .map_err(db_err("read the last identity refresh"))?;
    row.map(|row| {
        let decode = db_err("decode an identity refresh");
        Ok(IdentityRefresh {
            at: row.try_get(0).map_err(&decode)?,
            jira_read: row.try_get(1).map_err(&decode)?,
            message: row.try_get(2).map_err(&decode)?,
            requests: to_u64(row.try_get(3).map_err(&decode)?),
        })
    })
    .transpose()
}
