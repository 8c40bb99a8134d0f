//! bitbucket-sim: a faithful local Bitbucket Cloud (2.0 API and the 1.0 groups API) and Jira
//! user API, for tests, benchmarks and the `demo` command.
//!
//! [`Sim::start`] binds two listeners on 127.0.0.1 (Bitbucket and Jira, ports chosen by the OS
//! unless [`SimOptions`] names them) and returns a [`SimHandle`] to read URLs and credentials,
//! inject faults, read request counters and change the [`World`] out of band.
//!
//! Codemap: [`world`] (data model, effective-permission rule, out-of-band helpers),
//! [`generate`] (seeded worlds), [`endpoints`] (scopes from `schemas/bitbucket-endpoints.json`),
//! [`api`] (routers, gate middleware, pagination; `v2`, `v1`, `jira`, `render`), [`bbql`] (the
//! `q=` subset), [`fields`] (`fields=`), [`state`] (credentials, rate windows, counters,
//! faults), [`net`] (connections that faults can cut). Tests: `cargo test -p bitbucket-sim`
//! (the contract test needs `/work/shared/reference`); benchmark:
//! `cargo bench -p bitbucket-sim --bench throughput`.
//!
//! Decisions where the official documents are silent (each also noted in its module):
//! - DELETE of an explicit permission that does not exist answers 404.
//! - `/workspaces/{ws}/permissions/repositories` lists the explicit, group, project and owner
//!   access of workspace members; the read that a public repository gives everyone is not
//!   listed (as Bitbucket's own listing excludes public repositories without a grant).
//! - Paging: `repositories/{ws}`, repository `permissions-config/users` and
//!   `permissions/repositories` use opaque `page` cursors; the other listings use page numbers.
//!   `size` is omitted on the cursor listings except `repositories/{ws}`, and on project
//!   `permissions-config/groups`.
//! - Faults apply to the Bitbucket listener only; see [`FaultControl`].

pub mod api;
pub mod bbql;
pub mod endpoints;
pub mod fields;
pub mod generate;
pub mod net;
pub mod state;
pub mod world;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use generate::{slugify, WorldSpec};
pub use state::SimOptions;
pub use world::{
    EffectivePermission, Group, Hook, JiraAccountType, Level, Membership, NewRepository, Project,
    ProjectLevel, Repository, Role, User, Workspace, World, WorldError,
};

use net::{ConnHandle, KillableListener};
use state::{AccessToken, ApiToken, Shared};

/// Why a simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not be opened on the loopback interface.
    #[error("cannot listen for the simulated {api} API on 127.0.0.1:{port}: {source}; choose another port, or 0 to let the system pick one")]
    Listen {
        /// Which API the listener was for (`Bitbucket` or `Jira`).
        api: &'static str,
        /// The port asked for (0: any).
        port: u16,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Binds a loopback listener and reads back its URL.
async fn listen(api: &'static str, port: u16) -> Result<(TcpListener, String), StartError> {
    let error = |source| StartError::Listen { api, port, source };
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .map_err(error)?;
    let url = format!("http://{}", listener.local_addr().map_err(error)?);
    Ok((listener, url))
}

/// Starts simulators.
pub struct Sim;

impl Sim {
    /// Serves `world` on two loopback listeners and returns the handle. Must be called inside a
    /// Tokio runtime; the servers run as tasks of that runtime.
    pub async fn start(world: World, opts: SimOptions) -> Result<SimHandle, StartError> {
        let (bb, bb_url) = listen("Bitbucket", opts.bitbucket_port).await?;
        let (jira, jira_url) = listen("Jira", opts.jira_port).await?;
        let shared = Arc::new(Shared::new(world, opts, bb_url, jira_url));

        // Standard credentials: the service account's token with every connector scope, the
        // legacy app password (410), and the Jira classic and scoped tokens.
        let admin = {
            let w = shared.read_world();
            w.admin().cloned()
        };
        let admin_email = admin.as_ref().map(|u| u.email.clone()).unwrap_or_default();
        let admin_token = shared.new_token("ATATT3x");
        let jira_token = shared.new_token("ATATT3xJ");
        let jira_scoped = shared.new_token("ATATT3xS");
        let app_password = shared.new_token("ATBB");
        {
            let mut c = shared.write_creds();
            if let Some(a) = &admin {
                c.api_tokens.insert(
                    admin_token.clone(),
                    ApiToken {
                        account_id: a.account_id.clone(),
                        email: a.email.clone(),
                        scopes: endpoints::connector_scopes().into_iter().collect(),
                    },
                );
            }
            c.app_password = (
                admin
                    .as_ref()
                    .map(|u| u.nickname.clone())
                    .unwrap_or_default(),
                app_password,
            );
            c.jira_classic = (admin_email.clone(), jira_token);
            c.jira_scoped = jira_scoped;
        }

        let bb_router = api::bitbucket_router(shared.clone());
        let jira_router = api::jira::router(shared.clone());
        let bb_listener = KillableListener::new(bb, shared.shutdown.clone());
        let jira_listener = KillableListener::new(jira, shared.shutdown.clone());
        let t1 = tokio::spawn(async move {
            let _ = axum::serve(
                bb_listener,
                bb_router.into_make_service_with_connect_info::<ConnHandle>(),
            )
            .await;
        });
        let t2 = tokio::spawn(async move {
            let _ = axum::serve(
                jira_listener,
                jira_router.into_make_service_with_connect_info::<ConnHandle>(),
            )
            .await;
        });
        // Webhook deliveries the simulator sends itself, when a hook is installed.
        let t3 = tokio::spawn(api::hooks_out::run(shared.clone()));
        Ok(SimHandle {
            shared,
            admin_email,
            admin_token,
            tasks: vec![t1, t2, t3],
        })
    }
}

/// A running simulator. Dropping it (or [`SimHandle::shutdown`]) stops both listeners and cuts
/// their open connections.
pub struct SimHandle {
    shared: Arc<Shared>,
    admin_email: String,
    admin_token: String,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Tokens stay out of Debug output, like every secret in this project.
        f.debug_struct("SimHandle")
            .field("bitbucket_url", &self.shared.bb_url)
            .field("jira_url", &self.shared.jira_url)
            .finish_non_exhaustive()
    }
}

impl SimHandle {
    /// Base URL of the Bitbucket API (`{url}/2.0/...`, `{url}/1.0/...`).
    pub fn bitbucket_url(&self) -> String {
        self.shared.bb_url.clone()
    }

    /// The simulated Atlassian organization: its settings, events and faults.
    pub fn org(&self) -> &api::org::OrgState {
        &self.shared.org
    }

    /// The Organizations API's base (`{url}/admin`), as `atlassian_admin.url` takes it.
    pub fn org_url(&self) -> String {
        format!("{}/admin", self.shared.jira_url)
    }

    /// Base URL of the Jira site (`{url}/rest/api/3/...`).
    pub fn jira_url(&self) -> String {
        self.shared.jira_url.clone()
    }

    /// Email of the service account (owner of every workspace but the last).
    pub fn admin_email(&self) -> String {
        self.admin_email.clone()
    }

    /// API token of the service account, with every scope the connector uses.
    pub fn admin_token(&self) -> String {
        self.admin_token.clone()
    }

    /// The service account's account id.
    pub fn admin_account_id(&self) -> String {
        self.shared.read_world().admin_account_id.clone()
    }

    /// Issues an API token for the user with this email and exactly these scopes. An unknown
    /// email yields a token that authenticates nobody (401).
    pub fn issue_token(&self, email: &str, scopes: &[&str]) -> String {
        let token = self.shared.new_token("ATATT3x");
        let account = self
            .shared
            .read_world()
            .user_by_email(email)
            .map(|u| (u.account_id.clone(), u.email.clone()));
        if let Some((account_id, email)) = account {
            self.shared.write_creds().api_tokens.insert(
                token.clone(),
                ApiToken {
                    account_id,
                    email,
                    scopes: scopes.iter().map(|s| s.to_string()).collect(),
                },
            );
        }
        token
    }

    /// Issues a workspace access token (Bearer) with legacy scopes such as `repository`,
    /// `project:admin`, `account`.
    pub fn issue_access_token(&self, workspace: &str, legacy_scopes: &[&str]) -> String {
        let token = self.shared.new_token("ATCTT3x");
        self.shared.write_creds().access_tokens.insert(
            token.clone(),
            AccessToken {
                id: token[..20.min(token.len())].to_string(),
                workspace: workspace.to_string(),
                scopes: legacy_scopes
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<BTreeSet<_>>(),
            },
        );
        token
    }

    /// Jira site credentials: (user email, classic API token).
    pub fn jira_credentials(&self) -> (String, String) {
        self.shared.read_creds().jira_classic.clone()
    }

    /// Leaves these accounts out of Jira's `users/search` listing; `user/bulk` still finds them.
    pub fn hide_from_jira_listing(&self, account_ids: &[String]) {
        let mut unlisted = self
            .shared
            .jira_unlisted
            .write()
            .unwrap_or_else(|p| p.into_inner());
        unlisted.extend(account_ids.iter().cloned());
    }

    /// A scoped Jira token: refused (401) on the site URL.
    pub fn jira_scoped_token(&self) -> String {
        self.shared.read_creds().jira_scoped.clone()
    }

    /// A legacy app password (username, password): Basic auth with it answers 410 CHANGE-3222.
    pub fn legacy_app_password(&self) -> (String, String) {
        self.shared.read_creds().app_password.clone()
    }

    /// The webhook deliveries the simulator has made so far, oldest first.
    pub fn deliveries(&self) -> Vec<api::hooks_out::Delivery> {
        self.shared.deliveries.all()
    }

    /// Requests served for `METHOD template`, e.g.
    /// `request_count("GET", "/2.0/repositories/{workspace}")`.
    pub fn request_count(&self, method: &str, path_template: &str) -> u64 {
        self.shared.count_of(&format!("{method} {path_template}"))
    }

    /// All counters, keyed `"METHOD template"`.
    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        self.shared.counts()
    }

    /// Total requests on both listeners.
    pub fn total_requests(&self) -> u64 {
        self.shared.total()
    }

    /// Zeroes the counters (rate windows are kept; see [`SimHandle::reset_rate_limits`]).
    pub fn reset_counters(&self) {
        self.shared.reset_counts();
    }

    /// Empties every rolling rate-limit window.
    pub fn reset_rate_limits(&self) {
        self.shared.reset_rate_windows();
    }

    /// Moves the rate-limit clock forward (to see the rolling window free up without waiting).
    pub fn advance_rate_clock(&self, by: Duration) {
        self.shared.advance_rate_clock(by);
    }

    /// Fault injection.
    pub fn faults(&self) -> FaultControl {
        FaultControl {
            shared: self.shared.clone(),
        }
    }

    /// Runs `f` on the world under the write lock: out-of-band changes and inspection.
    pub fn with_world<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        let mut w = self.shared.write_world();
        f(&mut w)
    }

    /// Runs `f` on the world as a change made by `actor` outside the connector (another
    /// administrator's session or token): its organization audit-log events name `actor`.
    /// Changes made before it with [`SimHandle::with_world`] keep the configured actor.
    pub fn with_world_as<R>(&self, actor: api::org::Actor, f: impl FnOnce(&mut World) -> R) -> R {
        let mut w = self.shared.write_world();
        self.shared.org.before_change(&w);
        let out = f(&mut w);
        self.shared.org.observe_as(&w, actor);
        out
    }

    /// The simulator's own effective permissions for a workspace (what
    /// `/workspaces/{ws}/permissions/repositories` reports).
    pub fn effective_permissions(&self, workspace: &str) -> Vec<EffectivePermission> {
        self.shared.read_world().effective_permissions(workspace)
    }

    /// Stops both listeners and cuts open connections.
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Fault switches of a running simulator (Bitbucket listener only). Counters count down per
/// request; `n = 0` switches a fault off.
#[derive(Clone)]
pub struct FaultControl {
    shared: Arc<Shared>,
}

impl FaultControl {
    /// Delay added before every response.
    pub fn set_latency(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.shared.faults.latency_us.store(us, Ordering::SeqCst);
    }

    /// Share (0..=1) of requests answered with a random 500, 502 or 503 before any processing.
    pub fn set_error_rate(&self, rate: f64) {
        let ppm = (rate.clamp(0.0, 1.0) * 1_000_000.0) as u32;
        self.shared
            .faults
            .error_rate_ppm
            .store(ppm, Ordering::SeqCst);
    }

    /// The next `n` requests fail with `status` before any processing (nothing is changed).
    pub fn fail_next(&self, n: u32, status: u16) {
        self.shared
            .faults
            .fail_status
            .store(u32::from(status), Ordering::SeqCst);
        self.shared.faults.fail_next.store(n, Ordering::SeqCst);
    }

    /// The next `n` requests are processed (a PUT is applied) but their connection is closed
    /// before the response is written: the client sees a dropped connection.
    pub fn drop_next_connections(&self, n: u32) {
        self.shared.faults.drop_next.store(n, Ordering::SeqCst);
    }

    /// The next `n` successful responses carry a complete HTTP message whose JSON body is cut in
    /// the middle (invalid JSON).
    pub fn malformed_next(&self, n: u32) {
        self.shared.faults.malformed_next.store(n, Ordering::SeqCst);
    }

    /// The next `n` paginated responses are cut mid-body at the HTTP level: `Content-Length`
    /// promises the whole page, half of it is sent, then the connection closes.
    pub fn truncate_next_page(&self, n: u32) {
        self.shared.faults.truncate_next.store(n, Ordering::SeqCst);
    }

    /// The next `n` paginated responses (with at least two items) are well-formed JSON missing
    /// the second half of `values`, while `next` and `size` stay as for the full page.
    pub fn short_next_page(&self, n: u32) {
        self.shared.faults.short_next.store(n, Ordering::SeqCst);
    }

    /// `/1.0/group-privileges` answers `status` (410 with Bitbucket's deprecation body, 403 or
    /// 404 with an error body, 200 with a body of another shape than the documented array, any
    /// other status with an error body) until switched off with 0, as when Atlassian retires or
    /// changes the endpoint or refuses it to the account.
    pub fn refuse_group_privileges(&self, status: u16) {
        self.shared
            .faults
            .refuse_group_privileges
            .store(u32::from(status), Ordering::SeqCst);
    }

    /// The `/1.0/groups` reads answer `status` (as [`Self::refuse_group_privileges`]) until
    /// switched off with 0.
    pub fn refuse_groups_v1(&self, status: u16) {
        self.shared
            .faults
            .refuse_groups_v1
            .store(u32::from(status), Ordering::SeqCst);
    }

    /// Switches every fault off.
    pub fn clear(&self) {
        self.refuse_group_privileges(0);
        self.refuse_groups_v1(0);
        self.set_latency(Duration::ZERO);
        self.set_error_rate(0.0);
        self.fail_next(0, 503);
        self.drop_next_connections(0);
        self.malformed_next(0);
        self.truncate_next_page(0);
        self.short_next_page(0);
    }
}
