//! The lead router: for each message intake enqueued,
//!
//! 1. dedup: record the delivery as a created lead, a merge into the customer's
//!    open lead, or a duplicate (conditional writes decide, see `DynamoLeads`);
//! 2. route a created lead locally, to a remote dealer serving the customer's
//!    city, or to the brand's CRM queue (pure rules in `leads_domain::routing`);
//! 3. assign a consultant within the dealer (pure rules in
//!    `leads_domain::assignment`, applied with a cap-checked transaction);
//! 4. enqueue notification jobs and write the audit trail.
//!
//! A lead that carries a second key of the customer (the brand CRM's push
//! with a phone and a WeCom external user id) has that key linked to the
//! customer's lead right after dedup: if the key already has a live lead of
//! its own, the later of the two leads is merged into the earlier one.
//!
//! Every step is idempotent and resumes where a previous attempt stopped, so a
//! redelivered message (after a crash, a timeout or a failed batch item)
//! finishes the work instead of repeating it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::{DateTime, Utc};
use leads_aws::retry::{ConflictRetry, IsConflict};
use leads_aws::store::{
    AssignResult, Contended, CreateResult, CustomerItem, DynamoAudit, DynamoDirectory, DynamoLeads,
    DynamoStats, HeldTickets, IdentitySeen, MergeTarget, MessageQueue, Recorded, Returning,
    RouteResult, SqsQueue,
};
use leads_aws::{secrets, AwsClients, Settings, StoreError};
use leads_domain::assignment::{self, Assignment, Preferred, StaffLoad};
use leads_domain::audit::{Actor, AuditAction, AuditEvent};
use leads_domain::crm::CrmEvent;
use leads_domain::decision::{self, Placement};
use leads_domain::dedup::{self, DedupOutcome, LinkOutcome, ReturnTo};
use leads_domain::directory::{
    AccountOwner, AssignmentStrategy, Brand, Dealer, Platform, Staff, StaffRole,
};
use leads_domain::intake::{ContactDeleted, ContentStats, DeletedBy, IntakeMessage};
use leads_domain::lead::{CanonicalLead, CustomerKey, LeadRecord, LeadStatus};
use leads_domain::notification::{NotificationJob, NotificationKind};
use leads_domain::routing::{self, RemoteCandidate, Route};
use leads_domain::seal::ContactSeal;
use serde::Serialize;

pub mod crm_status;
pub mod snapshot;
use snapshot::{Snapshot, DIRECTORY_TTL};

const ACTOR: &str = "lead-router";
/// Time a batch may spend when the caller gives no deadline (tests, tools):
/// the function's timeout in template.yaml.
pub const DEFAULT_BATCH_BUDGET: Duration = Duration::from_secs(30);

/// Why a message could not be processed.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    /// The message is not what intake sends; retrying will not help (it ends in the DLQ).
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IsConflict for RouterError {
    fn is_conflict(&self) -> bool {
        matches!(self, RouterError::Store(e) if e.is_conflict())
    }
}

/// What happened to one message, for logs and tests.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Processed {
    pub lead_id: Option<String>,
    pub outcome: Option<DedupOutcome>,
    pub route: Option<Route>,
    pub assignee: Option<String>,
}

/// Whether a new lead's placement reads the consultants' open counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpenCounts {
    /// A first try at a round-robin dealer: every consultant is assumed
    /// below cap; the transaction's cap condition checks it.
    Assumed,
    Read,
}

/// A batch's business metrics (EMF, see `leads_aws::emf`).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub created: u64,
    pub merged: u64,
    pub remote: u64,
    pub unroutable: u64,
    pub conflicts_retried: u64,
}

impl Tally {
    /// Counts one message's outcome: a new lead by its route, a merge; a
    /// duplicate delivery counts nothing.
    pub fn add(&mut self, p: &Processed) {
        match p.outcome {
            Some(DedupOutcome::Created) => {
                self.created += 1;
                match p.route {
                    Some(Route::Remote { .. }) => self.remote += 1,
                    Some(Route::Unroutable { .. }) => self.unroutable += 1,
                    _ => {}
                }
            }
            Some(DedupOutcome::Merged) => self.merged += 1,
            _ => {}
        }
    }

    fn emit(&self) {
        use leads_aws::emf::{self, names};
        emf::emit(
            None,
            &[
                (names::LEADS_CREATED, self.created),
                (names::LEADS_MERGED, self.merged),
                (names::LEADS_REMOTE, self.remote),
                (names::LEADS_UNROUTABLE, self.unroutable),
                (names::CONFLICTS_RETRIED, self.conflicts_retried),
            ],
        );
    }
}

tokio::task_local! {
    /// The notification jobs of the SQS batch being handled: sent together
    /// when the batch is done (SendMessageBatch), not one request per lead.
    /// Outside a batch (`handle_lead` called directly) each job is sent at once.
    static OUTBOX: std::cell::RefCell<Vec<NotificationJob>>;
}

/// What one attempt at a new lead came to.
enum Attempt {
    Done(Processed),
    /// The customer's identity is this (None: unknown, read it): decide again.
    Identity(Option<CustomerItem>),
    /// What the decision read changed: decide again.
    Again,
    /// A returning customer's unrouted lead, and the delivery cannot be
    /// routed either: it takes the touch after all.
    MergeUnrouted,
}

pub struct Router {
    directory: Snapshot,
    leads: DynamoLeads,
    stats: DynamoStats,
    audit: DynamoAudit,
    notifications: SqsQueue,
    crm: SqsQueue,
    retry: ConflictRetry,
    /// Write conflicts retried in process since this router was built.
    conflicts_retried: AtomicU64,
    /// Round-robin turns of leads not yet written (kept across retries).
    tickets: HeldTickets,
    /// Opens the phone and name the intake sealed (the stack's phone-hash key).
    seal: Option<ContactSeal>,
}

impl Router {
    pub async fn from_env() -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let settings = Settings::from_env()?;
        let clients = AwsClients::from_env().await;
        let phone_hash_key = secrets::phone_hash_key(&clients.secrets).await?;
        Ok(Self::new(&settings, &clients)
            .with_contact_seal(ContactSeal::from_phone_hash_key(&phone_hash_key)))
    }

    /// The key that opens the contacts the intake sealed: built from the
    /// same phone-hash key as the intake's.
    pub fn with_contact_seal(mut self, seal: ContactSeal) -> Self {
        self.seal = Some(seal);
        self
    }

    pub fn new(settings: &Settings, clients: &AwsClients) -> Self {
        let db = clients.dynamodb.clone();
        let t = &settings.tables;
        Router {
            directory: Snapshot::new(
                DynamoDirectory::new(db.clone(), &t.directory),
                DynamoStats::new(db.clone(), &t.stats, &t.rankings),
                DIRECTORY_TTL,
            ),
            leads: DynamoLeads::new(db.clone(), &t.leads, &t.stats).with_audit(&t.audit),
            stats: DynamoStats::new(db.clone(), &t.stats, &t.rankings),
            audit: DynamoAudit::new(db, &t.audit),
            notifications: SqsQueue::new(clients.sqs.clone(), &settings.queues.notification),
            crm: SqsQueue::new(clients.sqs.clone(), &settings.queues.crm),
            retry: ConflictRetry::default(),
            conflicts_retried: AtomicU64::new(0),
            tickets: HeldTickets::default(),
            seal: None,
        }
    }

    /// The round-robin ticket of `lead_id` at `dealer_id`: the one it drew
    /// before a conflict, else a new one (held until it is released).
    async fn ticket_for(&self, lead_id: &str, dealer_id: &str) -> Result<u64, StoreError> {
        self.tickets
            .ticket_for(lead_id, dealer_id, || self.leads.next_ticket(dealer_id))
            .await
    }

    /// How long directory reads are reused (default [`DIRECTORY_TTL`]).
    pub fn with_directory_ttl(mut self, ttl: Duration) -> Self {
        self.directory.set_ttl(ttl);
        self
    }

    /// Write conflicts (DynamoDB `TransactionConflict`) this router retried
    /// in process, over its lifetime (one Lambda execution environment).
    pub fn conflicts_retried(&self) -> u64 {
        self.conflicts_retried.load(Ordering::Relaxed)
    }

    /// Processes a batch; failed messages are reported so SQS redelivers only
    /// those (and, after maxReceiveCount, moves them to the DLQ). Without a
    /// deadline of its own, the batch gets [`DEFAULT_BATCH_BUDGET`].
    pub async fn handle_batch(&self, event: SqsEvent) -> SqsBatchResponse {
        self.handle_batch_until(event, Instant::now() + DEFAULT_BATCH_BUDGET)
            .await
    }

    /// As [`Self::handle_batch`], retrying write conflicts in process until
    /// `deadline` (the Lambda context's): a message goes back to the queue
    /// for contention only when the invocation is out of time. Each retry
    /// re-runs the message from the start, so it re-reads and re-decides, and
    /// every step it already finished is recognised (as for a redelivery).
    pub async fn handle_batch_until(&self, event: SqsEvent, deadline: Instant) -> SqsBatchResponse {
        OUTBOX
            .scope(
                std::cell::RefCell::new(Vec::new()),
                self.handle_batch_collecting(event, deadline),
            )
            .await
    }

    /// The batch with its notification jobs collected (see [`OUTBOX`]) and
    /// sent at the end with SendMessageBatch, 10 jobs a request.
    async fn handle_batch_collecting(
        &self,
        event: SqsEvent,
        deadline: Instant,
    ) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        let before = self.conflicts_retried();
        let messages = event.records.len();
        let mut with_jobs = Vec::new();
        let mut tally = Tally::default();
        for message in event.records {
            let id = message.message_id.clone().unwrap_or_default();
            let queued = OUTBOX.with(|o| o.borrow().len());
            let result = self
                .retry
                // Boxed: keeps the batch future's type shallow.
                .run(deadline, &self.conflicts_retried, || {
                    Box::pin(self.handle_message(&message))
                })
                .await;
            match result {
                Err(err) => {
                    tracing::error!(message_id = %id, error = %err, "message failed; SQS will redeliver it");
                    let mut failure = BatchItemFailure::default();
                    failure.item_identifier = id;
                    response.batch_item_failures.push(failure);
                }
                Ok(processed) => {
                    tally.add(&processed);
                    if OUTBOX.with(|o| o.borrow().len()) > queued {
                        with_jobs.push(id);
                    }
                }
            }
        }
        let mut jobs: Vec<NotificationJob> = OUTBOX.with(|o| o.take());
        // A message retried after a conflict may have queued its job twice.
        let mut seen = std::collections::HashSet::new();
        jobs.retain(|j| seen.insert(j.job_id.clone()));
        if let Err(err) = self.notifications.send_all(&jobs).await {
            // Their leads are written; a redelivery finds them and sends again
            // (same job ids: the notifier sends each once).
            tracing::error!(error = %err, jobs = jobs.len(), "notification jobs not sent; their messages will be redelivered");
            for id in with_jobs {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                response.batch_item_failures.push(failure);
            }
        }
        tracing::info!(
            messages,
            failed = response.batch_item_failures.len(),
            jobs = jobs.len(),
            conflicts_retried = self.conflicts_retried() - before,
            "batch handled"
        );
        tally.conflicts_retried = self.conflicts_retried() - before;
        tally.emit();
        response
    }

    pub async fn handle_message(&self, message: &SqsMessage) -> Result<Processed, RouterError> {
        let body = message.body.as_deref().unwrap_or_default();
        let parsed: IntakeMessage =
            serde_json::from_str(body).map_err(|e| RouterError::Malformed(e.to_string()))?;
        match parsed {
            IntakeMessage::Lead(mut lead) => {
                self.open_contact(&mut lead)?;
                self.handle_lead(&lead, Utc::now()).await
            }
            IntakeMessage::ContactDeleted(deleted) => {
                let lead_id = self.handle_contact_deleted(&deleted).await?;
                Ok(Processed {
                    lead_id,
                    outcome: None,
                    route: None,
                    assignee: None,
                })
            }
            IntakeMessage::CrmStatus(sync) => {
                self.handle_crm_status(&sync).await?;
                Ok(Processed {
                    lead_id: Some(sync.lead_id.clone()),
                    outcome: None,
                    route: None,
                    assignee: None,
                })
            }
            IntakeMessage::CrmDispatch(dispatch) => {
                self.handle_crm_dispatch(&dispatch).await?;
                Ok(Processed {
                    lead_id: Some(dispatch.lead_id.clone()),
                    outcome: None,
                    route: None,
                    assignee: None,
                })
            }
            IntakeMessage::ContentStats(stats) => {
                self.handle_stats(&stats).await?;
                Ok(Processed {
                    lead_id: None,
                    outcome: None,
                    route: None,
                    assignee: None,
                })
            }
        }
    }

    /// Puts the lead's sealed phone and name back (see `leads_domain::seal`).
    fn open_contact(&self, lead: &mut CanonicalLead) -> Result<(), RouterError> {
        match (&self.seal, lead.sealed_contact.is_some()) {
            (_, false) => Ok(()),
            (Some(seal), true) => seal
                .open(lead)
                .map_err(|e| RouterError::Malformed(e.to_string())),
            (None, true) => Err(RouterError::Malformed(
                "a sealed contact, and this router has no key to open it".into(),
            )),
        }
    }

    /// A WeCom contact ended: recorded on the customer's lead (once per
    /// delivery, audited), its owner and the dealer's managers told (job ids
    /// from the delivery: a redelivery tells no one twice). A contact with no
    /// lead is only logged. Returns the lead's id.
    async fn handle_contact_deleted(
        &self,
        deleted: &ContactDeleted,
    ) -> Result<Option<String>, RouterError> {
        let Some(account) = self
            .directory
            .account(Platform::Wecom, &deleted.corp_id)
            .await?
        else {
            tracing::warn!(corp = %deleted.corp_id, "contact deletion from a corp not in the directory; ignored");
            return Ok(None);
        };
        let key = dedup::customer_key(
            &account.brand_id,
            &CustomerKey::Wecom {
                corp_id: deleted.corp_id.clone(),
                external_userid: deleted.external_userid.clone(),
            },
        );
        let Some(identity) = self.leads.identity(&key).await? else {
            tracing::info!(corp = %deleted.corp_id, "contact deletion for a contact with no lead");
            return Ok(None);
        };
        let Some(record) = self.leads.get(&identity.lead_id).await? else {
            return Ok(None);
        };
        let detail = match deleted.by {
            DeletedBy::Consultant => format!(
                "consultant {} removed the customer on WeCom",
                deleted.user_id
            ),
            DeletedBy::Customer => format!(
                "the customer removed consultant {} on WeCom",
                deleted.user_id
            ),
        };
        let event = AuditEvent {
            lead_id: record.lead_id.clone(),
            action: AuditAction::ContactDeleted,
            actor: Actor::Platform(Platform::Wecom.to_string()),
            at: deleted.at,
            detail,
        };
        if self
            .leads
            .record_contact_deleted(
                &record.lead_id,
                &deleted.source_event_id,
                &event,
                &leads_domain::wire_name(&deleted.by),
            )
            .await?
        {
            leads_aws::emf::count(leads_aws::emf::names::WECOM_CONTACTS_DELETED, 1);
        }
        if let Some(assignee) = &record.assignee {
            let occurrence = format!("{}#owner", deleted.source_event_id);
            self.notify(
                &record,
                NotificationKind::ContactDeleted,
                vec![assignee.clone()],
                &occurrence,
            )
            .await?;
        }
        let occurrence = format!("{}#managers", deleted.source_event_id);
        self.notify(
            &record,
            NotificationKind::ContactDeleted,
            Vec::new(),
            &occurrence,
        )
        .await?;
        tracing::info!(lead_id = %record.lead_id, by = ?deleted.by, "WeCom contact deletion recorded");
        Ok(Some(record.lead_id))
    }

    async fn handle_stats(&self, stats: &ContentStats) -> Result<(), RouterError> {
        let account = self
            .directory
            .account(Platform::Douyin, &stats.platform_account)
            .await?;
        match account.map(|a| a.owner) {
            Some(AccountOwner::Dealer { dealer_id }) => {
                self.stats.put_content_stats(&dealer_id, stats).await?;
                tracing::info!(%dealer_id, date = %stats.date, "content stats stored");
            }
            _ => {
                tracing::warn!(account = %stats.platform_account, "content stats for an account with no dealer; ignored")
            }
        }
        Ok(())
    }

    pub async fn handle_lead(
        &self,
        lead: &CanonicalLead,
        now: DateTime<Utc>,
    ) -> Result<Processed, RouterError> {
        let account = self
            .directory
            .account(lead.platform, &lead.account_id)
            .await?;
        let brand = match &account {
            Some(a) => self.directory.brand(&a.brand_id).await?,
            None => None,
        };
        let (Some(account), Some(brand)) = (account, brand) else {
            // Nothing is dropped: the operators see it in the CRM DLQ.
            let touch = leads_domain::lead::Touchpoint::from(lead);
            self.crm
                .send(&CrmEvent::unknown_account(&touch, now))
                .await?;
            tracing::warn!(platform = %lead.platform, account = %lead.account_id, "lead for an unknown account sent to the CRM queue");
            return Ok(Processed {
                lead_id: None,
                outcome: None,
                route: None,
                assignee: None,
            });
        };
        if lead
            .signer_brand
            .as_ref()
            .is_some_and(|b| *b != brand.brand_id)
        {
            // One brand's CRM secret signed a lead for another brand's
            // account: not that CRM's to create. Nothing is written (the raw
            // payload stays for the investigation, under its TTL).
            tracing::warn!(platform = %lead.platform, account = %lead.account_id, source_event_id = %lead.source_event_id, "lead signed by another brand's secret dropped");
            return Ok(Processed {
                lead_id: None,
                outcome: None,
                route: None,
                assignee: None,
            });
        }
        let owner_dealer = match (&account.owner, &lead.staff_hint) {
            (AccountOwner::Dealer { dealer_id }, _) => self.directory.dealer(dealer_id).await?,
            // The brand's WeCom corp: the customer was added by one of the
            // brand's consultants, so the lead is local to their dealer.
            (AccountOwner::Brand, Some(userid)) if lead.platform == Platform::Wecom => {
                match self
                    .directory
                    .staff_by_wecom_userid(&brand.brand_id, userid)
                    .await?
                {
                    Some(staff) => self.directory.dealer(&staff.dealer_id).await?,
                    None => None,
                }
            }
            (AccountOwner::Brand, _) => None,
        };

        let owner_dealer = owner_dealer.as_ref();
        if lead.linked_customer.is_some() {
            // A second key to link right after dedup (rare: the brand CRM's
            // push with a WeCom id): the step-by-step path.
            return self
                .handle_lead_stepwise(&brand, lead, owner_dealer, now)
                .await;
        }
        let customer_key = dedup::customer_key(&brand.brand_id, &lead.customer);
        let own_id = dedup::lead_id(&brand.brand_id, &lead.source_event_id);
        // What is known of the customer's identity (None: read it), and
        // where a merge goes when its lead was closed.
        let mut seen: Option<Option<CustomerItem>> = None;
        let mut target = MergeTarget::default();
        for attempt in 0..8 {
            // Read first: deciding costs requests (and a round-robin turn)
            // that a merge or a redelivery would waste.
            let known = match seen.take() {
                Some(known) => known,
                None => self.leads.identity(&customer_key).await?,
            };
            match known {
                // This delivery created the lead (a redelivery): it is final.
                Some(c) if c.window_until_s > now.timestamp() && c.lead_id == own_id => {
                    return self
                        .resume(
                            &brand,
                            owner_dealer,
                            &own_id,
                            DedupOutcome::Created,
                            lead,
                            now,
                        )
                        .await;
                }
                Some(c) if c.window_until_s > now.timestamp() => {
                    target.reset_unless(&c.lead_id);
                    match self
                        .leads
                        .merge_into(
                            &brand,
                            lead,
                            owner_dealer.map(|d| d.dealer_id.as_str()),
                            &customer_key,
                            c.clone(),
                            &target,
                            now,
                        )
                        .await?
                    {
                        Some(Recorded::Merged {
                            lead: record,
                            first_platform,
                        }) => {
                            tracing::info!(lead_id = %record.lead_id, platform = %lead.platform, first = %first_platform, outcome = "merged", "lead recorded");
                            self.notify_returned(&record, lead).await?;
                            return Ok(processed(&record, DedupOutcome::Merged));
                        }
                        Some(Recorded::Duplicate { lead_id, outcome }) => {
                            return self
                                .resume(&brand, owner_dealer, &lead_id, outcome, lead, now)
                                .await;
                        }
                        Some(Recorded::NotMergeable { holder }) => {
                            // Closed or unrouted: the customer came back
                            // (`dedup::returning_to`).
                            let step =
                                match (&holder.reopened_as, dedup::returning_to(holder.status)) {
                                    (Some(next), _) => {
                                        target.follow(&c.lead_id, next);
                                        Attempt::Again
                                    }
                                    (None, ReturnTo::Merge) => Attempt::Again,
                                    (None, _) => {
                                        let returning = Returning {
                                            identity_lead: &c.lead_id,
                                            holder: &holder,
                                        };
                                        self.create(
                                            &brand,
                                            lead,
                                            owner_dealer,
                                            &customer_key,
                                            IdentitySeen::Returning(returning),
                                            OpenCounts::Read,
                                            now,
                                        )
                                        .await?
                                    }
                                };
                            match step {
                                Attempt::Done(done) => return Ok(done),
                                Attempt::Identity(current) => seen = current.map(Some),
                                Attempt::MergeUnrouted => {
                                    target.accept_unrouted(&c.lead_id);
                                    seen = Some(Some(c));
                                }
                                // The same identity, a new target (or a
                                // stale read): merge again without reading.
                                Attempt::Again => seen = Some(Some(c)),
                            }
                        }
                        Some(Recorded::Created(_)) | None => continue,
                    }
                }
                previous => {
                    let identity = match &previous {
                        Some(c) => IdentitySeen::Expired(c),
                        None => IdentitySeen::Absent,
                    };
                    // Only the first try may assume the open counts (see
                    // `decide_placement`); a retry reads them.
                    let counts = match attempt {
                        0 => OpenCounts::Assumed,
                        _ => OpenCounts::Read,
                    };
                    match self
                        .create(
                            &brand,
                            lead,
                            owner_dealer,
                            &customer_key,
                            identity,
                            counts,
                            now,
                        )
                        .await?
                    {
                        Attempt::Done(done) => return Ok(done),
                        Attempt::Identity(current) => seen = current.map(Some),
                        Attempt::Again | Attempt::MergeUnrouted => {}
                    }
                }
            }
        }
        // Contention, not failure: the batch retries the message in process.
        Err(RouterError::Store(StoreError::Conflict {
            operation: "new lead",
        }))
    }

    /// Decides a new lead from fresh state (route, then the dealer's rules)
    /// and writes it in one transaction.
    #[allow(clippy::too_many_arguments)]
    async fn create(
        &self,
        brand: &Brand,
        lead: &CanonicalLead,
        owner_dealer: Option<&Dealer>,
        customer_key: &str,
        identity: IdentitySeen<'_>,
        counts: OpenCounts,
        now: DateTime<Utc>,
    ) -> Result<Attempt, RouterError> {
        let lead_id = dedup::lead_id(&brand.brand_id, &lead.source_event_id);
        let mut record = LeadRecord::new(
            lead_id.clone(),
            &brand.brand_id,
            lead,
            owner_dealer.map(|d| d.dealer_id.clone()),
        );
        match identity {
            IdentitySeen::Expired(previous) => {
                record.previous_dealer = previous.last_dealer.clone();
                record.previous_assignee = previous.last_assignee.clone();
            }
            IdentitySeen::Returning(returning) => returning.continue_in(&mut record),
            IdentitySeen::Absent => {}
        }
        let mut contended = Contended::default();
        let route = self
            .decide_route(&record, brand, owner_dealer, now, &mut contended)
            .await?;
        // Held for the brand CRM's review: no remote slot is taken.
        let (route, proposed) = routing::review(route, brand.remote_mode);
        if proposed.is_some() {
            contended.remote_capacity = None;
            record.proposed_dealer = proposed;
        }
        if let (Route::Unroutable { .. }, IdentitySeen::Returning(r)) = (&route, identity) {
            if r.supersedes() {
                // Unroutable again: the old unrouted lead takes the touch.
                return Ok(Attempt::MergeUnrouted);
            }
        }
        let placement = match &route {
            Route::Unroutable { .. } => None,
            Route::Local { dealer_id } | Route::Remote { dealer_id, .. } => Some(
                self.decide_placement(&record, dealer_id, counts, &mut contended)
                    .await?,
            ),
        };
        let plan = decision::new_lead(record, &route, placement.as_ref(), brand, now);
        let result = self
            .leads
            .create_decided(brand, lead, customer_key, identity, &plan, &contended, now)
            .await?;
        // A conflict (the `?` above) or a stale read re-decides with the same
        // ticket; any other outcome used it or needs none.
        if !matches!(result, CreateResult::Stale) {
            self.tickets.release(&lead_id);
        }
        match result {
            CreateResult::Created => {
                let record = &plan.lead;
                tracing::info!(%lead_id, platform = %lead.platform, outcome = "created", route = %serde_json::to_string(&route).unwrap_or_default(), assignee = ?record.assignee, status = ?record.status, "lead recorded, routed and placed");
                if let Route::Unroutable { reason } = &route {
                    self.hand_to_crm(record, reason).await?;
                }
                if let IdentitySeen::Returning(r) = identity {
                    if r.supersedes() {
                        self.crm_superseded(r.holder, record).await?;
                    }
                }
                if let Some((kind, recipients)) = &plan.notify {
                    self.notify(record, *kind, recipients.clone(), "1").await?;
                }
                Ok(Attempt::Done(processed(record, DedupOutcome::Created)))
            }
            CreateResult::Duplicate { lead_id, outcome } => Ok(Attempt::Done(
                self.resume(brand, owner_dealer, &lead_id, outcome, lead, now)
                    .await?,
            )),
            CreateResult::IdentityTaken { current } => Ok(Attempt::Identity(current)),
            CreateResult::Stale => Ok(Attempt::Again),
        }
    }

    /// Local, remote (reading the candidates' capacity used today) or unroutable.
    async fn decide_route(
        &self,
        record: &LeadRecord,
        brand: &Brand,
        owner_dealer: Option<&Dealer>,
        now: DateTime<Utc>,
        contended: &mut Contended,
    ) -> Result<Route, RouterError> {
        let city = record.customer_city;
        let local = owner_dealer.is_some_and(|d| city.is_none_or(|c| d.serves(c)));
        let mut candidates = Vec::new();
        let mut capacities = std::collections::HashMap::new();
        if let (false, Some(city)) = (local, city) {
            let mut dealers = Vec::new();
            for dealer_id in self
                .directory
                .dealers_serving(&brand.brand_id, city)
                .await?
            {
                if let Some(dealer) = self.directory.dealer(&dealer_id).await? {
                    dealers.push(dealer);
                }
            }
            let ids: Vec<String> = dealers.iter().map(|d| d.dealer_id.clone()).collect();
            let received = self.leads.remote_received(&ids, now).await?;
            for dealer in dealers {
                let received = received.get(&dealer.dealer_id).copied().unwrap_or(0);
                capacities.insert(dealer.dealer_id.clone(), dealer.daily_remote_capacity);
                candidates.push(RemoteCandidate {
                    tier: self.directory.tier(&dealer.dealer_id).await?,
                    remaining_capacity: dealer.daily_remote_capacity.saturating_sub(received),
                    received_today: received,
                    dealer_id: dealer.dealer_id,
                });
            }
        }
        let route = routing::route(owner_dealer, city, &candidates, &record.lead_id);
        if let Route::Remote { dealer_id, .. } = &route {
            contended.remote_capacity = capacities.get(dealer_id).copied();
        }
        Ok(route)
    }

    /// The dealer's rules on the open counts (and ticket).
    ///
    /// Round robin picks by turn, and the creating transaction takes the
    /// consultant's slot only below their cap: on a first try the counts are
    /// assumed free rather than read (one Query less per new lead). A pick
    /// at cap fails that condition and the lead is decided again on the
    /// counts as read, with the same ticket, so the turn skips them as if
    /// they had been read first. Saturation and claims read them always.
    async fn decide_placement(
        &self,
        record: &LeadRecord,
        dealer_id: &str,
        counts: OpenCounts,
        contended: &mut Contended,
    ) -> Result<Placement, RouterError> {
        let dealer = self.directory.dealer(dealer_id).await?.ok_or_else(|| {
            RouterError::Malformed(format!("dealer {dealer_id} not in the directory"))
        })?;
        let staff = self.directory.staff_of(dealer_id).await?;
        // An atomic counter outside the transaction: turns are taken in the
        // order tickets are issued, and no two leads contend for it. Drawn
        // while the open counts are read: one round trip for both.
        let ticket = async {
            match dealer.strategy {
                AssignmentStrategy::RoundRobin => self.ticket_for(&record.lead_id, dealer_id).await,
                _ => Ok(0),
            }
        };
        let assume =
            counts == OpenCounts::Assumed && dealer.strategy == AssignmentStrategy::RoundRobin;
        let (loads, ticket) = if assume {
            let free = staff.iter().map(|s| StaffLoad::new(s, 0)).collect();
            (free, ticket.await?)
        } else {
            tokio::try_join!(self.leads.loads(dealer_id, &staff), ticket)?
        };
        let assignment = choose(record, &dealer, &staff, &loads, ticket);
        if let Assignment::Staff { staff_id, .. } = &assignment {
            let cap = loads
                .iter()
                .find(|l| &l.staff_id == staff_id)
                .map_or(0, |l| l.cap);
            contended.staff = Some((staff_id.clone(), cap));
        }
        Ok(Placement {
            assignment,
            claim_fallback_minutes: dealer.claim_fallback_minutes,
            managers: managers(&staff),
        })
    }

    /// A delivery recorded before: finish whatever an earlier attempt did
    /// not (a lead from the step-by-step path may be unrouted or
    /// unassigned; a final one only needs its notification again).
    async fn resume(
        &self,
        brand: &Brand,
        owner_dealer: Option<&Dealer>,
        lead_id: &str,
        outcome: DedupOutcome,
        lead: &CanonicalLead,
        now: DateTime<Utc>,
    ) -> Result<Processed, RouterError> {
        tracing::info!(%lead_id, outcome = "duplicate", "delivery seen before; resuming any unfinished steps");
        // The marker and its lead are written together: a marker without
        // its lead is a lead erased (`leadctl erase`) or past its retention.
        // Its customer must not come back from a redelivery: nothing to do.
        let Some(record) = self.leads.get(lead_id).await? else {
            tracing::info!(%lead_id, "delivery of an erased or expired lead; dropped");
            return Ok(Processed {
                lead_id: None,
                outcome: Some(DedupOutcome::Duplicate),
                route: None,
                assignee: None,
            });
        };
        if outcome == DedupOutcome::Merged {
            self.notify_returned(&record, lead).await?;
        }
        // A continuation of an unrouted lead: the brand CRM hears (again,
        // same event id) that it need not place the old one.
        if let (DedupOutcome::Created, Some(old_id)) = (outcome, &record.returned_from) {
            if let Some(old) = self.leads.get(old_id).await? {
                if old.merged_into.as_deref() == Some(record.lead_id.as_str()) {
                    self.crm_superseded(&old, &record).await?;
                }
            }
        }
        // Finish (or repeat, harmlessly) the link of a second key.
        let record = match self.link_second_key(brand, &record, lead, now).await? {
            Some(outcome) => outcome.lead().clone(),
            None => record,
        };
        // Merged into another lead (now, or by a link since): that lead is
        // routed and assigned already.
        if outcome == DedupOutcome::Merged
            || record.lead_id != lead_id
            || record.status == LeadStatus::Merged
        {
            return Ok(processed(&record, DedupOutcome::Duplicate));
        }
        let record = self
            .route_and_assign(record, brand, owner_dealer, now)
            .await?;
        Ok(processed(&record, DedupOutcome::Duplicate))
    }

    /// The step-by-step path: record, link the second key, route, assign.
    async fn handle_lead_stepwise(
        &self,
        brand: &Brand,
        lead: &CanonicalLead,
        owner_dealer: Option<&Dealer>,
        now: DateTime<Utc>,
    ) -> Result<Processed, RouterError> {
        let brand = brand.clone();
        let recorded = self
            .leads
            .record(
                &brand,
                lead,
                owner_dealer.map(|d| d.dealer_id.as_str()),
                now,
            )
            .await?;
        let record = match recorded {
            Recorded::Created(record) => {
                tracing::info!(lead_id = %record.lead_id, platform = %lead.platform, outcome = "created", "lead recorded");
                self.audit
                    .append(&[
                        event(
                            &record.lead_id,
                            AuditAction::Received,
                            Actor::Platform(lead.platform.to_string()),
                            lead.received_at,
                            &lead.source_event_id,
                        ),
                        event(
                            &record.lead_id,
                            AuditAction::Deduped,
                            system(),
                            now,
                            &decision::dedup_detail(&record),
                        ),
                    ])
                    .await?;
                // A returning customer: the closed lead says who continues it.
                if let Some(old) = &record.returned_from {
                    if let Some(holder) = self.leads.get(old).await? {
                        self.audit
                            .append(&[decision::reopened_audit(&holder, &record.lead_id, now)])
                            .await?;
                    }
                }
                *record
            }
            // `record` settles those itself (a new lead, or a merge).
            Recorded::NotMergeable { .. } => {
                return Err(RouterError::Store(StoreError::Conflict {
                    operation: "dedup",
                }))
            }
            Recorded::Merged {
                lead: record,
                first_platform,
            } => {
                // The store wrote the merge's audit entry inside the merge.
                tracing::info!(lead_id = %record.lead_id, platform = %lead.platform, first = %first_platform, outcome = "merged", "lead recorded");
                self.notify_returned(&record, lead).await?;
                let record = match self.link_second_key(&brand, &record, lead, now).await? {
                    Some(outcome) => outcome.lead().clone(),
                    None => *record,
                };
                return Ok(processed(&record, DedupOutcome::Merged));
            }
            Recorded::Duplicate { lead_id, outcome } => {
                return self
                    .resume(&brand, owner_dealer, &lead_id, outcome, lead, now)
                    .await;
            }
        };
        let record = match self.link_second_key(&brand, &record, lead, now).await? {
            // The other key already had a live, earlier lead: this one was
            // folded into it and is not routed or assigned.
            Some(LinkOutcome::Merged { survivor, absorbed })
                if absorbed.lead_id == record.lead_id =>
            {
                return Ok(processed(&survivor, DedupOutcome::Merged));
            }
            Some(outcome) => outcome.lead().clone(),
            None => record,
        };
        let record = self
            .route_and_assign(record, &brand, owner_dealer, now)
            .await?;
        Ok(processed(&record, DedupOutcome::Created))
    }

    /// Links the second key a source sent with the lead (if any) to the
    /// customer's lead `record`, with its audit events and notification.
    async fn link_second_key(
        &self,
        brand: &Brand,
        record: &LeadRecord,
        lead: &CanonicalLead,
        now: DateTime<Utc>,
    ) -> Result<Option<LinkOutcome>, RouterError> {
        let Some(key) = &lead.linked_customer else {
            return Ok(None);
        };
        let outcome = self
            .leads
            .link(brand, record, key, lead.phone.as_ref(), now)
            .await?;
        tracing::info!(lead_id = %record.lead_id, customer_lead = %outcome.lead().lead_id, outcome = outcome.as_str(), "second key linked");
        let events = dedup::link_audit(
            &outcome,
            key,
            &Actor::Platform(lead.platform.to_string()),
            now,
        );
        if !events.is_empty() {
            self.audit.append(&events).await?;
        }
        if let Some(job) = dedup::link_notification(&outcome, Utc::now()) {
            self.notifications.send(&job).await?;
        }
        Ok(Some(outcome))
    }

    /// Routes (if not yet) and assigns (if not yet) a created lead.
    async fn route_and_assign(
        &self,
        mut record: LeadRecord,
        brand: &Brand,
        owner_dealer: Option<&Dealer>,
        now: DateTime<Utc>,
    ) -> Result<LeadRecord, RouterError> {
        if record.route.is_none() {
            record = self.route(record, brand, owner_dealer, now).await?;
        }
        match (&record.route, record.status) {
            (Some(Route::Unroutable { reason }), _) => {
                let reason = *reason;
                self.hand_to_crm(&record, &reason).await?;
            }
            (Some(_), LeadStatus::New) => record = self.assign(record, brand, now).await?,
            (Some(_), LeadStatus::Assigned) => {
                // Assigned by an earlier attempt that may have died before notifying.
                self.notify(
                    &record,
                    NotificationKind::NewAssignment,
                    record.assignee.iter().cloned().collect(),
                    "1",
                )
                .await?;
            }
            (Some(_), LeadStatus::Offered) => {
                self.notify(
                    &record,
                    NotificationKind::ClaimOffer,
                    record.offered_to.clone(),
                    "1",
                )
                .await?;
            }
            _ => {}
        }
        Ok(record)
    }

    async fn route(
        &self,
        mut record: LeadRecord,
        brand: &Brand,
        owner_dealer: Option<&Dealer>,
        now: DateTime<Utc>,
    ) -> Result<LeadRecord, RouterError> {
        for _attempt in 0..4 {
            let city = record.customer_city;
            let local = owner_dealer.is_some_and(|d| city.is_none_or(|c| d.serves(c)));
            let mut candidates = Vec::new();
            let mut capacities = std::collections::HashMap::new();
            if let (false, Some(city)) = (local, city) {
                for dealer_id in self
                    .directory
                    .dealers_serving(&brand.brand_id, city)
                    .await?
                {
                    let Some(dealer) = self.directory.dealer(&dealer_id).await? else {
                        continue;
                    };
                    let received = self.leads.remote_received_today(&dealer_id, now).await?;
                    capacities.insert(dealer_id.clone(), dealer.daily_remote_capacity);
                    candidates.push(RemoteCandidate {
                        tier: self.stats.latest_tier(&dealer_id).await?,
                        remaining_capacity: dealer.daily_remote_capacity.saturating_sub(received),
                        received_today: received,
                        dealer_id,
                    });
                }
            }
            let route = routing::route(owner_dealer, city, &candidates, &record.lead_id);
            let (route, proposed) = routing::review(route, brand.remote_mode);
            record.proposed_dealer = proposed;
            let cap = match &route {
                Route::Remote { dealer_id, .. } => capacities.get(dealer_id).copied(),
                _ => None,
            };
            match self.leads.set_route(&record, &route, cap, now).await? {
                RouteResult::Routed(routed) => {
                    let detail = serde_json::to_string(&route).unwrap_or_default();
                    tracing::info!(lead_id = %routed.lead_id, route = %detail, "lead routed");
                    self.audit
                        .append(&[event(
                            &routed.lead_id,
                            AuditAction::Routed,
                            system(),
                            now,
                            &detail,
                        )])
                        .await?;
                    return Ok(*routed);
                }
                RouteResult::AlreadyRouted => {
                    return self.leads.get(&record.lead_id).await?.ok_or_else(|| {
                        RouterError::Malformed(format!("lead {} vanished", record.lead_id))
                    });
                }
                // Another lead took the dealer's last remote slot: pick again.
                RouteResult::CapacityTaken => continue,
            }
        }
        // Contention, not failure: the batch retries the message in process.
        Err(RouterError::Store(StoreError::Conflict {
            operation: "remote capacity reservation",
        }))
    }

    /// Assigns a lead already written (a pooled one, a returning customer).
    /// Its round-robin turn is kept across retries and used once it is placed.
    async fn assign(
        &self,
        record: LeadRecord,
        brand: &Brand,
        now: DateTime<Utc>,
    ) -> Result<LeadRecord, RouterError> {
        let lead_id = record.lead_id.clone();
        let placed = self.assign_with_turn(record, brand, now).await;
        if placed.is_ok() {
            self.tickets.release(&lead_id);
        }
        placed
    }

    async fn assign_with_turn(
        &self,
        mut record: LeadRecord,
        brand: &Brand,
        now: DateTime<Utc>,
    ) -> Result<LeadRecord, RouterError> {
        let Some(dealer_id) = record.dealer_id.clone() else {
            return Ok(record);
        };
        let Some(dealer) = self.directory.dealer(&dealer_id).await? else {
            return Err(RouterError::Malformed(format!(
                "dealer {dealer_id} not in the directory"
            )));
        };
        let staff = self.directory.staff_of(&dealer_id).await?;
        // The WeCom consultant who added the customer keeps them, if they can.
        let hint = record.staff_hint.as_deref().and_then(|hint| {
            staff
                .iter()
                .find(|s| s.wecom_userid.as_deref() == Some(hint) || s.staff_id == hint)
                .map(|s| s.staff_id.clone())
        });
        for _attempt in 0..5 {
            let loads = self.leads.staff_loads(&dealer_id, &staff).await?;
            let ticket = match dealer.strategy {
                leads_domain::directory::AssignmentStrategy::RoundRobin => {
                    self.ticket_for(&record.lead_id, &dealer_id).await?
                }
                _ => 0,
            };
            // A returning customer goes back to their consultant (same dealer),
            // else the WeCom consultant who added them; either only if they can.
            let returning = record
                .previous_assignee
                .as_deref()
                .filter(|_| record.previous_dealer.as_deref() == Some(dealer_id.as_str()));
            let preferred: Vec<Preferred<'_>> = returning
                .map(Preferred::ReturningCustomer)
                .into_iter()
                .chain(hint.as_deref().map(Preferred::StaffHint))
                .collect();
            let loads = assignment::first_stage(dealer.dcc_screening, &loads);
            match assignment::assign_preferring(dealer.strategy, &loads, ticket, &preferred) {
                Assignment::Staff { staff_id, reason } => {
                    let load = loads
                        .iter()
                        .find(|l| l.staff_id == staff_id)
                        .expect("chosen from loads");
                    match self.leads.assign(&record, load, brand, now).await? {
                        AssignResult::Assigned => {
                            record.assignee = Some(staff_id.clone());
                            record.status = LeadStatus::Assigned;
                            record.assigned_at = Some(now);
                            record.milestones.push(leads_domain::lead::Milestone {
                                kind: leads_domain::lead::MilestoneKind::Assigned,
                                at: now,
                            });
                            tracing::info!(lead_id = %record.lead_id, %dealer_id, %staff_id, ?reason, "lead assigned");
                            // A hint for a later return: a failure here must
                            // not fail (and redeliver) an assignment that is done.
                            if let Err(err) = self
                                .leads
                                .remember_assignee(&record, &dealer_id, &staff_id)
                                .await
                            {
                                tracing::warn!(lead_id = %record.lead_id, error = %err, "linked keys do not remember the assignee");
                            }
                            self.audit
                                .append(&[event(
                                    &record.lead_id,
                                    AuditAction::Assigned,
                                    system(),
                                    now,
                                    &format!("{staff_id} ({reason:?})"),
                                )])
                                .await?;
                            self.notify(
                                &record,
                                NotificationKind::NewAssignment,
                                vec![staff_id],
                                "1",
                            )
                            .await?;
                            return Ok(record);
                        }
                        AssignResult::AlreadyAssigned => {
                            return self.leads.get(&record.lead_id).await?.ok_or_else(|| {
                                RouterError::Malformed(format!("lead {} vanished", record.lead_id))
                            });
                        }
                        AssignResult::CapReached => continue,
                    }
                }
                Assignment::Offer { staff_ids } => {
                    if self
                        .leads
                        .offer(&record, &staff_ids, now, dealer.claim_fallback_minutes)
                        .await?
                    {
                        record.status = LeadStatus::Offered;
                        record.offered_to = staff_ids.clone();
                        self.audit
                            .append(&[event(
                                &record.lead_id,
                                AuditAction::Routed,
                                system(),
                                now,
                                &format!("offered to {} consultants to claim", staff_ids.len()),
                            )])
                            .await?;
                        self.notify(&record, NotificationKind::ClaimOffer, staff_ids, "1")
                            .await?;
                    }
                    return Ok(record);
                }
                Assignment::NoOneAvailable => {
                    let managers: Vec<String> = staff
                        .iter()
                        .filter(|s| s.role == StaffRole::Manager)
                        .map(|s| s.staff_id.clone())
                        .collect();
                    tracing::warn!(lead_id = %record.lead_id, %dealer_id, "no consultant can take the lead; it waits in the dealer's pool");
                    // The SLA sweeper retries the pool from the index.
                    self.leads
                        .wait_in_pool(&record, leads_domain::sla::pool_retry_at(now))
                        .await?;
                    self.notify(&record, NotificationKind::NoOneAvailable, managers, "1")
                        .await?;
                    return Ok(record);
                }
            }
        }
        // Contention, not failure: the batch retries the message in process.
        Err(RouterError::Store(StoreError::Conflict {
            operation: "assignment below cap",
        }))
    }

    /// An unroutable lead to the brand's CRM queue, with the reason (the
    /// notifier delivers it to the brand's CRM). Idempotent for the CRM: the
    /// event id is the lead's, however often it is sent.
    async fn hand_to_crm(
        &self,
        record: &LeadRecord,
        reason: &leads_domain::routing::UnroutableReason,
    ) -> Result<(), RouterError> {
        self.crm
            .send(&CrmEvent::unroutable(record, *reason, Utc::now()))
            .await?;
        Ok(())
    }

    /// Tells the brand CRM that the unrouted lead `old` it was handed is
    /// taken over by the routed lead `new`.
    async fn crm_superseded(&self, old: &LeadRecord, new: &LeadRecord) -> Result<(), RouterError> {
        self.crm
            .send(&CrmEvent::superseded(old, new, Utc::now()))
            .await?;
        Ok(())
    }

    async fn notify_returned(
        &self,
        record: &LeadRecord,
        lead: &CanonicalLead,
    ) -> Result<(), RouterError> {
        let recipients: Vec<String> = record.assignee.iter().cloned().collect();
        if recipients.is_empty() {
            return Ok(());
        }
        self.notify(
            record,
            NotificationKind::CustomerReturned,
            recipients,
            &lead.source_event_id,
        )
        .await
    }

    async fn notify(
        &self,
        record: &LeadRecord,
        kind: NotificationKind,
        recipients: Vec<String>,
        occurrence: &str,
    ) -> Result<(), RouterError> {
        let job = NotificationJob::for_lead(record, kind, recipients, occurrence, Utc::now());
        // Inside a batch the job waits for the batch's one send.
        let queued = OUTBOX.try_with(|o| o.borrow_mut().push(job.clone()));
        if queued.is_err() {
            self.notifications.send(&job).await?;
        }
        Ok(())
    }
}

/// The dealer's rules for `record`: a returning customer goes back to their
/// consultant (same dealer), else the WeCom consultant who added them gets
/// them, either only if they can take it; otherwise the strategy decides.
fn choose(
    record: &LeadRecord,
    dealer: &Dealer,
    staff: &[Staff],
    loads: &[StaffLoad],
    ticket: u64,
) -> Assignment {
    let hint = record.staff_hint.as_deref().and_then(|hint| {
        staff
            .iter()
            .find(|s| s.wecom_userid.as_deref() == Some(hint) || s.staff_id == hint)
            .map(|s| s.staff_id.as_str())
    });
    let returning = record
        .previous_assignee
        .as_deref()
        .filter(|_| record.previous_dealer.as_deref() == Some(dealer.dealer_id.as_str()));
    let preferred: Vec<Preferred<'_>> = returning
        .map(Preferred::ReturningCustomer)
        .into_iter()
        .chain(hint.map(Preferred::StaffHint))
        .collect();
    let group = assignment::first_stage(dealer.dcc_screening, loads);
    assignment::assign_preferring(dealer.strategy, &group, ticket, &preferred)
}

/// Who is told when nobody can take a lead.
fn managers(staff: &[Staff]) -> Vec<String> {
    staff
        .iter()
        .filter(|s| s.role == StaffRole::Manager)
        .map(|s| s.staff_id.clone())
        .collect()
}

fn system() -> Actor {
    Actor::System(ACTOR.to_string())
}

fn event(
    lead_id: &str,
    action: AuditAction,
    actor: Actor,
    at: DateTime<Utc>,
    detail: &str,
) -> AuditEvent {
    AuditEvent {
        lead_id: lead_id.to_string(),
        action,
        actor,
        at,
        detail: detail.to_string(),
    }
}

fn processed(record: &LeadRecord, outcome: DedupOutcome) -> Processed {
    Processed {
        lead_id: Some(record.lead_id.clone()),
        outcome: Some(outcome),
        route: record.route.clone(),
        assignee: record.assignee.clone(),
    }
}

#[cfg(test)]
mod tally_tests {
    use super::*;
    use leads_domain::routing::UnroutableReason;

    fn processed(outcome: DedupOutcome, route: Option<Route>) -> Processed {
        Processed {
            lead_id: Some("L1".into()),
            outcome: Some(outcome),
            route,
            assignee: None,
        }
    }

    #[test]
    fn a_batch_counts_new_leads_by_route_and_merges_but_not_duplicates() {
        let remote = Route::Remote {
            dealer_id: "d2".into(),
            referrer: Some("d1".into()),
        };
        let local = Route::Local {
            dealer_id: "d1".into(),
        };
        let unroutable = Route::Unroutable {
            reason: UnroutableReason::NoDealerServesCity,
        };
        let mut tally = Tally::default();
        for p in [
            processed(DedupOutcome::Created, Some(local.clone())),
            processed(DedupOutcome::Created, Some(remote.clone())),
            processed(DedupOutcome::Created, Some(unroutable)),
            processed(DedupOutcome::Merged, Some(local)),
            processed(DedupOutcome::Duplicate, Some(remote)),
        ] {
            tally.add(&p);
        }
        assert_eq!(
            tally,
            Tally {
                created: 3,
                merged: 1,
                remote: 1,
                unroutable: 1,
                conflicts_retried: 0,
            }
        );
    }
}
