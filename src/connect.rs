//! Builds the API clients a command needs from the loaded [`Config`].
//!
//! Kept apart from the client modules so that they know nothing of the config file, and apart
//! from the config so that it knows nothing of HTTP. Both clients get the configured `api`
//! timeouts and a scrubber that knows *every* configured secret (the Bitbucket token and the
//! Jira key), so neither server can make the other's secret appear in an error. Jira gets its
//! own request budget: its limits are separate from Bitbucket's.

use crate::bitbucket::{ApiError, Auth, BitbucketClient, BudgetSettings, ClientSettings};
use crate::config::Config;
use crate::http::{Budget, RetryPolicy, Scrubber};
use crate::jira::{JiraClient, JiraError, JiraRoute, JiraSettings};
use secrecy::ExposeSecret;
use std::sync::Arc;

/// Every configured secret in every form it travels in.
pub fn scrubber(config: &Config) -> Scrubber {
    let mut all = Scrubber::new().with_basic(&config.email, config.app_token.expose_secret());
    if let Some(jira) = &config.jira {
        all = all.merge(&Scrubber::new().with_basic(&jira.user, jira.key.expose_secret()));
    }
    if let Some(admin) = &config.atlassian_admin {
        all = all.merge(&Scrubber::new().with_bearer(admin.api_key.expose_secret()));
    }
    all
}

/// The Bitbucket client for the config's account, with its request budget and the default
/// retry policy (for long runs such as `sync`).
pub fn bitbucket_client(config: &Config) -> Result<BitbucketClient, ApiError> {
    bitbucket_client_with(config, RetryPolicy::default())
}

/// The Bitbucket client with the given retry policy (`doctor` uses
/// [`RetryPolicy::interactive`]).
pub fn bitbucket_client_with(
    config: &Config,
    retry: RetryPolicy,
) -> Result<BitbucketClient, ApiError> {
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
    BitbucketClient::builder(settings)
        .retry_policy(retry)
        .scrubber(scrubber(config))
        .build()
}

/// The Jira client, when the config has `jira_credentials`, with the default retry policy.
pub fn jira_client(config: &Config) -> Option<Result<JiraClient, JiraError>> {
    jira_client_with(config, RetryPolicy::default())
}

/// The Jira client with the given retry policy, the configured timeouts and its own budget.
pub fn jira_client_with(
    config: &Config,
    retry: RetryPolicy,
) -> Option<Result<JiraClient, JiraError>> {
    jira_settings(config).map(|settings| {
        let budget = Arc::new(Budget::new(settings.budget));
        JiraClient::with_parts(settings, retry, budget, scrubber(config))
    })
}

fn jira_settings(config: &Config) -> Option<JiraSettings> {
    config.jira.as_ref().map(|jira| {
        let mut settings = JiraSettings::new(jira.url.clone(), jira.user.clone(), jira.key.clone());
        settings.connect_timeout = config.api.connect_timeout;
        settings.read_timeout = config.api.read_timeout;
        settings
    })
}

/// The Jira client on the route the token works on: the site for a classic token, the API
/// gateway (`jira_credentials.gateway_url`) with the site's cloud id for a scoped one. Costs
/// one `myself` request, two more and the tenant look-up for a scoped token.
pub async fn jira_connect(
    config: &Config,
    retry: RetryPolicy,
) -> Option<Result<(JiraClient, JiraRoute), JiraError>> {
    let settings = jira_settings(config)?;
    let gateway = config.jira.as_ref()?.gateway_url.clone();
    let budget = Arc::new(Budget::new(settings.budget));
    Some(crate::jira::connect(settings, &gateway, retry, budget, scrubber(config)).await)
}

/// The Organizations API client, when the config has `atlassian_admin`, with the configured
/// timeouts and its own budget (the organization's limits are not Bitbucket's).
pub fn org_client_with(
    config: &Config,
    retry: RetryPolicy,
) -> Option<Result<crate::org::OrgClient, crate::org::OrgError>> {
    config.atlassian_admin.as_ref().map(|admin| {
        let mut settings = crate::org::OrgSettings::new(
            admin.url.clone(),
            admin.org_id.clone(),
            admin.api_key.clone(),
        );
        settings.connect_timeout = config.api.connect_timeout;
        settings.read_timeout = config.api.read_timeout;
        crate::org::OrgClient::new(settings, retry, scrubber(config))
    })
}
