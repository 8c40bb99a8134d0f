//! The simulated world's changes as the organization's audit log records them: two snapshots
//! of the world compared, one [`Change`] per difference, with the event's context (the
//! workspace first, then what changed inside it).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::Change;
use crate::world::World;

fn ctx(kind: &str, id: String) -> Value {
    json!({"type": kind, "id": id})
}

/// Every difference between two worlds, as changes with their context (the workspace first,
/// then what changed inside it).
pub(super) fn diff(before: &World, after: &World) -> Vec<(Change, Vec<Value>)> {
    let mut out = Vec::new();
    for (slug, now) in &after.workspaces {
        // A workspace is not created out of band in the simulator; one that appears has no
        // history to compare.
        let Some(was) = before.workspaces.get(slug) else {
            continue;
        };
        let w = || ctx("workspace", slug.clone());
        let repo = |r: &str| ctx("repository", format!("{slug}/{r}"));
        let project = |p: &str| ctx("project", format!("{slug}/{p}"));
        let group = |g: &str| ctx("group", format!("{slug}/{g}"));
        let user = |u: &str| ctx("user", u.to_owned());
        for (key, change, deleted) in keyed(&was.repositories, &now.repositories, |a, b| {
            a.name == b.name && a.project_key == b.project_key && a.is_private == b.is_private
        }) {
            let c = match (change, deleted) {
                (Some(true), _) => Change::RepositoryCreated,
                (_, true) => Change::RepositoryDeleted,
                _ => Change::RepositoryUpdated,
            };
            out.push((c, vec![w(), repo(key)]));
        }
        for (key, r) in &now.repositories {
            let Some(old) = was.repositories.get(key) else {
                continue;
            };
            for (u, created, removed) in
                keyed(&old.user_permissions, &r.user_permissions, |a, b| a == b)
            {
                let c = match (created, removed) {
                    (Some(true), _) => Change::RepositoryMemberAdded,
                    (_, true) => Change::RepositoryMemberRemoved,
                    _ => Change::RepositoryMemberUpdated,
                };
                out.push((c, vec![w(), repo(key), user(u)]));
            }
            for (g, _, removed) in
                keyed(&old.group_permissions, &r.group_permissions, |a, b| a == b)
            {
                let c = if removed {
                    Change::RepositoryGroupRemoved
                } else {
                    Change::RepositoryGroupAdded
                };
                out.push((c, vec![w(), repo(key), group(g)]));
            }
        }
        for (key, created, removed) in keyed(&was.projects, &now.projects, |a, b| {
            a.name == b.name && a.is_private == b.is_private
        }) {
            let c = match (created, removed) {
                (Some(true), _) => Change::ProjectCreated,
                (_, true) => Change::ProjectDeleted,
                _ => Change::ProjectUpdated,
            };
            out.push((c, vec![w(), project(key)]));
        }
        for (key, p) in &now.projects {
            let Some(old) = was.projects.get(key) else {
                continue;
            };
            for (u, _, removed) in keyed(&old.user_permissions, &p.user_permissions, |a, b| a == b)
            {
                let c = if removed {
                    Change::ProjectMemberRemoved
                } else {
                    Change::ProjectMemberUpdated
                };
                out.push((c, vec![w(), project(key), user(u)]));
            }
            for (g, _, removed) in
                keyed(&old.group_permissions, &p.group_permissions, |a, b| a == b)
            {
                let c = if removed {
                    Change::ProjectGroupRemoved
                } else {
                    Change::ProjectGroupUpdated
                };
                out.push((c, vec![w(), project(key), group(g)]));
            }
        }
        for (u, _, removed) in keyed(&was.members, &now.members, |a, b| a.role == b.role) {
            let c = if removed {
                Change::WorkspaceUserRemoved
            } else {
                Change::WorkspaceUserAdded
            };
            out.push((c, vec![w(), user(u)]));
        }
        for (g, created, removed) in keyed(&was.groups, &now.groups, |a, b| a.name == b.name) {
            if created == Some(true) {
                out.push((Change::GroupCreated, vec![w(), group(g)]));
            } else if removed {
                out.push((Change::GroupDeleted, vec![w(), group(g)]));
            }
        }
        for (g, now_group) in &now.groups {
            let old = was.groups.get(g).map(|x| &x.members);
            let none = BTreeSet::new();
            let old = old.unwrap_or(&none);
            for u in now_group.members.difference(old) {
                out.push((Change::GroupUserAdded, vec![w(), group(g), user(u)]));
            }
            for u in old.difference(&now_group.members) {
                out.push((Change::GroupUserRemoved, vec![w(), group(g), user(u)]));
            }
        }
    }
    out
}

/// The keys that differ between two maps: `(key, Some(true) when new, removed)`; a changed
/// value gives `(key, Some(false), false)`.
fn keyed<'a, V>(
    before: &'a BTreeMap<String, V>,
    after: &'a BTreeMap<String, V>,
    same: impl Fn(&V, &V) -> bool,
) -> Vec<(&'a str, Option<bool>, bool)> {
    let mut out = Vec::new();
    for (k, v) in after {
        match before.get(k) {
            None => out.push((k.as_str(), Some(true), false)),
            Some(old) if !same(old, v) => out.push((k.as_str(), Some(false), false)),
            Some(_) => {}
        }
    }
    for k in before.keys().filter(|k| !after.contains_key(*k)) {
        out.push((k.as_str(), None, true));
    }
    out
}
