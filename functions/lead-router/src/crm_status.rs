//! The brand's CRM reports what happened to a lead (`status_sync`): the
//! same transition rules as a consultant's event (`status::change`), the CRM
//! as the audit trail's actor. Only the brand whose own CRM secret signed
//! it may move its leads; anything the rules refuse is audited and dropped
//! (a redelivery would be refused the same way). The CRM's `dispatch`
//! places an unrouted lead with one of the brand's dealers.

use chrono::Utc;
use leads_aws::store::StatusResult;
use leads_domain::audit::{Actor, AuditAction, AuditEvent};
use leads_domain::directory::Brand;
use leads_domain::intake::{CrmDispatch, CrmStatus};
use leads_domain::lead::LeadStatus;
use leads_domain::{status, wire_name};

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

/// What a CRM dispatch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dispatched {
    /// The lead went to the dealer (and was assigned by its rules).
    Placed,
    /// A repeat: the lead is already with that dealer (any step an earlier
    /// attempt left undone is finished).
    Unchanged,
    /// Refused (audited on the lead): not a dealer of the brand, or the lead
    /// is no longer unrouted.
    Refused,
    /// No such lead of the signing brand (nothing written).
    UnknownLead,
}

impl Router {
    /// The brand's CRM places an unrouted lead with one of its dealers: the
    /// lead is routed there (only while still unrouted), then assigned and
    /// notified by the dealer's rules, with the CRM on the audit trail.
    pub async fn handle_crm_dispatch(
        &self,
        dispatch: &CrmDispatch,
    ) -> Result<Dispatched, RouterError> {
        let brand = self
            .directory
            .brand(&dispatch.brand_id)
            .await?
            .unwrap_or_else(|| Brand::with_defaults(&dispatch.brand_id));
        let actor = Actor::Platform(format!("oem_crm:{}", dispatch.brand_id));
        let refuse = |lead_id: &str, why: String| AuditEvent {
            lead_id: lead_id.to_string(),
            action: AuditAction::Routed,
            actor: actor.clone(),
            at: Utc::now(),
            detail: format!("CRM dispatch refused: {why}"),
        };
        for _attempt in 0..3 {
            let lead = match self.leads.get(&dispatch.lead_id).await? {
                Some(l) if l.brand_id == dispatch.brand_id => l,
                _ => {
                    tracing::warn!(lead_id = %dispatch.lead_id, brand = %dispatch.brand_id, "crm dispatch for no lead of this brand; dropped");
                    return Ok(Dispatched::UnknownLead);
                }
            };
            // Another brand's dealer is as unknown as a missing one.
            let dealer = self
                .directory
                .dealer(&dispatch.dealer_id)
                .await?
                .filter(|d| d.brand_id == dispatch.brand_id);
            let Some(dealer) = dealer else {
                self.audit
                    .append(&[refuse(
                        &lead.lead_id,
                        format!("no dealer {} in the brand", dispatch.dealer_id),
                    )])
                    .await?;
                tracing::warn!(lead_id = %lead.lead_id, dealer_id = %dispatch.dealer_id, "crm dispatch to no dealer of the brand; refused");
                return Ok(Dispatched::Refused);
            };
            if lead.status != LeadStatus::Unroutable {
                if lead.dealer_id.as_deref() == Some(dealer.dealer_id.as_str())
                    && lead.merged_into.is_none()
                {
                    // Placed by an earlier attempt: finish what it left.
                    self.route_and_assign(lead, &brand, None, Utc::now())
                        .await?;
                    return Ok(Dispatched::Unchanged);
                }
                self.audit
                    .append(&[refuse(
                        &lead.lead_id,
                        format!("the lead is {}, not unroutable", wire_name(&lead.status)),
                    )])
                    .await?;
                return Ok(Dispatched::Refused);
            }
            let now = Utc::now();
            let Some(placed) = self.leads.dispatch(&lead, &dealer.dealer_id).await? else {
                // Routed, superseded or erased since read: look again.
                continue;
            };
            self.audit
                .append(&[AuditEvent {
                    lead_id: placed.lead_id.clone(),
                    action: AuditAction::Routed,
                    actor: actor.clone(),
                    at: now,
                    detail: format!("dispatched by the brand CRM to {}", dealer.dealer_id),
                }])
                .await?;
            tracing::info!(lead_id = %placed.lead_id, dealer_id = %dealer.dealer_id, "crm dispatch applied");
            self.route_and_assign(placed, &brand, None, now).await?;
            return Ok(Dispatched::Placed);
        }
        Err(RouterError::Store(leads_aws::StoreError::Conflict {
            operation: "CRM dispatch",
        }))
    }
}
