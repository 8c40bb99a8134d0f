//! The HTTP API's routes, auth and errors (issue 15, items 1-3): every documented operation is
//! served and answers as documented; no token, a wrong one, a reader and a granter; invalid
//! bodies name their field; a body over the limit is a 413; an unknown path is a JSON 404.
//! Every answer is checked against `schemas/openapi.json` by `Api::call`.

#[macro_use]
mod support_db;
mod api_support;
mod grants_support;
mod sync_support;

use api_support::*;
use serde_json::json;

on_both_backends!(
    every_documented_operation_is_served,
    tokens_and_roles_decide_who_may_call,
    invalid_requests_name_their_field_in_one_error_shape,
);

async fn every_documented_operation_is_served(url: String) {
    let api = Api::start(1501, &url).await;
    let doc = api.doc.clone();
    let mut operations = 0;
    for (template, item) in doc["paths"].as_object().expect("paths") {
        if template.starts_with("/webhooks") {
            continue;
        }
        for method in item.as_object().expect("methods").keys() {
            let path = template
                .replace("{id}", "999999")
                .replace("{workspace}", "acme")
                .replace("{repo}", "nothing-here")
                .replace("{who}", "nobody");
            let body = match (method.as_str(), template.as_str()) {
                ("post", "/v1/syncs") => Some(json!({"workspace": "not-configured-ws"})),
                ("post", _) => Some(json!({})),
                _ => None,
            };
            let (status, answer) = api
                .call(
                    &method.to_uppercase(),
                    &path,
                    Some(GRANTER),
                    body.as_ref(),
                    &[],
                )
                .await;
            // A route that is not served would answer the fallback's "no such endpoint".
            let message = answer["error"]["message"].as_str().unwrap_or_default();
            assert!(
                !message.contains("no such endpoint") && status != 405,
                "{method} {template} is documented but not served: {status} {answer}"
            );
            operations += 1;
        }
    }
    assert_eq!(operations, 10, "every /v1 operation was called");
    let (status, answer) = api
        .call("GET", "/v1/nothing", Some(GRANTER), None, &[])
        .await;
    assert_eq!(status, 404);
    assert_eq!(answer["error"]["code"], "not_found");
}

async fn tokens_and_roles_decide_who_may_call(url: String) {
    let api = Api::start(1502, &url).await;
    let (status, answer) = api.call("GET", "/v1/grants", None, None, &[]).await;
    assert_eq!(status, 401);
    assert_eq!(answer["error"]["code"], "unauthorized");
    let (status, answer) = api
        .call("GET", "/v1/grants", Some("not-a-token"), None, &[])
        .await;
    assert_eq!(status, 401);
    assert!(
        !answer.to_string().contains("not-a-token"),
        "the presented token is not echoed: {answer}"
    );
    let (status, answer) = api.call("GET", "/v1/grants", Some(READER), None, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(answer["grants"], json!([]));
    let (status, answer) = api
        .call("GET", "/v1/identities", Some(READER), None, &[])
        .await;
    assert_eq!(status, 200, "{answer}");
    let body = json!({"user": "x", "repo": "a/b", "level": "read", "for": "1h"});
    let (status, answer) = api
        .call("POST", "/v1/grants", Some(READER), Some(&body), &[])
        .await;
    assert_eq!(status, 403);
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("dashboards"));
    let (status, _) = api
        .call("DELETE", "/v1/grants/1", Some(READER), None, &[])
        .await;
    assert_eq!(status, 403);
    let (status, _) = api
        .call("DELETE", "/v1/grants/1", Some(GRANTER), None, &[])
        .await;
    assert_eq!(status, 404, "a granter reaches the handler");
}

async fn invalid_requests_name_their_field_in_one_error_shape(url: String) {
    let api = Api::start(1503, &url).await;
    let cases = [
        (json!({"repo": "a/b", "level": "read"}), "user"),
        (json!({"user": "u", "group": "g", "repo": "a/b"}), "user"),
        (json!({"user": "u", "level": "read"}), "repo"),
        (
            json!({"user": "u", "repo": "no-slash", "level": "read"}),
            "repo",
        ),
        (
            json!({"user": "u", "repo": "a/b", "level": "owner"}),
            "level",
        ),
        (
            json!({"user": "u", "repo": "a/b", "level": "read", "for": "soon"}),
            "for",
        ),
        (
            json!({"user": "u", "repo": "a/b", "level": "read", "until": "tomorrow"}),
            "until",
        ),
        (
            json!({"user": "u", "repo": "a/b", "level": "read", "for": "1h", "permanent": true}),
            "for",
        ),
        (
            json!({"user": "nobody@acme.io", "repo": "a/b", "level": "read"}),
            "user",
        ),
    ];
    for (body, field) in cases {
        let (status, answer) = api
            .call("POST", "/v1/grants", Some(GRANTER), Some(&body), &[])
            .await;
        assert_eq!(status, 422, "{body}: {answer}");
        assert_eq!(answer["error"]["field"], field, "{body}: {answer}");
    }
    let (status, answer) = api
        .call(
            "POST",
            "/v1/grants",
            Some(GRANTER),
            Some(&json!({"colour": "red"})),
            &[],
        )
        .await;
    assert_eq!(status, 422, "an unknown field: {answer}");
    let (status, answer) = api
        .call("GET", "/v1/grants?state=sleeping", Some(GRANTER), None, &[])
        .await;
    assert_eq!(
        (status, answer["error"]["field"].clone()),
        (422, json!("state"))
    );
    let (status, _) = api
        .call("GET", "/v1/grants/abc", Some(GRANTER), None, &[])
        .await;
    assert_eq!(status, 400);
    let big = json!({"user": "u", "repo": "a/b", "reason": "x".repeat(100 * 1024)});
    let (status, answer) = api
        .call("POST", "/v1/grants", Some(GRANTER), Some(&big), &[])
        .await;
    assert_eq!(status, 413, "{answer}");
    assert_eq!(answer["error"]["code"], "too_large");
    let response = api
        .http
        .post(format!("{}/v1/grants", api.base))
        .bearer_auth(GRANTER)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("send");
    let status = response.status().as_u16();
    let answer: serde_json::Value = response.json().await.expect("JSON error");
    check(&api.doc, "POST", "/v1/grants", status, &answer);
    assert_eq!(status, 400);
}

#[test]
fn the_config_refuses_a_public_listen_without_tokens_and_hides_them() {
    use bitbucket_access::config::Config;
    let load = |server: &str| {
        let text = format!(r#"{{"email": "a@b.io", "app_token": "t", "server": {server}}}"#);
        Config::from_json_str(&text, &|_| None, std::path::Path::new("/"))
    };
    let refused = load(r#"{"listen": "0.0.0.0:8080"}"#).expect_err("no tokens");
    assert_eq!(refused.problems()[0].pointer, "/server/listen");
    let config = load(
        r#"{"listen": "0.0.0.0:8080", "tokens": [{"name": "bot", "token": "tok-3c1f", "role": "reader"}]}"#,
    )
    .expect("a token allows it");
    assert!(
        !format!("{config:?}").contains("tok-3c1f"),
        "Debug hides tokens"
    );
    let twice = load(
        r#"{"tokens": [{"name": "bot", "token": "a-1", "role": "reader"}, {"name": "bot", "token": "b-2", "role": "granter"}]}"#,
    )
    .expect_err("a name twice");
    assert_eq!(twice.problems()[0].pointer, "/server/tokens/1/name");
}
