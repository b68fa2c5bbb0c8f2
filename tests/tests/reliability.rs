//! Reliability replay: no accepted lead is lost, none is counted twice, under
//! storage faults, redeliveries, cross-channel duplicates, concurrent copies of
//! one customer and consumer invocations killed mid-batch.
//!
//! The real intake and router run in-process; only *their* AWS clients go
//! through a loopback fault proxy (`integration_tests::fault_proxy`) in front of
//! the shared emulator, which at fixed points of the replay (15%, 35%, 55%, 70%
//! of the webhooks) refuses storage (open connections cut), makes it flaky
//! (connections refused or cut, half of the cuts after the request reached the
//! emulator), slow, and refuses it again, healthy in between. The
//! "platforms" retry a webhook on 409/5xx/timeouts with backoff, as Douyin,
//! Ocean Engine and WeCom do. The test plays the SQS event-source mapping for the
//! router (receive, invoke, delete all but `batchItemFailures`) on a scratch
//! queue with a short visibility timeout and a redrive policy to a scratch DLQ
//! (maxReceiveCount 5, as in the template), and kills some invocations at a
//! random point (the handler future is dropped, nothing is deleted: the messages
//! come back after the visibility timeout, like after a crash or a timeout).
//!
//! Afterwards, from the tables and queues: every accepted webhook's lead is
//! exactly one touchpoint (a created lead or a merge) or sits in the DLQ with a
//! reason; no customer has two open leads; every consultant's open counter equals
//! the leads assigned to them and stays within the cap; no lead was assigned to
//! two people. Figures are printed (`-- --nocapture`).
//!
//! Size and time: `RELIABILITY_CUSTOMERS` (default 300, about 420 webhooks: each
//! customer is 1-3 webhooks, plus redeliveries, hostile calls and stats),
//! `RELIABILITY_DEALERS` (12), `RELIABILITY_SEED` (default: fresh per run, since
//! event ids derive from it and the shared idempotency table remembers them),
//! `RELIABILITY_FAULTS=0` for a baseline without faults.
//! The emulator serialises DynamoDB requests (~2 ms each, ~20 per new lead) and
//! its queries scan whole tables, so the time grows a little faster than the size
//! (measured: 300 customers 75 s, 1,000 customers ~4 min on a loaded 2-core box).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, QueueAttributeName as QA};
use integration_tests::endpoint_of;
use integration_tests::fault_proxy::{FaultCounts, FaultProxy, Mode};
use integration_tests::{stack, unique, Stack};
use lambda_http::{Body, Request, RequestExt};
use lead_demo::dataset::{self, Expect, Rng, Webhook};
use lead_router::Router;
use leads_aws::clients::Endpoints;
use leads_aws::store::{DirectoryStore, DynamoDirectory, DynamoLeads};
use leads_aws::AwsClients;
use leads_domain::audit::{AuditAction, AuditEvent};
use leads_domain::directory::{AccountOwner, StaffRole};
use leads_domain::directory_file::{Directory, DirectoryFile};
use leads_domain::identity::PhoneHasher;
use leads_domain::intake::secrets::{HmacSecrets, WecomCorp};
use leads_domain::intake::{
    self, IntakeMessage, IntakeRequest, IntakeSecrets, Method, Normaliser, Outcome, Source,
};
use leads_domain::lead::{LeadRecord, LeadStatus, Touchpoint};
use leads_domain::seal::ContactSeal;
use webhook_intake::Intake;

/// The intake function's timeout in the template.
const INTAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The router's timeout here; the scratch queue's visibility is above it (the
/// template has 30 s and 180 s: scaled down so killed work comes back quickly).
const ROUTER_TIMEOUT: Duration = Duration::from_secs(20);
const VISIBILITY_SECS: u32 = 24;
const MAX_RECEIVE_COUNT: u32 = 5;
/// Webhooks in flight at once and router invocations in flight at once.
const PLATFORM_CONCURRENCY: usize = 8;
const CONSUMERS: usize = 3;
/// One router invocation in this many is killed at a random point.
const KILL_ONE_IN: usize = 5;
/// A platform gives up on a webhook after this many attempts.
const MAX_ATTEMPTS: u32 = 40;
/// Customers per generated chunk (signatures are stamped at generation, and the
/// HMAC sources refuse timestamps older than 5 minutes).
const CHUNK: usize = 150;

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The demo's generated directory, every id prefixed so this run has brands,
/// dealers, consultants and counters of its own in the shared emulator.
fn directory(dealers: usize, seed: u64, run: &str) -> Directory {
    let mut file: DirectoryFile = lead_demo::directory::generate(dealers, seed);
    let p = |id: &mut String| *id = format!("{run}{id}");
    for b in &mut file.brands {
        p(&mut b.brand_id);
    }
    for d in &mut file.dealers {
        p(&mut d.dealer_id);
        p(&mut d.brand_id);
    }
    for s in &mut file.staff {
        p(&mut s.staff_id);
        p(&mut s.dealer_id);
        if let Some(w) = &mut s.wecom_userid {
            p(w);
        }
    }
    for o in &mut file.brand_ops {
        p(&mut o.staff_id);
        p(&mut o.brand_id);
    }
    for a in &mut file.accounts {
        p(&mut a.account_id);
        p(&mut a.brand_id);
        if let AccountOwner::Dealer { dealer_id } = &mut a.owner {
            p(dealer_id);
        }
    }
    file.validate().expect("the generated directory is valid")
}

fn secrets(directory: &Directory, run: &str) -> IntakeSecrets {
    let mut s = IntakeSecrets {
        phone_hash_key: format!("reliability-phone-key-{run}"),
        ..Default::default()
    };
    s.douyin
        .insert("awx-reliability".into(), "douyin-reliability-secret".into());
    for source in [
        Source::Feiyu,
        Source::Dongchedi,
        Source::Autohome,
        Source::Yiche,
        Source::OemCrm,
    ] {
        s.hmac.insert(
            source,
            HmacSecrets {
                secrets: vec![format!("{source}-reliability-secret")],
                accounts: HashMap::new(),
            },
        );
    }
    // One WeCom corp per brand (the directory's WeCom accounts are corp ids).
    for (i, a) in directory
        .accounts
        .iter()
        .filter(|a| a.platform == leads_domain::directory::Platform::Wecom)
        .enumerate()
    {
        s.wecom.push(WecomCorp {
            corp_id: a.account_id.clone(),
            token: format!("reliability-token-{i}"),
            encoding_aes_key: "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG".into(),
        });
    }
    s
}

/// What a webhook should become, from the same pure parser intake runs.
#[derive(Clone, Debug)]
enum Truth {
    /// Canonical leads: (source event id, brand-independent customer key).
    Leads(Vec<(String, String)>),
    Stats,
    Ignored,
    Rejected(u16),
}

fn truth(
    hook: &Webhook,
    secrets: &IntakeSecrets,
    n: &Normaliser,
    now: chrono::DateTime<chrono::Utc>,
) -> Truth {
    let headers: HashMap<String, String> = hook
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .collect();
    let query: HashMap<String, String> = hook.query.iter().cloned().collect();
    let req = IntakeRequest {
        source: hook.source,
        method: Method::Post,
        headers: &headers,
        query: &query,
        body: hook.body.as_bytes(),
        now,
    };
    match intake::handle(&req, secrets, n) {
        Ok(Outcome::Accepted { messages, .. }) => {
            let leads: Vec<(String, String)> = messages
                .iter()
                .filter_map(|m| match m {
                    IntakeMessage::Lead(l) => Some((
                        l.source_event_id.clone(),
                        serde_json::to_string(&l.customer).unwrap(),
                    )),
                    IntakeMessage::ContentStats(_)
                    | IntakeMessage::ContactDeleted(_)
                    | IntakeMessage::CrmStatus(_)
                    | IntakeMessage::CrmDispatch(_) => None,
                })
                .collect();
            if leads.is_empty() {
                Truth::Stats
            } else {
                Truth::Leads(leads)
            }
        }
        Ok(_) => Truth::Ignored,
        Err(e) => Truth::Rejected(e.status()),
    }
}

fn request(hook: &Webhook) -> Request {
    let mut b = lambda_http::http::Request::builder()
        .method("POST")
        .uri(format!("/webhooks/{}", hook.source));
    for (k, v) in &hook.headers {
        b = b.header(k, v);
    }
    let query: HashMap<String, String> = hook.query.iter().cloned().collect();
    b.body(Body::from(hook.body.clone()))
        .unwrap()
        .with_query_string_parameters(query)
}

/// Arrival order with concurrent same-customer pairs: every other customer with
/// several deliveries has them posted back to back (so they are in flight
/// together, and land in the same or in concurrent router batches).
fn arrange(hooks: Vec<(Webhook, Truth)>) -> Vec<(Webhook, Truth)> {
    let mut first: HashMap<String, usize> = HashMap::new();
    let mut deliveries: HashMap<String, usize> = HashMap::new();
    for (i, (_, t)) in hooks.iter().enumerate() {
        if let Truth::Leads(l) = t {
            first.entry(l[0].1.clone()).or_insert(i);
            *deliveries.entry(l[0].1.clone()).or_default() += 1;
        }
    }
    let mut keyed: Vec<((usize, usize), (Webhook, Truth))> = hooks
        .into_iter()
        .enumerate()
        .map(|(i, h)| {
            let key = match &h.1 {
                Truth::Leads(l) if deliveries[&l[0].1] > 1 && first[&l[0].1] & 1 == 0 => {
                    (first[&l[0].1], i)
                }
                _ => (i, 0),
            };
            (key, h)
        })
        .collect();
    keyed.sort_by_key(|(k, _)| *k);
    keyed.into_iter().map(|(_, h)| h).collect()
}

#[derive(Default)]
struct Platform {
    posted: AtomicUsize,
    attempts: AtomicUsize,
    accepted: AtomicUsize,
    accepted_after_retry: AtomicUsize,
    redeliveries: AtomicUsize,
    gave_up: AtomicUsize,
    answers: Mutex<BTreeMap<u16, usize>>,
    surprises: Mutex<Vec<String>>,
    /// Source event ids of the leads in webhooks the platform got a 200 for.
    accepted_events: Mutex<HashMap<String, String>>,
}

async fn deliver(
    intake: Arc<Intake>,
    hook: Webhook,
    truth: Truth,
    platform: Arc<Platform>,
    gate: Arc<tokio::sync::Semaphore>,
    started: Arc<AtomicUsize>,
    seed: u64,
) {
    let mut rng = Rng::new(seed);
    platform.posted.fetch_add(1, Ordering::Relaxed);
    for attempt in 1..=MAX_ATTEMPTS {
        let status = {
            let _permit = gate.acquire().await.unwrap();
            if attempt == 1 {
                started.fetch_add(1, Ordering::Relaxed);
            }
            platform.attempts.fetch_add(1, Ordering::Relaxed);
            match tokio::time::timeout(INTAKE_TIMEOUT, intake.handle(request(&hook))).await {
                Ok(r) => r.status().as_u16(),
                Err(_) => 504, // the function timed out: the platform sees a gateway error
            }
        };
        *platform.answers.lock().unwrap().entry(status).or_default() += 1;
        match status {
            200 => {
                match (&hook.expect, &truth) {
                    (Expect::Redelivery, _) => {
                        platform.redeliveries.fetch_add(1, Ordering::Relaxed)
                    }
                    _ => platform.accepted.fetch_add(1, Ordering::Relaxed),
                };
                if attempt > 1 {
                    platform
                        .accepted_after_retry
                        .fetch_add(1, Ordering::Relaxed);
                }
                if let Truth::Leads(leads) = &truth {
                    let mut events = platform.accepted_events.lock().unwrap();
                    for (event, customer) in leads {
                        events.insert(event.clone(), customer.clone());
                    }
                } else if let Expect::Rejected(_) = hook.expect {
                    platform.surprises.lock().unwrap().push(format!(
                        "{} accepted, expected {:?}",
                        hook.source, hook.expect
                    ));
                }
                return;
            }
            409 | 500..=599 => {
                let backoff = (250u64 << attempt.min(4)).min(4_000);
                let jitter = rng.below(250) as u64;
                tokio::time::sleep(Duration::from_millis(backoff + jitter)).await;
            }
            s => {
                if !matches!((hook.expect, &truth), (Expect::Rejected(e), Truth::Rejected(t)) if e == s && *t == s)
                {
                    platform.surprises.lock().unwrap().push(format!(
                        "{} answered {s}, expected {:?} / {truth:?}",
                        hook.source, hook.expect
                    ));
                }
                return;
            }
        }
    }
    platform.gave_up.fetch_add(1, Ordering::Relaxed);
}

#[derive(Default)]
struct Consumer {
    invocations: AtomicUsize,
    killed: AtomicUsize,
    timed_out: AtomicUsize,
    batch_item_failures: AtomicUsize,
    deleted: AtomicUsize,
    /// message id -> what happened to it at each receive (for the DLQ reasons).
    history: Mutex<HashMap<String, Vec<&'static str>>>,
    /// The fault proxy's counters: an invocation during which they moved saw
    /// injected storage faults, so a failure in it is explained by them.
    storage_faults: Option<Arc<FaultCounts>>,
    /// Same-customer deliveries that were in two router invocations at once.
    concurrent_pairs: AtomicUsize,
    in_flight: Mutex<HashMap<u64, HashSet<String>>>,
}

const KILLED: &str = "killed mid-batch";
const TIMED_OUT: &str = "invocation timed out";
const TIMED_OUT_FAULTY: &str = "invocation timed out while storage was faulty";
const FAILED_FAULTY: &str = "reported as a batch item failure while storage was faulty";

impl Consumer {
    fn faults_so_far(&self) -> u64 {
        self.storage_faults.as_ref().map_or(0, |c| {
            c.refused.load(Ordering::Relaxed)
                + c.cut.load(Ordering::Relaxed)
                + c.delayed_chunks.load(Ordering::Relaxed)
        })
    }
}

/// A message in the DLQ is explained by the faults only if every one of its
/// receives was a kill, a timeout (the invocation ran out of time: injected
/// delay, or a loaded machine; the router never said the lead failed) or a
/// failure while storage was faulty. A router that fails a lead on healthy
/// storage leaves an unexplained one; one that hangs on every lead is caught
/// by the 1% bound and the created count.
fn explained_by_injected_faults(history: &[&str]) -> bool {
    history.len() >= MAX_RECEIVE_COUNT as usize
        && history
            .iter()
            .all(|h| [KILLED, TIMED_OUT, TIMED_OUT_FAULTY, FAILED_FAULTY].contains(h))
}

fn customer_of(body: &str) -> Option<String> {
    match serde_json::from_str::<IntakeMessage>(body).ok()? {
        IntakeMessage::Lead(l) => Some(serde_json::to_string(&l.customer).unwrap()),
        _ => None,
    }
}

#[allow(clippy::too_many_arguments)]
async fn consume(
    worker: usize,
    router: Arc<Router>,
    sqs: aws_sdk_sqs::Client,
    queue: String,
    consumer: Arc<Consumer>,
    stop: Arc<AtomicBool>,
    seed: u64,
) {
    let mut rng = Rng::new(seed ^ (worker as u64 * 7919));
    let mut worker_batches = 0u32;
    while !stop.load(Ordering::Relaxed) {
        let Ok(out) = sqs
            .receive_message()
            .queue_url(&queue)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
        else {
            continue;
        };
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            continue;
        }
        let invocation = consumer.invocations.fetch_add(1, Ordering::Relaxed) as u64;
        let customers: HashSet<String> = messages
            .iter()
            .filter_map(|m| customer_of(m.body.as_deref().unwrap_or_default()))
            .collect();
        {
            let mut in_flight = consumer.in_flight.lock().unwrap();
            let overlapping = in_flight
                .values()
                .map(|others| others.intersection(&customers).count())
                .sum::<usize>();
            consumer
                .concurrent_pairs
                .fetch_add(overlapping, Ordering::Relaxed);
            in_flight.insert(invocation, customers);
        }
        let mut event = SqsEvent::default();
        event.records = messages
            .iter()
            .map(|m| {
                let mut r = SqsMessage::default();
                r.message_id = m.message_id.clone();
                r.receipt_handle = m.receipt_handle.clone();
                r.body = m.body.clone();
                r.event_source = Some("aws:sqs".into());
                r
            })
            .collect();
        // A kill lands only if it comes before the batch ends, and a batch takes
        // tens of milliseconds here: the point is drawn log-uniformly from 1 ms
        // to 2 s, and each worker's second batch is always killed within its
        // first 32 ms (a cold CI run once went 45 invocations without a kill
        // landing when the point was uniform over 2 s).
        let forced = worker_batches == 1;
        worker_batches += 1;
        let kill = (forced || rng.below(KILL_ONE_IN) == 0).then(|| {
            let octave = if forced { rng.below(6) } else { rng.below(12) };
            Duration::from_millis((1u64 << octave) + rng.below(1 << octave) as u64)
        });
        let budget = kill.unwrap_or(ROUTER_TIMEOUT);
        let faults_before = consumer.faults_so_far();
        let result = tokio::time::timeout(budget, router.handle_batch(event)).await;
        let faulty = consumer.faults_so_far() != faults_before;
        consumer.in_flight.lock().unwrap().remove(&invocation);
        let mut notes: Vec<(String, &'static str)> = Vec::new();
        let mut entries = Vec::new();
        match result {
            Err(_) => {
                let what = if kill.is_some() {
                    consumer.killed.fetch_add(1, Ordering::Relaxed);
                    KILLED
                } else {
                    consumer.timed_out.fetch_add(1, Ordering::Relaxed);
                    if faulty {
                        TIMED_OUT_FAULTY
                    } else {
                        TIMED_OUT
                    }
                };
                for m in &messages {
                    notes.push((m.message_id.clone().unwrap_or_default(), what));
                }
            }
            Ok(response) => {
                let failed: HashSet<String> = response
                    .batch_item_failures
                    .iter()
                    .map(|f| f.item_identifier.clone())
                    .collect();
                consumer
                    .batch_item_failures
                    .fetch_add(failed.len(), Ordering::Relaxed);
                for (i, m) in messages.iter().enumerate() {
                    let id = m.message_id.clone().unwrap_or_default();
                    if failed.contains(&id) {
                        let what = if faulty {
                            FAILED_FAULTY
                        } else {
                            "reported as a batch item failure"
                        };
                        notes.push((id, what));
                    } else {
                        entries.push(
                            DeleteMessageBatchRequestEntry::builder()
                                .id(i.to_string())
                                .receipt_handle(m.receipt_handle.clone().unwrap_or_default())
                                .build()
                                .unwrap(),
                        );
                    }
                }
            }
        }
        {
            let mut history = consumer.history.lock().unwrap();
            for (id, what) in notes {
                history.entry(id).or_default().push(what);
            }
        }
        if !entries.is_empty() {
            let n = entries.len();
            sqs.delete_message_batch()
                .queue_url(&queue)
                .set_entries(Some(entries))
                .send()
                .await
                .expect("the event-source mapping deletes through the healthy emulator");
            consumer.deleted.fetch_add(n, Ordering::Relaxed);
        }
    }
}

async fn queue_depth(sqs: &aws_sdk_sqs::Client, queue: &str) -> u64 {
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(queue)
        .attribute_names(QA::ApproximateNumberOfMessages)
        .attribute_names(QA::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap_or_default();
    attrs.values().filter_map(|v| v.parse::<u64>().ok()).sum()
}

async fn lead_queue_with_dlq(stack: &Stack) -> (String, String) {
    integration_tests::scratch_queue_with_dlq(
        &stack.clients.sqs,
        "reliability-leads",
        Some(VISIBILITY_SECS),
        MAX_RECEIVE_COUNT,
    )
    .await
}

async fn scratch(stack: &Stack, prefix: &str) -> String {
    stack
        .clients
        .sqs
        .create_queue()
        .queue_name(unique(prefix))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap()
}

/// Every item of a table matching a filter (empty: all), all pages.
async fn scan(
    stack: &Stack,
    table: &str,
    filter: &str,
    values: &[(&str, &str)],
) -> Vec<HashMap<String, AttributeValue>> {
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let mut request = stack
            .clients
            .dynamodb
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start);
        if !filter.is_empty() {
            request = request.filter_expression(filter);
        }
        for (k, v) in values {
            request = request.expression_attribute_values(*k, AttributeValue::S((*v).into()));
        }
        let page = request.send().await.unwrap();
        out.extend(page.items.unwrap_or_default());
        match page.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return out,
        }
    }
}

/// This run's lead records (a filtered scan of the shared table).
async fn leads_of_run(stack: &Stack, run: &str) -> Vec<LeadRecord> {
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let page = stack
            .clients
            .dynamodb
            .scan()
            .table_name(&stack.settings.tables.leads)
            .filter_expression("sk = :lead AND begins_with(brand_id, :run)")
            .expression_attribute_values(":lead", AttributeValue::S("LEAD".into()))
            .expression_attribute_values(":run", AttributeValue::S(run.into()))
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        for item in page.items.unwrap_or_default() {
            out.push(serde_dynamo::from_item(item).expect("a lead record"));
        }
        match page.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return out,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_accepted_lead_is_lost_or_doubled_under_faults_duplicates_and_kills() {
    let Some(stack) = stack().await else { return };
    let customers = knob("RELIABILITY_CUSTOMERS", 300);
    let dealers = knob("RELIABILITY_DEALERS", 12);
    // Event ids derive from the seed and the shared idempotency table remembers
    // them: a fresh seed per run unless one is given.
    let seed = knob(
        "RELIABILITY_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as usize
            % 1_000_000_000,
    ) as u64;
    let run = format!("{}-", unique("rel"));
    let started_at = Instant::now();

    // The directory and the secrets of this run.
    let directory = directory(dealers, seed, &run);
    DynamoDirectory::new(
        stack.clients.dynamodb.clone(),
        &stack.settings.tables.directory,
    )
    .save(&directory)
    .await
    .unwrap();
    let secrets = secrets(&directory, &run);
    let normaliser = Normaliser::new(PhoneHasher::new(secrets.phone_hash_key.as_bytes().to_vec()));

    // The functions, with their clients behind the fault proxy.
    let proxy = FaultProxy::start(&[&endpoint_of("DYNAMODB"), &endpoint_of("SQS")]).await;
    let faulty = AwsClients::with_endpoints(Endpoints {
        dynamodb: Some(proxy.endpoints[0].clone()),
        sqs: Some(proxy.endpoints[1].clone()),
    })
    .await;
    let (lead_queue, dlq) = lead_queue_with_dlq(&stack).await;
    let mut settings = stack.settings.clone();
    settings.queues.lead = lead_queue.clone();
    settings.queues.notification = scratch(&stack, "reliability-notify").await;
    settings.queues.crm = scratch(&stack, "reliability-crm").await;
    let intake = Arc::new(Intake::new(&settings, &faulty, secrets.clone()));
    let router = Arc::new(Router::new(&settings, &faulty).with_contact_seal(
        ContactSeal::from_phone_hash_key(secrets.phone_hash_key.as_bytes()),
    ));

    // Faults while the webhooks arrive, at fixed points of the replay (so the
    // share of faulty time does not depend on the machine's speed): storage
    // refused, flaky, slow, refused again, healthy in between and at the end.
    let posting_done = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicUsize::new(0));
    let fault_time = Arc::new(AtomicU64::new(0));
    let inject = knob("RELIABILITY_FAULTS", 1) == 1;
    let expected_webhooks = customers * 7 / 5;
    let faults = {
        let done = posting_done.clone();
        let started = started.clone();
        let fault_time = fault_time.clone();
        let proxy = Arc::new(proxy);
        let p = proxy.clone();
        let task = tokio::spawn(async move {
            let plan = [
                (15, Mode::Refuse, 2_500),
                (35, Mode::Flaky { per_mille: 150 }, 4_000),
                (55, Mode::Delay(Duration::from_millis(10)), 4_000),
                (70, Mode::Refuse, 2_500),
            ];
            let mut phase_counts: BTreeMap<String, usize> = BTreeMap::new();
            for (percent, mode, ms) in plan {
                while started.load(Ordering::Relaxed) * 100 < expected_webhooks * percent {
                    if done.load(Ordering::Relaxed) {
                        return phase_counts;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                if !inject {
                    continue;
                }
                p.set(mode);
                let name = format!("{mode:?}");
                *phase_counts
                    .entry(name.split([' ', '(', '{']).next().unwrap().to_string())
                    .or_default() += 1;
                fault_time.fetch_add(ms, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                p.set(Mode::Healthy);
            }
            phase_counts
        });
        (task, proxy)
    };

    // The router's event-source mapping (through the healthy emulator: it is
    // AWS's service, not the function's), running all along.
    let stop = Arc::new(AtomicBool::new(false));
    let consumer = Arc::new(Consumer {
        storage_faults: Some(faults.1.counts.clone()),
        ..Consumer::default()
    });
    let workers: Vec<_> = (0..CONSUMERS)
        .map(|w| {
            tokio::spawn(consume(
                w,
                router.clone(),
                stack.clients.sqs.clone(),
                lead_queue.clone(),
                consumer.clone(),
                stop.clone(),
                seed,
            ))
        })
        .collect();

    // The platforms post the day in chunks, each chunk signed when it is sent.
    let platform = Arc::new(Platform::default());
    let gate = Arc::new(tokio::sync::Semaphore::new(PLATFORM_CONCURRENCY));
    let mut expected = dataset::Expected::default();
    let mut tasks = Vec::new();
    let mut posted = 0usize;
    let mut rejected_expected = 0usize;
    let mut chunk_seed = seed;
    let mut left = customers;
    while left > 0 {
        let n = left.min(CHUNK);
        left -= n;
        let now = chrono::Utc::now();
        let data = dataset::generate(&directory, &secrets, n, chunk_seed, now);
        chunk_seed = chunk_seed.wrapping_add(1);
        expected.leads += data.expected.leads;
        expected.merges += data.expected.merges;
        expected.stats += data.expected.stats;
        let hooks: Vec<(Webhook, Truth)> = data
            .webhooks
            .into_iter()
            .map(|h| {
                let t = truth(&h, &secrets, &normaliser, now);
                (h, t)
            })
            .collect();
        for (hook, t) in arrange(hooks) {
            posted += 1;
            if matches!(hook.expect, Expect::Rejected(_)) {
                rejected_expected += 1;
            }
            tasks.push(tokio::spawn(deliver(
                intake.clone(),
                hook,
                t,
                platform.clone(),
                gate.clone(),
                started.clone(),
                chunk_seed
                    .wrapping_mul(1_000_003)
                    .wrapping_add(posted as u64),
            )));
        }
        // The next chunk is signed once this one's first attempts are under way.
        while started.load(Ordering::Relaxed) < posted {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let posting_time = started_at.elapsed();
    posting_done.store(true, Ordering::Relaxed);
    let (fault_task, proxy) = faults;
    let phase_counts = fault_task.await.unwrap();
    proxy.set(Mode::Healthy);

    // Let the router finish: the queue is drained once nothing is visible or in
    // flight. It must keep making progress (a stuck message would not).
    let mut quiet = 0;
    let mut last = (u64::MAX, Instant::now());
    let mut drained = true;
    while quiet < 2 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let depth = queue_depth(&stack.clients.sqs, &lead_queue).await;
        if depth == 0 {
            quiet += 1;
        } else {
            quiet = 0;
        }
        if depth < last.0 {
            last = (depth, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(120) {
            drained = false;
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let elapsed = started_at.elapsed();

    // Leftovers: the DLQ, each message with why it got there.
    let mut dead_events: HashSet<String> = HashSet::new();
    let mut dlq_reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut dlq_messages = 0usize;
    let mut dlq_unexplained: Vec<String> = Vec::new();
    loop {
        let out = stack
            .clients
            .sqs
            .receive_message()
            .queue_url(&dlq)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        for m in messages {
            let history = consumer
                .history
                .lock()
                .unwrap()
                .get(m.message_id.as_deref().unwrap_or_default())
                .cloned()
                .unwrap_or_default();
            let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
            for h in &history {
                *reasons.entry(h).or_default() += 1;
            }
            *dlq_reasons.entry(format!("{reasons:?}")).or_default() += 1;
            dlq_messages += 1;
            if !explained_by_injected_faults(&history) {
                dlq_unexplained.push(format!("{reasons:?}"));
            }
            if let Ok(IntakeMessage::Lead(l)) =
                serde_json::from_str::<IntakeMessage>(m.body.as_deref().unwrap_or_default())
            {
                dead_events.insert(l.source_event_id.clone());
            }
            stack
                .clients
                .sqs
                .delete_message()
                .queue_url(&dlq)
                .receipt_handle(m.receipt_handle.unwrap())
                .send()
                .await
                .unwrap();
        }
    }

    // What the tables hold.
    let leads = leads_of_run(&stack, &run).await;
    let store = DynamoLeads::new(
        stack.clients.dynamodb.clone(),
        &stack.settings.tables.leads,
        &stack.settings.tables.stats,
    );
    // Touchpoints and audit events of this run's leads: one scan each (a query
    // per lead is O(table) on the emulator, so O(n^2) in all).
    let ours: HashSet<&str> = leads.iter().map(|l| l.lead_id.as_str()).collect();
    let mut touch: HashMap<String, Vec<String>> = HashMap::new();
    let mut touch_count: HashMap<String, u32> = HashMap::new();
    for item in scan(
        &stack,
        &stack.settings.tables.leads,
        "begins_with(pk, :lead) AND begins_with(sk, :tp)",
        &[(":lead", "LEAD#"), (":tp", "TP#")],
    )
    .await
    {
        let lead_id = item["pk"]
            .as_s()
            .unwrap()
            .trim_start_matches("LEAD#")
            .to_string();
        if !ours.contains(lead_id.as_str()) {
            continue;
        }
        let t: Touchpoint = serde_dynamo::from_item(item).expect("a touchpoint");
        *touch_count.entry(lead_id.clone()).or_default() += 1;
        touch.entry(t.source_event_id).or_default().push(lead_id);
    }
    let counted_wrong: Vec<&str> = leads
        .iter()
        .filter(|l| l.status != LeadStatus::Merged)
        .filter(|l| touch_count.get(&l.lead_id).copied().unwrap_or(0) != l.touchpoints)
        .map(|l| l.lead_id.as_str())
        .collect();
    let mut assigned_to: HashMap<String, Vec<String>> = HashMap::new();
    for item in scan(&stack, &stack.settings.tables.audit, "", &[]).await {
        let Ok(e) = serde_dynamo::from_item::<_, AuditEvent>(item) else {
            continue;
        };
        if e.action == AuditAction::Assigned && ours.contains(e.lead_id.as_str()) {
            assigned_to
                .entry(e.lead_id)
                .or_default()
                .push(e.detail.split(' ').next().unwrap_or_default().to_string());
        }
    }
    let mut reassigned_audit = 0usize;
    let mut two_assignees = Vec::new();
    for (lead_id, assigned) in &assigned_to {
        let distinct: HashSet<&String> = assigned.iter().collect();
        if distinct.len() > 1 {
            two_assignees.push(lead_id.clone());
        } else if assigned.len() > 1 {
            reassigned_audit += 1;
        }
    }

    let accepted_events = platform.accepted_events.lock().unwrap().clone();
    let mut lost = Vec::new();
    let mut doubled = Vec::new();
    let mut in_dlq = 0usize;
    for event in accepted_events.keys() {
        match touch.get(event).map(Vec::len).unwrap_or(0) {
            1 => {}
            0 if dead_events.contains(event) => in_dlq += 1,
            0 => lost.push(event.clone()),
            _ => doubled.push(event.clone()),
        }
    }
    let unexpected: Vec<&String> = touch
        .keys()
        .filter(|e| !accepted_events.contains_key(*e))
        .collect();

    // One open lead per customer (a lead merged into another is not open).
    let mut per_customer: HashMap<String, usize> = HashMap::new();
    for l in leads.iter().filter(|l| l.status != LeadStatus::Merged) {
        *per_customer
            .entry(format!(
                "{}|{}",
                l.brand_id,
                serde_json::to_string(&l.customer).unwrap()
            ))
            .or_default() += 1;
    }
    let two_created: Vec<_> = per_customer.iter().filter(|(_, n)| **n > 1).collect();
    let merges: u32 = leads.iter().map(|l| l.touchpoints.saturating_sub(1)).sum();
    let distinct_customers: HashSet<&String> = accepted_events.values().collect();

    // Consultants: open counter == leads they hold, and within the cap.
    let mut holding: HashMap<&str, u32> = HashMap::new();
    for l in &leads {
        if let Some(a) = &l.assignee {
            *holding.entry(a.as_str()).or_default() += 1;
        }
    }
    let mut over_cap = Vec::new();
    let mut counter_mismatch = Vec::new();
    let mut assigned_total = 0u32;
    for d in &directory.dealers {
        let staff: Vec<_> = directory
            .staff
            .iter()
            .filter(|s| s.dealer_id == d.dealer_id)
            .cloned()
            .collect();
        for load in store.staff_loads(&d.dealer_id, &staff).await.unwrap() {
            let holds = holding.get(load.staff_id.as_str()).copied().unwrap_or(0);
            assigned_total += holds;
            if load.open_leads > load.cap && load.role == StaffRole::Sales {
                over_cap.push(format!(
                    "{} {}/{}",
                    load.staff_id, load.open_leads, load.cap
                ));
            }
            if load.open_leads != holds {
                counter_mismatch.push(format!(
                    "{}: counter {} but holds {holds}",
                    load.staff_id, load.open_leads
                ));
            }
        }
    }
    let waiting = leads
        .iter()
        .filter(|l| l.assignee.is_none() && l.status != LeadStatus::Merged)
        .count();

    // The figures.
    let answers = platform.answers.lock().unwrap().clone();
    println!("\n== reliability replay ({customers} customers, {dealers} dealers, seed {seed})");
    println!(
        "  time: {:.1} s total, {:.1} s posting, {:.1} s with storage faulty",
        elapsed.as_secs_f64(),
        posting_time.as_secs_f64(),
        fault_time.load(Ordering::Relaxed) as f64 / 1000.0
    );
    println!(
        "  webhooks: posted {posted}  accepted {}  redeliveries acknowledged {}  rejected as expected {rejected_expected}",
        platform.accepted.load(Ordering::Relaxed),
        platform.redeliveries.load(Ordering::Relaxed)
    );
    println!(
        "  platform: {} attempts, {} webhooks accepted only after a retry, {} given up; answers {answers:?}",
        platform.attempts.load(Ordering::Relaxed),
        platform.accepted_after_retry.load(Ordering::Relaxed),
        platform.gave_up.load(Ordering::Relaxed)
    );
    println!(
        "  faults: phases {phase_counts:?}; proxy {}",
        proxy.counts.summary()
    );
    println!(
        "  router: {} invocations, {} killed mid-batch, {} timed out, {} batch item failures, {} messages deleted, {} same-customer deliveries in concurrent invocations",
        consumer.invocations.load(Ordering::Relaxed),
        consumer.killed.load(Ordering::Relaxed),
        consumer.timed_out.load(Ordering::Relaxed),
        consumer.batch_item_failures.load(Ordering::Relaxed),
        consumer.deleted.load(Ordering::Relaxed),
        consumer.concurrent_pairs.load(Ordering::Relaxed),
    );
    println!(
        "  leads: accepted lead events {}  customers {}  created {}  merged {merges}  (generator expected {} / {})",
        accepted_events.len(),
        distinct_customers.len(),
        leads.len(),
        expected.leads,
        expected.merges
    );
    println!(
        "  assignment: {assigned_total} assigned, {waiting} waiting in a pool; over cap {}; counter mismatches {}; leads with two assignees {}; repeated Assigned audit entries {reassigned_audit}",
        over_cap.len(),
        counter_mismatch.len(),
        two_assignees.len()
    );
    println!(
        "  DLQ: {dlq_messages} messages ({} unexplained by the injected faults) {dlq_reasons:?}",
        dlq_unexplained.len()
    );
    println!(
        "  leads whose touchpoint count differs from their touchpoints: {}",
        counted_wrong.len()
    );
    println!(
        "  lost {}  doubled {}  in the DLQ {in_dlq}  touchpoints from no accepted webhook {}",
        lost.len(),
        doubled.len(),
        unexpected.len()
    );

    assert!(drained, "the lead queue made no progress for 2 minutes");
    let surprises = platform.surprises.lock().unwrap().clone();
    assert!(surprises.is_empty(), "unexpected answers: {surprises:?}");
    assert_eq!(
        platform.gave_up.load(Ordering::Relaxed),
        0,
        "a platform gave up"
    );
    assert!(lost.is_empty(), "accepted but lost: {lost:?}");
    assert!(counted_wrong.is_empty(), "touch counts: {counted_wrong:?}");
    assert!(doubled.is_empty(), "counted twice: {doubled:?}");
    assert!(
        two_created.is_empty(),
        "customers with two open leads: {two_created:?}"
    );
    assert!(
        two_assignees.is_empty(),
        "leads assigned to two people: {two_assignees:?}"
    );
    assert!(over_cap.is_empty(), "above cap: {over_cap:?}");
    assert!(counter_mismatch.is_empty(), "{counter_mismatch:?}");
    assert!(
        unexpected.is_empty(),
        "touchpoints from no accepted webhook: {unexpected:?}"
    );
    // The DLQ: only messages every receive of which was an injected fault
    // (a kill, or a failure while storage was faulty), and few of them.
    assert!(
        dlq_unexplained.is_empty(),
        "{} of {dlq_messages} DLQ messages are not explained by the injected faults (receive histories: {dlq_reasons:?})",
        dlq_unexplained.len()
    );
    assert!(
        dlq_messages * 100 <= accepted_events.len().max(100),
        "{dlq_messages} DLQ messages for {} accepted lead events (bound: 1%)",
        accepted_events.len()
    );
    // Created and merged against the generator's own record of what it sent.
    let open = leads
        .iter()
        .filter(|l| l.status != LeadStatus::Merged)
        .count();
    // An unrouted lead superseded by a routable delivery of its customer
    // (README, Dedup): that delivery made a lead where the generator counts
    // a merge. Which comes first depends on processing order, so they are
    // counted, and each must be an unrouted lead continued by a routed lead.
    let by_id: HashMap<&str, &LeadRecord> = leads.iter().map(|l| (l.lead_id.as_str(), l)).collect();
    let superseded: Vec<&LeadRecord> = leads
        .iter()
        .filter(|l| l.status == LeadStatus::Merged && l.reopened_as.is_some())
        .collect();
    for old in &superseded {
        let next = by_id.get(old.reopened_as.as_deref().unwrap_or_default());
        assert!(
            matches!(
                old.route,
                Some(leads_domain::routing::Route::Unroutable { .. })
            ) && next.is_some_and(|n| n.dealer_id.is_some()
                && n.returned_from.as_deref() == Some(old.lead_id.as_str())
                && n.customer == old.customer),
            "superseded lead {} is not an unrouted lead continued by a routed one",
            old.lead_id
        );
    }
    if dead_events.is_empty() {
        assert_eq!(
            leads.len() - superseded.len(),
            expected.leads,
            "leads created vs the generator ({} superseded)",
            superseded.len()
        );
        assert_eq!(
            merges as usize + superseded.len(),
            expected.merges,
            "merges vs the generator"
        );
        assert_eq!(open, distinct_customers.len(), "one lead per customer");
    } else {
        // A dead-lettered first delivery may leave its customer without a lead.
        assert!(
            leads.len() <= expected.leads && leads.len() + dead_events.len() >= expected.leads,
            "{} leads created, {} dead-lettered, generator expected {}",
            leads.len(),
            dead_events.len(),
            expected.leads
        );
        assert!(open <= distinct_customers.len(), "one lead per customer");
    }

    assert_eq!(
        queue_depth(&stack.clients.sqs, &lead_queue).await,
        0,
        "nothing left on the lead queue"
    );
    if inject {
        assert!(
            proxy.counts.refused.load(Ordering::Relaxed) > 0
                && consumer.killed.load(Ordering::Relaxed) > 0,
            "the faults were injected"
        );
    }
}
