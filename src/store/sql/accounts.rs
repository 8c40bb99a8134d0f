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
            "SELECT account_id, uuid, display_name, nickname FROM accounts WHERE account_id IN (",
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
                ],
            );
        }
    }
    debug_assert!(listing::ACCOUNT_COLS.len() == 3);
    Ok(stored)
}

/// Inserts or updates accounts, one multi-row statement per chunk. The accounts must be
/// distinct: one statement cannot update a row twice.
async fn write_accounts(tx: &mut Tx, accounts: &[&Account]) -> Result<(), StoreError> {
    for chunk in accounts.chunks(CHUNK) {
        let mut qb = QueryBuilder::<Db>::new(
            "INSERT INTO accounts (account_id, uuid, display_name, nickname) ",
        );
        qb.push_values(chunk, |mut b, account| {
            b.push_bind(account.account_id.to_string())
                .push_bind(account.uuid.clone())
                .push_bind(account.display_name.clone())
                .push_bind(account.nickname.clone());
        });
        qb.push(
            " ON CONFLICT (account_id) DO UPDATE SET uuid = excluded.uuid, \
             display_name = excluded.display_name, nickname = excluded.nickname",
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
    })
}

pub(crate) async fn accounts(pool: &Pool<Db>) -> Result<Vec<Account>, StoreError> {
    let rows = sqlx::query(
        "SELECT account_id, uuid, display_name, nickname FROM accounts ORDER BY account_id",
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
        "SELECT account_id, uuid, display_name, nickname FROM accounts WHERE account_id = $1",
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
        "SELECT a.account_id, a.uuid, a.display_name, a.nickname FROM accounts a \
         JOIN identities i ON i.account_id = a.account_id \
         WHERE lower(i.email) = lower($1) ORDER BY a.account_id LIMIT 1",
    )
    .bind(email.to_owned())
    .fetch_optional(pool)
    .await
    .map_err(db_err("look up an account by email"))?;
    row.as_ref().map(account_from_row).transpose()
}

pub(crate) async fn upsert_identity(
    pool: &Pool<Db>,
    identity: &Identity,
) -> Result<(), StoreError> {
    let conflicts = serde_json::to_string(&identity.conflicts)
        .map_err(|e| corrupt("identity conflicts")(e.to_string()))?;
    sqlx::query(
        "INSERT INTO identities (account_id, email, source, matched_at, conflicts) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (account_id) DO UPDATE SET \
         email = excluded.email, source = excluded.source, matched_at = excluded.matched_at, \
         conflicts = excluded.conflicts",
    )
    .bind(identity.account_id.to_string())
    .bind(identity.email.clone())
    .bind(identity.source.as_str())
    .bind(micros(identity.matched_at))
    .bind(conflicts)
    .execute(pool)
    .await
    .map_err(db_err("write an identity"))?;
    Ok(())
}

pub(crate) async fn identities(pool: &Pool<Db>) -> Result<Vec<Identity>, StoreError> {
    let rows = sqlx::query(
        "SELECT account_id, email, source, matched_at, conflicts FROM identities \
         ORDER BY account_id",
    )
    .fetch_all(pool)
    .await
    .map_err(db_err("read identities"))?;
    rows.iter()
        .map(|row| {
            let decode = db_err("decode an identity");
            let conflicts: String = row.try_get(4).map_err(&decode)?;
            let source: String = row.try_get(2).map_err(&decode)?;
            Ok(Identity {
                account_id: account_id(row.try_get(0).map_err(&decode)?)?,
                email: row.try_get(1).map_err(&decode)?,
                source: IdentitySource::parse(&source)
                    .ok_or_else(|| corrupt("identity source")(format!("{source:?}")))?,
                matched_at: row.try_get(3).map_err(&decode)?,
                conflicts: serde_json::from_str(&conflicts)
                    .map_err(|e| corrupt("identity conflicts")(e.to_string()))?,
            })
        })
        .collect()
}
