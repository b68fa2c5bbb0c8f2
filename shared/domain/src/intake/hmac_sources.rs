//! Sources signed with HMAC-SHA256 over `"{timestamp}.{body}"`: Ocean Engine clue
//! push (`feiyu`), vertical auto media (`dongchedi`, `autohome`, `yiche`) and the
//! brand's CRM (`oem_crm`).
//!
//! Headers: `X-Timestamp` (Unix seconds, within 5 minutes of now), `X-Signature`
//! (hex HMAC), optional `X-Account-Id` (selects a per-account secret: the
//! delivery may then only name that account) and `X-Event-Id` (unsigned, so
//! ignored for dedup: the delivery key is the hash of the signed body).

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use super::douyin::{series, text_field};
use super::normalise::{raw_payload_ref, RawLead};
use super::{
    body_hash, IntakeError, IntakeMessage, IntakeRequest, IntakeSecrets, Method, Normaliser,
    Outcome, Reply, Source,
};
use crate::directory::Platform;
use crate::lead::{Scene, Traffic};

pub const TIMESTAMP_HEADER: &str = "x-timestamp";
pub const SIGNATURE_HEADER: &str = "x-signature";
pub const ACCOUNT_HEADER: &str = "x-account-id";
pub const EVENT_ID_HEADER: &str = "x-event-id";
/// `oem_crm`: the brand whose own secret signs (`oem_crm_brands`).
pub const BRAND_HEADER: &str = "x-brand-id";
/// How far a request's timestamp may be from now, either way.
pub const TOLERANCE_SECS: i64 = 300;
/// Most leads accepted in one delivery.
pub const MAX_LEADS_PER_DELIVERY: usize = 100;

/// hex(HMAC-SHA256(secret, "{timestamp}.{body}")): what callers send and tests compute.
pub fn signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
}

fn mac(secret: &str, timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

pub fn handle(
    req: &IntakeRequest<'_>,
    secrets: &IntakeSecrets,
    normaliser: &Normaliser,
) -> Result<Outcome, IntakeError> {
    if req.method != Method::Post {
        return Err(IntakeError::MethodNotAllowed);
    }
    let signer = authenticate(req, secrets)?;
    let body: Value = serde_json::from_slice(req.body).map_err(|e| {
        // Position only: serde's message can quote the body.
        IntakeError::Malformed(format!(
            "body is not JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    let reply = Reply::json(serde_json::json!({ "code": 0, "message": "success" }));
    // `X-Event-Id` is not signed: a replay with a new one would be a new
    // delivery. The signed body is the key (the timestamp is left out, so a
    // platform's retry with a fresh timestamp is still the same delivery).
    let delivery_key = body_hash(req.body);
    let raw_ref = raw_payload_ref(req.source, &delivery_key);

    if req.source == Source::OemCrm
        && body.get("type").and_then(Value::as_str) == Some("status_sync")
    {
        let status = crm_status(&body, &signer, &delivery_key, req.now)?;
        return Ok(Outcome::Accepted {
            delivery_key,
            messages: vec![IntakeMessage::CrmStatus(status)],
            reply,
        });
    }
    if req.source == Source::OemCrm && body.get("type").and_then(Value::as_str) == Some("dispatch")
    {
        let dispatch = crm_dispatch(&body, &signer, &delivery_key, req.now)?;
        return Ok(Outcome::Accepted {
            delivery_key,
            messages: vec![IntakeMessage::CrmDispatch(dispatch)],
            reply,
        });
    }

    // One lead, a list of leads, or `{"data": [...]}` (Ocean Engine batches).
    let items: Vec<&Value> = match &body {
        Value::Array(items) => items.iter().collect(),
        Value::Object(map) => match map.get("data") {
            Some(Value::Array(items)) => items.iter().collect(),
            _ => vec![&body],
        },
        _ => return Err(IntakeError::NotALead("body is not a lead object".into())),
    };
    if items.is_empty() {
        return Err(IntakeError::NotALead("no leads in the body".into()));
    }
    if items.len() > MAX_LEADS_PER_DELIVERY {
        return Err(IntakeError::NotALead(format!(
            "{} leads in one delivery; at most {MAX_LEADS_PER_DELIVERY}",
            items.len()
        )));
    }
    let header_account = req.header(ACCOUNT_HEADER).map(str::to_string);
    let mut messages = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        if !item.is_object() {
            return Err(IntakeError::NotALead(format!("lead {i} is not an object")));
        }
        let lead = parse_lead(req, item, header_account.as_deref(), &delivery_key, i)
            .and_then(|parsed| {
                // A per-account secret speaks for its own account only.
                match &signer {
                    Signer::Account(account) if parsed.3.account_id != *account => {
                        Err(IntakeError::Unauthorized(
                            "the body names an account this secret does not sign for".into(),
                        ))
                    }
                    _ => Ok(parsed),
                }
            })
            .and_then(|(platform, scene, traffic, raw)| {
                normaliser.lead(platform, scene, traffic, raw, req.now, &raw_ref)
            })
            .map_err(|e| match e {
                IntakeError::NotALead(m) => IntakeError::NotALead(format!("lead {i}: {m}")),
                other => other,
            })?;
        let mut lead = lead;
        if let Signer::Brand(brand) = &signer {
            lead.signer_brand = Some(brand.clone());
        }
        messages.push(IntakeMessage::Lead(Box::new(lead)));
    }
    Ok(Outcome::Accepted {
        delivery_key,
        messages,
        reply,
    })
}

/// A CRM's `status_sync`: `{"type": "status_sync", "lead_id", "status":
/// "contacted" | "invited" | "visited" | "won" | "lost" | "invalid",
/// "reason"?}`, signed with the brand's own CRM secret (the shared one
/// speaks for no brand in particular, so it may move no lead).
fn crm_status(
    body: &Value,
    signer: &Signer,
    delivery_key: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<crate::intake::CrmStatus, IntakeError> {
    use crate::status::StatusEvent;
    let brand = signing_brand(signer, "status sync")?;
    let lead_id = id_field(body, "lead_id", "status_sync")?;
    let event =
        match body.get("status").and_then(Value::as_str) {
            Some("contacted") => StatusEvent::Contacted,
            Some("invited") => StatusEvent::Invited,
            Some("visited") => StatusEvent::Visited,
            Some("won") => StatusEvent::Won,
            Some("lost") => StatusEvent::Lost,
            Some("invalid") => StatusEvent::MarkedInvalid,
            // The value is not repeated: it is the caller's input.
            _ => return Err(IntakeError::Malformed(
                "status_sync \"status\" must be contacted, invited, visited, won, lost or invalid"
                    .into(),
            )),
        };
    let reason = match body.get("reason") {
        None | Some(Value::Null) => None,
        Some(Value::String(r)) if r.len() <= 64 => Some(r.clone()),
        Some(_) => {
            return Err(IntakeError::Malformed(
                "status_sync \"reason\" must be a reason code (at most 64 characters)".into(),
            ))
        }
    };
    Ok(crate::intake::CrmStatus {
        source_event_id: delivery_key.to_string(),
        brand_id: brand.clone(),
        lead_id: lead_id.to_string(),
        event,
        reason,
        at: now,
    })
}

/// A CRM's `dispatch`: `{"type": "dispatch", "lead_id", "dealer_id"}`, an
/// unrouted lead placed by the brand's team, signed with the brand's own
/// CRM secret.
fn crm_dispatch(
    body: &Value,
    signer: &Signer,
    delivery_key: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<crate::intake::CrmDispatch, IntakeError> {
    let brand = signing_brand(signer, "dispatch")?;
    Ok(crate::intake::CrmDispatch {
        source_event_id: delivery_key.to_string(),
        brand_id: brand.clone(),
        lead_id: id_field(body, "lead_id", "dispatch")?.to_string(),
        dealer_id: id_field(body, "dealer_id", "dispatch")?.to_string(),
        at: now,
    })
}

/// The brand whose own CRM secret signed a CRM message (the shared one
/// speaks for no brand in particular, so it may move no lead).
fn signing_brand<'a>(signer: &'a Signer, what: &str) -> Result<&'a String, IntakeError> {
    match signer {
        Signer::Brand(brand) => Ok(brand),
        _ => Err(IntakeError::Unauthorized(format!(
            "a {what} must be signed with the brand's own CRM secret (X-Brand-Id)"
        ))),
    }
}

/// An id of ours in a CRM message (letters, digits, `-`; at most 64).
fn id_field<'a>(body: &'a Value, field: &str, what: &str) -> Result<&'a str, IntakeError> {
    body.get(field)
        .and_then(Value::as_str)
        .filter(|id| {
            !id.is_empty()
                && id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .ok_or_else(|| IntakeError::Malformed(format!("{what} needs a \"{field}\" of ours")))
}

/// Which configured secret signed a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Signer {
    /// The per-account secret of this account (`X-Account-Id`).
    Account(String),
    /// A secret of the whole source (the platform's own).
    Source,
    /// One brand's own CRM secret (`oem_crm_brands`).
    Brand(String),
}

fn authenticate(req: &IntakeRequest<'_>, secrets: &IntakeSecrets) -> Result<Signer, IntakeError> {
    let timestamp = req
        .header(TIMESTAMP_HEADER)
        .ok_or_else(|| IntakeError::Unauthorized("missing X-Timestamp".into()))?;
    let sent = req
        .header(SIGNATURE_HEADER)
        .ok_or_else(|| IntakeError::Unauthorized("missing X-Signature".into()))?;
    let seconds: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| IntakeError::Unauthorized("X-Timestamp is not Unix seconds".into()))?;
    if (req.now.timestamp() - seconds).abs() > TOLERANCE_SECS {
        return Err(IntakeError::Unauthorized(
            "stale timestamp: more than 5 minutes from now".into(),
        ));
    }
    let sent = hex::decode(sent.trim())
        .map_err(|_| IntakeError::Unauthorized("X-Signature is not hex".into()))?;
    let configured = secrets.hmac.get(&req.source);
    let account = req.header(ACCOUNT_HEADER);
    let account_secrets = account.and_then(|a| Some((a, configured?.accounts.get(a)?)));
    let brand_secrets = req
        .header(BRAND_HEADER)
        .filter(|_| req.source == Source::OemCrm)
        .and_then(|b| Some((b, secrets.oem_crm_brands.get(b)?)));
    let (signer, candidates) = match (brand_secrets, account_secrets) {
        (Some((b, s)), _) => (Signer::Brand(b.to_string()), s),
        (None, Some((a, s))) => (Signer::Account(a.to_string()), s),
        (None, None) => (
            Signer::Source,
            configured.map(|c| &c.secrets).ok_or_else(|| {
                IntakeError::Unauthorized("no secret configured for this source".into())
            })?,
        ),
    };
    // `verify_slice` compares in constant time.
    let valid = candidates
        .iter()
        .any(|s| mac(s, timestamp, req.body).verify_slice(&sent).is_ok());
    if valid {
        Ok(signer)
    } else {
        Err(IntakeError::Unauthorized("signature does not match".into()))
    }
}

fn parse_lead(
    req: &IntakeRequest<'_>,
    item: &Value,
    header_account: Option<&str>,
    delivery_key: &str,
    index: usize,
) -> Result<(Platform, Scene, Traffic, RawLead), IntakeError> {
    let id = text_field(item, &["id", "clue_id", "lead_id"]);
    let source_event_id = format!(
        "{}:{}",
        req.source,
        id.unwrap_or_else(|| format!("{delivery_key}:{index}"))
    );
    let (platform, scene, traffic, account_fields): (_, _, _, &[&str]) = match req.source {
        Source::Feiyu => {
            // flow_type 1 = natural operating traffic; 2/3/4 = ad traffic.
            let traffic = match item.get("flow_type").and_then(as_i64) {
                Some(1) => Traffic::Natural,
                Some(_) => Traffic::Paid,
                None => return Err(IntakeError::NotALead("missing flow_type".into())),
            };
            let scene = match item.get("clue_source").and_then(as_i64) {
                Some(5) => Scene::Homepage,
                Some(8) => Scene::AdForm,
                _ => Scene::AdForm,
            };
            (
                Platform::Feiyu,
                scene,
                traffic,
                &["advertiser_id", "adv_id", "account_id"][..],
            )
        }
        Source::Dongchedi | Source::Autohome | Source::Yiche => {
            let platform = match req.source {
                Source::Dongchedi => Platform::Dongchedi,
                Source::Autohome => Platform::Autohome,
                _ => Platform::Yiche,
            };
            (
                platform,
                Scene::MemberLead,
                traffic_field(item, Traffic::Paid)?,
                &["dealer_id", "account_id"][..],
            )
        }
        Source::OemCrm => (
            Platform::OemCrm,
            Scene::CrmDispatch,
            traffic_field(item, Traffic::Paid)?,
            &["dealer_id", "account_id"][..],
        ),
        _ => unreachable!("only HMAC sources reach here"),
    };
    let account_id = text_field(item, account_fields)
        .or_else(|| header_account.map(str::to_string))
        .unwrap_or_default();
    let declared_city = text_field(item, &["city_name", "city", "location"]);
    let wecom_contact = match req.source {
        Source::OemCrm => wecom_contact(item)?,
        _ => None,
    };
    let raw = RawLead {
        source_event_id,
        account_id,
        phone: text_field(item, &["telphone", "telephone", "phone", "mobile", "tel"]),
        customer_name: text_field(item, &["name", "customer_name"]),
        declared_city,
        series: series(item),
        channel_tag: None,
        staff_hint: None,
        wecom_contact,
    };
    Ok((platform, scene, traffic, raw))
}

/// The brand CRM may know the customer's WeCom contact too:
/// `wecom_external_userid` with the `wecom_corp_id` it belongs to (an
/// external user id means nothing without its corp). Both or neither.
fn wecom_contact(item: &Value) -> Result<Option<(String, String)>, IntakeError> {
    // `text_field` trims and treats blank as absent.
    let corp = text_field(item, &["wecom_corp_id"]);
    let external = text_field(item, &["wecom_external_userid"]);
    match (corp, external) {
        (Some(corp), Some(external)) => Ok(Some((corp, external))),
        (None, None) => Ok(None),
        (None, Some(_)) => Err(IntakeError::NotALead(
            "wecom_external_userid needs wecom_corp_id".into(),
        )),
        (Some(_), None) => Err(IntakeError::NotALead(
            "wecom_corp_id needs wecom_external_userid".into(),
        )),
    }
}

/// Numbers sometimes arrive as strings ("1").
fn as_i64(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_str()?.trim().parse().ok())
}

fn traffic_field(item: &Value, default: Traffic) -> Result<Traffic, IntakeError> {
    match item.get("traffic").and_then(Value::as_str) {
        None => Ok(default),
        Some("natural") => Ok(Traffic::Natural),
        Some("paid") => Ok(Traffic::Paid),
        // Never quote the value: it is the caller's input.
        Some(_) => Err(IntakeError::NotALead(
            "traffic must be natural or paid".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::identity::PhoneHasher;
    use crate::intake::secrets::HmacSecrets;
    use crate::lead::{CanonicalLead, CustomerKey};

    fn crm(body: &str) -> Result<Outcome, IntakeError> {
        let now = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
        let ts = now.timestamp().to_string();
        let headers = HashMap::from([
            (TIMESTAMP_HEADER.to_string(), ts.clone()),
            (
                SIGNATURE_HEADER.to_string(),
                signature("crm", &ts, body.as_bytes()),
            ),
        ]);
        let query = HashMap::new();
        let mut secrets = IntakeSecrets::default();
        secrets.hmac.insert(
            Source::OemCrm,
            HmacSecrets {
                secrets: vec!["crm".into()],
                accounts: HashMap::new(),
            },
        );
        let req = IntakeRequest {
            source: Source::OemCrm,
            method: Method::Post,
            headers: &headers,
            query: &query,
            body: body.as_bytes(),
            now,
        };
        handle(
            &req,
            &secrets,
            &Normaliser::new(PhoneHasher::new(b"k".to_vec())),
        )
    }

    fn lead(outcome: Outcome) -> CanonicalLead {
        match outcome {
            Outcome::Accepted { mut messages, .. } => match messages.remove(0) {
                IntakeMessage::Lead(lead) => *lead,
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn crm_push_with_phone_and_wecom_id_carries_both_keys() {
        let l = lead(
            crm(r#"{"lead_id":"c1","dealer_id":"d1","phone":"13812345678",
                "wecom_corp_id":"ww1","wecom_external_userid":"wmEXT"}"#)
            .unwrap(),
        );
        assert!(matches!(l.customer, CustomerKey::Phone { .. }));
        assert_eq!(
            l.linked_customer,
            Some(CustomerKey::Wecom {
                corp_id: "ww1".into(),
                external_userid: "wmEXT".into()
            })
        );
        // Without the WeCom id: one key, as before.
        let l = lead(crm(r#"{"lead_id":"c2","dealer_id":"d1","phone":"13812345678"}"#).unwrap());
        assert_eq!(l.linked_customer, None);
        // A WeCom id alone is the key (no phone).
        let l = lead(
            crm(r#"{"lead_id":"c3","dealer_id":"d1","wecom_corp_id":"ww1","wecom_external_userid":"wmEXT"}"#)
                .unwrap(),
        );
        assert!(matches!(l.customer, CustomerKey::Wecom { .. }));
        assert_eq!(l.linked_customer, None);
    }

    #[test]
    fn wecom_id_without_its_corp_is_refused_without_echoing_the_phone() {
        let err = crm(r#"{"lead_id":"c4","dealer_id":"d1","phone":"13812345678","wecom_external_userid":"wmEXT"}"#)
            .unwrap_err();
        assert!(matches!(err, IntakeError::NotALead(_)), "{err:?}");
        assert!(err.to_string().contains("wecom_corp_id"));
        assert!(!err.to_string().contains("13812345678"));
    }
}
