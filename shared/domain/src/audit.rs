//! Audit trail: every hand-off of a lead leaves a record traceable to a person
//! (or to the system component that acted).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    Received,
    Deduped,
    /// Another key of the customer (a phone for a WeCom contact) now points here.
    Linked,
    Merged,
    /// The customer came back to this closed or unrouted lead: a new lead
    /// (`reopened_as`) continues it.
    Reopened,
    /// A staff link refused: the key belongs to another dealer's live lead.
    LinkRefused,
    /// The customer's personal data was erased (PIPL).
    Erased,
    Routed,
    Assigned,
    Notified,
    NotificationFailed,
    Claimed,
    StatusChanged,
    /// A consultant's follow-up call: note (phones masked), intent, next call.
    FollowedUp,
    /// The WeCom contact ended (the consultant or the customer removed the other).
    ContactDeleted,
    Reassigned,
    SlaBreached,
    ReturnedToPool,
    /// An unrouted lead's full phone shown to brand operations (who place it).
    PhoneShown,
    /// Manual tags added or removed (`tags`).
    Tagged,
}

/// Who acted: a staff member, or a system component such as `lead-router`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Actor {
    System(String),
    Staff(String),
    Platform(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub lead_id: String,
    pub action: AuditAction,
    pub actor: Actor,
    pub at: DateTime<Utc>,
    /// Short human-readable detail; never contains a full phone number.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}
