//! The brand's own CRM: each lifecycle event of the CRM queue
//! (`leads_domain::crm::CrmEvent`, the JSON as queued) POSTed to the brand's
//! endpoint, signed with the brand's key the same way as the regional
//! webhook, `X-Event-Id` = the event id.

use leads_domain::delivery::{ChannelKind, Failure};
use leads_domain::notification::Notice;

use super::webhook::signed_post;
use super::{each_recipient, Attempt, AttemptFuture, Channel, Envelope, Recipient};
use crate::config::BrandCrms;

pub struct BrandCrmChannel {
    http: reqwest::Client,
    endpoints: BrandCrms,
}

impl BrandCrmChannel {
    pub fn new(http: reqwest::Client, endpoints: BrandCrms) -> Self {
        BrandCrmChannel { http, endpoints }
    }

    /// Whether `brand_id` has an endpoint (the plan asks before delivering).
    pub fn serves(&self, brand_id: &str) -> bool {
        self.endpoints.get(brand_id).is_some()
    }

    async fn send_one(&self, notice: &Notice) -> Result<(), Failure> {
        let Notice::Crm(event) = notice else {
            return Err(Failure::Permanent("not a CRM event".into()));
        };
        let brand = event.brand_id.as_deref().unwrap_or_default();
        let endpoint = self
            .endpoints
            .get(brand)
            .ok_or_else(|| Failure::Permanent(format!("brand {brand} has no CRM endpoint")))?;
        let body = serde_json::to_vec(event).map_err(|e| Failure::Permanent(e.to_string()))?;
        signed_post(&self.http, &endpoint, &event.event_id, body).await
    }

    async fn attempt(&self, envelope: &Envelope<'_>, to: &[Recipient]) -> Attempt {
        each_recipient(to, |_| self.send_one(envelope.notice)).await
    }
}

impl Channel for BrandCrmChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::BrandCrm
    }

    fn send<'a>(&'a self, envelope: &'a Envelope<'a>, to: &'a [Recipient]) -> AttemptFuture<'a> {
        Box::pin(self.attempt(envelope, to))
    }
}
