//! Builds the API clients a command needs from the loaded [`Config`].
//!
//! Kept apart from the client modules so that they know nothing of the config file, and apart
//! from the config so that it knows nothing of HTTP.

use crate::bitbucket::{ApiError, Auth, BitbucketClient, BudgetSettings, ClientSettings};
use crate::config::Config;
use crate::jira::{JiraClient, JiraError, JiraSettings};

/// The Bitbucket client for the config's account, with its request budget.
pub fn bitbucket_client(config: &Config) -> Result<BitbucketClient, ApiError> {
    let settings = ClientSettings {
        base_url: config.api.bitbucket_url.clone(),
        auth: Auth::ApiToken {
            email: config.email.clone(),
            token: config.app_token.clone(),
        },
        connect_timeout: config.api.connect_timeout,
        read_timeout: config.api.read_timeout,
        budget: BudgetSettings {
            requests_per_hour: config.request_budget.requests_per_hour,
            reserve: config.request_budget.reserve,
            max_in_flight: config.request_budget.max_in_flight,
        },
    };
    BitbucketClient::new(settings)
}

/// The Jira client, when the config has `jira_credentials`.
pub fn jira_client(config: &Config) -> Option<Result<JiraClient, JiraError>> {
    config.jira.as_ref().map(|jira| {
        JiraClient::new(JiraSettings::new(
            jira.url.clone(),
            jira.user.clone(),
            jira.key.clone(),
        ))
    })
}
