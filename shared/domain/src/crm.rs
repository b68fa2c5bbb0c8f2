//! What the brand's own CRM hears from us, on the CRM queue: every status
//! change a consultant or manager makes (contacted, invited, visited, won,
//! lost and invalid with their reason), and every lead no dealer can take
//! (unroutable, or for an account the directory does not know). The notifier
//! delivers them to the brand's endpoint, signed, at most once per event id.
//!
//! No full phone travels: the event carries the masked one, and for an
//! unroutable lead the path where the brand's operations read the full one
//! (`GET /leads/{id}` with a brand-wide `brand_ops` token, audited).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::lead::{LeadRecord, LeadStatus, Touchpoint};
use crate::routing::UnroutableReason;
use crate::status::StatusEvent;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrmEventKind {
    /// A lead's status moved (or a validity mark was recorded).
    StatusChanged,
    /// A lead no dealer of the brand can take: the brand's team decides.
    Unroutable,
    /// An unrouted lead the brand's team no longer needs to place: the
    /// customer came back through a channel that could be routed, and a new
    /// lead (`superseded_by`) took over.
    Superseded,
}

impl CrmEventKind {
    pub const ALL: [CrmEventKind; 3] = [
        CrmEventKind::StatusChanged,
        CrmEventKind::Unroutable,
        CrmEventKind::Superseded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CrmEventKind::StatusChanged => "status_changed",
            CrmEventKind::Unroutable => "unroutable",
            CrmEventKind::Superseded => "superseded",
        }
    }
}

/// A status change as the CRM sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChange {
    pub event: StatusEvent,
    pub from: LeadStatus,
    pub to: LeadStatus,
    /// The brand's reason code (lost, invalid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The staff id who made the change.
    pub by: String,
}

/// Why no dealer took the lead, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unrouted {
    /// `city_unknown`, `no_dealer_serves_city`, `capacity_exhausted`, or
    /// `unknown_account` (the directory has no such platform account).
    pub reason: String,
    pub platform: String,
    pub account_id: String,
    pub source_event_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_payload_ref: Option<String>,
    /// `crm_review`: the dealer routing picked, for the CRM to confirm (or
    /// not) with a `dispatch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposed_dealer: Option<String>,
}

/// One message on the CRM queue, and the body the brand's CRM receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrmEvent {
    /// Deterministic per event: a redelivery makes the same id, and the CRM
    /// gets it as `X-Event-Id` too.
    pub event_id: String,
    pub kind: CrmEventKind,
    /// `None` only for a lead of an account no brand has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lead_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dealer_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_masked: Option<String>,
    /// Masked too where it is (or holds) a phone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub series_interest: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusChange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unrouted: Option<Unrouted>,
    /// `superseded`: the lead that continues this one (its dealer and
    /// assignee are the event's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<String>,
    pub at: DateTime<Utc>,
}

impl CrmEvent {
    /// Parses a queue message; `None` when it is not a CRM event (the
    /// notifier's other jobs have other `kind`s).
    pub fn from_queue(body: &str) -> Option<Result<CrmEvent, serde_json::Error>> {
        let value: serde_json::Value = serde_json::from_str(body).ok()?;
        let kind = value.get("kind")?.as_str()?;
        CrmEventKind::ALL
            .iter()
            .any(|k| k.as_str() == kind)
            .then(|| serde_json::from_value(value))
    }

    fn about(lead: &LeadRecord, kind: CrmEventKind, event_id: String, at: DateTime<Utc>) -> Self {
        CrmEvent {
            event_id,
            kind,
            brand_id: Some(lead.brand_id.clone()),
            lead_id: Some(lead.lead_id.clone()),
            dealer_id: lead.dealer_id.clone(),
            assignee: lead.assignee.clone(),
            phone_masked: lead.phone_masked.clone(),
            customer_name: lead.customer_name.as_deref().map(crate::phone::mask_phones),
            series_interest: lead.series_interest.clone(),
            status: None,
            unrouted: None,
            superseded_by: None,
            at,
        }
    }

    /// `lead` (as it was read) moved from its status to `to` by `event`.
    /// One id per change: the lead, the new status and the change's time.
    pub fn status_changed(
        lead: &LeadRecord,
        event: StatusEvent,
        to: LeadStatus,
        reason: Option<String>,
        by: &str,
        at: DateTime<Utc>,
    ) -> Self {
        let event_id = format!(
            "{}#{}#{}#{}",
            lead.lead_id,
            CrmEventKind::StatusChanged.as_str(),
            crate::wire_name(&event),
            at.timestamp_micros()
        );
        CrmEvent {
            status: Some(StatusChange {
                event,
                from: lead.status,
                to,
                reason,
                by: by.to_string(),
            }),
            ..Self::about(lead, CrmEventKind::StatusChanged, event_id, at)
        }
    }

    /// A lead the router could not place. One id per lead: however often
    /// its webhook is redelivered, the CRM hears of it once.
    pub fn unroutable(lead: &LeadRecord, reason: UnroutableReason, at: DateTime<Utc>) -> Self {
        let event_id = format!("{}#{}", lead.lead_id, CrmEventKind::Unroutable.as_str());
        CrmEvent {
            unrouted: Some(Unrouted {
                proposed_dealer: lead.proposed_dealer.clone(),
                ..Unrouted::from_touch(
                    crate::wire_name(&reason),
                    &lead.first_touch,
                    Some(lead.raw_payload_ref.clone()),
                )
            }),
            ..Self::about(lead, CrmEventKind::Unroutable, event_id, at)
        }
    }

    /// The unrouted lead `old` was taken over by `new` (routed): one id per
    /// old lead, so a redelivery tells the CRM once.
    pub fn superseded(old: &LeadRecord, new: &LeadRecord, at: DateTime<Utc>) -> Self {
        let event_id = format!("{}#{}", old.lead_id, CrmEventKind::Superseded.as_str());
        CrmEvent {
            dealer_id: new.dealer_id.clone(),
            assignee: new.assignee.clone(),
            superseded_by: Some(new.lead_id.clone()),
            ..Self::about(old, CrmEventKind::Superseded, event_id, at)
        }
    }

    /// A delivery for an account no brand has: no lead was made. It names
    /// no brand, so no CRM can take it; it is for the operators (the
    /// notifier dead-letters it with the reason).
    pub fn unknown_account(touch: &Touchpoint, at: DateTime<Utc>) -> Self {
        CrmEvent {
            event_id: format!(
                "{}#{}#{}",
                crate::wire_name(&touch.platform),
                touch.account_id,
                touch.source_event_id
            ),
            kind: CrmEventKind::Unroutable,
            brand_id: None,
            lead_id: None,
            dealer_id: None,
            assignee: None,
            phone_masked: None,
            customer_name: None,
            series_interest: Vec::new(),
            status: None,
            superseded_by: None,
            unrouted: Some(Unrouted::from_touch(
                "unknown_account".into(),
                touch,
                touch.raw_payload_ref.clone(),
            )),
            at,
        }
    }
}

impl Unrouted {
    fn from_touch(reason: String, touch: &Touchpoint, raw_payload_ref: Option<String>) -> Self {
        Unrouted {
            reason,
            platform: crate::wire_name(&touch.platform),
            account_id: touch.account_id.clone(),
            source_event_id: touch.source_event_id.clone(),
            raw_payload_ref,
            proposed_dealer: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lead() -> LeadRecord {
        serde_json::from_value(serde_json::json!({
            "lead_id": "L1", "brand_id": "brand-a", "status": "contacted",
            "customer": {"kind": "phone", "hash": "h"},
            "phone": "13812345678", "phone_masked": "138****5678",
            "customer_name": "13812345678 王", "series_interest": ["H5"],
            "first_touch": {"platform": "douyin", "account_id": "dy-1", "scene": "live",
                "traffic": "natural", "at": "2026-12-01T02:00:00Z", "source_event_id": "ev-1"},
            "touchpoints": 1, "dealer_id": "d1",
            "raw_payload_ref": "raw/1", "received_at": "2026-12-01T02:00:00Z"
        }))
        .unwrap()
    }

    #[test]
    fn events_carry_no_full_phone_and_parse_back() {
        let at: DateTime<Utc> = "2026-12-01T03:00:00Z".parse().unwrap();
        let lost = CrmEvent::status_changed(
            &lead(),
            StatusEvent::Lost,
            LeadStatus::Lost,
            Some("price".into()),
            "s1",
            at,
        );
        let body = serde_json::to_string(&lost).unwrap();
        assert!(!body.contains("13812345678"), "{body}");
        assert!(body.contains("138****5678"), "{body}");
        assert_eq!(CrmEvent::from_queue(&body).unwrap().unwrap(), lost);
        let status = lost.status.unwrap();
        assert_eq!(
            (status.from, status.to, status.reason.as_deref()),
            (LeadStatus::Contacted, LeadStatus::Lost, Some("price"))
        );
        assert_eq!(
            lost.event_id,
            format!("L1#status_changed#lost#{}", at.timestamp_micros())
        );

        let unrouted = CrmEvent::unroutable(&lead(), UnroutableReason::NoDealerServesCity, at);
        // The same lead, whenever it is handed over: the same id.
        let later = CrmEvent::unroutable(
            &lead(),
            UnroutableReason::NoDealerServesCity,
            at + chrono::Duration::hours(1),
        );
        assert_eq!(unrouted.event_id, later.event_id);
        let body = serde_json::to_string(&unrouted).unwrap();
        assert!(
            body.contains(r#""reason":"no_dealer_serves_city""#),
            "{body}"
        );
        assert!(body.contains(r#""raw_payload_ref":"raw/1""#), "{body}");
        assert_eq!(CrmEvent::from_queue(&body).unwrap().unwrap(), unrouted);
    }

    #[test]
    fn only_crm_kinds_are_crm_events() {
        let job = r#"{"job_id":"L1#claim_offer#1","kind":"claim_offer","lead_id":"L1"}"#;
        assert!(CrmEvent::from_queue(job).is_none());
        assert!(CrmEvent::from_queue("not json").is_none());
        // A CRM kind of the wrong shape is an error, not someone else's job.
        assert!(CrmEvent::from_queue(r#"{"kind":"unroutable"}"#)
            .unwrap()
            .is_err());
    }

    #[test]
    fn a_superseded_lead_names_its_successor_and_where_it_went() {
        let at: DateTime<Utc> = "2026-12-01T03:00:00Z".parse().unwrap();
        let mut old = lead();
        old.status = LeadStatus::Unroutable;
        old.dealer_id = None;
        let mut new = lead();
        new.lead_id = "L2".into();
        new.dealer_id = Some("d9".into());
        new.assignee = Some("d9-s1".into());
        let event = CrmEvent::superseded(&old, &new, at);
        assert_eq!(event.kind, CrmEventKind::Superseded);
        assert_eq!(event.event_id, "L1#superseded");
        assert_eq!(event.lead_id.as_deref(), Some("L1"));
        assert_eq!(event.superseded_by.as_deref(), Some("L2"));
        assert_eq!(
            (event.dealer_id.as_deref(), event.assignee.as_deref()),
            (Some("d9"), Some("d9-s1"))
        );
        let body = serde_json::to_string(&event).unwrap();
        assert!(!body.contains("13812345678"), "{body}");
        assert!(body.contains(r#""kind":"superseded""#), "{body}");
        assert_eq!(CrmEvent::from_queue(&body).unwrap().unwrap(), event);
        // Told again later: the same id (the notifier sends it once).
        let again = CrmEvent::superseded(&old, &new, at + chrono::Duration::hours(1));
        assert_eq!(again.event_id, event.event_id);
    }
}
