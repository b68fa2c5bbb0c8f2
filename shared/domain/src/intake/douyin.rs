//! Douyin Open Platform webhooks (enterprise-account leads) and `douyin_stats`
//! (daily content stats per account, signed the same way).
//!
//! Authenticity: `X-Douyin-Signature` = hex(SHA-1(client_secret ++ raw body)),
//! plain SHA-1 over the raw bytes. The app is found by trying each configured
//! secret, so nothing in the body is trusted before the signature matches.

use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::Value;
use sha1::{Digest, Sha1};

use super::normalise::{raw_payload_ref, RawLead};
use super::{
    body_hash, same_bytes, ContentStats, IntakeError, IntakeMessage, IntakeRequest, IntakeSecrets,
    Method, Normaliser, Outcome, Reply, Source,
};
use crate::directory::Platform;
use crate::lead::{Scene, Traffic};

pub const SIGNATURE_HEADER: &str = "x-douyin-signature";
pub const MSG_ID_HEADER: &str = "msg-id";

/// hex(SHA-1(secret ++ body)): what the platform sends, and what tests compute.
pub fn signature(client_secret: &str, body: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(client_secret.as_bytes());
    h.update(body);
    hex::encode(h.finalize())
}

/// A JSON error without the input it may quote: serde's "invalid type: string
/// \"…\"" would put a phone number from the body into the reply and into the
/// intake's "webhook rejected" log line. Kind and position only.
fn json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let kind = match e.classify() {
        Category::Syntax => "syntax error",
        Category::Data => "unexpected field type or value",
        Category::Eof => "unexpected end of input",
        Category::Io => "read error",
    };
    if e.line() == 0 {
        kind.to_string()
    } else {
        format!("{kind} at line {} column {}", e.line(), e.column())
    }
}

#[derive(Deserialize)]
struct Envelope {
    event: String,
    #[serde(default)]
    client_key: String,
    #[serde(default)]
    from_user_id: String,
    #[serde(default)]
    to_user_id: String,
    #[serde(default)]
    content: Value,
    #[serde(default)]
    log_id: String,
}

pub fn handle(
    req: &IntakeRequest<'_>,
    secrets: &IntakeSecrets,
    normaliser: &Normaliser,
) -> Result<Outcome, IntakeError> {
    if req.method != Method::Post {
        return Err(IntakeError::MethodNotAllowed);
    }
    let client_key = authenticate(req, secrets)?;
    let envelope: Envelope = serde_json::from_slice(req.body).map_err(|e| {
        IntakeError::Malformed(format!("body is not a Douyin event: {}", json_error(&e)))
    })?;
    if !envelope.client_key.is_empty() && envelope.client_key != client_key {
        return Err(IntakeError::Unauthorized(
            "client_key does not match the signing app".into(),
        ));
    }
    // `content` arrives as an object or as a JSON-encoded string: accept both.
    let content = match envelope.content {
        Value::String(text) if text.trim_start().starts_with('{') => serde_json::from_str(&text)
            .map_err(|e| {
                IntakeError::Malformed(format!("content is not valid JSON: {}", json_error(&e)))
            })?,
        other => other,
    };

    if envelope.event == "verify_webhook" {
        let challenge = content
            .get("challenge")
            .cloned()
            .ok_or_else(|| IntakeError::Malformed("verify_webhook without challenge".into()))?;
        return Ok(Outcome::Handshake(Reply::json(
            serde_json::json!({ "challenge": challenge }),
        )));
    }

    // From signed content only: the body's `log_id`, else the body's hash.
    // The `Msg-Id` header is not signed (a replay with new ones would count
    // as new deliveries) and is ignored.
    let delivery_key = Some(envelope.log_id.clone())
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| body_hash(req.body));
    let raw_ref = raw_payload_ref(req.source, &delivery_key);
    let reply = Reply::json(serde_json::json!({ "code": 0, "message": "success" }));

    if req.source == Source::DouyinStats {
        let stats = content_stats(&envelope.to_user_id, &content, req)?;
        if !secrets.douyin_may_speak_for(&client_key, &stats.platform_account) {
            return Err(not_its_account());
        }
        return Ok(Outcome::Accepted {
            delivery_key,
            messages: vec![IntakeMessage::ContentStats(stats)],
            reply,
        });
    }

    let Some(scene) = lead_scene(&envelope.event, &content) else {
        return Ok(Outcome::Ignored {
            reason: format!("event {} carries no lead", envelope.event),
            reply,
        });
    };
    let phone = text_field(&content, &["phone", "telephone", "mobile", "tel"]).or_else(|| {
        // A phone typed in a private message is inside the message text.
        text_field(&content, &["text"]).and_then(|t| find_mobile(&t))
    });
    let is_form = matches!(
        envelope.event.as_str(),
        "website_contact" | "personal_tab_contact"
    );
    if phone.is_none() && !is_form {
        return Ok(Outcome::Ignored {
            reason: format!("{} without a phone number", envelope.event),
            reply,
        });
    }
    let traffic = if content.get("ad_info").is_some_and(|v| !v.is_null())
        || content
            .get("flow_type")
            .and_then(Value::as_i64)
            .is_some_and(|f| f != 1)
    {
        Traffic::Paid
    } else {
        Traffic::Natural
    };
    let account_id = Some(envelope.to_user_id.clone())
        .filter(|s| !s.is_empty())
        .or_else(|| text_field(&content, &["account_id"]))
        .unwrap_or_default();
    if !secrets.douyin_may_speak_for(&client_key, &account_id) {
        return Err(not_its_account());
    }
    let raw = RawLead {
        source_event_id: format!("douyin:{delivery_key}"),
        account_id,
        phone,
        customer_name: text_field(&content, &["name", "nickname"]),
        declared_city: text_field(&content, &["city", "city_name", "location"]),
        series: series(&content),
        channel_tag: None,
        staff_hint: None,
        wecom_contact: None,
    };
    let _visitor = envelope.from_user_id; // the visitor's open id; not an identity we dedup on
    let lead = normaliser.lead(Platform::Douyin, scene, traffic, raw, req.now, &raw_ref)?;
    Ok(Outcome::Accepted {
        delivery_key,
        messages: vec![IntakeMessage::Lead(Box::new(lead))],
        reply,
    })
}

fn not_its_account() -> IntakeError {
    IntakeError::Unauthorized("this app may not deliver for the account the body names".into())
}

/// Finds the app whose secret signed the body.
fn authenticate(req: &IntakeRequest<'_>, secrets: &IntakeSecrets) -> Result<String, IntakeError> {
    let sent = req
        .header(SIGNATURE_HEADER)
        .ok_or_else(|| IntakeError::Unauthorized("missing X-Douyin-Signature".into()))?;
    let sent = hex::decode(sent.trim())
        .map_err(|_| IntakeError::Unauthorized("X-Douyin-Signature is not hex".into()))?;
    let mut found = None;
    // Check every app (no early exit) so timing does not reveal which one matched.
    for (client_key, secret) in &secrets.douyin {
        let mut h = Sha1::new();
        h.update(secret.as_bytes());
        h.update(req.body);
        if same_bytes(&h.finalize(), &sent) {
            found = Some(client_key.clone());
        }
    }
    found.ok_or_else(|| IntakeError::Unauthorized("signature does not match".into()))
}

/// Which lead events we take, and their scene. `None`: not a lead event.
fn lead_scene(event: &str, content: &Value) -> Option<Scene> {
    let scene = match event {
        "im_receive_msg" | "im_enter_direct_msg" => Scene::PrivateMessage,
        "dial_phone" => Scene::Phone,
        "website_contact" => Scene::AdForm,
        "personal_tab_contact" => Scene::Homepage,
        _ => return None,
    };
    // Where the visitor came from, when the platform says so.
    Some(match content.get("scene").and_then(Value::as_str) {
        Some("live") => Scene::Live,
        Some("video" | "short_video") => Scene::ShortVideo,
        _ => scene,
    })
}

/// Live sessions a day's report may list one by one (an account streams a
/// few a day; the list is stored with the day).
const MAX_LIVE_SESSIONS_LISTED: usize = 200;

fn content_stats(
    to_user_id: &str,
    content: &Value,
    req: &IntakeRequest<'_>,
) -> Result<ContentStats, IntakeError> {
    #[derive(Deserialize)]
    struct Raw {
        #[serde(default)]
        account_id: String,
        date: NaiveDate,
        #[serde(default)]
        videos: u32,
        #[serde(default)]
        live_sessions: u32,
        #[serde(default)]
        live_minutes: u32,
        #[serde(default)]
        plays: u64,
        #[serde(default)]
        likes: u64,
        #[serde(default)]
        comments: u64,
        #[serde(default)]
        shares: u64,
        #[serde(default)]
        completed_plays: u64,
        #[serde(default)]
        live_session_minutes: Vec<u32>,
        #[serde(default)]
        live_viewers: u64,
        #[serde(default)]
        live_follows: u64,
        #[serde(default)]
        live_comments: u64,
        #[serde(default)]
        live_shares: u64,
    }
    let raw: Raw = serde_json::from_value(content.clone()).map_err(|e| {
        IntakeError::NotALead(format!("content is not daily stats: {}", json_error(&e)))
    })?;
    let account = if raw.account_id.is_empty() {
        to_user_id.to_string()
    } else {
        raw.account_id
    };
    if account.is_empty() {
        return Err(IntakeError::NotALead("stats without an account id".into()));
    }
    if !raw.live_session_minutes.is_empty()
        && raw.live_session_minutes.len() != raw.live_sessions as usize
    {
        return Err(IntakeError::NotALead(format!(
            "live_session_minutes lists {} sessions, live_sessions says {}",
            raw.live_session_minutes.len(),
            raw.live_sessions
        )));
    }
    if raw.live_session_minutes.len() > MAX_LIVE_SESSIONS_LISTED {
        return Err(IntakeError::NotALead(format!(
            "more than {MAX_LIVE_SESSIONS_LISTED} live sessions in a day"
        )));
    }
    if raw.completed_plays > raw.plays {
        return Err(IntakeError::NotALead(
            "completed_plays exceeds plays".into(),
        ));
    }
    Ok(ContentStats {
        platform_account: account,
        date: raw.date,
        videos: raw.videos,
        live_sessions: raw.live_sessions,
        live_minutes: raw.live_minutes,
        plays: raw.plays,
        likes: raw.likes,
        comments: raw.comments,
        shares: raw.shares,
        completed_plays: raw.completed_plays,
        live_session_minutes: raw.live_session_minutes,
        live_viewers: raw.live_viewers,
        live_follows: raw.live_follows,
        live_comments: raw.live_comments,
        live_shares: raw.live_shares,
        received_at: req.now,
    })
}

/// The first non-empty string (or number) among `names`.
pub(crate) fn text_field(content: &Value, names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| match content.get(*n)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

/// Series of interest: a string, a list, or a comma-separated string.
pub(crate) fn series(content: &Value) -> Vec<String> {
    let names = ["series", "intention_series", "car_series"];
    let Some(value) = names.iter().find_map(|n| content.get(*n)) else {
        return Vec::new();
    };
    match value {
        Value::String(s) => s.split([',', '，', '、']).map(str::to_string).collect(),
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

/// Finds a mainland mobile number in free text ("我的电话 138-1234-5678").
pub fn find_mobile(text: &str) -> Option<String> {
    let mut run = String::new();
    let mut candidates = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let digit = match c {
            '0'..='9' => Some(c),
            '０'..='９' => char::from_u32(c as u32 - '０' as u32 + '0' as u32),
            _ => None,
        };
        match digit {
            Some(d) => run.push(d),
            // Separators inside a number keep the run going.
            None if matches!(c, ' ' | '-' | '+')
                && !run.is_empty()
                && chars.peek().is_some_and(|n| n.is_ascii_digit()) => {}
            None => candidates.push(std::mem::take(&mut run)),
        }
    }
    candidates.push(run);
    candidates.into_iter().find_map(|digits| {
        let national = digits
            .strip_prefix("0086")
            .or_else(|| digits.strip_prefix("86"))
            .filter(|d| d.len() == 11)
            .unwrap_or(&digits);
        crate::Phone::parse(national)
            .ok()
            .map(|_| national.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzzing (`fuzz/corpus/douyin/crash-stats-echo`): serde's type
    /// errors quote the offending value, which can hold a phone number.
    #[test]
    fn errors_never_quote_the_body() {
        for (event, content) in [
            (
                "account_daily_stats",
                serde_json::json!("我的电话13812345678"),
            ),
            (
                "account_daily_stats",
                serde_json::json!({"date": "13812345678"}),
            ),
            (
                "account_daily_stats",
                serde_json::json!({"plays": "13812345678"}),
            ),
        ] {
            let body = serde_json::json!({"event": event, "client_key": "k", "to_user_id": "a", "content": content})
                .to_string();
            let err = parse_for_test(&body, Source::DouyinStats).unwrap_err();
            assert!(!err.to_string().contains("13812345678"), "{err}");
        }
        for body in [
            r#"{"event": 13812345678}"#,
            r#"{"event": "x", "client_key": ["13812345678"]}"#,
        ] {
            let err = parse_for_test(body, Source::Douyin).unwrap_err();
            assert!(!err.to_string().contains("13812345678"), "{err}");
        }
    }

    fn parse_for_test(body: &str, source: Source) -> Result<Outcome, IntakeError> {
        let mut secrets = IntakeSecrets {
            phone_hash_key: "k".repeat(16),
            ..Default::default()
        };
        secrets.douyin.insert("k".into(), "s".into());
        let headers = std::collections::HashMap::from([(
            SIGNATURE_HEADER.to_string(),
            signature("s", body.as_bytes()),
        )]);
        let query = std::collections::HashMap::new();
        let req = IntakeRequest {
            source,
            method: Method::Post,
            headers: &headers,
            query: &query,
            body: body.as_bytes(),
            now: chrono::Utc::now(),
        };
        let normaliser = Normaliser::new(crate::identity::PhoneHasher::new(b"k".repeat(16)));
        handle(&req, &secrets, &normaliser)
    }

    #[test]
    fn finds_mobile_in_chat_text() {
        assert_eq!(
            find_mobile("我的电话13812345678谢谢").as_deref(),
            Some("13812345678")
        );
        assert_eq!(
            find_mobile("电话 138-1234-5678").as_deref(),
            Some("13812345678")
        );
        assert_eq!(
            find_mobile("call +86 138 1234 5678 pls").as_deref(),
            Some("13812345678")
        );
        assert_eq!(find_mobile("订单号 123456789012345"), None);
        assert_eq!(find_mobile("多少钱"), None);
    }
}
