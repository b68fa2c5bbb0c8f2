//! The brand's CRM/DMS hears about every lead hand-off we notify: a JSON
//! POST signed the way our own intake checks signatures (`X-Timestamp` in
//! Unix seconds, `X-Signature` = hex HMAC-SHA256 over "{timestamp}.{body}"),
//! with `X-Event-Id` = the job id so the receiver can drop a resend.

use chrono::{DateTime, Utc};
use leads_domain::delivery::{ChannelKind, Failure};
use leads_domain::intake::hmac_sources::signature;
use leads_domain::notification::{Notice, NotificationKind};
use serde::Serialize;

use super::{
    each_recipient, request_failure, status_failure, Attempt, AttemptFuture, Channel, Envelope,
    Recipient,
};
use crate::config::WebhookConfig;

pub struct WebhookChannel {
    http: reqwest::Client,
    config: WebhookConfig,
}

/// What the CRM receives. No phone beyond the masked one.
#[derive(Debug, Serialize)]
pub struct WebhookEvent<'a> {
    pub event: NotificationKind,
    pub job_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lead_id: Option<&'a str>,
    pub brand_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dealer_id: Option<&'a str>,
    /// Staff ids notified.
    pub staff: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_masked: Option<&'a str>,
    pub title: &'a str,
    pub link: &'a str,
    pub created_at: DateTime<Utc>,
}

impl WebhookChannel {
    pub fn new(http: reqwest::Client, config: WebhookConfig) -> Self {
        WebhookChannel { http, config }
    }

    async fn send_one(&self, envelope: &Envelope<'_>) -> Result<(), Failure> {
        let notice = envelope.notice;
        let (phone_masked, created_at) = match notice {
            Notice::Lead(j) => (j.phone_masked.as_deref(), j.created_at),
            Notice::Ranking(r) => (None, r.created_at),
            Notice::PoolSummary(p) => (None, p.created_at),
            Notice::Crm(e) => (e.phone_masked.as_deref(), e.at),
        };
        let event = WebhookEvent {
            event: notice.kind(),
            job_id: notice.job_id(),
            lead_id: notice.lead_id(),
            brand_id: notice.brand_id(),
            dealer_id: notice.dealer_id(),
            staff: envelope.staff,
            phone_masked,
            title: &envelope.message.title,
            link: &envelope.message.url,
            created_at,
        };
        let body = serde_json::to_vec(&event).map_err(|e| Failure::Permanent(e.to_string()))?;
        signed_post(&self.http, &self.config, notice.job_id(), body).await
    }

    async fn attempt(&self, envelope: &Envelope<'_>, to: &[Recipient]) -> Attempt {
        each_recipient(to, |_| self.send_one(envelope)).await
    }
}

/// One POST of `body` to a CRM endpoint, signed with its key; `event_id`
/// lets the receiver drop a resend.
pub(crate) async fn signed_post(
    http: &reqwest::Client,
    endpoint: &WebhookConfig,
    event_id: &str,
    body: Vec<u8>,
) -> Result<(), Failure> {
    let timestamp = Utc::now().timestamp().to_string();
    let reply = http
        .post(&endpoint.url)
        .header("content-type", "application/json")
        .header("x-timestamp", &timestamp)
        .header(
            "x-signature",
            signature(&endpoint.secret.expose(), &timestamp, &body),
        )
        .header("x-event-id", event_id)
        .body(body)
        .send()
        .await
        .map_err(request_failure)?;
    status_failure(reply.status()).map_or(Ok(()), Err)
}

impl Channel for WebhookChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Webhook
    }

    fn send<'a>(&'a self, envelope: &'a Envelope<'a>, to: &'a [Recipient]) -> AttemptFuture<'a> {
        Box::pin(self.attempt(envelope, to))
    }
}
