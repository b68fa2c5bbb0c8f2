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
}

impl CanonicalLead {
    /// The customer's city for routing: declared, else attributed, else unknown.
    pub fn customer_city(&self) -> Option<CityCode> {
        self.declared_city.or(self.attributed_city)
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
        }
    }
}

/// Where a lead ended up after routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeadStatus {
    New,
    Assigned,
    Contacted,
    Invited,
    Visited,
    Won,
    Lost,
    Invalid,
    Unroutable,
}

/// Brand tag for the brand a lead belongs to (the identity scope for dedup).
pub type LeadBrand = BrandId;
