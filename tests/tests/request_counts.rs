//! AWS requests per accepted webhook, per new lead and per merge, counted by an
//! SDK interceptor against the emulator. The router's, the intake's and the
//! notifier's are pinned here exactly, operation by operation, so a change that
//! adds (or removes) a round trip is noticed; and every measured row must equal
//! its line in the README's generated table (`integration_tests::request_table`;
//! `REQUEST_COUNTS_WRITE=1` regenerates it).

use chrono::Utc;
use integration_tests::world::{lead, phone, world};
use lead_router::Router;
use leads_aws::request_counter::RequestCounter;
use leads_aws::AwsClients;
use leads_domain::dedup::DedupOutcome;
use leads_domain::directory::{AssignmentStrategy, Platform};

fn show(what: &str, counter: &RequestCounter) -> u64 {
    show_with_http(what, counter, 0)
}

/// Prints the requests since the last reset, checks them against the
/// README's row `what` (with `http` outbound calls), resets; the total.
fn show_with_http(what: &str, counter: &RequestCounter, http: u64) -> u64 {
    let counts = counter.snapshot();
    integration_tests::request_table::row(what, &counts, http);
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
            ("DynamoDB.GetItem", 1), // the customer's identity
            // No open counts read: the turn's consultant is assumed below
            // cap, which the transaction checks (see the at-cap case below).
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
            ("DynamoDB.UpdateItem", 1),
            ("DynamoDB.TransactWriteItems", 1),
            ("SQS.SendMessage", 1),
        ],
    );
}

/// Round robin's turn falls on a consultant at their cap: the creating
/// transaction refuses the slot, and the lead is decided again on the open
/// counts as read, with the same ticket (the next consultant takes it).
#[tokio::test]
async fn requests_per_new_lead_when_the_turn_is_at_cap() {
    let Some(w) = world(AssignmentStrategy::RoundRobin, &[1, 50]).await else {
        return;
    };
    let counter = RequestCounter::default();
    let clients = AwsClients::counted(&counter).await;
    let mut settings = w.stack.settings.clone();
    settings.queues.notification = w.notifications.clone();
    let router = Router::new(&settings, &clients);
    let (s0, s1) = (format!("{}-jn-s0", w.brand), format!("{}-jn-s1", w.brand));
    let mut assignees = Vec::new();
    for _ in 0..2 {
        let p = router
            .handle_lead(
                &lead(&w, Platform::Douyin, "dy-jn", &phone(), None),
                Utc::now(),
            )
            .await
            .unwrap();
        assignees.push(p.assignee.unwrap());
    }
    assert_eq!(assignees, [s0.clone(), s1.clone()], "s0 is now at cap (1)");
    counter.reset();
    let p = router
        .handle_lead(
            &lead(&w, Platform::Douyin, "dy-jn", &phone(), None),
            Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(
        p.assignee.as_deref(),
        Some(s1.as_str()),
        "s0's turn, but at cap"
    );
    pin(
        "new local lead (round-robin), the turn's consultant at cap",
        &counter,
        &[
            ("DynamoDB.GetItem", 2),            // the identity, read again for the retry
            ("DynamoDB.UpdateItem", 1),         // the ticket, kept for the retry
            ("DynamoDB.TransactWriteItems", 2), // refused on the cap, then done
            ("DynamoDB.Query", 1),              // the open counts, read for the retry
            ("SQS.SendMessage", 1),
        ],
    );
}

/// A customer back inside the window after their lead was lost: the merge
/// is refused on the lead's status (the refusal returns the lead), and a new
/// lead continuing it is created in one transaction with the old lead's link.
#[tokio::test]
async fn requests_per_customer_back_after_a_lost_lead() {
    use leads_aws::store::StatusResult;
    let Some(w) = world(AssignmentStrategy::RoundRobin, &[50, 50]).await else {
        return;
    };
    let counter = RequestCounter::default();
    let clients = AwsClients::counted(&counter).await;
    let mut settings = w.stack.settings.clone();
    settings.queues.notification = w.notifications.clone();
    let router = Router::new(&settings, &clients);
    let number = phone();
    let first = router
        .handle_lead(
            &lead(&w, Platform::Douyin, "dy-jn", &number, None),
            Utc::now(),
        )
        .await
        .unwrap();
    let old = w.leads.get(&first.lead_id.unwrap()).await.unwrap().unwrap();
    let brand = w.brand_settings().await;
    let lost = leads_domain::status::Change {
        next: leads_domain::lead::LeadStatus::Lost,
        valid: None,
        reason: None,
        progress: false,
        closes: true,
    };
    assert_eq!(
        w.leads
            .apply_status(&old, &lost, &brand, Utc::now())
            .await
            .unwrap(),
        StatusResult::Applied
    );
    counter.reset();
    // The same account: its directory record is in the router's snapshot.
    let back = lead(&w, Platform::Douyin, "dy-jn", &number, None);
    let p = router.handle_lead(&back, Utc::now()).await.unwrap();
    assert_eq!(p.outcome, Some(DedupOutcome::Created));
    pin(
        "new lead continuing a lost one",
        &counter,
        &[
            ("DynamoDB.GetItem", 1), // the customer's identity
            // The merge, refused on the lead's status (it returns the lead),
            // then the new lead with the lost one's link and audit entry.
            ("DynamoDB.TransactWriteItems", 2),
            // The open counts: a returning customer's consultant is
            // preferred, so the turn's is not assumed below cap.
            ("DynamoDB.Query", 1),
            ("DynamoDB.UpdateItem", 1), // the round-robin ticket
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
    // A delivery is its signed body (X-Event-Id is unsigned, not a key):
    // each delivery of this test has a body of its own.
    let bodies = [
        integration_tests::unique("count"),
        integration_tests::unique("count"),
    ]
    .map(|n| {
        format!(r#"{{"lead_id":"x","dealer_id":"ah-ht-jn-01","phone":"13705317777","note":"{n}"}}"#)
    });
    let request = |body: &str| {
        let body = body.to_string();
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
    let copy_of = |first: &lambda_http::Request, body: &str| {
        let mut r = request(body);
        *r.headers_mut() = first.headers().clone();
        r
    };

    let first = request(&bodies[0]);
    let again = copy_of(&first, &bodies[0]);
    let later = copy_of(&first, &bodies[0]);
    assert_eq!(intake.handle(first).await.status(), 200);
    let accepted = counted(&counter);
    show("accepted webhook (1 lead)", &counter);
    // The platform redelivers at once (a concurrent copy, or an answer it lost):
    // the copy waits out the owner's lease, finds it unconfirmed, takes the
    // claim over, sends again and confirms.
    assert_eq!(intake.handle(again).await.status(), 200);
    let redelivered = counted(&counter);
    show("redelivered webhook (during the lease)", &counter);
    assert_eq!(intake.handle(later).await.status(), 200);
    let confirmed = counted(&counter);
    show("redelivered webhook (confirmed)", &counter);

    // A redelivery after a lease that nobody confirmed: taken over, sent again.
    let first = request(&bodies[1]);
    let late = copy_of(&first, &bodies[1]);
    assert_eq!(intake.handle(first).await.status(), 200);
    counter.reset();
    tokio::time::sleep(webhook_intake::LEASE + std::time::Duration::from_millis(300)).await;
    assert_eq!(intake.handle(late).await.status(), 200);
    let taken_over = counted(&counter);
    show("redelivered webhook (after the lease)", &counter);

    assert_eq!(
        accepted,
        ops(&[("DynamoDB.PutItem", 1), ("SQS.SendMessageBatch", 1)]),
        "the claim (raw body, conditional), the enqueue"
    );
    assert_eq!(
        redelivered,
        ops(&[
            ("DynamoDB.PutItem", 2),
            ("DynamoDB.UpdateItem", 2),
            ("SQS.SendMessageBatch", 1)
        ]),
        "claim found, found again after the lease, taken over, sent again, marked SENT"
    );
    assert_eq!(
        confirmed,
        ops(&[("DynamoDB.PutItem", 1)]),
        "one conditional put answers it"
    );
    assert_eq!(
        taken_over,
        ops(&[
            ("DynamoDB.PutItem", 1),
            ("DynamoDB.UpdateItem", 2),
            ("SQS.SendMessageBatch", 1)
        ]),
        "claim found, taken over, sent again, marked SENT"
    );
}

/// Requests per operation so far (the counter is not reset).
fn counted(counter: &RequestCounter) -> std::collections::BTreeMap<String, u64> {
    counter.snapshot()
}

fn ops(expected: &[(&str, u64)]) -> std::collections::BTreeMap<String, u64> {
    expected.iter().map(|(k, v)| (k.to_string(), *v)).collect()
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
            &Claims::staff(
                staff,
                &format!("{}-jn", w.brand),
                &w.brand.clone(),
                StaffRole::Sales,
                Utc::now(),
                600,
            ),
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
    // A warm API: its directory snapshot (the caller's roster and dealer,
    // checked on every request) is cached, as in a warm function.
    let mut warm = record_phone(
        &w,
        contact.lead_id.as_deref().unwrap(),
        contact.assignee.as_deref().unwrap(),
        "",
    );
    *warm.method_mut() = lambda_http::http::Method::GET;
    *warm.uri_mut() = format!("/leads/{}", contact.lead_id.as_deref().unwrap())
        .parse()
        .unwrap();
    assert_eq!(api.handle(warm).await.status(), 200);
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

    // Warm: the directory check (roster, dealer) is served from the snapshot.
    assert!(linked <= 5, "{linked}");
    assert!(merged <= 9, "{merged}");
    assert!(repeated <= 5, "{repeated}");
    assert!(crm_both <= 19, "{crm_both}");
}

/// A stand-in for WeCom and the brand CRM that answers OK and counts requests.
async fn http_stand_in() -> (String, std::sync::Arc<std::sync::atomic::AtomicU64>) {
    use std::sync::atomic::{AtomicU64, Ordering};
    let hits = std::sync::Arc::new(AtomicU64::new(0));
    let counted = hits.clone();
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        let counted = counted.clone();
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            axum::Json(match uri.path() {
                "/cgi-bin/gettoken" => serde_json::json!({"errcode": 0, "errmsg": "ok",
                    "access_token": "tok", "expires_in": 7200}),
                _ => {
                    serde_json::json!({"errcode": 0, "errmsg": "ok", "invaliduser": "", "code": 0})
                }
            })
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, hits)
}

#[tokio::test]
async fn requests_per_notification_job() {
    use leads_domain::delivery::Backoff;
    use leads_domain::notification::{Notice, NotificationJob, NotificationKind};
    use notifier::config::{NotifierConfig, Secret, WebhookConfig, WecomConfig};
    use std::sync::atomic::Ordering;
    let Some(w) = world(AssignmentStrategy::RoundRobin, &[5]).await else {
        return;
    };
    let counter = RequestCounter::default();
    let clients = AwsClients::counted(&counter).await;
    let (base, http) = http_stand_in().await;
    let config = NotifierConfig {
        lead_link_base: "https://leads.test".into(),
        wecom: Some(WecomConfig {
            base_url: base.clone(),
            corp_id: "corp".into(),
            corp_secret: Secret::new("s"),
            agent_id: 1,
            per_member_per_minute: 30,
        }),
        sms: None,
        webhook: Some(WebhookConfig {
            url: format!("{base}/crm"),
            secret: Secret::new("crm-secret"),
        }),
        brand_crms: Default::default(),
        request_timeout: std::time::Duration::from_secs(2),
        backoff: Backoff::default(),
        delivery_lease: std::time::Duration::from_secs(120),
    };
    let notifier = notifier::Notifier::new(&w.stack.settings, &clients, config).unwrap();
    // A consultant with a WeCom id: one app message and the CRM copy per job.
    let job = || {
        let lead_id = integration_tests::unique("L");
        Notice::Lead(NotificationJob {
            job_id: NotificationJob::job_id(&lead_id, NotificationKind::NewAssignment, 1),
            kind: NotificationKind::NewAssignment,
            lead_id,
            brand_id: w.brand.clone(),
            dealer_id: Some(format!("{}-qd", w.brand)),
            recipients: vec![format!("{}-qd-s0", w.brand)],
            phone_masked: Some("138****5678".into()),
            customer_name: None,
            series_interest: vec![],
            created_at: Utc::now(),
            wecom_transfer: None,
        })
    };
    let deadline = || tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    let run = |label: &'static str| {
        let snapshot = counted(&counter);
        let calls = http.swap(0, Ordering::SeqCst);
        show_with_http(label, &counter, calls);
        (snapshot, calls)
    };

    let first = job();
    let report = notifier.handle_notice(&first, deadline()).await.unwrap();
    assert!(!report.needs_retry(), "{report:?}");
    let cold = run("notification job (directory fetched)");
    let second = job();
    notifier.handle_notice(&second, deadline()).await.unwrap();
    let warm = run("notification job (directory cached)");
    notifier.handle_notice(&second, deadline()).await.unwrap();
    let redelivered = run("notification job redelivered");

    let claim_and_completion = [
        ("DynamoDB.TransactWriteItems", 1),
        ("DynamoDB.UpdateItem", 1),
    ];
    assert_eq!(
        warm,
        (ops(&claim_and_completion), 2),
        "claim, completion with the audit entries; WeCom message + CRM webhook"
    );
    let mut with_directory = ops(&claim_and_completion);
    with_directory.insert("DynamoDB.Query".into(), 1);
    assert_eq!(
        cold,
        (with_directory, 3),
        "+ the dealer's staff; + the WeCom access token (then cached)"
    );
    assert_eq!(
        redelivered,
        (ops(&claim_and_completion), 0),
        "the claim finds both deliveries done; the completion frees the lease"
    );
}

#[tokio::test]
async fn requests_per_nobody_available_job_and_summary() {
    use leads_domain::delivery::Backoff;
    use leads_domain::notification::{Notice, NotificationJob, NotificationKind};
    use leads_domain::pool_notice::{window_of, DEFAULT_WINDOW};
    use notifier::config::{NotifierConfig, Secret, WecomConfig};
    use std::sync::atomic::Ordering;
    let Some(w) = world(AssignmentStrategy::RoundRobin, &[5]).await else {
        return;
    };
    let counter = RequestCounter::default();
    let clients = AwsClients::counted(&counter).await;
    let (base, http) = http_stand_in().await;
    let mut settings = w.stack.settings.clone();
    settings.queues.notification =
        integration_tests::scratch_queue_like(&w.stack.clients.sqs, &settings.queues.notification)
            .await;
    let config = NotifierConfig {
        lead_link_base: "https://leads.test".into(),
        wecom: Some(WecomConfig {
            base_url: base,
            corp_id: "corp".into(),
            corp_secret: Secret::new("s"),
            agent_id: 1,
            per_member_per_minute: 30,
        }),
        sms: None,
        webhook: None,
        brand_crms: Default::default(),
        request_timeout: std::time::Duration::from_secs(2),
        backoff: Backoff::default(),
        delivery_lease: std::time::Duration::from_secs(120),
    };
    let notifier = notifier::Notifier::new(&settings, &clients, config)
        .unwrap()
        .with_pool_window(DEFAULT_WINDOW);
    // The Qingdao dealer gets a manager on WeCom.
    use leads_aws::store::DirectoryStore;
    leads_aws::store::DynamoDirectory::new(
        w.stack.clients.dynamodb.clone(),
        &w.stack.settings.tables.directory,
    )
    .save(&leads_domain::directory_file::Directory {
        brands: vec![],
        dealers: vec![],
        staff: vec![serde_json::from_value(serde_json::json!({
            "staff_id": format!("{}-qd-mgr", w.brand), "dealer_id": format!("{}-qd", w.brand),
            "name": "店总", "role": "manager", "on_duty": true, "cap": 0,
            "wecom_userid": "wx-qd-mgr",
        }))
        .unwrap()],
        accounts: vec![],
        brand_ops: vec![],
    })
    .await
    .unwrap();
    // A window that has ended.
    let window = window_of(Utc::now() - chrono::Duration::minutes(20), DEFAULT_WINDOW);
    let job = || {
        let lead_id = integration_tests::unique("L");
        Notice::Lead(NotificationJob {
            job_id: NotificationJob::job_id(&lead_id, NotificationKind::NoOneAvailable, 1),
            kind: NotificationKind::NoOneAvailable,
            lead_id,
            brand_id: w.brand.clone(),
            dealer_id: Some(format!("{}-qd", w.brand)),
            recipients: vec![format!("{}-qd-s0", w.brand)],
            phone_masked: None,
            customer_name: None,
            series_interest: vec![],
            created_at: window.start,
            wecom_transfer: None,
        })
    };
    let deadline = || tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    let run = |label: &'static str| {
        let snapshot = counted(&counter);
        let calls = http.swap(0, Ordering::SeqCst);
        show_with_http(label, &counter, calls);
        (snapshot, calls)
    };
    notifier.handle_notice(&job(), deadline()).await.unwrap();
    let first = run("nobody available, first of its window");
    notifier.handle_notice(&job(), deadline()).await.unwrap();
    let folded = run("nobody available, folded");
    let queued =
        integration_tests::drain(&w.stack.clients.sqs, &settings.queues.notification).await;
    assert_eq!(queued.len(), 1);
    counter.reset();
    let summary = Notice::from_json(&queued[0]).unwrap();
    notifier.handle_notice(&summary, deadline()).await.unwrap();
    let sent = run("managers' summary (staff not cached)");

    assert_eq!(
        first,
        (
            ops(&[("DynamoDB.UpdateItem", 2), ("SQS.SendMessage", 1)]),
            0
        ),
        "counted, the summary queued, marked queued"
    );
    assert_eq!(folded, (ops(&[("DynamoDB.UpdateItem", 1)]), 0), "counted");
    assert_eq!(
        sent,
        (
            ops(&[
                ("DynamoDB.Query", 1),
                ("DynamoDB.TransactWriteItems", 1),
                ("DynamoDB.UpdateItem", 2)
            ]),
            2
        ),
        "closed (count read), staff, claim, completion; WeCom token + one message"
    );
}

/// The brand's KPIs are computed when asked, off the lead's hot path: one
/// Query per dealer of the brand (a 1 MB page holds a few thousand lead
/// summaries), one for its unroutable leads, one per day for the overlap
/// counters (whole-brand operations only), plus the brand and its dealer
/// list. With a warm caller cache (the directory's brand_ops entry, the
/// manager's roster).
#[tokio::test]
async fn requests_per_brand_metrics() {
    use leads_domain::auth::{self, Claims};
    use leads_domain::directory::StaffRole;
    const SECRET: &[u8] = b"request-count-metrics-secret";
    let Some(w) = world(AssignmentStrategy::RoundRobin, &[50, 50]).await else {
        return;
    };
    w.add_brand_ops(&[
        serde_json::json!({"staff_id": "ops", "brand_id": w.brand, "name": "品牌运营"}),
    ])
    .await;
    for city in [None, Some("烟台")] {
        w.router
            .handle_lead(
                &lead(&w, Platform::Douyin, "dy-jn", &phone(), city),
                Utc::now(),
            )
            .await
            .unwrap();
    }
    let counter = RequestCounter::default();
    let clients = AwsClients::counted(&counter).await;
    let api = api::Api::new(&w.stack.settings, &clients, SECRET.to_vec());
    let get = |token: &str| {
        lambda_http::http::Request::builder()
            .method("GET")
            .uri(format!("/brands/{}/metrics", w.brand))
            .header("authorization", format!("Bearer {token}"))
            .body(lambda_http::Body::Empty)
            .unwrap()
    };
    let ops = auth::issue(
        SECRET,
        &Claims::staff("ops", "", &w.brand, StaffRole::BrandOps, Utc::now(), 600),
    );
    let manager = auth::issue(
        SECRET,
        &Claims::staff(
            &format!("{}-jn-mgr", w.brand),
            &format!("{}-jn", w.brand),
            &w.brand,
            StaffRole::Manager,
            Utc::now(),
            600,
        ),
    );
    for token in [&ops, &manager] {
        assert_eq!(api.handle(get(token)).await.status(), 200); // warms the caches
    }
    counter.reset();
    assert_eq!(api.handle(get(&ops)).await.status(), 200);
    pin(
        "brand KPIs, 7 days, 2 dealers (whole-brand operations)",
        &counter,
        &[
            ("DynamoDB.GetItem", 1), // the brand
            // its dealers; each dealer's partition; the unroutable one; 7 days of overlap
            ("DynamoDB.Query", 1 + 2 + 1 + 7),
        ],
    );
    assert_eq!(api.handle(get(&manager)).await.status(), 200);
    pin(
        "brand KPIs, 7 days, 2 dealers (a dealer's manager)",
        &counter,
        &[("DynamoDB.GetItem", 1), ("DynamoDB.Query", 1 + 2 + 1)],
    );
}
