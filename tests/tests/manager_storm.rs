//! The managers' "nobody available" storm against the emulator: 50 leads
//! nobody can take (and SQS redelivering some of their jobs, several at once)
//! give each manager exactly one WeCom message for the window, naming 50; the
//! summary redelivered reaches nobody twice; another window is another
//! message. The expected counts come from the jobs this test makes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsMessage;
use chrono::{DateTime, Utc};
use integration_tests::world::world;
use integration_tests::{drain, scratch_queue_like, unique};
use leads_aws::store::{DirectoryStore, DynamoDirectory};
use leads_domain::delivery::Backoff;
use leads_domain::directory::{AssignmentStrategy, Staff};
use leads_domain::directory_file::Directory;
use leads_domain::notification::{Notice, NotificationJob, NotificationKind};
use leads_domain::pool_notice::{summary_job_id, window_of, DEFAULT_WINDOW};
use notifier::config::{NotifierConfig, Secret, WecomConfig};
use notifier::Notifier;
use tokio::time::Instant;

/// WeCom stand-in: records each app message's `touser` and description.
async fn wecom() -> (String, Arc<Mutex<Vec<(String, String)>>>) {
    let sent: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let seen = sent.clone();
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri, body: axum::body::Bytes| {
        let seen = seen.clone();
        async move {
            if uri.path() == "/cgi-bin/message/send" {
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                seen.lock().unwrap().push((
                    v["touser"].as_str().unwrap_or_default().to_string(),
                    v["textcard"]["description"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                ));
            }
            axum::Json(serde_json::json!({"errcode": 0, "errmsg": "ok",
                    "access_token": "tok", "expires_in": 7200, "invaliduser": ""}))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, sent)
}

fn member(brand: &str, id: &str, role: &str) -> Staff {
    serde_json::from_value(serde_json::json!({
        "staff_id": format!("{brand}-jn-{id}"), "dealer_id": format!("{brand}-jn"),
        "name": id, "role": role, "on_duty": true, "cap": 5,
        "wecom_userid": format!("wx-{id}"),
    }))
    .unwrap()
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(20)
}

#[tokio::test]
async fn fifty_leads_nobody_can_take_give_each_manager_one_notice_per_window() {
    let Some(w) = world(AssignmentStrategy::RoundRobin, &[5]).await else {
        return;
    };
    let dealer = format!("{}-jn", w.brand);
    // Two managers and a consultant (who must hear nothing of this).
    DynamoDirectory::new(
        w.stack.clients.dynamodb.clone(),
        &w.stack.settings.tables.directory,
    )
    .save(&Directory {
        brands: vec![],
        dealers: vec![],
        staff: vec![
            member(&w.brand, "m1", "manager"),
            member(&w.brand, "m2", "manager"),
            member(&w.brand, "s9", "sales"),
        ],
        accounts: vec![],
        brand_ops: vec![],
    })
    .await
    .unwrap();
    let (base, outbox) = wecom().await;
    let mut settings = w.stack.settings.clone();
    settings.queues.notification =
        scratch_queue_like(&w.stack.clients.sqs, &settings.queues.notification).await;
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
        request_timeout: Duration::from_secs(2),
        backoff: Backoff::default(),
        delivery_lease: Duration::from_secs(120),
    };
    let notifier = Notifier::new(&settings, &w.stack.clients, config)
        .unwrap()
        .with_pool_window(DEFAULT_WINDOW);

    // Two windows that have ended: 50 leads in the first, 3 in the one before.
    let now = Utc::now();
    let first = window_of(now - chrono::Duration::minutes(20), DEFAULT_WINDOW);
    let earlier = window_of(now - chrono::Duration::minutes(40), DEFAULT_WINDOW);
    let job = |at: DateTime<Utc>| {
        let lead_id = unique("L");
        NotificationJob {
            job_id: NotificationJob::job_id(&lead_id, NotificationKind::NoOneAvailable, 1),
            kind: NotificationKind::NoOneAvailable,
            lead_id,
            brand_id: w.brand.clone(),
            dealer_id: Some(dealer.clone()),
            recipients: vec![],
            phone_masked: Some("138****5678".into()),
            customer_name: None,
            series_interest: vec![],
            created_at: at,
            wecom_transfer: None,
        }
    };
    let mut jobs: Vec<NotificationJob> = (0..50)
        .map(|i| job(first.start + chrono::Duration::seconds(i * 5)))
        .chain((0..3).map(|i| job(earlier.start + chrono::Duration::seconds(i))))
        .collect();
    // SQS delivers 12 of them twice.
    jobs.extend(jobs[..12].to_vec());
    // Jobs in parallel, 8 at a time, as concurrent invocations would.
    for chunk in jobs.chunks(8) {
        let results = futures::future::join_all(chunk.iter().map(|j| {
            let notice = Notice::Lead(j.clone());
            let notifier = &notifier;
            async move { notifier.handle_notice(&notice, deadline()).await }
        }))
        .await;
        for r in results {
            assert!(r.unwrap().deliveries.is_empty(), "folded, nothing sent yet");
        }
    }
    assert!(outbox.lock().unwrap().is_empty(), "no message per lead");

    // The summaries were queued (their windows have ended: no delay). Deliver
    // each summary message, each one twice (SQS redelivers).
    let queued = drain(&w.stack.clients.sqs, &settings.queues.notification).await;
    assert!(!queued.is_empty());
    for (i, body) in queued.iter().chain(queued.iter()).enumerate() {
        let mut message = SqsMessage::default();
        message.message_id = Some(format!("m{i}"));
        message.body = Some(body.clone());
        let report = notifier.handle_message(&message, deadline()).await.unwrap();
        assert!(!report.needs_retry(), "{report:?}");
    }

    let sent = outbox.lock().unwrap().clone();
    let mut per_manager: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (to, text) in &sent {
        for member in to.split('|') {
            per_manager
                .entry(member.to_string())
                .or_default()
                .push(text.clone());
        }
    }
    // Each manager: one message per window, naming that window's count.
    assert_eq!(
        per_manager.keys().collect::<Vec<_>>(),
        ["wx-m1", "wx-m2"],
        "{sent:?}"
    );
    for (member, texts) in &per_manager {
        assert_eq!(texts.len(), 2, "{member}: {texts:?}");
        assert_eq!(
            texts
                .iter()
                .filter(|t| t.contains("共有50条新线索"))
                .count(),
            1,
            "{member}: {texts:?}"
        );
        assert_eq!(
            texts.iter().filter(|t| t.contains("共有3条新线索")).count(),
            1,
            "{member}: {texts:?}"
        );
    }

    // A job for the closed window arriving late goes to the current window's
    // summary (queued until that window ends), not to a second message now.
    let late = job(first.start + chrono::Duration::seconds(7));
    let before = window_of(Utc::now(), DEFAULT_WINDOW);
    let report = notifier
        .handle_notice(&Notice::Lead(late.clone()), deadline())
        .await
        .unwrap();
    let after = window_of(Utc::now(), DEFAULT_WINDOW);
    assert!(report.deliveries.is_empty());
    let mut counted_in = Vec::new();
    for window in [first, before, after] {
        let item = w
            .stack
            .clients
            .dynamodb
            .get_item()
            .table_name(&settings.tables.idempotency)
            .key(
                "pk",
                aws_sdk_dynamodb::types::AttributeValue::S(format!(
                    "pool#{}",
                    summary_job_id(&dealer, &window)
                )),
            )
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
            .unwrap_or_default();
        if let Some(aws_sdk_dynamodb::types::AttributeValue::Ss(leads)) = item.get("leads") {
            if leads.contains(&late.lead_id) {
                counted_in.push(window.start);
            }
        }
    }
    assert!(
        !counted_in.contains(&first.start) && !counted_in.is_empty(),
        "the late lead waits in the current window's summary: {counted_in:?}"
    );
    assert_eq!(
        outbox.lock().unwrap().len(),
        2,
        "nothing more sent: {sent:?}"
    );
}
