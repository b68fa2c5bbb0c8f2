//! Personal data (PIPL) on the local stack: what the lead queue carries, the
//! brand's retention on every item of a customer, and `leadctl erase`, which
//! leaves no trace of the customer in any table or dead-letter queue.

use aws_lambda_events::event::sqs::SqsMessage;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;
use integration_tests::world::{phone, world, World};
use integration_tests::{
    drain, leadctl, scratch_queue_like, scratch_queue_with_dlq, scratch_secret, unique,
};
use lead_router::Router;
use leads_domain::directory::AssignmentStrategy;
use leads_domain::identity::PhoneHasher;
use leads_domain::intake::secrets::HmacSecrets;
use leads_domain::intake::{hmac_sources, IntakeSecrets, Source};
use leads_domain::lead::{CustomerKey, LeadStatus};
use leads_domain::seal::ContactSeal;
use leads_domain::Phone;

const PHONE_HASH_KEY: &str = "erasure-test-phone-hash-key";
const AUTOHOME_SECRET: &str = "erasure-autohome-secret";

/// Two hours of slack on "two years from now" (the test's own clock).
const SLACK_S: i64 = 7_200;

struct Customer {
    phone: String,
    name: String,
    bodies: Vec<String>,
}

fn customer(w: &World, deliveries: usize) -> Customer {
    let phone = phone();
    let name = format!("客户{}", unique("n"));
    let bodies = (0..deliveries)
        .map(|_| {
            format!(
                r#"{{"lead_id":"{}","dealer_id":"{}-ah-jn","phone":"{phone}","name":"{name}","city_name":"济南","series":"H5"}}"#,
                unique("ah"),
                w.brand
            )
        })
        .collect();
    Customer {
        phone,
        name,
        bodies,
    }
}

fn signed(body: &str) -> lambda_http::Request {
    let ts = Utc::now().timestamp().to_string();
    lambda_http::http::Request::builder()
        .method("POST")
        .uri("/webhooks/autohome")
        .header(hmac_sources::TIMESTAMP_HEADER, &ts)
        .header(
            hmac_sources::SIGNATURE_HEADER,
            hmac_sources::signature(AUTOHOME_SECRET, &ts, body.as_bytes()),
        )
        .body(lambda_http::Body::from(body.to_string()))
        .unwrap()
}

fn customer_key(w: &World, number: &str) -> (String, String) {
    let hash =
        PhoneHasher::new(PHONE_HASH_KEY.as_bytes().to_vec()).hash(&Phone::parse(number).unwrap());
    let key =
        leads_domain::dedup::customer_key(&w.brand, &CustomerKey::Phone { hash: hash.clone() });
    (key, hash.0)
}

/// `text` as it appears inside an item's JSON (quotes escaped).
fn as_stored(text: &str) -> String {
    let quoted = serde_json::to_string(text).unwrap();
    quoted[1..quoted.len() - 1].to_string()
}

/// Every item of every table of the stack, as JSON text.
async fn everything(w: &World) -> Vec<String> {
    let t = &w.stack.settings.tables;
    let mut out = Vec::new();
    for table in [
        &t.directory,
        &t.leads,
        &t.idempotency,
        &t.raw_payload,
        &t.audit,
        &t.stats,
        &t.rankings,
    ] {
        let mut start = None;
        loop {
            let page = w
                .stack
                .clients
                .dynamodb
                .scan()
                .table_name(table)
                .set_exclusive_start_key(start)
                .send()
                .await
                .unwrap();
            for item in page.items.unwrap_or_default() {
                let json: serde_json::Value = serde_dynamo::from_item(item).unwrap();
                out.push(format!("{table}: {json}"));
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
    }
    out
}

async fn item(
    w: &World,
    pk: &str,
    sk: &str,
) -> Option<std::collections::HashMap<String, AttributeValue>> {
    w.stack
        .clients
        .dynamodb
        .get_item()
        .table_name(&w.stack.settings.tables.leads)
        .key("pk", AttributeValue::S(pk.into()))
        .key("sk", AttributeValue::S(sk.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

/// Open leads the consultant's cap counter holds.
async fn slot(w: &World, dealer: &str, staff: &str) -> i64 {
    item(w, &format!("ASSIGN#{dealer}"), &format!("STAFF#{staff}"))
        .await
        .expect("the consultant's counter")["open"]
        .as_n()
        .unwrap()
        .parse()
        .unwrap()
}

fn expires_at(item: &std::collections::HashMap<String, AttributeValue>) -> i64 {
    item.get("expires_at")
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .expect("the item has an expiry")
}

#[tokio::test]
async fn the_queue_carries_no_contact_every_item_expires_and_erase_leaves_no_trace() {
    let Some(w) = world(AssignmentStrategy::RoundRobin, &[50]).await else {
        return;
    };
    let clients = &w.stack.clients;
    let mut secrets = IntakeSecrets {
        phone_hash_key: PHONE_HASH_KEY.into(),
        ..Default::default()
    };
    secrets.hmac.insert(
        Source::Autohome,
        HmacSecrets {
            secrets: vec![AUTOHOME_SECRET.into()],
            accounts: Default::default(),
        },
    );
    let mut settings = w.stack.settings.clone();
    let (lead_queue, lead_dlq) = scratch_queue_with_dlq(&clients.sqs, "erase-leads", None, 5).await;
    let (notification_queue, notification_dlq) =
        scratch_queue_with_dlq(&clients.sqs, "erase-notify", None, 5).await;
    settings.queues.lead = lead_queue.clone();
    settings.queues.notification = notification_queue.clone();
    settings.queues.crm = scratch_queue_like(&clients.sqs, &settings.queues.crm).await;
    let intake = webhook_intake::Intake::new(&settings, clients, secrets);
    let router = Router::new(&settings, clients)
        .with_contact_seal(ContactSeal::from_phone_hash_key(PHONE_HASH_KEY.as_bytes()));

    // Customer A: two deliveries routed (one lead, two touchpoints), a third
    // that failed and waits in the lead DLQ. Customer B: one routed, one in
    // the DLQ. Neither's phone or name is on the queue in clear.
    let a = customer(&w, 3);
    let b = customer(&w, 2);
    let started = Utc::now().timestamp();
    let mut lead_of = std::collections::HashMap::new();
    for (who, c) in [("a", &a), ("b", &b)] {
        for (i, body) in c.bodies.iter().enumerate() {
            assert_eq!(intake.handle(signed(body)).await.status(), 200);
            let messages = drain(&clients.sqs, &lead_queue).await;
            assert_eq!(messages.len(), 1);
            let message = &messages[0];
            assert!(
                !message.contains(&c.phone) && !message.contains(&c.name),
                "a lead-queue message holds the phone or the name in clear: {message}"
            );
            if i + 1 == c.bodies.len() {
                // The failed one: in the DLQ as the intake sent it.
                clients
                    .sqs
                    .send_message()
                    .queue_url(&lead_dlq)
                    .message_body(message)
                    .send()
                    .await
                    .unwrap();
                continue;
            }
            let mut sqs_message = SqsMessage::default();
            sqs_message.body = Some(message.clone());
            let processed = router.handle_message(&sqs_message).await.unwrap();
            lead_of.insert(who, processed.lead_id.unwrap());
        }
    }
    let (lead_a, lead_b) = (lead_of["a"].clone(), lead_of["b"].clone());
    let record_a = w.leads.get(&lead_a).await.unwrap().unwrap();
    // The router opened the seal: the lead has the phone and the name.
    assert_eq!(record_a.phone.as_ref().unwrap().national(), a.phone);
    assert_eq!(record_a.customer_name.as_deref(), Some(a.name.as_str()));
    assert_eq!(record_a.touchpoints, 2);
    assert_eq!(record_a.status, LeadStatus::Assigned);
    let assignee = record_a.assignee.clone().unwrap();
    let dealer = record_a.dealer_id.clone().unwrap();

    // Retention: every item of B's customer data expires two years (the
    // default retention_days, 730) after now.
    let (key_b, _) = customer_key(&w, &b.phone);
    let two_years = 730 * 86_400;
    let touches_b = w.leads.touchpoints(&lead_b).await.unwrap();
    for (pk, sk) in [
        (format!("LEAD#{lead_b}"), "LEAD".to_string()),
        (key_b.clone(), "IDENTITY".to_string()),
        (
            format!("LEAD#{lead_b}"),
            format!(
                "TP#{}#{}",
                touches_b[0].at.to_rfc3339(),
                touches_b[0].source_event_id
            ),
        ),
    ] {
        let found = item(&w, &pk, &sk)
            .await
            .unwrap_or_else(|| panic!("{pk} {sk}"));
        let expires = expires_at(&found);
        assert!(
            (started + two_years - SLACK_S..=Utc::now().timestamp() + two_years + SLACK_S)
                .contains(&expires),
            "{pk} {sk} expires at {expires}"
        );
    }

    // Notification jobs of both leads wait in the notification DLQ.
    let jobs = drain(&clients.sqs, &notification_queue).await;
    assert!(jobs.iter().any(|j| j.contains(&lead_a)) && jobs.iter().any(|j| j.contains(&lead_b)));
    for job in &jobs {
        clients
            .sqs
            .send_message()
            .queue_url(&notification_dlq)
            .message_body(job)
            .send()
            .await
            .unwrap();
    }
    let open = slot(&w, &dealer, &assignee).await;

    // The erasure, as the operator runs it.
    let secret = scratch_secret(clients, PHONE_HASH_KEY).await;
    let env = [
        ("PHONE_HASH_SECRET_ID", secret.as_str()),
        ("LEAD_QUEUE_URL", lead_queue.as_str()),
        ("NOTIFICATION_QUEUE_URL", notification_queue.as_str()),
    ];
    let (ok, stdout, stderr) = leadctl(
        &[
            "erase",
            "--brand",
            &w.brand,
            "--phone",
            &a.phone,
            "--request",
            "DSR-42",
        ],
        &env,
    );
    assert!(ok, "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("erased 1 lead(s) [\"{lead_a}\"]"))
            && stdout.contains("2 touchpoints")
            && stdout.contains("3 raw bodies"),
        "{stdout}"
    );
    assert!(!stdout.contains(&a.phone) && !stderr.contains(&a.phone));

    // No table holds A's phone (national or +86), its dedup hash, the name
    // or a raw body; B is all there.
    let (_, hash_a) = customer_key(&w, &a.phone);
    let all = everything(&w).await;
    for needle in [
        a.phone.clone(),
        format!("+86{}", a.phone),
        hash_a,
        a.name.clone(),
    ]
    .into_iter()
    .chain(a.bodies.iter().map(|b| as_stored(b)))
    {
        let holding: Vec<&String> = all.iter().filter(|i| i.contains(&needle)).collect();
        assert!(holding.is_empty(), "still holding {needle}: {holding:?}");
    }
    for needle in [b.phone.clone(), b.name.clone(), as_stored(&b.bodies[0])] {
        assert!(
            all.iter().any(|i| i.contains(&needle)),
            "B's {needle} is gone"
        );
    }
    assert!(w.leads.get(&lead_a).await.unwrap().is_none());
    assert!(w.leads.touchpoints(&lead_a).await.unwrap().is_empty());
    assert!(w.leads.get(&lead_b).await.unwrap().is_some());
    // The consultant's slot is free again.
    assert_eq!(slot(&w, &dealer, &assignee).await, open - 1);

    // The audit trail says so, without the phone.
    let trail = w.audit.trail(&lead_a).await.unwrap();
    let erased = trail
        .iter()
        .find(|e| e.action == leads_domain::audit::AuditAction::Erased)
        .expect("an erased entry");
    assert!(erased.detail.contains("DSR-42"), "{}", erased.detail);

    // The DLQs keep only B's messages.
    let left = drain(&clients.sqs, &lead_dlq).await;
    let (_, hash_b) = customer_key(&w, &b.phone);
    assert_eq!(left.len(), 1);
    assert!(left[0].contains(&hash_b), "B's failed delivery stays");
    let left_jobs = drain(&clients.sqs, &notification_dlq).await;
    assert!(!left_jobs.is_empty());
    assert!(
        left_jobs.iter().all(|j| !j.contains(&lead_a)),
        "{left_jobs:?}"
    );

    // The platform redelivers one of A's bodies after its claim's lease: it
    // may be enqueued again (the intake cannot tell it was sent), and the
    // router's delivery marker, which the erasure keeps, makes it a no-op.
    assert_eq!(intake.handle(signed(&a.bodies[0])).await.status(), 200);
    for message in drain(&clients.sqs, &lead_queue).await {
        let mut sqs_message = SqsMessage::default();
        sqs_message.body = Some(message);
        router.handle_message(&sqs_message).await.unwrap();
    }
    assert!(w.leads.get(&lead_a).await.unwrap().is_none());
    let (key_a, _) = customer_key(&w, &a.phone);
    assert!(
        item(&w, &key_a, "IDENTITY").await.is_none(),
        "no lead recreated"
    );

    // A second run finds nothing more to erase.
    let (ok, stdout, _) = leadctl(
        &[
            "erase",
            "--brand",
            &w.brand,
            "--phone",
            &a.phone,
            "--request",
            "DSR-42",
        ],
        &env,
    );
    assert!(ok && stdout.contains("erased 0 lead(s)"), "{stdout}");
}
