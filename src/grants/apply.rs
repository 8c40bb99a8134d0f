//! Giving a grant: read the slot, decide (satisfied, conflict, or raise), store the intent, call
//! Bitbucket, record the outcome. Finishing a pending grant after a crash takes the same path
//! from "intent stored".

use serde_json::json;

use super::engine::{audit, level_json, Engine, Step};
use super::remote::{describe_calls, read_level, set_level, PlannedCall};
use super::request::GrantPlan;
use super::GrantError;
use crate::bitbucket::ErrorKind;
use crate::config::OnConflict;
use crate::domain::{standing_level, Grant, GrantLevel, GrantState, NewGrant, SlotKey};
use crate::store::{AuditKind, GrantRecord, GrantStep};

impl Engine<'_> {
    /// Gives a grant (already through the preflight): finishes the slot's unfinished grants,
    /// then records it satisfied, in conflict, or pending and applies it.
    pub async fn grant(&self, plan: &GrantPlan) -> Result<Grant, GrantError> {
        let slot = plan.slot();
        self.with_slot(&slot, self.grant_locked(&slot, plan)).await
    }

    /// The Bitbucket calls [`Engine::grant`] would make for this plan (it reads the slot's level
    /// to know whether a PUT is needed); writes nothing.
    pub async fn dry_run(&self, plan: &GrantPlan) -> Result<Vec<PlannedCall>, GrantError> {
        let slot = plan.slot();
        let grants = self.store.slot_grants(&slot).await?;
        let in_force: Vec<GrantLevel> = grants
            .iter()
            .filter(|g| g.state.is_in_force())
            .map(|g| g.level)
            .collect();
        let current = read_level(&self.client, &slot).await?;
        let baseline = match self.store.grant_slot(&slot).await? {
            Some(s) if !in_force.is_empty() => s.baseline,
            _ => current,
        };
        let wanted = standing_level(baseline, in_force).max(Some(plan.level));
        Ok(describe_calls(&slot, (wanted != current).then_some(wanted)))
    }

    async fn grant_locked(&self, slot: &SlotKey, plan: &GrantPlan) -> Result<Grant, GrantError> {
        self.reconcile_slot(slot).await?;
        let grants = self.store.slot_grants(slot).await?;
        if let Some(g) = grants.iter().find(|g| !g.state.is_in_force()) {
            return Err(GrantError::Unfinished {
                slot: slot.to_string(),
                id: g.id,
                state: g.state,
            });
        }
        let in_force: Vec<GrantLevel> = grants.iter().map(|g| g.level).collect();
        let stored = self.store.grant_slot(slot).await?;
        let current = read_level(&self.client, slot).await?;
        let now = self.now();
        // The baseline is read when the slot's first grant in force begins; later grants must
        // use the stored one, since Bitbucket then shows a granted level.
        let (baseline, fresh, last_set) = match (&stored, in_force.is_empty()) {
            (Some(s), false) => (s.baseline, None, s.last_set),
            _ => (current, Some(current), current),
        };
        let standing = standing_level(baseline, in_force.iter().copied());
        let wanted = standing.max(Some(plan.level));
        let mut new = NewGrant {
            principal: plan.principal.clone(),
            target: plan.target.clone(),
            level: plan.level,
            baseline,
            planned: wanted,
            requested_by: plan.requested_by.clone(),
            reason: plan.reason.clone(),
            ticket: plan.ticket.clone(),
            created_at: now,
            starts_at: now,
            expires_at: plan.expires_at,
            state: GrantState::Pending,
        };
        let details = json!({
            "level": plan.level.as_str(),
            "baseline": baseline.map(GrantLevel::as_str),
            "expires_at": plan.expires_at,
            "requested_by": plan.requested_by,
            "reason": plan.reason,
            "ticket": plan.ticket,
        });
        let conflict = current != last_set;
        if conflict && self.settings.on_conflict == OnConflict::Keep {
            new.state = GrantState::Conflict;
            let entry = audit(
                now,
                &plan.requested_by,
                AuditKind::Conflict,
                None,
                slot,
                (level_json(last_set), level_json(current)),
                json!({ "expected": last_set.map(GrantLevel::as_str),
                        "observed": current.map(GrantLevel::as_str),
                        "on_conflict": "keep", "request": details }),
            );
            return self.record(new, fresh, vec![entry]).await;
        }
        if !conflict && wanted == current {
            new.state = GrantState::Satisfied;
            let entry = audit(
                now,
                &plan.requested_by,
                AuditKind::Grant,
                None,
                slot,
                (level_json(current), level_json(current)),
                with(details, "outcome", "satisfied"),
            );
            return self.record(new, fresh, vec![entry]).await;
        }
        let entry = audit(
            now,
            &plan.requested_by,
            AuditKind::Grant,
            None,
            slot,
            (level_json(current), level_json(wanted)),
            with(details, "outcome", "pending"),
        );
        let pending = self.record(new, fresh, vec![entry]).await?;
        self.stop_after(Step::Intent)?;
        self.apply_pending(&pending, Some(current), conflict).await
    }

    async fn record(
        &self,
        grant: NewGrant,
        fresh: Option<Option<GrantLevel>>,
        audit: Vec<crate::store::NewAuditEntry>,
    ) -> Result<Grant, GrantError> {
        let claim = (grant.state == GrantState::Pending)
            .then(|| self.claim())
            .flatten();
        Ok(self
            .store
            .record_grant(&GrantRecord {
                grant,
                fresh_baseline: fresh,
                claim,
                audit,
            })
            .await?)
    }

    /// Brings a pending grant to its outcome (the slot's lease is held). `current` is the level
    /// just read, if any; `overwrite` applies even over a level changed out of band (enforce).
    pub(super) async fn apply_pending(
        &self,
        grant: &Grant,
        current: Option<Option<GrantLevel>>,
        overwrite: bool,
    ) -> Result<Grant, GrantError> {
        let slot = grant.slot();
        let current = match current {
            Some(level) => level,
            None => read_level(&self.client, &slot).await?,
        };
        let last_set = self.store.grant_slot(&slot).await?.and_then(|s| s.last_set);
        let now = self.now();
        let actor = grant.requested_by.clone();
        let mut step = GrantStep::new(grant.id, GrantState::Pending, GrantState::Active, now);
        if current == grant.planned {
            // Already in place: a crash after the PUT, or someone set the same level.
            step.set_level = Some(grant.planned);
            step.audit.push(audit(
                now,
                &actor,
                AuditKind::Grant,
                Some(grant),
                &slot,
                (level_json(current), level_json(grant.planned)),
                json!({ "outcome": "active", "found_in_place": true }),
            ));
        } else if current == last_set
            || overwrite
            || self.settings.on_conflict == OnConflict::Enforce
        {
            if current != last_set {
                step.audit.push(conflict_entry(
                    now, &actor, grant, &slot, last_set, current, "enforce",
                ));
            }
            if let Err(e) = set_level(&self.client, &slot, grant.planned).await {
                return self.apply_failed(grant, &slot, e).await;
            }
            self.stop_after(Step::Applied)?;
            step.set_level = Some(grant.planned);
            step.audit.push(audit(
                now,
                &actor,
                AuditKind::Grant,
                Some(grant),
                &slot,
                (level_json(current), level_json(grant.planned)),
                json!({ "outcome": "active" }),
            ));
        } else {
            step.to = GrantState::Conflict;
            step.audit.push(conflict_entry(
                now, &actor, grant, &slot, last_set, current, "keep",
            ));
        }
        self.store.step_grant(&step).await?;
        self.reread(grant).await
    }

    /// A refused apply fails the grant (nothing changed); any other failure leaves it pending,
    /// to be read back and finished by the next pass.
    async fn apply_failed(
        &self,
        grant: &Grant,
        slot: &SlotKey,
        error: crate::bitbucket::ApiError,
    ) -> Result<Grant, GrantError> {
        let now = self.now();
        let refused = matches!(
            error.kind,
            ErrorKind::BadRequest
                | ErrorKind::Forbidden
                | ErrorKind::NotFound
                | ErrorKind::Gone
                | ErrorKind::PaymentRequired
                | ErrorKind::ClientError
                | ErrorKind::UnsupportedAuth
        );
        let mut step = GrantStep::new(grant.id, GrantState::Pending, GrantState::Failed, now);
        if !refused {
            step.to = GrantState::Pending;
            step.retry_at = Some(now + self.backoff(grant.attempts));
        }
        step.audit.push(audit(
            now,
            &grant.requested_by,
            AuditKind::Grant,
            Some(grant),
            slot,
            (None, None),
            json!({ "outcome": step.to.as_str(), "error": error.to_string() }),
        ));
        self.store.step_grant(&step).await?;
        Err(GrantError::Bitbucket(error))
    }

    pub(super) async fn reread(&self, grant: &Grant) -> Result<Grant, GrantError> {
        self.store
            .grant(grant.id)
            .await?
            .ok_or(GrantError::NotFound(grant.id))
    }
}

/// A conflict audit entry: the level the connector expected and the one it found.
pub(super) fn conflict_entry(
    at: chrono::DateTime<chrono::Utc>,
    actor: &str,
    grant: &Grant,
    slot: &SlotKey,
    expected: Option<GrantLevel>,
    observed: Option<GrantLevel>,
    rule: &str,
) -> crate::store::NewAuditEntry {
    audit(
        at,
        actor,
        AuditKind::Conflict,
        Some(grant),
        slot,
        (level_json(expected), level_json(observed)),
        json!({
            "expected": expected.map(GrantLevel::as_str),
            "observed": observed.map(GrantLevel::as_str),
            "on_conflict": rule,
        }),
    )
}

fn with(mut details: serde_json::Value, key: &str, value: &str) -> serde_json::Value {
    if let serde_json::Value::Object(map) = &mut details {
        map.insert(key.to_owned(), json!(value));
    }
    details
}
