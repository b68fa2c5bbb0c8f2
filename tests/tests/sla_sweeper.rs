//! The SLA sweeper against the emulator: leads are routed and assigned by the
//! real router at a time in the past (or the sweeper is run at a time in the
//! future), then swept; overlapping runs act once.

use chrono::{DateTime, Duration, Utc};
use integration_tests::world::{lead, phone, world, World};
use integration_tests::{drain, scratch_queue_like};
use leads_aws::store::{DirectoryStore, DynamoDirectory, StatusResult};
use leads_domain::audit::AuditAction;
use leads_domain::directory::{AssignmentStrategy, Brand, Platform, Staff};
use leads_domain::directory_file::Directory;
use leads_domain::lead::{LeadRecord, LeadStatus};
use leads_domain::notification::{NotificationJob, NotificationKind};
use sla_sweeper::{SweepReport, Sweeper};

struct Setup {
    w: World,
    directory: DynamoDirectory,
    /// Where the sweeper's jobs go (the router's go to `w.notifications`).
    jobs: String,
}

async fn setup(strategy: AssignmentStrategy, caps: &[u32]) -> Option<Setup> {
    let w = world(strategy, caps).await?;
    let directory = DynamoDirectory::new(
        w.stack.clients.dynamodb.clone(),
        &w.stack.settings.tables.directory,
    );
    let jobs =
        scratch_queue_like(&w.stack.clients.sqs, &w.stack.settings.queues.notification).await;
    Some(Setup { w, directory, jobs })
}

impl Setup {
    fn sweeper(&self) -> Sweeper {
        let mut settings = self.w.stack.settings.clone();
        settings.queues.notification = self.jobs.clone();
        Sweeper::new(&settings, &self.w.stack.clients)
    }

    async fn brand(&self) -> Brand {
        self.directory.brand(&self.w.brand).await.unwrap().unwrap()
    }

    async fn reassign_on_breach(&self) {
        let mut brand = self.brand().await;
        brand.reassign_on_sla_breach = true;
        self.save(vec![brand], vec![]).await;
    }

    async fn save(&self, brands: Vec<Brand>, staff: Vec<Staff>) {
        self.directory
            .save(&Directory {
                brands,
                dealers: vec![],
                staff,
                accounts: vec![],
                brand_ops: vec![],
            })
            .await
            .unwrap();
    }

    fn id(&self, short: &str) -> String {
        format!("{}-jn-{short}", self.w.brand)
    }

    /// A new lead for the Jinan dealer, routed and assigned (or offered) at `at`.
    async fn lead_at(&self, at: DateTime<Utc>) -> LeadRecord {
        let l = lead(&self.w, Platform::Douyin, "dy-jn", &phone(), None);
        let p = self.w.router.handle_lead(&l, at).await.unwrap();
        drain(&self.w.stack.clients.sqs, &self.w.notifications).await;
        self.get(&p.lead_id.unwrap()).await
    }

    async fn get(&self, lead_id: &str) -> LeadRecord {
        self.w.leads.get(lead_id).await.unwrap().unwrap()
    }

    async fn jobs(&self) -> Vec<NotificationJob> {
        drain(&self.w.stack.clients.sqs, &self.jobs)
            .await
            .iter()
            .map(|b| serde_json::from_str(b).unwrap())
            .collect()
    }

    async fn sweep(&self, now: DateTime<Utc>) -> SweepReport {
        self.sweeper()
            .sweep_brand(&self.brand().await, now)
            .await
            .unwrap()
    }

    async fn actions(&self, lead_id: &str) -> Vec<AuditAction> {
        self.w
            .audit
            .trail(lead_id)
            .await
            .unwrap()
            .iter()
            .map(|e| e.action)
            .collect()
    }

    async fn open_leads(&self, short: &str) -> u32 {
        let staff = self
            .directory
            .staff_of(&format!("{}-jn", self.w.brand))
            .await
            .unwrap();
        self.w
            .leads
            .staff_loads(&format!("{}-jn", self.w.brand), &staff)
            .await
            .unwrap()
            .into_iter()
            .find(|l| l.staff_id == self.id(short))
            .unwrap()
            .open_leads
    }

    /// The deadline the lead is indexed under now.
    async fn due(&self, lead_id: &str) -> Option<DateTime<Utc>> {
        self.w
            .leads
            .due_lead(lead_id)
            .await
            .unwrap()
            .unwrap()
            .due
            .map(|d| d.at)
    }
}

fn kinds(jobs: &[NotificationJob]) -> Vec<NotificationKind> {
    jobs.iter().map(|j| j.kind).collect()
}

fn count(actions: &[AuditAction], action: AuditAction) -> usize {
    actions.iter().filter(|a| **a == action).count()
}

#[tokio::test]
async fn two_concurrent_sweeps_warn_once_and_reassign_at_most_once() {
    let Some(s) = setup(AssignmentStrategy::RoundRobin, &[5, 5]).await else {
        return;
    };
    s.reassign_on_breach().await;
    let now = Utc::now();
    let assigned = s.lead_at(now - Duration::minutes(10)).await;
    let first = assigned.assignee.clone().unwrap();
    assert!(assigned.first_contact_due.unwrap() < now);

    let (a, b) = (s.sweeper(), s.sweeper());
    let brand = s.brand().await;
    let (ra, rb) = tokio::join!(a.sweep_brand(&brand, now), b.sweep_brand(&brand, now));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra.warned + rb.warned, 1, "{ra:?} {rb:?}");
    assert!(ra.reassigned + rb.reassigned <= 1);

    let jobs = s.jobs().await;
    let warnings: Vec<&NotificationJob> = jobs
        .iter()
        .filter(|j| j.kind == NotificationKind::SlaWarning)
        .collect();
    assert_eq!(warnings.len(), 1, "{:?}", kinds(&jobs));
    assert!(
        warnings[0].recipients.is_empty(),
        "the notifier resolves the managers"
    );
    assert_eq!(
        warnings[0].job_id,
        format!(
            "{}#sla_warning#first_contact_overdue-{}",
            assigned.lead_id,
            assigned.first_contact_due.unwrap().timestamp()
        )
    );
    assert!(!warnings[0]
        .phone_masked
        .as_deref()
        .unwrap_or_default()
        .is_empty());
    let reassigned: Vec<&NotificationJob> = jobs
        .iter()
        .filter(|j| j.kind == NotificationKind::Reassigned)
        .collect();
    assert_eq!(reassigned.len(), 1);

    // With someone else free, the lead moved to them, with a fresh deadline.
    let after = s.get(&assigned.lead_id).await;
    let second = after.assignee.clone().unwrap();
    assert_ne!(second, first);
    assert_eq!(reassigned[0].recipients, vec![second.clone()]);
    assert_eq!(after.status, LeadStatus::Assigned);
    assert!(after.first_contact_due.unwrap() > now);
    assert_eq!(s.due(&after.lead_id).await, after.first_contact_due);
    let short = |id: &str| id.rsplit('-').next().unwrap().to_string();
    assert_eq!(s.open_leads(&short(&first)).await, 0);
    assert_eq!(s.open_leads(&short(&second)).await, 1);

    let actions = s.actions(&assigned.lead_id).await;
    assert_eq!(count(&actions, AuditAction::SlaBreached), 1, "{actions:?}");
    assert_eq!(count(&actions, AuditAction::Reassigned), 1, "{actions:?}");

    // The first consultant's late "contacted", read before the move, no longer applies.
    assert_eq!(
        s.w.leads
            .apply_status(&assigned, &contacted(), &s.brand().await, now,)
            .await
            .unwrap(),
        StatusResult::Conflict
    );

    // A third run at the same time finds nothing due.
    let third = s.sweep(now).await;
    assert_eq!((third.due, third.warned), (0, 0));
    assert!(s.jobs().await.is_empty());
}

#[tokio::test]
async fn without_reassignment_the_managers_are_warned_once_and_the_lead_stays() {
    let Some(s) = setup(AssignmentStrategy::RoundRobin, &[5, 5]).await else {
        return;
    };
    let now = Utc::now();
    let assigned = s.lead_at(now - Duration::minutes(6)).await;
    let report = s.sweep(now).await;
    assert_eq!((report.warned, report.reassigned), (1, 0), "{report:?}");
    assert_eq!(kinds(&s.jobs().await), [NotificationKind::SlaWarning]);
    let after = s.get(&assigned.lead_id).await;
    assert_eq!(after.assignee, assigned.assignee);
    // Next thing to watch: the exclusivity.
    assert_eq!(s.due(&after.lead_id).await, after.exclusive_until);

    for later in [1, 30, 60 * 24] {
        let again = s.sweep(now + Duration::minutes(later)).await;
        assert_eq!(again.warned, 0, "{again:?}");
    }
    assert!(s.jobs().await.is_empty());
}

#[tokio::test]
async fn a_lead_contacted_in_time_is_not_warned() {
    let Some(s) = setup(AssignmentStrategy::RoundRobin, &[5]).await else {
        return;
    };
    let now = Utc::now();
    let assigned = s.lead_at(now - Duration::minutes(10)).await;
    let contacted_at = now - Duration::minutes(8);
    assert_eq!(
        s.w.leads
            .apply_status(&assigned, &contacted(), &s.brand().await, contacted_at,)
            .await
            .unwrap(),
        StatusResult::Applied
    );
    let after = s.get(&assigned.lead_id).await;
    // Progress moved the index to the renewed exclusivity.
    assert_eq!(s.due(&after.lead_id).await, after.exclusive_until);
    assert_eq!(s.sweep(now).await, SweepReport::default());
    assert!(s.jobs().await.is_empty());

    // Closing the lead takes it out of the index.
    assert_eq!(
        s.w.leads
            .apply_status(
                &after,
                &leads_domain::status::Change {
                    next: LeadStatus::Lost,
                    valid: None,
                    reason: None,
                    progress: false,
                    closes: true,
                },
                &s.brand().await,
                now,
            )
            .await
            .unwrap(),
        StatusResult::Applied
    );
    assert_eq!(s.due(&after.lead_id).await, None);
}

#[tokio::test]
async fn an_unclaimed_offer_falls_back_to_round_robin() {
    let Some(s) = setup(AssignmentStrategy::Claim, &[5, 5]).await else {
        return;
    };
    let now = Utc::now();
    // The dealer's claim_fallback_minutes is 10.
    let offered = s.lead_at(now - Duration::minutes(11)).await;
    assert_eq!(offered.status, LeadStatus::Offered);
    let report = s.sweep(now).await;
    assert_eq!(report.assigned, 1, "{report:?}");
    let after = s.get(&offered.lead_id).await;
    assert_eq!(after.status, LeadStatus::Assigned);
    assert!(after.offered_to.is_empty());
    let to = after.assignee.clone().unwrap();
    let jobs = s.jobs().await;
    assert_eq!(kinds(&jobs), [NotificationKind::NewAssignment]);
    assert_eq!(jobs[0].recipients, vec![to.clone()]);
    assert!(s
        .w
        .audit
        .trail(&offered.lead_id)
        .await
        .unwrap()
        .iter()
        .any(|e| e.action == AuditAction::Assigned && e.detail.contains("ClaimFallback")));
    assert_eq!(s.open_leads(to.rsplit('-').next().unwrap()).await, 1);
    // A claim arriving now finds it taken (the API's assign needs no assignee).
    let staff = s
        .directory
        .staff_of(&format!("{}-jn", s.w.brand))
        .await
        .unwrap();
    let loads =
        s.w.leads
            .staff_loads(&format!("{}-jn", s.w.brand), &staff)
            .await
            .unwrap();
    let other = loads
        .iter()
        .find(|l| l.staff_id != to && l.staff_id.contains("-s"))
        .unwrap();
    assert_eq!(
        s.w.leads
            .assign(&offered, other, &s.brand().await, now)
            .await
            .unwrap(),
        leads_aws::store::AssignResult::AlreadyAssigned
    );
}

#[tokio::test]
async fn expired_exclusivity_goes_back_to_the_pool_and_to_someone_else() {
    let Some(s) = setup(AssignmentStrategy::RoundRobin, &[5, 5]).await else {
        return;
    };
    let now = Utc::now();
    let assigned = s.lead_at(now).await;
    let first = assigned.assignee.clone().unwrap();
    s.w.leads
        .apply_status(&assigned, &contacted(), &s.brand().await, now)
        .await
        .unwrap();
    // Nothing is due before the 15 days are up.
    assert_eq!(s.sweep(now + Duration::days(14)).await.due, 0);

    let later = now + Duration::days(16);
    let report = s.sweep(later).await;
    assert_eq!(report.reassigned, 1, "{report:?}");
    let after = s.get(&assigned.lead_id).await;
    let second = after.assignee.clone().unwrap();
    assert_ne!(second, first);
    assert_eq!(after.status, LeadStatus::Assigned);
    assert!(after.exclusive_until.unwrap() > later + Duration::days(14));
    let jobs = s.jobs().await;
    assert_eq!(kinds(&jobs), [NotificationKind::Reassigned]);
    assert_eq!(jobs[0].recipients, vec![second.clone()]);
    let actions = s.actions(&assigned.lead_id).await;
    assert_eq!(count(&actions, AuditAction::ReturnedToPool), 1);
    assert_eq!(count(&actions, AuditAction::Reassigned), 1);
    assert_eq!(s.open_leads(first.rsplit('-').next().unwrap()).await, 0);
    assert_eq!(s.open_leads(second.rsplit('-').next().unwrap()).await, 1);
}

#[tokio::test]
async fn with_nobody_else_the_lead_waits_in_the_pool_and_is_retried() {
    let Some(s) = setup(AssignmentStrategy::RoundRobin, &[5]).await else {
        return;
    };
    let now = Utc::now();
    let assigned = s.lead_at(now).await;
    let later = now + Duration::days(16);
    let report = s.sweep(later).await;
    assert_eq!(report.pooled, 1, "{report:?}");
    let pooled = s.get(&assigned.lead_id).await;
    assert_eq!(
        (pooled.status, pooled.assignee.as_deref()),
        (LeadStatus::New, None)
    );
    assert_eq!(s.open_leads("s0").await, 0);
    assert_eq!(kinds(&s.jobs().await), [NotificationKind::NoOneAvailable]);

    // Still nobody five minutes on: retried quietly.
    let retry = s.sweep(later + Duration::minutes(6)).await;
    assert_eq!(retry.rescheduled, 1, "{retry:?}");
    assert!(s.jobs().await.is_empty());

    // A new consultant joins: the next retry gives it to them, never back to
    // the one whose exclusivity lapsed (who could take it: on duty, below cap).
    let staff = |id: &str, on_duty: bool| -> Staff {
        serde_json::from_value(serde_json::json!({
            "staff_id": s.id(id), "dealer_id": format!("{}-jn", s.w.brand),
            "name": id, "role": "sales", "on_duty": on_duty, "cap": 5
        }))
        .unwrap()
    };
    s.save(vec![], vec![staff("s0", true), staff("s9", true)])
        .await;
    let assigned_again = s.sweep(later + Duration::minutes(12)).await;
    assert_eq!(assigned_again.assigned, 1, "{assigned_again:?}");
    let after = s.get(&assigned.lead_id).await;
    assert_eq!(after.assignee, Some(s.id("s9")));
    assert_eq!(kinds(&s.jobs().await), [NotificationKind::NewAssignment]);
}

#[tokio::test]
async fn one_sweep_fans_out_over_every_brand_given() {
    let (Some(a), Some(b)) = (
        setup(AssignmentStrategy::RoundRobin, &[5]).await,
        setup(AssignmentStrategy::RoundRobin, &[5]).await,
    ) else {
        return;
    };
    let now = Utc::now();
    a.lead_at(now - Duration::minutes(10)).await;
    b.lead_at(now - Duration::minutes(10)).await;
    b.lead_at(now - Duration::minutes(7)).await;
    let report = a
        .sweeper()
        .sweep_brands(&[a.brand().await, b.brand().await], now)
        .await;
    assert_eq!(
        (report.due, report.warned, report.failed),
        (3, 3, 0),
        "{report:?}"
    );
    assert_eq!(a.jobs().await.len(), 3, "this sweeper's queue");
}

#[tokio::test]
async fn a_follow_ups_next_call_reminds_its_assignee_once_and_a_newer_one_replaces_it() {
    use leads_domain::followup::{FollowUp, Intent};
    let Some(s) = setup(AssignmentStrategy::RoundRobin, &[5, 5]).await else {
        return;
    };
    let t = &s.w.stack.settings.tables;
    let leads =
        leads_aws::store::DynamoLeads::new(s.w.stack.clients.dynamodb.clone(), &t.leads, &t.stats)
            .with_audit(&t.audit);
    let brand = s.brand().await;
    let now = Utc::now();
    let follow = |record: LeadRecord, hours: i64, at: DateTime<Utc>| {
        let leads = &leads;
        let brand = brand.clone();
        async move {
            let f = FollowUp {
                note: "回访".into(),
                intent: Intent::A,
                next_at: Some(at + Duration::hours(hours)),
            };
            let event = leads_domain::audit::AuditEvent {
                lead_id: record.lead_id.clone(),
                action: AuditAction::FollowedUp,
                actor: leads_domain::audit::Actor::Staff(record.assignee.clone().unwrap()),
                at,
                detail: "回访".into(),
            };
            assert_eq!(
                leads
                    .record_follow_up(&record, &f, &event, &brand, at)
                    .await
                    .unwrap(),
                StatusResult::Applied
            );
        }
    };
    // Two contacted leads (no SLA due): A's next call in 1 h; B's in 1 h,
    // then moved to 3 h by a second follow-up.
    let mut ids = Vec::new();
    for _ in 0..2 {
        let assigned = s.lead_at(now).await;
        assert_eq!(
            s.w.leads
                .apply_status(&assigned, &contacted(), &brand, now,)
                .await
                .unwrap(),
            StatusResult::Applied
        );
        follow(s.get(&assigned.lead_id).await, 1, now).await;
        ids.push(assigned.lead_id);
    }
    follow(s.get(&ids[1]).await, 3, now).await;
    let reminders = |jobs: Vec<NotificationJob>| -> Vec<(String, Vec<String>)> {
        jobs.into_iter()
            .filter(|j| j.kind == NotificationKind::FollowUpDue)
            .map(|j| (j.lead_id, j.recipients))
            .collect()
    };

    let report = s.sweep(now + Duration::hours(2)).await;
    assert_eq!(report.follow_ups_reminded, 1, "{report:?}");
    let a = s.get(&ids[0]).await;
    assert_eq!(
        reminders(s.jobs().await),
        [(ids[0].clone(), vec![a.assignee.unwrap()])]
    );
    // Once: the reminder is done.
    assert_eq!(
        s.sweep(now + Duration::hours(2)).await.follow_ups_reminded,
        0
    );
    assert!(reminders(s.jobs().await).is_empty());
    // B's newer next call comes due later.
    assert_eq!(
        s.sweep(now + Duration::hours(4)).await.follow_ups_reminded,
        1
    );
    assert_eq!(reminders(s.jobs().await).len(), 1);
}

/// A consultant's first contact, as `status::change` makes it.
fn contacted() -> leads_domain::status::Change {
    leads_domain::status::Change {
        next: LeadStatus::Contacted,
        valid: None,
        reason: None,
        progress: true,
        closes: false,
    }
}
