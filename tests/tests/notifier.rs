//! The notifier against the emulator and a local HTTP receiver standing in for
//! WeCom (gettoken + message/send), the SMS gateway and the brand CRM. Every
//! assertion is on the real HTTP requests the receiver got; its scripted
//! failures and delays drive the retry, permanent-failure and DLQ paths.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{NaiveDate, Utc};
use integration_tests::world::{lead, phone, world, World};
use integration_tests::{drain, scratch_queue_like, scratch_queue_with_dlq, unique};
use leads_aws::store::{DirectoryStore, DynamoDirectory};
use leads_domain::audit::AuditAction;
use leads_domain::crm::CrmEvent;
use leads_domain::delivery::{Backoff, ChannelKind};
use leads_domain::directory::{AssignmentStrategy, Platform, Staff};
use leads_domain::directory_file::Directory;
use leads_domain::intake::hmac_sources::signature;
use leads_domain::notification::{Notice, NotificationJob, NotificationKind, RankingNotice};
use leads_domain::templates::contains_full_phone;
use notifier::config::{NotifierConfig, Secret, SmsConfig, WebhookConfig, WecomConfig};
use notifier::{DeliveryReport, Disposition, JobReport, Notifier, Outcome};
use tokio::time::Instant;

// ------------------------------------------------------------------ receiver

#[derive(Debug, Clone)]
struct Seen {
    path: String,
    query: String,
    headers: HashMap<String, String>,
    body: String,
}

impl Seen {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

#[derive(Debug, Clone)]
struct Reply {
    status: u16,
    body: String,
    delay: Duration,
}

fn ok(body: serde_json::Value) -> Reply {
    Reply {
        status: 200,
        body: body.to_string(),
        delay: Duration::ZERO,
    }
}

fn status(code: u16) -> Reply {
    Reply {
        status: code,
        body: "{}".into(),
        delay: Duration::ZERO,
    }
}

fn slow(delay: Duration) -> Reply {
    Reply {
        delay,
        ..status(200)
    }
}

#[derive(Clone, Default)]
struct Rx {
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Replies to give, in order, per path; then `always`, then the default.
    script: Arc<Mutex<HashMap<String, VecDeque<Reply>>>>,
    always: Arc<Mutex<HashMap<String, Reply>>>,
    tokens: Arc<Mutex<u32>>,
}

struct Receiver {
    base: String,
    rx: Rx,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(
    State(rx): State<Rx>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    rx.seen.lock().unwrap().push(Seen {
        path: format!("{method} {path}"),
        query: uri.query().unwrap_or_default().to_string(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let scripted = rx
        .script
        .lock()
        .unwrap()
        .get_mut(&path)
        .and_then(VecDeque::pop_front)
        .or_else(|| rx.always.lock().unwrap().get(&path).cloned());
    let reply = scripted.unwrap_or_else(|| match path.as_str() {
        "/cgi-bin/gettoken" => {
            let mut n = rx.tokens.lock().unwrap();
            *n += 1;
            ok(serde_json::json!({"errcode": 0, "errmsg": "ok", "access_token": format!("tok-{n}"), "expires_in": 7200}))
        }
        "/cgi-bin/message/send" => ok(serde_json::json!({"errcode": 0, "errmsg": "ok", "invaliduser": "", "msgid": "m1"})),
        "/cgi-bin/externalcontact/transfer_customer"
        | "/cgi-bin/externalcontact/resigned/transfer_customer" => {
            let asked: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let customers: Vec<serde_json::Value> = asked["external_userid"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|id| serde_json::json!({"external_userid": id, "errcode": 0}))
                .collect();
            ok(serde_json::json!({"errcode": 0, "errmsg": "ok", "customer": customers}))
        }
        _ => ok(serde_json::json!({"code": 0})),
    });
    tokio::time::sleep(reply.delay).await;
    (
        StatusCode::from_u16(reply.status).unwrap(),
        [("content-type", "application/json")],
        reply.body,
    )
        .into_response()
}

impl Receiver {
    async fn start() -> Receiver {
        let rx = Rx::default();
        let app = axum::Router::new().fallback(record).with_state(rx.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver { base, rx, task }
    }

    fn script(&self, path: &str, replies: Vec<Reply>) {
        self.rx
            .script
            .lock()
            .unwrap()
            .entry(path.to_string())
            .or_default()
            .extend(replies);
    }

    fn always(&self, path: &str, reply: Reply) {
        self.rx
            .always
            .lock()
            .unwrap()
            .insert(path.to_string(), reply);
    }

    fn seen(&self, path: &str) -> Vec<Seen> {
        self.rx
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.path.ends_with(path))
            .cloned()
            .collect()
    }

    fn all(&self) -> Vec<Seen> {
        self.rx.seen.lock().unwrap().clone()
    }
}

// ------------------------------------------------------------------ set-up

struct Setup {
    w: World,
    rx: Receiver,
    notifier: Notifier,
    /// s0: WeCom and a mobile; s1: a mobile only; mgr: WeCom only.
    s0_mobile: String,
    s1_mobile: String,
}

const CRM_SECRET: &str = "crm-secret";

fn config(rx: &Receiver) -> NotifierConfig {
    NotifierConfig {
        lead_link_base: "https://leads.test".into(),
        wecom: Some(WecomConfig {
            base_url: rx.base.clone(),
            corp_id: "corp-1".into(),
            corp_secret: Secret::new("corp-secret"),
            agent_id: 1_000_002,
            per_member_per_minute: 30,
        }),
        sms: Some(SmsConfig {
            url: format!("{}/sms", rx.base),
            api_key: Secret::new("sms-key"),
        }),
        webhook: Some(WebhookConfig {
            url: format!("{}/crm", rx.base),
            secret: Secret::new(CRM_SECRET),
        }),
        brand_crms: Default::default(),
        request_timeout: Duration::from_millis(500),
        backoff: Backoff {
            base: Duration::from_millis(20),
            max: Duration::from_millis(100),
            max_attempts: 3,
        },
        delivery_lease: Duration::from_secs(120),
    }
}

fn staff(w: &World, id: &str, role: &str, wecom: Option<&str>, mobile: Option<&str>) -> Staff {
    serde_json::from_value(serde_json::json!({
        "staff_id": format!("{}-jn-{id}", w.brand), "dealer_id": format!("{}-jn", w.brand),
        "name": id, "role": role, "on_duty": true, "cap": 5,
        "wecom_userid": wecom, "mobile": mobile,
    }))
    .unwrap()
}

async fn setup(caps: &[u32], tune: impl FnOnce(&mut NotifierConfig)) -> Option<Setup> {
    let w = world(AssignmentStrategy::RoundRobin, caps).await?;
    let (s0_mobile, s1_mobile) = (phone(), phone());
    let mut team = vec![
        staff(&w, "s0", "sales", Some("wx-s0"), Some(&s0_mobile)),
        staff(&w, "mgr", "manager", Some("wx-mgr"), None),
    ];
    if caps.len() > 1 {
        team.push(staff(&w, "s1", "sales", None, Some(&s1_mobile)));
    }
    DynamoDirectory::new(
        w.stack.clients.dynamodb.clone(),
        &w.stack.settings.tables.directory,
    )
    .save(&Directory {
        brands: vec![],
        dealers: vec![],
        staff: team,
        accounts: vec![],
        brand_ops: vec![],
    })
    .await
    .unwrap();
    let rx = Receiver::start().await;
    let mut cfg = config(&rx);
    tune(&mut cfg);
    let notifier = Notifier::new(&w.stack.settings, &w.stack.clients, cfg).unwrap();
    Some(Setup {
        w,
        rx,
        notifier,
        s0_mobile,
        s1_mobile,
    })
}

impl Setup {
    fn id(&self, short: &str) -> String {
        format!("{}-jn-{short}", self.w.brand)
    }

    fn job(&self, kind: NotificationKind, recipients: &[&str]) -> NotificationJob {
        let lead_id = unique("L");
        NotificationJob {
            job_id: NotificationJob::job_id(&lead_id, kind, 1),
            kind,
            lead_id,
            brand_id: self.w.brand.clone(),
            dealer_id: Some(format!("{}-jn", self.w.brand)),
            recipients: recipients.iter().map(|r| self.id(r)).collect(),
            phone_masked: Some("138****5678".into()),
            customer_name: Some("王先生".into()),
            series_interest: vec!["H5".into()],
            created_at: Utc::now(),
            wecom_transfer: None,
        }
    }

    async fn send(&self, job: &NotificationJob) -> JobReport {
        self.notifier
            .handle_notice(&Notice::Lead(job.clone()), deadline())
            .await
            .unwrap()
    }

    async fn trail(&self, lead_id: &str) -> Vec<(AuditAction, String)> {
        self.w
            .audit
            .trail(lead_id)
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.action, e.detail))
            .collect()
    }

    /// No request body or query the receiver saw holds a full mobile number
    /// (`1[3-9]\d{9}`), apart from the SMS gateway's `to`, which must be the
    /// consultant's own number. Ids are removed first: a lead id is hex and
    /// may hold a digit run.
    fn assert_no_full_phone(&self, ids: &[&str]) {
        for seen in self.rx.all() {
            let mut body: serde_json::Value = serde_json::from_str(&seen.body)
                .unwrap_or_else(|_| serde_json::Value::String(seen.body.clone()));
            if seen.path.ends_with("/sms") {
                let to = body["to"].as_str().unwrap().to_string();
                assert!(
                    [&self.s0_mobile, &self.s1_mobile]
                        .iter()
                        .any(|m| to.ends_with(m.as_str())),
                    "SMS to someone else"
                );
                body["to"] = "".into();
            }
            // A timestamp's seconds and nanoseconds ("…:14.753026084Z") read
            // as 11 digits starting 14: not a phone (a job's `created_at`, a
            // CRM event's `at`).
            if let Some(o) = body.as_object_mut() {
                o.remove("created_at");
                o.remove("at");
            }
            let mut text = format!("{} {body}", seen.query);
            for id in ids {
                text = text.replace(id, "");
            }
            assert!(
                !contains_full_phone(&text),
                "full phone in a request to {}: {text}",
                seen.path
            );
        }
    }
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

fn outcome(report: &JobReport, channel: ChannelKind, recipient: &str) -> Outcome {
    report
        .deliveries
        .iter()
        .find(|d| d.channel == Some(channel) && d.recipient.ends_with(recipient))
        .unwrap_or_else(|| panic!("no {channel} delivery to {recipient} in {report:?}"))
        .outcome
        .clone()
}

fn sqs_message(id: &str, body: String) -> SqsMessage {
    let mut m = SqsMessage::default();
    m.message_id = Some(id.into());
    m.body = Some(body);
    m
}

// ------------------------------------------------------------------ tests

#[tokio::test]
async fn a_routed_lead_reaches_the_consultant_on_wecom_and_the_crm_signed() {
    let Some(s) = setup(&[5], |_| {}).await else {
        return;
    };
    let number = phone();
    let l = lead(&s.w, Platform::Douyin, "dy-jn", &number, None);
    let routed = s.w.router.handle_lead(&l, Utc::now()).await.unwrap();
    let lead_id = routed.lead_id.unwrap();
    let bodies = drain(&s.w.stack.clients.sqs, &s.w.notifications).await;
    assert_eq!(bodies.len(), 1);
    let job: NotificationJob = serde_json::from_str(&bodies[0]).unwrap();

    let mut event = SqsEvent::default();
    event.records = vec![sqs_message("m-1", bodies[0].clone())];
    let response = s.notifier.handle_batch(event, deadline()).await;
    assert!(response.batch_item_failures.is_empty());

    // WeCom: one token, one text card to the consultant, with the masked phone and the link.
    assert_eq!(s.rx.seen("/cgi-bin/gettoken").len(), 1);
    let token = &s.rx.seen("/cgi-bin/gettoken")[0];
    assert!(
        token.query.contains("corpid=corp-1") && token.query.contains("corpsecret=corp-secret")
    );
    let sends = s.rx.seen("/cgi-bin/message/send");
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0].query, "access_token=tok-1");
    let card = sends[0].json();
    assert_eq!(card["touser"], "wx-s0");
    assert_eq!(card["msgtype"], "textcard");
    assert_eq!(card["agentid"], 1_000_002);
    assert_eq!(card["enable_duplicate_check"], 1);
    assert_eq!(
        card["textcard"]["url"],
        format!("https://leads.test/leads/{lead_id}")
    );
    let masked = leads_domain::Phone::parse(&number).unwrap().masked();
    let description = card["textcard"]["description"].as_str().unwrap();
    assert!(description.contains(&masked), "{description}");
    assert!(card["textcard"]["title"]
        .as_str()
        .unwrap()
        .starts_with("新线索"));

    // CRM: signed as our intake checks it, with the job id for dedup.
    let crm = s.rx.seen("/crm");
    assert_eq!(crm.len(), 1);
    let ts = &crm[0].headers["x-timestamp"];
    assert_eq!(
        crm[0].headers["x-signature"],
        signature(CRM_SECRET, ts, crm[0].body.as_bytes())
    );
    assert_eq!(crm[0].headers["x-event-id"], job.job_id);
    let event = crm[0].json();
    assert_eq!(event["event"], "new_assignment");
    assert_eq!(event["lead_id"], lead_id.as_str());
    assert_eq!(event["staff"], serde_json::json!([s.id("s0")]));
    assert_eq!(event["phone_masked"], masked.as_str());

    // Audited per channel; the customer's number is nowhere.
    let trail = s.trail(&lead_id).await;
    let notified: Vec<&String> = trail
        .iter()
        .filter(|(a, _)| *a == AuditAction::Notified)
        .map(|(_, d)| d)
        .collect();
    assert_eq!(notified.len(), 2, "{trail:?}");
    assert!(notified.iter().any(|d| d.contains("via wecom")));
    assert!(notified.iter().any(|d| d.contains("via webhook to crm")));
    let national = &number;
    for seen in s.rx.all() {
        assert!(!seen.body.contains(national.as_str()) && !seen.query.contains(national.as_str()));
    }
    s.assert_no_full_phone(&[&lead_id, &job.job_id]);
}

#[tokio::test]
async fn a_job_delivered_twice_or_concurrently_sends_once() {
    let Some(s) = setup(&[5], |_| {}).await else {
        return;
    };
    let job = s.job(NotificationKind::NewAssignment, &["s0"]);
    let first = s.send(&job).await;
    assert_eq!(
        outcome(&first, ChannelKind::Wecom, "s0"),
        Outcome::Delivered
    );
    let again = s.send(&job).await;
    assert!(
        again
            .deliveries
            .iter()
            .all(|d| d.outcome == Outcome::AlreadyDelivered),
        "{again:?}"
    );
    assert!(!again.needs_retry());
    assert_eq!(s.rx.seen("/cgi-bin/message/send").len(), 1);
    assert_eq!(s.rx.seen("/crm").len(), 1);

    // Two copies at once: one delivers, the other backs off for SQS to retry.
    let job = s.job(NotificationKind::CustomerReturned, &["s0"]);
    let notice = Notice::Lead(job.clone());
    let (a, b) = tokio::join!(
        s.notifier.handle_notice(&notice, deadline()),
        s.notifier.handle_notice(&notice, deadline())
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let delivered = [&a, &b]
        .iter()
        .flat_map(|r| &r.deliveries)
        .filter(|d| d.outcome == Outcome::Delivered)
        .count();
    assert_eq!(delivered, 2, "one WeCom, one webhook: {a:?} {b:?}");
    assert_eq!(s.rx.seen("/cgi-bin/message/send").len(), 2);
    assert_eq!(s.rx.seen("/crm").len(), 2);
    // The retry of the copy that backed off finds everything done.
    let retry = s.send(&job).await;
    assert!(retry
        .deliveries
        .iter()
        .all(|d| d.outcome == Outcome::AlreadyDelivered));
    assert_eq!(s.rx.seen("/cgi-bin/message/send").len(), 2);
    s.assert_no_full_phone(&[&job.lead_id, &job.job_id]);
}

#[tokio::test]
async fn staff_without_wecom_get_an_sms_with_the_masked_phone() {
    let Some(s) = setup(&[5, 5], |_| {}).await else {
        return;
    };
    let mut job = s.job(NotificationKind::Reassigned, &["s1"]);
    // A customer who typed their number as their name is still masked.
    job.customer_name = Some("13912345678".into());
    let report = s.send(&job).await;
    assert_eq!(outcome(&report, ChannelKind::Sms, "s1"), Outcome::Delivered);
    assert!(s.rx.seen("/cgi-bin/message/send").is_empty());
    let sms = s.rx.seen("/sms");
    assert_eq!(sms.len(), 1);
    assert_eq!(sms[0].headers["authorization"], "Bearer sms-key");
    let body = sms[0].json();
    assert_eq!(body["to"], format!("+86{}", s.s1_mobile));
    let content = body["content"].as_str().unwrap();
    assert!(content.contains("线索改派给您"), "{content}");
    assert!(content.contains("139****5678"), "{content}");
    assert!(content.contains(&format!("https://leads.test/leads/{}", job.lead_id)));
    s.assert_no_full_phone(&[&job.lead_id, &job.job_id]);
}

#[tokio::test]
async fn invaliduser_fails_that_recipient_for_good_and_falls_back_to_sms() {
    let Some(s) = setup(&[5], |_| {}).await else {
        return;
    };
    s.script(
        "/cgi-bin/message/send",
        vec![ok(
            serde_json::json!({"errcode": 0, "errmsg": "ok", "invaliduser": "wx-s0"}),
        )],
    );
    let job = s.job(NotificationKind::SlaWarning, &["s0", "mgr"]);
    let report = s.send(&job).await;
    assert!(
        matches!(outcome(&report, ChannelKind::Wecom, "s0"), Outcome::Permanent(r) if r.contains("invaliduser"))
    );
    assert_eq!(
        outcome(&report, ChannelKind::Wecom, "mgr"),
        Outcome::Delivered
    );
    assert_eq!(outcome(&report, ChannelKind::Sms, "s0"), Outcome::Delivered);
    assert!(!report.needs_retry());
    let sends = s.rx.seen("/cgi-bin/message/send");
    assert_eq!(sends.len(), 1, "one request for both members");
    assert_eq!(sends[0].json()["touser"], "wx-s0|wx-mgr");

    let trail = s.trail(&job.lead_id).await;
    assert!(trail
        .iter()
        .any(|(a, d)| *a == AuditAction::NotificationFailed
            && d.contains("invaliduser")
            && d.contains("permanent")));
    assert_eq!(
        trail
            .iter()
            .filter(|(a, _)| *a == AuditAction::Notified)
            .count(),
        3,
        "mgr on WeCom, s0 by SMS, the CRM: {trail:?}"
    );
    // A redelivery retries nobody.
    let again = s.send(&job).await;
    assert!(again
        .deliveries
        .iter()
        .all(|d| d.outcome == Outcome::AlreadyDelivered));
    assert_eq!(s.rx.seen("/cgi-bin/message/send").len(), 1);
    assert_eq!(s.rx.seen("/sms").len(), 1);
}

#[tokio::test]
async fn a_failed_sms_fallback_is_retried_by_the_redelivery() {
    let Some(s) = setup(&[5], |_| {}).await else {
        return;
    };
    s.script(
        "/cgi-bin/message/send",
        vec![ok(
            serde_json::json!({"errcode": 0, "errmsg": "ok", "invaliduser": "wx-s0"}),
        )],
    );
    s.script("/sms", vec![status(503), status(503), status(503)]);
    let job = s.job(NotificationKind::NewAssignment, &["s0"]);
    let first = s.send(&job).await;
    assert!(matches!(
        outcome(&first, ChannelKind::Sms, "s0"),
        Outcome::Retry(r) if r == "HTTP 503"
    ));
    assert!(first.needs_retry());
    // SQS delivers the job again: WeCom is done (rejected), the SMS goes out.
    let second = s.send(&job).await;
    assert_eq!(
        outcome(&second, ChannelKind::Wecom, "s0"),
        Outcome::AlreadyDelivered
    );
    assert_eq!(outcome(&second, ChannelKind::Sms, "s0"), Outcome::Delivered);
    assert!(!second.needs_retry());
    assert_eq!(s.rx.seen("/cgi-bin/message/send").len(), 1);
    assert_eq!(s.rx.seen("/sms").len(), 4);
    s.send(&job).await;
    assert_eq!(s.rx.seen("/sms").len(), 4, "and never again");
}

#[tokio::test]
async fn an_expired_token_is_fetched_again_once_and_then_cached() {
    let Some(s) = setup(&[5], |_| {}).await else {
        return;
    };
    s.script(
        "/cgi-bin/message/send",
        vec![ok(
            serde_json::json!({"errcode": 42001, "errmsg": "access_token expired"}),
        )],
    );
    let first = s
        .send(&s.job(NotificationKind::NewAssignment, &["s0"]))
        .await;
    assert_eq!(
        outcome(&first, ChannelKind::Wecom, "s0"),
        Outcome::Delivered
    );
    let sends = s.rx.seen("/cgi-bin/message/send");
    assert_eq!(sends.len(), 2);
    assert_eq!(sends[0].query, "access_token=tok-1");
    assert_eq!(sends[1].query, "access_token=tok-2");
    assert_eq!(
        first
            .deliveries
            .iter()
            .find(|d| d.channel == Some(ChannelKind::Wecom))
            .unwrap()
            .attempts,
        1,
        "the refresh is part of the same attempt"
    );
    // The fresh token is reused by later jobs.
    s.send(&s.job(NotificationKind::ClaimOffer, &["s0"])).await;
    assert_eq!(s.rx.seen("/cgi-bin/gettoken").len(), 2);
    assert_eq!(
        s.rx.seen("/cgi-bin/message/send")[2].query,
        "access_token=tok-2"
    );

    // A token refused twice in a row is a transient failure, not a loop.
    s.script(
        "/cgi-bin/message/send",
        vec![
            ok(serde_json::json!({"errcode": 40014, "errmsg": "invalid access_token"})),
            ok(serde_json::json!({"errcode": 40014, "errmsg": "invalid access_token"})),
        ],
    );
    let refused = s
        .send(&s.job(NotificationKind::NewAssignment, &["s0"]))
        .await;
    assert_eq!(
        refused
            .deliveries
            .iter()
            .find(|d| d.channel == Some(ChannelKind::Wecom))
            .unwrap()
            .attempts,
        2,
        "the second attempt succeeded with the default reply"
    );
    assert_eq!(
        outcome(&refused, ChannelKind::Wecom, "s0"),
        Outcome::Delivered
    );
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff_and_4xx_is_not() {
    let Some(s) = setup(&[5], |_| {}).await else {
        return;
    };
    s.script("/crm", vec![status(503), status(502)]);
    let job = s.job(NotificationKind::NewAssignment, &["s0"]);
    let report = s.send(&job).await;
    let crm: &DeliveryReport = report
        .deliveries
        .iter()
        .find(|d| d.channel == Some(ChannelKind::Webhook))
        .unwrap();
    assert_eq!((crm.outcome.clone(), crm.attempts), (Outcome::Delivered, 3));
    assert_eq!(s.rx.seen("/crm").len(), 3);

    s.script("/crm", vec![status(400)]);
    let job = s.job(NotificationKind::NewAssignment, &["s0"]);
    let report = s.send(&job).await;
    assert_eq!(
        outcome(&report, ChannelKind::Webhook, "crm"),
        Outcome::Permanent("HTTP 400".into())
    );
    assert!(!report.needs_retry(), "a 4xx is recorded, not retried");
    assert_eq!(s.rx.seen("/crm").len(), 4);
    let trail = s.trail(&job.lead_id).await;
    assert!(trail
        .iter()
        .any(|(a, d)| *a == AuditAction::NotificationFailed && d.contains("HTTP 400; permanent")));
    // Redelivered: the CRM is not called again.
    s.send(&job).await;
    assert_eq!(s.rx.seen("/crm").len(), 4);
}

#[tokio::test]
async fn timeouts_exhaust_the_retries_and_the_job_ends_in_the_dlq() {
    let Some(s) = setup(&[5], |c| c.request_timeout = Duration::from_millis(200)).await else {
        return;
    };
    s.always("/crm", slow(Duration::from_secs(2)));
    let sqs = &s.w.stack.clients.sqs;
    // A queue like the template's, redriving to a DLQ after 2 receives, with
    // a visibility of 1 s so the test need not wait 3 minutes.
    let dlq = scratch_queue_like(sqs, &s.w.stack.settings.queues.notification).await;
    let dlq_arn = queue_arn(sqs, &dlq).await;
    let queue = sqs
        .create_queue()
        .queue_name(unique("notify-redrive"))
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
            "1",
        )
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy,
            serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2}).to_string(),
        )
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let job = s.job(NotificationKind::NewAssignment, &["s0"]);
    sqs.send_message()
        .queue_url(&queue)
        .message_body(serde_json::to_string(&job).unwrap())
        .send()
        .await
        .unwrap();

    // What the Lambda event source mapping does: receive, invoke, delete what succeeded.
    let mut invocations = 0;
    for _round in 0..12 {
        let received = sqs
            .receive_message()
            .queue_url(&queue)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default();
        if received.is_empty() {
            if !drain_peek(sqs, &dlq).await.is_empty() {
                break;
            }
            continue;
        }
        invocations += 1;
        let mut event = SqsEvent::default();
        event.records = received
            .iter()
            .map(|m| sqs_message(m.message_id.as_deref().unwrap(), m.body.clone().unwrap()))
            .collect();
        let response = s.notifier.handle_batch(event, deadline()).await;
        for m in &received {
            let failed = response
                .batch_item_failures
                .iter()
                .any(|f| Some(f.item_identifier.as_str()) == m.message_id.as_deref());
            if !failed {
                sqs.delete_message()
                    .queue_url(&queue)
                    .receipt_handle(m.receipt_handle.clone().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
    }
    let dead = drain(sqs, &dlq).await;
    assert_eq!(dead.len(), 1, "after {invocations} invocations");
    assert_eq!(
        serde_json::from_str::<NotificationJob>(&dead[0]).unwrap(),
        job
    );
    assert_eq!(invocations, 2, "maxReceiveCount");
    // Each invocation made its 3 attempts at the CRM; WeCom was delivered on
    // the first and never repeated.
    assert_eq!(s.rx.seen("/crm").len(), 6);
    assert_eq!(s.rx.seen("/cgi-bin/message/send").len(), 1);
    let trail = s.trail(&job.lead_id).await;
    let retries: Vec<&String> = trail
        .iter()
        .filter(|(a, _)| *a == AuditAction::NotificationFailed)
        .map(|(_, d)| d)
        .collect();
    assert_eq!(retries.len(), 2, "{trail:?}");
    assert!(retries
        .iter()
        .all(|d| d.contains("timed out; will retry (3 attempts)")));
}

/// Whatever is on the queue, without consuming it (received, then made visible again).
async fn drain_peek(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<String> {
    let out = sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .visibility_timeout(0)
        .send()
        .await
        .unwrap();
    out.messages
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.body)
        .collect()
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone()
}

#[tokio::test]
async fn members_over_their_rate_are_left_for_sqs_to_retry() {
    let Some(s) = setup(&[5], |c| {
        c.wecom.as_mut().unwrap().per_member_per_minute = 2;
        c.webhook = None;
    })
    .await
    else {
        return;
    };
    let mut reports = Vec::new();
    for _ in 0..3 {
        reports.push(
            s.send(&s.job(NotificationKind::NewAssignment, &["s0"]))
                .await,
        );
    }
    assert_eq!(
        outcome(&reports[0], ChannelKind::Wecom, "s0"),
        Outcome::Delivered
    );
    assert_eq!(
        outcome(&reports[1], ChannelKind::Wecom, "s0"),
        Outcome::Delivered
    );
    assert!(
        matches!(outcome(&reports[2], ChannelKind::Wecom, "s0"), Outcome::Retry(r) if r.contains("a minute")),
        "{:?}",
        reports[2]
    );
    assert!(reports[2].needs_retry());
    assert_eq!(s.rx.seen("/cgi-bin/message/send").len(), 2);
    // Another member is not held back by s0's window.
    let other = s.send(&s.job(NotificationKind::SlaWarning, &[])).await;
    assert_eq!(
        outcome(&other, ChannelKind::Wecom, "mgr"),
        Outcome::Delivered
    );
}

#[tokio::test]
async fn warnings_without_recipients_go_to_the_managers_and_rankings_too() {
    let Some(s) = setup(&[5], |_| {}).await else {
        return;
    };
    // (`no_one_available` goes to the managers as one summary per window:
    // tests/tests/manager_storm.rs.)
    let job = s.job(NotificationKind::SlaWarning, &[]);
    let report = s.send(&job).await;
    assert_eq!(
        outcome(&report, ChannelKind::Wecom, "mgr"),
        Outcome::Delivered
    );
    let card = s.rx.seen("/cgi-bin/message/send")[0].json();
    assert_eq!(card["touser"], "wx-mgr");
    assert!(card["textcard"]["description"]
        .as_str()
        .unwrap()
        .contains("首次联系时限"));

    let ranking = RankingNotice {
        job_id: RankingNotice::job_id(
            &s.w.brand,
            &format!("{}-jn", s.w.brand),
            NaiveDate::from_ymd_opt(2026, 11, 23).unwrap(),
        ),
        kind: NotificationKind::RankingPublished,
        brand_id: s.w.brand.clone(),
        dealer_id: format!("{}-jn", s.w.brand),
        recipients: vec![],
        date: NaiveDate::from_ymd_opt(2026, 11, 23).unwrap(),
        rank: 2,
        dealers: 12,
        tier: "S".into(),
        previous_rank: Some(4),
        score: None,
        best_gain: None,
        created_at: Utc::now(),
    };
    let body = serde_json::to_string(&Notice::Ranking(ranking)).unwrap();
    let report = s
        .notifier
        .handle_message(&sqs_message("r-1", body), deadline())
        .await
        .unwrap();
    assert_eq!(
        outcome(&report, ChannelKind::Wecom, "mgr"),
        Outcome::Delivered
    );
    let card = s.rx.seen("/cgi-bin/message/send")[1].json();
    assert!(card["textcard"]["description"]
        .as_str()
        .unwrap()
        .contains("第2名／共12家，等级S，较上期上升2名"));
    assert_eq!(
        s.rx.seen("/crm").len(),
        1,
        "rankings are not lead hand-offs"
    );
}

#[tokio::test]
async fn unknown_recipients_and_malformed_jobs() {
    let Some(s) = setup(&[5], |_| {}).await else {
        return;
    };
    let job = s.job(NotificationKind::NewAssignment, &["nobody"]);
    let report = s.send(&job).await;
    assert!(matches!(
        &report.deliveries.iter().find(|d| d.recipient.ends_with("nobody")).unwrap().outcome,
        Outcome::Permanent(r) if r.contains("not on the dealer's staff")
    ));
    assert!(!report.needs_retry());

    let mut event = SqsEvent::default();
    event.records = vec![
        sqs_message("bad", "{\"kind\":\"new_assignment\"}".into()),
        sqs_message(
            "good",
            serde_json::to_string(&s.job(NotificationKind::NewAssignment, &["s0"])).unwrap(),
        ),
    ];
    let response = s.notifier.handle_batch(event, deadline()).await;
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["bad"]);
}

impl Setup {
    fn script(&self, path: &str, replies: Vec<Reply>) {
        self.rx.script(path, replies);
    }

    fn always(&self, path: &str, reply: Reply) {
        self.rx.always(path, reply);
    }
}

/// What the Lambda event source mapping does once: receive a batch (with the
/// receive count), invoke, delete what succeeded. Returns the failed ids.
async fn one_invocation(
    notifier: &Notifier,
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
) -> Vec<String> {
    let received = sqs
        .receive_message()
        .queue_url(queue)
        .max_number_of_messages(10)
        .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    let mut event = SqsEvent::default();
    event.records = received
        .iter()
        .map(|m| {
            let mut message =
                sqs_message(m.message_id.as_deref().unwrap(), m.body.clone().unwrap());
            for (k, v) in m.attributes.clone().unwrap_or_default() {
                message.attributes.insert(k.as_str().to_string(), v);
            }
            message
        })
        .collect();
    let response = notifier.handle_batch(event, deadline()).await;
    let failed: Vec<String> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    for m in &received {
        if !failed
            .iter()
            .any(|f| Some(f.as_str()) == m.message_id.as_deref())
        {
            sqs.delete_message()
                .queue_url(queue)
                .receipt_handle(m.receipt_handle.clone().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    failed
}

/// The DLQ's messages with their `failure` attribute (consumed).
async fn dead_letters(sqs: &aws_sdk_sqs::Client, dlq: &str) -> Vec<(String, Option<String>)> {
    let out = sqs
        .receive_message()
        .queue_url(dlq)
        .max_number_of_messages(10)
        .message_attribute_names("All")
        .wait_time_seconds(0)
        .send()
        .await
        .unwrap();
    let mut found = Vec::new();
    for m in out.messages.unwrap_or_default() {
        sqs.delete_message()
            .queue_url(dlq)
            .receipt_handle(m.receipt_handle.clone().unwrap())
            .send()
            .await
            .unwrap();
        let failure = m
            .message_attributes
            .as_ref()
            .and_then(|a| a.get("failure"))
            .and_then(|v| v.string_value.clone());
        found.push((m.body.unwrap_or_default(), failure));
    }
    found
}

/// No silent failure: with no channel configured (a stack deployed with
/// `NotificationsDisabled=true`, or channels unset) the job reaches nobody, so
/// it is acknowledged on the notification queue and sent, as it was, to the
/// DLQ with the reason; a job that was delivered is not.
#[tokio::test]
async fn an_unconfigured_channel_dead_letters_the_job() {
    let Some(s) = setup(&[5], |_| {}).await else {
        return;
    };
    let sqs = &s.w.stack.clients.sqs;
    let (queue, dlq) = scratch_queue_with_dlq(sqs, "notify-unconfigured", Some(2), 5).await;
    let mut unconfigured = config(&s.rx);
    unconfigured.wecom = None;
    unconfigured.sms = None;
    unconfigured.webhook = None;
    let notifier = Notifier::new(&s.w.stack.settings, &s.w.stack.clients, unconfigured)
        .unwrap()
        .with_dead_letter_queue(&dlq);

    let job = s.job(NotificationKind::NewAssignment, &["s0"]);
    let body = serde_json::to_string(&job).unwrap();
    sqs.send_message()
        .queue_url(&queue)
        .message_body(&body)
        .send()
        .await
        .unwrap();
    assert!(
        one_invocation(&notifier, sqs, &queue).await.is_empty(),
        "acknowledged, not retried"
    );
    assert!(drain(sqs, &queue).await.is_empty(), "nothing left to retry");
    let dead = dead_letters(sqs, &dlq).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(
        serde_json::from_str::<NotificationJob>(&dead[0].0).unwrap(),
        job
    );
    assert_eq!(
        dead[0].1.as_deref(),
        Some(
            format!(
                "{} via none: no configured channel reaches them",
                s.id("s0")
            )
            .as_str()
        )
    );
    assert!(s.rx.all().is_empty(), "no channel was called");
    let trail = s.trail(&job.lead_id).await;
    assert!(
        trail
            .iter()
            .any(|(a, d)| *a == AuditAction::NotificationFailed
                && d.contains("no configured channel"))
    );

    // The same with the channels on: delivered, nothing dead-lettered.
    let configured = Notifier::new(&s.w.stack.settings, &s.w.stack.clients, config(&s.rx))
        .unwrap()
        .with_dead_letter_queue(&dlq);
    let delivered = s.job(NotificationKind::NewAssignment, &["s0"]);
    sqs.send_message()
        .queue_url(&queue)
        .message_body(serde_json::to_string(&delivered).unwrap())
        .send()
        .await
        .unwrap();
    assert!(one_invocation(&configured, sqs, &queue).await.is_empty());
    assert_eq!(s.rx.seen("/cgi-bin/message/send").len(), 1);
    assert!(dead_letters(sqs, &dlq).await.is_empty());
}

/// A job still failing on its last receive is counted as failed (SQS's
/// redrive policy moves it to the DLQ, so the notifier does not send it
/// there too); before the last receive it is neither.
#[tokio::test]
async fn the_last_receive_of_a_failing_job_counts_it_failed() {
    let Some(s) = setup(&[5], |_| {}).await else {
        return;
    };
    let (_, dlq) = scratch_queue_with_dlq(&s.w.stack.clients.sqs, "notify-last", None, 5).await;
    let notifier = Notifier::new(&s.w.stack.settings, &s.w.stack.clients, config(&s.rx))
        .unwrap()
        .with_dead_letter_queue(&dlq)
        .with_max_receive_count(5);
    let report = JobReport {
        job_id: "j".into(),
        deliveries: vec![DeliveryReport {
            channel: Some(ChannelKind::Webhook),
            recipient: "crm".into(),
            outcome: Outcome::Retry("HTTP 503".into()),
            attempts: 3,
        }],
    };
    let none = Disposition {
        failed: vec![],
        dead_lettered: false,
    };
    assert_eq!(notifier.dead_letter("{}", &report, 4).await.unwrap(), none);
    assert_eq!(
        notifier.dead_letter("{}", &report, 5).await.unwrap(),
        Disposition {
            failed: vec![("webhook".into(), 1)],
            dead_lettered: false,
        }
    );
    assert!(dead_letters(&s.w.stack.clients.sqs, &dlq).await.is_empty());
}

/// A hand-off of a WeCom contact: the notifier moves the contact to the new
/// consultant in WeCom once (in service, or from a member who left), on the
/// corp it holds the credentials of; a contact of another corp is reported,
/// not sent anywhere.
#[tokio::test]
async fn a_handed_off_wecom_contact_is_transferred_once() {
    let Some(s) = setup(&[5], |_| {}).await else {
        return;
    };
    use leads_domain::notification::WecomTransfer;
    let transfer = |corp: &str, resigned: bool| WecomTransfer {
        corp_id: corp.into(),
        external_userid: "wm-customer-1".into(),
        handover_userid: "wx-s9".into(),
        takeover_userid: "wx-s0".into(),
        resigned,
    };
    let mut job = s.job(NotificationKind::Reassigned, &["s0"]);
    job.wecom_transfer = Some(transfer("corp-1", false));
    let report = s.send(&job).await;
    let moved = report
        .deliveries
        .iter()
        .find(|d| d.channel == Some(ChannelKind::WecomTransfer))
        .expect("a transfer delivery");
    assert_eq!(
        (moved.recipient.as_str(), &moved.outcome),
        ("wm-customer-1", &Outcome::Delivered)
    );
    let calls = s.rx.seen("/cgi-bin/externalcontact/transfer_customer");
    assert_eq!(calls.len(), 1);
    let body: serde_json::Value = serde_json::from_str(&calls[0].body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"handover_userid": "wx-s9", "takeover_userid": "wx-s0",
            "external_userid": ["wm-customer-1"]})
    );
    assert!(
        calls[0].query.contains("access_token=tok-"),
        "with the app's token"
    );
    // Delivered again (SQS): not moved twice.
    let again = s.send(&job).await;
    assert!(again
        .deliveries
        .iter()
        .any(|d| d.channel == Some(ChannelKind::WecomTransfer)
            && d.outcome == Outcome::AlreadyDelivered));
    assert_eq!(
        s.rx.seen("/cgi-bin/externalcontact/transfer_customer")
            .len(),
        1
    );

    // A member who left: WeCom's resigned-member transfer.
    let mut left = s.job(NotificationKind::Reassigned, &["s0"]);
    left.wecom_transfer = Some(transfer("corp-1", true));
    s.send(&left).await;
    assert_eq!(
        s.rx.seen("/cgi-bin/externalcontact/resigned/transfer_customer")
            .len(),
        1
    );

    // Another corp's contact: nothing sent, the report says why.
    let mut elsewhere = s.job(NotificationKind::Reassigned, &["s0"]);
    elsewhere.wecom_transfer = Some(transfer("corp-of-a-dealer", false));
    let report = s.send(&elsewhere).await;
    assert!(
        report
            .deliveries
            .iter()
            .any(|d| d.recipient == "wm-customer-1" && d.channel.is_none()),
        "{report:?}"
    );
    assert_eq!(
        s.rx.seen("/cgi-bin/externalcontact/transfer_customer")
            .len(),
        1
    );

    // WeCom refusing the customer (moved twice in 90 days): refused for good.
    s.script(
        "/cgi-bin/externalcontact/transfer_customer",
        vec![ok(serde_json::json!({"errcode": 0, "errmsg": "ok",
            "customer": [{"external_userid": "wm-customer-1", "errcode": 40100}]}))],
    );
    let mut refused = s.job(NotificationKind::Reassigned, &["s0"]);
    refused.wecom_transfer = Some(transfer("corp-1", false));
    let report = s.send(&refused).await;
    assert!(
        report
            .deliveries
            .iter()
            .any(|d| d.channel == Some(ChannelKind::WecomTransfer)
                && matches!(d.outcome, Outcome::Permanent(_))),
        "{report:?}"
    );
    assert!(!report.needs_retry());
}

// ------------------------------------------------------------ brand CRM events

const BRAND_CRM_KEY: &str = "brand-crm-key";

/// The brand's own CRM hears every status change a consultant makes through
/// the staff API, and every lead no dealer could take, once each however
/// often SQS delivers the message, signed with the brand's key; a status
/// change the CRM rejects (4xx) is recorded, not retried, and dead-lettered;
/// a brand without a CRM gets no status events, and its unroutable leads go
/// to the CRM DLQ for the operators.
#[tokio::test]
async fn the_brands_crm_hears_every_status_change_and_unroutable_lead_once() {
    let Some(s) = setup(&[5], |_| {}).await else {
        return;
    };
    let sqs = &s.w.stack.clients.sqs;
    let mut cfg = config(&s.rx);
    cfg.brand_crms = notifier::config::BrandCrms::new(
        [(
            s.w.brand.clone(),
            WebhookConfig {
                url: format!("{}/brand-crm", s.rx.base),
                secret: Secret::new(BRAND_CRM_KEY),
            },
        )]
        .into(),
    );
    let (_, crm_dlq) = scratch_queue_with_dlq(sqs, "crm-events", Some(5), 5).await;
    let notifier = Notifier::new(&s.w.stack.settings, &s.w.stack.clients, cfg)
        .unwrap()
        .with_crm_dead_letter_queue(&crm_dlq);

    // A lead, moved through the funnel by its consultant through the API.
    let number = phone();
    let routed =
        s.w.router
            .handle_lead(
                &lead(&s.w, Platform::Douyin, "dy-jn", &number, None),
                Utc::now(),
            )
            .await
            .unwrap();
    let lead_id = routed.lead_id.unwrap();
    drain(sqs, &s.w.notifications).await;
    let mut settings = s.w.stack.settings.clone();
    settings.queues.notification = s.w.notifications.clone();
    settings.queues.crm = s.w.crm.clone();
    let api = api::Api::new(&settings, &s.w.stack.clients, b"crm-test".to_vec());
    let consultant = s.id("s0");
    let token = leads_domain::auth::issue(
        b"crm-test",
        &leads_domain::auth::Claims::staff(
            &consultant,
            &format!("{}-jn", s.w.brand),
            &s.w.brand,
            leads_domain::directory::StaffRole::Sales,
            Utc::now(),
            600,
        ),
    );
    // The test's own record of what happened: four changes; the repeated
    // `contacted` changes nothing and must not reach the CRM.
    let sent = ["contacted", "contacted", "invited", "visited", "won"];
    for event in sent {
        let request = lambda_http::http::Request::builder()
            .method("POST")
            .uri(format!("/leads/{lead_id}/events"))
            .header("authorization", format!("Bearer {token}"))
            .body(lambda_http::Body::from(format!(r#"{{"event":"{event}"}}"#)))
            .unwrap();
        let response = api.handle(request).await;
        assert_eq!(response.status(), 200, "{event}: {:?}", response.body());
    }
    let expected = [
        ("contacted", "assigned", "contacted"),
        ("invited", "contacted", "invited"),
        ("visited", "invited", "visited"),
        ("won", "visited", "won"),
    ];

    // And a lead no dealer can take: a brand account, no city.
    let unrouted =
        s.w.router
            .handle_lead(
                &lead(&s.w, Platform::Douyin, "dy-brand", &phone(), None),
                Utc::now(),
            )
            .await
            .unwrap();
    let unrouted_id = unrouted.lead_id.unwrap();

    let bodies = drain(sqs, &s.w.crm).await;
    assert_eq!(bodies.len(), expected.len() + 1, "{bodies:?}");
    // Every message delivered twice (SQS is at least once).
    let mut event = SqsEvent::default();
    event.records = bodies
        .iter()
        .chain(&bodies)
        .enumerate()
        .map(|(i, b)| sqs_message(&format!("m-{i}"), b.clone()))
        .collect();
    let response = notifier.handle_batch(event, deadline()).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");

    let posts = s.rx.seen("/brand-crm");
    assert_eq!(posts.len(), expected.len() + 1, "once each");
    let mut changes = Vec::new();
    for post in &posts {
        let ts = &post.headers["x-timestamp"];
        assert_eq!(
            post.headers["x-signature"],
            signature(BRAND_CRM_KEY, ts, post.body.as_bytes()),
            "signed with the brand's key"
        );
        let body = post.json();
        assert_eq!(
            post.headers["x-event-id"],
            body["event_id"].as_str().unwrap()
        );
        assert_eq!(body["brand_id"], s.w.brand.as_str());
        if body["kind"] == "status_changed" {
            assert_eq!(body["lead_id"], lead_id.as_str());
            assert_eq!(body["status"]["by"], consultant.as_str());
            changes.push((
                body["status"]["event"].as_str().unwrap().to_string(),
                body["status"]["from"].as_str().unwrap().to_string(),
                body["status"]["to"].as_str().unwrap().to_string(),
            ));
        } else {
            assert_eq!(body["kind"], "unroutable");
            assert_eq!(body["lead_id"], unrouted_id.as_str());
            assert_eq!(body["unrouted"]["reason"], "city_unknown");
            assert_eq!(
                body["unrouted"]["account_id"],
                format!("{}-dy-brand", s.w.brand)
            );
            assert!(body["phone_masked"].as_str().unwrap().contains("****"));
        }
    }
    changes.sort();
    let mut want: Vec<(String, String, String)> = expected
        .iter()
        .map(|(e, f, t)| (e.to_string(), f.to_string(), t.to_string()))
        .collect();
    want.sort();
    assert_eq!(changes, want);
    s.assert_no_full_phone(&[&lead_id, &unrouted_id]);
    assert!(
        !posts.iter().any(|p| p.body.contains(number.as_str())),
        "the customer's number is nowhere"
    );
    // Audited on the lead, like every other delivery.
    let trail = s.trail(&lead_id).await;
    let told = trail
        .iter()
        .filter(|(a, d)| {
            *a == AuditAction::Notified && d.starts_with("status_changed via brand_crm")
        })
        .count();
    assert_eq!(told, expected.len(), "{trail:?}");
    assert!(dead_letters(sqs, &crm_dlq).await.is_empty());

    // A status change the CRM refuses for good: recorded, dead-lettered, not retried.
    s.rx.script("/brand-crm", vec![status(422)]);
    let refused = CrmEvent::status_changed(
        &s.w.leads.get(&lead_id).await.unwrap().unwrap(),
        leads_domain::status::StatusEvent::MarkedValid,
        leads_domain::lead::LeadStatus::Won,
        None,
        &consultant,
        Utc::now(),
    );
    let body = serde_json::to_string(&refused).unwrap();
    let report = notifier
        .handle_message(&sqs_message("m-refused", body.clone()), deadline())
        .await
        .unwrap();
    assert!(!report.needs_retry());
    let dead = dead_letters(sqs, &crm_dlq).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].0, body);
    assert!(
        dead[0].1.as_deref().unwrap().contains("HTTP 422"),
        "{dead:?}"
    );

    // A brand with no CRM: its status change goes nowhere (nothing to
    // retry, nothing dead-lettered); its unroutable lead is dead-lettered.
    let before = s.rx.seen("/brand-crm").len();
    let mut elsewhere = refused.clone();
    elsewhere.brand_id = Some(unique("brand-without-crm"));
    elsewhere.event_id = unique("evt");
    let report = notifier
        .handle_message(
            &sqs_message("m-x", serde_json::to_string(&elsewhere).unwrap()),
            deadline(),
        )
        .await
        .unwrap();
    assert!(report.deliveries.is_empty() && !report.needs_retry());
    assert!(dead_letters(sqs, &crm_dlq).await.is_empty());
    let mut nobody_takes = CrmEvent::unroutable(
        &s.w.leads.get(&unrouted_id).await.unwrap().unwrap(),
        leads_domain::routing::UnroutableReason::CityUnknown,
        Utc::now(),
    );
    nobody_takes.brand_id = elsewhere.brand_id.clone();
    let report = notifier
        .handle_message(
            &sqs_message("m-y", serde_json::to_string(&nobody_takes).unwrap()),
            deadline(),
        )
        .await
        .unwrap();
    assert!(!report.needs_retry());
    let dead = dead_letters(sqs, &crm_dlq).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(
        dead[0]
            .1
            .as_deref()
            .unwrap()
            .contains("has no CRM endpoint"),
        "{dead:?}"
    );
    assert_eq!(s.rx.seen("/brand-crm").len(), before, "no CRM was called");
}
