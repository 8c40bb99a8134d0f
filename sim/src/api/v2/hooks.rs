//! Workspace hooks (owners only).

use super::permissions_config::no_content;
use super::{forbidden, is_owner, member_ws, not_found, ts, C, S};
use crate::api::{error, list_page, object_response, page_response, render, Params};
use crate::world::{Hook, Workspace};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use axum::Extension;
use serde_json::{json, Value};

fn hook_json(base: &str, ws: &Workspace, h: &Hook) -> Value {
    json!({
        "type": "webhook_subscription",
        "uuid": h.uuid,
        "url": h.url,
        "description": h.description,
        "subject_type": "workspace",
        "subject": render::workspace_small(base, ws),
        "active": h.active,
        "secret_set": h.secret.is_some(),
        "created_at": ts(h.created_at),
        "events": h.events
    })
}

pub(super) async fn list_hooks(
    State(s): S,
    Extension(c): C,
    Path(ws): Path<String>,
    uri: Uri,
) -> Response {
    let p = Params::from_uri(&uri);
    let w = s.read_world();
    let wsv = or_respond!(member_ws(&w, &c, &ws));
    if !is_owner(wsv, &c) {
        return forbidden("You must be an administrator of this workspace");
    }
    let items: Vec<&Hook> = wsv.hooks.values().collect();
    match list_page(&s, &uri, &p, &items, |h| hook_json(&s.bb_url, wsv, h)) {
        Ok(page) => page_response(&s, page, &p, &[]),
        Err(r) => r,
    }
}

pub(super) async fn create_hook(
    State(s): S,
    Extension(c): C,
    Path(ws): Path<String>,
    uri: Uri,
    body: Bytes,
) -> Response {
    let p = Params::from_uri(&uri);
    let ws_slug = {
        let w = s.read_world();
        let wsv = or_respond!(member_ws(&w, &c, &ws));
        if !is_owner(wsv, &c) {
            return forbidden("You must be an administrator of this workspace");
        }
        wsv.slug.clone()
    };
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => return error(StatusCode::BAD_REQUEST, "The body must be JSON."),
    };
    let url = v.get("url").and_then(Value::as_str).unwrap_or_default();
    let events: Vec<String> = v
        .get("events")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|e| e.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if url.is_empty() || events.is_empty() {
        return error(StatusCode::BAD_REQUEST, "url and events are required.");
    }
    let mut w = s.write_world();
    let now = w.now;
    let Some(wsv) = w.workspaces.get_mut(&ws_slug) else {
        return not_found("Workspace");
    };
    let uuid = crate::world::derived_uuid(&format!("{ws_slug}/hook/{}/{url}", wsv.hooks.len()));
    let hook = Hook {
        uuid: uuid.clone(),
        url: url.to_string(),
        description: v
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        events,
        active: v.get("active").and_then(Value::as_bool).unwrap_or(true),
        secret: v.get("secret").and_then(Value::as_str).map(str::to_string),
        created_at: now,
    };
    wsv.hooks.insert(uuid, hook.clone());
    let wsv = &*wsv;
    // From now on the workspace's changes are delivered to its hooks.
    crate::api::hooks_out::watch(&s, wsv);
    object_response(StatusCode::CREATED, hook_json(&s.bb_url, wsv, &hook), &p)
}

pub(super) async fn delete_hook(
    State(s): S,
    Extension(c): C,
    Path((ws, uid)): Path<(String, String)>,
) -> Response {
    let ws_slug = {
        let w = s.read_world();
        let wsv = or_respond!(member_ws(&w, &c, &ws));
        if !is_owner(wsv, &c) {
            return forbidden("You must be an administrator of this workspace");
        }
        wsv.slug.clone()
    };
    let mut w = s.write_world();
    match w
        .workspaces
        .get_mut(&ws_slug)
        .and_then(|x| x.hooks.remove(&uid))
    {
        Some(_) => no_content(),
        None => not_found("Webhook"),
    }
}
