//! The local demo as a library: the deterministic dataset and directory
//! generators, the way it reaches the functions, the consultants' side and
//! the report. The `lead-demo` binary runs them in order; the tests reuse the
//! generators (the reliability replay) and read the report's summary.

pub mod dataset;
pub mod directory;
pub mod functions;
pub mod receiver;
pub mod report;
pub mod staff;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};

use dataset::{CustomerTruth, Expected};
use functions::Played;
use receiver::Delivery;
use staff::FollowUp;

/// What the replay saw when posting webhooks.
#[derive(Default, Debug)]
pub struct Sent {
    pub posted: usize,
    pub accepted: usize,
    pub redeliveries: usize,
    pub rejected: BTreeMap<u16, usize>,
    /// Answers that differ from what the generator expected.
    pub surprises: Vec<String>,
}

/// Everything one demo run did and saw, for the report.
#[derive(Debug)]
pub struct Run {
    pub started_at: DateTime<Utc>,
    pub expected: Expected,
    /// Per customer, what the rules must produce (the generator's record).
    pub customers: Vec<CustomerTruth>,
    pub sent: Sent,
    /// The leads as the router left them, before consultants and the sweep.
    pub routed: Vec<leads_domain::lead::LeadRecord>,
    pub router: Played,
    pub notifier: Played,
    /// Notification jobs handed to the notifier, by kind: distinct job ids (a
    /// duplicate delivery re-sends its lead's job with the same id, which the
    /// notifier delivers once).
    pub jobs_by_kind: BTreeMap<String, usize>,
    pub job_ids: std::collections::HashSet<String>,
    pub follow_up: FollowUp,
    /// `sla-sweeper`'s answer (its `SweepReport`).
    pub sweep: serde_json::Value,
    pub ranking_date: Option<NaiveDate>,
    pub ranking_jobs: usize,
    pub ranking_played: Played,
    /// Per brand name: the ranking API's answer for the top 10.
    pub top10: Vec<(String, serde_json::Value)>,
    /// Per brand name: today's service KPIs by dealer, as the brand's
    /// operations read them through the API.
    pub brand_view: Vec<(String, serde_json::Value)>,
    /// What the notifier sent to the local WeCom/SMS/CRM stand-in.
    pub deliveries: Vec<Delivery>,
    pub log_lines: usize,
    pub log_lines_with_phone: usize,
    pub replay_time: Duration,
    pub total_time: Duration,
}

impl Run {
    pub fn new(
        started_at: DateTime<Utc>,
        expected: Expected,
        customers: Vec<CustomerTruth>,
    ) -> Run {
        Run {
            started_at,
            expected,
            customers,
            sent: Sent::default(),
            routed: Vec::new(),
            router: Played::default(),
            notifier: Played::default(),
            jobs_by_kind: BTreeMap::new(),
            job_ids: Default::default(),
            follow_up: FollowUp::default(),
            sweep: serde_json::Value::Null,
            ranking_date: None,
            ranking_jobs: 0,
            ranking_played: Played::default(),
            top10: Vec::new(),
            brand_view: Vec::new(),
            deliveries: Vec::new(),
            log_lines: 0,
            log_lines_with_phone: 0,
            replay_time: Duration::ZERO,
            total_time: Duration::ZERO,
        }
    }
}
