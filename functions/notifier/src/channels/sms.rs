//! SMS through a configurable HTTP gateway: one JSON POST per recipient,
//! `Authorization: Bearer <api key>`. The text is the title and the link:
//! the customer's number is only ever shown masked; the consultant's own
//! number is the gateway's `to`.

use leads_domain::delivery::{ChannelKind, Failure};
use serde::Serialize;

use super::{
    each_recipient, request_failure, status_failure, Address, Attempt, AttemptFuture, Channel,
    Envelope, Recipient,
};
use crate::config::SmsConfig;

pub struct SmsChannel {
    http: reqwest::Client,
    config: SmsConfig,
}

#[derive(Serialize)]
struct SmsRequest<'a> {
    to: &'a str,
    content: &'a str,
    /// Lets the gateway drop a resend of the same message.
    reference: String,
}

impl SmsChannel {
    pub fn new(http: reqwest::Client, config: SmsConfig) -> Self {
        SmsChannel { http, config }
    }

    async fn send_one(&self, envelope: &Envelope<'_>, to: &Recipient) -> Result<(), Failure> {
        let Address::Mobile(phone) = &to.address else {
            return Err(Failure::Permanent("no mobile number".into()));
        };
        let request = SmsRequest {
            to: phone.e164(),
            content: &envelope.message.sms_text(),
            reference: format!("{}#{}", envelope.notice.job_id(), to.id),
        };
        let reply = self
            .http
            .post(&self.config.url)
            .bearer_auth(self.config.api_key.expose())
            .json(&request)
            .send()
            .await
            .map_err(request_failure)?;
        status_failure(reply.status()).map_or(Ok(()), Err)
    }

    async fn attempt(&self, envelope: &Envelope<'_>, to: &[Recipient]) -> Attempt {
        each_recipient(to, |r| self.send_one(envelope, r)).await
    }
}

impl Channel for SmsChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Sms
    }

    fn send<'a>(&'a self, envelope: &'a Envelope<'a>, to: &'a [Recipient]) -> AttemptFuture<'a> {
        Box::pin(self.attempt(envelope, to))
    }
}
