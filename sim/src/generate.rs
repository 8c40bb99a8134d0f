//! Seeded, deterministic world generation.
//!
//! The same `WorldSpec` always yields the same `World` (ChaCha8 seeded from `spec.seed`, ordered
//! maps everywhere). Grants are skewed the way real workspaces are: most repositories carry zero
//! to two explicit grants, a few carry dozens.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, TimeZone, Utc};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::world::{
    format_uuid, Group, JiraAccountType, Level, Membership, Project, ProjectLevel, Repository,
    Role, User, Workspace, World,
};

/// The shape of a generated world.
#[derive(Debug, Clone, PartialEq)]
pub struct WorldSpec {
    /// Seed of the generator: same spec, same world.
    pub seed: u64,
    /// Number of workspaces (at least 1).
    pub workspaces: usize,
    /// Projects in each workspace (at least 1).
    pub projects_per_workspace: usize,
    /// Repositories in total, spread over the workspaces.
    pub repositories: usize,
    /// Users in total (not counting the service account).
    pub users: usize,
    /// Groups in each workspace.
    pub groups: usize,
    /// Share of public repositories (0..1).
    pub public_ratio: f64,
    /// Share of users whose email Jira hides (0..1).
    pub hidden_email_ratio: f64,
    /// Share of users with no Jira account at all (0..1).
    pub no_jira_ratio: f64,
    /// Index of the workspace whose groups are administered in admin.atlassian.com, if any.
    pub admin_managed_workspace: Option<usize>,
}

impl WorldSpec {
    /// A small world for unit and integration tests: 2 workspaces, 12 repositories, 16 users.
    pub fn tiny(seed: u64) -> Self {
        WorldSpec {
            seed,
            workspaces: 2,
            projects_per_workspace: 2,
            repositories: 12,
            users: 16,
            groups: 3,
            public_ratio: 0.2,
            hidden_email_ratio: 0.25,
            no_jira_ratio: 0.15,
            admin_managed_workspace: Some(1),
        }
    }

    /// The world `demo` shows: 3 workspaces, 150 repositories, 60 users.
    pub fn demo() -> Self {
        WorldSpec {
            seed: 2026,
            workspaces: 3,
            projects_per_workspace: 4,
            repositories: 150,
            users: 60,
            groups: 5,
            public_ratio: 0.15,
            hidden_email_ratio: 0.2,
            no_jira_ratio: 0.1,
            admin_managed_workspace: Some(2),
        }
    }

    /// A large world for benchmarks: 20,000 repositories and 5,000 users in 4 workspaces.
    pub fn large(seed: u64) -> Self {
        WorldSpec {
            seed,
            workspaces: 4,
            projects_per_workspace: 25,
            repositories: 20_000,
            users: 5_000,
            groups: 40,
            public_ratio: 0.1,
            hidden_email_ratio: 0.2,
            no_jira_ratio: 0.1,
            admin_managed_workspace: Some(3),
        }
    }
}

const FIRST: &[&str] = &[
    "Zoë",
    "José",
    "Søren",
    "Łukasz",
    "Ana María",
    "Chloé",
    "Björn",
    "Ngọc",
    "Ахмед",
    "Ольга",
    "Jürgen",
    "Siobhán",
    "Dalia",
    "Mei",
    "Ravi",
    "Aiko",
    "Émile",
    "Nuño",
    "Grace",
    "Tomás",
    "Fatoumata",
    "Kai",
    "Ingrid",
    "Yusuf",
    "Priya",
    "Olu",
    "Hana",
    "Mateo",
    "Anneliese",
    "Wei",
];
const LAST: &[&str] = &[
    "Müller",
    "García",
    "Ødegaard",
    "Nowak",
    "O'Brien",
    "Nguyễn",
    "Петров",
    "Dubois",
    "Tanaka",
    "Kowalczyk",
    "Silva",
    "Smith",
    "Öztürk",
    "Rossi",
    "Johansson",
    "Kim",
    "Haddad",
    "Bianchi",
    "Fernández",
    "Ivanova",
    "Chen",
    "Okafor",
    "Schäfer",
    "Lindqvist",
    "Moreau",
];
const ASCII_FIRST: &[&str] = &[
    "zoe",
    "jose",
    "soren",
    "lukasz",
    "anamaria",
    "chloe",
    "bjorn",
    "ngoc",
    "akhmed",
    "olga",
    "jurgen",
    "siobhan",
    "dalia",
    "mei",
    "ravi",
    "aiko",
    "emile",
    "nuno",
    "grace",
    "tomas",
    "fatoumata",
    "kai",
    "ingrid",
    "yusuf",
    "priya",
    "olu",
    "hana",
    "mateo",
    "anneliese",
    "wei",
];
const ASCII_LAST: &[&str] = &[
    "muller",
    "garcia",
    "odegaard",
    "nowak",
    "obrien",
    "nguyen",
    "petrov",
    "dubois",
    "tanaka",
    "kowalczyk",
    "silva",
    "smith",
    "ozturk",
    "rossi",
    "johansson",
    "kim",
    "haddad",
    "bianchi",
    "fernandez",
    "ivanova",
    "chen",
    "okafor",
    "schafer",
    "lindqvist",
    "moreau",
];
const DOMAINS: &[&str] = &[
    "acme.example",
    "acme.example",
    "acme.example",
    "acme.example",
    "eu.acme.example",
    "contractor.example",
    "mail.example",
];
const WS_NAMES: &[(&str, &str)] = &[
    ("acme", "Acme Corp"),
    ("acme-labs", "Acme Labs — Forschung"),
    ("globex", "Globex Ünited"),
    ("initech", "Initech 株式会社"),
    ("umbrella", "Umbrella"),
    ("hooli", "Hooli"),
];
const PROJECT_WORDS: &[&str] = &[
    "Payments",
    "Platform",
    "Données",
    "Mobile",
    "Infra",
    "Sécurité",
    "Growth",
    "Search",
    "Identity",
    "Billing",
    "Data Lake",
    "Checkout",
];
const REPO_ADJ: &[&str] = &[
    "payments", "core", "legacy", "edge", "fast", "internal", "public", "shared", "new", "smart",
    "grüne", "naïve", "café",
];
const REPO_NOUN: &[&str] = &[
    "api",
    "service",
    "worker",
    "ui",
    "gateway",
    "lib",
    "sdk",
    "infra",
    "docs",
    "pipeline",
    "scheduler",
    "cache",
    "importer",
];
const GROUP_NAMES: &[&str] = &[
    "Developers",
    "Administrators",
    "QA Team",
    "Opérations",
    "Contractors",
    "Security Champions",
    "Release Managers",
    "Data Science",
    "Support",
    "Designers",
];
const LANGS: &[&str] = &[
    "rust",
    "go",
    "python",
    "java",
    "typescript",
    "kotlin",
    "c++",
];

/// Turns a display name into a Bitbucket-style ASCII slug.
pub fn slugify(name: &str) -> String {
    let mut out = String::new();
    let mut dash = false;
    for c in name.chars() {
        let mapped = match c {
            'a'..='z' | '0'..='9' => Some(c),
            'A'..='Z' => Some(c.to_ascii_lowercase()),
            'ä' | 'à' | 'á' | 'â' | 'Ä' => Some('a'),
            'ö' | 'ó' | 'ø' | 'Ö' => Some('o'),
            'ü' | 'ú' | 'Ü' => Some('u'),
            'é' | 'è' | 'ê' | 'É' => Some('e'),
            'ï' | 'í' => Some('i'),
            'ç' => Some('c'),
            'ñ' => Some('n'),
            _ => None,
        };
        match mapped {
            Some(m) => {
                out.push(m);
                dash = false;
            }
            None => {
                if !dash && !out.is_empty() {
                    out.push('-');
                    dash = true;
                }
            }
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    if out.is_empty() {
        out.push('x');
    }
    out
}

fn uuid(rng: &mut ChaCha8Rng) -> String {
    format_uuid(rng.gen(), rng.gen())
}

fn time_before(rng: &mut ChaCha8Rng, now: DateTime<Utc>, max_days: i64) -> DateTime<Utc> {
    let micros = rng.gen_range(0..max_days * 86_400_000_000);
    now - Duration::microseconds(micros)
}

/// Draws a skewed count: mostly 0..2, sometimes dozens (a Pareto-like tail).
fn skewed(rng: &mut ChaCha8Rng, cap: usize) -> usize {
    let r: f64 = rng.gen();
    let k = ((1.0 / (r + 0.02)).powf(1.1) - 1.0).max(0.0) as usize;
    k.min(cap)
}

impl World {
    /// Generates a world from its spec; deterministic for a given spec.
    pub fn generate(spec: &WorldSpec) -> World {
        let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
        let now = Utc
            .with_ymd_and_hms(2026, 11, 1, 9, 0, 0)
            .single()
            .unwrap_or_else(Utc::now);
        let n_ws = spec.workspaces.max(1);

        // Users. The service account comes first so that it is stable across sizes.
        let mut users = BTreeMap::new();
        let admin_uuid = uuid(&mut rng);
        let admin_account_id = format!("557058:{}", &admin_uuid[1..admin_uuid.len() - 1]);
        users.insert(
            admin_account_id.clone(),
            User {
                account_id: admin_account_id.clone(),
                uuid: admin_uuid,
                display_name: "Access Connector (service)".into(),
                nickname: "access-connector".into(),
                email: "svc-access@acme.example".into(),
                email_visible_in_jira: true,
                jira_account_type: Some(JiraAccountType::Atlassian),
                app_user: false,
                active: true,
                created_on: now - Duration::days(400),
            },
        );
        let mut user_ids = Vec::with_capacity(spec.users);
        for i in 0..spec.users {
            let fi = rng.gen_range(0..FIRST.len());
            let li = rng.gen_range(0..LAST.len());
            let u = uuid(&mut rng);
            let prefix = if rng.gen_bool(0.8) {
                "557058"
            } else {
                "712020"
            };
            let account_id = format!("{prefix}:{}", &u[1..u.len() - 1]);
            let kind: f64 = rng.gen();
            let jira = if kind < spec.no_jira_ratio {
                None
            } else if kind < spec.no_jira_ratio + 0.04 {
                Some(JiraAccountType::App)
            } else if kind < spec.no_jira_ratio + 0.07 {
                Some(JiraAccountType::Customer)
            } else {
                Some(JiraAccountType::Atlassian)
            };
            // Small worlds still cover every identity case: a user without Jira, an app
            // account, a customer account (and, below, a hidden email).
            let jira = match i {
                2 => None,
                4 => Some(JiraAccountType::App),
                6 => Some(JiraAccountType::Customer),
                1 | 3 | 5 => Some(JiraAccountType::Atlassian),
                _ => jira,
            };
            let (display_name, nickname, email) = if jira == Some(JiraAccountType::App) {
                (
                    format!("{} Bot {i}", REPO_NOUN[i % REPO_NOUN.len()]),
                    format!("bot-{i}"),
                    format!("bot-{i}@connect.atlassian.example"),
                )
            } else {
                let domain = DOMAINS[rng.gen_range(0..DOMAINS.len())];
                (
                    format!("{} {}", FIRST[fi], LAST[li]),
                    format!("{}{}", ASCII_FIRST[fi], i),
                    format!("{}.{}{}@{}", ASCII_FIRST[fi], ASCII_LAST[li], i, domain),
                )
            };
            let hidden = rng.gen_bool(spec.hidden_email_ratio.clamp(0.0, 1.0)) || i == 3;
            let hidden = hidden && i != 1 && i != 5;
            users.insert(
                account_id.clone(),
                User {
                    account_id: account_id.clone(),
                    uuid: u,
                    display_name,
                    nickname,
                    email,
                    email_visible_in_jira: !hidden && jira != Some(JiraAccountType::App),
                    jira_account_type: jira,
                    // Apps' accounts are app users on Bitbucket's side too.
                    app_user: jira == Some(JiraAccountType::App),
                    active: rng.gen_bool(0.97),
                    created_on: time_before(&mut rng, now, 2000),
                },
            );
            user_ids.push(account_id);
        }

        // Workspaces with members: each user has a home workspace, a quarter join a second.
        let mut workspaces = BTreeMap::new();
        let mut ws_slugs = Vec::new();
        for wi in 0..n_ws {
            let (slug, name) = if let Some((slug, name)) = WS_NAMES.get(wi) {
                (slug.to_string(), name.to_string())
            } else {
                (format!("workspace-{wi}"), format!("Workspace №{wi}"))
            };
            ws_slugs.push(slug.clone());
            let mut members = BTreeMap::new();
            // The service account owns every workspace but the last (when there are several),
            // so that "token user does not administer this workspace" can be tested.
            let admin_role = if n_ws > 1 && wi == n_ws - 1 {
                Role::Member
            } else {
                Role::Owner
            };
            members.insert(
                admin_account_id.clone(),
                Membership {
                    role: admin_role,
                    added_on: now - Duration::days(300),
                },
            );
            workspaces.insert(
                slug.clone(),
                Workspace {
                    slug,
                    uuid: uuid(&mut rng),
                    name,
                    created_on: time_before(&mut rng, now, 3000),
                    members,
                    projects: BTreeMap::new(),
                    repositories: BTreeMap::new(),
                    groups: BTreeMap::new(),
                    hooks: BTreeMap::new(),
                    groups_admin_managed: spec.admin_managed_workspace == Some(wi),
                    seat_limit: None,
                },
            );
        }
        let mut ws_members: Vec<Vec<String>> = vec![Vec::new(); n_ws];
        for (i, id) in user_ids.iter().enumerate() {
            let home = i % n_ws;
            let mut homes = vec![home];
            if n_ws > 1 && rng.gen_bool(0.25) {
                let other = (home + 1 + rng.gen_range(0..n_ws - 1)) % n_ws;
                homes.push(other);
            }
            for h in homes {
                let w = workspaces
                    .get_mut(&ws_slugs[h])
                    .expect("workspace generated above");
                let added_on = time_before(&mut rng, now, 900);
                w.members.insert(
                    id.clone(),
                    Membership {
                        role: Role::Member,
                        added_on,
                    },
                );
                ws_members[h].push(id.clone());
            }
        }
        // One or two human owners per workspace.
        for (wi, slug) in ws_slugs.iter().enumerate() {
            let w = workspaces.get_mut(slug).expect("workspace generated above");
            let owners = 1 + usize::from(ws_members[wi].len() > 8);
            for id in ws_members[wi].iter().take(owners) {
                if let Some(m) = w.members.get_mut(id) {
                    m.role = Role::Owner;
                }
            }
        }

        for (wi, slug) in ws_slugs.iter().enumerate() {
            let w = workspaces.get_mut(slug).expect("workspace generated above");
            // Ordinary members (not owners, not the service account) receive explicit grants,
            // since Bitbucket refuses explicit permissions for the workspace owner.
            let grantable: Vec<String> = ws_members[wi]
                .iter()
                .filter(|id| matches!(w.members.get(*id), Some(m) if m.role == Role::Member))
                .cloned()
                .collect();

            // Groups with skewed sizes.
            let mut group_slugs = Vec::new();
            for gi in 0..spec.groups {
                let base = GROUP_NAMES[gi % GROUP_NAMES.len()];
                let name = if gi < GROUP_NAMES.len() {
                    base.to_string()
                } else {
                    format!("{base} {}", gi / GROUP_NAMES.len() + 1)
                };
                let gslug = slugify(&name);
                let size = (1 + skewed(&mut rng, grantable.len())).min(grantable.len());
                let members: BTreeSet<String> =
                    grantable.choose_multiple(&mut rng, size).cloned().collect();
                group_slugs.push(gslug.clone());
                w.groups.insert(
                    gslug.clone(),
                    Group {
                        slug: gslug,
                        name,
                        members,
                    },
                );
            }

            // Projects.
            let mut keys = Vec::new();
            for pi in 0..spec.projects_per_workspace.max(1) {
                let word = PROJECT_WORDS[pi % PROJECT_WORDS.len()];
                let name = if pi < PROJECT_WORDS.len() {
                    word.to_string()
                } else {
                    format!("{word} {}", pi / PROJECT_WORDS.len() + 1)
                };
                let mut key: String = slugify(word)
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric())
                    .take(4)
                    .collect::<String>()
                    .to_ascii_uppercase();
                if pi >= PROJECT_WORDS.len() {
                    key.push_str(&(pi / PROJECT_WORDS.len() + 1).to_string());
                }
                let mut user_permissions = BTreeMap::new();
                let mut group_permissions = BTreeMap::new();
                for _ in 0..rng.gen_range(0..=3usize) {
                    if let Some(u) = grantable.choose(&mut rng) {
                        let l = [
                            ProjectLevel::Read,
                            ProjectLevel::Write,
                            ProjectLevel::CreateRepo,
                            ProjectLevel::Admin,
                        ][rng.gen_range(0..4)];
                        user_permissions.insert(u.clone(), l);
                    }
                }
                for _ in 0..rng.gen_range(0..=2usize) {
                    if let Some(g) = group_slugs.choose(&mut rng) {
                        let l = [
                            ProjectLevel::Read,
                            ProjectLevel::Write,
                            ProjectLevel::CreateRepo,
                        ][rng.gen_range(0..3)];
                        group_permissions.insert(g.clone(), l);
                    }
                }
                let created_on = time_before(&mut rng, now, 1500);
                w.projects.insert(
                    key.clone(),
                    Project {
                        key: key.clone(),
                        uuid: uuid(&mut rng),
                        name,
                        description: format!("Projekt {word} — owned by the {word} team"),
                        is_private: true,
                        created_on,
                        updated_on: created_on + Duration::days(rng.gen_range(0..300)),
                        user_permissions,
                        group_permissions,
                    },
                );
                keys.push(key);
            }

            // Repositories: an even share of the total per workspace (the first absorbs the rest).
            let share = spec.repositories / n_ws + usize::from(wi < spec.repositories % n_ws);
            for ri in 0..share {
                let adj = REPO_ADJ[rng.gen_range(0..REPO_ADJ.len())];
                let noun = REPO_NOUN[rng.gen_range(0..REPO_NOUN.len())];
                let name = format!("{adj}-{noun}-{ri}");
                let rslug = slugify(&name);
                let project_key = keys[rng.gen_range(0..keys.len())].clone();
                let mut user_permissions = BTreeMap::new();
                let n_users = skewed(&mut rng, grantable.len() / 2);
                for u in grantable.choose_multiple(&mut rng, n_users) {
                    let l = match rng.gen_range(0..10) {
                        0..=4 => Level::Read,
                        5..=8 => Level::Write,
                        _ => Level::Admin,
                    };
                    user_permissions.insert(u.clone(), l);
                }
                let mut group_permissions = BTreeMap::new();
                let n_groups = rng.gen_range(0..=2usize);
                for g in group_slugs.choose_multiple(&mut rng, n_groups) {
                    let l = match rng.gen_range(0..10) {
                        0..=5 => Level::Read,
                        6..=8 => Level::Write,
                        _ => Level::Admin,
                    };
                    group_permissions.insert(g.clone(), l);
                }
                let created_on = time_before(&mut rng, now, 1500);
                let updated_on = created_on
                    + Duration::microseconds(
                        rng.gen_range(0..(now - created_on).num_microseconds().unwrap_or(1).max(1)),
                    );
                w.repositories.insert(
                    rslug.clone(),
                    Repository {
                        slug: rslug,
                        uuid: uuid(&mut rng),
                        name,
                        project_key,
                        is_private: !rng.gen_bool(spec.public_ratio.clamp(0.0, 1.0)),
                        description: format!("{adj} {noun} ({ri})"),
                        language: LANGS[rng.gen_range(0..LANGS.len())].to_string(),
                        size: rng.gen_range(1_000..50_000_000),
                        created_on,
                        updated_on,
                        user_permissions,
                        group_permissions,
                    },
                );
            }
        }

        World {
            seed: spec.seed,
            workspaces,
            users,
            admin_account_id,
            now,
        }
    }
}
