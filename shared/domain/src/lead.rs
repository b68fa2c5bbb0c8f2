//! The canonical lead every intake source is normalised into, and its touchpoints.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::directory::{BrandId, Platform};
use crate::identity::PhoneHash;
use crate::{CityCode, Phone};

/// Where on the platform the customer left their details.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scene {
    ShortVideo,
    Live,
    PrivateMessage,
    Homepage,
    AdForm,
    Phone,
    MemberLead,
    WecomContact,
    CrmDispatch,
    Other,
}

/// Natural (自然) traffic counts for the dealer's ranking; paid (广告) does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Traffic {
    Natural,
    Paid,
}

/// How the customer can be recognised again. A WeCom contact has no phone until
/// one arrives; it is keyed by its external user id until then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CustomerKey {
    Phone {
        hash: PhoneHash,
    },
    Wecom {
        corp_id: String,
        external_userid: String,
    },
}

/// One lead as received, before dedup and routing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanonicalLead {
    /// The platform's own id for this lead or event, used for redelivery detection.
    pub source_event_id: String,
    pub platform: Platform,
    /// The platform account the lead arrived on (maps to a dealer in the directory).
    pub account_id: String,
    pub scene: Scene,
    pub traffic: Traffic,
    pub customer: CustomerKey,
    /// A second key of the same customer the source also knows (e.g. the brand
    /// CRM's push with both the phone and the WeCom external user id): the
    /// router links it to the lead (see `dedup::decide_link`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linked_customer: Option<CustomerKey>,
    /// Needed by the consultant to call; never logged (`Phone` prints masked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<Phone>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_name: Option<String>,
    /// City the customer declared on the form, normalised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declared_city: Option<CityCode>,
    /// City from the mobile number's prefix; `None` when unknown, never a guess.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributed_city: Option<CityCode>,
    /// Car series the customer asked about (may be several).
    #[serde(default)]
    pub series_interest: Vec<String>,
    /// Platform user who already talks to the customer (WeCom `UserID` of the
    /// consultant who added the contact), used to keep the lead with that person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staff_hint: Option<String>,
    /// WeCom QR-code channel tag (`State`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_tag: Option<String>,
    pub received_at: DateTime<Utc>,
    /// Key of the raw payload kept (with a TTL) for traceability.
    pub raw_payload_ref: String,
    /// The brand whose own secret signed the delivery (the brand CRM's
    /// per-brand `oem_crm` secret): the router takes the lead only for an
    /// account of that brand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signer_brand: Option<String>,
    /// On the lead queue: `phone` and `customer_name` sealed
    /// ([`crate::seal::ContactSeal`]); both are then absent on the wire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_contact: Option<String>,
}

impl CanonicalLead {
    /// The customer's city for routing: declared, else attributed, else unknown.
    pub fn customer_city(&self) -> Option<CityCode> {
        self.declared_city.or(self.attributed_city)
    }
}

impl LeadRecord {
    /// Every key this lead answers to: its own, then the linked ones.
    pub fn keys(&self) -> impl Iterator<Item = &CustomerKey> {
        std::iter::once(&self.customer).chain(self.linked_keys.iter())
    }
}

/// One contact of a known customer through a channel; a merged lead collects several.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Touchpoint {
    pub platform: Platform,
    pub account_id: String,
    pub scene: Scene,
    pub traffic: Traffic,
    pub at: DateTime<Utc>,
    pub source_event_id: String,
    /// The raw body it came in (None on touchpoints recorded before this was
    /// kept): an erasure finds every body of the customer through it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_payload_ref: Option<String>,
}

impl From<&CanonicalLead> for Touchpoint {
    fn from(lead: &CanonicalLead) -> Self {
        Touchpoint {
            platform: lead.platform,
            account_id: lead.account_id.clone(),
            scene: lead.scene,
            traffic: lead.traffic,
            at: lead.received_at,
            source_event_id: lead.source_event_id.clone(),
            raw_payload_ref: Some(lead.raw_payload_ref.clone()),
        }
    }
}

/// Where a lead ended up after routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeadStatus {
    New,
    /// Claim strategy: offered to the dealer's group, waiting for a claim.
    Offered,
    Assigned,
    Contacted,
    Invited,
    Visited,
    Won,
    Lost,
    Invalid,
    Unroutable,
    /// The same customer as another lead (a WeCom contact linked to a phone
    /// that already had a lead, or the reverse): folded into `merged_into`.
    /// Terminal; it no longer counts toward its consultant's cap.
    Merged,
}

impl LeadStatus {
    pub const ALL: [LeadStatus; 11] = [
        LeadStatus::New,
        LeadStatus::Offered,
        LeadStatus::Assigned,
        LeadStatus::Contacted,
        LeadStatus::Invited,
        LeadStatus::Visited,
        LeadStatus::Won,
        LeadStatus::Lost,
        LeadStatus::Invalid,
        LeadStatus::Unroutable,
        LeadStatus::Merged,
    ];
}

/// A step in a lead's life the service KPIs count (`kpi`): appended to the
/// lead by the write that makes it (a status change, a hand-off, the
/// sweeper's breach), so it is recorded exactly when it happens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Milestone {
    pub kind: MilestoneKind,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MilestoneKind {
    /// A consultant got the lead for the first time (claimed, or given by
    /// the dealer's strategy); `assigned_at` holds the latest assignment.
    Assigned,
    /// 邀约: the customer agreed to come to the store.
    Invited,
    /// 到店.
    Visited,
    /// 成交.
    Won,
    /// Moved from one consultant to another (SLA, transfer, handover).
    Reassigned,
    /// First contact was overdue (the sweeper's breach).
    SlaBreached,
}

impl MilestoneKind {
    /// The milestone a status change reaches, if it is one.
    pub fn of_status(status: LeadStatus) -> Option<MilestoneKind> {
        match status {
            LeadStatus::Invited => Some(MilestoneKind::Invited),
            LeadStatus::Visited => Some(MilestoneKind::Visited),
            LeadStatus::Won => Some(MilestoneKind::Won),
            _ => None,
        }
    }
}

/// The list without repeats, first occurrence kept.
pub(crate) fn distinct<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let all: Vec<String> = Vec::deserialize(d)?;
    let mut seen = std::collections::HashSet::new();
    Ok(all.into_iter().filter(|s| seen.insert(s.clone())).collect())
}

/// Brand tag for the brand a lead belongs to (the identity scope for dedup).
pub type LeadBrand = BrandId;

/// A lead as stored: the customer, where it came from, where it went, who has it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeadRecord {
    pub lead_id: String,
    pub brand_id: LeadBrand,
    pub status: LeadStatus,
    pub customer: CustomerKey,
    /// The customer's other keys that were linked to this lead (a phone hash
    /// recorded for a WeCom contact, the keys of leads merged into this one).
    /// Their identity items point here while they are inside the window.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub linked_keys: Vec<CustomerKey>,
    /// Set when this lead was merged into another one (status `merged`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<String>,
    /// A customer who came back inside the window after this lead was closed
    /// (or while it was unrouted): the lead that took them over
    /// (`dedup::returning_to`). Deliveries that still find this lead go there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reopened_as: Option<String>,
    /// The other side of `reopened_as`: the closed or unrouted lead this one
    /// continues.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub returned_from: Option<String>,
    /// For the consultant to call; never logged or put in a notification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<Phone>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_masked: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_city: Option<CityCode>,
    /// Every series the customer asked about, over all their deliveries and
    /// merged leads, in the order first asked (stored appends may repeat one;
    /// reading drops the repeats).
    #[serde(default, deserialize_with = "distinct")]
    pub series_interest: Vec<String>,
    /// The touchpoint that created the lead.
    pub first_touch: Touchpoint,
    /// How many touchpoints (channels, visits) the lead has, the first included.
    pub touchpoints: u32,
    /// The dealer whose platform account received the lead (None: brand account).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_dealer: Option<String>,
    /// The dealer that has the lead after routing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dealer_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<crate::routing::Route>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_at: Option<DateTime<Utc>>,
    /// First contact must happen before this (SLA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_contact_due: Option<DateTime<Utc>>,
    /// The assignee's exclusive follow-up right ends here unless progress renews it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclusive_until: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contacted_at: Option<DateTime<Utc>>,
    /// Claim strategy: the consultants the lead is offered to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub offered_to: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staff_hint: Option<String>,
    /// A returning customer (after the dedup window): the dealer and consultant
    /// who had them last; the consultant gets them back while they can.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_dealer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_assignee: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_tag: Option<String>,
    /// 线索有效性标记 by the consultant: None until marked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid: Option<bool>,
    /// Why it was marked lost or invalid (a code of the brand's list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close_reason: Option<String>,
    /// A consultant's `lost` waiting for a manager (`Brand::lost_approval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost_request: Option<crate::status::LostRequest>,
    /// Held for the brand CRM's review (`RemoteMode::CrmReview`): the
    /// dealer routing picked, proposed to the CRM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposed_dealer: Option<String>,
    /// Manual tags (`tags`); the automatic ones are derived when shown.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The latest follow-up's intent and next call (`followup`), and how
    /// many follow-ups were recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<crate::followup::Intent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_follow_up_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub follow_ups: u32,
    /// What happened to the lead after its first contact, in order: the
    /// service KPIs (`kpi`) count funnel stages and hand-offs from it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub milestones: Vec<Milestone>,
    pub raw_payload_ref: String,
    pub received_at: DateTime<Utc>,
}

impl LeadRecord {
    /// A new lead from its first delivery.
    pub fn new(
        lead_id: String,
        brand_id: &str,
        lead: &CanonicalLead,
        account_dealer: Option<String>,
    ) -> Self {
        LeadRecord {
            lead_id,
            brand_id: brand_id.to_string(),
            status: LeadStatus::New,
            customer: lead.customer.clone(),
            linked_keys: Vec::new(),
            merged_into: None,
            reopened_as: None,
            returned_from: None,
            phone_masked: lead.phone.as_ref().map(Phone::masked),
            phone: lead.phone.clone(),
            customer_name: lead.customer_name.clone(),
            customer_city: lead.customer_city(),
            series_interest: lead.series_interest.clone(),
            first_touch: Touchpoint::from(lead),
            touchpoints: 1,
            account_dealer,
            dealer_id: None,
            route: None,
            assignee: None,
            assigned_at: None,
            first_contact_due: None,
            exclusive_until: None,
            contacted_at: None,
            offered_to: Vec::new(),
            staff_hint: lead.staff_hint.clone(),
            previous_dealer: None,
            previous_assignee: None,
            channel_tag: lead.channel_tag.clone(),
            valid: None,
            close_reason: None,
            lost_request: None,
            proposed_dealer: None,
            tags: Vec::new(),
            intent: None,
            next_follow_up_at: None,
            follow_ups: 0,
            milestones: Vec::new(),
            raw_payload_ref: lead.raw_payload_ref.clone(),
            received_at: lead.received_at,
        }
    }
}
