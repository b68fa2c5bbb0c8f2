//! Notification jobs the router and the SLA sweeper put on the notification
//! queue. They carry no phone number: the notifier shows the masked one and
//! links to the lead.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// A consultant got a new lead.
    NewAssignment,
    /// A customer the consultant has came back through another channel.
    CustomerReturned,
    /// Claim strategy: the group is offered a lead; first claim wins.
    ClaimOffer,
    /// Nobody on duty could take the lead: the dealer's manager is told.
    NoOneAvailable,
    /// First contact is overdue: the manager is told.
    SlaWarning,
    /// The lead moved to another consultant.
    Reassigned,
    /// The next call a follow-up set is due: the assignee is reminded.
    FollowUpDue,
    /// A WeCom contact ended (either side removed the other): the owner and
    /// the managers are told.
    ContactDeleted,
    /// The nightly ranking is out: the dealer's managers see their position.
    RankingPublished,
    /// A consultant asked to close a lead as lost: the managers approve or
    /// reject it (`Brand::lost_approval`).
    LostRequested,
    /// A lifecycle event for the brand's own CRM (`crm::CrmEvent`): no staff
    /// message, one signed delivery to the brand's endpoint.
    CrmUpdate,
}

impl NotificationKind {
    pub const ALL: [NotificationKind; 11] = [
        NotificationKind::NewAssignment,
        NotificationKind::CustomerReturned,
        NotificationKind::ClaimOffer,
        NotificationKind::NoOneAvailable,
        NotificationKind::SlaWarning,
        NotificationKind::Reassigned,
        NotificationKind::FollowUpDue,
        NotificationKind::ContactDeleted,
        NotificationKind::RankingPublished,
        NotificationKind::LostRequested,
        NotificationKind::CrmUpdate,
    ];

    /// The serde name, e.g. `sla_warning`.
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::NewAssignment => "new_assignment",
            NotificationKind::CustomerReturned => "customer_returned",
            NotificationKind::ClaimOffer => "claim_offer",
            NotificationKind::NoOneAvailable => "no_one_available",
            NotificationKind::SlaWarning => "sla_warning",
            NotificationKind::Reassigned => "reassigned",
            NotificationKind::FollowUpDue => "follow_up_due",
            NotificationKind::ContactDeleted => "contact_deleted",
            NotificationKind::RankingPublished => "ranking_published",
            NotificationKind::LostRequested => "lost_requested",
            NotificationKind::CrmUpdate => "crm_update",
        }
    }

    /// Kinds whose empty recipient list means "the dealer's managers".
    pub fn defaults_to_managers(self) -> bool {
        matches!(
            self,
            NotificationKind::NoOneAvailable
                | NotificationKind::SlaWarning
                | NotificationKind::ContactDeleted
                | NotificationKind::RankingPublished
                | NotificationKind::LostRequested
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationJob {
    /// Deterministic per (lead, event), so a re-sent job is delivered at most once.
    pub job_id: String,
    pub kind: NotificationKind,
    pub lead_id: String,
    pub brand_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dealer_id: Option<String>,
    /// Staff ids to notify (managers are resolved by the notifier when empty).
    pub recipients: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_masked: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_name: Option<String>,
    #[serde(default)]
    pub series_interest: Vec<String>,
    pub created_at: DateTime<Utc>,
    /// With a hand-off of a WeCom contact: move the contact in WeCom too
    /// (the notifier calls `externalcontact/transfer_customer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wecom_transfer: Option<WecomTransfer>,
}

/// A WeCom customer (external contact) moving from one member of the
/// corp to another: in service (在职继承) or from a member who left (离职继承).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WecomTransfer {
    pub corp_id: String,
    pub external_userid: String,
    pub handover_userid: String,
    pub takeover_userid: String,
    #[serde(default)]
    pub resigned: bool,
}

impl WecomTransfer {
    /// The transfer a hand-off of `lead` from `from` to `to` needs: when the
    /// customer is a WeCom contact (its key, or one linked to the lead) and
    /// both consultants are WeCom members.
    pub fn for_handoff(
        lead: &crate::lead::LeadRecord,
        from: &crate::directory::Staff,
        to: &crate::directory::Staff,
        resigned: bool,
    ) -> Option<WecomTransfer> {
        use crate::lead::CustomerKey;
        let (corp_id, external_userid) = std::iter::once(&lead.customer)
            .chain(&lead.linked_keys)
            .find_map(|k| match k {
            CustomerKey::Wecom {
                corp_id,
                external_userid,
            } => Some((corp_id.clone(), external_userid.clone())),
            _ => None,
        })?;
        Some(WecomTransfer {
            corp_id,
            external_userid,
            handover_userid: from.wecom_userid.clone()?,
            takeover_userid: to.wecom_userid.clone()?,
            resigned,
        })
    }
}

impl NotificationJob {
    pub fn job_id(lead_id: &str, kind: NotificationKind, sequence: u32) -> String {
        Self::job_id_for(lead_id, kind, sequence)
    }

    /// `{lead}#{kind}#{occurrence}`: the occurrence names the event (a
    /// sequence number, a source event id, an SLA deadline in epoch seconds)
    /// so that every producer that sees the same event makes the same id.
    pub fn job_id_for(
        lead_id: &str,
        kind: NotificationKind,
        occurrence: impl std::fmt::Display,
    ) -> String {
        format!("{lead_id}#{}#{occurrence}", kind.as_str())
    }

    /// The job for an event on a lead: what the notifier shows (masked phone,
    /// name, series) copied from the lead, the id derived from the event.
    pub fn for_lead(
        lead: &crate::lead::LeadRecord,
        kind: NotificationKind,
        recipients: Vec<String>,
        occurrence: impl std::fmt::Display,
        created_at: DateTime<Utc>,
    ) -> Self {
        NotificationJob {
            job_id: Self::job_id_for(&lead.lead_id, kind, occurrence),
            kind,
            lead_id: lead.lead_id.clone(),
            brand_id: lead.brand_id.clone(),
            dealer_id: lead.dealer_id.clone(),
            recipients,
            phone_masked: lead.phone_masked.clone(),
            // A name that is (or holds) a phone never travels in full.
            customer_name: lead.customer_name.as_deref().map(crate::phone::mask_phones),
            series_interest: lead.series_interest.clone(),
            created_at,
            wecom_transfer: None,
        }
    }
}

/// The nightly ranking for one dealer (`RankingPublished`); it has no lead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankingNotice {
    pub job_id: String,
    pub kind: NotificationKind,
    pub brand_id: String,
    pub dealer_id: String,
    /// Staff ids; empty means the dealer's managers.
    #[serde(default)]
    pub recipients: Vec<String>,
    pub date: NaiveDate,
    pub rank: u32,
    /// Dealers ranked in the brand.
    pub dealers: u32,
    pub tier: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_rank: Option<u32>,
    /// Effect score (0-200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// The metric whose next level would gain the most points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_gain: Option<crate::ranking::BestGain>,
    pub created_at: DateTime<Utc>,
}

impl RankingNotice {
    /// One per brand, dealer and ranked date: a re-run of the date makes the
    /// same id, so the notifier delivers it once.
    pub fn job_id(brand_id: &str, dealer_id: &str, date: NaiveDate) -> String {
        format!("RANK#{brand_id}#{dealer_id}#{date}")
    }

    /// The notice of one dealer's place in a snapshot of `dealers` ranked.
    pub fn for_dealer(
        brand_id: &str,
        date: NaiveDate,
        dealers: u32,
        d: &crate::ranking::RankedDealer,
        created_at: DateTime<Utc>,
    ) -> Self {
        RankingNotice {
            job_id: Self::job_id(brand_id, &d.dealer_id, date),
            kind: NotificationKind::RankingPublished,
            brand_id: brand_id.to_string(),
            dealer_id: d.dealer_id.clone(),
            recipients: Vec::new(),
            date,
            rank: d.rank,
            dealers,
            tier: format!("{:?}", d.tier),
            previous_rank: d.previous_rank,
            score: Some(d.score.total),
            best_gain: d.best_gain.clone(),
            created_at,
        }
    }
}

/// Anything on the notification queue.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Notice {
    Lead(NotificationJob),
    Ranking(RankingNotice),
    /// The managers' summary of a window's `no_one_available` jobs.
    PoolSummary(crate::pool_notice::PoolSummary),
    /// From the CRM queue: for the brand's own CRM, not for staff.
    Crm(crate::crm::CrmEvent),
}

impl Notice {
    /// Parses a queue message; the `kind` decides the shape.
    pub fn from_json(body: &str) -> Result<Notice, serde_json::Error> {
        if let Some(event) = crate::crm::CrmEvent::from_queue(body) {
            return event.map(Notice::Crm);
        }
        let value: serde_json::Value = serde_json::from_str(body)?;
        if value.get("kind").and_then(|k| k.as_str())
            == Some(NotificationKind::RankingPublished.as_str())
        {
            serde_json::from_value(value).map(Notice::Ranking)
        } else if value.get("window_start").is_some() {
            serde_json::from_value(value).map(Notice::PoolSummary)
        } else {
            serde_json::from_value(value).map(Notice::Lead)
        }
    }

    pub fn job_id(&self) -> &str {
        match self {
            Notice::Lead(j) => &j.job_id,
            Notice::Ranking(r) => &r.job_id,
            Notice::PoolSummary(p) => &p.job_id,
            Notice::Crm(e) => &e.event_id,
        }
    }

    pub fn kind(&self) -> NotificationKind {
        match self {
            Notice::Lead(j) => j.kind,
            Notice::Ranking(r) => r.kind,
            Notice::PoolSummary(p) => p.kind,
            Notice::Crm(_) => NotificationKind::CrmUpdate,
        }
    }

    pub fn brand_id(&self) -> &str {
        match self {
            Notice::Lead(j) => &j.brand_id,
            Notice::Ranking(r) => &r.brand_id,
            Notice::PoolSummary(p) => &p.brand_id,
            Notice::Crm(e) => e.brand_id.as_deref().unwrap_or_default(),
        }
    }

    pub fn dealer_id(&self) -> Option<&str> {
        match self {
            Notice::Lead(j) => j.dealer_id.as_deref(),
            Notice::Ranking(r) => Some(&r.dealer_id),
            Notice::PoolSummary(p) => Some(&p.dealer_id),
            // The CRM is the brand's: no dealer staff to look up.
            Notice::Crm(_) => None,
        }
    }

    pub fn recipients(&self) -> &[String] {
        match self {
            Notice::Lead(j) => &j.recipients,
            Notice::Ranking(r) => &r.recipients,
            // The dealer's managers.
            Notice::PoolSummary(_) => &[],
            Notice::Crm(_) => &[],
        }
    }

    /// The lead whose audit trail records the deliveries; none for a ranking.
    pub fn lead_id(&self) -> Option<&str> {
        match self {
            Notice::Lead(j) => Some(&j.lead_id),
            Notice::Ranking(_) | Notice::PoolSummary(_) => None,
            Notice::Crm(e) => e.lead_id.as_deref(),
        }
    }

    /// What the audit trail and logs call it: the notification kind, or the
    /// CRM event's (`status_changed`, `unroutable`).
    pub fn kind_name(&self) -> &'static str {
        match self {
            Notice::Crm(e) => e.kind.as_str(),
            other => other.kind().as_str(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_match_serde() {
        for kind in NotificationKind::ALL {
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::Value::String(kind.as_str().into())
            );
        }
    }

    #[test]
    fn job_ids_are_deterministic() {
        assert_eq!(
            NotificationJob::job_id("L1", NotificationKind::NewAssignment, 1),
            "L1#new_assignment#1"
        );
        assert_eq!(
            NotificationJob::job_id_for("L1", NotificationKind::SlaWarning, 1_700_000_000),
            "L1#sla_warning#1700000000"
        );
    }

    #[test]
    fn notices_parse_by_kind() {
        let lead = r#"{"job_id":"L1#claim_offer#1","kind":"claim_offer","lead_id":"L1",
            "brand_id":"b","recipients":["s1"],"created_at":"2026-11-24T01:00:00Z"}"#;
        let parsed = Notice::from_json(lead).unwrap();
        assert_eq!(parsed.kind(), NotificationKind::ClaimOffer);
        assert_eq!(parsed.lead_id(), Some("L1"));
        let ranking = r#"{"job_id":"RANK#d1#2026-11-23","kind":"ranking_published","brand_id":"b",
            "dealer_id":"d1","date":"2026-11-23","rank":3,"dealers":40,"tier":"A",
            "previous_rank":5,"created_at":"2026-11-24T01:00:00Z"}"#;
        let parsed = Notice::from_json(ranking).unwrap();
        assert_eq!(parsed.lead_id(), None);
        assert_eq!(parsed.dealer_id(), Some("d1"));
        assert!(parsed.recipients().is_empty());
        // Round trip: what the producer writes, the notifier reads.
        let again = Notice::from_json(&serde_json::to_string(&parsed).unwrap()).unwrap();
        assert_eq!(again, parsed);
        assert!(Notice::from_json(r#"{"kind":"ranking_published"}"#).is_err());
        let summary = r#"{"job_id":"POOL#d1#1763978400","kind":"no_one_available","brand_id":"b",
            "dealer_id":"d1","window_start":"2025-11-24T10:00:00Z","window_end":"2025-11-24T10:05:00Z",
            "created_at":"2025-11-24T10:01:00Z"}"#;
        let parsed = Notice::from_json(summary).unwrap();
        assert!(matches!(&parsed, Notice::PoolSummary(p) if p.leads == 0));
        assert_eq!(parsed.lead_id(), None);
        assert_eq!(parsed.kind(), NotificationKind::NoOneAvailable);
        let again = Notice::from_json(&serde_json::to_string(&parsed).unwrap()).unwrap();
        assert_eq!(again, parsed);
    }
}
