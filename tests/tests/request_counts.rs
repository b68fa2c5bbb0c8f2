//! AWS requests per accepted webhook, per new lead and per merge, counted by an
//! SDK interceptor against the emulator (`cargo test --test request_counts --
//! --nocapture` prints the table the README quotes). The router's are pinned
//! exactly, operation by operation, so a change that adds (or removes) a round
//! trip is noticed; the others are bounds.

use chrono::Utc;
use integration_tests::world::{lead, phone, world};
use lead_router::Router;
use leads_aws::request_counter::RequestCounter;
use leads_aws::AwsClients;
use leads_domain::dedup::DedupOutcome;
use leads_domain::directory::{AssignmentStrategy, Platform};

fn show(what: &str, counter: &RequestCounter) -> u64 {
    let counts = counter.snapshot();
    let detail: Vec<String> = counts.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!(
        "{what:<32} {:>3} requests: {}",
        counter.total(),
        detail.join(" ")
    );
    let total = counter.total();
    counter.reset();
    total
}

/// Asserts the requests since the last reset, operation by operation
/// (`[("DynamoDB.GetItem", 1), ...]`), prints them and resets.
fn pin(what: &str, counter: &RequestCounter, expected: &[(&str, u64)]) {
    let counts = counter.snapshot();
    show(what, counter);
    let expected: std::collections::BTreeMap<String, u64> =
        expected.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    assert_eq!(counts, expected, "{what}");
}

/// The router's requests with a warm directory snapshot (a running
/// function's normal state: the directory is read once a minute). The
/// first lead of a cold router also reads the account, brand, dealer and
/// staff (4 more).
#[tokio::test]
async fn requests_per_new_lead_merge_and_duplicate() {
    let Some(w) = world(AssignmentStrategy::RoundRobin, &[50, 50]).await else {
        return;
    };
    let counter = RequestCounter::default();
    let clients = AwsClients::counted(&counter).await;
    let mut settings = w.stack.settings.clone();
    settings.queues.notification = w.notifications.clone();
    settings.queues.crm = w.crm.clone();
    let router = Router::new(&settings, &clients);
    // Warm the snapshot: each account, the local and the remote dealer.
    for (platform, account, city) in [
        (Platform::Douyin, "dy-jn", None),
        (Platform::Autohome, "ah-jn", None),
        (Platform::Douyin, "dy-jn", Some("烟台")),
    ] {
        router
            .handle_lead(&lead(&w, platform, account, &phone(), city), Utc::now())
            .await
            .unwrap();
    }
    counter.reset();

    let number = phone();
    let first = lead(&w, Platform::Douyin, "dy-jn", &number, None);
    let p = router.handle_lead(&first, Utc::now()).await.unwrap();
    assert_eq!(p.outcome, Some(DedupOutcome::Created));
    pin(
        "new local lead (round-robin)",
        &counter,
        &[
            ("DynamoDB.GetItem", 1),            // the customer's identity
            ("DynamoDB.Query", 1),              // the consultants' open counts
            ("DynamoDB.UpdateItem", 1),         // the round-robin ticket
            ("DynamoDB.TransactWriteItems", 1), // everything else
            ("SQS.SendMessage", 1),
        ],
    );

    let p = router.handle_lead(&first, Utc::now()).await.unwrap();
    assert_eq!(p.outcome, Some(DedupOutcome::Duplicate));
    pin(
        "duplicate (redelivery)",
        &counter,
        &[
            ("DynamoDB.GetItem", 2), // identity (it is this delivery's lead), the lead
            ("SQS.SendMessage", 1),  // re-sent; the notifier dedups by job id
        ],
    );

    let again = lead(&w, Platform::Autohome, "ah-jn", &number, None);
    let p = router.handle_lead(&again, Utc::now()).await.unwrap();
    assert_eq!(p.outcome, Some(DedupOutcome::Merged));
    pin(
        "merge (customer came back)",
        &counter,
        &[
            ("DynamoDB.GetItem", 2), // identity, the lead after the merge (for the job)
            ("DynamoDB.TransactWriteItems", 1),
            ("SQS.SendMessage", 1),
        ],
    );

    let p = router.handle_lead(&again, Utc::now()).await.unwrap();
    assert_eq!(p.outcome, Some(DedupOutcome::Duplicate));
    pin(
        "duplicate of a merge",
        &counter,
        &[
            ("DynamoDB.GetItem", 2), // identity, the lead
            // The merge, cancelled on the delivery marker, which it returns.
            ("DynamoDB.TransactWriteItems", 1),
            ("SQS.SendMessage", 1),
        ],
    );

    let remote = lead(&w, Platform::Douyin, "dy-jn", &phone(), Some("烟台"));
    let p = router.handle_lead(&remote, Utc::now()).await.unwrap();
    assert!(matches!(
        p.route,
        Some(leads_domain::routing::Route::Remote { .. })
    ));
    pin(
        "new remote lead (round-robin)",
        &counter,
        &[
            ("DynamoDB.GetItem", 1),
            ("DynamoDB.BatchGetItem", 1), // every candidate's remote leads today
            ("DynamoDB.Query", 1),
            ("DynamoDB.UpdateItem", 1),
            ("DynamoDB.TransactWriteItems", 1),
            ("SQS.SendMessage", 1),
        ],
    );
}

#[tokio::test]
async fn requests_per_new_lead_without_a_ticket() {
    let Some(w) = world(AssignmentStrategy::Saturation, &[50, 50]).await else {
        return;
    };
    let counter = RequestCounter::default();
    let clients = AwsClients::counted(&counter).await;
    let mut settings = w.stack.settings.clone();
    settings.queues.notification = w.notifications.clone();
    let router = Router::new(&settings, &clients);
    router
        .handle_lead(
            &lead(&w, Platform::Douyin, "dy-jn", &phone(), None),
            Utc::now(),
        )
        .await
        .unwrap();
    counter.reset();
    let p = router
        .handle_lead(
            &lead(&w, Platform::Douyin, "dy-jn", &phone(), None),
            Utc::now(),
        )
        .await
        .unwrap();
    assert!(p.assignee.is_some());
    pin(
        "new local lead (saturation)",
        &counter,
        &[
            ("DynamoDB.GetItem", 1),
            ("DynamoDB.Query", 1),
            ("DynamoDB.TransactWriteItems", 1),
            ("SQS.SendMessage", 1),
        ],
    );
    // An SQS batch of 10 new leads: the jobs leave in one SendMessageBatch.
    let mut event = aws_lambda_events::event::sqs::SqsEvent::default();
    event.records = (0..10)
        .map(|i| {
            let l = lead(&w, Platform::Douyin, "dy-jn", &phone(), None);
            let mut m = aws_lambda_events::event::sqs::SqsMessage::default();
            m.message_id = Some(format!("m{i}"));
            m.body = Some(
                serde_json::to_string(&leads_domain::intake::IntakeMessage::Lead(Box::new(l)))
                    .unwrap(),
            );
            m
        })
        .collect();
    let response = router.handle_batch(event).await;
    assert!(response.batch_item_failures.is_empty());
    pin(
        "batch of 10 new local leads (saturation)",
        &counter,
        &[
            ("DynamoDB.GetItem", 10),
            ("DynamoDB.Query", 10),
            ("DynamoDB.TransactWriteItems", 10),
            ("SQS.SendMessageBatch", 1),
        ],
    );
}

#[tokio::test]
async fn requests_per_accepted_webhook_and_redelivery() {
    use leads_domain::intake::secrets::HmacSecrets;
    use leads_domain::intake::{hmac_sources, IntakeSecrets, Source};
    let Some(stack) = integration_tests::stack().await else {
        return;
    };
    let counter = RequestCounter::default();
    let clients = AwsClients::counted(&counter).await;
    let mut secrets = IntakeSecrets {
        phone_hash_key: "request-count-key-0123".into(),
        ..Default::default()
    };
    secrets.hmac.insert(
        Source::Autohome,
        HmacSecrets {
            secrets: vec!["s".into()],
            accounts: Default::default(),
        },
    );
    let intake = webhook_intake::Intake::new(&stack.settings, &clients, secrets);
    let body = r#"{"lead_id":"x","dealer_id":"ah-ht-jn-01","phone":"13705317777"}"#;
    let request = || {
        let ts = Utc::now().timestamp().to_string();
        lambda_http::http::Request::builder()
            .method("POST")
            .uri("/webhooks/autohome")
            .header("X-Timestamp", &ts)
            .header(
                "X-Signature",
                hmac_sources::signature("s", &ts, body.as_bytes()),
            )
            .header("X-Event-Id", integration_tests::unique("count"))
            .body(lambda_http::Body::from(body))
            .unwrap()
    };
    let first = request();
    let again = {
        let mut r = request();
        *r.headers_mut() = first.headers().clone();
        r
    };
    assert_eq!(intake.handle(first).await.status(), 200);
    let accepted = show("accepted webhook (1 lead)", &counter);
    assert_eq!(intake.handle(again).await.status(), 200);
    let redelivered = show("redelivered webhook", &counter);
    assert_eq!(accepted, 4, "claim, raw payload, enqueue, complete");
    assert_eq!(redelivered, 1, "one conditional put answers it");
}

#[tokio::test]
async fn requests_per_phone_link_and_link_merge() {
    use integration_tests::world::{overlap, wecom_lead, World};
    use leads_domain::auth::{self, Claims};
    use leads_domain::directory::StaffRole;
    use leads_domain::identity::PhoneHasher;
    const SECRET: &[u8] = b"request-count-api-secret";
    let Some(w) = world(AssignmentStrategy::RoundRobin, &[50, 50]).await else {
        return;
    };
    let counter = RequestCounter::default();
    let clients = AwsClients::counted(&counter).await;
    let mut settings = w.stack.settings.clone();
    settings.queues.notification = w.notifications.clone();
    settings.queues.crm = w.crm.clone();
    let api = api::Api::new(&settings, &clients, SECRET.to_vec())
        .with_phone_hasher(PhoneHasher::new(b"k".to_vec()));
    let router = Router::new(&settings, &clients);
    let record_phone = |w: &World, lead_id: &str, staff: &str, number: &str| {
        let token = auth::issue(
            SECRET,
            &Claims {
                staff_id: staff.to_string(),
                dealer_id: format!("{}-jn", w.brand),
                brand_id: w.brand.clone(),
                role: StaffRole::Sales,
                exp: Utc::now().timestamp() + 600,
            },
        );
        lambda_http::http::Request::builder()
            .method("POST")
            .uri(format!("/leads/{lead_id}/events"))
            .header("authorization", format!("Bearer {token}"))
            .body(lambda_http::Body::from(format!(
                r#"{{"event":"phone","phone":"{number}"}}"#
            )))
            .unwrap()
    };

    // A WeCom contact whose phone is new: linked.
    let contact = w
        .router
        .handle_lead(
            &wecom_lead(&w, &integration_tests::unique("wm")),
            Utc::now(),
        )
        .await
        .unwrap();
    counter.reset();
    let request = record_phone(
        &w,
        contact.lead_id.as_deref().unwrap(),
        contact.assignee.as_deref().unwrap(),
        &phone(),
    );
    assert_eq!(api.handle(request).await.status(), 200);
    let linked = show("phone recorded, linked (API)", &counter);

    // Douyin lead first, then the WeCom contact, then its phone: merged.
    let number = phone();
    w.router
        .handle_lead(
            &lead(&w, Platform::Douyin, "dy-jn", &number, None),
            Utc::now(),
        )
        .await
        .unwrap();
    let contact = w
        .router
        .handle_lead(
            &wecom_lead(&w, &integration_tests::unique("wm")),
            Utc::now(),
        )
        .await
        .unwrap();
    counter.reset();
    let (lead_id, staff) = (contact.lead_id.unwrap(), contact.assignee.unwrap());
    assert_eq!(
        api.handle(record_phone(&w, &lead_id, &staff, &number))
            .await
            .status(),
        200
    );
    let merged = show("phone recorded, two leads merged", &counter);
    assert_eq!(overlap(&w, "douyin#wecom").await, 1);
    assert_eq!(
        api.handle(record_phone(&w, &lead_id, &staff, &number))
            .await
            .status(),
        200
    );
    let repeated = show("phone recorded again (no-op)", &counter);

    // The brand CRM pushes a phone with a WeCom id nobody knows yet: the new
    // lead is created, routed, assigned, and the WeCom id linked to it.
    let mut push = lead(&w, Platform::OemCrm, "crm", &phone(), None);
    push.linked_customer = Some(integration_tests::world::wecom_key(
        &w,
        &integration_tests::unique("wm"),
    ));
    counter.reset();
    router.handle_lead(&push, Utc::now()).await.unwrap();
    let crm_both = show("new lead with a second key", &counter);

    assert!(linked <= 6, "{linked}");
    assert!(merged <= 10, "{merged}");
    assert!(repeated <= 6, "{repeated}");
    assert!(crm_both <= 19, "{crm_both}");
}
