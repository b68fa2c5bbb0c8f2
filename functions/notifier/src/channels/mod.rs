//! The delivery channels behind one trait. A channel makes one attempt to
//! reach a group of recipients and says, per recipient, how it went; retries,
//! backoff, idempotency and the audit trail are the notifier's job, the same
//! for every channel.

use std::future::Future;
use std::pin::Pin;

use leads_domain::delivery::{classify_http, ChannelKind, Failure};
use leads_domain::notification::Notice;
use leads_domain::templates::Message;
use leads_domain::Phone;

mod brand_crm;
mod sms;
mod webhook;
mod wecom;

pub use brand_crm::BrandCrmChannel;
pub use sms::SmsChannel;
pub use webhook::WebhookChannel;
pub use wecom::WecomChannel;

/// Where a recipient is reached on a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// A WeCom userid.
    Wecom(String),
    /// A mobile for SMS (`Phone` prints masked, so logging a recipient is safe).
    Mobile(Phone),
    /// The brand's CRM/DMS endpoint.
    Crm,
    /// A WeCom contact to move to another member (the recipient's id is the
    /// contact's external userid).
    WecomTransfer(leads_domain::notification::WecomTransfer),
}

/// One recipient of one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// Staff id, or `crm`: the delivery key, the log and the audit trail name
    /// the recipient by this, never by their address.
    pub id: String,
    pub address: Address,
}

/// What is being delivered.
pub struct Envelope<'a> {
    pub notice: &'a Notice,
    pub message: &'a Message,
    /// Staff ids the notice went to (the CRM webhook reports them).
    pub staff: &'a [String],
}

/// One attempt's result per recipient, in the order given.
pub type Attempt = Vec<Result<(), Failure>>;

pub type AttemptFuture<'a> = Pin<Box<dyn Future<Output = Attempt> + Send + 'a>>;

pub trait Channel: Send + Sync {
    fn kind(&self) -> ChannelKind;

    /// One attempt to deliver `envelope` to every recipient in `to` (each
    /// addressed for this channel).
    fn send<'a>(&'a self, envelope: &'a Envelope<'a>, to: &'a [Recipient]) -> AttemptFuture<'a>;
}

/// One request per recipient, in order: the attempt of a channel that has
/// no group send (SMS, the CRM webhooks).
pub(crate) async fn each_recipient<'r, F, Fut>(to: &'r [Recipient], mut send: F) -> Attempt
where
    F: FnMut(&'r Recipient) -> Fut,
    Fut: Future<Output = Result<(), Failure>>,
{
    let mut results = Vec::with_capacity(to.len());
    for recipient in to {
        results.push(send(recipient).await);
    }
    results
}

/// A failed request as a delivery failure. The URL is dropped from the
/// message: WeCom's carries the access token (and `gettoken`'s the secret).
pub(crate) fn request_failure(err: reqwest::Error) -> Failure {
    let err = err.without_url();
    // Timeouts and connection problems are worth retrying; so is anything
    // else the client reports, since it says nothing about the request itself.
    Failure::Transient(if err.is_timeout() {
        "timed out".to_string()
    } else if err.is_connect() {
        format!("connection failed: {err}")
    } else {
        format!("request failed: {err}")
    })
}

/// The failure an HTTP answer means, if any.
pub(crate) fn status_failure(status: reqwest::StatusCode) -> Option<Failure> {
    classify_http(status.as_u16())
}
