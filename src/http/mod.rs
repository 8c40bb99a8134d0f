//! The one HTTP layer of the Bitbucket and Jira clients.
//!
//! - [`transport`]: the request loop (budget admission before every attempt, an attempt
//!   deadline over connect, headers and body, a total deadline per request, bounded bodies,
//!   same-origin redirects and URLs only, the retry policy) and the [`Failure`] it reports.
//! - [`error`]: the [`Failure`] and [`HttpError`] the layer reports.
//! - [`auth`]: the `Authorization` header, marked sensitive.
//! - [`scrub`]: the [`Scrubber`] that removes every configured secret, in every form, from
//!   server text before it reaches an error.
//! - [`budget`]: the request budget (one per token: Bitbucket's and Jira's are separate).
//! - [`retry`]: when and how long to wait before trying again.
//!
//! The clients give a [`Failure`] their own words and hints (`bitbucket::ApiError`,
//! `jira::JiraError`); everything else about a request exists once, here.

pub mod auth;
pub mod budget;
pub mod error;
pub mod retry;
pub mod scrub;
pub mod transport;

pub use auth::Credentials;
pub use budget::{Budget, BudgetError, BudgetSettings, BudgetStats, RequestClass};
pub use error::{Failure, HttpError};
pub use retry::RetryPolicy;
pub use scrub::Scrubber;
pub use transport::{Limits, Request, Transport, TransportSettings};
