//! Notification jobs the router puts on the notification queue. They carry no
//! phone number: the notifier shows the masked one and links to the lead.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
}

impl NotificationJob {
    pub fn job_id(lead_id: &str, kind: NotificationKind, sequence: u32) -> String {
        let kind = serde_json::to_value(kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        format!("{lead_id}#{kind}#{sequence}")
    }
}
