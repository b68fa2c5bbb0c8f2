//! `burst`: a Douyin live group-buy (直播团购会) against the local stack with
//! DynamoDB's optimistic concurrency on (the stack's contention proxy).
//!
//! `--leads` new customers leave their phone on `--dealers` dealers' Douyin
//! accounts within `--seconds` (spread evenly over the dealers); each webhook is
//! posted to the real webhook-intake at its scheduled time, and `--consumers`
//! concurrent router invocations (the real lead-router's `handle_batch`, as the
//! SQS trigger would call it) drain the lead queue: receive up to 10, invoke,
//! delete all but the reported `batchItemFailures`.
//!
//! Every DynamoDB request of both functions goes through the contention proxy
//! (`LOCAL_DDB_CONTENTION_URL`, hold window `LOCAL_DDB_CONFLICT_MS`), so two
//! transactions on one item conflict as on DynamoDB.
//!
//! Prints and writes (`--out FILE`, JSON): leads/s absorbed, conflicts the
//! proxy produced, batch item failures (messages returned to the queue), DLQ
//! depth, p50/p99 webhook-to-assignment latency (post of the webhook to the end
//! of the router invocation that handled it), and what the leads table holds
//! afterwards checked against what was sent: lost, doubled, assigned, pooled,
//! over cap. Needs a stack of its own (`infra/bench.sh` starts one): it counts
//! every lead in the table.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::types::QueueAttributeName as QA;
use lambda_http::{Body, RequestExt};
use lead_router::Router;
use leads_aws::{AwsClients, Settings};
use leads_benches::percentile;
use leads_domain::directory_file::{Directory, DirectoryFile};
use leads_domain::intake::douyin;
use leads_domain::intake::secrets::IntakeSecrets;
use leads_domain::intake::IntakeMessage;
use leads_domain::lead::LeadRecord;
use leads_domain::seal::ContactSeal;
use serde_json::json;
use webhook_intake::Intake;

type Error = Box<dyn std::error::Error + Send + Sync>;

const CONSULTANTS_PER_DEALER: usize = 10;
/// Douyin retries a delivery that failed or was not answered 3 times.
const PLATFORM_RETRIES: usize = 3;
const DOUYIN_APP: (&str, &str) = ("awx-burst", "burst-douyin-secret");

struct Args {
    leads: usize,
    seconds: f64,
    dealers: usize,
    consumers: usize,
    out: Option<String>,
}

fn args() -> Result<Args, Error> {
    let mut a = Args {
        leads: 2_000,
        seconds: 20.0,
        dealers: 1,
        consumers: 32,
        out: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--leads" => a.leads = value.parse()?,
            "--seconds" => a.seconds = value.parse()?,
            "--dealers" => a.dealers = value.parse()?,
            "--consumers" => a.consumers = value.parse()?,
            "--out" => a.out = Some(value),
            _ => return Err(format!("unknown flag {flag}").into()),
        }
    }
    Ok(a)
}

/// One brand, `dealers` saturation dealers in 北京 (every customer is local),
/// each with ten consultants whose caps hold the whole burst between them.
fn directory(run: &str, dealers: usize, leads: usize) -> Result<Directory, Error> {
    let brand = format!("{run}-brand");
    let per_dealer = leads.div_ceil(dealers);
    let cap = (per_dealer * 6 / 5).div_ceil(CONSULTANTS_PER_DEALER);
    let mut dealer_rows = Vec::new();
    let mut staff = Vec::new();
    let mut accounts = Vec::new();
    for d in 0..dealers {
        let dealer = format!("{run}-d{d:02}");
        dealer_rows.push(json!({
            "dealer_id": dealer, "brand_id": brand, "name": format!("直播店{d}"),
            "city": "北京", "served_cities": [], "strategy": "saturation",
            "daily_remote_capacity": 0
        }));
        staff.push(
            json!({"staff_id": format!("{dealer}-mgr"), "dealer_id": dealer,
            "name": "店总", "role": "manager", "on_duty": true, "cap": 0}),
        );
        for s in 0..CONSULTANTS_PER_DEALER {
            staff.push(
                json!({"staff_id": format!("{dealer}-s{s}"), "dealer_id": dealer,
                "name": format!("顾问{s}"), "role": "sales", "on_duty": true, "cap": cap}),
            );
        }
        accounts.push(
            json!({"platform": "douyin", "account_id": format!("dy-{dealer}"),
            "brand_id": brand, "owner": "dealer", "dealer_id": dealer}),
        );
    }
    let file: DirectoryFile = serde_json::from_value(json!({
        "brands": [{"brand_id": brand, "name": "团购品牌", "protection_days": 30,
            "exclusivity_days": 15, "first_contact_minutes": 5, "reassign_on_sla_breach": false}],
        "dealers": dealer_rows, "staff": staff, "accounts": accounts
    }))?;
    file.validate()
        .map_err(|errors| format!("the burst directory is invalid: {errors:?}").into())
}

/// The ids a delivery may be known by downstream (the signed `log_id`, the
/// `Msg-Id` header).
fn delivery_ids(run: &str, i: usize) -> [String; 2] {
    [format!("{run}-log-{i}"), format!("{run}-msg-{i}")]
}

/// The router's source event id for a delivery key (`douyin:<key>`).
fn source_event_ids(run: &str, i: usize) -> [String; 2] {
    delivery_ids(run, i).map(|id| format!("douyin:{id}"))
}

/// The `i`-th customer's webhook: a live-stream lead form with a fresh phone.
fn webhook(run: &str, i: usize, dealers: usize) -> lambda_http::Request {
    let dealer = format!("{run}-d{:02}", i % dealers);
    let [log_id, msg_id] = delivery_ids(run, i);
    let phone = format!("1390{:07}", i);
    let body = json!({
        "event": "website_contact", "client_key": DOUYIN_APP.0,
        "from_user_id": format!("visitor-{i}"), "to_user_id": format!("dy-{dealer}"),
        "content": {"telephone": phone, "name": "团购客户", "city_name": "北京",
            "series": "星澜 S7", "scene": "live"},
        "log_id": log_id
    })
    .to_string();
    let request = lambda_http::http::Request::builder()
        .method("POST")
        .uri("/webhooks/douyin")
        .header(
            douyin::SIGNATURE_HEADER,
            douyin::signature(DOUYIN_APP.1, body.as_bytes()),
        )
        .header(douyin::MSG_ID_HEADER, msg_id)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .expect("valid request")
        .with_query_string_parameters(HashMap::<String, String>::new());
    request
}

async fn queue_with_dlq(sqs: &aws_sdk_sqs::Client, run: &str) -> Result<(String, String), Error> {
    let dlq = sqs
        .create_queue()
        .queue_name(format!("{run}-dlq"))
        .send()
        .await?
        .queue_url
        .ok_or("no dlq url")?;
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq)
        .attribute_names(QA::QueueArn)
        .send()
        .await?
        .attributes
        .and_then(|mut a| a.remove(&QA::QueueArn))
        .ok_or("no dlq arn")?;
    let queue = sqs
        .create_queue()
        .queue_name(format!("{run}-leads"))
        // Short, so a returned message comes back within the run.
        .attributes(QA::VisibilityTimeout, "5")
        .attributes(
            QA::RedrivePolicy,
            json!({"deadLetterTargetArn": arn, "maxReceiveCount": 5}).to_string(),
        )
        .send()
        .await?
        .queue_url
        .ok_or("no queue url")?;
    Ok((queue, dlq))
}

async fn depth(sqs: &aws_sdk_sqs::Client, queue: &str) -> Result<u64, Error> {
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(queue)
        .attribute_names(QA::ApproximateNumberOfMessages)
        .attribute_names(QA::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await?
        .attributes
        .unwrap_or_default();
    let n = |k: &QA| {
        attrs
            .get(k)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok(n(&QA::ApproximateNumberOfMessages) + n(&QA::ApproximateNumberOfMessagesNotVisible))
}

async fn contention_stats(url: &str) -> Result<serde_json::Value, Error> {
    Ok(reqwest::get(format!("{url}/contention-stats"))
        .await?
        .json()
        .await?)
}

/// Every lead item in the leads table (the bench's stack holds only this run).
async fn leads_in_table(clients: &AwsClients, table: &str) -> Result<Vec<LeadRecord>, Error> {
    let mut leads = Vec::new();
    let mut pages = clients
        .dynamodb
        .scan()
        .table_name(table)
        .filter_expression("sk = :lead")
        .expression_attribute_values(
            ":lead",
            aws_sdk_dynamodb::types::AttributeValue::S("LEAD".into()),
        )
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        for item in page?.items.unwrap_or_default() {
            leads.push(serde_dynamo::from_item(item)?);
        }
    }
    Ok(leads)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let a = args()?;
    // The functions' warnings and errors to stderr (BURST_LOG to change).
    std::env::set_var(
        "RUST_LOG",
        std::env::var("BURST_LOG").unwrap_or_else(|_| "warn".into()),
    );
    leads_aws::telemetry::init();
    let contention_url = std::env::var("LOCAL_DDB_CONTENTION_URL").map_err(|_| {
        "LOCAL_DDB_CONTENTION_URL is not set: run under the local stack (infra/bench.sh)"
    })?;
    let hold_ms = std::env::var("LOCAL_DDB_CONFLICT_MS").unwrap_or_default();
    let run = format!(
        "burst{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis()
            % 100_000_000
    );
    let plain = AwsClients::from_env().await;
    let contended = AwsClients::with_dynamodb_endpoint(&contention_url).await;
    let mut settings = Settings::from_env()?;
    let (lead_queue, dlq) = queue_with_dlq(&plain.sqs, &run).await?;
    settings.queues.lead = lead_queue.clone();
    for (name, queue) in [
        ("notify", &mut settings.queues.notification),
        ("crm", &mut settings.queues.crm),
    ] {
        *queue = plain
            .sqs
            .create_queue()
            .queue_name(format!("{run}-{name}"))
            .send()
            .await?
            .queue_url
            .ok_or("no queue url")?;
    }
    let directory = directory(&run, a.dealers, a.leads)?;
    use leads_aws::store::DirectoryStore;
    leads_aws::store::DynamoDirectory::new(plain.dynamodb.clone(), &settings.tables.directory)
        .save(&directory)
        .await?;
    let mut secrets = IntakeSecrets {
        phone_hash_key: format!("burst-phone-key-{run}"),
        ..Default::default()
    };
    secrets
        .douyin
        .insert(DOUYIN_APP.0.into(), DOUYIN_APP.1.into());
    let seal = ContactSeal::from_phone_hash_key(secrets.phone_hash_key.as_bytes());
    let intake = Arc::new(Intake::new(&settings, &contended, secrets));
    let router = Arc::new(Router::new(&settings, &contended).with_contact_seal(seal));
    let stats_before = contention_stats(&contention_url).await?;

    // The burst: each webhook posted at its scheduled time (in flight together
    // when the intake is slower than the schedule).
    let posted_at: Arc<Mutex<HashMap<String, Instant>>> = Default::default();
    let accepted = Arc::new(AtomicUsize::new(0));
    let rejected = Arc::new(AtomicUsize::new(0));
    let posting_done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let interval = Duration::from_secs_f64(a.seconds / a.leads as f64);
    let producer = {
        let (intake, posted_at, accepted, rejected, run) = (
            intake.clone(),
            posted_at.clone(),
            accepted.clone(),
            rejected.clone(),
            run.clone(),
        );
        let (leads, dealers) = (a.leads, a.dealers);
        tokio::spawn(async move {
            let mut tasks = Vec::with_capacity(leads);
            for i in 0..leads {
                tokio::time::sleep_until((started + interval * i as u32).into()).await;
                let (intake, posted_at, accepted, rejected, run) = (
                    intake.clone(),
                    posted_at.clone(),
                    accepted.clone(),
                    rejected.clone(),
                    run.clone(),
                );
                tasks.push(tokio::spawn(async move {
                    let now = Instant::now();
                    for id in source_event_ids(&run, i) {
                        posted_at.lock().unwrap().insert(id, now);
                    }
                    // As Douyin does: a 5xx (or no answer) is retried, 3 times.
                    for attempt in 0..=PLATFORM_RETRIES {
                        let status = intake.handle(webhook(&run, i, dealers)).await.status();
                        if status.is_success() {
                            accepted.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                        eprintln!("webhook {i} answered {status} (attempt {})", attempt + 1);
                        if !status.is_server_error() && status.as_u16() != 409 {
                            break;
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    rejected.fetch_add(1, Ordering::Relaxed);
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
        })
    };

    // The SQS trigger: concurrent router invocations.
    let assigned_at: Arc<Mutex<HashMap<String, Instant>>> = Default::default();
    let returned = Arc::new(AtomicU64::new(0));
    let invocations = Arc::new(AtomicU64::new(0));
    let handled = Arc::new(AtomicUsize::new(0));
    let mut consumers = Vec::new();
    for _ in 0..a.consumers {
        let (router, sqs, queue) = (router.clone(), plain.sqs.clone(), lead_queue.clone());
        let (assigned_at, returned, invocations, handled, done) = (
            assigned_at.clone(),
            returned.clone(),
            invocations.clone(),
            handled.clone(),
            posting_done.clone(),
        );
        let accepted = accepted.clone();
        consumers.push(tokio::spawn(async move {
            let give_up = Instant::now() + Duration::from_secs(900);
            loop {
                let finished = done.load(Ordering::Relaxed)
                    && handled.load(Ordering::Relaxed) >= accepted.load(Ordering::Relaxed);
                if finished || Instant::now() > give_up {
                    return;
                }
                let out = sqs
                    .receive_message()
                    .queue_url(&queue)
                    .max_number_of_messages(10)
                    .wait_time_seconds(1)
                    .send()
                    .await;
                let messages = match out {
                    Ok(o) => o.messages.unwrap_or_default(),
                    Err(e) => {
                        eprintln!("receive: {e}");
                        continue;
                    }
                };
                if messages.is_empty() {
                    continue;
                }
                let records: Vec<SqsMessage> = messages
                    .iter()
                    .map(|m| {
                        let mut r = SqsMessage::default();
                        r.message_id = m.message_id.clone();
                        r.receipt_handle = m.receipt_handle.clone();
                        r.body = m.body.clone();
                        r
                    })
                    .collect();
                let mut event = SqsEvent::default();
                event.records = records.clone();
                invocations.fetch_add(1, Ordering::Relaxed);
                let response = router.handle_batch(event).await;
                let now = Instant::now();
                let failed: HashSet<String> = response
                    .batch_item_failures
                    .iter()
                    .map(|f| f.item_identifier.clone())
                    .collect();
                returned.fetch_add(failed.len() as u64, Ordering::Relaxed);
                for m in &records {
                    if failed.contains(m.message_id.as_deref().unwrap_or_default()) {
                        continue;
                    }
                    if let Some(IntakeMessage::Lead(lead)) = m
                        .body
                        .as_deref()
                        .and_then(|b| serde_json::from_str::<IntakeMessage>(b).ok())
                    {
                        let mut seen = assigned_at.lock().unwrap();
                        if seen.insert(lead.source_event_id.clone(), now).is_none() {
                            handled.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    let _ = sqs
                        .delete_message()
                        .queue_url(&queue)
                        .receipt_handle(m.receipt_handle.clone().unwrap_or_default())
                        .send()
                        .await;
                }
            }
        }));
    }
    producer.await?;
    posting_done.store(true, Ordering::Relaxed);
    let posting_secs = started.elapsed().as_secs_f64();
    for c in consumers {
        c.await?;
    }
    let drained_secs = started.elapsed().as_secs_f64();
    let stats_after = contention_stats(&contention_url).await?;

    // What the table holds, against what was sent.
    let leads = leads_in_table(&plain, &settings.tables.leads).await?;
    let mut per_customer: BTreeMap<String, usize> = BTreeMap::new();
    let mut per_consultant: BTreeMap<String, usize> = BTreeMap::new();
    let (mut assigned, mut pooled) = (0, 0);
    for lead in &leads {
        *per_customer
            .entry(format!("{:?}", lead.customer))
            .or_default() += 1;
        match &lead.assignee {
            Some(who) => {
                assigned += 1;
                *per_consultant.entry(who.clone()).or_default() += 1;
            }
            None => pooled += 1,
        }
    }
    let cap = directory
        .staff
        .iter()
        .map(|s| s.cap)
        .max()
        .unwrap_or_default() as usize;
    let over_cap = per_consultant.values().filter(|n| **n > cap).count();
    let doubled = per_customer.values().filter(|n| **n > 1).count();
    let lost = a.leads.saturating_sub(per_customer.len());
    let dlq_depth = depth(&plain.sqs, &dlq).await?;

    let posted = posted_at.lock().unwrap().clone();
    let mut latencies: Vec<f64> = assigned_at
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(id, done)| {
            posted
                .get(id)
                .map(|p| done.duration_since(*p).as_secs_f64() * 1e3)
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    let conflicts =
        |k: &str| stats_after[k].as_u64().unwrap_or(0) - stats_before[k].as_u64().unwrap_or(0);
    let report = json!({
        "leads_sent": a.leads, "dealers": a.dealers, "window_s": a.seconds,
        "router_consumers": a.consumers, "hold_ms": hold_ms,
        "accepted": accepted.load(Ordering::Relaxed), "rejected": rejected.load(Ordering::Relaxed),
        "posting_s": posting_secs, "drained_s": drained_secs,
        "leads_per_s_absorbed": per_customer.len() as f64 / drained_secs,
        "router_invocations": invocations.load(Ordering::Relaxed),
        "transaction_conflicts": conflicts("transaction_conflicts"),
        "write_conflicts": conflicts("write_conflicts"),
        "engine_lock_retries": conflicts("engine_lock_retries"),
        "messages_returned_to_queue": returned.load(Ordering::Relaxed),
        "dlq": dlq_depth,
        "leads_in_table": leads.len(), "lost": lost, "doubled": doubled,
        "assigned": assigned, "pooled": pooled, "over_cap": over_cap,
        "latency_ms_p50": percentile(&latencies, 50.0),
        "latency_ms_p99": percentile(&latencies, 99.0),
        "latency_samples": latencies.len(),
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    if let Some(out) = a.out {
        std::fs::write(out, serde_json::to_string_pretty(&report)?)?;
    }
    if lost > 0 || doubled > 0 || over_cap > 0 || dlq_depth > 0 {
        return Err("the burst lost, doubled, overfilled or dead-lettered leads".into());
    }
    Ok(())
}
