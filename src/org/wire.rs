//! The Organizations API's JSON, as far as the client reads it. Unknown fields are ignored;
//! an event without an id, time or action is skipped (it names nothing to refresh).

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::{EventActor, EventContext, OrgEvent};

#[derive(Deserialize)]
pub struct Single<T> {
    pub data: T,
}

#[derive(Deserialize)]
pub struct List<T> {
    #[serde(default = "Vec::new")]
    pub data: Vec<T>,
    #[serde(default)]
    pub links: Links,
}

#[derive(Deserialize, Default)]
pub struct Links {
    pub next: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct Meta {
    pub next: Option<String>,
}

#[derive(Deserialize)]
pub struct OrgData {
    pub id: String,
    #[serde(default)]
    pub attributes: OrgAttributes,
}

#[derive(Deserialize, Default)]
pub struct OrgAttributes {
    pub name: Option<String>,
}

#[derive(Deserialize)]
pub struct WorkspaceData {
    pub id: String,
    #[serde(default)]
    pub attributes: WorkspaceAttributes,
}

#[derive(Deserialize, Default)]
pub struct WorkspaceAttributes {
    pub product: Option<String>,
    pub slug: Option<String>,
}

#[derive(Deserialize)]
pub struct User {
    pub account_id: String,
    pub email: Option<String>,
    pub account_status: Option<String>,
}

#[derive(Deserialize)]
pub struct Events {
    #[serde(default)]
    pub data: Vec<Event>,
    #[serde(default)]
    pub links: Links,
    #[serde(default)]
    pub meta: Meta,
}

#[derive(Deserialize)]
pub struct Event {
    pub id: Option<String>,
    #[serde(default)]
    pub attributes: EventAttributes,
}

#[derive(Deserialize, Default)]
pub struct EventAttributes {
    pub time: Option<DateTime<Utc>>,
    pub action: Option<String>,
    #[serde(default)]
    pub actor: Actor,
    #[serde(default)]
    pub context: Vec<Value>,
    #[serde(default)]
    pub container: Vec<Value>,
}

#[derive(Deserialize, Default)]
pub struct Actor {
    pub id: Option<String>,
    pub name: Option<String>,
    pub auth: Option<Auth>,
}

#[derive(Deserialize)]
pub struct Auth {
    #[serde(rename = "authType")]
    pub auth_type: Option<String>,
}

/// A context or container entry: `{"type", "id"}` (the keys are not documented; anything
/// else is left out).
fn context(values: Vec<Value>) -> Vec<EventContext> {
    values
        .into_iter()
        .filter_map(|v| {
            Some(EventContext {
                kind: v.get("type")?.as_str()?.to_owned(),
                id: v.get("id")?.as_str()?.to_owned(),
            })
        })
        .collect()
}

impl Event {
    pub fn into_domain(self) -> Option<OrgEvent> {
        let a = self.attributes;
        Some(OrgEvent {
            id: self.id?,
            time: a.time?,
            action: a.action?,
            actor: EventActor {
                account_id: a.actor.id.unwrap_or_default(),
                name: a.actor.name.unwrap_or_default(),
                api_token: a
                    .actor
                    .auth
                    .and_then(|x| x.auth_type)
                    .is_some_and(|t| t == "api-token"),
            },
            context: context(a.context),
            container: context(a.container),
        })
    }
}
