//! Fuzz entry points, one per parser, shared by the cargo-fuzz targets
//! (`fuzz_targets/*.rs`, nightly + libFuzzer) and the stable corpus replay in
//! the test suite (`tests/tests/fuzz_corpus.rs`).
//!
//! Each entry point feeds bytes to the same function the intake runs, signing
//! them first where the source authenticates (so the fuzzer reaches the parser
//! instead of stopping at the signature check), and checks properties besides
//! "does not panic":
//! - a parsed phone is a mainland mobile in E.164 that parses back to itself and
//!   never prints in full;
//! - every message intake would enqueue survives the queue: it serialises and
//!   the router's deserialiser gives back the same message (a message that does
//!   not would be a poison message in the lead queue);
//! - an error reply never echoes a phone number found in the input;
//! - WeCom: whatever decrypts, re-encrypts and decrypts to the same text.
//!
//! The `*_outcome` variants return what the intake (or the normaliser) made of
//! the input, so the replay can also check that known-good deliveries
//! (`fuzz/valid/`) are accepted as the expected leads: the properties above
//! only run on accepted input, and a parser rejecting everything passes them.

use std::collections::HashMap;
use std::sync::OnceLock;

use base64::Engine as _;
use chrono::{DateTime, TimeZone, Utc};
use leads_domain::directory::Platform;
use leads_domain::identity::PhoneHasher;
use leads_domain::intake::normalise::RawLead;
use leads_domain::intake::secrets::{HmacSecrets, WecomCorp};
use leads_domain::intake::wecom::WecomCrypto;
use leads_domain::intake::{
    self, douyin, hmac_sources, wecom, IntakeError, IntakeMessage, IntakeRequest, IntakeSecrets,
    Method, Normaliser, Outcome, Source,
};
use leads_domain::lead::{CanonicalLead, Scene, Traffic};
use leads_domain::{city, Phone};

pub const DOUYIN_KEY: &str = "awx-fuzz";
pub const DOUYIN_SECRET: &str = "douyin-fuzz-secret";
pub const HMAC_SECRET: &str = "hmac-fuzz-secret";
pub const CORP_ID: &str = "wwfuzzcorp0001";
pub const CORP_TOKEN: &str = "fuzz-token";
pub const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

pub fn corp() -> WecomCorp {
    WecomCorp {
        corp_id: CORP_ID.into(),
        token: CORP_TOKEN.into(),
        encoding_aes_key: AES_KEY.into(),
    }
}

pub fn secrets() -> &'static IntakeSecrets {
    static SECRETS: OnceLock<IntakeSecrets> = OnceLock::new();
    SECRETS.get_or_init(|| {
        let mut s = IntakeSecrets {
            phone_hash_key: "fuzz-phone-hash-key".into(),
            ..Default::default()
        };
        s.douyin.insert(DOUYIN_KEY.into(), DOUYIN_SECRET.into());
        for source in HMAC_SOURCES {
            s.hmac.insert(
                source,
                HmacSecrets {
                    secrets: vec![HMAC_SECRET.into()],
                    accounts: HashMap::from([(
                        "acct-fuzz".to_string(),
                        vec!["per-account-fuzz".to_string()],
                    )]),
                },
            );
        }
        s.wecom.push(corp());
        s
    })
}

fn normaliser() -> &'static Normaliser {
    static N: OnceLock<Normaliser> = OnceLock::new();
    N.get_or_init(|| Normaliser::new(PhoneHasher::new(b"fuzz-phone-hash-key".to_vec())))
}

fn crypto() -> &'static WecomCrypto {
    static C: OnceLock<WecomCrypto> = OnceLock::new();
    C.get_or_init(|| WecomCrypto::new(&corp()).expect("a valid key"))
}

/// The fixed clock of every fuzz run (signatures are stamped with it).
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap()
}

pub const HMAC_SOURCES: [Source; 5] = [
    Source::Feiyu,
    Source::Dongchedi,
    Source::Autohome,
    Source::Yiche,
    Source::OemCrm,
];

/// Runs the intake's pure handler and checks what it returns.
fn run(
    source: Source,
    method: Method,
    headers: HashMap<String, String>,
    query: HashMap<String, String>,
    body: &[u8],
) -> Result<Outcome, IntakeError> {
    let req = IntakeRequest {
        source,
        method,
        headers: &headers,
        query: &query,
        body,
        now: now(),
    };
    let result = intake::handle(&req, secrets(), normaliser());
    match &result {
        Ok(Outcome::Accepted { messages, .. }) => {
            assert!(!messages.is_empty(), "accepted without a message");
            for m in messages {
                check_message(m);
            }
        }
        Ok(_) => {}
        Err(e) => {
            let text = e.to_string();
            assert!((400..500).contains(&e.status()));
            if let Ok(body) = std::str::from_utf8(body) {
                if let Some(mobile) = douyin::find_mobile(body) {
                    if let Ok(p) = Phone::parse(&mobile) {
                        assert!(
                            !text.contains(p.national()),
                            "an error message echoes a phone number: {text}"
                        );
                    }
                }
            }
        }
    }
    result
}

/// A message must reach the router intact: serialise, deserialise, compare.
fn check_message(m: &IntakeMessage) {
    let json = serde_json::to_string(m).expect("a message serialises");
    let back: IntakeMessage =
        serde_json::from_str(&json).expect("the router can read what intake enqueues");
    assert_eq!(&back, m, "the message changes on its way through the queue");
    if let IntakeMessage::Lead(lead) = m {
        if let Some(p) = &lead.phone {
            check_phone(p);
        }
    }
}

fn check_phone(p: &Phone) {
    let e164 = p.e164();
    assert_eq!(e164.len(), 14, "E.164 of a mainland mobile");
    assert!(e164.starts_with("+861"));
    assert!(p.national().bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(Phone::parse(e164).as_ref(), Ok(p), "E.164 parses back");
    assert_eq!(
        Phone::parse(p.national()).as_ref(),
        Ok(p),
        "national parses back"
    );
    let shown = format!("{p} {p:?} {}", p.masked());
    assert!(!shown.contains(p.national()), "a phone prints in full");
    let _ = leads_domain::attribution::attribute(p);
}

/// `Phone::parse` and the free-text mobile finder.
pub fn phone(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(p) = Phone::parse(text) {
        check_phone(&p);
    }
    if let Some(found) = douyin::find_mobile(text) {
        if let Ok(p) = Phone::parse(&found) {
            check_phone(&p);
        }
    }
    let _ = city::normalise(text);
}

/// The shared normaliser: fields separated by 0x1F.
pub fn normalise(data: &[u8]) {
    let _ = normalise_outcome(data);
}

/// `normalise`, returning the normaliser's answer (`None` for empty input).
pub fn normalise_outcome(data: &[u8]) -> Option<Result<CanonicalLead, IntakeError>> {
    let (&selector, rest) = data.split_first()?;
    let text = String::from_utf8_lossy(rest);
    let mut f = text.split('\u{1f}').map(str::to_string);
    let mut next = || f.next();
    let source_event_id = next().unwrap_or_default();
    let account_id = next().unwrap_or_default();
    let phone = next();
    let customer_name = next();
    let declared_city = next();
    let series = next()
        .map(|s| s.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    let channel_tag = next();
    let staff_hint = next();
    let wecom_contact = match (next(), next()) {
        (Some(a), Some(b)) => Some((a, b)),
        _ => None,
    };
    if let Some(c) = &declared_city {
        let _ = city::normalise(c);
    }
    let raw = RawLead {
        source_event_id,
        account_id,
        phone,
        customer_name,
        declared_city,
        series,
        channel_tag,
        staff_hint,
        wecom_contact,
    };
    let platform = Platform::ALL[usize::from(selector) % Platform::ALL.len()];
    let scene = [
        Scene::ShortVideo,
        Scene::Live,
        Scene::PrivateMessage,
        Scene::AdForm,
        Scene::WecomContact,
    ][usize::from(selector >> 3) % 5];
    let traffic = if selector & 0x80 == 0 {
        Traffic::Paid
    } else {
        Traffic::Natural
    };
    let result = normaliser().lead(platform, scene, traffic, raw, now(), "raw#fuzz");
    if let Ok(lead) = &result {
        check_message(&IntakeMessage::Lead(Box::new(lead.clone())));
    }
    Some(result)
}

/// Douyin and Douyin stats: the body (signed), or the text as a `content`
/// string inside a signed envelope.
pub fn douyin(data: &[u8]) {
    let _ = douyin_outcome(data);
}

/// `douyin`, returning the intake's answer (`None` for empty input).
pub fn douyin_outcome(data: &[u8]) -> Option<Result<Outcome, IntakeError>> {
    let (&selector, rest) = data.split_first()?;
    let source = if selector & 1 == 0 {
        Source::Douyin
    } else {
        Source::DouyinStats
    };
    let wrapped;
    let body: &[u8] = if selector & 2 == 0 {
        rest
    } else {
        let event = [
            "im_receive_msg",
            "personal_tab_contact",
            "website_contact",
            "account_daily_stats",
        ][usize::from(selector >> 2) % 4];
        wrapped = serde_json::json!({
            "event": event, "client_key": DOUYIN_KEY, "from_user_id": "u", "to_user_id": "acct",
            "content": String::from_utf8_lossy(rest)
        })
        .to_string()
        .into_bytes();
        &wrapped
    };
    let headers = HashMap::from([
        (
            douyin::SIGNATURE_HEADER.to_string(),
            douyin::signature(DOUYIN_SECRET, body),
        ),
        (douyin::MSG_ID_HEADER.to_string(), "fuzz-msg".to_string()),
    ]);
    Some(run(source, Method::Post, headers, HashMap::new(), body))
}

/// Ocean Engine, vertical media and the OEM CRM: the body, signed.
pub fn hmac_sources(data: &[u8]) {
    let _ = hmac_sources_outcome(data);
}

/// `hmac_sources`, returning the intake's answer (`None` for empty input).
pub fn hmac_sources_outcome(data: &[u8]) -> Option<Result<Outcome, IntakeError>> {
    let (&selector, body) = data.split_first()?;
    let source = HMAC_SOURCES[usize::from(selector) % HMAC_SOURCES.len()];
    let ts = now().timestamp().to_string();
    let mut headers = HashMap::from([
        (hmac_sources::TIMESTAMP_HEADER.to_string(), ts.clone()),
        (hmac_sources::EVENT_ID_HEADER.to_string(), "fuzz-ev".into()),
    ]);
    let secret = if selector & 0x80 != 0 {
        headers.insert(hmac_sources::ACCOUNT_HEADER.to_string(), "acct-fuzz".into());
        "per-account-fuzz"
    } else {
        HMAC_SECRET
    };
    headers.insert(
        hmac_sources::SIGNATURE_HEADER.to_string(),
        hmac_sources::signature(secret, &ts, body),
    );
    Some(run(source, Method::Post, headers, HashMap::new(), body))
}

/// WeCom callbacks: the decrypted XML (encrypted and signed here), the echostr
/// of a URL verification, or the raw outer body.
pub fn wecom(data: &[u8]) {
    let _ = wecom_outcome(data);
}

/// `wecom`, returning the intake's answer (`None` for empty input).
pub fn wecom_outcome(data: &[u8]) -> Option<Result<Outcome, IntakeError>> {
    let (&selector, rest) = data.split_first()?;
    let ts = now().timestamp();
    let text = String::from_utf8_lossy(rest);
    Some(match selector % 3 {
        0 => {
            let (query, body) = wecom::signed_callback(&corp(), &text, ts, "nonce", [7; 16]);
            run(
                Source::Wecom,
                Method::Post,
                HashMap::new(),
                query.into_iter().collect(),
                body.as_bytes(),
            )
        }
        1 => {
            let query = wecom::signed_url_verification(&corp(), &text, ts, "nonce", [7; 16]);
            let answer = run(
                Source::Wecom,
                Method::Get,
                HashMap::new(),
                query.into_iter().collect(),
                &[],
            );
            match &answer {
                Ok(Outcome::Handshake(reply)) => {
                    assert_eq!(reply.body, text, "echostr answered verbatim")
                }
                other => panic!("a signed echostr is answered: {other:?}"),
            }
            answer
        }
        _ => {
            let query = HashMap::from([
                ("msg_signature".to_string(), "0".repeat(40)),
                ("timestamp".to_string(), ts.to_string()),
                ("nonce".to_string(), "nonce".to_string()),
            ]);
            run(Source::Wecom, Method::Post, HashMap::new(), query, rest)
        }
    })
}

/// The WeCom decryptor on its own: arbitrary ciphertext bytes (base64-encoded
/// here) and arbitrary `Encrypt` text.
pub fn wecom_decrypt(data: &[u8]) {
    let c = crypto();
    let encoded = base64::engine::general_purpose::STANDARD.encode(data);
    for input in [encoded.as_str(), &String::from_utf8_lossy(data)] {
        if let Ok(msg) = c.decrypt(input) {
            let again = c.encrypt(&msg, [1; 16]);
            assert_eq!(c.decrypt(&again).as_deref(), Ok(msg.as_str()));
        }
    }
    // Whatever is encrypted decrypts to itself.
    let text = String::from_utf8_lossy(data);
    let sealed = c.encrypt(&text, [2; 16]);
    assert_eq!(c.decrypt(&sealed).as_deref(), Ok(text.as_ref()));
}
