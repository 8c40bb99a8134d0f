//! Grants through the HTTP API (issue 15, items 1 and 3) against the simulator: a grant made
//! with a granter token names the token as requester and shows in the listing; a retry with
//! the same Idempotency-Key returns the first grant and Bitbucket is written once; the same key
//! with another body is refused; DELETE ends the grant and restores what stood before.

#[macro_use]
mod support_db;
mod api_support;
mod grants_support;
mod sync_support;

use api_support::*;
use grants_support::{level_in_sim, slots, writes};
use serde_json::json;

on_both_backends!(
    an_idempotent_retry_returns_the_first_grant,
    delete_ends_a_grant_and_restores,
);

async fn an_idempotent_retry_returns_the_first_grant(url: String) {
    let api = Api::start(1511, &url).await;
    let slot = slots(&api.sim, 1).remove(0);
    let body = json!({"user": slot.account, "repo": format!("{}/{}", slot.ws, slot.repo),
                      "level": "write", "for": "8h", "ticket": "SEC-9", "reason": "incident"});
    let key = [("Idempotency-Key", "retry-1")];
    let (status, first) = api
        .call("POST", "/v1/grants", Some(GRANTER), Some(&body), &key)
        .await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(
        first["requested_by"], "portal",
        "the token's name is the requester"
    );
    assert_eq!(first["state"], "active");
    let puts = writes(&api.sim).0;
    let (status, again) = api
        .call("POST", "/v1/grants", Some(GRANTER), Some(&body), &key)
        .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        again["id"], first["id"],
        "the retry answers the first grant"
    );
    assert_eq!(
        writes(&api.sim).0,
        puts,
        "the retry wrote nothing to Bitbucket"
    );
    let mut other = body.clone();
    other["level"] = json!("admin");
    let (status, refused) = api
        .call("POST", "/v1/grants", Some(GRANTER), Some(&other), &key)
        .await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["error"]["code"], "idempotency_key_reused");
    let (_, list) = api.call("GET", "/v1/grants", Some(READER), None, &[]).await;
    assert_eq!(list["grants"].as_array().map(Vec::len), Some(1), "{list}");
    let target = format!(
        "/v1/grants?state=active&principal=user:{}&target={}/{}",
        slot.account, slot.ws, slot.repo
    );
    let (_, filtered) = api.call("GET", &target, Some(READER), None, &[]).await;
    assert_eq!(filtered["grants"][0]["id"], first["id"]);
    let (_, none) = api
        .call("GET", "/v1/grants?state=revoked", Some(READER), None, &[])
        .await;
    assert_eq!(none["grants"], json!([]));
}

async fn delete_ends_a_grant_and_restores(url: String) {
    let api = Api::start(1512, &url).await;
    let slot = slots(&api.sim, 1).remove(0);
    let body = json!({"user": slot.account, "repo": format!("{}/{}", slot.ws, slot.repo),
                      "level": "read", "for": "2h"});
    let (status, grant) = api
        .call("POST", "/v1/grants", Some(GRANTER), Some(&body), &[])
        .await;
    assert_eq!(status, 201, "{grant}");
    assert!(
        level_in_sim(&api.sim, &slot).is_some(),
        "the grant is in Bitbucket"
    );
    let id = grant["id"].as_i64().expect("id");
    let (status, shown) = api
        .call("GET", &format!("/v1/grants/{id}"), Some(READER), None, &[])
        .await;
    assert_eq!((status, shown["id"].as_i64()), (200, Some(id)));
    let (status, ended) = api
        .call(
            "DELETE",
            &format!("/v1/grants/{id}"),
            Some(GRANTER),
            None,
            &[],
        )
        .await;
    assert_eq!(status, 200, "{ended}");
    assert_eq!(ended["state"], "revoked");
    assert_eq!(
        level_in_sim(&api.sim, &slot),
        None,
        "nothing stood before, so nothing stands"
    );
    let (status, again) = api
        .call(
            "DELETE",
            &format!("/v1/grants/{id}"),
            Some(GRANTER),
            None,
            &[],
        )
        .await;
    assert_eq!(status, 409, "an ended grant cannot end again: {again}");
}
