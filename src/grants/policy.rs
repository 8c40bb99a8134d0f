//! The `grant_policy` limits: allowed levels, the longest duration, standing grants, tickets.
//! Pure: the request's end is computed by the caller from the clock.

use chrono::{DateTime, Utc};

use crate::config::GrantPolicy;
use crate::domain::{GrantLevel, GrantTarget};

/// Why the policy refuses a grant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyRefusal {
    /// The level is not in `allowed_levels`.
    #[error("the level {level} is not in grant_policy.allowed_levels ({allowed}); ask an administrator to allow it in the config")]
    Level {
        /// The level asked for.
        level: GrantLevel,
        /// The allowed levels.
        allowed: String,
    },
    /// The level does not exist on this kind of target.
    #[error("the level {level} cannot be given on a {kind} (repositories take read|write|admin, projects also create-repo, groups take membership)")]
    LevelForTarget {
        /// The level asked for.
        level: GrantLevel,
        /// The target kind.
        kind: &'static str,
    },
    /// The grant would last longer than `max_duration`.
    #[error("the grant would last {asked}, longer than grant_policy.max_duration ({max}); ask for a shorter grant")]
    TooLong {
        /// The asked duration, as people read it.
        asked: String,
        /// The limit.
        max: String,
    },
    /// The end is not in the future.
    #[error("the end {0} is not in the future")]
    EndInPast(DateTime<Utc>),
    /// A standing grant while `allow_standing_grants` is false.
    #[error("grants without an end are not allowed (grant_policy.allow_standing_grants is false); give --for or --until")]
    Standing,
    /// No ticket while `require_ticket` is true.
    #[error("grant_policy.require_ticket is true; name the ticket with --ticket")]
    Ticket,
}

/// Checks a grant against the policy. `ends_at` is `None` for a standing grant.
pub fn check_policy(
    policy: &GrantPolicy,
    target: &GrantTarget,
    level: GrantLevel,
    now: DateTime<Utc>,
    ends_at: Option<DateTime<Utc>>,
    ticket: Option<&str>,
) -> Result<(), PolicyRefusal> {
    if !target.accepts(level) {
        return Err(PolicyRefusal::LevelForTarget {
            level,
            kind: target.kind(),
        });
    }
    // A membership gives no permission level of its own, so the level list does not apply.
    if let Some(project_level) = level.project_level() {
        if !policy.allowed_levels.contains(&project_level) {
            return Err(PolicyRefusal::Level {
                level,
                allowed: policy
                    .allowed_levels
                    .iter()
                    .map(|l| l.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    }
    match ends_at {
        None if !policy.allow_standing_grants => return Err(PolicyRefusal::Standing),
        None => {}
        Some(end) if end <= now => return Err(PolicyRefusal::EndInPast(end)),
        Some(end) => {
            let asked = (end - now).to_std().unwrap_or_default();
            if asked > policy.max_duration {
                return Err(PolicyRefusal::TooLong {
                    asked: crate::config::format_duration(asked),
                    max: crate::config::format_duration(policy.max_duration),
                });
            }
        }
    }
    if policy.require_ticket && ticket.is_none_or(|t| t.trim().is_empty()) {
        return Err(PolicyRefusal::Ticket);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{RepoRef, RepoSlug, WorkspaceSlug};

    fn repo() -> GrantTarget {
        GrantTarget::Repository {
            repository: RepoRef {
                workspace: WorkspaceSlug::parse("acme").expect("ws"),
                slug: RepoSlug::parse("api").expect("repo"),
            },
        }
    }

    #[test]
    fn the_policy_names_each_refusal() {
        let policy = GrantPolicy::default();
        let now = DateTime::<Utc>::UNIX_EPOCH;
        let hour = chrono::Duration::hours(1);
        assert_eq!(
            check_policy(
                &policy,
                &repo(),
                GrantLevel::Write,
                now,
                Some(now + hour),
                None
            ),
            Ok(())
        );
        assert!(matches!(
            check_policy(
                &policy,
                &repo(),
                GrantLevel::Admin,
                now,
                Some(now + hour),
                None
            ),
            Err(PolicyRefusal::Level { .. })
        ));
        assert!(matches!(
            check_policy(
                &policy,
                &repo(),
                GrantLevel::CreateRepo,
                now,
                Some(now + hour),
                None
            ),
            Err(PolicyRefusal::LevelForTarget { .. })
        ));
        let refusal = check_policy(
            &policy,
            &repo(),
            GrantLevel::Read,
            now,
            Some(now + chrono::Duration::days(31)),
            None,
        );
        assert!(matches!(refusal, Err(PolicyRefusal::TooLong { .. })));
        let strict = GrantPolicy {
            allow_standing_grants: false,
            require_ticket: true,
            ..GrantPolicy::default()
        };
        assert_eq!(
            check_policy(&strict, &repo(), GrantLevel::Read, now, None, Some("SEC-1")),
            Err(PolicyRefusal::Standing)
        );
        assert_eq!(
            check_policy(
                &strict,
                &repo(),
                GrantLevel::Read,
                now,
                Some(now + hour),
                None
            ),
            Err(PolicyRefusal::Ticket)
        );
    }
}
