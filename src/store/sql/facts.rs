// Reading the stored facts: workspaces, projects, repositories, members, groups and explicit
// permissions. Included by `sql.rs`; see there for the names in scope.

pub(crate) async fn workspaces(pool: &Pool<Db>) -> Result<Vec<Workspace>, StoreError> {
    let rows = sqlx::query("SELECT slug, uuid, name, is_private FROM workspaces ORDER BY slug")
        .fetch_all(pool)
        .await
        .map_err(db_err("read workspaces"))?;
    rows.iter()
        .map(|row| {
            let decode = db_err("decode a workspace");
            Ok(Workspace {
                slug: ws_slug(row.try_get(0).map_err(&decode)?)?,
                uuid: row.try_get(1).map_err(&decode)?,
                name: row.try_get(2).map_err(&decode)?,
                is_private: row.try_get(3).map_err(&decode)?,
            })
        })
        .collect()
}

pub(crate) async fn projects(
    pool: &Pool<Db>,
    workspace: &WorkspaceSlug,
) -> Result<Vec<Project>, StoreError> {
    let rows = sqlx::query(
        "SELECT project_key, uuid, name, is_private FROM projects \
         WHERE workspace = $1 ORDER BY project_key",
    )
    .bind(workspace.to_string())
    .fetch_all(pool)
    .await
    .map_err(db_err("read projects"))?;
    rows.iter()
        .map(|row| {
            let decode = db_err("decode a project");
            Ok(Project {
                workspace: workspace.clone(),
                key: project_key(row.try_get(0).map_err(&decode)?)?,
                uuid: row.try_get(1).map_err(&decode)?,
                name: row.try_get(2).map_err(&decode)?,
                is_private: row.try_get(3).map_err(&decode)?,
            })
        })
        .collect()
}

pub(crate) async fn repositories(
    pool: &Pool<Db>,
    workspace: &WorkspaceSlug,
) -> Result<Vec<Repository>, StoreError> {
    repositories_where(pool, workspace, &Cond::Any).await
}

/// The repositories of a workspace that `cond` picks, by slug.
async fn repositories_where(
    pool: &Pool<Db>,
    workspace: &WorkspaceSlug,
    cond: &Cond,
) -> Result<Vec<Repository>, StoreError> {
    let mut qb = QueryBuilder::<Db>::new(
        "SELECT repo_slug, uuid, name, project_key, is_private FROM repositories \
         WHERE workspace = ",
    );
    qb.push_bind(workspace.to_string());
    cond.push(&mut qb);
    qb.push(" ORDER BY repo_slug");
    let rows = qb
        .build()
        .fetch_all(pool)
        .await
        .map_err(db_err("read repositories"))?;
    rows.iter()
        .map(|row| {
            let decode = db_err("decode a repository");
            let project: Option<String> = row.try_get(3).map_err(&decode)?;
            Ok(Repository {
                workspace: workspace.clone(),
                slug: repo_slug(row.try_get(0).map_err(&decode)?)?,
                uuid: row.try_get(1).map_err(&decode)?,
                name: row.try_get(2).map_err(&decode)?,
                project: project.map(project_key).transpose()?,
                is_private: row.try_get(4).map_err(&decode)?,
            })
        })
        .collect()
}

pub(crate) async fn workspace_members(
    pool: &Pool<Db>,
    workspace: &WorkspaceSlug,
) -> Result<Vec<WorkspaceMember>, StoreError> {
    workspace_members_where(pool, workspace, &Cond::Any).await
}

/// The members of a workspace that `cond` picks, by account id.
async fn workspace_members_where(
    pool: &Pool<Db>,
    workspace: &WorkspaceSlug,
    cond: &Cond,
) -> Result<Vec<WorkspaceMember>, StoreError> {
    let mut qb =
        QueryBuilder::<Db>::new("SELECT account_id, role FROM workspace_members WHERE workspace = ");
    qb.push_bind(workspace.to_string());
    cond.push(&mut qb);
    qb.push(" ORDER BY account_id");
    let rows = qb
        .build()
        .fetch_all(pool)
        .await
        .map_err(db_err("read workspace members"))?;
    rows.iter()
        .map(|row| {
            let decode = db_err("decode a workspace member");
            let role: String = row.try_get(1).map_err(&decode)?;
            Ok(WorkspaceMember {
                account_id: account_id(row.try_get(0).map_err(&decode)?)?,
                role: WorkspaceRole::parse(&role).map_err(|e| corrupt("role")(e.to_string()))?,
            })
        })
        .collect()
}

pub(crate) async fn groups(
    pool: &Pool<Db>,
    workspace: &WorkspaceSlug,
) -> Result<Vec<Group>, StoreError> {
    let rows = sqlx::query(
        "SELECT group_slug, name FROM workspace_groups WHERE workspace = $1 ORDER BY group_slug",
    )
    .bind(workspace.to_string())
    .fetch_all(pool)
    .await
    .map_err(db_err("read groups"))?;
    rows.iter()
        .map(|row| {
            let decode = db_err("decode a group");
            Ok(Group {
                workspace: workspace.clone(),
                slug: group_slug(row.try_get(0).map_err(&decode)?)?,
                name: row.try_get(1).map_err(&decode)?,
            })
        })
        .collect()
}

pub(crate) async fn group_members(
    pool: &Pool<Db>,
    workspace: &WorkspaceSlug,
) -> Result<Vec<GroupMembers>, StoreError> {
    group_members_where(pool, workspace, &Cond::Any).await
}

/// The memberships of a workspace's groups that `cond` picks, grouped by group.
async fn group_members_where(
    pool: &Pool<Db>,
    workspace: &WorkspaceSlug,
    cond: &Cond,
) -> Result<Vec<GroupMembers>, StoreError> {
    let mut qb = QueryBuilder::<Db>::new(
        "SELECT group_slug, account_id FROM group_members WHERE workspace = ",
    );
    qb.push_bind(workspace.to_string());
    cond.push(&mut qb);
    qb.push(" ORDER BY group_slug, account_id");
    let rows = qb
        .build()
        .fetch_all(pool)
        .await
        .map_err(db_err("read group members"))?;
    let mut out: Vec<GroupMembers> = Vec::new();
    for row in &rows {
        let decode = db_err("decode a group member");
        let slug = group_slug(row.try_get(0).map_err(&decode)?)?;
        let member = account_id(row.try_get(1).map_err(&decode)?)?;
        match out.last_mut() {
            Some(last) if last.slug == slug => last.members.push(member),
            _ => out.push(GroupMembers {
                slug,
                members: vec![member],
            }),
        }
    }
    Ok(out)
}

pub(crate) async fn project_permissions(
    pool: &Pool<Db>,
    workspace: &WorkspaceSlug,
) -> Result<Vec<ProjectPermission>, StoreError> {
    project_permissions_where(pool, workspace, &Cond::Any, &Cond::Any).await
}

/// The explicit project permissions of a workspace: the user rows `users` picks and the group
/// rows `groups` picks, sorted.
async fn project_permissions_where(
    pool: &Pool<Db>,
    workspace: &WorkspaceSlug,
    users: &Cond,
    groups: &Cond,
) -> Result<Vec<ProjectPermission>, StoreError> {
    let tables = PermissionTables {
        action: "read project permissions",
        key_col: "project_key",
        user_table: "project_user_permissions",
        group_table: "project_group_permissions",
    };
    let mut out = permission_rows(pool, workspace, &tables, users, groups)
        .await?
        .into_iter()
        .map(|(key, principal, level)| {
            Ok(ProjectPermission {
                project: project_key(key)?,
                principal,
                level: ProjectLevel::parse(&level)
                    .map_err(|e| corrupt("project level")(e.to_string()))?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    out.sort();
    Ok(out)
}

pub(crate) async fn repository_permissions(
    pool: &Pool<Db>,
    workspace: &WorkspaceSlug,
) -> Result<Vec<RepositoryPermission>, StoreError> {
    repository_permissions_where(pool, workspace, &Cond::Any, &Cond::Any).await
}

/// The explicit repository permissions of a workspace: the user rows `users` picks and the
/// group rows `groups` picks, sorted.
async fn repository_permissions_where(
    pool: &Pool<Db>,
    workspace: &WorkspaceSlug,
    users: &Cond,
    groups: &Cond,
) -> Result<Vec<RepositoryPermission>, StoreError> {
    let tables = PermissionTables {
        action: "read repository permissions",
        key_col: "repo_slug",
        user_table: "repository_user_permissions",
        group_table: "repository_group_permissions",
    };
    let mut out = permission_rows(pool, workspace, &tables, users, groups)
        .await?
        .into_iter()
        .map(|(key, principal, level)| {
            Ok(RepositoryPermission {
                repository: repo_slug(key)?,
                principal,
                level: RepoLevel::parse(&level)
                    .map_err(|e| corrupt("repository level")(e.to_string()))?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    out.sort();
    Ok(out)
}

/// The two tables of one kind of explicit permission (on projects or on repositories).
struct PermissionTables {
    /// What reading them is called in errors.
    action: &'static str,
    /// The column naming the project or repository.
    key_col: &'static str,
    user_table: &'static str,
    group_table: &'static str,
}

/// The user rows `users` picks and the group rows `groups` picks of one kind of explicit
/// permission in a workspace, as (project or repository key, principal, level text), in one
/// statement.
async fn permission_rows(
    pool: &Pool<Db>,
    workspace: &WorkspaceSlug,
    tables: &PermissionTables,
    users: &Cond,
    groups: &Cond,
) -> Result<Vec<(String, Principal, String)>, StoreError> {
    let PermissionTables {
        action,
        key_col,
        user_table,
        group_table,
    } = tables;
    let mut qb = QueryBuilder::<Db>::new(format!(
        "SELECT {key_col}, 'user' AS principal_kind, account_id AS principal, level \
         FROM {user_table} WHERE workspace = "
    ));
    qb.push_bind(workspace.to_string());
    users.push(&mut qb);
    qb.push(format!(
        " UNION ALL SELECT {key_col}, 'group' AS principal_kind, group_slug AS principal, \
         level FROM {group_table} WHERE workspace = "
    ));
    qb.push_bind(workspace.to_string());
    groups.push(&mut qb);
    let rows = qb
        .build()
        .fetch_all(pool)
        .await
        .map_err(db_err(action))?;
    rows.iter()
        .map(|row| {
            let decode = db_err("decode an explicit permission");
            Ok((
                row.try_get(0).map_err(&decode)?,
                principal(
                    &row.try_get::<String, _>(1).map_err(&decode)?,
                    row.try_get(2).map_err(&decode)?,
                )?,
                row.try_get(3).map_err(&decode)?,
            ))
        })
        .collect()
}

fn principal(kind: &str, id: String) -> Result<Principal, StoreError> {
    match kind {
        "user" => Ok(Principal::User {
            account_id: account_id(id)?,
        }),
        "group" => Ok(Principal::Group {
            slug: group_slug(id)?,
        }),
        other => Err(corrupt("principal kind")(other.to_owned())),
    }
}

fn principal_columns(principal: &Principal) -> (&'static str, String) {
    match principal {
        Principal::User { account_id } => ("user", account_id.to_string()),
        Principal::Group { slug } => ("group", slug.to_string()),
    }
}

pub(crate) async fn workspace_facts(
    pool: &Pool<Db>,
    workspace: &WorkspaceSlug,
) -> Result<WorkspaceFacts, StoreError> {
    Ok(WorkspaceFacts {
        members: workspace_members(pool, workspace).await?,
        repositories: repositories(pool, workspace).await?,
        groups: group_members(pool, workspace).await?,
        project_permissions: project_permissions(pool, workspace).await?,
        repository_permissions: repository_permissions(pool, workspace).await?,
    })
}
