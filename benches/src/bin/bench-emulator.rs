//! `bench-emulator`: what the functions ask of AWS, measured against the
//! emulator, and what it would cost.
//!
//! Runs the real handlers in-process (the same library code the Lambda
//! binaries run) with SDK clients whose every request is counted and timed by
//! `leads_aws::request_counter`, and a local HTTP receiver standing in for
//! WeCom, the SMS gateway and the brand CRM:
//!
//! 1. **mix**: a generated day of signed webhooks for the sample directory
//!    (`lead_demo::dataset`: cross-channel customers, remote and unroutable
//!    customers, redeliveries, forged/stale/malformed calls), one at a time
//!    through webhook-intake, each lead-queue message through lead-router,
//!    each notification job through the notifier. Every piece of work is
//!    classified (accepted webhook, new local lead, merge, notification job, ...)
//!    with its AWS requests per operation, HTTP requests, handler time, the
//!    emulator round trips inside it and the DynamoDB request units estimated
//!    from the real bodies (`leads_benches::capacity`).
//! 2. **end to end**: fresh webhooks, each carried webhook → intake → lead
//!    queue → router → notification queue → notifier → the consultant's WeCom
//!    message, playing the SQS trigger by hand (receive, invoke, delete);
//!    latency p50/p99 next to the sum of the emulator round trips in the same
//!    iteration.
//! 3. **cost**: AWS cost per 1 M leads from the mix's totals (prices below).
//!
//! Needs the local stack's environment (`eval "$(infra/local/stack.sh up)"`);
//! `infra/bench.sh` runs it on an emulator of its own. Prints a report and
//! writes JSON (`--out FILE`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use chrono::Utc;
use lambda_http::RequestExt;
use lead_demo::dataset::{self, Expect, Webhook};
use lead_router::Router;
use leads_aws::request_counter::{RequestCounter, RequestRecord};
use leads_aws::store::{DirectoryStore, DynamoDirectory};
use leads_aws::{AwsClients, Settings};
use leads_benches::capacity::{self, Units};
use leads_benches::{bench_secrets, percentile, sample_directory};
use leads_domain::dedup::DedupOutcome;
use leads_domain::delivery::Backoff;
use leads_domain::routing::Route;
use leads_domain::seal::ContactSeal;
use notifier::config::{NotifierConfig, Secret, SmsConfig, WebhookConfig, WecomConfig};
use notifier::Notifier;
use serde_json::json;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Memory of the intake, router and notifier in template.yaml (`MemorySize`).
const MEMORY_GB: f64 = 256.0 / 1024.0;

/// us-east-1 list prices (x86_64), USD, as of 2026-11 (aws.amazon.com/lambda,
/// /dynamodb, /sqs, /api-gateway pricing pages; DynamoDB on-demand after the
/// November 2024 reduction). Free tiers are ignored.
mod price {
    pub const LAMBDA_PER_M_REQUESTS: f64 = 0.20;
    pub const LAMBDA_PER_GB_S: f64 = 0.000_016_666_7;
    pub const DYNAMODB_PER_M_WRU: f64 = 0.625;
    pub const DYNAMODB_PER_M_RRU: f64 = 0.125;
    pub const SQS_PER_M_REQUESTS: f64 = 0.40;
    pub const HTTP_API_PER_M_REQUESTS: f64 = 1.00;
}

// ------------------------------------------------------------------ receiver

/// Stands in for WeCom (gettoken, message/send), the SMS gateway and the CRM:
/// answers success and records when each request arrived.
#[derive(Clone, Default)]
struct Rx {
    seen: Arc<Mutex<Vec<(String, Instant)>>>,
}

impl Rx {
    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// Arrival of the first message to a person (WeCom or SMS) after `from`.
    fn first_message_after(&self, from: usize) -> Option<Instant> {
        self.seen.lock().unwrap()[from..]
            .iter()
            .find(|(path, _)| path.ends_with("/message/send") || path.ends_with("/sms"))
            .map(|(_, at)| *at)
    }
}

async fn record(
    axum::extract::State(rx): axum::extract::State<Rx>,
    uri: axum::http::Uri,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let path = uri.path().to_string();
    rx.seen.lock().unwrap().push((path.clone(), Instant::now()));
    let body = match path.as_str() {
        "/cgi-bin/gettoken" => {
            json!({"errcode": 0, "errmsg": "ok", "access_token": "tok", "expires_in": 7200})
        }
        "/cgi-bin/message/send" => {
            json!({"errcode": 0, "errmsg": "ok", "invaliduser": "", "msgid": "m"})
        }
        _ => json!({"code": 0}),
    };
    ([("content-type", "application/json")], body.to_string()).into_response()
}

async fn start_receiver() -> Result<(String, Rx), Error> {
    let rx = Rx::default();
    let app = axum::Router::new().fallback(record).with_state(rx.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((base, rx))
}

fn notifier_config(base: &str) -> NotifierConfig {
    NotifierConfig {
        lead_link_base: "https://leads.example".into(),
        wecom: Some(WecomConfig {
            base_url: base.to_string(),
            corp_id: "corp-bench".into(),
            corp_secret: Secret::new("corp-secret"),
            agent_id: 1_000_002,
            per_member_per_minute: 1_000_000,
        }),
        sms: Some(SmsConfig {
            url: format!("{base}/sms"),
            api_key: Secret::new("sms-key"),
        }),
        webhook: Some(WebhookConfig {
            url: format!("{base}/crm"),
            secret: Secret::new("crm-secret"),
        }),
        brand_crms: Default::default(),
        request_timeout: Duration::from_secs(5),
        backoff: Backoff::default(),
        delivery_lease: Duration::from_secs(120),
    }
}

// ------------------------------------------------------------------ accounting

/// Sums for one kind of work.
#[derive(Default)]
struct Work {
    n: u64,
    requests: BTreeMap<String, u64>,
    http: u64,
    handler: Vec<f64>,
    emulator_ms: f64,
    units: Units,
}

impl Work {
    fn add(&mut self, records: &[RequestRecord], handler: Duration, http: usize) {
        self.n += 1;
        for r in records {
            *self.requests.entry(short(&r.operation)).or_default() += 1;
        }
        self.http += http as u64;
        self.handler.push(handler.as_secs_f64() * 1e3);
        self.emulator_ms += records
            .iter()
            .map(|r| r.elapsed.as_secs_f64() * 1e3)
            .sum::<f64>();
        self.units += capacity::units(records);
    }

    fn aws_requests(&self) -> u64 {
        self.requests.values().sum()
    }

    fn per(&self, x: f64) -> f64 {
        x / self.n.max(1) as f64
    }

    fn json(&self) -> serde_json::Value {
        let mut handler = self.handler.clone();
        handler.sort_by(f64::total_cmp);
        let per_op: BTreeMap<&String, f64> = self
            .requests
            .iter()
            .map(|(k, v)| (k, round2(self.per(*v as f64))))
            .collect();
        json!({
            "n": self.n,
            "aws_requests": round2(self.per(self.aws_requests() as f64)),
            "by_operation": per_op,
            "http_requests": round2(self.per(self.http as f64)),
            "handler_ms_mean": round2(self.per(handler.iter().sum())),
            "handler_ms_p50": round2(percentile(&handler, 50.0)),
            "emulator_ms_mean": round2(self.per(self.emulator_ms)),
            "rru": round2(self.per(self.units.read)),
            "wru": round2(self.per(self.units.write)),
        })
    }
}

/// "DynamoDB.GetItem" -> "GetItem" (SQS operations keep their names too).
fn short(operation: &str) -> String {
    operation
        .rsplit_once('.')
        .map_or(operation, |(_, op)| op)
        .to_string()
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

// ------------------------------------------------------------------ plumbing

fn http_request(hook: &Webhook) -> lambda_http::Request {
    let mut builder = lambda_http::http::Request::builder()
        .method("POST")
        .uri(format!("/webhooks/{}", hook.source));
    for (k, v) in &hook.headers {
        builder = builder.header(k, v);
    }
    let query: HashMap<String, String> = hook.query.iter().cloned().collect();
    builder
        .body(lambda_http::Body::from(hook.body.clone()))
        .expect("valid request")
        .with_query_string_parameters(query)
}

/// One receive on `queue` as the event source mapping would do it.
async fn receive(clients: &AwsClients, queue: &str, max: i32) -> Result<Vec<SqsMessage>, Error> {
    let out = clients
        .sqs
        .receive_message()
        .queue_url(queue)
        .max_number_of_messages(max)
        .wait_time_seconds(0)
        .send()
        .await?;
    Ok(out
        .messages
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            let mut record = SqsMessage::default();
            record.message_id = m.message_id;
            record.receipt_handle = m.receipt_handle;
            record.body = m.body;
            record.event_source = Some("aws:sqs".into());
            record
        })
        .collect())
}

async fn delete(clients: &AwsClients, queue: &str, message: &SqsMessage) -> Result<(), Error> {
    if let Some(handle) = &message.receipt_handle {
        clients
            .sqs
            .delete_message()
            .queue_url(queue)
            .receipt_handle(handle)
            .send()
            .await?;
    }
    Ok(())
}

fn router_kind(processed: &lead_router::Processed) -> &'static str {
    match (processed.outcome, &processed.route) {
        (Some(DedupOutcome::Created), Some(Route::Local { .. })) => "new lead, local",
        (Some(DedupOutcome::Created), Some(Route::Remote { .. })) => "new lead, remote",
        (Some(DedupOutcome::Created), _) => "new lead, unroutable (to CRM)",
        (Some(DedupOutcome::Merged), _) => "merge",
        (Some(DedupOutcome::Duplicate), _) => "duplicate",
        (None, _) => "content stats / unknown account",
    }
}

fn notice_kind(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(str::to_string))
        .map_or_else(|| "notification".into(), |k| format!("notification: {k}"))
}

struct Bench {
    settings: Settings,
    intake: webhook_intake::Intake,
    router: Router,
    notifier: Notifier,
    counted: RequestCounter,
    /// The SQS trigger's own requests (receive, delete), counted apart.
    esm: AwsClients,
    esm_counter: RequestCounter,
    rx: Rx,
}

fn deadline() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(20)
}

// ------------------------------------------------------------------ phases

async fn mix(b: &Bench, customers: usize, seed: u64) -> Result<serde_json::Value, Error> {
    let directory = sample_directory();
    let data = dataset::generate(&directory, &bench_secrets(), customers, seed, Utc::now());
    let mut work: BTreeMap<String, Work> = BTreeMap::new();
    let mut totals = Work::default();
    let (mut invocations, mut webhooks, mut consumed) = (0u64, 0u64, 0u64);
    let mut billed_ms = 0.0;
    let mut billed_ms_10ms = 0.0;
    let mut account = |work: &mut BTreeMap<String, Work>,
                       kind: String,
                       records: Vec<RequestRecord>,
                       handler: Duration,
                       http: usize| {
        let ms = handler.as_secs_f64() * 1e3;
        let emulator: f64 = records.iter().map(|r| r.elapsed.as_secs_f64() * 1e3).sum();
        billed_ms += ms.ceil();
        // The same work if every AWS request took 10 ms (a pessimistic in-region figure).
        billed_ms_10ms += ((ms - emulator).max(0.0) + 10.0 * records.len() as f64).ceil();
        invocations += 1;
        totals.add(&records, handler, http);
        work.entry(kind).or_default().add(&records, handler, http);
    };
    let started = Instant::now();
    for hook in &data.webhooks {
        b.counted.reset();
        let t = Instant::now();
        let status = b.intake.handle(http_request(hook)).await.status().as_u16();
        let handler = t.elapsed();
        webhooks += 1;
        let records = b.counted.take_records();
        let enqueued = records.iter().any(|r| r.operation.starts_with("SQS.Send"));
        let kind = match status {
            200 if enqueued => "webhook accepted (enqueued)".to_string(),
            200 => "webhook acknowledged, not enqueued (redelivery)".into(),
            s => format!("webhook rejected ({s})"),
        };
        account(&mut work, kind, records, handler, 0);

        // The lead queue's trigger, one message per invocation.
        for message in receive(&b.esm, &b.settings.queues.lead, 10).await? {
            b.counted.reset();
            let t = Instant::now();
            let processed = b.router.handle_message(&message).await?;
            let handler = t.elapsed();
            account(
                &mut work,
                router_kind(&processed).into(),
                b.counted.take_records(),
                handler,
                0,
            );
            delete(&b.esm, &b.settings.queues.lead, &message).await?;
            consumed += 1;
        }
        for message in receive(&b.esm, &b.settings.queues.notification, 10).await? {
            b.counted.reset();
            let http_before = b.rx.count();
            let t = Instant::now();
            let report = b.notifier.handle_message(&message, deadline()).await?;
            let handler = t.elapsed();
            if report.needs_retry() {
                return Err(format!("notification job {} needs a retry", report.job_id).into());
            }
            account(
                &mut work,
                notice_kind(message.body.as_deref().unwrap_or_default()),
                b.counted.take_records(),
                handler,
                b.rx.count() - http_before,
            );
            delete(&b.esm, &b.settings.queues.notification, &message).await?;
            consumed += 1;
        }
    }
    let elapsed = started.elapsed();
    let leads = work
        .iter()
        .filter(|(k, _)| k.starts_with("new lead"))
        .map(|(_, w)| w.n)
        .sum::<u64>();
    let sqs_sent: u64 = totals
        .requests
        .iter()
        .filter(|(op, _)| op.starts_with("Send"))
        .map(|(_, n)| n)
        .sum();
    let per_lead = |x: f64| x / leads.max(1) as f64;
    // The event source mapping: one ReceiveMessage and one DeleteMessageBatch
    // per consumed message (batches of one: low traffic, the upper bound).
    let sqs_requests = sqs_sent as f64 + 2.0 * consumed as f64;
    let gb_s = billed_ms / 1e3 * MEMORY_GB;
    let gb_s_10ms = billed_ms_10ms / 1e3 * MEMORY_GB;
    let m = 1e6;
    let cost = |gb_s: f64| {
        let lines = [
            (
                "Lambda requests",
                per_lead(invocations as f64) * m,
                per_lead(invocations as f64) * price::LAMBDA_PER_M_REQUESTS,
            ),
            (
                "Lambda GB-s",
                per_lead(gb_s) * m,
                per_lead(gb_s) * m * price::LAMBDA_PER_GB_S,
            ),
            (
                "DynamoDB write request units",
                per_lead(totals.units.write) * m,
                per_lead(totals.units.write) * price::DYNAMODB_PER_M_WRU,
            ),
            (
                "DynamoDB read request units",
                per_lead(totals.units.read) * m,
                per_lead(totals.units.read) * price::DYNAMODB_PER_M_RRU,
            ),
            (
                "SQS requests",
                per_lead(sqs_requests) * m,
                per_lead(sqs_requests) * price::SQS_PER_M_REQUESTS,
            ),
            (
                "HTTP API requests",
                per_lead(webhooks as f64) * m,
                per_lead(webhooks as f64) * price::HTTP_API_PER_M_REQUESTS,
            ),
        ];
        let total: f64 = lines.iter().map(|l| l.2).sum();
        json!({
            "lines": lines.iter().map(|(what, qty, usd)| json!({"item": what, "quantity": qty.round(), "usd": round2(*usd)})).collect::<Vec<_>>(),
            "total_usd": round2(total),
        })
    };
    Ok(json!({
        "customers": customers,
        "seed": seed,
        "webhooks": webhooks,
        "leads_created": leads,
        "invocations": invocations,
        "messages_consumed": consumed,
        "elapsed_s": round2(elapsed.as_secs_f64()),
        "work": work.iter().map(|(k, w)| (k.clone(), w.json())).collect::<BTreeMap<_, _>>(),
        "per_lead": {
            "aws_requests": round2(per_lead(totals.aws_requests() as f64)),
            "rru": round2(per_lead(totals.units.read)),
            "wru": round2(per_lead(totals.units.write)),
            "sqs_requests": round2(per_lead(sqs_requests)),
            "lambda_invocations": round2(per_lead(invocations as f64)),
            "lambda_ms": round2(per_lead(billed_ms)),
            "lambda_ms_if_aws_10ms": round2(per_lead(billed_ms_10ms)),
        },
        "cost_per_million_leads": {
            "region": "us-east-1",
            "memory_mb": MEMORY_GB * 1024.0,
            "prices_usd": {
                "lambda_per_million_requests": price::LAMBDA_PER_M_REQUESTS,
                "lambda_per_gb_s": price::LAMBDA_PER_GB_S,
                "dynamodb_per_million_wru": price::DYNAMODB_PER_M_WRU,
                "dynamodb_per_million_rru": price::DYNAMODB_PER_M_RRU,
                "sqs_per_million_requests": price::SQS_PER_M_REQUESTS,
                "http_api_per_million_requests": price::HTTP_API_PER_M_REQUESTS,
            },
            "measured_durations": cost(gb_s),
            "if_each_aws_request_took_10ms": cost(gb_s_10ms),
        },
    }))
}

async fn end_to_end(b: &Bench, iterations: usize, seed: u64) -> Result<serde_json::Value, Error> {
    let directory = sample_directory();
    let data = dataset::generate(
        &directory,
        &bench_secrets(),
        iterations * 2,
        seed,
        Utc::now(),
    );
    let mut e2e = Vec::new();
    let mut emulator = Vec::new();
    let mut round_trips = Vec::new();
    let mut answer = Vec::new();
    let mut share = Vec::new();
    let mut skipped = 0;
    for hook in data
        .webhooks
        .iter()
        .filter(|h| h.expect == Expect::Accepted && h.source.as_str() != "douyin_stats")
    {
        if e2e.len() == iterations {
            break;
        }
        b.counted.reset();
        b.esm_counter.reset();
        let rx_mark = b.rx.count();
        let t0 = Instant::now();
        let status = b.intake.handle(http_request(hook)).await.status().as_u16();
        let answered = t0.elapsed();
        if status != 200 {
            return Err(format!("end-to-end webhook answered {status}").into());
        }
        let leads = receive(&b.esm, &b.settings.queues.lead, 10).await?;
        let mut event = SqsEvent::default();
        event.records = leads.clone();
        let failures = b.router.handle_batch(event).await.batch_item_failures;
        if !failures.is_empty() {
            return Err("the router failed a message".into());
        }
        for m in &leads {
            delete(&b.esm, &b.settings.queues.lead, m).await?;
        }
        let jobs = receive(&b.esm, &b.settings.queues.notification, 10).await?;
        if jobs.is_empty() {
            skipped += 1; // unroutable (CRM queue) or no one to tell
            b.counted.reset();
            continue;
        }
        let mut event = SqsEvent::default();
        event.records = jobs.clone();
        let failures = b
            .notifier
            .handle_batch(event, deadline())
            .await
            .batch_item_failures;
        if !failures.is_empty() {
            return Err("the notifier failed a job".into());
        }
        let Some(delivered) = b.rx.first_message_after(rx_mark) else {
            skipped += 1;
            continue;
        };
        let records: Vec<RequestRecord> = b
            .counted
            .take_records()
            .into_iter()
            .chain(b.esm_counter.take_records())
            .collect();
        for m in &jobs {
            delete(&b.esm, &b.settings.queues.notification, m).await?;
        }
        // Only the round trips between the webhook and the message count.
        let records: Vec<&RequestRecord> = records
            .iter()
            .filter(|r| r.started >= t0 && r.started + r.elapsed <= delivered)
            .collect();
        let total_ms = (delivered - t0).as_secs_f64() * 1e3;
        let emulator_ms: f64 = records.iter().map(|r| r.elapsed.as_secs_f64() * 1e3).sum();
        e2e.push(total_ms);
        emulator.push(emulator_ms);
        round_trips.push(records.len() as f64);
        answer.push(answered.as_secs_f64() * 1e3);
        share.push(emulator_ms / total_ms);
    }
    for v in [
        &mut e2e,
        &mut emulator,
        &mut round_trips,
        &mut answer,
        &mut share,
    ] {
        v.sort_by(f64::total_cmp);
    }
    let p = |v: &[f64], q: f64| round2(percentile(v, q));
    Ok(json!({
        "iterations": e2e.len(),
        "skipped_without_notification": skipped,
        "latency_ms": {"p50": p(&e2e, 50.0), "p99": p(&e2e, 99.0)},
        "emulator_round_trips_ms": {"p50": p(&emulator, 50.0), "p99": p(&emulator, 99.0)},
        "round_trips": {"p50": p(&round_trips, 50.0), "p99": p(&round_trips, 99.0)},
        "emulator_share": {"p50": p(&share, 50.0), "p99": p(&share, 99.0)},
        "webhook_answer_ms": {"p50": p(&answer, 50.0), "p99": p(&answer, 99.0)},
    }))
}

// ------------------------------------------------------------------ main

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut out = None;
    let mut customers = 240;
    let mut iterations = 200;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--out" => out = args.next(),
            "--customers" => customers = args.next().ok_or("--customers N")?.parse()?,
            "--e2e" => iterations = args.next().ok_or("--e2e N")?.parse()?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let settings = Settings::from_env()?;
    if !std::env::var("AWS_ENDPOINT_URL").is_ok_and(|e| e.starts_with("http://127.0.0.1")) {
        return Err("AWS_ENDPOINT_URL must point at the local emulator (infra/bench.sh)".into());
    }
    let plain = AwsClients::from_env().await;
    DynamoDirectory::new(plain.dynamodb.clone(), &settings.tables.directory)
        .save(&sample_directory())
        .await?;
    let counted = RequestCounter::recording();
    let clients = AwsClients::counted(&counted).await;
    let esm_counter = RequestCounter::recording();
    let esm = AwsClients::counted(&esm_counter).await;
    let (base, rx) = start_receiver().await?;
    let bench = Bench {
        intake: webhook_intake::Intake::new(&settings, &clients, bench_secrets()),
        router: Router::new(&settings, &clients).with_contact_seal(
            ContactSeal::from_phone_hash_key(bench_secrets().phone_hash_key.as_bytes()),
        ),
        notifier: Notifier::new(&settings, &clients, notifier_config(&base))?,
        settings,
        counted,
        esm,
        esm_counter,
        rx,
    };

    eprintln!("bench-emulator: mix of {customers} customers ...");
    let mix = mix(&bench, customers, 20_261_124).await?;
    eprintln!("bench-emulator: end to end, {iterations} webhooks ...");
    let e2e = end_to_end(&bench, iterations, 8).await?;
    let report = json!({"mix": mix, "end_to_end": e2e});
    print_report(&report);
    if let Some(path) = out {
        std::fs::write(&path, serde_json::to_string_pretty(&report)? + "\n")?;
        eprintln!("bench-emulator: wrote {path}");
    }
    Ok(())
}

fn print_report(r: &serde_json::Value) {
    let mix = &r["mix"];
    println!(
        "== mix: {} webhooks, {} leads created, {} invocations, {} s",
        mix["webhooks"], mix["leads_created"], mix["invocations"], mix["elapsed_s"]
    );
    println!(
        "{:<40} {:>5} {:>7} {:>5} {:>6} {:>6} {:>9} {:>9}  by operation",
        "work", "n", "AWS req", "HTTP", "RRU", "WRU", "handler", "emulator"
    );
    if let Some(work) = mix["work"].as_object() {
        for (kind, w) in work {
            let ops: Vec<String> = w["by_operation"]
                .as_object()
                .map(|o| o.iter().map(|(k, v)| format!("{k} {v}")).collect())
                .unwrap_or_default();
            println!(
                "{kind:<40} {:>5} {:>7} {:>5} {:>6} {:>6} {:>7}ms {:>7}ms  {}",
                w["n"],
                w["aws_requests"],
                w["http_requests"],
                w["rru"],
                w["wru"],
                w["handler_ms_mean"],
                w["emulator_ms_mean"],
                ops.join(", ")
            );
        }
    }
    println!("== per lead created: {}", mix["per_lead"]);
    let cost = &mix["cost_per_million_leads"];
    for variant in ["measured_durations", "if_each_aws_request_took_10ms"] {
        println!("== cost per 1 M leads, us-east-1, {variant}:");
        for line in cost[variant]["lines"].as_array().into_iter().flatten() {
            println!(
                "  {:<32} {:>16} ${}",
                line["item"].as_str().unwrap_or_default(),
                line["quantity"],
                line["usd"]
            );
        }
        println!(
            "  {:<32} {:>16} ${}",
            "total", "", cost[variant]["total_usd"]
        );
    }
    let e = &r["end_to_end"];
    println!(
        "== end to end (webhook -> consultant's WeCom message), {} iterations: p50 {} ms, p99 {} ms; emulator round trips in it p50 {} ms ({} requests), p99 {} ms; share p50 {}; webhook answered p50 {} ms, p99 {} ms",
        e["iterations"],
        e["latency_ms"]["p50"],
        e["latency_ms"]["p99"],
        e["emulator_round_trips_ms"]["p50"],
        e["round_trips"]["p50"],
        e["emulator_round_trips_ms"]["p99"],
        e["emulator_share"]["p50"],
        e["webhook_answer_ms"]["p50"],
        e["webhook_answer_ms"]["p99"]
    );
}
