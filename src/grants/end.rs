//! Ending a grant (at its expiry or by a revoke): put back the level that stands without it,
//! unless someone changed the level meanwhile (a conflict, left alone under `keep`). Also the
//! reconcile of a slot's unfinished grants, and the revoke of a standing permission the
//! connector did not create.

use serde_json::json;

use super::apply::conflict_entry;
use super::engine::{audit, level_json, Engine, Step};
use super::remote::{read_level, set_level};
use super::GrantError;
use crate::config::OnConflict;
use crate::domain::{standing_level, EndKind, Grant, GrantId, GrantLevel, GrantState, SlotKey};
use crate::store::{AuditKind, GrantStep, SlotChange};

impl Engine<'_> {
    /// Ends a grant early and puts back what stands without it.
    pub async fn revoke(&self, id: GrantId, actor: &str) -> Result<Grant, GrantError> {
        let grant = self
            .store
            .grant(id)
            .await?
            .ok_or(GrantError::NotFound(id))?;
        let slot = grant.slot();
        self.with_slot(&slot, async {
            let mut grant = self.reread(&grant).await?;
            if grant.state == GrantState::Pending {
                grant = self.apply_pending(&grant, None, false).await?;
            }
            if grant.state.is_in_force() {
                let now = self.now();
                let mut step = GrantStep::new(grant.id, grant.state, GrantState::Ending, now);
                step.end_kind = Some(EndKind::Revoked);
                step.claim = self.claim();
                step.audit.push(audit(
                    now,
                    actor,
                    AuditKind::Revoke,
                    Some(&grant),
                    &slot,
                    (
                        Some(json!({ "state": grant.state.as_str() })),
                        Some(json!({ "state": "ending" })),
                    ),
                    json!({ "outcome": "ending", "revoked_by": actor }),
                ));
                if !self.store.step_grant(&step).await? {
                    return Err(GrantError::SlotBusy(slot.to_string()));
                }
                grant = self.reread(&grant).await?;
            }
            match grant.state {
                GrantState::Ending => self.finish_ending(&grant).await,
                state => Err(GrantError::WrongState {
                    id,
                    state,
                    what: "only a grant in force (active or satisfied) can be revoked",
                }),
            }
        })
        .await
    }

    /// Finishes the slot's pending and ending grants (the slot's lease is held): a crash, or a
    /// restore that failed, left them so.
    pub(super) async fn reconcile_slot(&self, slot: &SlotKey) -> Result<(), GrantError> {
        for grant in self.store.slot_grants(slot).await? {
            match grant.state {
                GrantState::Pending => {
                    self.apply_pending(&grant, None, false).await?;
                }
                GrantState::Ending => {
                    self.finish_ending(&grant).await?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Restores what stands without an ending grant (the slot's lease is held). A restore that
    /// fails leaves the grant ending, due again after a backoff, with the error in the audit log.
    pub(super) async fn finish_ending(&self, grant: &Grant) -> Result<Grant, GrantError> {
        let slot = grant.slot();
        let stored = self.store.grant_slot(&slot).await?;
        let baseline = stored.as_ref().map_or(grant.baseline, |s| s.baseline);
        let last_set = stored.as_ref().map_or(grant.planned, |s| s.last_set);
        let others: Vec<GrantLevel> = self
            .store
            .slot_grants(&slot)
            .await?
            .into_iter()
            .filter(|g| g.id != grant.id && g.state.is_in_force())
            .map(|g| g.level)
            .collect();
        let wanted = standing_level(baseline, others);
        let end = grant.end_kind.unwrap_or(EndKind::Expired);
        let kind = match end {
            EndKind::Expired => AuditKind::Expire,
            EndKind::Revoked => AuditKind::Revoke,
        };
        let actor = self.settings.actor.clone();
        let current = match read_level(&self.client, &slot).await {
            Ok(level) => level,
            Err(e) => return self.restore_failed(grant, &slot, kind, e).await,
        };
        let now = self.now();
        let mut step = GrantStep::new(grant.id, GrantState::Ending, end.final_state(), now);
        let restore = |step: &mut GrantStep, found: bool| {
            step.set_level = Some(wanted);
            step.audit.push(audit(
                now,
                &actor,
                kind,
                Some(grant),
                &slot,
                (level_json(current), level_json(wanted)),
                json!({
                    "outcome": end.final_state().as_str(),
                    "restored": wanted.map(GrantLevel::as_str),
                    "found_restored": found,
                }),
            ));
        };
        if current == last_set
            || (current != wanted && self.settings.on_conflict == OnConflict::Enforce)
        {
            if current != last_set {
                step.audit.push(conflict_entry(
                    now, &actor, grant, &slot, last_set, current, "enforce",
                ));
            }
            if current != wanted {
                if let Err(e) = set_level(&self.client, &slot, wanted).await {
                    return self.restore_failed(grant, &slot, kind, e).await;
                }
                self.stop_after(Step::Restored)?;
            }
            restore(&mut step, false);
        } else if current == wanted {
            // Already restored: a crash after the restore call, before it was recorded.
            restore(&mut step, true);
        } else {
            step.to = GrantState::Conflict;
            step.audit.push(conflict_entry(
                now, &actor, grant, &slot, last_set, current, "keep",
            ));
        }
        self.store.step_grant(&step).await?;
        self.reread(grant).await
    }

    async fn restore_failed(
        &self,
        grant: &Grant,
        slot: &SlotKey,
        kind: AuditKind,
        error: crate::bitbucket::ApiError,
    ) -> Result<Grant, GrantError> {
        let now = self.now();
        let retry_at = now + self.backoff(grant.attempts);
        let mut step = GrantStep::new(grant.id, GrantState::Ending, GrantState::Ending, now);
        step.retry_at = Some(retry_at);
        step.audit.push(audit(
            now,
            &self.settings.actor,
            kind,
            Some(grant),
            slot,
            (None, None),
            json!({
                "outcome": "restore_failed",
                "error": error.to_string(),
                "attempt": grant.attempts + 1,
                "next_attempt_at": retry_at,
            }),
        ));
        self.store.step_grant(&step).await?;
        Err(GrantError::Bitbucket(error))
    }

    /// Removes a standing explicit permission the connector did not create, recording the level
    /// it removed so that a `grant` can put it back. Refuses while the slot has grants.
    pub async fn revoke_standing(
        &self,
        slot: &SlotKey,
        actor: &str,
        reason: Option<&str>,
    ) -> Result<Option<GrantLevel>, GrantError> {
        self.with_slot(slot, async {
            self.reconcile_slot(slot).await?;
            if let Some(g) = self.store.slot_grants(slot).await?.first() {
                return Err(GrantError::Refused(format!(
                    "{slot} has grant {} ({}); revoke it by id: `bitbucket-access revoke {}`",
                    g.id, g.state, g.id
                )));
            }
            let current = read_level(&self.client, slot).await?;
            let Some(removed) = current else {
                return Err(GrantError::Refused(format!(
                    "{slot} has no explicit permission to revoke"
                )));
            };
            set_level(&self.client, slot, None).await?;
            let now = self.now();
            let entry = audit(
                now,
                actor,
                AuditKind::Revoke,
                None,
                slot,
                (level_json(current), level_json(None)),
                json!({
                    "outcome": "standing_removed",
                    "removed": removed.as_str(),
                    "reason": reason,
                    "put_back_with": format!("bitbucket-access grant --permanent --level {removed}"),
                }),
            );
            self.store
                .record_slot_change(
                    &SlotChange {
                        slot: slot.clone(),
                        level: None,
                        audit: vec![entry],
                    },
                    now,
                )
                .await?;
            Ok(Some(removed))
        })
        .await
    }
}
