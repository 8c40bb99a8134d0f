//! Shared set-up of the HTTP API tests: the API's router over a store and the simulator,
//! served on a loopback port; calls that check every answer against `schemas/openapi.json`.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::path::Path;
use std::sync::{Arc, Mutex};

use bitbucket_access::api::{
    router, ApiState, Deliveries, RefreshTarget, Syncs, TargetedRefresh, TargetedSyncRefresh,
};
use bitbucket_access::clock::{ManualClock, SystemClock};
use bitbucket_access::config::Config;
use bitbucket_access::serve::{Jobs, Metrics};
use bitbucket_access::store::Store;
use bitbucket_access::sync::LeaseSettings;
use bitbucket_sim::SimHandle;
use serde_json::Value;

pub use crate::grants_support::{t0, world};
pub use crate::sync_support::{client, start_sim_with};

/// The granter's token in the test config.
pub const GRANTER: &str = "granter-token-5b1d";
/// The reader's token.
pub const READER: &str = "reader-token-77ac";
/// The webhook secret.
pub const WEBHOOK_SECRET: &str = "hook-secret-91fe";

/// The OpenAPI document.
pub fn openapi() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/openapi.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("openapi.json")).expect("JSON")
}

/// Refreshes the webhooks asked for, recorded.
#[derive(Default)]
pub struct Recorded(pub Mutex<Vec<RefreshTarget>>);

impl TargetedRefresh for Recorded {
    fn schedule(&self, target: RefreshTarget) {
        self.0.lock().expect("lock").push(target);
    }
}

/// A running API.
pub struct Api {
    pub sim: SimHandle,
    pub store: Arc<dyn Store>,
    pub base: String,
    pub http: reqwest::Client,
    pub refreshes: Arc<Recorded>,
    pub doc: Value,
}

/// The test config: a granter `portal`, a reader `dashboards`, a webhook secret.
pub fn config() -> Config {
    let text = format!(
        r#"{{"email": "admin@acme.io", "app_token": "t",
            "grant_policy": {{"max_duration": "30d"}},
            "server": {{"tokens": [
                {{"name": "portal", "token": "{GRANTER}", "role": "granter"}},
                {{"name": "dashboards", "token": "{READER}", "role": "reader"}}],
              "webhook_secret": "{WEBHOOK_SECRET}"}}}}"#
    );
    Config::from_json_str(&text, &|_| None, Path::new("/")).expect("test config")
}

impl Api {
    /// The API over the store at `url` and a simulator of `world(seed, 4)`; webhook
    /// deliveries are recorded in `refreshes`.
    pub async fn start(seed: u64, url: &str) -> Self {
        Api::start_with(seed, url, false).await
    }

    /// The same, with webhook deliveries refreshed for real (a sync of their workspace).
    pub async fn start_refreshing(seed: u64, url: &str) -> Self {
        Api::start_with(seed, url, true).await
    }

    async fn start_with(seed: u64, url: &str, refreshing: bool) -> Self {
        let sim = start_sim_with(world(seed, 4)).await;
        let store = bitbucket_access::store::open(url).await.expect("store");
        let refreshes = Arc::new(Recorded::default());
        let syncs = Syncs::new(
            Some(Arc::new(Jobs {
                store: Arc::clone(&store),
                client: client(&sim, 4),
                config: Arc::new(config()),
                clock: Arc::new(SystemClock),
                metrics: Arc::new(Metrics::default()),
                sync_lease: LeaseSettings::default(),
            })),
            Arc::new(SystemClock),
        );
        let refresh: Arc<dyn TargetedRefresh> = if refreshing {
            Arc::new(TargetedSyncRefresh {
                store: Arc::clone(&store),
                client: client(&sim, 4),
                clock: Arc::new(SystemClock),
            })
        } else {
            refreshes.clone()
        };
        let state = Arc::new(ApiState {
            store: Arc::clone(&store),
            client: client(&sim, 4),
            config: Arc::new(config()),
            clock: Arc::new(ManualClock::new(t0())),
            refresh,
            deliveries: Deliveries::default(),
            syncs,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let app = router(state);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Api {
            sim,
            store,
            base,
            http: reqwest::Client::new(),
            refreshes,
            doc: openapi(),
        }
    }

    /// Sends a request and checks the answer against the document: the path and method are
    /// documented, the status is one of the operation's, and a JSON body validates against
    /// that status's schema.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut request = self.http.request(
            reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
            format!("{}{path}", self.base),
        );
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        if let Some(b) = body {
            request = request.json(b);
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = request.send().await.expect("send");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        let value: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"))
        };
        check(&self.doc, method, path, status, &value);
        (status, value)
    }

    /// Sends a GET and answers the status, the headers and the body as text, after checking
    /// that the status and the body's content type are documented for the operation (and, for
    /// JSON, that the body validates as `call` checks it).
    pub async fn get_text(
        &self,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap, String) {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = request.send().await.expect("send");
        let status = response.status().as_u16();
        let head = response.headers().clone();
        let text = response.text().await.expect("body");
        let media = head
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .unwrap_or_default()
            .trim()
            .to_owned();
        let template = template_of(&self.doc, path).expect("a documented path");
        let content =
            &self.doc["paths"][&template]["get"]["responses"][status.to_string()]["content"];
        assert!(
            content.get(&media).is_some(),
            "GET {path} answered {status} as {media:?}, which the document does not list"
        );
        if media == "application/json" {
            let value: Value = serde_json::from_str(&text).expect("JSON body");
            check(&self.doc, "GET", path, status, &value);
        }
        (status, head, text)
    }
}

/// The documented path template `path` matches.
pub fn template_of(doc: &Value, path: &str) -> Option<String> {
    let path = path.split('?').next().unwrap_or(path);
    let parts: Vec<&str> = path.split('/').collect();
    doc["paths"].as_object()?.keys().find_map(|t| {
        let tparts: Vec<&str> = t.split('/').collect();
        (tparts.len() == parts.len()
            && tparts
                .iter()
                .zip(&parts)
                .all(|(a, b)| a.starts_with('{') || a == b))
        .then(|| t.clone())
    })
}

/// Panics unless the answer is documented and its body validates.
pub fn check(doc: &Value, method: &str, path: &str, status: u16, body: &Value) {
    let Some(template) = template_of(doc, path) else {
        // An undocumented path answers the one error shape.
        assert_eq!(status, 404, "{method} {path} is not documented");
        validate(doc, "#/components/schemas/Error", body, path);
        return;
    };
    let op = &doc["paths"][&template][method.to_lowercase()];
    assert!(op.is_object(), "{method} {template} is not documented");
    let response = &op["responses"][status.to_string()];
    assert!(
        response.is_object(),
        "{method} {path} answered {status}, which the document does not list: {body}"
    );
    if response.get("content").is_some() {
        let pointer = format!(
            "#/paths/{}/{}/responses/{status}/content/application~1json/schema",
            template
                .replace('~', "~0")
                .replace('/', "~1")
                .replace('{', "%7B")
                .replace('}', "%7D"),
            method.to_lowercase()
        );
        validate(doc, &pointer, body, path);
    }
}

fn validate(doc: &Value, pointer: &str, body: &Value, path: &str) {
    let mut schema = doc.clone();
    schema["$schema"] = Value::from("https://json-schema.org/draft/2020-12/schema");
    schema["$ref"] = Value::from(pointer);
    let validator = jsonschema::validator_for(&schema).expect("the document is a valid schema");
    let errors: Vec<String> = validator.iter_errors(body).map(|e| e.to_string()).collect();
    assert!(
        errors.is_empty(),
        "{path}: {body} does not match {pointer}: {errors:?}"
    );
}
