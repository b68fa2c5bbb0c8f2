//! Turns the fields a platform sent into a canonical lead: phone to E.164 and its
//! keyed hash, declared city to an administrative code, attribution by prefix.

use chrono::{DateTime, Utc};

use super::IntakeError;
use crate::attribution;
use crate::directory::Platform;
use crate::identity::PhoneHasher;
use crate::lead::{CanonicalLead, CustomerKey, Scene, Traffic};
use crate::{city, Phone};

#[derive(Debug, Clone)]
pub struct Normaliser {
    hasher: PhoneHasher,
}

/// The fields every source can provide, before normalisation.
#[derive(Debug, Clone, Default)]
pub struct RawLead {
    pub source_event_id: String,
    pub account_id: String,
    pub phone: Option<String>,
    pub customer_name: Option<String>,
    pub declared_city: Option<String>,
    pub series: Vec<String>,
    pub channel_tag: Option<String>,
    /// Platform user already in contact with the customer (WeCom `UserID`).
    pub staff_hint: Option<String>,
    /// WeCom contact: (corp id, external user id). The customer's key when
    /// there is no phone, else a second key linked to the phone's lead.
    pub wecom_contact: Option<(String, String)>,
}

impl Normaliser {
    pub fn new(hasher: PhoneHasher) -> Self {
        Normaliser { hasher }
    }

    /// Validates and normalises one lead. A lead needs a usable phone number or a
    /// WeCom contact id; a present-but-invalid phone is refused, never dropped.
    #[allow(clippy::too_many_arguments)]
    pub fn lead(
        &self,
        platform: Platform,
        scene: Scene,
        traffic: Traffic,
        raw: RawLead,
        received_at: DateTime<Utc>,
        raw_payload_ref: &str,
    ) -> Result<CanonicalLead, IntakeError> {
        if raw.account_id.trim().is_empty() {
            return Err(IntakeError::NotALead("no platform account id".into()));
        }
        let phone = match raw
            .phone
            .as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            Some(text) => Some(
                Phone::parse(text)
                    .map_err(|e| IntakeError::NotALead(format!("phone number rejected: {e}")))?,
            ),
            None => None,
        };
        let wecom = raw
            .wecom_contact
            .map(|(corp_id, external_userid)| CustomerKey::Wecom {
                corp_id,
                external_userid,
            });
        // The phone is the primary key; a WeCom id sent with it is the second
        // key, which the router links to the lead.
        let (customer, linked_customer) = match (&phone, wecom) {
            (Some(p), wecom) => (
                CustomerKey::Phone {
                    hash: self.hasher.hash(p),
                },
                wecom,
            ),
            (None, Some(wecom)) => (wecom, None),
            (None, None) => {
                return Err(IntakeError::NotALead(
                    "no phone number and no WeCom contact id".into(),
                ))
            }
        };
        // A declared city we cannot resolve is kept as unknown, not refused: the
        // customer still wants a call, and routing treats unknown as local.
        let declared_city = raw
            .declared_city
            .as_deref()
            .and_then(city::normalise)
            .map(|c| c.code);
        let attributed_city = phone.as_ref().and_then(attribution::attribute);
        let mut series: Vec<String> = raw
            .series
            .into_iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        series.dedup();
        Ok(CanonicalLead {
            source_event_id: raw.source_event_id,
            platform,
            account_id: raw.account_id,
            scene,
            traffic,
            customer,
            linked_customer,
            phone,
            customer_name: raw.customer_name.filter(|n| !n.trim().is_empty()),
            declared_city,
            attributed_city,
            series_interest: series,
            staff_hint: raw.staff_hint,
            channel_tag: raw.channel_tag,
            received_at,
            raw_payload_ref: raw_payload_ref.to_string(),
            signer_brand: None,
            sealed_contact: None,
        })
    }
}

/// The key under which a delivery's raw body is kept (the lead's `raw_payload_ref`).
pub fn raw_payload_ref(source: super::Source, delivery_key: &str) -> String {
    format!("RAW#{source}#{delivery_key}")
}
