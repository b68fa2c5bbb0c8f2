//! A new lead decided once: from the recorded lead, its route and the
//! assignment the rules chose, the lead's final state (route, assignee or
//! offer or pool, deadlines, SLA index entry), the audit entries of every
//! hand-off and the notification to send. The store writes all of it in one
//! transaction, so there is no half-done lead to resume and no audit entry
//! written apart from what it describes.

use chrono::{DateTime, Duration, Utc};

use crate::assignment::Assignment;
use crate::audit::{Actor, AuditAction, AuditEvent};
use crate::directory::Brand;
use crate::lead::{LeadRecord, LeadStatus};
use crate::notification::NotificationKind;
use crate::routing::Route;
use crate::sla;

/// The actor the router's own entries carry.
pub const ROUTER: &str = "lead-router";

/// What the dealer's assignment rules chose, with what the plan needs of the dealer.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    pub assignment: Assignment,
    /// Minutes an offer waits for a claim before falling back (claim strategy).
    pub claim_fallback_minutes: u32,
    /// Who is told when nobody can take the lead.
    pub managers: Vec<String>,
}

/// A new lead's final state and its side effects.
#[derive(Debug, Clone, PartialEq)]
pub struct NewLeadPlan {
    pub lead: LeadRecord,
    /// The SLA index entry (first contact, offer fallback, pool retry).
    pub due: Option<DateTime<Utc>>,
    pub audit: Vec<AuditEvent>,
    /// The notification job: kind and recipients (none for an unroutable lead).
    pub notify: Option<(NotificationKind, Vec<String>)>,
}

/// When the first contact is due after an assignment at `at`.
pub fn first_contact_due(brand: &Brand, at: DateTime<Utc>) -> DateTime<Utc> {
    at + Duration::minutes(i64::from(brand.first_contact_minutes))
}

/// Until when an assignee keeps a lead assigned (or progressed) at `at`.
pub fn exclusive_until(brand: &Brand, at: DateTime<Utc>) -> DateTime<Utc> {
    at + Duration::days(i64::from(brand.exclusivity_days))
}

/// The dedup step's audit detail of a created lead.
pub fn dedup_detail(lead: &LeadRecord) -> String {
    match &lead.returned_from {
        Some(old) => format!("created: the customer came back, continues {old}"),
        None => "created".into(),
    }
}

/// The audit entry on a closed or unrouted lead whose customer came back
/// (`dedup::returning_to`): which lead continues it. An unrouted lead is
/// superseded (merged into the new one); a closed one stays closed.
pub fn reopened_audit(holder: &LeadRecord, new_lead_id: &str, now: DateTime<Utc>) -> AuditEvent {
    let detail = match holder.status {
        LeadStatus::Unroutable => format!("superseded by {new_lead_id}, routed"),
        status => format!(
            "customer came back ({} lead): {new_lead_id}",
            crate::wire_name(&status)
        ),
    };
    AuditEvent {
        lead_id: holder.lead_id.clone(),
        action: AuditAction::Reopened,
        actor: Actor::System(ROUTER.to_string()),
        at: now,
        detail,
    }
}

/// The audit entry of a delivery merged into the customer's open lead.
pub fn merged_audit(
    lead_id: &str,
    delivery: &crate::lead::CanonicalLead,
    first_platform: crate::directory::Platform,
    now: DateTime<Utc>,
) -> AuditEvent {
    AuditEvent {
        lead_id: lead_id.to_string(),
        action: AuditAction::Merged,
        actor: Actor::Platform(delivery.platform.to_string()),
        at: now,
        detail: format!(
            "{} {:?}, first seen on {first_platform}",
            delivery.platform, delivery.scene
        ),
    }
}

/// The plan for a created lead (`lead` as recorded: new, unrouted). The
/// placement is `None` exactly when the route is unroutable.
pub fn new_lead(
    mut lead: LeadRecord,
    route: &Route,
    placement: Option<&Placement>,
    brand: &Brand,
    now: DateTime<Utc>,
) -> NewLeadPlan {
    let system = || Actor::System(ROUTER.to_string());
    let mut audit = vec![
        AuditEvent {
            lead_id: lead.lead_id.clone(),
            action: AuditAction::Received,
            actor: Actor::Platform(lead.first_touch.platform.to_string()),
            at: lead.received_at,
            detail: lead.first_touch.source_event_id.clone(),
        },
        AuditEvent {
            lead_id: lead.lead_id.clone(),
            action: AuditAction::Deduped,
            actor: system(),
            at: now,
            detail: dedup_detail(&lead),
        },
    ];
    let mut routed_detail = serde_json::to_string(route).unwrap_or_default();
    lead.route = Some(route.clone());
    lead.dealer_id = match route {
        Route::Local { dealer_id } | Route::Remote { dealer_id, .. } => Some(dealer_id.clone()),
        Route::Unroutable { .. } => None,
    };
    let mut due = None;
    let mut notify = None;
    match (route, placement) {
        (Route::Unroutable { .. }, _) | (_, None) => lead.status = LeadStatus::Unroutable,
        (_, Some(p)) => match &p.assignment {
            Assignment::Staff { staff_id, reason } => {
                lead.status = LeadStatus::Assigned;
                lead.assignee = Some(staff_id.clone());
                lead.assigned_at = Some(now);
                lead.milestones.push(crate::lead::Milestone {
                    kind: crate::lead::MilestoneKind::Assigned,
                    at: now,
                });
                lead.first_contact_due = Some(first_contact_due(brand, now));
                lead.exclusive_until = Some(exclusive_until(brand, now));
                due = lead.first_contact_due;
                audit.push(AuditEvent {
                    lead_id: lead.lead_id.clone(),
                    action: AuditAction::Assigned,
                    actor: system(),
                    at: now,
                    detail: format!("{staff_id} ({reason:?})"),
                });
                notify = Some((NotificationKind::NewAssignment, vec![staff_id.clone()]));
            }
            Assignment::Offer { staff_ids } => {
                lead.status = LeadStatus::Offered;
                lead.offered_to = staff_ids.clone();
                due = Some(now + Duration::minutes(i64::from(p.claim_fallback_minutes)));
                // One entry per action and instant: the offer is part of the routing.
                routed_detail.push_str(&format!(
                    "; offered to {} consultants to claim",
                    staff_ids.len()
                ));
                notify = Some((NotificationKind::ClaimOffer, staff_ids.clone()));
            }
            Assignment::NoOneAvailable => {
                due = Some(sla::pool_retry_at(now));
                notify = Some((NotificationKind::NoOneAvailable, p.managers.clone()));
            }
        },
    }
    audit.insert(
        2,
        AuditEvent {
            lead_id: lead.lead_id.clone(),
            action: AuditAction::Routed,
            actor: system(),
            at: now,
            detail: routed_detail,
        },
    );
    NewLeadPlan {
        lead,
        due,
        audit,
        notify,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assignment::AssignReason;
    use crate::directory::Platform;
    use crate::lead::{CanonicalLead, CustomerKey, Scene, Traffic};

    fn brand() -> Brand {
        serde_json::from_value(serde_json::json!({
            "brand_id": "b", "name": "B", "protection_days": 30,
            "first_contact_minutes": 5, "exclusivity_days": 15
        }))
        .unwrap()
    }

    fn recorded(at: DateTime<Utc>) -> LeadRecord {
        let canonical = CanonicalLead {
            source_event_id: "e1".into(),
            platform: Platform::Douyin,
            account_id: "a".into(),
            scene: Scene::PrivateMessage,
            traffic: Traffic::Natural,
            customer: CustomerKey::Phone {
                hash: crate::identity::PhoneHash("h".into()),
            },
            linked_customer: None,
            phone: None,
            customer_name: None,
            declared_city: None,
            attributed_city: None,
            series_interest: vec![],
            staff_hint: None,
            channel_tag: None,
            received_at: at,
            raw_payload_ref: "RAW#1".into(),
            signer_brand: None,
            sealed_contact: None,
        };
        LeadRecord::new("L1".into(), "b", &canonical, Some("d".into()))
    }

    fn placement(assignment: Assignment) -> Placement {
        Placement {
            assignment,
            claim_fallback_minutes: 10,
            managers: vec!["m".into()],
        }
    }

    fn actions(plan: &NewLeadPlan) -> Vec<AuditAction> {
        plan.audit.iter().map(|e| e.action).collect()
    }

    #[test]
    fn an_assigned_lead_has_its_deadlines_its_hand_offs_and_one_job() {
        let now = DateTime::parse_from_rfc3339("2026-11-24T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let route = Route::Local {
            dealer_id: "d".into(),
        };
        let p = placement(Assignment::Staff {
            staff_id: "s1".into(),
            reason: AssignReason::RoundRobin,
        });
        let plan = new_lead(recorded(now), &route, Some(&p), &brand(), now);
        assert_eq!(plan.lead.status, LeadStatus::Assigned);
        assert_eq!(plan.lead.assignee.as_deref(), Some("s1"));
        assert_eq!(plan.lead.dealer_id.as_deref(), Some("d"));
        // 5 minutes and 15 days, by hand.
        let due = DateTime::parse_from_rfc3339("2026-11-24T10:05:00Z").unwrap();
        assert_eq!(plan.lead.first_contact_due, Some(due.with_timezone(&Utc)));
        assert_eq!(plan.due, Some(due.with_timezone(&Utc)));
        let excl = DateTime::parse_from_rfc3339("2026-12-09T10:00:00Z").unwrap();
        assert_eq!(plan.lead.exclusive_until, Some(excl.with_timezone(&Utc)));
        assert_eq!(
            actions(&plan),
            [
                AuditAction::Received,
                AuditAction::Deduped,
                AuditAction::Routed,
                AuditAction::Assigned
            ]
        );
        assert_eq!(
            plan.notify,
            Some((NotificationKind::NewAssignment, vec!["s1".to_string()]))
        );
    }

    #[test]
    fn offers_pools_and_unroutable_leads() {
        let now = Utc::now();
        let route = Route::Local {
            dealer_id: "d".into(),
        };
        let offer = placement(Assignment::Offer {
            staff_ids: vec!["a".into(), "b".into()],
        });
        let plan = new_lead(recorded(now), &route, Some(&offer), &brand(), now);
        assert_eq!(plan.lead.status, LeadStatus::Offered);
        assert_eq!(plan.due, Some(now + Duration::minutes(10)));
        assert_eq!(plan.lead.assignee, None);
        assert_eq!(
            actions(&plan),
            [
                AuditAction::Received,
                AuditAction::Deduped,
                AuditAction::Routed
            ]
        );
        assert!(plan.audit[2]
            .detail
            .ends_with("offered to 2 consultants to claim"));

        let pool = placement(Assignment::NoOneAvailable);
        let plan = new_lead(recorded(now), &route, Some(&pool), &brand(), now);
        assert_eq!(plan.lead.status, LeadStatus::New);
        assert_eq!(plan.due, Some(sla::pool_retry_at(now)));
        assert_eq!(
            plan.notify,
            Some((NotificationKind::NoOneAvailable, vec!["m".to_string()]))
        );

        let nowhere = Route::Unroutable {
            reason: crate::routing::UnroutableReason::NoDealerServesCity,
        };
        let plan = new_lead(recorded(now), &nowhere, None, &brand(), now);
        assert_eq!(plan.lead.status, LeadStatus::Unroutable);
        assert_eq!((plan.lead.dealer_id.as_deref(), plan.due), (None, None));
        assert_eq!(plan.notify, None);
    }
}
