//! The intake function against the emulator: accepted webhooks are stored and
//! enqueued once, redeliveries and concurrent copies are acknowledged without a
//! second message, a failed enqueue is retried by the platform's redelivery
//! rather than lost, and so is a delivery whose claim was written by an attempt
//! that died before its send. Rejected requests (every documented error status, with
//! nothing written) are in `hostile_input.rs`; storage faults in `reliability.rs`.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;
use hmac::{Hmac, Mac};
use integration_tests::{drain, scratch_queue_like, stack, unique, Stack};
use lambda_http::{Body, Request, RequestExt};
use leads_domain::intake::secrets::{HmacSecrets, WecomCorp};
use leads_domain::intake::wecom::{signed_callback, signed_url_verification};
use leads_domain::intake::{IntakeMessage, IntakeSecrets, Source};
use sha1::{Digest, Sha1};
use sha2::Sha256;
use webhook_intake::Intake;

const DOUYIN_KEY: &str = "awx-int-test";
const DOUYIN_SECRET: &str = "douyin-secret-int";
const CRM_SECRET: &str = "crm-secret-int";

fn corp() -> WecomCorp {
    WecomCorp {
        corp_id: "wwintegration01".into(),
        token: "wecom-token".into(),
        encoding_aes_key: "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG".into(),
    }
}

fn secrets() -> IntakeSecrets {
    let mut s = IntakeSecrets {
        phone_hash_key: "integration-phone-hash-key".into(),
        ..Default::default()
    };
    s.douyin.insert(DOUYIN_KEY.into(), DOUYIN_SECRET.into());
    s.hmac.insert(
        Source::OemCrm,
        HmacSecrets {
            secrets: vec![CRM_SECRET.into()],
            accounts: HashMap::new(),
        },
    );
    s.wecom.push(corp());
    s
}

/// The intake function with its own scratch lead queue.
async fn intake(stack: &Stack) -> (Intake, String) {
    let mut settings = stack.settings.clone();
    settings.queues.lead = scratch_queue_like(&stack.clients.sqs, &settings.queues.lead).await;
    let queue = settings.queues.lead.clone();
    (Intake::new(&settings, &stack.clients, secrets()), queue)
}

fn douyin_request(body: &str, msg_id: &str) -> Request {
    let mut h = Sha1::new();
    h.update(DOUYIN_SECRET.as_bytes());
    h.update(body.as_bytes());
    lambda_http::http::Request::builder()
        .method("POST")
        .uri("/webhooks/douyin")
        .header("X-Douyin-Signature", hex::encode(h.finalize()))
        .header("Msg-Id", msg_id)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn crm_request(body: &str, event_id: &str) -> Request {
    let ts = Utc::now().timestamp().to_string();
    let mut m = Hmac::<Sha256>::new_from_slice(CRM_SECRET.as_bytes()).unwrap();
    m.update(format!("{ts}.{body}").as_bytes());
    lambda_http::http::Request::builder()
        .method("POST")
        .uri("/webhooks/oem_crm")
        .header("X-Timestamp", ts)
        .header("X-Signature", hex::encode(m.finalize().into_bytes()))
        .header("X-Event-Id", event_id)
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn douyin_lead_body(account: &str) -> String {
    serde_json::json!({
        "event": "im_receive_msg", "client_key": DOUYIN_KEY, "from_user_id": "visitor",
        "to_user_id": account, "content": {"text": "我的电话13805312345"}, "log_id": unique("log")
    })
    .to_string()
}

async fn status_and_body(intake: &Intake, request: Request) -> (u16, String) {
    let response = intake.handle(request).await;
    let status = response.status().as_u16();
    let body = match response.body() {
        Body::Text(t) => t.clone(),
        Body::Empty => String::new(),
        Body::Binary(b) => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
    };
    (status, body)
}

async fn raw_record(stack: &Stack, key: &str) -> Option<HashMap<String, AttributeValue>> {
    stack
        .clients
        .dynamodb
        .get_item()
        .table_name(&stack.settings.tables.raw_payload)
        .key("pk", AttributeValue::S(key.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

/// The leads on the queue, their sealed contact opened; a queue body never
/// holds the phone or the name in clear.
fn leads_in(bodies: &[String]) -> Vec<leads_domain::lead::CanonicalLead> {
    let seal =
        leads_domain::seal::ContactSeal::from_phone_hash_key(secrets().phone_hash_key.as_bytes());
    bodies
        .iter()
        .map(
            |b| match serde_json::from_str::<IntakeMessage>(b).unwrap() {
                IntakeMessage::Lead(mut l) => {
                    seal.open(&mut l).unwrap();
                    for clear in l
                        .phone
                        .iter()
                        .map(|p| p.national().to_string())
                        .chain(l.customer_name.clone())
                    {
                        assert!(
                            !b.contains(&clear),
                            "a queue message holds a contact in clear"
                        );
                    }
                    *l
                }
                other => panic!("{other:?}"),
            },
        )
        .collect()
}

#[tokio::test]
async fn accepted_webhook_is_stored_enqueued_once_and_redelivery_is_acknowledged() {
    let Some(stack) = stack().await else { return };
    let (intake, queue) = intake(&stack).await;
    let msg_id = unique("msg");
    let body = douyin_lead_body("dy-ht-jn-01");

    let (status, reply) = status_and_body(&intake, douyin_request(&body, &msg_id)).await;
    assert_eq!(
        (status, reply.as_str()),
        (200, r#"{"code":0,"message":"success"}"#)
    );
    // The platform retries (slow answer, lost ack): same Msg-Id.
    let (status, _) = status_and_body(&intake, douyin_request(&body, &msg_id)).await;
    assert_eq!(status, 200);

    // The copy came during the owner's lease and found it unconfirmed: an owner
    // that sent and one whose send and release failed look the same, so it sent
    // again (the router's delivery marker makes one lead of the two).
    let leads = leads_in(&drain(&stack.clients.sqs, &queue).await);
    assert_eq!(leads.len(), 2, "the owner's message and the copy's");
    assert_eq!(leads[0].source_event_id, leads[1].source_event_id);
    let lead = &leads[0];
    // The delivery key is the signed log_id (the Msg-Id header is unsigned).
    let log_id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["log_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(lead.source_event_id, format!("douyin:{log_id}"));
    assert_eq!(lead.phone.as_ref().unwrap().masked(), "138****2345");

    // The raw body is kept under the lead's reference, byte for byte; the same
    // item is the delivery's claim.
    assert_eq!(lead.raw_payload_ref, format!("RAW#douyin#{log_id}"));
    let raw = raw_record(&stack, &lead.raw_payload_ref)
        .await
        .expect("raw payload stored");
    assert_eq!(raw["body"], AttributeValue::S(body));
    // The redelivery waited out the owner's lease, sent and confirmed the send.
    assert_eq!(raw["state"], AttributeValue::S("SENT".into()));
    assert!(raw.contains_key("expires_at") && raw.contains_key("lease_until_ms"));
}

#[tokio::test]
async fn concurrent_copies_enqueue_at_most_twice() {
    let Some(stack) = stack().await else { return };
    let (intake, queue) = intake(&stack).await;
    for _round in 0..3 {
        let msg_id = unique("race");
        let body = douyin_lead_body("dy-ht-jn-01");
        let (a, b, c) = tokio::join!(
            status_and_body(&intake, douyin_request(&body, &msg_id)),
            status_and_body(&intake, douyin_request(&body, &msg_id)),
            status_and_body(&intake, douyin_request(&body, &msg_id)),
        );
        // Each copy is acknowledged (or told to retry while the first finishes).
        for (status, _) in [&a, &b, &c] {
            assert!(*status == 200 || *status == 409, "{status}");
        }
        // A retry after a 409 is acknowledged.
        assert_eq!(
            status_and_body(&intake, douyin_request(&body, &msg_id))
                .await
                .0,
            200
        );
        // The owner's message, and one from whichever copy took the
        // unconfirmed claim over after the lease (the other found it SENT).
        let leads = leads_in(&drain(&stack.clients.sqs, &queue).await);
        assert_eq!(leads.len(), 2, "one message from the owner, one take-over");
        assert_eq!(leads[0].source_event_id, leads[1].source_event_id);
    }
}

#[tokio::test]
async fn a_failed_enqueue_is_not_lost_the_retry_enqueues() {
    let Some(stack) = stack().await else { return };
    let (good, queue) = intake(&stack).await;
    // Same tables, but a queue that does not exist: the enqueue fails after the claim.
    let mut broken_settings = stack.settings.clone();
    broken_settings.queues.lead = format!("{}-missing", queue);
    let broken = Intake::new(&broken_settings, &stack.clients, secrets());

    let event_id = unique("crm");
    let body = r#"{"lead_id":"crm-1","dealer_id":"ht-jn-01","phone":"13705317777","city":"济南"}"#;
    let (status, reply) = status_and_body(&broken, crm_request(body, &event_id)).await;
    assert_eq!(status, 500);
    assert!(reply.contains("\"code\":\"internal\""));
    assert!(!reply.contains("13705317777"));
    assert!(
        raw_record(&stack, &format!("RAW#oem_crm#{event_id}"))
            .await
            .is_none(),
        "claim released"
    );

    let (status, _) = status_and_body(&good, crm_request(body, &event_id)).await;
    assert_eq!(status, 200);
    let leads = leads_in(&drain(&stack.clients.sqs, &queue).await);
    assert_eq!(leads.len(), 1);
    assert_eq!(leads[0].source_event_id, "oem_crm:crm-1");
}

/// Writes the claim an attempt leaves behind when it dies between its put and
/// its send (the crash window), or when its send and then its release failed:
/// `SENDING`, its lease ending `lease_ms` from now (negative: over), nothing
/// enqueued. Returns the claim's key (the CRM body's hash: `X-Event-Id` is
/// unsigned and ignored for dedup).
async fn abandoned_claim(stack: &Stack, body: &str, lease_ms: i64) -> String {
    let reference = format!(
        "RAW#oem_crm#{}",
        leads_domain::intake::body_hash(body.as_bytes())
    );
    let now = Utc::now();
    let item = HashMap::from([
        ("pk".to_string(), AttributeValue::S(reference.clone())),
        ("source".to_string(), AttributeValue::S("oem_crm".into())),
        (
            "received_at".to_string(),
            AttributeValue::S(now.to_rfc3339()),
        ),
        ("body".to_string(), AttributeValue::S(body.into())),
        (
            "expires_at".to_string(),
            AttributeValue::N((now.timestamp() + 86_400).to_string()),
        ),
        ("state".to_string(), AttributeValue::S("SENDING".into())),
        (
            "lease_until_ms".to_string(),
            AttributeValue::N((now.timestamp_millis() + lease_ms).to_string()),
        ),
    ]);
    stack
        .clients
        .dynamodb
        .put_item()
        .table_name(&stack.settings.tables.raw_payload)
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
    reference
}

#[tokio::test]
async fn a_claim_left_by_a_dead_attempt_is_taken_over_and_enqueued() {
    let Some(stack) = stack().await else { return };
    let (intake, queue) = intake(&stack).await;
    let event_id = unique("crash");
    // Unique per run: the delivery key is the signed body's hash (the
    // X-Event-Id header is unsigned and ignored for dedup).
    let body = format!(
        r#"{{"lead_id":"crm-2","dealer_id":"ht-jn-01","phone":"13705318888","city":"济南","note":"{event_id}"}}"#
    );
    let body = body.as_str();
    let reference = abandoned_claim(&stack, body, -1_000).await;

    // The platform retries (it never got an answer): the retry must enqueue.
    let (status, _) = status_and_body(&intake, crm_request(body, &event_id)).await;
    assert_eq!(status, 200);
    let leads = leads_in(&drain(&stack.clients.sqs, &queue).await);
    assert_eq!(leads.len(), 1, "the retry enqueued the lost send");
    assert_eq!(leads[0].source_event_id, "oem_crm:crm-2");
    let raw = raw_record(&stack, &reference).await.unwrap();
    assert_eq!(raw["state"], AttributeValue::S("SENT".into()));

    // Confirmed: later redeliveries are acknowledged without another message.
    let (status, _) = status_and_body(&intake, crm_request(body, &event_id)).await;
    assert_eq!(status, 200);
    assert!(drain(&stack.clients.sqs, &queue).await.is_empty());
}

#[tokio::test]
async fn a_copy_during_the_lease_of_an_owner_that_failed_to_send_and_release_enqueues() {
    // The owner's send failed and so did giving the claim back (storage down):
    // its claim stays, lease unchanged, nothing enqueued. A copy that waits the
    // lease out must not take the unchanged lease for a send (a lead was lost
    // that way in the reliability replay).
    let Some(stack) = stack().await else { return };
    let (intake, queue) = intake(&stack).await;
    let event_id = unique("stuck");
    let body = format!(
        r#"{{"lead_id":"crm-3","dealer_id":"ht-jn-01","phone":"13705319999","city":"济南","note":"{event_id}"}}"#
    );
    let reference = abandoned_claim(&stack, &body, 1_500).await;

    let (status, _) = status_and_body(&intake, crm_request(&body, &event_id)).await;
    assert_eq!(status, 200);
    let leads = leads_in(&drain(&stack.clients.sqs, &queue).await);
    assert_eq!(
        leads.len(),
        1,
        "the copy enqueued what the owner never sent"
    );
    assert_eq!(leads[0].source_event_id, "oem_crm:crm-3");
    let raw = raw_record(&stack, &reference).await.unwrap();
    assert_eq!(raw["state"], AttributeValue::S("SENT".into()));
}

#[tokio::test]
async fn a_redelivery_after_the_lease_sends_once_more_then_never() {
    let Some(stack) = stack().await else { return };
    let (intake, queue) = intake(&stack).await;
    let msg_id = unique("late");
    let body = douyin_lead_body("dy-ht-jn-01");
    assert_eq!(
        status_and_body(&intake, douyin_request(&body, &msg_id))
            .await
            .0,
        200
    );
    tokio::time::sleep(webhook_intake::LEASE + std::time::Duration::from_millis(300)).await;
    // After the lease, a sent delivery and a dead owner look alike: one more
    // message (the router's delivery marker drops it), confirmed, then none.
    for _ in 0..2 {
        assert_eq!(
            status_and_body(&intake, douyin_request(&body, &msg_id))
                .await
                .0,
            200
        );
    }
    let leads = leads_in(&drain(&stack.clients.sqs, &queue).await);
    assert_eq!(leads.len(), 2, "the first message and one re-send");
    assert_eq!(leads[0].source_event_id, leads[1].source_event_id);
}

#[tokio::test]
async fn wecom_handshake_and_new_contact() {
    let Some(stack) = stack().await else { return };
    let (intake, queue) = intake(&stack).await;
    let now = Utc::now().timestamp();

    let query = signed_url_verification(&corp(), "echo-1234567", now, "nonce1", [7; 16]);
    let request = lambda_http::http::Request::builder()
        .method("GET")
        .uri("/webhooks/wecom")
        .body(Body::Empty)
        .unwrap()
        .with_query_string_parameters(query);
    assert_eq!(
        status_and_body(&intake, request).await,
        (200, "echo-1234567".into())
    );

    let external = unique("wmEXT");
    let inner = format!(
        "<xml><ToUserName><![CDATA[wwintegration01]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>{now}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[add_external_contact]]></ChangeType><UserID><![CDATA[ht-jn-01-s1]]></UserID><ExternalUserID><![CDATA[{external}]]></ExternalUserID><State><![CDATA[live-qr-1124]]></State><WelcomeCode><![CDATA[W]]></WelcomeCode></xml>"
    );
    let (query, body) = signed_callback(&corp(), &inner, now, "nonce2", [9; 16]);
    let request = lambda_http::http::Request::builder()
        .method("POST")
        .uri("/webhooks/wecom")
        .body(Body::from(body))
        .unwrap()
        .with_query_string_parameters(query);
    assert_eq!(status_and_body(&intake, request).await.0, 200);
    let leads = leads_in(&drain(&stack.clients.sqs, &queue).await);
    assert_eq!(leads.len(), 1);
    assert_eq!(leads[0].channel_tag.as_deref(), Some("live-qr-1124"));
    assert_eq!(leads[0].staff_hint.as_deref(), Some("ht-jn-01-s1"));
    assert!(leads[0].phone.is_none());
}

/// A stack outside China (`AcceptMainlandMobiles=false`): a lead with a
/// mainland mobile is refused with a clear error and nothing is stored or
/// enqueued; a delivery without a phone still goes through.
#[tokio::test]
async fn a_stack_outside_china_refuses_mainland_mobiles_and_stores_nothing() {
    let Some(stack) = stack().await else { return };
    let (intake, queue) = intake(&stack).await;
    let intake = intake.accepting_mainland_mobiles(false);
    let msg_id = unique("msg");
    let body = douyin_lead_body("dy-ht-jn-01");

    let (status, reply) = status_and_body(&intake, douyin_request(&body, &msg_id)).await;
    assert_eq!(status, 422, "{reply}");
    let reply: serde_json::Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(reply["code"], "mainland_mobile_refused");
    assert!(reply["message"]
        .as_str()
        .unwrap()
        .contains("does not accept leads with a mainland Chinese mobile"));
    // The error names no number.
    assert!(!reply.to_string().contains("13805312345"));
    assert!(drain(&stack.clients.sqs, &queue).await.is_empty());
    assert!(raw_record(&stack, &format!("RAW#douyin#{msg_id}"))
        .await
        .is_none());

    // A message without a phone: accepted, enqueued.
    let no_phone = serde_json::json!({
        "event": "im_receive_msg", "client_key": DOUYIN_KEY, "from_user_id": "visitor",
        "to_user_id": "dy-ht-jn-01", "content": {"text": "想了解一下价格"}, "log_id": unique("log")
    })
    .to_string();
    let (status, _) = status_and_body(&intake, douyin_request(&no_phone, &unique("msg"))).await;
    let enqueued = drain(&stack.clients.sqs, &queue).await;
    assert!(
        leads_in(&enqueued).iter().all(|l| l.phone.is_none()),
        "{enqueued:?}"
    );
    assert_eq!(status, 200);
}
