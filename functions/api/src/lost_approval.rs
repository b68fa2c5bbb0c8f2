//! 战败审核: where the brand sets `lost_approval`, a consultant's `lost`
//! becomes a request on the lead (it stays open, with its consultant and
//! SLA), the dealer's managers are told, and one of them approves it (the
//! lead closes as lost with the requested reason, as if they had posted
//! `lost`) or rejects it (the request is dropped; the consultant goes on).
//! A manager's own `lost`, and the brand CRM's, close the lead at once.

use chrono::Utc;
use leads_domain::audit::{Actor, AuditAction, AuditEvent};
use leads_domain::auth::Claims;
use leads_domain::crm::CrmEvent;
use leads_domain::directory::{Brand, Staff, StaffRole};
use leads_domain::lead::LeadRecord;
use leads_domain::notification::{NotificationJob, NotificationKind};
use leads_domain::status::{self, LostRequest, StatusEvent};

use leads_aws::store::{MessageQueue, StatusResult};

use super::{may_act, Api, ApiError};

impl Api {
    /// The consultant's `lost` (its reason already checked) as a request.
    pub(super) async fn request_lost(
        &self,
        claims: &Claims,
        lead: &LeadRecord,
        reason: String,
    ) -> Result<Option<serde_json::Value>, ApiError> {
        let pending = |lead: &LeadRecord| serde_json::json!({ "lead_id": lead.lead_id, "status": lead.status, "changed": false, "lost_request": "pending" });
        if lead.lost_request.is_some() {
            // Asked already (or a retry of the same call): still pending.
            return Ok(Some(pending(lead)));
        }
        let now = Utc::now();
        let request = LostRequest {
            reason,
            by: claims.staff_id.clone(),
            at: now,
        };
        if !self.leads.request_lost(lead, &request).await? {
            // Changed since read: the caller reads it again.
            return Ok(None);
        }
        self.audit
            .append(&[AuditEvent {
                lead_id: lead.lead_id.clone(),
                action: AuditAction::StatusChanged,
                actor: Actor::Staff(claims.staff_id.clone()),
                at: now,
                detail: format!(
                    "lost requested (reason {}), awaiting a manager",
                    request.reason
                ),
            }])
            .await?;
        let job = NotificationJob::for_lead(
            lead,
            NotificationKind::LostRequested,
            Vec::new(),
            now.timestamp_millis(),
            now,
        );
        if let Err(e) = self.notifications.send(&job).await {
            // The request is on the lead; the managers' list shows it.
            tracing::error!(lead_id = %lead.lead_id, error = %e, "lost-request notification not sent");
        }
        tracing::info!(lead_id = %lead.lead_id, staff_id = %claims.staff_id, "lost requested");
        Ok(Some(pending(lead)))
    }

    /// `approve_lost` / `reject_lost` by a manager of the lead's dealer.
    pub(super) async fn decide_lost(
        &self,
        claims: &Claims,
        me: &Staff,
        lead_id: &str,
        approve: bool,
    ) -> Result<serde_json::Value, ApiError> {
        if me.role != StaffRole::Manager {
            return Err(ApiError(
                403,
                "forbidden",
                "only a manager of the dealer approves or rejects a lost request".into(),
            ));
        }
        for _attempt in 0..3 {
            let lead = self.visible_lead(claims, lead_id).await?;
            may_act(&lead, claims, me)?;
            let Some(request) = lead.lost_request.clone() else {
                return Err(ApiError(
                    409,
                    "no_lost_request",
                    format!("lead is {:?} with no lost request pending", lead.status),
                ));
            };
            let brand = self.brand_of(&lead.brand_id).await?;
            let done = if approve {
                self.approve(claims, &lead, &request, &brand).await?
            } else {
                self.reject(claims, &lead, &request).await?
            };
            if let Some(answer) = done {
                return Ok(answer);
            }
        }
        Err(ApiError(
            409,
            "conflict",
            "the lead changed concurrently; retry".into(),
        ))
    }

    async fn approve(
        &self,
        claims: &Claims,
        lead: &LeadRecord,
        request: &LostRequest,
        brand: &Brand,
    ) -> Result<Option<serde_json::Value>, ApiError> {
        // The consultant's event, with their reason, as if the manager posted it.
        let change = status::change(lead.status, StatusEvent::Lost, Some(&request.reason), brand)
            .map_err(|e| ApiError(409, "invalid_transition", e.to_string()))?
            .ok_or_else(|| ApiError(409, "no_lost_request", "the lead is lost already".into()))?;
        let now = Utc::now();
        if self.leads.apply_status(lead, &change, brand, now).await? == StatusResult::Conflict {
            return Ok(None);
        }
        self.audit
            .append(&[AuditEvent {
                lead_id: lead.lead_id.clone(),
                action: AuditAction::StatusChanged,
                actor: Actor::Staff(claims.staff_id.clone()),
                at: now,
                detail: format!(
                    "Lost: {:?} -> Lost (reason {}), requested by {}, approved",
                    lead.status, request.reason, request.by
                ),
            }])
            .await?;
        let crm_event = CrmEvent::status_changed(
            lead,
            StatusEvent::Lost,
            change.next,
            change.reason.clone(),
            &claims.staff_id,
            now,
        );
        let crm = self.tell_crm(&crm_event).await;
        tracing::info!(lead_id = %lead.lead_id, by = %claims.staff_id, requested_by = %request.by, "lost request approved");
        Ok(Some(
            serde_json::json!({ "lead_id": lead.lead_id, "status": change.next, "changed": true, "crm_event": crm }),
        ))
    }

    async fn reject(
        &self,
        claims: &Claims,
        lead: &LeadRecord,
        request: &LostRequest,
    ) -> Result<Option<serde_json::Value>, ApiError> {
        if !self.leads.withdraw_lost_request(lead, request).await? {
            return Ok(None);
        }
        let now = Utc::now();
        self.audit
            .append(&[AuditEvent {
                lead_id: lead.lead_id.clone(),
                action: AuditAction::StatusChanged,
                actor: Actor::Staff(claims.staff_id.clone()),
                at: now,
                detail: format!(
                    "lost request by {} (reason {}) rejected; the lead stays {:?}",
                    request.by, request.reason, lead.status
                ),
            }])
            .await?;
        tracing::info!(lead_id = %lead.lead_id, by = %claims.staff_id, requested_by = %request.by, "lost request rejected");
        Ok(Some(
            serde_json::json!({ "lead_id": lead.lead_id, "status": lead.status, "changed": false, "lost_request": "rejected" }),
        ))
    }
}
