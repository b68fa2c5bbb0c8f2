//! Douyin, douyin_stats and the HMAC-signed sources: real-shaped fixtures,
//! signatures computed here from the documented algorithms (not through the
//! code under test), correct and forged.

use std::collections::HashMap;

use chrono::{DateTime, TimeZone, Utc};
use hmac::{Hmac, Mac};
use leads_domain::identity::PhoneHasher;
use leads_domain::intake::secrets::HmacSecrets;
use leads_domain::intake::{
    handle, IntakeError, IntakeMessage, IntakeRequest, IntakeSecrets, Method, Normaliser, Outcome,
    Source,
};
use leads_domain::lead::{CustomerKey, Scene, Traffic};
use leads_domain::{city, Phone};
use sha1::{Digest, Sha1};
use sha2::Sha256;

const DOUYIN_KEY: &str = "awx1234567890";
const DOUYIN_SECRET: &str = "douyin-client-secret-for-tests";
const AUTOHOME_SECRET: &str = "autohome-secret";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap()
}

fn secrets() -> IntakeSecrets {
    let mut s = IntakeSecrets {
        phone_hash_key: "phone-hash-key-for-tests".into(),
        ..Default::default()
    };
    s.douyin.insert(DOUYIN_KEY.into(), DOUYIN_SECRET.into());
    for source in [
        Source::Feiyu,
        Source::Dongchedi,
        Source::Yiche,
        Source::OemCrm,
    ] {
        s.hmac.insert(
            source,
            HmacSecrets {
                secrets: vec![format!("{source}-secret")],
                accounts: HashMap::new(),
            },
        );
    }
    s.hmac.insert(
        Source::Autohome,
        HmacSecrets {
            secrets: vec!["old-autohome-secret".into(), AUTOHOME_SECRET.into()],
            accounts: HashMap::from([("ah-special".to_string(), vec!["special".to_string()])]),
        },
    );
    s
}

fn normaliser() -> Normaliser {
    Normaliser::new(PhoneHasher::new(b"phone-hash-key-for-tests".to_vec()))
}

fn douyin_sig(secret: &str, body: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(secret.as_bytes());
    h.update(body);
    hex::encode(h.finalize())
}

fn hmac_sig(secret: &str, ts: &str, body: &[u8]) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    m.update(format!("{ts}.").as_bytes());
    m.update(body);
    hex::encode(m.finalize().into_bytes())
}

fn run(source: Source, headers: &[(&str, String)], body: &str) -> Result<Outcome, IntakeError> {
    let headers: HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let query = HashMap::new();
    let req = IntakeRequest {
        source,
        method: Method::Post,
        headers: &headers,
        query: &query,
        body: body.as_bytes(),
        now: now(),
    };
    handle(&req, &secrets(), &normaliser())
}

fn douyin(body: &str, msg_id: &str) -> Result<Outcome, IntakeError> {
    run(
        Source::Douyin,
        &[
            (
                "x-douyin-signature",
                douyin_sig(DOUYIN_SECRET, body.as_bytes()),
            ),
            ("msg-id", msg_id.to_string()),
        ],
        body,
    )
}

fn signed(source: Source, secret: &str, body: &str) -> Result<Outcome, IntakeError> {
    let ts = now().timestamp().to_string();
    run(
        source,
        &[
            ("x-timestamp", ts.clone()),
            ("x-signature", hmac_sig(secret, &ts, body.as_bytes())),
        ],
        body,
    )
}

fn only_lead(outcome: Outcome) -> leads_domain::lead::CanonicalLead {
    match outcome {
        Outcome::Accepted { mut messages, .. } => {
            assert_eq!(messages.len(), 1);
            match messages.remove(0) {
                IntakeMessage::Lead(lead) => *lead,
                other => panic!("not a lead: {other:?}"),
            }
        }
        other => panic!("not accepted: {other:?}"),
    }
}

// ---------------------------------------------------------------- douyin

#[test]
fn douyin_verify_webhook_answers_the_challenge() {
    let body = r#"{"event":"verify_webhook","client_key":"awx1234567890","from_user_id":"","to_user_id":"","content":{"challenge":12345}}"#;
    match douyin(body, "m-verify").unwrap() {
        Outcome::Handshake(reply) => assert_eq!(reply.body, r#"{"challenge":12345}"#),
        other => panic!("{other:?}"),
    }
}

#[test]
fn douyin_private_message_with_phone_is_a_natural_lead() {
    let body = r#"{"event":"im_receive_msg","client_key":"awx1234567890","from_user_id":"visitor-open-id","to_user_id":"dy-ht-jn-01","content":{"message_type":"text","text":"你好，我想试驾，电话 138 0531 2345","create_time":1763971200},"log_id":"2026112408000001"}"#;
    let lead = only_lead(douyin(body, "msg-1").unwrap());
    assert_eq!(lead.account_id, "dy-ht-jn-01");
    assert_eq!(lead.scene, Scene::PrivateMessage);
    assert_eq!(lead.traffic, Traffic::Natural);
    assert_eq!(lead.phone, Some(Phone::parse("13805312345").unwrap()));
    assert!(matches!(lead.customer, CustomerKey::Phone { .. }));
    // The signed log_id is the delivery key; the unsigned Msg-Id is ignored
    // (a replay with another Msg-Id is the same delivery).
    assert_eq!(lead.source_event_id, "douyin:2026112408000001");
    assert_eq!(lead.raw_payload_ref, "RAW#douyin#2026112408000001");
    let replay = only_lead(douyin(body, "msg-2").unwrap());
    assert_eq!(replay.source_event_id, lead.source_event_id);
}

#[test]
fn douyin_content_as_json_string_and_ad_info_means_paid() {
    let content = serde_json::json!({"text": "13912345678", "ad_info": {"ad_id": "1"}}).to_string();
    let body = serde_json::json!({
        "event": "im_enter_direct_msg", "client_key": DOUYIN_KEY,
        "from_user_id": "v", "to_user_id": "dy-ht-jn-01", "content": content, "log_id": "l"
    })
    .to_string();
    let lead = only_lead(douyin(&body, "msg-2").unwrap());
    assert_eq!(lead.traffic, Traffic::Paid);
}

#[test]
fn douyin_homepage_form_with_city_and_series() {
    let body = serde_json::json!({
        "event": "personal_tab_contact", "client_key": DOUYIN_KEY, "from_user_id": "v",
        "to_user_id": "dy-ht-jn-01", "log_id": "l2",
        "content": {"phone": "+86 139-0000-1111", "name": "王先生", "city": "泰安市", "series": "鸿途H5,鸿途S7"}
    })
    .to_string();
    let lead = only_lead(douyin(&body, "").unwrap());
    assert_eq!(lead.scene, Scene::Homepage);
    assert_eq!(
        lead.declared_city,
        Some(city::normalise("泰安").unwrap().code)
    );
    assert_eq!(lead.series_interest, vec!["鸿途H5", "鸿途S7"]);
    // No Msg-Id header: the log id is the delivery key.
    assert_eq!(lead.source_event_id, "douyin:l2");
}

#[test]
fn douyin_chat_without_phone_is_acknowledged_and_ignored() {
    let body = r#"{"event":"im_receive_msg","client_key":"awx1234567890","from_user_id":"v","to_user_id":"dy-ht-jn-01","content":{"text":"多少钱"}}"#;
    assert!(matches!(
        douyin(body, "m3").unwrap(),
        Outcome::Ignored { .. }
    ));
    let other = r#"{"event":"item_comment_reply","client_key":"awx1234567890","content":{}}"#;
    assert!(matches!(
        douyin(other, "m4").unwrap(),
        Outcome::Ignored { .. }
    ));
}

#[test]
fn douyin_form_without_phone_or_with_a_bad_phone_is_422() {
    let body = r#"{"event":"website_contact","client_key":"awx1234567890","to_user_id":"dy-ht-jn-01","content":{"name":"x"}}"#;
    assert_eq!(douyin(body, "m5").unwrap_err().status(), 422);
    let body = r#"{"event":"website_contact","client_key":"awx1234567890","to_user_id":"dy-ht-jn-01","content":{"phone":"12345"}}"#;
    let err = douyin(body, "m6").unwrap_err();
    assert_eq!(err.status(), 422);
    assert!(!err.to_string().contains("12345"));
}

#[test]
fn douyin_forged_or_missing_signature_is_401() {
    let body = r#"{"event":"im_receive_msg","client_key":"awx1234567890","content":{"text":"13812345678"}}"#;
    let forged = run(
        Source::Douyin,
        &[(
            "x-douyin-signature",
            douyin_sig("wrong-secret", body.as_bytes()),
        )],
        body,
    );
    assert_eq!(forged.unwrap_err().status(), 401);
    assert_eq!(run(Source::Douyin, &[], body).unwrap_err().status(), 401);
    // Signed over other bytes (re-serialised JSON) does not verify.
    let reserialised =
        serde_json::to_string(&serde_json::from_str::<serde_json::Value>(body).unwrap()).unwrap();
    let tampered = run(
        Source::Douyin,
        &[(
            "x-douyin-signature",
            douyin_sig(DOUYIN_SECRET, reserialised.as_bytes()),
        )],
        &format!("{body} "),
    );
    assert_eq!(tampered.unwrap_err().status(), 401);
}

#[test]
fn douyin_signed_garbage_is_400_and_client_key_must_match() {
    assert_eq!(douyin("{not json", "m7").unwrap_err().status(), 400);
    let body = r#"{"event":"im_receive_msg","client_key":"another-app","content":{}}"#;
    assert_eq!(douyin(body, "m8").unwrap_err().status(), 401);
}

#[test]
fn douyin_stats_become_content_stats() {
    let body = serde_json::json!({
        "event": "account_daily_stats", "client_key": DOUYIN_KEY, "to_user_id": "dy-ht-jn-01",
        "content": {"date": "2026-11-23", "videos": 2, "live_sessions": 1, "live_minutes": 150,
                    "plays": 12000, "likes": 300, "comments": 40, "shares": 12, "completed_plays": 2500}
    })
    .to_string();
    let out = run(
        Source::DouyinStats,
        &[(
            "x-douyin-signature",
            douyin_sig(DOUYIN_SECRET, body.as_bytes()),
        )],
        &body,
    )
    .unwrap();
    match out {
        Outcome::Accepted { messages, .. } => match &messages[..] {
            [IntakeMessage::ContentStats(s)] => {
                assert_eq!(s.platform_account, "dy-ht-jn-01");
                assert_eq!(s.plays, 12000);
                assert_eq!(s.live_minutes, 150);
            }
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

#[test]
fn douyin_stats_live_fields_and_a_session_list_that_does_not_add_up() {
    let stats = |content: serde_json::Value| {
        let body = serde_json::json!({
            "event": "account_daily_stats", "client_key": DOUYIN_KEY, "to_user_id": "dy-ht-jn-01",
            "content": content
        })
        .to_string();
        run(
            Source::DouyinStats,
            &[(
                "x-douyin-signature",
                douyin_sig(DOUYIN_SECRET, body.as_bytes()),
            )],
            &body,
        )
    };
    let out = stats(
        serde_json::json!({"date": "2026-11-23", "live_sessions": 2, "live_minutes": 70,
        "live_session_minutes": [20, 50], "live_viewers": 900, "live_follows": 15,
        "live_comments": 40, "live_shares": 2}),
    )
    .unwrap();
    let Outcome::Accepted { messages, .. } = out else {
        panic!("{out:?}")
    };
    let [IntakeMessage::ContentStats(s)] = &messages[..] else {
        panic!("{messages:?}")
    };
    assert_eq!(s.live_session_minutes, [20, 50]);
    assert_eq!(
        (
            s.live_viewers,
            s.live_follows,
            s.live_comments,
            s.live_shares
        ),
        (900, 15, 40, 2)
    );
    // Three lengths for two sessions: refused (422, like any stats that do
    // not add up), nothing accepted.
    let err = stats(serde_json::json!({"date": "2026-11-23", "live_sessions": 2,
        "live_session_minutes": [20, 50, 10]}))
    .unwrap_err();
    assert_eq!(err.status(), 422);
    assert!(
        err.to_string()
            .contains("live_session_minutes lists 3 sessions"),
        "{err}"
    );
}

// ---------------------------------------------------------------- feiyu / vertical / crm

#[test]
fn feiyu_clue_with_flow_type_natural() {
    let body = r#"{"id":7301234567890,"advertiser_id":"fy-ht-jn-01","name":"李女士","telphone":"13705318888","weixin":"","province_name":"山东","city_name":"济南","location":"山东+济南","create_time":1763971200,"clue_type":0,"clue_source":8,"flow_type":1}"#;
    let lead = only_lead(signed(Source::Feiyu, "feiyu-secret", body).unwrap());
    assert_eq!(lead.traffic, Traffic::Natural);
    assert_eq!(lead.account_id, "fy-ht-jn-01");
    assert_eq!(lead.source_event_id, "feiyu:7301234567890");
    assert_eq!(
        lead.declared_city,
        Some(city::normalise("济南").unwrap().code)
    );
}

#[test]
fn feiyu_batch_and_ad_traffic() {
    let body = r#"{"data":[{"id":"1","advertiser_id":"a","telphone":"13705318888","flow_type":2},{"id":"2","advertiser_id":"a","telphone":"13705318889","flow_type":"3"}]}"#;
    match signed(Source::Feiyu, "feiyu-secret", body).unwrap() {
        Outcome::Accepted {
            messages, reply, ..
        } => {
            assert_eq!(messages.len(), 2);
            assert_eq!(reply.body, r#"{"code":0,"message":"success"}"#);
            for m in messages {
                let IntakeMessage::Lead(l) = m else { panic!() };
                assert_eq!(l.traffic, Traffic::Paid);
            }
        }
        other => panic!("{other:?}"),
    }
    let no_flow = r#"{"id":"3","advertiser_id":"a","telphone":"13705318888"}"#;
    assert_eq!(
        signed(Source::Feiyu, "feiyu-secret", no_flow)
            .unwrap_err()
            .status(),
        422
    );
}

#[test]
fn vertical_media_member_lead_and_secret_rotation() {
    let body = r#"{"lead_id":"ah-998877","dealer_id":"ah-ht-jn-01","mobile":"0086 137 0531 7777","name":"赵先生","city":"济南市","series":["鸿途H5"]}"#;
    // The previous secret still verifies during rotation.
    for secret in ["old-autohome-secret", AUTOHOME_SECRET] {
        let lead = only_lead(signed(Source::Autohome, secret, body).unwrap());
        assert_eq!(lead.scene, Scene::MemberLead);
        assert_eq!(lead.traffic, Traffic::Paid);
        assert_eq!(lead.account_id, "ah-ht-jn-01");
        assert_eq!(lead.phone.as_ref().unwrap().e164(), "+8613705317777");
    }
    for source in [Source::Dongchedi, Source::Yiche, Source::OemCrm] {
        let secret = format!("{source}-secret");
        only_lead(signed(source, &secret, body).unwrap());
    }
}

#[test]
fn per_account_secret_is_chosen_by_header() {
    let body = r#"{"lead_id":"x","dealer_id":"ah-special","phone":"13705317777"}"#;
    let ts = now().timestamp().to_string();
    let with = |secret: &str| {
        run(
            Source::Autohome,
            &[
                ("x-timestamp", ts.clone()),
                ("x-account-id", "ah-special".into()),
                ("x-signature", hmac_sig(secret, &ts, body.as_bytes())),
            ],
            body,
        )
    };
    assert!(with("special").is_ok());
    assert_eq!(with(AUTOHOME_SECRET).unwrap_err().status(), 401);
}

#[test]
fn hmac_stale_forged_and_missing_headers_are_401() {
    let body = r#"{"lead_id":"x","dealer_id":"d","phone":"13705317777"}"#;
    let stale = (now().timestamp() - 301).to_string();
    let err = run(
        Source::Autohome,
        &[
            ("x-timestamp", stale.clone()),
            (
                "x-signature",
                hmac_sig(AUTOHOME_SECRET, &stale, body.as_bytes()),
            ),
        ],
        body,
    )
    .unwrap_err();
    assert_eq!(err.status(), 401);
    assert!(err.to_string().contains("stale"));
    assert_eq!(
        signed(Source::Autohome, "forged", body)
            .unwrap_err()
            .status(),
        401
    );
    assert_eq!(run(Source::Autohome, &[], body).unwrap_err().status(), 401);
}

#[test]
fn hmac_signed_but_unusable_bodies() {
    let s = |body: &str| signed(Source::Dongchedi, "dongchedi-secret", body).map(|_| ());
    assert_eq!(s("[1,2").unwrap_err().status(), 400);
    assert_eq!(s("\"just a string\"").unwrap_err().status(), 422);
    assert_eq!(s("[]").unwrap_err().status(), 422);
    assert_eq!(
        s(r#"{"lead_id":"x","dealer_id":"d"}"#)
            .unwrap_err()
            .status(),
        422
    );
    assert_eq!(
        s(r#"{"lead_id":"x","phone":"13705317777"}"#)
            .unwrap_err()
            .status(),
        422
    );
    let err = s(r#"{"lead_id":"x","dealer_id":"d","phone":"1370531777"}"#).unwrap_err();
    assert_eq!(err.status(), 422);
    assert!(!err.to_string().contains("1370531777"));
}

#[test]
fn oversize_body_is_413_before_anything_else() {
    let body = "x".repeat(leads_domain::intake::MAX_BODY_BYTES + 1);
    assert_eq!(run(Source::Autohome, &[], &body).unwrap_err().status(), 413);
}

#[test]
fn deep_json_is_rejected_not_a_stack_overflow() {
    let body = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let body = &body[..leads_domain::intake::MAX_BODY_BYTES.min(body.len())];
    let err = signed(Source::Dongchedi, "dongchedi-secret", body).unwrap_err();
    assert_eq!(err.status(), 400);
}
