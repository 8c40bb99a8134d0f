//! bitbucket-access: an access-governance connector for Bitbucket Cloud.
//!
//! See ARCHITECTURE.md for the map of modules and the invariants they keep.

pub mod access;
pub mod api;
pub mod audit;
pub mod bitbucket;
pub mod cli;
pub mod clock;
pub mod config;
pub mod connect;
pub mod doctor;
pub mod domain;
pub mod endpoints;
pub mod grants;
pub mod http;
pub mod identity;
pub mod jira;
pub mod manifest;
pub mod org;
pub mod serve;
pub mod store;
pub mod sync;
pub mod telemetry;
