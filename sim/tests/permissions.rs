//! Grants and revokes through permissions-config, their preconditions, the effective-permission
//! rule, out-of-band changes and the 1.0 groups API.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use bitbucket_sim::{Level, NewRepository, ProjectLevel, Role, SimHandle, World};
use serde_json::{json, Value};

/// (workspace, repo slug, an ordinary member, a workspace owner other than the admin, a
/// non-member).
fn fixture(sim: &SimHandle) -> (String, String, String, String, String) {
    let (ws, _) = common::owned_and_member_ws(sim);
    sim.with_world(|w| {
        let wsv = &w.workspaces[&ws];
        let repo = wsv.repositories.keys().next().cloned().expect("repo");
        let member = wsv
            .members
            .iter()
            .find(|(a, m)| m.role == Role::Member && **a != w.admin_account_id)
            .map(|(a, _)| a.clone())
            .expect("member");
        let owner = wsv
            .members
            .iter()
            .find(|(a, m)| m.role == Role::Owner && **a != w.admin_account_id)
            .map(|(a, _)| a.clone())
            .expect("owner");
        let outsider = w
            .users
            .keys()
            .find(|a| !wsv.members.contains_key(*a))
            .cloned()
            .expect("outsider");
        (ws.clone(), repo, member, owner, outsider)
    })
}

async fn put(sim: &SimHandle, path: &str, body: Value) -> (u16, Value) {
    let r = common::client()
        .put(format!("{}{path}", sim.bitbucket_url()))
        .basic_auth(sim.admin_email(), Some(sim.admin_token()))
        .json(&body)
        .send()
        .await
        .expect("request");
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

async fn delete(sim: &SimHandle, path: &str) -> u16 {
    common::client()
        .delete(format!("{}{path}", sim.bitbucket_url()))
        .basic_auth(sim.admin_email(), Some(sim.admin_token()))
        .send()
        .await
        .expect("request")
        .status()
        .as_u16()
}

#[tokio::test]
async fn put_user_permission_replaces_the_single_explicit_level() {
    let sim = common::start_tiny(21).await;
    let (ws, repo, member, _, _) = fixture(&sim);
    let path = format!("/2.0/repositories/{ws}/{repo}/permissions-config/users/{member}");
    let (status, v) = put(&sim, &path, json!({"permission": "write"})).await;
    assert_eq!(status, 200);
    assert_eq!(v["type"], "repository_user_permission");
    assert_eq!(v["permission"], "write");
    assert_eq!(v["user"]["account_id"], member.as_str());
    let (status, _) = put(&sim, &path, json!({"permission": "admin"})).await;
    assert_eq!(status, 200);
    let level = sim.with_world(|w| {
        w.workspaces[&ws].repositories[&repo]
            .user_permissions
            .get(&member)
            .copied()
    });
    assert_eq!(level, Some(Level::Admin));
    let (status, v) = common::admin_json(&sim, &format!("{}{path}", sim.bitbucket_url())).await;
    assert_eq!((status, v["permission"].as_str()), (200, Some("admin")));

    // The UUID form of the user id addresses the same permission.
    let uuid = sim.with_world(|w| w.users[&member].uuid.clone());
    let enc: String = url::form_urlencoded::byte_serialize(uuid.as_bytes()).collect();
    let (status, v) = common::admin_json(
        &sim,
        &format!(
            "{}/2.0/repositories/{ws}/{repo}/permissions-config/users/{enc}",
            sim.bitbucket_url()
        ),
    )
    .await;
    assert_eq!((status, v["permission"].as_str()), (200, Some("admin")));

    assert_eq!(delete(&sim, &path).await, 204);
    // Documented choice: nothing left to delete answers 404.
    assert_eq!(delete(&sim, &path).await, 404);
    let level = sim.with_world(|w| {
        w.workspaces[&ws].repositories[&repo]
            .user_permissions
            .get(&member)
            .copied()
    });
    assert_eq!(level, None);
}

#[tokio::test]
async fn put_preconditions_member_not_owner_valid_body_seat_limit() {
    let sim = common::start_tiny(21).await;
    let (ws, repo, member, owner, outsider) = fixture(&sim);
    let base = format!("/2.0/repositories/{ws}/{repo}/permissions-config/users");
    let (status, v) = put(
        &sim,
        &format!("{base}/{outsider}"),
        json!({"permission": "read"}),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    let (status, _) = put(
        &sim,
        &format!("{base}/{owner}"),
        json!({"permission": "read"}),
    )
    .await;
    assert_eq!(status, 400);
    for bad in [
        json!({}),
        json!({"permission": "owner"}),
        json!({"permission": "read", "x": 1}),
    ] {
        let (status, v) = put(&sim, &format!("{base}/{member}"), bad.clone()).await;
        assert_eq!(status, 400, "{bad} -> {v}");
        assert_eq!(v["type"], "error");
    }
    let (status, _) = put(
        &sim,
        &format!("{base}/557058:no-such-user"),
        json!({"permission": "read"}),
    )
    .await;
    assert_eq!(status, 404);

    // A member with no seat yet hits the plan's limit.
    let fresh = sim.with_world(|w| {
        let wsv = w.workspaces.get_mut(&ws).expect("ws");
        wsv.seat_limit = Some(0);
        wsv.members
            .iter()
            .find(|(a, m)| {
                m.role == Role::Member
                    && !wsv
                        .repositories
                        .values()
                        .any(|r| r.user_permissions.contains_key(*a))
                    && !wsv
                        .projects
                        .values()
                        .any(|p| p.user_permissions.contains_key(*a))
                    && !wsv.groups.values().any(|g| g.members.contains(*a))
            })
            .map(|(a, _)| a.clone())
    });
    if let Some(fresh) = fresh {
        let (status, v) = put(
            &sim,
            &format!("{base}/{fresh}"),
            json!({"permission": "read"}),
        )
        .await;
        assert_eq!(status, 402, "{v}");
    } else {
        // Every member already holds a seat in this seed: add one who does not.
        let newbie = sim.with_world(|w| {
            let id = w
                .users
                .keys()
                .find(|a| !w.workspaces[&ws].members.contains_key(*a))
                .cloned()
                .expect("user");
            w.add_workspace_member(&ws, &id, Role::Member)
                .expect("member");
            id
        });
        let (status, _) = put(
            &sim,
            &format!("{base}/{newbie}"),
            json!({"permission": "read"}),
        )
        .await;
        assert_eq!(status, 402);
    }
}

#[tokio::test]
async fn group_and_project_permissions_round_trip() {
    let sim = common::start_tiny(21).await;
    let (ws, repo, member, _, _) = fixture(&sim);
    let (key, group) = sim.with_world(|w| {
        let wsv = &w.workspaces[&ws];
        (
            wsv.projects.keys().next().cloned().expect("project"),
            wsv.groups.keys().next().cloned().expect("group"),
        )
    });
    let (status, v) = put(
        &sim,
        &format!("/2.0/repositories/{ws}/{repo}/permissions-config/groups/{group}"),
        json!({"permission": "write"}),
    )
    .await;
    assert_eq!(
        (status, v["type"].as_str()),
        (200, Some("repository_group_permission"))
    );
    assert_eq!(v["group"]["slug"], group.as_str());
    let (status, v) = put(
        &sim,
        &format!("/2.0/workspaces/{ws}/projects/{key}/permissions-config/users/{member}"),
        json!({"permission": "create-repo"}),
    )
    .await;
    assert_eq!(
        (status, v["permission"].as_str()),
        (200, Some("create-repo"))
    );
    let (status, v) = put(
        &sim,
        &format!("/2.0/workspaces/{ws}/projects/{key}/permissions-config/groups/{group}"),
        json!({"permission": "read"}),
    )
    .await;
    assert_eq!(
        (status, v["type"].as_str()),
        (200, Some("project_group_permission"))
    );
    let stored = sim.with_world(|w| {
        let p = &w.workspaces[&ws].projects[&key];
        (
            p.user_permissions.get(&member).copied(),
            p.group_permissions.get(&group).copied(),
        )
    });
    assert_eq!(
        stored,
        (Some(ProjectLevel::CreateRepo), Some(ProjectLevel::Read))
    );
    assert_eq!(
        delete(
            &sim,
            &format!("/2.0/workspaces/{ws}/projects/{key}/permissions-config/users/{member}")
        )
        .await,
        204
    );
    assert_eq!(
        delete(
            &sim,
            &format!("/2.0/repositories/{ws}/{repo}/permissions-config/groups/{group}")
        )
        .await,
        204
    );
}

/// The effective rule written independently of the simulator's code, from product.md.
fn expected_effective(w: &World, ws: &str) -> BTreeSet<(String, String, Level)> {
    let wsv = &w.workspaces[ws];
    let mut out = BTreeSet::new();
    for r in wsv.repositories.values() {
        let mut best: BTreeMap<&str, Level> = BTreeMap::new();
        let mut give = |u: &str, l: Level| {
            if !wsv.members.contains_key(u) {
                return;
            }
            let e = best
                .entry(wsv.members.get_key_value(u).expect("member").0.as_str())
                .or_insert(l);
            *e = (*e).max(l);
        };
        for (u, l) in &r.user_permissions {
            give(u, *l);
        }
        for (g, l) in &r.group_permissions {
            for u in &wsv.groups[g].members {
                give(u, *l);
            }
        }
        let p = &wsv.projects[&r.project_key];
        let conv = |l: ProjectLevel| match l {
            ProjectLevel::Read => Level::Read,
            ProjectLevel::Write | ProjectLevel::CreateRepo => Level::Write,
            ProjectLevel::Admin => Level::Admin,
        };
        for (u, l) in &p.user_permissions {
            give(u, conv(*l));
        }
        for (g, l) in &p.group_permissions {
            for u in &wsv.groups[g].members {
                give(u, conv(*l));
            }
        }
        for (u, m) in &wsv.members {
            if m.role == Role::Owner {
                give(u, Level::Admin);
            }
        }
        for (u, l) in best {
            out.insert((u.to_string(), r.slug.clone(), l));
        }
    }
    out
}

#[tokio::test]
async fn effective_permissions_follow_the_product_rule() {
    let sim = common::start_tiny(22).await;
    let (ws, repo, member, _, _) = fixture(&sim);
    let key = sim.with_world(|w| w.workspaces[&ws].repositories[&repo].project_key.clone());
    // Make the member's effective level come from a project create-repo grant only.
    sim.with_world(|w| {
        w.set_repo_user_permission(&ws, &repo, &member, None)
            .expect("clear");
        for g in w.workspaces[&ws].groups.keys().cloned().collect::<Vec<_>>() {
            w.remove_group_member(&ws, &g, &member).expect("leave");
        }
        w.set_project_user_permission(&ws, &key, &member, Some(ProjectLevel::CreateRepo))
            .expect("grant");
    });
    let api: BTreeSet<(String, String, Level)> = common::collect_all(
        &sim,
        &format!(
            "{}/2.0/workspaces/{ws}/permissions/repositories?pagelen=100",
            sim.bitbucket_url()
        ),
    )
    .await
    .iter()
    .map(|p| {
        (
            p["user"]["account_id"].as_str().expect("id").to_string(),
            p["repository"]["full_name"]
                .as_str()
                .expect("name")
                .split('/')
                .nth(1)
                .expect("slug")
                .to_string(),
            Level::parse(p["permission"].as_str().expect("level")).expect("level"),
        )
    })
    .collect();
    let expected = sim.with_world(|w| expected_effective(w, &ws));
    assert_eq!(api, expected);
    let own: BTreeSet<(String, String, Level)> = sim
        .effective_permissions(&ws)
        .into_iter()
        .map(|e| (e.account_id, e.repo_slug, e.level))
        .collect();
    assert_eq!(own, expected);
    assert!(expected.contains(&(member.clone(), repo.clone(), Level::Write)));

    // Per-repository variant agrees.
    let one: BTreeSet<(String, Level)> = common::collect_all(
        &sim,
        &format!(
            "{}/2.0/workspaces/{ws}/permissions/repositories/{repo}",
            sim.bitbucket_url()
        ),
    )
    .await
    .iter()
    .map(|p| {
        (
            p["user"]["account_id"].as_str().expect("id").to_string(),
            Level::parse(p["permission"].as_str().expect("l")).expect("l"),
        )
    })
    .collect();
    let exp_one: BTreeSet<(String, Level)> = expected
        .iter()
        .filter(|e| e.1 == repo)
        .map(|e| (e.0.clone(), e.2))
        .collect();
    assert_eq!(one, exp_one);
}

#[tokio::test]
async fn out_of_band_changes_show_up_in_the_api() {
    let sim = common::start_tiny(23).await;
    let (ws, repo, member, _, _) = fixture(&sim);
    let key = sim.with_world(|w| {
        w.workspaces[&ws]
            .projects
            .keys()
            .next()
            .cloned()
            .expect("p")
    });
    sim.with_world(|w| {
        w.add_repository(
            &ws,
            NewRepository {
                slug: "drift-svc".into(),
                name: "Drift Svc ✨".into(),
                project_key: key.clone(),
                is_private: true,
            },
        )
        .expect("add");
        w.set_repo_user_permission(&ws, "drift-svc", &member, Some(Level::Read))
            .expect("grant");
        w.remove_repository(&ws, &repo).expect("remove");
    });
    let (status, v) = common::admin_json(
        &sim,
        &format!("{}/2.0/repositories/{ws}/drift-svc", sim.bitbucket_url()),
    )
    .await;
    assert_eq!((status, v["name"].as_str()), (200, Some("Drift Svc ✨")));
    let (status, _) = common::admin_json(
        &sim,
        &format!("{}/2.0/repositories/{ws}/{repo}", sim.bitbucket_url()),
    )
    .await;
    assert_eq!(status, 404);
    let (_, v) = common::admin_json(
        &sim,
        &format!(
            "{}/2.0/repositories/{ws}/drift-svc/permissions-config/users",
            sim.bitbucket_url()
        ),
    )
    .await;
    assert_eq!(v["values"][0]["permission"], "read");

    // Removing the member from the workspace removes their access.
    sim.with_world(|w| w.remove_workspace_member(&ws, &member).expect("remove"));
    assert!(!sim
        .effective_permissions(&ws)
        .iter()
        .any(|e| e.account_id == member));
    let (status, _) = common::admin_json(
        &sim,
        &format!(
            "{}/2.0/workspaces/{ws}/members/{member}",
            sim.bitbucket_url()
        ),
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn v1_groups_list_get_and_change_members_unless_admin_managed() {
    let sim = common::start_tiny(24).await;
    let (ws, _, member, _, _) = fixture(&sim);
    let url = sim.bitbucket_url();
    let (status, v) = common::admin_json(&sim, &format!("{url}/1.0/groups/{ws}")).await;
    assert_eq!(status, 200);
    let groups = v.as_array().expect("bare array");
    let expected = sim.with_world(|w| w.workspaces[&ws].groups.len());
    assert_eq!(groups.len(), expected);
    let slug = groups[0]["slug"].as_str().expect("slug").to_string();
    assert!(groups[0]["members"].is_array());

    let uuid = sim.with_world(|w| w.users[&member].uuid.clone());
    let enc: String = url::form_urlencoded::byte_serialize(uuid.as_bytes()).collect();
    let member_url = format!("{url}/1.0/groups/{ws}/{slug}/members/{enc}");
    let r = common::client()
        .put(&member_url)
        .basic_auth(sim.admin_email(), Some(sim.admin_token()))
        .json(&json!({}))
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["account_id"], member.as_str());
    let (_, members) =
        common::admin_json(&sim, &format!("{url}/1.0/groups/{ws}/{slug}/members")).await;
    assert!(members
        .as_array()
        .expect("array")
        .iter()
        .any(|m| m["account_id"] == member.as_str()));
    let r = common::client()
        .delete(&member_url)
        .basic_auth(sim.admin_email(), Some(sim.admin_token()))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 204);
    assert!(!sim.with_world(|w| w.workspaces[&ws].groups[&slug].members.contains(&member)));

    // Administered in admin.atlassian.com: writes are refused, reads still work.
    sim.with_world(|w| w.workspaces.get_mut(&ws).expect("ws").groups_admin_managed = true);
    let r = common::client()
        .put(&member_url)
        .basic_auth(sim.admin_email(), Some(sim.admin_token()))
        .json(&json!({}))
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 403);
    let (status, _) = common::admin_json(&sim, &format!("{url}/1.0/groups/{ws}/{slug}")).await;
    assert_eq!(status, 200);
    // The workspace UUID is not accepted by the 1.0 API.
    let wuuid = sim.with_world(|w| w.workspaces[&ws].uuid.clone());
    let enc: String = url::form_urlencoded::byte_serialize(wuuid.as_bytes()).collect();
    let (status, _) = common::admin_json(&sim, &format!("{url}/1.0/groups/{enc}")).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn v1_group_privileges_list_every_repository_group_grant() {
    let sim = common::start_tiny(25).await;
    let (ws, _) = common::owned_and_member_ws(&sim);
    let (status, v) = common::admin_json(
        &sim,
        &format!("{}/1.0/group-privileges/{ws}", sim.bitbucket_url()),
    )
    .await;
    assert_eq!(status, 200);
    let got: BTreeSet<(String, String, String)> = v
        .as_array()
        .expect("bare array")
        .iter()
        .map(|e| {
            (
                e["repo"].as_str().expect("repo").to_string(),
                e["group"]["slug"].as_str().expect("group").to_string(),
                e["privilege"].as_str().expect("level").to_string(),
            )
        })
        .collect();
    let expected = sim.with_world(|w| {
        let wsv = &w.workspaces[&ws];
        wsv.repositories
            .values()
            .flat_map(|r| {
                let ws = ws.clone();
                r.group_permissions.iter().map(move |(g, l)| {
                    (
                        format!("{ws}/{}", r.slug),
                        g.clone(),
                        l.as_str().to_string(),
                    )
                })
            })
            .collect::<BTreeSet<_>>()
    });
    assert_eq!(got, expected);
}

#[tokio::test]
async fn anonymous_callers_see_public_repositories_only() {
    let sim = common::start_tiny(26).await;
    let (ws, _) = common::owned_and_member_ws(&sim);
    let (public, private) = sim.with_world(|w| {
        let rs = &w.workspaces[&ws].repositories;
        (
            rs.values()
                .filter(|r| !r.is_private)
                .map(|r| r.slug.clone())
                .collect::<BTreeSet<_>>(),
            rs.values()
                .find(|r| r.is_private)
                .map(|r| r.slug.clone())
                .expect("private"),
        )
    });
    let r = common::client()
        .get(format!(
            "{}/2.0/repositories/{ws}?pagelen=100",
            sim.bitbucket_url()
        ))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    let got: BTreeSet<String> = v["values"]
        .as_array()
        .expect("values")
        .iter()
        .map(|r| r["slug"].as_str().expect("slug").to_string())
        .collect();
    assert_eq!(got, public);
    let r = common::client()
        .get(format!(
            "{}/2.0/repositories/{ws}/{private}",
            sim.bitbucket_url()
        ))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 403);
}
