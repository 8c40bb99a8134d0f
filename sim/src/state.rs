//! Shared server state: the world behind a lock, credentials, the per-user rolling rate window,
//! request counters and fault switches.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::world::World;

/// Options of a simulator instance.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Requests per user (or per access token) in a rolling hour; Bitbucket's default is 1,000.
    pub rate_limit_per_hour: u32,
    /// Requests per client IP in a rolling hour for anonymous calls (Bitbucket: 60).
    pub anonymous_rate_limit_per_hour: u32,
    /// Port of the Bitbucket listener (0: chosen by the OS).
    pub bitbucket_port: u16,
    /// Port of the Jira listener (0: chosen by the OS).
    pub jira_port: u16,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            rate_limit_per_hour: 1000,
            anonymous_rate_limit_per_hour: 60,
            bitbucket_port: 0,
            jira_port: 0,
        }
    }
}

/// A user API token.
#[derive(Debug, Clone)]
pub struct ApiToken {
    /// Owner's account id.
    pub account_id: String,
    /// Owner's email: the Basic username must match it.
    pub email: String,
    /// Granted scopes.
    pub scopes: BTreeSet<String>,
}

/// A workspace access token (Bearer).
#[derive(Debug, Clone)]
pub struct AccessToken {
    /// Identifier used for rate limiting and as the pseudo user's id.
    pub id: String,
    /// The only workspace the token can reach.
    pub workspace: String,
    /// Legacy OAuth scopes (`repository`, `project:admin`, ...).
    pub scopes: BTreeSet<String>,
}

/// All credentials the simulator accepts.
#[derive(Debug, Default)]
pub struct Credentials {
    /// Token string -> API token.
    pub api_tokens: HashMap<String, ApiToken>,
    /// Token string -> access token.
    pub access_tokens: HashMap<String, AccessToken>,
    /// The legacy app password (username, password), answered with 410.
    pub app_password: (String, String),
    /// Jira: email and classic API token.
    pub jira_classic: (String, String),
    /// Jira: a scoped token, refused (401) on the site URL.
    pub jira_scoped: String,
}

/// Who made a request.
#[derive(Debug, Clone)]
pub enum Caller {
    /// A user through an API token.
    User {
        /// Account id.
        account_id: String,
    },
    /// A workspace access token.
    AccessToken {
        /// Token id.
        id: String,
        /// Its workspace.
        workspace: String,
    },
    /// No credentials.
    Anonymous,
}

impl Caller {
    /// The account id of a user caller.
    pub fn account_id(&self) -> Option<&str> {
        match self {
            Caller::User { account_id } => Some(account_id),
            _ => None,
        }
    }
}

/// A rolling one-hour window kept in one-second buckets.
#[derive(Debug, Default)]
struct Window {
    buckets: VecDeque<(u64, u32)>,
    total: u64,
}

impl Window {
    fn admit(&mut self, now_s: u64, limit: u32) -> bool {
        while let Some(&(t, c)) = self.buckets.front() {
            if t + 3600 <= now_s {
                self.total -= u64::from(c);
                self.buckets.pop_front();
            } else {
                break;
            }
        }
        if self.total >= u64::from(limit) {
            return false;
        }
        match self.buckets.back_mut() {
            Some((t, c)) if *t == now_s => *c += 1,
            _ => self.buckets.push_back((now_s, 1)),
        }
        self.total += 1;
        true
    }
}

/// Fault switches; see [`crate::FaultControl`] for their meaning.
#[derive(Debug)]
pub struct Faults {
    pub(crate) latency_us: AtomicU64,
    pub(crate) error_rate_ppm: AtomicU32,
    pub(crate) fail_next: AtomicU32,
    pub(crate) fail_status: AtomicU32,
    pub(crate) drop_next: AtomicU32,
    pub(crate) malformed_next: AtomicU32,
    pub(crate) truncate_next: AtomicU32,
    pub(crate) short_next: AtomicU32,
    /// Status `/1.0/group-privileges` answers instead of its listing (0: served).
    pub(crate) refuse_group_privileges: AtomicU32,
    /// Status the `/1.0/groups` reads answer instead of their listings (0: served).
    pub(crate) refuse_groups_v1: AtomicU32,
    pub(crate) rng: Mutex<ChaCha8Rng>,
}

impl Faults {
    fn new(seed: u64) -> Self {
        Faults {
            latency_us: AtomicU64::new(0),
            error_rate_ppm: AtomicU32::new(0),
            fail_next: AtomicU32::new(0),
            fail_status: AtomicU32::new(503),
            drop_next: AtomicU32::new(0),
            malformed_next: AtomicU32::new(0),
            truncate_next: AtomicU32::new(0),
            short_next: AtomicU32::new(0),
            refuse_group_privileges: AtomicU32::new(0),
            refuse_groups_v1: AtomicU32::new(0),
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed ^ 0x5eed)),
        }
    }

    /// Takes one from a counter if it is positive.
    pub(crate) fn take(counter: &AtomicU32) -> bool {
        counter
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Draws whether this request fails with a random 5xx.
    pub(crate) fn roll_error(&self) -> Option<u16> {
        let ppm = self.error_rate_ppm.load(Ordering::Relaxed);
        if ppm == 0 {
            return None;
        }
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        if rng.gen_range(0..1_000_000) < ppm {
            Some([500u16, 502, 503][rng.gen_range(0..3)])
        } else {
            None
        }
    }
}

/// A rendered object and the world generation it was rendered from.
type CachedJson = (u64, Arc<[u8]>);

/// Everything the handlers share.
#[derive(Debug)]
pub struct Shared {
    /// The world.
    pub world: RwLock<World>,
    /// Credentials.
    pub creds: RwLock<Credentials>,
    /// Options.
    pub opts: SimOptions,
    /// Base URL of the Bitbucket listener.
    pub bb_url: String,
    /// Base URL of the Jira listener.
    pub jira_url: String,
    /// Cuts every connection when set.
    pub shutdown: Arc<AtomicBool>,
    /// Faults.
    pub faults: Faults,
    /// Account ids Jira's `users/search` leaves out (found only by `user/bulk`), as real
    /// sites leave out some accounts of their listing.
    pub jira_unlisted: RwLock<std::collections::BTreeSet<String>>,
    /// The Atlassian organization the workspaces are linked to (Organizations API).
    pub org: crate::api::org::OrgState,
    /// The webhook deliveries the simulator made (`api/hooks_out.rs`).
    pub deliveries: crate::api::hooks_out::Deliveries,
    /// The state of each workspace watched for webhook events, as last delivered.
    pub hook_snapshots: crate::api::hooks_out::Snapshots,
    counters: Mutex<HashMap<String, u64>>,
    total: AtomicU64,
    windows: Mutex<HashMap<String, Window>>,
    started: Instant,
    token_seq: AtomicU64,
    clock_offset: AtomicU64,
    world_gen: AtomicU64,
    repo_cache: Mutex<HashMap<String, CachedJson>>,
}

impl Shared {
    /// Builds the state.
    pub fn new(world: World, opts: SimOptions, bb_url: String, jira_url: String) -> Self {
        let seed = world.seed;
        let org = crate::api::org::OrgState::for_world(&world);
        Shared {
            world: RwLock::new(world),
            creds: RwLock::new(Credentials::default()),
            opts,
            bb_url,
            jira_url,
            shutdown: Arc::new(AtomicBool::new(false)),
            faults: Faults::new(seed),
            jira_unlisted: RwLock::new(std::collections::BTreeSet::new()),
            org,
            deliveries: Default::default(),
            hook_snapshots: Default::default(),
            counters: Mutex::new(HashMap::new()),
            total: AtomicU64::new(0),
            windows: Mutex::new(HashMap::new()),
            started: Instant::now(),
            token_seq: AtomicU64::new(1),
            clock_offset: AtomicU64::new(0),
            world_gen: AtomicU64::new(0),
            repo_cache: Mutex::new(HashMap::new()),
        }
    }

    /// Reads the world; a poisoned lock (a panicking test closure) still yields the data.
    pub fn read_world(&self) -> std::sync::RwLockReadGuard<'_, World> {
        self.world.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The world's generation: it grows with every write.
    pub fn world_generation(&self) -> u64 {
        self.world_gen.load(Ordering::SeqCst)
    }

    /// Writes the world; every write invalidates the rendered-object cache.
    pub fn write_world(&self) -> std::sync::RwLockWriteGuard<'_, World> {
        let guard = self.world.write().unwrap_or_else(|p| p.into_inner());
        self.world_gen.fetch_add(1, Ordering::SeqCst);
        guard
    }

    /// The serialized JSON of an object, rendered once per world generation. Callers hold the
    /// world's read lock, so the generation cannot move while they render.
    pub fn cached_json(&self, key: &str, render: impl FnOnce() -> Vec<u8>) -> Arc<[u8]> {
        let gen = self.world_gen.load(Ordering::SeqCst);
        if let Some((g, bytes)) = self
            .repo_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
        {
            if *g == gen {
                return bytes.clone();
            }
        }
        let bytes: Arc<[u8]> = render().into();
        self.repo_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_string(), (gen, bytes.clone()));
        bytes
    }

    /// Reads the credentials.
    pub fn read_creds(&self) -> std::sync::RwLockReadGuard<'_, Credentials> {
        self.creds.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes the credentials.
    pub fn write_creds(&self) -> std::sync::RwLockWriteGuard<'_, Credentials> {
        self.creds.write().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh token string, unique within this instance.
    pub fn new_token(&self, prefix: &str) -> String {
        let n = self.token_seq.fetch_add(1, Ordering::SeqCst);
        let seed = self.read_world().seed;
        let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(31).wrapping_add(n));
        let a: u64 = rng.gen();
        let b: u64 = rng.gen();
        format!("{prefix}{a:016x}{b:016x}{n:04x}")
    }

    /// Counts one request against its endpoint template.
    pub fn count(&self, key: String) {
        self.total.fetch_add(1, Ordering::Relaxed);
        let mut c = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        *c.entry(key).or_insert(0) += 1;
    }

    /// Counter snapshot.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        let c = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        c.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    /// One counter.
    pub fn count_of(&self, key: &str) -> u64 {
        let c = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        c.get(key).copied().unwrap_or(0)
    }

    /// Total requests.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Zeroes the counters (not the rate windows).
    pub fn reset_counts(&self) {
        self.counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.total.store(0, Ordering::Relaxed);
    }

    /// Clears every rate window.
    pub fn reset_rate_windows(&self) {
        self.windows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Admits one request for `key` within `limit` per rolling hour.
    pub fn admit(&self, key: &str, limit: u32) -> bool {
        let now_s = self.started.elapsed().as_secs() + self.clock_offset_s();
        let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        match w.get_mut(key) {
            Some(win) => win.admit(now_s, limit),
            None => {
                let mut win = Window::default();
                let ok = win.admit(now_s, limit);
                w.insert(key.to_string(), win);
                ok
            }
        }
    }

    fn clock_offset_s(&self) -> u64 {
        self.clock_offset.load(Ordering::Relaxed)
    }

    /// Moves the rate-limit clock forward, so tests can see the window roll without waiting.
    pub fn advance_rate_clock(&self, by: Duration) {
        self.clock_offset.fetch_add(by.as_secs(), Ordering::Relaxed);
    }

    /// Current fault latency.
    pub fn latency(&self) -> Duration {
        Duration::from_micros(self.faults.latency_us.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_rolls_after_an_hour() {
        let mut w = Window::default();
        assert!(w.admit(0, 2));
        assert!(w.admit(10, 2));
        assert!(!w.admit(3599, 2));
        assert!(w.admit(3600, 2));
    }
}
