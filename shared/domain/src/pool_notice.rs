//! The managers' "nobody can take leads" notice, aggregated. When no consultant
//! is on duty or all are at their cap (a live group-buy can bring hundreds of
//! leads in minutes), every lead used to be one `no_one_available` message to
//! each manager, far over WeCom's 30 messages per member per minute. Instead a
//! dealer's `no_one_available` jobs are folded per (dealer, window) and the
//! managers get one summary per window, naming how many leads are waiting.
//!
//! The window is fixed (default [`DEFAULT_WINDOW`], aligned to the epoch) and
//! chosen by the job's `created_at`, so every copy of a job folds into the same
//! window and the summary's job id is deterministic per (dealer, window): a
//! redelivered job or summary is never counted or delivered twice. The summary
//! is sent when its window has ended ([`flush_delay`]), so the first lead of a
//! window is reported at most one window (+ [`GRACE`]) late.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::notification::{NotificationJob, NotificationKind};

/// Five minutes: at most 12 summaries per manager per hour and dealer.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(300);
/// Waited after a window's end before its summary is read, so jobs created
/// just before the end have landed.
pub const GRACE: Duration = Duration::from_secs(10);
/// SQS's longest message delay.
pub const MAX_DELAY: Duration = Duration::from_secs(900);

/// `[start, end)`, `end - start` = the window length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// The window `at` falls in (windows aligned to the Unix epoch). `length`
/// is at least one second.
pub fn window_of(at: DateTime<Utc>, length: Duration) -> Window {
    let len = length.as_secs().max(1) as i64;
    let start = at.timestamp().div_euclid(len) * len;
    let start = Utc.timestamp_opt(start, 0).single().expect("in range");
    Window {
        start,
        end: start + chrono::Duration::seconds(len),
    }
}

/// Whether a job is folded into its dealer's summary rather than sent alone.
pub fn folds(job: &NotificationJob) -> bool {
    job.kind == NotificationKind::NoOneAvailable && job.dealer_id.is_some()
}

/// The summary's job id: the same for every job of the (dealer, window).
pub fn summary_job_id(dealer_id: &str, window: &Window) -> String {
    format!("POOL#{dealer_id}#{}", window.start.timestamp())
}

/// How long the summary waits on the queue: until the window's end + [`GRACE`],
/// never negative, at most [`MAX_DELAY`].
pub fn flush_delay(now: DateTime<Utc>, window: &Window) -> Duration {
    let due = window.end + chrono::Duration::from_std(GRACE).expect("small");
    (due - now).to_std().unwrap_or_default().min(MAX_DELAY)
}

/// The summaries a set of jobs makes: per (dealer, window), the distinct leads
/// (so a redelivered job counts once). Jobs that do not fold are left out.
pub fn summarise<'a>(
    jobs: impl IntoIterator<Item = &'a NotificationJob>,
    length: Duration,
) -> BTreeMap<(String, Window), BTreeSet<String>> {
    let mut out: BTreeMap<(String, Window), BTreeSet<String>> = BTreeMap::new();
    for job in jobs.into_iter().filter(|j| folds(j)) {
        let dealer = job.dealer_id.clone().expect("folds() checked it");
        out.entry((dealer, window_of(job.created_at, length)))
            .or_default()
            .insert(job.lead_id.clone());
    }
    out
}

/// The managers' summary for one dealer and window. `leads` is filled in by
/// the notifier when the window is closed (0 on the queue).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolSummary {
    pub job_id: String,
    /// Always `no_one_available`; `window_start` tells it from a lead's job.
    pub kind: NotificationKind,
    pub brand_id: String,
    pub dealer_id: String,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    #[serde(default)]
    pub leads: u32,
    pub created_at: DateTime<Utc>,
}

impl PoolSummary {
    pub fn for_window(
        brand_id: &str,
        dealer_id: &str,
        window: &Window,
        now: DateTime<Utc>,
    ) -> Self {
        PoolSummary {
            job_id: summary_job_id(dealer_id, window),
            kind: NotificationKind::NoOneAvailable,
            brand_id: brand_id.to_string(),
            dealer_id: dealer_id.to_string(),
            window_start: window.start,
            window_end: window.end,
            leads: 0,
            created_at: now,
        }
    }

    pub fn window(&self) -> Window {
        Window {
            start: self.window_start,
            end: self.window_end,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(s, 0).unwrap()
    }

    fn job(lead: &str, dealer: Option<&str>, kind: NotificationKind, s: i64) -> NotificationJob {
        NotificationJob {
            job_id: NotificationJob::job_id(lead, kind, 1),
            kind,
            lead_id: lead.into(),
            brand_id: "b".into(),
            dealer_id: dealer.map(str::to_string),
            recipients: vec![],
            phone_masked: None,
            customer_name: None,
            series_interest: vec![],
            created_at: at(s),
            wecom_transfer: None,
        }
    }

    #[test]
    fn windows_by_hand() {
        // 1_763_978_400 = 300 × 5_879_928: a 5-minute window starts there.
        let w = window_of(at(1_763_978_600), DEFAULT_WINDOW);
        assert_eq!(w.start, at(1_763_978_400));
        assert_eq!(w.end, at(1_763_978_700));
        assert_eq!(
            window_of(at(1_763_978_700), DEFAULT_WINDOW).start,
            at(1_763_978_700)
        );
        assert_eq!(summary_job_id("d1", &w), "POOL#d1#1763978400");
    }

    #[test]
    fn the_summary_waits_for_the_end_of_its_window() {
        let w = window_of(at(1_000_000_200), DEFAULT_WINDOW); // [..., 1_000_000_500)
        assert_eq!(w.end, at(1_000_000_500));
        assert_eq!(flush_delay(at(1_000_000_200), &w), Duration::from_secs(310));
        assert_eq!(flush_delay(at(1_000_000_600), &w), Duration::ZERO);
        let long = window_of(at(0), Duration::from_secs(3_600));
        assert_eq!(flush_delay(at(0), &long), MAX_DELAY);
    }

    #[test]
    fn fifty_leads_nobody_can_take_make_one_summary_naming_fifty() {
        let base = 1_763_978_400; // a window's start
        let mut jobs: Vec<NotificationJob> = (0..50)
            .map(|i| {
                job(
                    &format!("L{i}"),
                    Some("d1"),
                    NotificationKind::NoOneAvailable,
                    base + i * 5,
                )
            })
            .collect();
        // SQS delivers some twice.
        jobs.extend(jobs[..10].to_vec());
        // Not folded: another kind, a job without a dealer.
        jobs.push(job("S1", Some("d1"), NotificationKind::SlaWarning, base));
        jobs.push(job("N1", None, NotificationKind::NoOneAvailable, base));
        // The next window, and another dealer.
        jobs.push(job(
            "L50",
            Some("d1"),
            NotificationKind::NoOneAvailable,
            base + 300,
        ));
        jobs.push(job(
            "M1",
            Some("d2"),
            NotificationKind::NoOneAvailable,
            base,
        ));
        let s = summarise(&jobs, DEFAULT_WINDOW);
        let counts: Vec<(&str, i64, usize)> = s
            .iter()
            .map(|((d, w), leads)| (d.as_str(), w.start.timestamp(), leads.len()))
            .collect();
        assert_eq!(
            counts,
            [("d1", base, 50), ("d1", base + 300, 1), ("d2", base, 1)]
        );
    }

    proptest! {
        #[test]
        fn a_time_lies_in_its_window(t in -10_000_000_000i64..10_000_000_000, len in 1u64..86_400) {
            let w = window_of(at(t), Duration::from_secs(len));
            prop_assert!(w.start <= at(t) && at(t) < w.end);
            prop_assert_eq!((w.end - w.start).num_seconds(), len as i64);
            prop_assert_eq!(w.start.timestamp().rem_euclid(len as i64), 0);
        }

        #[test]
        fn times_share_a_summary_id_exactly_when_they_share_a_window(
            a in 0i64..2_000_000_000, b in 0i64..2_000_000_000, len in 1u64..3_600,
        ) {
            let len_d = Duration::from_secs(len);
            let (wa, wb) = (window_of(at(a), len_d), window_of(at(b), len_d));
            let same = a.div_euclid(len as i64) == b.div_euclid(len as i64);
            prop_assert_eq!(summary_job_id("d", &wa) == summary_job_id("d", &wb), same);
            prop_assert_ne!(summary_job_id("d", &wa), summary_job_id("e", &wa));
        }

        #[test]
        fn the_delay_ends_after_the_window_and_never_exceeds_sqs(
            t in 0i64..2_000_000_000, now_offset in -1_000i64..1_000, len in 1u64..600,
        ) {
            let w = window_of(at(t), Duration::from_secs(len));
            let now = at(t + now_offset);
            let d = flush_delay(now, &w);
            let due = w.end + chrono::Duration::from_std(GRACE).unwrap();
            prop_assert!(d <= MAX_DELAY);
            if due - now <= chrono::Duration::from_std(MAX_DELAY).unwrap() {
                prop_assert!(now + chrono::Duration::from_std(d).unwrap() >= due);
            } else {
                prop_assert_eq!(d, MAX_DELAY);
            }
        }
    }
}
