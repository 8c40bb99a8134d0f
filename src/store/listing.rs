//! How a listing maps onto a table: its scope columns, item key column and value columns, and
//! the diff between stored and observed rows. Backend independent; the SQL lives in `sql.rs`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::domain::{Account, AccountKind, DriftEvent};

use super::error::StoreError;
use super::types::{ExpectedChange, Fact, ListingKey, ReplaceListing};

/// The type of a value column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ColKind {
    /// Nullable text.
    Text,
    /// Boolean.
    Bool,
}

/// A value column's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ColVal {
    Text(Option<String>),
    Bool(bool),
}

impl ColVal {
    fn to_json(&self) -> Value {
        match self {
            ColVal::Text(Some(s)) => Value::String(s.clone()),
            ColVal::Text(None) => Value::Null,
            ColVal::Bool(b) => Value::Bool(*b),
        }
    }
}

/// The table one kind of listing lives in.
#[derive(Debug)]
pub(crate) struct TableSpec {
    pub table: &'static str,
    pub scope_cols: &'static [&'static str],
    pub key_col: &'static str,
    pub value_cols: &'static [(&'static str, ColKind)],
}

const WORKSPACES: TableSpec = TableSpec {
    table: "workspaces",
    scope_cols: &[],
    key_col: "slug",
    value_cols: &[
        ("uuid", ColKind::Text),
        ("name", ColKind::Text),
        ("is_private", ColKind::Bool),
    ],
};
const WORKSPACE_MEMBERS: TableSpec = TableSpec {
    table: "workspace_members",
    scope_cols: &["workspace"],
    key_col: "account_id",
    value_cols: &[("role", ColKind::Text)],
};
pub(crate) const PROJECTS: TableSpec = TableSpec {
    table: "projects",
    scope_cols: &["workspace"],
    key_col: "project_key",
    value_cols: &[
        ("uuid", ColKind::Text),
        ("name", ColKind::Text),
        ("is_private", ColKind::Bool),
    ],
};
pub(crate) const REPOSITORIES: TableSpec = TableSpec {
    table: "repositories",
    scope_cols: &["workspace"],
    key_col: "repo_slug",
    value_cols: &[
        ("uuid", ColKind::Text),
        ("name", ColKind::Text),
        ("project_key", ColKind::Text),
        ("is_private", ColKind::Bool),
    ],
};
pub(crate) const GROUPS: TableSpec = TableSpec {
    table: "workspace_groups",
    scope_cols: &["workspace"],
    key_col: "group_slug",
    value_cols: &[("name", ColKind::Text)],
};
pub(crate) const GROUP_MEMBERS: TableSpec = TableSpec {
    table: "group_members",
    scope_cols: &["workspace", "group_slug"],
    key_col: "account_id",
    value_cols: &[],
};
pub(crate) const PROJECT_USER_PERMISSIONS: TableSpec = TableSpec {
    table: "project_user_permissions",
    scope_cols: &["workspace", "project_key"],
    key_col: "account_id",
    value_cols: &[("level", ColKind::Text)],
};
pub(crate) const PROJECT_GROUP_PERMISSIONS: TableSpec = TableSpec {
    table: "project_group_permissions",
    scope_cols: &["workspace", "project_key"],
    key_col: "group_slug",
    value_cols: &[("level", ColKind::Text)],
};
pub(crate) const REPOSITORY_USER_PERMISSIONS: TableSpec = TableSpec {
    table: "repository_user_permissions",
    scope_cols: &["workspace", "repo_slug"],
    key_col: "account_id",
    value_cols: &[("level", ColKind::Text)],
};
pub(crate) const REPOSITORY_GROUP_PERMISSIONS: TableSpec = TableSpec {
    table: "repository_group_permissions",
    scope_cols: &["workspace", "repo_slug"],
    key_col: "group_slug",
    value_cols: &[("level", ColKind::Text)],
};

/// Where one listing's rows are: the table, the scope values, and for the workspace listing the
/// single key it may hold.
#[derive(Debug)]
pub(crate) struct Scope {
    pub spec: &'static TableSpec,
    pub values: Vec<String>,
    pub only_key: Option<String>,
}

pub(crate) fn scope_of(key: &ListingKey) -> Scope {
    let ws = key.workspace().to_string();
    let (spec, values, only_key) = match key {
        ListingKey::Workspace(_) => (&WORKSPACES, vec![], Some(ws)),
        ListingKey::WorkspaceMembers(_) => (&WORKSPACE_MEMBERS, vec![ws], None),
        ListingKey::Projects(_) => (&PROJECTS, vec![ws], None),
        ListingKey::Repositories(_) => (&REPOSITORIES, vec![ws], None),
        ListingKey::Groups(_) => (&GROUPS, vec![ws], None),
        ListingKey::GroupMembers { group, .. } => {
            (&GROUP_MEMBERS, vec![ws, group.to_string()], None)
        }
        ListingKey::ProjectUserPermissions(p) => {
            (&PROJECT_USER_PERMISSIONS, vec![ws, p.key.to_string()], None)
        }
        ListingKey::ProjectGroupPermissions(p) => (
            &PROJECT_GROUP_PERMISSIONS,
            vec![ws, p.key.to_string()],
            None,
        ),
        ListingKey::RepositoryUserPermissions(r) => (
            &REPOSITORY_USER_PERMISSIONS,
            vec![ws, r.slug.to_string()],
            None,
        ),
        ListingKey::RepositoryGroupPermissions(r) => (
            &REPOSITORY_GROUP_PERMISSIONS,
            vec![ws, r.slug.to_string()],
            None,
        ),
    };
    Scope {
        spec,
        values,
        only_key,
    }
}

/// Rows keyed by item, each with its value columns in `TableSpec::value_cols` order.
pub(crate) type Rows = BTreeMap<String, Vec<ColVal>>;

/// The observed content of a listing, ready to compare.
pub(crate) struct Observed {
    pub rows: Rows,
    pub accounts: Vec<Account>,
}

fn fact_name(fact: &Fact) -> &'static str {
    match fact {
        Fact::Workspace { .. } => "workspace",
        Fact::WorkspaceMember { .. } => "workspace_member",
        Fact::Project { .. } => "project",
        Fact::Repository { .. } => "repository",
        Fact::Group { .. } => "group",
        Fact::GroupMember { .. } => "group_member",
        Fact::ProjectUserPermission { .. } => "project_user_permission",
        Fact::ProjectGroupPermission { .. } => "project_group_permission",
        Fact::RepositoryUserPermission { .. } => "repository_user_permission",
        Fact::RepositoryGroupPermission { .. } => "repository_group_permission",
    }
}

/// Turns the facts of a request into rows, refusing facts of another listing's kind.
pub(crate) fn observe(request: &ReplaceListing) -> Result<Observed, StoreError> {
    let key = &request.key;
    let mut rows = Rows::new();
    let mut accounts: BTreeMap<String, Account> = BTreeMap::new();
    let text = |s: &str| ColVal::Text(Some(s.to_owned()));
    for fact in &request.facts {
        let (item, values) = match (key, fact) {
            (
                ListingKey::Workspace(ws),
                Fact::Workspace {
                    uuid,
                    name,
                    is_private,
                },
            ) => (
                ws.to_string(),
                vec![
                    ColVal::Text(uuid.clone()),
                    text(name),
                    ColVal::Bool(*is_private),
                ],
            ),
            (ListingKey::WorkspaceMembers(_), Fact::WorkspaceMember { account, role }) => {
                accounts.insert(account.account_id.to_string(), account.clone());
                (account.account_id.to_string(), vec![text(role.as_str())])
            }
            (
                ListingKey::Projects(_),
                Fact::Project {
                    key,
                    uuid,
                    name,
                    is_private,
                },
            ) => (
                key.to_string(),
                vec![
                    ColVal::Text(uuid.clone()),
                    text(name),
                    ColVal::Bool(*is_private),
                ],
            ),
            (
                ListingKey::Repositories(_),
                Fact::Repository {
                    slug,
                    uuid,
                    name,
                    project,
                    is_private,
                },
            ) => (
                slug.to_string(),
                vec![
                    ColVal::Text(uuid.clone()),
                    text(name),
                    ColVal::Text(project.as_ref().map(|p| p.to_string())),
                    ColVal::Bool(*is_private),
                ],
            ),
            (ListingKey::Groups(_), Fact::Group { slug, name }) => {
                (slug.to_string(), vec![text(name)])
            }
            (ListingKey::GroupMembers { .. }, Fact::GroupMember { account }) => {
                accounts.insert(account.account_id.to_string(), account.clone());
                (account.account_id.to_string(), vec![])
            }
            (
                ListingKey::ProjectUserPermissions(_),
                Fact::ProjectUserPermission { account, level },
            ) => {
                accounts.insert(account.account_id.to_string(), account.clone());
                (account.account_id.to_string(), vec![text(level.as_str())])
            }
            (
                ListingKey::ProjectGroupPermissions(_),
                Fact::ProjectGroupPermission { group, level },
            ) => (group.to_string(), vec![text(level.as_str())]),
            (
                ListingKey::RepositoryUserPermissions(_),
                Fact::RepositoryUserPermission { account, level },
            ) => {
                accounts.insert(account.account_id.to_string(), account.clone());
                (account.account_id.to_string(), vec![text(level.as_str())])
            }
            (
                ListingKey::RepositoryGroupPermissions(_),
                Fact::RepositoryGroupPermission { group, level },
            ) => (group.to_string(), vec![text(level.as_str())]),
            (_, other) => {
                return Err(StoreError::FactMismatch {
                    listing: key.to_string(),
                    fact: fact_name(other),
                })
            }
        };
        // A listing read page by page can show an item twice when it shifts under the reader;
        // the last sighting wins.
        rows.insert(item, values);
    }
    Ok(Observed {
        rows,
        accounts: accounts.into_values().collect(),
    })
}

/// The differences between stored and observed rows.
#[derive(Debug, Default)]
pub(crate) struct Diff {
    /// Items to insert or update, with their new values.
    pub upserts: Vec<(String, Vec<ColVal>)>,
    pub inserted: u64,
    pub updated: u64,
    /// Items to delete.
    pub deletes: Vec<String>,
    /// Drift events (not caused by the connector).
    pub drift: Vec<DriftEvent>,
}

fn values_json(spec: &TableSpec, values: &[ColVal]) -> Value {
    let mut map = Map::new();
    for ((name, _), value) in spec.value_cols.iter().zip(values) {
        map.insert((*name).to_owned(), value.to_json());
    }
    Value::Object(map)
}

fn is_expected(expected: &[ExpectedChange], item: &str, after: Option<&[ColVal]>) -> bool {
    let level = after.and_then(|values| match values.first() {
        Some(ColVal::Text(Some(level))) => Some(level.as_str()),
        _ => None,
    });
    expected.iter().any(|change| {
        change.item == item
            && match (&change.level, after) {
                (None, None) => true,
                // A presence-only fact (a group membership) has no level to compare.
                (Some(want), Some(values)) => values.is_empty() || level == Some(want.as_str()),
                _ => false,
            }
    })
}

/// Compares the stored rows with the observed ones.
pub(crate) fn diff(
    request: &ReplaceListing,
    stored: &Rows,
    observed: &Rows,
    baseline: bool,
) -> Result<Diff, StoreError> {
    let spec = scope_of(&request.key).spec;
    let entity = request.key.entity_kind();
    let mut out = Diff::default();
    let mut drift = |item: &str,
                     before: Option<&Vec<ColVal>>,
                     after: Option<&Vec<ColVal>>|
     -> Result<(), StoreError> {
        if baseline || is_expected(&request.expected, item, after.map(Vec::as_slice)) {
            return Ok(());
        }
        out.drift.push(DriftEvent {
            kind: entity,
            key: request.key.fact_key(item)?,
            before: before.map(|v| values_json(spec, v)),
            after: after.map(|v| values_json(spec, v)),
            observed_at: request.observed_at,
        });
        Ok(())
    };
    let mut upserts = Vec::new();
    let (mut inserted, mut updated) = (0, 0);
    for (item, values) in observed {
        match stored.get(item) {
            None => {
                drift(item, None, Some(values))?;
                upserts.push((item.clone(), values.clone()));
                inserted += 1;
            }
            Some(old) if old != values => {
                drift(item, Some(old), Some(values))?;
                upserts.push((item.clone(), values.clone()));
                updated += 1;
            }
            Some(_) => {}
        }
    }
    let mut deletes = Vec::new();
    for (item, old) in stored {
        if !observed.contains_key(item) {
            drift(item, Some(old), None)?;
            deletes.push(item.clone());
        }
    }
    out.upserts = upserts;
    out.inserted = inserted;
    out.updated = updated;
    out.deletes = deletes;
    Ok(out)
}

/// The values of an account row, in `accounts` column order after `account_id`, as writing it
/// over `stored` leaves them: a listing that does not say the kind keeps the stored one (so an
/// account read from a 1.0 group listing is not rewritten after its 2.0 listing named it).
pub(crate) fn account_values(account: &Account, stored: Option<&Vec<ColVal>>) -> Vec<ColVal> {
    let kind = match (account.kind, stored.and_then(|s| s.get(3))) {
        (AccountKind::Unknown, Some(stored)) => stored.clone(),
        (kind, _) => ColVal::Text(Some(kind.as_str().to_owned())),
    };
    vec![
        ColVal::Text(account.uuid.clone()),
        ColVal::Text(Some(account.display_name.clone())),
        ColVal::Text(account.nickname.clone()),
        kind,
    ]
}

/// The columns of the accounts table besides its key.
pub(crate) const ACCOUNT_COLS: &[(&str, ColKind)] = &[
    ("uuid", ColKind::Text),
    ("display_name", ColKind::Text),
    ("nickname", ColKind::Text),
    ("kind", ColKind::Text),
];
