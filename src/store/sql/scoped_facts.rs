// The facts behind one repository's or one account's effective access, without the rest of the
// workspace: the HTTP API answers one repository or one person per request, and loading the
// whole workspace for each (thousands of rows) made it slow. `crate::access` still computes the
// answer with the domain's rules; these only leave out facts that cannot change it.
// Included by `sql.rs`; see there for the names in scope.

/// A condition added to a fact query after `workspace = $1`.
enum Cond {
    /// Every row of the workspace.
    Any,
    /// `column = value`.
    Eq(&'static str, String),
    /// `column IN (values)`; an empty list picks nothing.
    In(&'static str, Vec<String>),
    /// Either condition (used for the repositories an account can reach without an explicit
    /// permission on them).
    Or(Box<Cond>, Box<Cond>),
    /// Public repositories.
    Public,
}

impl Cond {
    /// Appends ` AND <condition>` to the query.
    fn push(&self, qb: &mut QueryBuilder<'_, Db>) {
        if !matches!(self, Cond::Any) {
            qb.push(" AND ");
            self.push_bare(qb);
        }
    }

    fn push_bare(&self, qb: &mut QueryBuilder<'_, Db>) {
        match self {
            Cond::Any => {
                qb.push("1 = 1");
            }
            Cond::Eq(column, value) => {
                qb.push(format!("{column} = "));
                qb.push_bind(value.clone());
            }
            Cond::In(_, values) if values.is_empty() => {
                qb.push("1 = 0");
            }
            Cond::In(column, values) => {
                qb.push(format!("{column} IN ("));
                let mut list = qb.separated(", ");
                for value in values {
                    list.push_bind(value.clone());
                }
                qb.push(")");
            }
            Cond::Or(a, b) => {
                qb.push("(");
                a.push_bare(qb);
                qb.push(" OR ");
                b.push_bare(qb);
                qb.push(")");
            }
            Cond::Public => {
                qb.push("NOT is_private");
            }
        }
    }
}

/// The group slugs that the permissions name, each once.
fn named_groups<'a>(principals: impl Iterator<Item = &'a Principal>) -> Vec<String> {
    principals
        .filter_map(|p| match p {
            Principal::Group { slug } => Some(slug.to_string()),
            Principal::User { .. } => None,
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// The facts one repository's effective access rests on, `None` when it is not stored: the
/// repository, its user and group permissions, its project's, the members of the groups those
/// name, and the workspace members that matter (the owners; every member when it is public).
pub(crate) async fn repository_facts(
    pool: &Pool<Db>,
    workspace: &WorkspaceSlug,
    repo: &RepoSlug,
) -> Result<Option<WorkspaceFacts>, StoreError> {
    let repositories =
        repositories_where(pool, workspace, &Cond::Eq("repo_slug", repo.to_string())).await?;
    let Some(stored) = repositories.first() else {
        return Ok(None);
    };
    let this_repo = Cond::Eq("repo_slug", repo.to_string());
    let repository_permissions =
        repository_permissions_where(pool, workspace, &this_repo, &this_repo).await?;
    let project_permissions = match &stored.project {
        Some(key) => {
            let this_project = Cond::Eq("project_key", key.to_string());
            project_permissions_where(pool, workspace, &this_project, &this_project).await?
        }
        None => Vec::new(),
    };
    let groups = named_groups(
        repository_permissions
            .iter()
            .map(|p| &p.principal)
            .chain(project_permissions.iter().map(|p| &p.principal)),
    );
    let groups = group_members_where(pool, workspace, &Cond::In("group_slug", groups)).await?;
    // Members who are not owners reach a private repository only through the permissions above.
    let members = if stored.is_private {
        Cond::Eq("role", WorkspaceRole::Owner.as_str().to_owned())
    } else {
        Cond::Any
    };
    let members = workspace_members_where(pool, workspace, &members).await?;
    Ok(Some(WorkspaceFacts {
        members,
        repositories,
        groups,
        project_permissions,
        repository_permissions,
    }))
}

/// The facts one account's effective access in a workspace rests on: its membership, the
/// groups it is in (with it as their only member), its own and those groups' permissions, and
/// the repositories they reach through projects, by being public or (for an owner) at all.
pub(crate) async fn account_facts(
    pool: &Pool<Db>,
    workspace: &WorkspaceSlug,
    account: &AccountId,
) -> Result<WorkspaceFacts, StoreError> {
    let this_account = Cond::Eq("account_id", account.to_string());
    let members = workspace_members_where(pool, workspace, &this_account).await?;
    let groups = group_members_where(pool, workspace, &this_account).await?;
    let in_groups = Cond::In(
        "group_slug",
        groups.iter().map(|g| g.slug.to_string()).collect(),
    );
    let repository_permissions =
        repository_permissions_where(pool, workspace, &this_account, &in_groups).await?;
    let project_permissions =
        project_permissions_where(pool, workspace, &this_account, &in_groups).await?;
    let projects: BTreeSet<String> = project_permissions
        .iter()
        .map(|p| p.project.to_string())
        .collect();
    let via_projects = Cond::In("project_key", projects.into_iter().collect());
    let reachable = match members.first().map(|m| m.role) {
        Some(WorkspaceRole::Owner) => Cond::Any,
        Some(_) => Cond::Or(Box::new(Cond::Public), Box::new(via_projects)),
        None => via_projects,
    };
    let repositories = repositories_where(pool, workspace, &reachable).await?;
    Ok(WorkspaceFacts {
        members,
        repositories,
        groups,
        project_permissions,
        repository_permissions,
    })
}

/// The stored accounts among `ids`, each with the email its identity was matched to.
pub(crate) async fn accounts_with_emails(
    pool: &Pool<Db>,
    ids: &[AccountId],
) -> Result<Vec<(Account, Option<String>)>, StoreError> {
    let ids: Vec<String> = ids
        .iter()
        .map(ToString::to_string)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(CHUNK) {
        let mut qb = QueryBuilder::<Db>::new(
            "SELECT a.account_id, a.uuid, a.display_name, a.nickname, a.kind, i.email \
             FROM accounts a LEFT JOIN identities i ON i.account_id = a.account_id \
             WHERE a.account_id IN (",
        );
        let mut list = qb.separated(", ");
        for id in chunk {
            list.push_bind(id.clone());
        }
        qb.push(")");
        let rows = qb
            .build()
            .fetch_all(pool)
            .await
            .map_err(db_err("read accounts"))?;
        for row in &rows {
            let email: Option<String> = row.try_get(5).map_err(db_err("decode an account"))?;
            out.push((account_from_row(row)?, email));
        }
    }
    Ok(out)
}
