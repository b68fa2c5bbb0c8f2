//! The brand's CRM reports what happened to a lead (`status_sync`): the
//! same transition rules as a consultant's event (`status::change`), the CRM
//! as the audit trail's actor. Only the brand whose own CRM secret signed
//! it may move its leads; anything the rules refuse is audited and dropped
//! (a redelivery would be refused the same way).

use chrono::Utc;
use leads_aws::store::StatusResult;
use leads_domain::audit::{Actor, AuditAction, AuditEvent};
use leads_domain::directory::Brand;
use leads_domain::intake::CrmStatus;
use leads_domain::status;

use crate::{Router, RouterError};

/// What a status sync did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Synced {
    Applied,
    /// A repeat: the lead is already there.
    Unchanged,
    /// Refused by the rules (audited on the lead).
    Refused,
    /// No such lead of the signing brand (nothing written).
    UnknownLead,
}

impl Router {
    pub async fn handle_crm_status(&self, sync: &CrmStatus) -> Result<Synced, RouterError> {
        let brand = self
            .directory
            .brand(&sync.brand_id)
            .await?
            .unwrap_or_else(|| Brand::with_defaults(&sync.brand_id));
        let actor = Actor::Platform(format!("oem_crm:{}", sync.brand_id));
        for _attempt in 0..3 {
            // Another brand's lead is as unknown as a missing one: the
            // answer never tells a CRM which ids exist elsewhere.
            let lead = match self.leads.get(&sync.lead_id).await? {
                Some(l) if l.brand_id == sync.brand_id => l,
                _ => {
                    tracing::warn!(lead_id = %sync.lead_id, brand = %sync.brand_id, "crm status sync for no lead of this brand; dropped");
                    return Ok(Synced::UnknownLead);
                }
            };
            let now = Utc::now();
            let change = match status::change(
                lead.status,
                sync.event,
                sync.reason.as_deref(),
                &brand,
            ) {
                Ok(Some(change)) => change,
                Ok(None) => return Ok(Synced::Unchanged),
                Err(e) => {
                    self.audit
                        .append(&[AuditEvent {
                            lead_id: lead.lead_id.clone(),
                            action: AuditAction::StatusChanged,
                            actor,
                            at: now,
                            detail: format!("CRM status sync refused: {e}"),
                        }])
                        .await?;
                    tracing::warn!(lead_id = %lead.lead_id, event = ?sync.event, error = %e, "crm status sync refused");
                    return Ok(Synced::Refused);
                }
            };
            match self.leads.apply_status(&lead, &change, &brand, now).await? {
                StatusResult::Applied => {
                    let reason = change
                        .reason
                        .as_deref()
                        .map(|r| format!(" (reason {r})"))
                        .unwrap_or_default();
                    self.audit
                        .append(&[AuditEvent {
                            lead_id: lead.lead_id.clone(),
                            action: AuditAction::StatusChanged,
                            actor,
                            at: now,
                            detail: format!(
                                "CRM: {:?}: {:?} -> {:?}{reason}",
                                sync.event, lead.status, change.next
                            ),
                        }])
                        .await?;
                    tracing::info!(lead_id = %lead.lead_id, event = ?sync.event, from = ?lead.status, to = ?change.next, "crm status applied");
                    return Ok(Synced::Applied);
                }
                // Changed since it was read (a consultant's event): read again.
                StatusResult::Conflict => continue,
            }
        }
        // Changing under us each time: let the batch's retry (or SQS) try again.
        Err(RouterError::Store(leads_aws::StoreError::Conflict {
            operation: "CRM status sync",
        }))
    }
}
