//! The notifier: for each job on the notification queue,
//!
//! 0. fold a `no_one_available` job into its dealer's summary for the window
//!    (`leads_domain::pool_notice`): the managers get one message per window
//!    naming how many leads wait, not one per lead;
//! 1. resolve the recipients (staff ids, or the dealer's managers when a
//!    warning names nobody) in the directory (the dealer's staff cached per
//!    instance for [`DIRECTORY_TTL`]);
//! 2. render the text (pure: `leads_domain::templates`);
//! 3. plan one delivery per recipient and channel: WeCom for staff with a
//!    userid, SMS for staff with only a mobile, the brand's CRM webhook once
//!    per lead job;
//! 4. claim the job (`notify#{job}`, one conditional update that also returns
//!    the deliveries earlier copies did) so a job SQS delivers twice reaches
//!    nobody twice;
//! 5. deliver with retries and backoff inside the invocation's time; a
//!    recipient WeCom rejects for good gets an SMS instead if they have a
//!    mobile;
//! 6. record the deliveries done on the job's item and every delivery on the
//!    lead's audit trail, in one transaction. A transient failure
//!    fails the message, so SQS retries it (and after maxReceiveCount moves
//!    it to the DLQ); a permanent one is recorded and not retried;
//! 7. a lifecycle event for the brand's own CRM (`Notice::Crm`, from the CRM
//!    queue: status changes, unroutable leads) goes to that brand's endpoint
//!    only (`brand_crms` in the notifier secret), through the same claim,
//!    retries and audit; an unroutable lead its brand has no CRM for goes to
//!    the CRM queue's DLQ, a status change is skipped (logged);
//! 8. no silent failure: a job that reached someone on no channel (none
//!    configured, recipient unknown, refused for good) is sent to the
//!    notification DLQ with the reasons, and counted (EMF
//!    `NotificationsFailed` per channel), see [`Notifier::dead_letter`].

pub mod channels;
pub mod config;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::{DateTime, Utc};
use leads_aws::secrets::CachedSecret;
use leads_aws::store::{
    DirectoryStore, DynamoAudit, DynamoDirectory, DynamoJobLedger, DynamoPoolNotices, Fold,
    JobClaim, JobState, SqsQueue,
};
use leads_aws::{AwsClients, Settings, StoreError};
use leads_domain::audit::{Actor, AuditAction, AuditEvent};
use leads_domain::delivery::{ChannelKind, Failure};
use leads_domain::directory::{Staff, StaffRole};
use leads_domain::notification::{Notice, NotificationJob};
use leads_domain::pool_notice::{self, PoolSummary};
use leads_domain::templates;
use serde::Serialize;
use tokio::time::Instant;

use channels::{
    Address, BrandCrmChannel, Channel, Envelope, Recipient, SmsChannel, WebhookChannel,
    WecomChannel,
};
use config::{NotifierConfig, NotifierSecrets};

const ACTOR: &str = "notifier";
/// How long a dealer's staff (roles, WeCom ids, mobiles) is reused across jobs
/// and invocations (`NOTIFY_DIRECTORY_TTL_SECONDS`): a directory change reaches
/// notifications within this bound. A recipient missing from the cached list
/// is looked up again at once, so new staff are never dropped.
pub const DIRECTORY_TTL: Duration = Duration::from_secs(60);
/// Audit events that fit in the completion transaction with the job's item.
const AUDIT_IN_TRANSACTION: usize = 99;
/// The recipient id of the brand's CRM webhook.
pub const CRM_RECIPIENT: &str = "crm";

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// Not a job the producers send; retrying will not help (it ends in the DLQ).
    #[error("malformed job: {0}")]
    Malformed(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How one delivery ended in this invocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", content = "reason", rename_all = "snake_case")]
pub enum Outcome {
    Delivered,
    /// An earlier delivery of the same job already reached this recipient.
    AlreadyDelivered,
    /// Recorded and dropped: a 4xx, an unknown WeCom user, nobody to reach.
    Permanent(String),
    /// Left for SQS to retry: a 5xx or timeout after the retries that fit,
    /// a rate limit, or another copy of the job delivering right now.
    Retry(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryReport {
    /// `None`: no configured channel reaches this recipient.
    pub channel: Option<ChannelKind>,
    /// Staff id, or `crm`.
    pub recipient: String,
    pub outcome: Outcome,
    /// HTTP attempts made in this invocation.
    pub attempts: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobReport {
    pub job_id: String,
    pub deliveries: Vec<DeliveryReport>,
}

impl JobReport {
    /// Whether SQS should deliver the job again.
    pub fn needs_retry(&self) -> bool {
        self.deliveries
            .iter()
            .any(|d| matches!(d.outcome, Outcome::Retry(_)))
    }
}

/// A delivery to make: who, on which channel.
struct Planned {
    channel: ChannelKind,
    recipient: Recipient,
}

pub struct Notifier {
    config: NotifierConfig,
    /// Where the channels' keys are re-read from (`None`: fixed keys).
    secrets: Option<CachedSecret<NotifierSecrets>>,
    directory: DynamoDirectory,
    audit: DynamoAudit,
    ledger: DynamoJobLedger,
    staff_cache: Mutex<HashMap<String, (Instant, Vec<Staff>)>>,
    directory_ttl: Duration,
    pool_notices: DynamoPoolNotices,
    /// Where the managers' summaries wait for the end of their window.
    notification_queue: SqsQueue,
    pool_window: Duration,
    wecom: Option<WecomChannel>,
    sms: Option<SmsChannel>,
    webhook: Option<WebhookChannel>,
    /// Each brand's own CRM (the endpoints rotate with the secret).
    brand_crm: BrandCrmChannel,
    /// Audit items are keyed by time and action: every event gets its own
    /// microsecond so two deliveries of one job never overwrite each other.
    audit_clock: Mutex<DateTime<Utc>>,
    /// Where a job that could not reach someone goes (the notification
    /// queue's own DLQ, `NOTIFICATION_DLQ_URL`).
    dead_letters: Option<SqsQueue>,
    /// Where a CRM event no CRM takes goes (`CRM_DLQ_URL`).
    crm_dead_letters: Option<SqsQueue>,
    /// The queue's `maxReceiveCount`: a job still failing on this receive is
    /// moved to the DLQ by SQS itself, and counted as failed here.
    max_receive_count: u32,
}

/// What [`Notifier::dead_letter`] did with a finished job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Disposition {
    /// Deliveries that failed for good (or on the last receive), per channel
    /// (`none`: no configured channel reaches the recipient).
    pub failed: Vec<(String, u64)>,
    /// The job was sent to the DLQ.
    pub dead_lettered: bool,
}

impl Notifier {
    pub async fn from_env() -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let settings = Settings::from_env()?;
        let clients = AwsClients::from_env().await;
        // The channels' keys from Secrets Manager, read again after their TTL.
        let secrets = CachedSecret::from_env(
            &clients.secrets,
            leads_aws::secrets::NOTIFIER_SECRET_ID,
            NotifierSecrets::from_json,
        )
        .await?;
        let config = NotifierConfig::from_env(&*secrets.get().await)?;
        let ttl =
            leads_aws::config::number("NOTIFY_DIRECTORY_TTL_SECONDS", DIRECTORY_TTL.as_secs())?;
        let window = leads_aws::config::number(
            "NOTIFY_POOL_WINDOW_SECONDS",
            pool_notice::DEFAULT_WINDOW.as_secs(),
        )?;
        let max_receives = leads_aws::config::number("NOTIFY_MAX_RECEIVE_COUNT", 5)?;
        let mut notifier = Self::new(&settings, &clients, config)?
            .with_rotating_secrets(secrets)
            .with_directory_ttl(Duration::from_secs(ttl))
            .with_pool_window(Duration::from_secs(window))
            .with_max_receive_count(max_receives as u32);
        match leads_aws::config::optional("NOTIFICATION_DLQ_URL") {
            Some(url) => notifier = notifier.with_dead_letter_queue(&url),
            None => tracing::warn!(
                "NOTIFICATION_DLQ_URL unset: undeliverable jobs are counted and logged only"
            ),
        }
        match leads_aws::config::optional("CRM_DLQ_URL") {
            Some(url) => notifier = notifier.with_crm_dead_letter_queue(&url),
            None => tracing::warn!(
                "CRM_DLQ_URL unset: CRM events no CRM takes are counted and logged only"
            ),
        }
        Ok(notifier)
    }

    /// Keys re-read after their TTL: a rotation reaches the channels at the
    /// next batch (without it the keys are those of the config, fixed).
    pub fn with_rotating_secrets(mut self, secrets: CachedSecret<NotifierSecrets>) -> Self {
        self.secrets = Some(secrets);
        self
    }

    /// Sends jobs that cannot reach a recipient to `url` (the notification DLQ).
    pub fn with_dead_letter_queue(mut self, url: &str) -> Self {
        self.dead_letters = Some(SqsQueue::new(self.notification_queue.client().clone(), url));
        self
    }

    /// Sends CRM events no CRM takes to `url` (the CRM queue's DLQ).
    pub fn with_crm_dead_letter_queue(mut self, url: &str) -> Self {
        self.crm_dead_letters = Some(SqsQueue::new(self.notification_queue.client().clone(), url));
        self
    }

    /// The notification queue's `maxReceiveCount` (default 5, as the template's).
    pub fn with_max_receive_count(mut self, receives: u32) -> Self {
        self.max_receive_count = receives.max(1);
        self
    }

    /// The managers' "nobody available" summary window (default
    /// `pool_notice::DEFAULT_WINDOW`; 0: one message per lead, as before).
    pub fn with_pool_window(mut self, window: Duration) -> Self {
        self.pool_window = window;
        self
    }

    /// How long the dealer's staff is reused (default [`DIRECTORY_TTL`]; 0: never).
    pub fn with_directory_ttl(mut self, ttl: Duration) -> Self {
        self.directory_ttl = ttl;
        self
    }

    pub fn new(
        settings: &Settings,
        clients: &AwsClients,
        config: NotifierConfig,
    ) -> Result<Self, reqwest::Error> {
        // A redirect is never followed: an endpoint that answers 3xx would
        // otherwise send the message (and its credentials) somewhere else.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout.min(Duration::from_secs(3)))
            .build()?;
        let t = &settings.tables;
        let db = clients.dynamodb.clone();
        Ok(Notifier {
            directory: DynamoDirectory::new(db.clone(), &t.directory),
            audit: DynamoAudit::new(db.clone(), &t.audit),
            pool_notices: DynamoPoolNotices::new(
                db.clone(),
                &t.idempotency,
                settings.idempotency_retention,
            ),
            notification_queue: SqsQueue::new(clients.sqs.clone(), &settings.queues.notification),
            pool_window: pool_notice::DEFAULT_WINDOW,
            ledger: DynamoJobLedger::new(
                db,
                &t.idempotency,
                settings.idempotency_retention,
                config.delivery_lease,
            ),
            staff_cache: Mutex::new(HashMap::new()),
            directory_ttl: DIRECTORY_TTL,
            wecom: config
                .wecom
                .clone()
                .map(|c| WecomChannel::new(http.clone(), c)),
            sms: config.sms.clone().map(|c| SmsChannel::new(http.clone(), c)),
            webhook: config
                .webhook
                .clone()
                .map(|c| WebhookChannel::new(http.clone(), c)),
            brand_crm: BrandCrmChannel::new(http.clone(), config.brand_crms.clone()),
            config,
            secrets: None,
            audit_clock: Mutex::new(DateTime::<Utc>::MIN_UTC),
            dead_letters: None,
            crm_dead_letters: None,
            max_receive_count: 5,
        })
    }

    /// Processes a batch within `deadline`; failed messages are reported so
    /// SQS redelivers only those.
    pub async fn handle_batch(&self, event: SqsEvent, deadline: Instant) -> SqsBatchResponse {
        if let Some(secrets) = &self.secrets {
            self.config.rotate(&*secrets.get().await);
        }
        let mut response = SqsBatchResponse::default();
        for message in event.records {
            let id = message.message_id.clone().unwrap_or_default();
            // Boxed: the whole delivery future is deep enough to overflow
            // rustc's layout query limit when nested in the runtime's.
            let retry = match Box::pin(self.handle_message(&message, deadline)).await {
                Ok(report) => report.needs_retry(),
                Err(err) => {
                    tracing::error!(message_id = %id, error = %err, "job failed");
                    true
                }
            };
            if retry {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                response.batch_item_failures.push(failure);
            }
        }
        response
    }

    pub async fn handle_message(
        &self,
        message: &SqsMessage,
        deadline: Instant,
    ) -> Result<JobReport, NotifyError> {
        let body = message.body.as_deref().unwrap_or_default();
        let notice = Notice::from_json(body).map_err(|e| NotifyError::Malformed(e.to_string()))?;
        let report = self.handle_notice(&notice, deadline).await?;
        let receives = message
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        let dlq = match notice {
            Notice::Crm(_) => self.crm_dead_letters.as_ref(),
            _ => self.dead_letters.as_ref(),
        };
        self.dead_letter_to(dlq, body, &report, receives).await?;
        Ok(report)
    }

    /// No silent failure: a job that failed for good to reach someone (no
    /// configured channel, a recipient unknown to the directory, a permanent
    /// refusal) is sent, as received, to the notification DLQ, with the
    /// reasons in its `failure` attribute, once it needs no retry; a job
    /// still failing on its last receive (`maxReceiveCount`) is left to SQS's
    /// redrive policy, which moves it there. Both count
    /// `NotificationsFailed` per channel (EMF). An error (the DLQ refused the
    /// message) fails the message, so SQS delivers it again.
    pub async fn dead_letter(
        &self,
        body: &str,
        report: &JobReport,
        receives: u32,
    ) -> Result<Disposition, NotifyError> {
        self.dead_letter_to(self.dead_letters.as_ref(), body, report, receives)
            .await
    }

    async fn dead_letter_to(
        &self,
        dead_letters: Option<&SqsQueue>,
        body: &str,
        report: &JobReport,
        receives: u32,
    ) -> Result<Disposition, NotifyError> {
        let last_receive = receives >= self.max_receive_count;
        let mut failed: std::collections::BTreeMap<String, u64> = Default::default();
        let mut reasons = Vec::new();
        for d in &report.deliveries {
            let channel = d.channel.map_or("none", ChannelKind::as_str);
            let counted = match &d.outcome {
                Outcome::Permanent(reason) => {
                    reasons.push(format!("{} via {channel}: {reason}", d.recipient));
                    true
                }
                Outcome::Retry(_) => last_receive,
                _ => false,
            };
            if counted {
                *failed.entry(channel.to_string()).or_default() += 1;
            }
        }
        for (channel, n) in &failed {
            leads_aws::emf::emit(
                Some(("Channel", channel)),
                &[(leads_aws::emf::names::NOTIFICATIONS_FAILED, *n)],
            );
        }
        let mut dead_lettered = false;
        if !reasons.is_empty() && !report.needs_retry() {
            let failure = reasons.join("; ");
            match dead_letters {
                Some(dlq) => {
                    dlq.send_raw(body, &[("failure", failure.as_str())]).await?;
                    dead_lettered = true;
                    leads_aws::emf::count(leads_aws::emf::names::NOTIFICATIONS_DEAD_LETTERED, 1);
                    tracing::warn!(job_id = %report.job_id, %failure, dlq = dlq.url(), "job could not reach everyone; sent to the dead-letter queue");
                }
                None => {
                    tracing::error!(job_id = %report.job_id, %failure, "job could not reach everyone and no dead-letter queue is configured")
                }
            }
        }
        Ok(Disposition {
            failed: failed.into_iter().collect(),
            dead_lettered,
        })
    }

    pub async fn handle_notice(
        &self,
        notice: &Notice,
        deadline: Instant,
    ) -> Result<JobReport, NotifyError> {
        match notice {
            Notice::Lead(job) if !self.pool_window.is_zero() && pool_notice::folds(job) => {
                self.fold(job, deadline).await
            }
            Notice::PoolSummary(summary) => {
                // Closed now: the count is final, the same on every redelivery.
                let leads = self.pool_notices.close(&summary.job_id).await?;
                if leads == 0 {
                    return Ok(JobReport {
                        job_id: summary.job_id.clone(),
                        deliveries: Vec::new(),
                    });
                }
                let closed = Notice::PoolSummary(PoolSummary {
                    leads,
                    ..summary.clone()
                });
                self.deliver(&closed, deadline).await
            }
            Notice::Crm(event) if !self.crm_takes(event) => {
                // Nothing to claim or record: the brand has no CRM to tell.
                tracing::info!(event_id = %event.event_id, brand_id = ?event.brand_id, kind = event.kind.as_str(), "the brand has no CRM endpoint; status event not sent");
                leads_aws::emf::count(leads_aws::emf::names::CRM_EVENTS_SKIPPED, 1);
                Ok(JobReport {
                    job_id: event.event_id.clone(),
                    deliveries: Vec::new(),
                })
            }
            _ => self.deliver(notice, deadline).await,
        }
    }

    /// Whether `event` goes anywhere: its brand has a CRM endpoint, or it is
    /// a lead nobody took (which, without one, is dead-lettered: someone
    /// must take it).
    fn crm_takes(&self, event: &leads_domain::crm::CrmEvent) -> bool {
        let served = event
            .brand_id
            .as_deref()
            .is_some_and(|b| self.brand_crm.serves(b));
        served || event.kind == leads_domain::crm::CrmEventKind::Unroutable
    }

    /// Counts a `no_one_available` job in its dealer's summary for the job's
    /// window, queueing the summary (delayed to the window's end) the first
    /// time. A job for a window already closed goes to the current one.
    async fn fold(
        &self,
        job: &NotificationJob,
        deadline: Instant,
    ) -> Result<JobReport, NotifyError> {
        let dealer = job.dealer_id.as_deref().unwrap_or_default();
        let now = Utc::now();
        let windows = [
            pool_notice::window_of(job.created_at, self.pool_window),
            pool_notice::window_of(now, self.pool_window),
        ];
        for window in windows {
            let summary = PoolSummary::for_window(&job.brand_id, dealer, &window, now);
            match self
                .pool_notices
                .fold(&summary.job_id, &job.lead_id, now)
                .await?
            {
                Fold::Closed => continue,
                Fold::Open { queued } => {
                    if !queued {
                        let delay = pool_notice::flush_delay(now, &window);
                        self.notification_queue
                            .send_delayed(&Notice::PoolSummary(summary.clone()), delay)
                            .await?;
                        self.pool_notices.mark_queued(&summary.job_id).await?;
                    }
                    tracing::info!(job_id = %job.job_id, lead_id = %job.lead_id, summary = %summary.job_id, "nobody available: counted in the managers' summary");
                    return Ok(JobReport {
                        job_id: job.job_id.clone(),
                        deliveries: Vec::new(),
                    });
                }
            }
        }
        // Both closed (a clock far off): better one message too many than none.
        self.deliver(&Notice::Lead(job.clone()), deadline).await
    }

    /// Renders and delivers one notice to its recipients (steps 1-6 above).
    async fn deliver(&self, notice: &Notice, deadline: Instant) -> Result<JobReport, NotifyError> {
        let staff = match notice.dealer_id() {
            Some(dealer) => self.staff_of(dealer, notice.recipients()).await?,
            None => Vec::new(),
        };
        let recipients = recipients_of(notice, &staff);
        let message = templates::render(notice, &self.config.lead_link_base);
        let (planned, mut reports) = self.plan(notice, &staff, &recipients);
        if templates::contains_full_phone(&message.text()) {
            // A template bug must not leak a number: drop it, loudly.
            tracing::error!(
                job_id = notice.job_id(),
                "rendered text holds a full phone number; not sent"
            );
            reports.extend(planned.into_iter().map(|p| DeliveryReport {
                channel: Some(p.channel),
                recipient: p.recipient.id,
                outcome: Outcome::Permanent("rendered text holds a full phone number".into()),
                attempts: 0,
            }));
            return self.finish(notice, reports, None).await;
        }
        let envelope = Envelope {
            notice,
            message: &message,
            staff: &recipients,
        };
        let (earlier, owner) = match self.ledger.claim(notice.job_id(), Utc::now()).await? {
            JobClaim::Owner(state) => (state, true),
            JobClaim::Busy(state) => (state, false),
        };
        let mut now_done = JobState::default();
        let mut delivered = self
            .deliver_all(&envelope, planned, &earlier, owner, &mut now_done, deadline)
            .await;

        // WeCom said no for good (now, or on an earlier delivery of this job):
        // an SMS still reaches people with a mobile.
        let mut fallback = Vec::new();
        for d in &delivered {
            let rejected = match (&d.channel, &d.outcome) {
                (Some(ChannelKind::Wecom), Outcome::Permanent(_)) => true,
                (Some(ChannelKind::Wecom), Outcome::AlreadyDelivered) => {
                    earlier.rejected.contains(&d.recipient)
                }
                _ => false,
            };
            let person = staff.iter().find(|s| s.staff_id == d.recipient);
            if let (true, Some(planned)) = (rejected, person.and_then(|s| self.sms_planned(s))) {
                fallback.push(planned);
            }
        }
        if !fallback.is_empty() {
            delivered.extend(
                self.deliver_all(
                    &envelope,
                    fallback,
                    &earlier,
                    owner,
                    &mut now_done,
                    deadline,
                )
                .await,
            );
        }
        reports.extend(delivered);
        self.finish(notice, reports, owner.then_some(now_done))
            .await
    }

    /// The dealer's staff, from the per-instance cache while it is younger
    /// than the TTL and names every explicit recipient.
    async fn staff_of(&self, dealer: &str, wanted: &[String]) -> Result<Vec<Staff>, StoreError> {
        {
            let cache = self.staff_cache.lock().expect("staff cache lock");
            if let Some((at, staff)) = cache.get(dealer) {
                let fresh = at.elapsed() < self.directory_ttl;
                let complete = wanted
                    .iter()
                    .all(|id| staff.iter().any(|s| &s.staff_id == id));
                if fresh && complete {
                    return Ok(staff.clone());
                }
            }
        }
        let staff = self.directory.staff_of(dealer).await?;
        if !self.directory_ttl.is_zero() {
            self.staff_cache
                .lock()
                .expect("staff cache lock")
                .insert(dealer.to_string(), (Instant::now(), staff.clone()));
        }
        Ok(staff)
    }

    /// One delivery per recipient on the best channel they can be reached
    /// on, plus the CRM webhook; reports for those nobody can reach.
    fn plan(
        &self,
        notice: &Notice,
        staff: &[Staff],
        recipients: &[String],
    ) -> (Vec<Planned>, Vec<DeliveryReport>) {
        if let Notice::Crm(event) = notice {
            let brand = event.brand_id.as_deref().unwrap_or_default();
            return if self.brand_crm.serves(brand) {
                let recipient = Recipient {
                    id: CRM_RECIPIENT.into(),
                    address: Address::Crm,
                };
                let channel = ChannelKind::BrandCrm;
                (vec![Planned { channel, recipient }], Vec::new())
            } else {
                let why = match &event.brand_id {
                    Some(b) => format!("brand {b} has no CRM endpoint"),
                    None => "the account is unknown to the directory: no brand".into(),
                };
                (Vec::new(), vec![unreachable_report(CRM_RECIPIENT, &why)])
            };
        }
        let mut planned = Vec::new();
        let mut unreachable = Vec::new();
        for id in recipients {
            let Some(person) = staff.iter().find(|s| &s.staff_id == id) else {
                unreachable.push(unreachable_report(id, "not on the dealer's staff"));
                continue;
            };
            let wecom = match (&self.wecom, &person.wecom_userid) {
                (Some(_), Some(userid)) => Some(Planned {
                    channel: ChannelKind::Wecom,
                    recipient: Recipient {
                        id: id.clone(),
                        address: Address::Wecom(userid.clone()),
                    },
                }),
                _ => None,
            };
            match wecom.or_else(|| self.sms_planned(person)) {
                Some(p) => planned.push(p),
                None => {
                    unreachable.push(unreachable_report(id, "no configured channel reaches them"))
                }
            }
        }
        // A handed-off WeCom contact follows its lead, on the corp this
        // notifier holds the credentials of.
        if let Notice::Lead(NotificationJob {
            wecom_transfer: Some(transfer),
            ..
        }) = notice
        {
            match &self.wecom {
                Some(w) if w.corp_id() == transfer.corp_id => planned.push(Planned {
                    channel: ChannelKind::WecomTransfer,
                    recipient: Recipient {
                        id: transfer.external_userid.clone(),
                        address: Address::WecomTransfer(transfer.clone()),
                    },
                }),
                _ => unreachable.push(unreachable_report(
                    &transfer.external_userid,
                    "the WeCom contact is on a corp this notifier has no credentials for",
                )),
            }
        }
        if self.webhook.is_some() && notice.lead_id().is_some() {
            planned.push(Planned {
                channel: ChannelKind::Webhook,
                recipient: Recipient {
                    id: CRM_RECIPIENT.into(),
                    address: Address::Crm,
                },
            });
        }
        (planned, unreachable)
    }

    fn sms_planned(&self, person: &Staff) -> Option<Planned> {
        let mobile = person.mobile.clone()?;
        self.sms.as_ref()?;
        Some(Planned {
            channel: ChannelKind::Sms,
            recipient: Recipient {
                id: person.staff_id.clone(),
                address: Address::Mobile(mobile),
            },
        })
    }

    /// Delivers what earlier copies of the job did not, channel by channel
    /// (WeCom takes a whole group in one request), recording in `now_done`
    /// what is done for good. Without the job's lease (`owner` false) nothing
    /// is sent: another copy is delivering, SQS retries this one.
    async fn deliver_all(
        &self,
        envelope: &Envelope<'_>,
        planned: Vec<Planned>,
        earlier: &JobState,
        owner: bool,
        now_done: &mut JobState,
        deadline: Instant,
    ) -> Vec<DeliveryReport> {
        let mut reports = Vec::new();
        let mut claimed: Vec<Planned> = Vec::new();
        for p in planned {
            let outcome = if earlier.done.contains(&done_key(p.channel, &p.recipient.id)) {
                Outcome::AlreadyDelivered
            } else if !owner {
                Outcome::Retry("another copy of the job is delivering it".into())
            } else {
                claimed.push(p);
                continue;
            };
            reports.push(DeliveryReport {
                channel: Some(p.channel),
                recipient: p.recipient.id,
                outcome,
                attempts: 0,
            });
        }
        for kind in [
            ChannelKind::Wecom,
            ChannelKind::Sms,
            ChannelKind::Webhook,
            ChannelKind::WecomTransfer,
            ChannelKind::BrandCrm,
        ] {
            let group: Vec<Recipient> = claimed
                .iter()
                .filter(|p| p.channel == kind)
                .map(|p| p.recipient.clone())
                .collect();
            if group.is_empty() {
                continue;
            }
            let Some(channel) = self.channel(kind) else {
                continue;
            };
            for (recipient, result, attempts) in
                with_retries(channel, envelope, group, &self.config, deadline).await
            {
                let outcome = match result {
                    Ok(()) => {
                        now_done.done.insert(done_key(kind, &recipient.id));
                        Outcome::Delivered
                    }
                    Err(Failure::Permanent(reason)) => {
                        if kind == ChannelKind::Wecom {
                            // Remembered for the SMS fallback of a redelivery.
                            now_done.rejected.insert(recipient.id.clone());
                        }
                        // Done for good: a redelivery must not try again.
                        now_done.done.insert(done_key(kind, &recipient.id));
                        Outcome::Permanent(reason)
                    }
                    Err(failure) => Outcome::Retry(failure.reason().to_string()),
                };
                reports.push(DeliveryReport {
                    channel: Some(kind),
                    recipient: recipient.id,
                    outcome,
                    attempts,
                });
            }
        }
        reports
    }

    fn channel(&self, kind: ChannelKind) -> Option<&dyn Channel> {
        match kind {
            ChannelKind::Wecom => self.wecom.as_ref().map(|c| c as &dyn Channel),
            ChannelKind::Sms => self.sms.as_ref().map(|c| c as &dyn Channel),
            ChannelKind::Webhook => self.webhook.as_ref().map(|c| c as &dyn Channel),
            // The same WeCom client (and token) moves contacts.
            ChannelKind::WecomTransfer => self.wecom.as_ref().map(|c| c as &dyn Channel),
            ChannelKind::BrandCrm => Some(&self.brand_crm as &dyn Channel),
        }
    }

    /// Logs every delivery and records it on the lead's audit trail; the
    /// job's owner (`done`: what it did) writes that and the audit in one
    /// transaction, which also gives the job's lease back.
    async fn finish(
        &self,
        notice: &Notice,
        deliveries: Vec<DeliveryReport>,
        done: Option<JobState>,
    ) -> Result<JobReport, NotifyError> {
        let mut events = Vec::new();
        for d in &deliveries {
            let channel = d.channel.map_or("none", ChannelKind::as_str);
            match &d.outcome {
                Outcome::Delivered => {
                    tracing::info!(job_id = notice.job_id(), channel, recipient = %d.recipient, attempts = d.attempts, "delivered")
                }
                Outcome::AlreadyDelivered => {
                    tracing::info!(job_id = notice.job_id(), channel, recipient = %d.recipient, "already delivered; skipped")
                }
                Outcome::Permanent(reason) => {
                    tracing::warn!(job_id = notice.job_id(), channel, recipient = %d.recipient, attempts = d.attempts, %reason, "delivery failed permanently; not retried")
                }
                Outcome::Retry(reason) => {
                    tracing::warn!(job_id = notice.job_id(), channel, recipient = %d.recipient, attempts = d.attempts, %reason, "delivery failed; SQS will retry")
                }
            }
            let Some(lead_id) = notice.lead_id() else {
                continue;
            };
            let kind = notice.kind_name();
            let (action, detail) = match &d.outcome {
                Outcome::AlreadyDelivered => continue,
                Outcome::Delivered => (
                    AuditAction::Notified,
                    format!("{kind} via {channel} to {} ({} attempts)", d.recipient, d.attempts),
                ),
                Outcome::Permanent(reason) => (
                    AuditAction::NotificationFailed,
                    format!(
                        "{kind} via {channel} to {}: {reason}; permanent, not retried ({} attempts)",
                        d.recipient, d.attempts
                    ),
                ),
                Outcome::Retry(reason) => (
                    AuditAction::NotificationFailed,
                    format!(
                        "{kind} via {channel} to {}: {reason}; will retry ({} attempts)",
                        d.recipient, d.attempts
                    ),
                ),
            };
            events.push(AuditEvent {
                lead_id: lead_id.to_string(),
                action,
                actor: Actor::System(ACTOR.into()),
                at: self.audit_time(),
                detail,
            });
        }
        match done {
            Some(done) => {
                let split = events.len().min(AUDIT_IN_TRANSACTION);
                let puts = events[..split]
                    .iter()
                    .map(|e| self.audit.transact_put(e))
                    .collect::<Result<Vec<_>, _>>()?;
                self.ledger
                    .complete(notice.job_id(), &done.done, &done.rejected, puts)
                    .await?;
                if split < events.len() {
                    self.audit.append(&events[split..]).await?;
                }
            }
            None if !events.is_empty() => self.audit.append(&events).await?,
            None => {}
        }
        Ok(JobReport {
            job_id: notice.job_id().to_string(),
            deliveries,
        })
    }

    fn audit_time(&self) -> DateTime<Utc> {
        let mut last = self.audit_clock.lock().expect("audit clock lock");
        let now = Utc::now().max(*last + chrono::Duration::microseconds(1));
        *last = now;
        now
    }
}

/// How a delivery done is recorded on the job's item.
fn done_key(channel: ChannelKind, recipient: &str) -> String {
    format!("{channel}#{recipient}")
}

/// The staff ids a notice goes to: its own list, or the dealer's managers
/// for warnings that name nobody.
pub fn recipients_of(notice: &Notice, staff: &[Staff]) -> Vec<String> {
    if notice.recipients().is_empty() && notice.kind().defaults_to_managers() {
        return staff
            .iter()
            .filter(|s| s.role == StaffRole::Manager)
            .map(|s| s.staff_id.clone())
            .collect();
    }
    let mut seen = std::collections::HashSet::new();
    notice
        .recipients()
        .iter()
        .filter(|id| seen.insert(id.as_str()))
        .cloned()
        .collect()
}

fn unreachable_report(id: &str, reason: &str) -> DeliveryReport {
    DeliveryReport {
        channel: None,
        recipient: id.to_string(),
        outcome: Outcome::Permanent(reason.to_string()),
        attempts: 0,
    }
}

/// Attempts `to` on `channel` until each recipient got it, failed for good,
/// or no further attempt fits before `deadline` (retries stay inside the
/// SQS visibility window). Returns each recipient's last result and the
/// attempts made.
async fn with_retries(
    channel: &dyn Channel,
    envelope: &Envelope<'_>,
    to: Vec<Recipient>,
    config: &NotifierConfig,
    deadline: Instant,
) -> Vec<(Recipient, Result<(), Failure>, u32)> {
    let mut done = Vec::new();
    let mut pending: Vec<(Recipient, Option<Failure>)> =
        to.into_iter().map(|r| (r, None)).collect();
    let mut attempts = 0;
    while !pending.is_empty() {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let Some(wait) = config
            .backoff
            .next(attempts, remaining, config.request_timeout, jitter())
        else {
            break;
        };
        tokio::time::sleep(wait).await;
        attempts += 1;
        let group: Vec<Recipient> = pending.iter().map(|(r, _)| r.clone()).collect();
        let results = channel.send(envelope, &group).await;
        let mut retry = Vec::new();
        for ((recipient, _), result) in pending.into_iter().zip(results) {
            match result {
                Err(failure) if failure.retry_now() => retry.push((recipient, Some(failure))),
                other => done.push((recipient, other, attempts)),
            }
        }
        pending = retry;
    }
    for (recipient, last) in pending {
        let failure = last.unwrap_or_else(|| {
            Failure::Transient("no time left in this invocation for an attempt".into())
        });
        done.push((recipient, Err(failure), attempts));
    }
    done
}

/// Spreads retries of jobs that failed together; no need for a strong RNG.
fn jitter() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    f64::from(nanos % 1000) / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use leads_domain::notification::{NotificationJob, NotificationKind};

    fn staff(id: &str, role: StaffRole) -> Staff {
        serde_json::from_value(serde_json::json!({
            "staff_id": id, "dealer_id": "d", "name": id, "role": role, "on_duty": true, "cap": 5
        }))
        .unwrap()
    }

    fn notice(kind: NotificationKind, recipients: &[&str]) -> Notice {
        Notice::Lead(NotificationJob {
            job_id: "L1#x#1".into(),
            kind,
            lead_id: "L1".into(),
            brand_id: "b".into(),
            dealer_id: Some("d".into()),
            recipients: recipients.iter().map(|s| s.to_string()).collect(),
            phone_masked: None,
            customer_name: None,
            series_interest: vec![],
            created_at: Utc::now(),
            wecom_transfer: None,
        })
    }

    #[test]
    fn empty_warnings_go_to_the_managers() {
        let team = [
            staff("s1", StaffRole::Sales),
            staff("m1", StaffRole::Manager),
            staff("m2", StaffRole::Manager),
        ];
        assert_eq!(
            recipients_of(&notice(NotificationKind::SlaWarning, &[]), &team),
            ["m1", "m2"]
        );
        assert_eq!(
            recipients_of(&notice(NotificationKind::NoOneAvailable, &[]), &team),
            ["m1", "m2"]
        );
        assert!(recipients_of(&notice(NotificationKind::NewAssignment, &[]), &team).is_empty());
        assert_eq!(
            recipients_of(&notice(NotificationKind::SlaWarning, &["s1"]), &team),
            ["s1"]
        );
    }

    #[test]
    fn outcomes_that_need_a_retry() {
        let report = |outcome| JobReport {
            job_id: "j".into(),
            deliveries: vec![DeliveryReport {
                channel: Some(ChannelKind::Wecom),
                recipient: "s1".into(),
                outcome,
                attempts: 1,
            }],
        };
        assert!(!report(Outcome::Delivered).needs_retry());
        assert!(!report(Outcome::AlreadyDelivered).needs_retry());
        assert!(!report(Outcome::Permanent("HTTP 404".into())).needs_retry());
        assert!(report(Outcome::Retry("HTTP 503".into())).needs_retry());
    }
}
