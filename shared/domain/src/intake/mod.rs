//! Webhook intake: authenticate a platform's request, then parse and normalise it
//! into canonical leads or content stats. Pure: the handler passes in the raw
//! request and the secrets, and turns the outcome into HTTP and AWS effects.
//!
//! Every source authenticates *before* its body is parsed, so nothing from an
//! unauthenticated caller reaches the parsers.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::lead::CanonicalLead;

pub mod douyin;
pub mod hmac_sources;
pub mod normalise;
pub mod secrets;
pub mod wecom;

pub use normalise::Normaliser;
pub use secrets::IntakeSecrets;

/// Bodies above this are refused with 413 before anything else happens.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// The sources (path segment of `/webhooks/{source}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Douyin,
    DouyinStats,
    Feiyu,
    Dongchedi,
    Autohome,
    Yiche,
    OemCrm,
    Wecom,
}

impl Source {
    pub const ALL: [Source; 8] = [
        Source::Douyin,
        Source::DouyinStats,
        Source::Feiyu,
        Source::Dongchedi,
        Source::Autohome,
        Source::Yiche,
        Source::OemCrm,
        Source::Wecom,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Douyin => "douyin",
            Source::DouyinStats => "douyin_stats",
            Source::Feiyu => "feiyu",
            Source::Dongchedi => "dongchedi",
            Source::Autohome => "autohome",
            Source::Yiche => "yiche",
            Source::OemCrm => "oem_crm",
            Source::Wecom => "wecom",
        }
    }

    pub fn parse(s: &str) -> Option<Source> {
        Source::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

/// A webhook request as received. Header names are lower-case.
#[derive(Debug, Clone)]
pub struct IntakeRequest<'a> {
    pub source: Source,
    pub method: Method,
    pub headers: &'a HashMap<String, String>,
    pub query: &'a HashMap<String, String>,
    pub body: &'a [u8],
    pub now: DateTime<Utc>,
}

impl IntakeRequest<'_> {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }
}

/// Per-account daily content stats pushed by `douyin_stats`, for the ranking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentStats {
    pub platform_account: String,
    pub date: chrono::NaiveDate,
    pub videos: u32,
    pub live_sessions: u32,
    pub live_minutes: u32,
    pub plays: u64,
    pub likes: u64,
    pub comments: u64,
    pub shares: u64,
    /// Plays watched to the end (completion rate = completed_plays / plays).
    pub completed_plays: u64,
    /// Each live session's length in minutes, if the report lists them (an
    /// effective session lasts the brand's minimum).
    #[serde(default)]
    pub live_session_minutes: Vec<u32>,
    /// Live interaction: viewers, and the follows, comments and shares they made.
    #[serde(default)]
    pub live_viewers: u64,
    #[serde(default)]
    pub live_follows: u64,
    #[serde(default)]
    pub live_comments: u64,
    #[serde(default)]
    pub live_shares: u64,
    pub received_at: DateTime<Utc>,
}

/// A WeCom contact ended: the consultant removed the customer
/// (`del_external_contact`) or the customer removed the consultant
/// (`del_follow_user`). The lead's owner and the dealer's managers are told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactDeleted {
    /// The delivery's key: a redelivery is recognised by it.
    pub source_event_id: String,
    pub corp_id: String,
    pub external_userid: String,
    /// The consultant's WeCom UserID.
    pub user_id: String,
    pub by: DeletedBy,
    pub at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeletedBy {
    /// `del_external_contact`: the consultant removed the customer.
    Consultant,
    /// `del_follow_user`: the customer removed the consultant.
    Customer,
}

/// What intake puts on the lead queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum IntakeMessage {
    Lead(Box<CanonicalLead>),
    ContentStats(ContentStats),
    ContactDeleted(ContactDeleted),
    CrmStatus(CrmStatus),
    CrmDispatch(CrmDispatch),
}

/// The brand's CRM places an unrouted lead (`dispatch`): the brand's team
/// decided which of its dealers takes it. Only a lead that is still
/// unrouted moves; the dealer must be the brand's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrmDispatch {
    /// The delivery's key.
    pub source_event_id: String,
    /// The brand whose own CRM secret signed it: only its leads are touched.
    pub brand_id: String,
    pub lead_id: String,
    pub dealer_id: String,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// The brand's CRM reports what happened to one of the brand's leads
/// (`status_sync`): applied by the same transition rules as a consultant's
/// event, audited with the CRM as actor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrmStatus {
    /// The delivery's key: a redelivery is recognised by it.
    pub source_event_id: String,
    /// The brand whose own CRM secret signed it: only its leads are touched.
    pub brand_id: String,
    pub lead_id: String,
    pub event: crate::status::StatusEvent,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// The platform-specific success body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub content_type: &'static str,
    pub body: String,
}

impl Reply {
    pub fn json(value: serde_json::Value) -> Self {
        Reply {
            content_type: "application/json",
            body: value.to_string(),
        }
    }
    pub fn text(body: impl Into<String>) -> Self {
        Reply {
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }
}

/// The result of an authenticated, valid request.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// URL verification: answer and store nothing.
    Handshake(Reply),
    /// Lead or stats records to store and enqueue once per `delivery_key`.
    Accepted {
        /// The platform's event id, else a hash of the body: redeliveries share it.
        delivery_key: String,
        messages: Vec<IntakeMessage>,
        reply: Reply,
    },
    /// Authentic, but an event type that carries no lead (e.g. a chat message
    /// without a phone number): acknowledged so the platform stops retrying.
    Ignored { reason: String, reply: Reply },
}

/// Why a request was refused. Messages are for the caller and never contain
/// the phone number or secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntakeError {
    #[error("{0}")]
    Malformed(String),
    #[error("{0}")]
    Unauthorized(String),
    /// The path named no source (the name is never quoted back).
    #[error("unknown source")]
    UnknownSource,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("body is {0} bytes; the limit is {MAX_BODY_BYTES}")]
    TooLarge(usize),
    #[error("{0}")]
    NotALead(String),
    /// This stack keeps no mainland Chinese personal information (a region
    /// outside China: `AcceptMainlandMobiles=false`).
    #[error("this region does not accept leads with a mainland Chinese mobile; send them to the China stack")]
    MainlandMobileRefused,
}

impl IntakeError {
    pub fn status(&self) -> u16 {
        match self {
            IntakeError::Malformed(_) => 400,
            IntakeError::Unauthorized(_) => 401,
            IntakeError::UnknownSource => 404,
            IntakeError::MethodNotAllowed => 405,
            IntakeError::TooLarge(_) => 413,
            IntakeError::NotALead(_) => 422,
            IntakeError::MainlandMobileRefused => 422,
        }
    }

    /// Stable machine-readable code for the JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            IntakeError::Malformed(_) => "malformed",
            IntakeError::Unauthorized(_) => "bad_signature",
            IntakeError::UnknownSource => "unknown_source",
            IntakeError::MethodNotAllowed => "method_not_allowed",
            IntakeError::TooLarge(_) => "too_large",
            IntakeError::NotALead(_) => "not_a_lead",
            IntakeError::MainlandMobileRefused => "mainland_mobile_refused",
        }
    }
}

/// Data residency: a stack that must not hold mainland Chinese personal
/// information (`accept_mainland_mobiles` false) refuses a delivery whose
/// leads carry a phone (every [`crate::Phone`] is a mainland mobile), before
/// anything is stored. Leads without a phone and content stats pass.
pub fn check_residency(
    messages: &[IntakeMessage],
    accept_mainland_mobiles: bool,
) -> Result<(), IntakeError> {
    let has_mobile = messages
        .iter()
        .any(|m| matches!(m, IntakeMessage::Lead(lead) if lead.phone.is_some()));
    if has_mobile && !accept_mainland_mobiles {
        return Err(IntakeError::MainlandMobileRefused);
    }
    Ok(())
}

/// Authenticates and parses one webhook request.
pub fn handle(
    req: &IntakeRequest<'_>,
    secrets: &IntakeSecrets,
    normaliser: &Normaliser,
) -> Result<Outcome, IntakeError> {
    if req.body.len() > MAX_BODY_BYTES {
        return Err(IntakeError::TooLarge(req.body.len()));
    }
    match req.source {
        Source::Douyin | Source::DouyinStats => douyin::handle(req, secrets, normaliser),
        Source::Feiyu | Source::Dongchedi | Source::Autohome | Source::Yiche | Source::OemCrm => {
            hmac_sources::handle(req, secrets, normaliser)
        }
        Source::Wecom => wecom::handle(req, secrets, normaliser),
    }
}

/// SHA-256 of the body, hex: the delivery key when the platform sends no event id.
pub fn body_hash(body: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(body))
}

/// Constant-time equality for signatures.
pub fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod residency_tests {
    use super::*;
    use crate::lead::CanonicalLead;

    fn lead(phone: Option<&str>) -> IntakeMessage {
        use crate::directory::Platform;
        use crate::lead::{CustomerKey, Scene, Traffic};
        IntakeMessage::Lead(Box::new(CanonicalLead {
            source_event_id: "douyin:m1".into(),
            platform: Platform::Douyin,
            account_id: "a".into(),
            scene: Scene::Other,
            traffic: Traffic::Natural,
            customer: CustomerKey::Phone {
                hash: crate::identity::PhoneHash("0123abcd".into()),
            },
            linked_customer: None,
            phone: phone.map(|p| crate::Phone::parse(p).unwrap()),
            customer_name: None,
            declared_city: None,
            attributed_city: None,
            series_interest: vec![],
            staff_hint: None,
            channel_tag: None,
            received_at: chrono::Utc::now(),
            raw_payload_ref: "RAW#x".into(),
            signer_brand: None,
            sealed_contact: None,
        }))
    }

    #[test]
    fn mainland_mobiles_refused_only_where_configured() {
        let with = [lead(None), lead(Some("13812345678"))];
        let without = [lead(None)];
        assert_eq!(
            check_residency(&with, false),
            Err(IntakeError::MainlandMobileRefused)
        );
        assert_eq!(check_residency(&with, true), Ok(()));
        assert_eq!(check_residency(&without, false), Ok(()));
        let err = IntakeError::MainlandMobileRefused;
        assert_eq!((err.status(), err.code()), (422, "mainland_mobile_refused"));
    }
}
