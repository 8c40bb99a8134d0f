//! Shared set-up of the doctor tests: a simulator, configs pointing at it, the doctor run
//! through the library, a log capture, and the secret check.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use base64::Engine as _;
use bitbucket_access::config::{Config, DatabaseUrl, JiraCredentials};
use bitbucket_access::connect;
use bitbucket_access::doctor::{self, CapabilityState, DoctorReport};
use bitbucket_access::http::RetryPolicy;
use bitbucket_sim::{Role, Sim, SimHandle, SimOptions, World, WorldSpec};
use secrecy::SecretString;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use url::Url;

/// Starts a tiny simulated world.
pub async fn start_sim(seed: u64) -> SimHandle {
    Sim::start(
        World::generate(&WorldSpec::tiny(seed)),
        SimOptions::default(),
    )
    .await
    .expect("simulator starts")
}

/// A config for the simulator with these credentials, and Jira credentials when given.
pub fn config(sim: &SimHandle, email: &str, token: &str, jira: Option<(&str, &str)>) -> Config {
    let jira = jira.map(|(user, key)| JiraCredentials {
        url: Url::parse(&sim.jira_url()).expect("jira url"),
        user: user.to_string(),
        key: SecretString::from(key.to_string()),
        gateway_url: Url::parse(&sim.jira_url()).expect("gateway url"),
    });
    Config::for_simulator(
        Url::parse(&sim.bitbucket_url()).expect("bitbucket url"),
        email,
        SecretString::from(token.to_string()),
        jira,
        DatabaseUrl::parse("sqlite::memory:", Path::new(".")).expect("database url"),
    )
}

/// Builds the clients as the command does and runs the doctor.
pub async fn run_doctor(config: &Config) -> DoctorReport {
    let bitbucket = connect::bitbucket_client_with(config, RetryPolicy::interactive())
        .expect("bitbucket client");
    let jira = connect::jira_client_with(config, RetryPolicy::interactive())
        .map(|r| r.expect("jira client"));
    doctor::run(config, &bitbucket, jira.as_ref()).await
}

/// The slugs of the workspaces the service account owns and of those it only belongs to.
pub fn owned_and_member_workspaces(sim: &SimHandle) -> (Vec<String>, Vec<String>) {
    let admin = sim.admin_account_id();
    sim.with_world(|w| {
        let mut owned = Vec::new();
        let mut member = Vec::new();
        for (slug, ws) in &w.workspaces {
            match ws.members.get(&admin).map(|m| m.role) {
                Some(Role::Owner) => owned.push(slug.clone()),
                Some(Role::Member) => member.push(slug.clone()),
                None => {}
            }
        }
        (owned, member)
    })
}

/// The state of capability `id`.
pub fn capability<'r>(report: &'r DoctorReport, id: &str) -> &'r CapabilityState {
    &report
        .capabilities
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("capability {id} missing from the report"))
        .state
}

/// Every secret the simulator hands out, plus the Basic header values built from them, so a
/// leak of the encoded form is caught too.
pub fn secrets(sim: &SimHandle) -> Vec<String> {
    let (jira_user, jira_token) = sim.jira_credentials();
    let (nick, app_password) = sim.legacy_app_password();
    let b64 = |user: &str, secret: &str| {
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"))
    };
    vec![
        sim.admin_token(),
        jira_token.clone(),
        sim.jira_scoped_token(),
        app_password.clone(),
        b64(&sim.admin_email(), &sim.admin_token()),
        b64(&jira_user, &jira_token),
        b64(&nick, &app_password),
    ]
}

/// Fails when any secret shows in `text`.
pub fn assert_no_secret(what: &str, text: &str, secrets: &[String]) {
    for secret in secrets {
        assert!(
            !text.contains(secret.as_str()),
            "a secret leaked into the {what}:\n{text}"
        );
    }
}

/// Log lines written while a [`LogCapture`] is installed on this thread.
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

struct CaptureWriter(Arc<Mutex<Vec<u8>>>);

impl Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogCapture {
    /// Installs a debug-level subscriber (the simulator's own events excluded) for the current
    /// thread; the tests run on a current-thread runtime, so it sees every client event.
    pub fn install(&self) -> tracing::subscriber::DefaultGuard {
        let buffer = self.0.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "debug,bitbucket_sim=off",
            ))
            .with_ansi(false)
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
            .with_writer(move || CaptureWriter(buffer.clone()))
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

/// Checks the report, its JSON and its Debug form, and the captured logs, for secrets.
pub fn assert_report_has_no_secret(report: &DoctorReport, logs: &LogCapture, sim: &SimHandle) {
    let secrets = secrets(sim);
    let json = serde_json::to_string(report).expect("report serializes");
    assert_no_secret("JSON report", &json, &secrets);
    assert_no_secret("report's Debug output", &format!("{report:?}"), &secrets);
    let logs = logs.text();
    assert!(!logs.is_empty(), "the log capture saw no event at all");
    assert_no_secret("logs", &logs, &secrets);
}
