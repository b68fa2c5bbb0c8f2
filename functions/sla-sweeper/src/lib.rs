//! The SLA sweeper, run by an EventBridge schedule every 5 minutes. For each
//! brand (one index query per brand), for each lead whose deadline in the
//! `by_due` index has passed:
//!
//! 1. read the lead (consistently: the index may lag) and decide what the
//!    deadline means (pure: `leads_domain::sla::check`);
//! 2. claim the step in the idempotency table (`sla#{lead}#{check}#{due}`),
//!    so overlapping runs act once;
//! 3. act with conditional writes that only apply while the lead is as read:
//!    - first contact overdue: audit, an `SlaWarning` job for the managers,
//!      and, if the brand says so, reassignment to someone else;
//!    - claim offer expired: round-robin fallback;
//!    - exclusivity expired: back to the dealer's pool and to someone else;
//!    - nobody could take it: the lead waits in the pool and is retried.
//!
//! Notification job ids are derived from the deadline that fired, so even a
//! step repeated after a crash names the same job and the notifier sends it
//! once. The core takes `now`, so tests move time instead of waiting.

use std::time::Duration;

use chrono::{DateTime, Utc};
use leads_aws::store::{
    Begin, DirectoryStore, Due, DueFollowUp, DueLead, DynamoAudit, DynamoDirectory,
    DynamoIdempotency, DynamoLeads, HeldTickets, IdempotencyStore, MessageQueue, ReassignResult,
    SqsQueue,
};
use leads_aws::{AwsClients, Settings, StoreError};
use leads_domain::assignment::{self, AssignReason, Assignment};
use leads_domain::audit::{Actor, AuditAction, AuditEvent};
use leads_domain::directory::{AssignmentStrategy, Brand};
use leads_domain::lead::{LeadRecord, LeadStatus};
use leads_domain::notification::{NotificationJob, NotificationKind};
use leads_domain::sla::{self, SlaCheck};
use leads_domain::status;
use serde::Serialize;

const ACTOR: &str = "sla-sweeper";
/// Leads handled per brand per run; the rest stay due for the next run.
pub const DEFAULT_MAX_PER_BRAND: usize = 500;
/// How long a claimed step blocks other runs if this one dies; above the
/// function's timeout.
pub const STEP_LEASE: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("inconsistent data: {0}")]
    Inconsistent(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl leads_aws::retry::IsConflict for SweepError {
    fn is_conflict(&self) -> bool {
        matches!(self, SweepError::Store(e) if leads_aws::retry::IsConflict::is_conflict(e))
    }
}

/// How long one run may spend retrying a lead's write conflicts (the
/// function's timeout is longer; the next run, 5 minutes on, retries anyway).
const CONFLICT_BUDGET: Duration = Duration::from_secs(20);

/// What one lead's sweep did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Swept {
    /// The index held a stale or future deadline: moved or left.
    Rescheduled,
    /// Another run has this step, or the lead changed meanwhile.
    Skipped,
    /// Managers warned about an overdue first contact; maybe reassigned.
    Warned { reassigned_to: Option<String> },
    /// Exclusivity ended: the lead went to someone else.
    Reassigned { to: String },
    /// An expired claim offer or a pooled lead got a consultant.
    Assigned { to: String },
    /// Nobody can take it: the lead waits in the dealer's pool.
    Pooled,
    /// Still in the pool; retried later.
    StillPooled,
}

/// Counts for one run, for the log line and the tests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    pub due: u32,
    pub warned: u32,
    pub reassigned: u32,
    pub assigned: u32,
    pub pooled: u32,
    pub rescheduled: u32,
    pub skipped: u32,
    /// Follow-ups whose next call came due: their assignee was reminded.
    pub follow_ups_reminded: u32,
    pub failed: u32,
}

impl SweepReport {
    fn count(&mut self, swept: &Swept) {
        match swept {
            Swept::Rescheduled | Swept::StillPooled => self.rescheduled += 1,
            Swept::Skipped => self.skipped += 1,
            Swept::Warned { reassigned_to } => {
                self.warned += 1;
                if reassigned_to.is_some() {
                    self.reassigned += 1;
                }
            }
            Swept::Reassigned { .. } => self.reassigned += 1,
            Swept::Assigned { .. } => self.assigned += 1,
            Swept::Pooled => self.pooled += 1,
        }
    }

    fn add(&mut self, other: &SweepReport) {
        self.due += other.due;
        self.warned += other.warned;
        self.reassigned += other.reassigned;
        self.assigned += other.assigned;
        self.pooled += other.pooled;
        self.rescheduled += other.rescheduled;
        self.skipped += other.skipped;
        self.follow_ups_reminded += other.follow_ups_reminded;
        self.failed += other.failed;
    }
}

/// Where a lead ended up after trying to give it to a consultant.
enum Placed {
    To(String, AssignReason),
    NoOne,
    /// The lead changed under us (contacted, claimed, another run).
    Changed,
}

pub struct Sweeper {
    directory: DynamoDirectory,
    leads: DynamoLeads,
    audit: DynamoAudit,
    steps: DynamoIdempotency,
    notifications: SqsQueue,
    max_per_brand: usize,
    retry: leads_aws::retry::ConflictRetry,
    conflicts_retried: std::sync::atomic::AtomicU64,
    /// Round-robin turns of leads being placed (kept across retries).
    tickets: HeldTickets,
}

impl Sweeper {
    pub async fn from_env() -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let settings = Settings::from_env()?;
        let max =
            leads_aws::config::number("SLA_MAX_LEADS_PER_BRAND", DEFAULT_MAX_PER_BRAND as u64)?;
        let mut sweeper = Self::new(&settings, &AwsClients::from_env().await);
        sweeper.max_per_brand = max as usize;
        Ok(sweeper)
    }

    pub fn new(settings: &Settings, clients: &AwsClients) -> Self {
        let t = &settings.tables;
        let db = clients.dynamodb.clone();
        Sweeper {
            directory: DynamoDirectory::new(db.clone(), &t.directory),
            leads: DynamoLeads::new(db.clone(), &t.leads, &t.stats),
            audit: DynamoAudit::new(db.clone(), &t.audit),
            steps: DynamoIdempotency::new(
                db,
                &t.idempotency,
                settings.idempotency_retention,
                STEP_LEASE,
            ),
            notifications: SqsQueue::new(clients.sqs.clone(), &settings.queues.notification),
            max_per_brand: DEFAULT_MAX_PER_BRAND,
            retry: leads_aws::retry::ConflictRetry::default(),
            conflicts_retried: std::sync::atomic::AtomicU64::new(0),
            tickets: HeldTickets::default(),
        }
    }

    /// Write conflicts retried in process over this sweeper's lifetime.
    pub fn conflicts_retried(&self) -> u64 {
        self.conflicts_retried
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Sweeps every brand in the directory.
    pub async fn sweep(&self, now: DateTime<Utc>) -> Result<SweepReport, SweepError> {
        let brands = self.directory.brands().await?;
        Ok(self.sweep_brands(&brands, now).await)
    }

    /// Sweeps the given brands, one index query each; a brand that fails is
    /// counted and the others still run.
    pub async fn sweep_brands(&self, brands: &[Brand], now: DateTime<Utc>) -> SweepReport {
        let mut total = SweepReport::default();
        for brand in brands {
            match self.sweep_brand(brand, now).await {
                Ok(report) => {
                    if report != SweepReport::default() {
                        tracing::info!(brand_id = %brand.brand_id, ?report, "brand swept");
                    }
                    total.add(&report);
                }
                Err(err) => {
                    tracing::error!(brand_id = %brand.brand_id, error = %err, "brand sweep failed");
                    total.failed += 1;
                }
            }
        }
        total
    }

    pub async fn sweep_brand(
        &self,
        brand: &Brand,
        now: DateTime<Utc>,
    ) -> Result<SweepReport, SweepError> {
        let ids = self
            .leads
            .due_lead_ids(&brand.brand_id, now, self.max_per_brand)
            .await?;
        let mut report = SweepReport {
            due: ids.len() as u32,
            ..SweepReport::default()
        };
        for lead_id in ids {
            // A write conflict (a router or the API touching the lead or a
            // consultant's counter at the same moment) is retried from the
            // start: the step claim was released, the lead is read again.
            let deadline = std::time::Instant::now() + CONFLICT_BUDGET;
            let swept = self
                .retry
                .run(deadline, &self.conflicts_retried, || {
                    Box::pin(self.sweep_lead(brand, &lead_id, now))
                })
                .await;
            match swept {
                Ok(swept) => report.count(&swept),
                Err(err) => {
                    tracing::error!(%lead_id, error = %err, "lead sweep failed; the next run retries");
                    report.failed += 1;
                }
            }
        }
        for due in self
            .leads
            .due_follow_ups(&brand.brand_id, now, self.max_per_brand)
            .await?
        {
            match self.remind(&due).await {
                Ok(true) => report.follow_ups_reminded += 1,
                Ok(false) => {}
                Err(err) => {
                    tracing::error!(lead_id = %due.lead_id, error = %err, "follow-up reminder failed; the next run retries");
                    report.failed += 1;
                }
            }
        }
        Ok(report)
    }

    /// A follow-up's next call is due: the assignee is reminded (the job id
    /// names that next call, so a retried run reminds once), then the
    /// reminder is done. A lead closed, moved on to a newer next call, or
    /// gone since only drops the reminder. True if a reminder was sent.
    async fn remind(&self, due: &DueFollowUp) -> Result<bool, SweepError> {
        let lead = self.leads.get(&due.lead_id).await?;
        let current = lead.as_ref().filter(|l| {
            status::is_open(l.status)
                && l.next_follow_up_at
                    .is_some_and(|at| at.to_rfc3339() == due.at)
        });
        let sent = match current.and_then(|l| l.assignee.clone().map(|a| (l, a))) {
            Some((record, assignee)) => {
                self.notify(
                    record,
                    NotificationKind::FollowUpDue,
                    vec![assignee],
                    &format!("follow-up-{}", due.at),
                )
                .await?;
                true
            }
            None => false,
        };
        self.leads.reminder_done(due).await?;
        Ok(sent)
    }

    /// Sweeps one lead the index says is due.
    pub async fn sweep_lead(
        &self,
        brand: &Brand,
        lead_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Swept, SweepError> {
        let Some(lead) = self.leads.due_lead(lead_id).await? else {
            return Ok(Swept::Skipped);
        };
        let Some(due) = lead.due.clone() else {
            return Ok(Swept::Skipped); // left the index since the query
        };
        let check = sla::check(&lead.lead, due.at, now);
        if let SlaCheck::Wait { next } = check {
            if next != Some(due.at) {
                self.leads.reschedule(&lead, &due, next).await?;
            }
            return Ok(Swept::Rescheduled);
        }
        // One run per step: the deadline that fired names it.
        let key = format!("sla#{lead_id}#{}#{}", check.as_str(), due.raw);
        if self.steps.begin(&key, now).await? != Begin::Started {
            return Ok(Swept::Skipped);
        }
        match self.act(brand, &lead, &due, check, now).await {
            Ok(swept) => {
                self.steps.complete(&key, 1).await?;
                if check == SlaCheck::FirstContactOverdue {
                    // Once per breach: the step's key runs once.
                    leads_aws::emf::count(leads_aws::emf::names::SLA_BREACHES, 1);
                }
                tracing::info!(%lead_id, check = check.as_str(), result = ?swept, "sla step done");
                Ok(swept)
            }
            Err(err) => {
                // Let the next run try again.
                if let Err(e) = self.steps.release(&key).await {
                    tracing::warn!(%lead_id, error = %e, "could not release the sla step; its lease will expire");
                }
                Err(err)
            }
        }
    }

    async fn act(
        &self,
        brand: &Brand,
        lead: &DueLead,
        due: &Due,
        check: SlaCheck,
        now: DateTime<Utc>,
    ) -> Result<Swept, SweepError> {
        let record = &lead.lead;
        let occurrence = sla::occurrence(check, due.at);
        match check {
            SlaCheck::Wait { .. } => Ok(Swept::Rescheduled),
            SlaCheck::FirstContactOverdue => {
                let assignee = record.assignee.clone().unwrap_or_default();
                self.audit(
                    record,
                    AuditAction::SlaBreached,
                    now,
                    format!("first contact was due {} ({assignee})", due.at.to_rfc3339()),
                )
                .await?;
                self.leads.record_breach(&record.lead_id, now).await?;
                let plan = sla::on_first_contact_overdue(brand);
                if plan.warn_managers {
                    // Empty recipients: the notifier resolves the dealer's managers.
                    self.notify(record, NotificationKind::SlaWarning, vec![], &occurrence)
                        .await?;
                }
                if plan.reassign {
                    match self.place(brand, lead, due, Some(&assignee), now).await? {
                        Placed::To(to, _) => {
                            self.audit(
                                record,
                                AuditAction::Reassigned,
                                now,
                                format!("{assignee} -> {to}: first contact overdue"),
                            )
                            .await?;
                            self.notify(
                                record,
                                NotificationKind::Reassigned,
                                vec![to.clone()],
                                &occurrence,
                            )
                            .await?;
                            return Ok(Swept::Warned {
                                reassigned_to: Some(to),
                            });
                        }
                        Placed::Changed => {
                            return Ok(Swept::Warned {
                                reassigned_to: None,
                            })
                        }
                        Placed::NoOne => {}
                    }
                }
                // Warned once: the next thing to watch is the exclusivity.
                self.leads
                    .reschedule(lead, due, record.exclusive_until)
                    .await?;
                Ok(Swept::Warned {
                    reassigned_to: None,
                })
            }
            SlaCheck::ExclusivityExpired => {
                let previous = record.assignee.clone().unwrap_or_default();
                match self.place(brand, lead, due, Some(&previous), now).await? {
                    Placed::To(to, _) => {
                        self.audit(record, AuditAction::ReturnedToPool, now, format!(
                            "exclusivity of {previous} ended without progress"
                        ))
                        .await?;
                        self.audit(record, AuditAction::Reassigned, now, format!(
                            "{previous} -> {to}: exclusivity expired"
                        ))
                        .await?;
                        self.notify(record, NotificationKind::Reassigned, vec![to.clone()], &occurrence)
                            .await?;
                        Ok(Swept::Reassigned { to })
                    }
                    Placed::NoOne => {
                        self.pool(lead, due, Some(&previous), &occurrence, now, format!(
                            "exclusivity of {previous} ended without progress; nobody else can take it"
                        ))
                        .await
                    }
                    Placed::Changed => Ok(Swept::Skipped),
                }
            }
            SlaCheck::ClaimExpired | SlaCheck::PoolRetry => {
                // Whoever let the lead lapse does not get it back from the pool.
                let exclude = lead.pool_excluded.as_deref();
                match self.place(brand, lead, due, exclude, now).await? {
                    Placed::To(to, reason) => {
                        self.audit(
                            record,
                            AuditAction::Assigned,
                            now,
                            format!("{to} ({reason:?})"),
                        )
                        .await?;
                        self.notify(
                            record,
                            NotificationKind::NewAssignment,
                            vec![to.clone()],
                            &occurrence,
                        )
                        .await?;
                        Ok(Swept::Assigned { to })
                    }
                    Placed::NoOne if check == SlaCheck::ClaimExpired => {
                        self.pool(
                            lead,
                            due,
                            None,
                            &occurrence,
                            now,
                            "claim offer expired unclaimed; nobody can take it".to_string(),
                        )
                        .await
                    }
                    Placed::NoOne => {
                        // Still nobody: try again later, without telling anyone again.
                        self.leads
                            .reschedule(lead, due, Some(sla::pool_retry_at(now)))
                            .await?;
                        Ok(Swept::StillPooled)
                    }
                    Placed::Changed => Ok(Swept::Skipped),
                }
            }
        }
    }

    /// Puts the lead back in the dealer's pool (not to be given back to
    /// `exclude`) and tells the managers once.
    async fn pool(
        &self,
        lead: &DueLead,
        due: &Due,
        exclude: Option<&str>,
        occurrence: &str,
        now: DateTime<Utc>,
        detail: String,
    ) -> Result<Swept, SweepError> {
        let record = &lead.lead;
        if !self
            .leads
            .return_to_pool(lead, due, sla::pool_retry_at(now), exclude)
            .await?
        {
            return Ok(Swept::Skipped);
        }
        self.audit(record, AuditAction::ReturnedToPool, now, detail)
            .await?;
        self.notify(record, NotificationKind::NoOneAvailable, vec![], occurrence)
            .await?;
        Ok(Swept::Pooled)
    }

    /// Gives the lead to a consultant of its dealer other than `exclude`, by
    /// the dealer's strategy (claim dealers and expired offers: round-robin
    /// fallback), with the cap-checked conditional transaction. The lead keeps
    /// one round-robin turn across its attempts and conflict retries.
    async fn place(
        &self,
        brand: &Brand,
        lead: &DueLead,
        due: &Due,
        exclude: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Placed, SweepError> {
        let record = &lead.lead;
        let dealer_id = record.dealer_id.as_deref().ok_or_else(|| {
            SweepError::Inconsistent(format!("lead {} has no dealer", record.lead_id))
        })?;
        let dealer = self.directory.dealer(dealer_id).await?.ok_or_else(|| {
            SweepError::Inconsistent(format!("dealer {dealer_id} not in the directory"))
        })?;
        let staff: Vec<_> = self
            .directory
            .staff_of(dealer_id)
            .await?
            .into_iter()
            .filter(|s| Some(s.staff_id.as_str()) != exclude)
            // On leave at the sweep: off duty.
            .map(|s| s.as_of(now))
            .collect();
        let round_robin =
            dealer.strategy == AssignmentStrategy::Claim || record.status == LeadStatus::Offered;
        for _attempt in 0..4 {
            let loads = self.leads.staff_loads(dealer_id, &staff).await?;
            let ticket = match (round_robin, dealer.strategy) {
                (false, AssignmentStrategy::Saturation) => 0,
                _ => {
                    self.tickets
                        .ticket_for(&record.lead_id, dealer_id, || {
                            self.leads.next_ticket(dealer_id)
                        })
                        .await?
                }
            };
            let choice = if round_robin {
                assignment::fallback_after_claim_timeout(&loads, ticket)
            } else {
                assignment::assign(dealer.strategy, &loads, ticket, None)
            };
            // Placed or not, an outcome uses the lead's turn (errors keep it).
            let done = |placed| {
                self.tickets.release(&record.lead_id);
                Ok(placed)
            };
            let (staff_id, reason) = match choice {
                Assignment::Staff { staff_id, reason } => (staff_id, reason),
                Assignment::Offer { .. } | Assignment::NoOneAvailable => {
                    return done(Placed::NoOne)
                }
            };
            let load = loads
                .iter()
                .find(|l| l.staff_id == staff_id)
                .expect("chosen from loads");
            match self
                .leads
                .reassign(lead, due, load, brand, None, now)
                .await?
            {
                ReassignResult::Reassigned => return done(Placed::To(staff_id, reason)),
                ReassignResult::Changed => return done(Placed::Changed),
                ReassignResult::CapReached => continue,
            }
        }
        Err(SweepError::Store(StoreError::Service {
            service: "dynamodb",
            message: "consultant caps kept changing; the next run retries".into(),
        }))
    }

    async fn audit(
        &self,
        record: &LeadRecord,
        action: AuditAction,
        at: DateTime<Utc>,
        detail: String,
    ) -> Result<(), SweepError> {
        self.audit
            .append(&[AuditEvent {
                lead_id: record.lead_id.clone(),
                action,
                actor: Actor::System(ACTOR.into()),
                at,
                detail,
            }])
            .await?;
        Ok(())
    }

    /// Sends a job whose id is derived from the SLA event, retrying briefly:
    /// the lead has already moved, so a job lost here would not be resent.
    async fn notify(
        &self,
        record: &LeadRecord,
        kind: NotificationKind,
        recipients: Vec<String>,
        occurrence: &str,
    ) -> Result<(), SweepError> {
        let job = NotificationJob::for_lead(record, kind, recipients, occurrence, Utc::now());
        let mut last = None;
        for attempt in 0..3u32 {
            match self.notifications.send(&job).await {
                Ok(_) => return Ok(()),
                Err(err) => {
                    tracing::warn!(job_id = %job.job_id, error = %err, attempt, "sending a notification job failed");
                    last = Some(err);
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                }
            }
        }
        Err(last.expect("three attempts failed").into())
    }
}

#[cfg(test)]
mod conflict_tests {
    use super::*;
    use leads_aws::retry::IsConflict;

    #[test]
    fn only_a_write_conflict_is_retried() {
        let conflict = SweepError::Store(StoreError::Conflict {
            operation: "TransactWriteItems",
        });
        assert!(conflict.is_conflict());
        assert!(!SweepError::Inconsistent("x".into()).is_conflict());
    }
}
