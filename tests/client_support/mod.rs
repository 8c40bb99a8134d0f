//! Shared set-up of the Bitbucket client tests against wiremock: fixtures recorded from the
//! official OpenAPI examples, a client with a roomy budget and a fast retry policy.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use bitbucket_access::bitbucket::{
    Auth, BitbucketClient, BudgetSettings, ClientSettings, PermissionTarget, RetryPolicy,
};
use secrecy::SecretString;
use serde_json::Value;
use std::time::Duration;
use wiremock::{MockServer, Request};

pub const EMAIL: &str = "svc@acme.com";
pub const TOKEN: &str = "ATATT3xFfGF0-super-secret-token";
pub const BEARER: &str = "access-token-very-secret";

pub fn fixture(name: &str) -> Value {
    let text = match name {
        "user_workspaces" => include_str!("../resources/user_workspaces.json"),
        "workspace_permissions" => include_str!("../resources/workspace_permissions.json"),
        "workspace_repository_permissions" => {
            include_str!("../resources/workspace_repository_permissions.json")
        }
        "repository_user_permissions" => {
            include_str!("../resources/repository_user_permissions.json")
        }
        "repository_user_permission_put" => {
            include_str!("../resources/repository_user_permission_put.json")
        }
        "repository_group_permissions" => {
            include_str!("../resources/repository_group_permissions.json")
        }
        "project_user_permissions" => include_str!("../resources/project_user_permissions.json"),
        "project_group_permissions" => include_str!("../resources/project_group_permissions.json"),
        "error_scopes" => include_str!("../resources/bitbucket_error_scopes.json"),
        "error_gone_change_2770" => {
            include_str!("../resources/bitbucket_error_gone_change_2770.json")
        }
        other => panic!("no fixture {other}"),
    };
    serde_json::from_str(text).expect("fixture is JSON")
}

/// A budget large enough never to pace, so only the tests about pacing see pacing.
pub fn roomy_budget() -> BudgetSettings {
    BudgetSettings {
        requests_per_hour: 3_600_000,
        reserve: 0,
        max_in_flight: 16,
    }
}

pub fn fast_retry(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
        max_total_wait: Duration::from_secs(2),
    }
}

pub fn settings(server: &MockServer, auth: Auth) -> ClientSettings {
    ClientSettings {
        base_url: server.uri().parse().expect("mock URL"),
        auth,
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(5),
        budget: roomy_budget(),
    }
}

pub fn api_token() -> Auth {
    Auth::ApiToken {
        email: EMAIL.to_owned(),
        token: SecretString::from(TOKEN.to_owned()),
    }
}

pub fn client(server: &MockServer) -> BitbucketClient {
    BitbucketClient::builder(settings(server, api_token()))
        .retry_policy(fast_retry(3))
        .build()
        .expect("client")
}

pub fn basic_header() -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{EMAIL}:{TOKEN}"))
    )
}

pub fn repo() -> PermissionTarget<'static> {
    PermissionTarget::Repository {
        workspace: "atlassian_tutorial",
        repo_slug: "geordi",
    }
}

pub async fn requests_to(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.unwrap_or_default()
}
