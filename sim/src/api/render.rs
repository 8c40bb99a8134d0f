//! JSON shapes of Bitbucket objects, following the official OpenAPI schemas and the example
//! bodies recorded in bitbucket-api.md section 9.

use serde_json::{json, Value};

use crate::world::{Group, Project, Repository, Role, User, Workspace};

fn ts(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, false)
}

fn enc(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

fn avatar(name: &str) -> String {
    let initials: String = name
        .split_whitespace()
        .filter_map(|w| w.chars().next())
        .take(2)
        .collect();
    format!(
        "https://avatar-management--avatars.example/initials/{}-1.png",
        enc(&initials)
    )
}

/// Condensed user as embedded in memberships and permissions. An app's account is an
/// `app_user` (the OpenAPI `app_user` schema); it keeps its nickname, as the 1.0 member
/// object does, so the two listings agree on the account.
pub fn user(base: &str, u: &User) -> Value {
    let mut v = json!({
        "type": "user",
        "display_name": u.display_name,
        "uuid": u.uuid,
        "account_id": u.account_id,
        "nickname": u.nickname,
        "links": {
            "self": {"href": format!("{base}/2.0/users/{}", enc(&u.uuid))},
            "avatar": {"href": avatar(&u.display_name)},
            "html": {"href": format!("https://bitbucket.org/{}/", enc(&u.uuid))}
        }
    });
    if u.app_user {
        if let Some(o) = v.as_object_mut() {
            o.insert("type".into(), json!("app_user"));
        }
    }
    v
}

/// Full user (`/user`, `/users/{id}`).
pub fn full_user(base: &str, u: &User) -> Value {
    let mut v = user(base, u);
    if let Some(o) = v.as_object_mut() {
        o.insert("account_status".into(), json!("active"));
        o.insert("created_on".into(), json!(ts(u.created_on)));
        o.insert("has_2fa_enabled".into(), json!(false));
        o.insert("is_staff".into(), json!(false));
    }
    v
}

/// The pseudo user of a workspace access token.
pub fn token_user(id: &str, workspace: &str) -> Value {
    json!({
        "type": "user",
        "display_name": format!("{workspace} access token"),
        "uuid": crate::world::derived_uuid(id),
        "account_id": format!("access-token:{}", &id[..id.len().min(12)]),
        "nickname": format!("{workspace}-access-token"),
        "account_status": "active",
        "links": {}
    })
}

/// The workspace as its owner-team appears on repositories and projects.
pub fn team(base: &str, w: &Workspace) -> Value {
    json!({
        "type": "team",
        "uuid": w.uuid,
        "display_name": w.name,
        "username": w.slug,
        "links": {
            "self": {"href": format!("{base}/2.0/workspaces/{}", w.slug)},
            "html": {"href": format!("https://bitbucket.org/{}/", w.slug)},
            "avatar": {"href": avatar(&w.name)}
        }
    })
}

/// Full workspace.
pub fn workspace(base: &str, w: &Workspace) -> Value {
    let s = &w.slug;
    json!({
        "type": "workspace",
        "uuid": w.uuid,
        "name": w.name,
        "slug": s,
        "is_private": true,
        "is_privacy_enforced": false,
        "forking_mode": "allow_forks",
        "created_on": ts(w.created_on),
        "updated_on": ts(w.created_on),
        "links": {
            "avatar": {"href": format!("https://bitbucket.org/workspaces/{s}/avatar/")},
            "html": {"href": format!("https://bitbucket.org/{s}/")},
            "members": {"href": format!("{base}/2.0/workspaces/{s}/members")},
            "owners": {"href": format!("{base}/2.0/workspaces/{s}/members?q=permission%3D%22owner%22")},
            "projects": {"href": format!("{base}/2.0/workspaces/{s}/projects")},
            "repositories": {"href": format!("{base}/2.0/repositories/{s}")},
            "snippets": {"href": format!("{base}/2.0/snippets/{s}")},
            "self": {"href": format!("{base}/2.0/workspaces/{s}")}
        }
    })
}

/// Condensed workspace embedded in memberships and repositories.
pub fn workspace_small(base: &str, w: &Workspace) -> Value {
    json!({
        "type": "workspace",
        "uuid": w.uuid,
        "slug": w.slug,
        "name": w.name,
        "links": {"self": {"href": format!("{base}/2.0/workspaces/{}", w.slug)}}
    })
}

/// `workspace_base` as in `/user/workspaces`.
pub fn workspace_base(base: &str, w: &Workspace) -> Value {
    json!({
        "type": "workspace_base",
        "uuid": w.uuid,
        "slug": w.slug,
        "links": {
            "avatar": {"href": format!("https://bitbucket.org/workspaces/{}/avatar/", w.slug)},
            "self": {"href": format!("{base}/2.0/workspaces/{}", w.slug)}
        }
    })
}

/// A workspace membership; `role` adds `permission` (the `/permissions` form), `email` adds the
/// user's email (hidden unless the caller asks with `fields=+values.user.email`).
pub fn membership(
    base: &str,
    w: &Workspace,
    u: &User,
    role: Option<Role>,
    added_on: Option<chrono::DateTime<chrono::Utc>>,
    with_email: bool,
) -> Value {
    let mut user_v = user(base, u);
    if with_email {
        user_v["email"] = json!(u.email);
    }
    let mut v = json!({
        "type": "workspace_membership",
        "user": user_v,
        "workspace": workspace_small(base, w),
        "links": {"self": {"href": format!("{base}/2.0/workspaces/{}/members/{}", w.slug, enc(&u.account_id))}}
    });
    if let Some(r) = role {
        v["permission"] = json!(r.as_str());
    }
    // Workspaces administered in admin.atlassian.com carry neither date.
    if let (Some(t), false) = (added_on, w.groups_admin_managed) {
        v["added_on"] = json!(ts(t));
        v["last_accessed"] = json!(ts(t + chrono::Duration::days(3)));
    }
    v
}

/// Condensed project.
pub fn project_small(base: &str, w: &Workspace, p: &Project) -> Value {
    let _ = base;
    json!({
        "type": "project",
        "key": p.key,
        "uuid": p.uuid,
        "name": p.name,
        "links": {
            "html": {"href": format!("https://bitbucket.org/{}/workspace/projects/{}", w.slug, p.key)},
            "avatar": {"href": format!("https://bitbucket.org/{}/workspace/projects/{}/avatar/32", w.slug, p.key)}
        }
    })
}

/// Full project.
pub fn project(base: &str, w: &Workspace, p: &Project, has_public: bool) -> Value {
    let mut v = project_small(base, w, p);
    if let Some(o) = v.as_object_mut() {
        o.insert("description".into(), json!(p.description));
        o.insert("is_private".into(), json!(p.is_private));
        o.insert("has_publicly_visible_repos".into(), json!(has_public));
        o.insert("created_on".into(), json!(ts(p.created_on)));
        o.insert("updated_on".into(), json!(ts(p.updated_on)));
        o.insert("owner".into(), team(base, w));
    }
    v
}

/// Condensed repository embedded in permissions.
pub fn repository_small(base: &str, w: &Workspace, r: &Repository) -> Value {
    json!({
        "type": "repository",
        "name": r.name,
        "full_name": format!("{}/{}", w.slug, r.slug),
        "uuid": r.uuid,
        "links": {
            "self": {"href": format!("{base}/2.0/repositories/{}/{}", w.slug, r.slug)},
            "html": {"href": format!("https://bitbucket.org/{}/{}", w.slug, r.slug)},
            "avatar": {"href": format!("https://bytebucket.org/ravatar/{}?ts=default", enc(&r.uuid))}
        }
    })
}

/// Full repository.
pub fn repository(base: &str, w: &Workspace, r: &Repository) -> Value {
    let full = format!("{}/{}", w.slug, r.slug);
    let project = w
        .projects
        .get(&r.project_key)
        .map(|p| project_small(base, w, p))
        .unwrap_or(Value::Null);
    json!({
        "type": "repository",
        "uuid": r.uuid,
        "full_name": full,
        "slug": r.slug,
        "name": r.name,
        "description": r.description,
        "scm": "git",
        "is_private": r.is_private,
        "fork_policy": if r.is_private { "no_public_forks" } else { "allow_forks" },
        "language": r.language,
        "size": r.size,
        "has_issues": false,
        "has_wiki": false,
        "website": null,
        "created_on": ts(r.created_on),
        "updated_on": ts(r.updated_on),
        "mainbranch": {"type": "branch", "name": "main"},
        "owner": team(base, w),
        "workspace": workspace_small(base, w),
        "project": project,
        "links": {
            "self": {"href": format!("{base}/2.0/repositories/{full}")},
            "html": {"href": format!("https://bitbucket.org/{full}")},
            "avatar": {"href": format!("https://bytebucket.org/ravatar/{}?ts=default", enc(&r.uuid))},
            "pullrequests": {"href": format!("{base}/2.0/repositories/{full}/pullrequests")},
            "commits": {"href": format!("{base}/2.0/repositories/{full}/commits")},
            "forks": {"href": format!("{base}/2.0/repositories/{full}/forks")},
            "watchers": {"href": format!("{base}/2.0/repositories/{full}/watchers")},
            "downloads": {"href": format!("{base}/2.0/repositories/{full}/downloads")},
            "hooks": {"href": format!("{base}/2.0/repositories/{full}/hooks")},
            "clone": [
                {"name": "https", "href": format!("https://bitbucket.org/{full}.git")},
                {"name": "ssh", "href": format!("git@bitbucket.org:{full}.git")}
            ]
        }
    })
}

/// A group embedded in permissions.
pub fn group(base: &str, w: &Workspace, g: &Group) -> Value {
    let _ = base;
    json!({
        "type": "group",
        "name": g.name,
        "slug": g.slug,
        "full_slug": format!("{}:{}", w.slug, g.slug),
        "links": {
            "html": {"href": format!("https://bitbucket.org/{}/workspace/settings/groups/{}", w.slug, g.slug)}
        }
    })
}

/// `repository_user_permission`.
pub fn repo_user_perm(base: &str, w: &Workspace, r: &Repository, u: &User, level: &str) -> Value {
    json!({
        "type": "repository_user_permission",
        "user": user(base, u),
        "permission": level,
        "links": {"self": {"href": format!("{base}/2.0/repositories/{}/{}/permissions-config/users/{}", w.slug, r.slug, enc(&u.account_id))}}
    })
}

/// `repository_group_permission`.
pub fn repo_group_perm(base: &str, w: &Workspace, r: &Repository, g: &Group, level: &str) -> Value {
    json!({
        "type": "repository_group_permission",
        "group": group(base, w, g),
        "permission": level,
        "links": {"self": {"href": format!("{base}/2.0/repositories/{}/{}/permissions-config/groups/{}", w.slug, r.slug, g.slug)}}
    })
}

/// `project_user_permission`.
pub fn project_user_perm(base: &str, w: &Workspace, p: &Project, u: &User, level: &str) -> Value {
    json!({
        "type": "project_user_permission",
        "user": user(base, u),
        "permission": level,
        "links": {"self": {"href": format!("{base}/2.0/workspaces/{}/projects/{}/permissions-config/users/{}", w.slug, p.key, enc(&u.account_id))}}
    })
}

/// `project_group_permission`.
pub fn project_group_perm(base: &str, w: &Workspace, p: &Project, g: &Group, level: &str) -> Value {
    json!({
        "type": "project_group_permission",
        "group": group(base, w, g),
        "permission": level,
        "links": {"self": {"href": format!("{base}/2.0/workspaces/{}/projects/{}/permissions-config/groups/{}", w.slug, p.key, g.slug)}}
    })
}

/// `repository_permission` (effective).
pub fn effective(base: &str, w: &Workspace, r: &Repository, u: &User, level: &str) -> Value {
    json!({
        "type": "repository_permission",
        "user": user(base, u),
        "repository": repository_small(base, w, r),
        "permission": level
    })
}

/// 1.0 member object.
pub fn v1_member(u: &User) -> Value {
    json!({
        "display_name": u.display_name,
        "account_id": u.account_id,
        "uuid": u.uuid,
        "nickname": u.nickname,
        "is_active": u.active,
        "is_team": false,
        "is_staff": false,
        "avatar": avatar(&u.display_name),
        "resource_uri": format!("/1.0/users/{}", enc(&u.uuid))
    })
}

/// 1.0 group object with members.
pub fn v1_group(w: &Workspace, g: &Group, members: Vec<Value>) -> Value {
    json!({
        "name": g.name,
        "slug": g.slug,
        "permission": null,
        "auto_add": false,
        "email_forwarding_disabled": false,
        "owner": {
            "display_name": w.name,
            "uuid": w.uuid,
            "is_team": true,
            "nickname": w.slug,
            "resource_uri": format!("/1.0/users/{}", w.slug)
        },
        "members": members
    })
}
