//! Hostile and broken webhooks against the intake function and the emulator:
//! forged and stale signatures, wrong CorpID, truncated AES blocks, bad padding,
//! oversize bodies, deep and huge JSON, invalid UTF-8, phone edge cases, unknown
//! sources and methods. Each answers its documented status and JSON error code
//! (README, "Webhook intake") and writes nothing: the intake here has an
//! idempotency table, a raw-payload table and a lead queue of its own, and after
//! every case both tables must still be empty and the queue must hold no message.
//! A valid request at the end shows the same set-up does accept and write.

use std::collections::HashMap;

use aes::Aes256;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use base64::Engine as _;
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockEncryptMut, KeyIvInit};
use chrono::Utc;
use integration_tests::{drain, stack, unique, Stack};
use lambda_http::{Body, Request, RequestExt};
use leads_domain::intake::secrets::{HmacSecrets, WecomCorp};
use leads_domain::intake::wecom::{signed_callback, CryptoError, WecomCrypto};
use leads_domain::intake::{douyin, hmac_sources, IntakeSecrets, Source};
use webhook_intake::Intake;

const DOUYIN_KEY: &str = "awx-hostile";
const DOUYIN_SECRET: &str = "douyin-secret-hostile";
const AUTOHOME_SECRET: &str = "autohome-secret-hostile";
const FEIYU_SECRET: &str = "feiyu-secret-hostile";
const CORP_ID: &str = "wwhostile0001";
/// 43 base64 characters whose last one carries no stray bits, so the test can
/// derive the AES key with the standard engine.
const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFA";

fn corp() -> WecomCorp {
    WecomCorp {
        corp_id: CORP_ID.into(),
        token: "hostile-token".into(),
        encoding_aes_key: AES_KEY.into(),
    }
}

fn secrets() -> IntakeSecrets {
    let mut s = IntakeSecrets {
        phone_hash_key: "hostile-phone-hash-key".into(),
        ..Default::default()
    };
    s.douyin.insert(DOUYIN_KEY.into(), DOUYIN_SECRET.into());
    for (source, secret) in [
        (Source::Autohome, AUTOHOME_SECRET),
        (Source::Feiyu, FEIYU_SECRET),
    ] {
        s.hmac.insert(
            source,
            HmacSecrets {
                secrets: vec![secret.into()],
                accounts: HashMap::new(),
            },
        );
    }
    s.wecom.push(corp());
    s
}

struct Scratch {
    intake: Intake,
    tables: [String; 2],
    queue: String,
}

async fn scratch_table(stack: &Stack) -> String {
    let name = unique("hostile");
    stack
        .clients
        .dynamodb
        .create_table()
        .table_name(&name)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
    name
}

/// The intake with an idempotency table, a raw-payload table and a lead queue
/// nobody else writes to (same key schema as the template's).
async fn scratch(stack: &Stack) -> Scratch {
    let mut settings = stack.settings.clone();
    settings.tables.idempotency = scratch_table(stack).await;
    settings.tables.raw_payload = scratch_table(stack).await;
    settings.queues.lead = stack
        .clients
        .sqs
        .create_queue()
        .queue_name(unique("hostile"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    Scratch {
        intake: Intake::new(&settings, &stack.clients, secrets()),
        tables: [settings.tables.idempotency, settings.tables.raw_payload],
        queue: settings.queues.lead,
    }
}

async fn items(stack: &Stack, table: &str) -> i32 {
    stack
        .clients
        .dynamodb
        .scan()
        .table_name(table)
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .count
}

fn post(path: &str, headers: &[(&str, String)], body: impl Into<Body>) -> Request {
    let mut b = lambda_http::http::Request::builder()
        .method("POST")
        .uri(path);
    for (k, v) in headers {
        b = b.header(*k, v);
    }
    b.body(body.into()).unwrap()
}

fn douyin_signed(body: impl AsRef<[u8]>, msg_id: &str) -> Request {
    let body = body.as_ref().to_vec();
    post(
        "/webhooks/douyin",
        &[
            (
                douyin::SIGNATURE_HEADER,
                douyin::signature(DOUYIN_SECRET, &body),
            ),
            (douyin::MSG_ID_HEADER, msg_id.into()),
        ],
        Body::Binary(body),
    )
}

fn hmac_signed(source: Source, secret: &str, body: impl AsRef<[u8]>, at: i64) -> Request {
    let body = body.as_ref().to_vec();
    let ts = at.to_string();
    post(
        &format!("/webhooks/{source}"),
        &[
            (hmac_sources::TIMESTAMP_HEADER, ts.clone()),
            (
                hmac_sources::SIGNATURE_HEADER,
                hmac_sources::signature(secret, &ts, &body),
            ),
            (hmac_sources::EVENT_ID_HEADER, unique("ev")),
        ],
        Body::Binary(body),
    )
}

fn autohome(body: impl AsRef<[u8]>) -> Request {
    hmac_signed(
        Source::Autohome,
        AUTOHOME_SECRET,
        body,
        Utc::now().timestamp(),
    )
}

fn autohome_lead(mobile: serde_json::Value) -> Request {
    autohome(
        serde_json::json!({"lead_id": unique("ah"), "dealer_id": "ah-hostile", "mobile": mobile,
            "name": "测试", "city": "济南", "series": ["H5"]})
        .to_string(),
    )
}

fn douyin_body(content: serde_json::Value) -> String {
    serde_json::json!({"event": "personal_tab_contact", "client_key": DOUYIN_KEY,
        "from_user_id": "visitor", "to_user_id": "dy-hostile", "content": content})
    .to_string()
}

/// A WeCom POST whose `Encrypt` is `encrypt`, correctly signed unless told otherwise.
fn wecom_post(encrypt: &str, ts: i64, signature: Option<&str>) -> Request {
    let crypto = WecomCrypto::new(&corp()).unwrap();
    let ts_s = ts.to_string();
    let sig = signature
        .map(str::to_string)
        .unwrap_or_else(|| crypto.signature(&ts_s, "nonce-h", encrypt));
    let body = format!(
        "<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><AgentID><![CDATA[]]></AgentID><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    );
    let query: HashMap<String, String> = [
        ("msg_signature", sig),
        ("timestamp", ts_s),
        ("nonce", "nonce-h".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    post("/webhooks/wecom", &[], body).with_query_string_parameters(query)
}

fn contact_xml(external: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>{}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[add_external_contact]]></ChangeType><UserID><![CDATA[s1]]></UserID><ExternalUserID><![CDATA[{external}]]></ExternalUserID><State><![CDATA[qr]]></State></xml>",
        Utc::now().timestamp()
    )
}

/// WeCom's plaintext layout with the padding the caller chooses, AES-256-CBC
/// encrypted with the corp's key: for padding and UTF-8 cases the official
/// encoder cannot produce.
fn wecom_encrypt_raw(
    msg: &[u8],
    declared_len: Option<u32>,
    receive_id: &str,
    pad: impl Fn(usize) -> Vec<u8>,
) -> String {
    let key = base64::engine::general_purpose::STANDARD
        .decode(format!("{AES_KEY}="))
        .unwrap();
    let mut plain = vec![7u8; 16];
    plain.extend_from_slice(&declared_len.unwrap_or(msg.len() as u32).to_be_bytes());
    plain.extend_from_slice(msg);
    plain.extend_from_slice(receive_id.as_bytes());
    let padding = pad(plain.len());
    plain.extend_from_slice(&padding);
    assert_eq!(plain.len() % 16, 0, "the test's padding keeps whole blocks");
    let len = plain.len();
    let enc = cbc::Encryptor::<Aes256>::new_from_slices(&key, &key[..16])
        .unwrap()
        .encrypt_padded_mut::<NoPadding>(&mut plain, len)
        .unwrap()
        .to_vec();
    base64::engine::general_purpose::STANDARD.encode(enc)
}

fn pkcs7_32(len: usize) -> Vec<u8> {
    let n = 32 - len % 32;
    vec![n as u8; n]
}

#[tokio::test]
async fn hostile_requests_answer_the_documented_status_and_write_nothing() {
    let Some(stack) = stack().await else { return };
    let s = scratch(&stack).await;
    let now = Utc::now().timestamp();
    let crypto = WecomCrypto::new(&corp()).unwrap();
    let good_douyin = douyin_body(serde_json::json!({"phone": "13805312345", "name": "x"}));
    let valid_enc = crypto.encrypt(&contact_xml("wmHOSTILE1"), [3; 16]);
    let valid_bytes = base64::engine::general_purpose::STANDARD
        .decode(&valid_enc)
        .unwrap();
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);

    // Preconditions on the crypto fixtures, so each case hits the branch it names.
    let truncated = b64(&valid_bytes[..valid_bytes.len() - 5]);
    let block_dropped = b64(&valid_bytes[..valid_bytes.len() - 16]);
    let bad_padding = wecom_encrypt_raw(contact_xml("wmPAD").as_bytes(), None, CORP_ID, |len| {
        let mut p = pkcs7_32(len);
        let last = p.len() - 1;
        p[0] ^= 1; // inconsistent padding bytes
        p[last] = p.len() as u8;
        p
    });
    let zero_padding = wecom_encrypt_raw(contact_xml("wmPAD0").as_bytes(), None, CORP_ID, |len| {
        vec![0u8; 32 - len % 32]
    });
    let bad_utf8 = wecom_encrypt_raw(b"<xml>\xff\xfe</xml>", None, CORP_ID, pkcs7_32);
    let other_corp = wecom_encrypt_raw(
        contact_xml("wmOTHER").as_bytes(),
        None,
        "wwsomebodyelse",
        pkcs7_32,
    );
    // A declared message length far beyond the plaintext.
    let length_overflow = wecom_encrypt_raw(b"<xml/>", Some(u32::MAX - 7), CORP_ID, pkcs7_32);
    assert_eq!(crypto.decrypt(&truncated), Err(CryptoError::Length));
    assert!(crypto.decrypt(&block_dropped).is_err());
    assert_eq!(crypto.decrypt(&bad_padding), Err(CryptoError::Padding));
    assert_eq!(crypto.decrypt(&zero_padding), Err(CryptoError::Padding));
    assert_eq!(crypto.decrypt(&bad_utf8), Err(CryptoError::Utf8));
    assert_eq!(crypto.decrypt(&other_corp), Err(CryptoError::WrongCorp));
    assert!(crypto.decrypt(&length_overflow).is_err());

    let mut forged = douyin_signed(&good_douyin, &unique("m"));
    forged
        .headers_mut()
        .insert(douyin::SIGNATURE_HEADER, "00".repeat(20).parse().unwrap());
    let mut not_hex = douyin_signed(&good_douyin, &unique("m"));
    not_hex
        .headers_mut()
        .insert(douyin::SIGNATURE_HEADER, "zz".repeat(20).parse().unwrap());
    let mut unsigned = douyin_signed(&good_douyin, &unique("m"));
    unsigned.headers_mut().remove(douyin::SIGNATURE_HEADER);
    let other_app = post(
        "/webhooks/douyin",
        &[(
            douyin::SIGNATURE_HEADER,
            douyin::signature("some-other-app-secret", good_douyin.as_bytes()),
        )],
        good_douyin.clone(),
    );
    let wrong_client_key = douyin_signed(
        serde_json::json!({"event": "personal_tab_contact", "client_key": "awx-other",
            "to_user_id": "dy-hostile", "content": {"phone": "13805312345"}})
        .to_string(),
        &unique("m"),
    );
    let lead_body = r#"{"lead_id":"x","dealer_id":"d","mobile":"13705317777"}"#;
    let mut tampered = autohome(lead_body);
    *tampered.body_mut() = Body::from(lead_body.replace("7777", "7778"));
    let mut ts_not_number = autohome(lead_body);
    ts_not_number
        .headers_mut()
        .insert(hmac_sources::TIMESTAMP_HEADER, "yesterday".parse().unwrap());
    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    let deep_object = format!(
        "{{\"event\":\"personal_tab_contact\",\"client_key\":\"{DOUYIN_KEY}\",\"content\":{}}}",
        deep(100_000)
    );
    let wide_object = {
        let fields: Vec<String> = (0..12_000).map(|i| format!("\"k{i}\":{i}")).collect();
        douyin_body(serde_json::from_str(&format!("{{{}}}", fields.join(","))).unwrap())
    };
    let many_leads = serde_json::to_string(
        &(0..1_000)
            .map(|i| serde_json::json!({"lead_id": format!("l{i}"), "dealer_id": "d", "mobile": "13705317777"}))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let huge = "x".repeat(300 * 1024);
    let just_over = vec![b' '; 256 * 1024 + 1];
    let wecom_huge = wecom_post(&"A".repeat(300 * 1024), now, None);
    let mut wecom_missing_sig = wecom_post(&valid_enc, now, None);
    let q: HashMap<String, String> = [("timestamp", now.to_string()), ("nonce", "n".into())]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    wecom_missing_sig = wecom_missing_sig.with_query_string_parameters(q);
    let (stale_query, stale_body) =
        signed_callback(&corp(), &contact_xml("wmSTALE"), now - 3_600, "n", [1; 16]);
    let wecom_stale = post("/webhooks/wecom", &[], stale_body)
        .with_query_string_parameters(stale_query.into_iter().collect::<HashMap<String, String>>());
    let no_external = crypto.encrypt(
        &contact_xml("").replace("<ExternalUserID><![CDATA[]]></ExternalUserID>", ""),
        [4; 16],
    );
    let not_xml_inside = crypto.encrypt("this is not xml <<<", [5; 16]);

    let cases: Vec<(&str, Request, u16, &str)> = vec![
        // Authenticity.
        ("douyin forged signature", forged, 401, "bad_signature"),
        ("douyin signature not hex", not_hex, 401, "bad_signature"),
        ("douyin unsigned", unsigned, 401, "bad_signature"),
        (
            "douyin signed by another app",
            other_app,
            401,
            "bad_signature",
        ),
        (
            "douyin client_key of another app",
            wrong_client_key,
            401,
            "bad_signature",
        ),
        (
            "autohome body changed after signing",
            tampered,
            401,
            "bad_signature",
        ),
        (
            "autohome stale timestamp",
            hmac_signed(Source::Autohome, AUTOHOME_SECRET, lead_body, now - 600),
            401,
            "bad_signature",
        ),
        (
            "autohome timestamp from the future",
            hmac_signed(Source::Autohome, AUTOHOME_SECRET, lead_body, now + 600),
            401,
            "bad_signature",
        ),
        (
            "autohome timestamp not a number",
            ts_not_number,
            401,
            "bad_signature",
        ),
        (
            "feiyu signed with autohome's secret",
            hmac_signed(Source::Feiyu, AUTOHOME_SECRET, lead_body, now),
            401,
            "bad_signature",
        ),
        (
            "wecom wrong msg_signature",
            wecom_post(&valid_enc, now, Some(&"0".repeat(40))),
            401,
            "bad_signature",
        ),
        ("wecom stale timestamp", wecom_stale, 401, "bad_signature"),
        (
            "wecom wrong CorpID",
            wecom_post(&other_corp, now, None),
            401,
            "bad_signature",
        ),
        (
            "wecom truncated AES block",
            wecom_post(&truncated, now, None),
            401,
            "bad_signature",
        ),
        (
            "wecom last AES block dropped",
            wecom_post(&block_dropped, now, None),
            401,
            "bad_signature",
        ),
        (
            "wecom bad padding",
            wecom_post(&bad_padding, now, None),
            401,
            "bad_signature",
        ),
        (
            "wecom zero padding",
            wecom_post(&zero_padding, now, None),
            401,
            "bad_signature",
        ),
        (
            "wecom declared length beyond the message",
            wecom_post(&length_overflow, now, None),
            401,
            "bad_signature",
        ),
        (
            "wecom plaintext not UTF-8",
            wecom_post(&bad_utf8, now, None),
            401,
            "bad_signature",
        ),
        (
            "wecom Encrypt not base64",
            wecom_post("!!not*base64!!", now, None),
            401,
            "bad_signature",
        ),
        // Size and shape.
        (
            "douyin oversize body",
            douyin_signed(&huge, "m-413"),
            413,
            "too_large",
        ),
        (
            "autohome one byte over the limit",
            autohome(&just_over),
            413,
            "too_large",
        ),
        ("wecom oversize body", wecom_huge, 413, "too_large"),
        (
            "douyin not JSON",
            douyin_signed("{not json", "m-400"),
            400,
            "malformed",
        ),
        (
            "douyin 100k-deep JSON",
            douyin_signed(&deep_object, "m-deep"),
            400,
            "malformed",
        ),
        (
            "autohome 100k-deep JSON",
            autohome(deep(100_000)),
            400,
            "malformed",
        ),
        (
            "douyin invalid UTF-8",
            douyin_signed(b"{\"event\":\"\xff\xfe\"}", "m-utf8"),
            400,
            "malformed",
        ),
        (
            "autohome invalid UTF-8",
            autohome(b"{\"mobile\":\"138\xc0\xaf05312345\"}"),
            400,
            "malformed",
        ),
        (
            "wecom body not UTF-8",
            post(
                "/webhooks/wecom",
                &[],
                Body::Binary(b"<xml>\xff</xml>".to_vec()),
            )
            .with_query_string_parameters(
                [
                    ("msg_signature", "0".repeat(40)),
                    ("timestamp", now.to_string()),
                    ("nonce", "n".into()),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect::<HashMap<String, String>>(),
            ),
            400,
            "malformed",
        ),
        (
            "wecom missing msg_signature",
            wecom_missing_sig,
            400,
            "malformed",
        ),
        (
            "wecom decrypted text not XML",
            wecom_post(&not_xml_inside, now, None),
            400,
            "malformed",
        ),
        (
            "douyin 12,000 fields and no phone",
            douyin_signed(&wide_object, "m-wide"),
            422,
            "not_a_lead",
        ),
        (
            "autohome 1,000 leads in one delivery",
            autohome(&many_leads),
            422,
            "not_a_lead",
        ),
        (
            "autohome JSON that is a string",
            autohome("\"13705317777\""),
            422,
            "not_a_lead",
        ),
        (
            "wecom contact without external user id",
            wecom_post(&no_external, now, None),
            422,
            "not_a_lead",
        ),
        // Phone edge cases (authentic, but no valid mainland mobile).
        (
            "phone too short",
            autohome_lead("1380531234".into()),
            422,
            "not_a_lead",
        ),
        (
            "phone too long",
            autohome_lead("138053123456".into()),
            422,
            "not_a_lead",
        ),
        (
            "phone second digit 2",
            autohome_lead("12805312345".into()),
            422,
            "not_a_lead",
        ),
        (
            "phone with letters",
            autohome_lead("1380531234O".into()),
            422,
            "not_a_lead",
        ),
        (
            "phone of another country",
            autohome_lead("+1 415 555 0100".into()),
            422,
            "not_a_lead",
        ),
        (
            "phone +86 with 10 digits",
            autohome_lead("+86 138 0531 234".into()),
            422,
            "not_a_lead",
        ),
        (
            "phone two plus signs",
            autohome_lead("++8613805312345".into()),
            422,
            "not_a_lead",
        ),
        (
            "phone only separators",
            autohome_lead(" - ( ) ".into()),
            422,
            "not_a_lead",
        ),
        ("phone empty", autohome_lead("".into()), 422, "not_a_lead"),
        (
            "phone 10,000 digits",
            autohome_lead("1".repeat(10_000).into()),
            422,
            "not_a_lead",
        ),
        (
            "phone landline",
            autohome_lead("0531-8888 6666".into()),
            422,
            "not_a_lead",
        ),
        (
            "phone fullwidth, one digit short",
            autohome_lead("１３８０５３１２３４".into()),
            422,
            "not_a_lead",
        ),
        (
            "phone null",
            autohome_lead(serde_json::Value::Null),
            422,
            "not_a_lead",
        ),
        // Routing of the request itself.
        (
            "unknown source",
            post("/webhooks/tiktok", &[], "{}"),
            404,
            "unknown_source",
        ),
        (
            "PUT",
            lambda_http::http::Request::builder()
                .method("PUT")
                .uri("/webhooks/douyin")
                .body(Body::Empty)
                .unwrap(),
            405,
            "method_not_allowed",
        ),
        (
            "DELETE on an HMAC source",
            lambda_http::http::Request::builder()
                .method("DELETE")
                .uri("/webhooks/feiyu")
                .body(Body::Empty)
                .unwrap(),
            405,
            "method_not_allowed",
        ),
    ];

    let mut failures = Vec::new();
    for (name, request, status, code) in cases {
        let response = s.intake.handle(request).await;
        let got = response.status().as_u16();
        let body = match response.body() {
            Body::Text(t) => t.clone(),
            Body::Binary(b) => String::from_utf8_lossy(b).into_owned(),
            _ => String::new(),
        };
        let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        if got != status || json["code"] != code {
            failures.push(format!(
                "{name}: expected {status} {code}, got {got} {body}"
            ));
        }
        assert!(
            json["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{name}: an error message"
        );
        assert!(
            !body.contains("13705317777") && !body.contains("13805312345"),
            "{name}: the reply echoes a phone"
        );
        for table in &s.tables {
            assert_eq!(items(&stack, table).await, 0, "{name}: wrote to {table}");
        }
        assert!(
            drain(&stack.clients.sqs, &s.queue).await.is_empty(),
            "{name}: enqueued"
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // The same set-up accepts and writes a valid delivery of each kind.
    let ok = s
        .intake
        .handle(douyin_signed(&good_douyin, &unique("ok")))
        .await;
    assert_eq!(ok.status().as_u16(), 200);
    let ok = s.intake.handle(wecom_post(&valid_enc, now, None)).await;
    assert_eq!(ok.status().as_u16(), 200);
    let ok = s
        .intake
        .handle(autohome_lead("+86 137-0531-7777".into()))
        .await;
    assert_eq!(ok.status().as_u16(), 200);
    // The raw body is the delivery's claim: the idempotency table stays unused.
    assert_eq!(items(&stack, &s.tables[0]).await, 0);
    assert_eq!(items(&stack, &s.tables[1]).await, 3);
    assert_eq!(drain(&stack.clients.sqs, &s.queue).await.len(), 3);
}
