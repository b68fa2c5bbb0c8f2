//! Nightly brand ranking (docs/ranking.md):
//! 经营效果分 (operating effect score) = 经营基础分 (base operating score)
//! + 自然线索分 (natural-lead score).
//!
//! Pure: the caller reads each dealer's daily stats items for the window and
//! the previous snapshot's ranks; this module turns them into a ranked,
//! tiered snapshot. Same inputs, same snapshot (integer ranking keys, fixed
//! summation order, no clock).
//!
//! Each metric maps to 0-100 piecewise-linearly through these anchor points
//! (capped at 100 above the last one):
//!
//! | metric | anchors (value -> points) |
//! |---|---|
//! | short videos per period (a week unless the brand says) | 0 -> 0, 3 (good) -> 70, 5 (excellent) -> 100 |
//! | effective live sessions per period | 0 -> 0, 5 (good) -> 70, 10 (excellent) -> 100 |
//! | live hours per live day | 0 -> 0, 4 (the ">4 h a day" level) -> 100 |
//! | like rate (likes / plays) | 0 -> 0, 1% (poor) -> 40, 2% (good) -> 70, 3% (excellent) -> 100 |
//! | comment rate (comments / plays) | 0 -> 0, 0.1% -> 40, 0.3% -> 70, 0.5% -> 100 |
//! | share rate (shares / plays) | 0 -> 0, 0.1% -> 40, 0.3% -> 70, 0.5% -> 100 |
//! | completion rate (completed plays / plays) | 0 -> 0, 10% -> 40, 20% -> 70, 30% -> 100 |
//! | live follow / comment / share rate (of live viewers) | 0 -> 0, industry average (1.68% / 4.5% / 0.25%) -> 70, twice it -> 100 |
//!
//! A live session is effective when it lasts at least the brand's minimum
//! (default 30 minutes). Live duration is per day the dealer went live,
//! because how often it goes live is already the sessions metric. The live
//! interaction rates weigh 0 unless a brand gives them weight.
//!
//! Base score = weighted mean of the ten (brand weights, [`ScoreWeights`]).
//! Natural-lead score = 100 · n / (n + k), n the dealer's natural leads in the
//! window and k the brand's median n (at least 1): strictly increasing in n,
//! below 100, and 50 points means "as many as the brand's typical dealer".
//! n counts Douyin natural traffic only ([`LeadCounter`]), each customer
//! once, merged touches included, leads marked invalid subtracted; WeCom
//! and vertical-media leads only where the brand opts in.
//! Effect score = base + natural, 0-200. Scores are rounded to hundredths
//! before ranking, so what a dealer sees is what was compared.

use std::collections::{HashMap, HashSet};

use chrono::{Days, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::directory::Platform;
use crate::lead::Traffic;
use crate::routing::Tier;

/// Days the nightly ranking looks back (the ranked date included).
pub const WINDOW_DAYS: u32 = 30;

/// Reference levels (000 p.33) and the points each anchor gives.
pub mod levels {
    /// Points at the poor, good and excellent levels.
    pub const POOR_POINTS: f64 = 40.0;
    pub const GOOD_POINTS: f64 = 70.0;
    pub const EXCELLENT_POINTS: f64 = 100.0;

    pub const VIDEOS_PER_WEEK_GOOD: f64 = 3.0;
    pub const VIDEOS_PER_WEEK_EXCELLENT: f64 = 5.0;
    pub const LIVE_SESSIONS_PER_WEEK_GOOD: f64 = 5.0;
    pub const LIVE_SESSIONS_PER_WEEK_EXCELLENT: f64 = 10.0;
    pub const LIVE_HOURS_PER_DAY_EXCELLENT: f64 = 4.0;
    /// Rates are fractions of plays (0.01 = 1%).
    pub const LIKE_RATE: [f64; 3] = [0.01, 0.02, 0.03];
    pub const COMMENT_RATE: [f64; 3] = [0.001, 0.003, 0.005];
    pub const SHARE_RATE: [f64; 3] = [0.001, 0.003, 0.005];
    pub const COMPLETION_RATE: [f64; 3] = [0.10, 0.20, 0.30];
    /// Live interaction, fractions of live viewers: the industry averages
    /// (scored 70, "good"; twice the average 100).
    pub const LIVE_FOLLOW_RATE_AVERAGE: f64 = 0.0168;
    pub const LIVE_COMMENT_RATE_AVERAGE: f64 = 0.045;
    pub const LIVE_SHARE_RATE_AVERAGE: f64 = 0.0025;
}

/// A piecewise-linear map from a metric to points through `(value, points)`
/// anchors with increasing values; below the first anchor is its points,
/// above the last is the last's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale<const N: usize> {
    pub anchors: [(f64, f64); N],
}

impl<const N: usize> Scale<N> {
    pub fn points(&self, value: f64) -> f64 {
        let value = if value.is_finite() { value } else { 0.0 };
        let (first_x, first_y) = self.anchors[0];
        if value <= first_x {
            return first_y;
        }
        for pair in self.anchors.windows(2) {
            let ((x0, y0), (x1, y1)) = (pair[0], pair[1]);
            if value <= x1 {
                return y0 + (y1 - y0) * (value - x0) / (x1 - x0);
            }
        }
        self.anchors[N - 1].1
    }
}

/// Poor / good / excellent levels: 0 -> 0, poor -> 40, good -> 70, excellent -> 100.
pub fn three_level(poor_good_excellent: [f64; 3]) -> Scale<4> {
    use levels::*;
    let [poor, good, excellent] = poor_good_excellent;
    Scale {
        anchors: [
            (0.0, 0.0),
            (poor, POOR_POINTS),
            (good, GOOD_POINTS),
            (excellent, EXCELLENT_POINTS),
        ],
    }
}

/// Good / excellent levels only: 0 -> 0, good -> 70, excellent -> 100.
pub fn two_level(good: f64, excellent: f64) -> Scale<3> {
    use levels::*;
    Scale {
        anchors: [
            (0.0, 0.0),
            (good, GOOD_POINTS),
            (excellent, EXCELLENT_POINTS),
        ],
    }
}

/// Which counter a created lead goes on. Only Douyin's own natural traffic
/// (a Douyin lead without `ad_info`, an Ocean Engine lead with `flow_type` 1)
/// is a natural lead of the ranking (000's 自然线索); WeCom contacts and
/// vertical-media leads have their own counters, scored only where the
/// brand opts in ([`RankingSettings`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeadCounter {
    /// Counted once per customer per dealer per window (a marker item per
    /// customer, not a counter), merged touches included.
    DouyinNatural,
    Paid,
    Wecom,
    Vertical,
    /// The brand CRM's natural dispatches: counted, never scored.
    Other,
}

impl LeadCounter {
    pub fn of(platform: Platform, traffic: Traffic) -> LeadCounter {
        match (platform, traffic) {
            (_, Traffic::Paid) => LeadCounter::Paid,
            (Platform::Douyin | Platform::Feiyu, Traffic::Natural) => LeadCounter::DouyinNatural,
            (Platform::Wecom, Traffic::Natural) => LeadCounter::Wecom,
            (Platform::Dongchedi | Platform::Autohome | Platform::Yiche, Traffic::Natural) => {
                LeadCounter::Vertical
            }
            (Platform::OemCrm, Traffic::Natural) => LeadCounter::Other,
        }
    }

    /// The attribute of the dealer-day's counter shards that counts it
    /// (`None`: Douyin natural leads are counted by customer markers).
    pub fn field(self) -> Option<&'static str> {
        match self {
            LeadCounter::DouyinNatural => None,
            LeadCounter::Paid => Some("paid_leads"),
            LeadCounter::Wecom => Some("wecom_leads"),
            LeadCounter::Vertical => Some("vertical_leads"),
            LeadCounter::Other => Some("other_leads"),
        }
    }
}

/// One Douyin account's content stats for one day, as the platform reports
/// them (day totals: a redelivery replaces, it never adds). The live fields
/// are optional in the report (0 / empty when missing).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AccountDay {
    pub videos: u64,
    pub live_sessions: u64,
    pub live_minutes: u64,
    /// Each live session's length in minutes, when the report gives them.
    pub live_session_minutes: Vec<u32>,
    pub live_viewers: u64,
    pub live_follows: u64,
    pub live_comments: u64,
    pub live_shares: u64,
    pub plays: u64,
    pub likes: u64,
    pub comments: u64,
    pub shares: u64,
    pub completed_plays: u64,
}

impl AccountDay {
    /// Sessions of at least `min_minutes`. With each session's length known
    /// they are counted; with only the day's totals, every session counts
    /// when the mean length reaches the minimum, none otherwise.
    pub fn effective_live_sessions(&self, min_minutes: u32) -> u64 {
        if !self.live_session_minutes.is_empty() {
            return self
                .live_session_minutes
                .iter()
                .filter(|m| **m >= min_minutes)
                .count() as u64;
        }
        if self.live_sessions > 0
            && self.live_minutes >= self.live_sessions * u64::from(min_minutes)
        {
            self.live_sessions
        } else {
            0
        }
    }
}

/// A dealer-day's lead counters (the sum of its shards).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LeadCounts {
    pub paid_leads: u64,
    pub wecom_leads: u64,
    pub vertical_leads: u64,
    pub other_leads: u64,
}

/// One item of a dealer's stats partition, as the ranking reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum StatsItem {
    /// `DAY#<day>#A#<account>`: one account's content stats.
    Account {
        day: NaiveDate,
        account: String,
        stats: AccountDay,
    },
    /// `DAY#<day>#L<n>`: one lead-counter shard.
    Counter { day: NaiveDate, counts: LeadCounts },
    /// `DAY#<day>#N#<lead>`: a Douyin natural lead or merged touch of the
    /// customer whose lead is `lead_id`, on this dealer's account.
    Natural { day: NaiveDate, lead_id: String },
}

/// The brand's ranking settings (directory, `ranking` on the brand). Missing
/// fields take the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RankingSettings {
    /// The period of the frequency levels (3 / 5 videos, 5 / 10 effective
    /// live sessions): 7 = per week.
    pub period_days: u32,
    /// A live session shorter than this is not effective (not counted in
    /// the live frequency).
    pub min_live_session_minutes: u32,
    /// Whether WeCom contacts count as natural leads in the score.
    pub count_wecom_leads: bool,
    /// Whether vertical-media (Dongchedi, Autohome, Yiche) natural leads count.
    pub count_vertical_leads: bool,
}

/// Default [`RankingSettings::min_live_session_minutes`].
pub const DEFAULT_MIN_LIVE_SESSION_MINUTES: u32 = 30;

impl Default for RankingSettings {
    fn default() -> Self {
        RankingSettings {
            period_days: 7,
            min_live_session_minutes: DEFAULT_MIN_LIVE_SESSION_MINUTES,
            count_wecom_leads: false,
            count_vertical_leads: false,
        }
    }
}

impl RankingSettings {
    /// Settings usable as given; a zero period falls back to a week.
    pub fn sanitised(mut self) -> Self {
        if self.period_days == 0 {
            self.period_days = 7;
        }
        self
    }
}

/// A dealer's sums over the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WindowTotals {
    pub videos: u64,
    pub live_sessions: u64,
    /// Sessions reaching the brand's minimum length.
    pub effective_live_sessions: u64,
    pub live_minutes: u64,
    /// Days with any live minutes (on any of the dealer's accounts).
    pub live_days: u64,
    pub live_viewers: u64,
    pub live_follows: u64,
    pub live_comments: u64,
    pub live_shares: u64,
    pub plays: u64,
    pub likes: u64,
    pub comments: u64,
    pub shares: u64,
    pub completed_plays: u64,
    /// Douyin natural leads: distinct customers (lead ids) with a natural
    /// lead or merged natural touch on the dealer's accounts, minus those
    /// marked invalid.
    pub natural_leads: u64,
    /// Customers subtracted from `natural_leads` because marked invalid.
    pub invalid_natural_leads: u64,
    pub paid_leads: u64,
    pub wecom_leads: u64,
    pub vertical_leads: u64,
    pub other_leads: u64,
    /// Accounts that reported content stats in the window.
    pub accounts: u64,
}

impl WindowTotals {
    /// A dealer's window from its stats items: each account's day as last
    /// reported, summed per day then over the window; each customer once;
    /// `invalid` holds lead ids marked invalid.
    pub fn of_items<'a>(
        items: impl IntoIterator<Item = &'a StatsItem>,
        invalid: &HashSet<String>,
        settings: &RankingSettings,
    ) -> Self {
        let mut t = WindowTotals::default();
        let mut live_days = HashSet::new();
        let mut customers = HashSet::new();
        let mut accounts = HashSet::new();
        for item in items {
            match item {
                StatsItem::Account {
                    day,
                    account,
                    stats: a,
                } => {
                    accounts.insert(account.as_str());
                    t.videos += a.videos;
                    t.live_sessions += a.live_sessions;
                    t.effective_live_sessions +=
                        a.effective_live_sessions(settings.min_live_session_minutes);
                    t.live_minutes += a.live_minutes;
                    if a.live_minutes > 0 {
                        live_days.insert(*day);
                    }
                    t.live_viewers += a.live_viewers;
                    t.live_follows += a.live_follows;
                    t.live_comments += a.live_comments;
                    t.live_shares += a.live_shares;
                    t.plays += a.plays;
                    t.likes += a.likes;
                    t.comments += a.comments;
                    t.shares += a.shares;
                    t.completed_plays += a.completed_plays;
                }
                StatsItem::Counter { counts, .. } => {
                    t.paid_leads += counts.paid_leads;
                    t.wecom_leads += counts.wecom_leads;
                    t.vertical_leads += counts.vertical_leads;
                    t.other_leads += counts.other_leads;
                }
                StatsItem::Natural { lead_id, .. } => {
                    customers.insert(lead_id.as_str());
                }
            }
        }
        t.live_days = live_days.len() as u64;
        t.accounts = accounts.len() as u64;
        let counted = customers.len() as u64;
        t.invalid_natural_leads = customers.iter().filter(|c| invalid.contains(**c)).count() as u64;
        t.natural_leads = counted - t.invalid_natural_leads;
        t
    }

    /// The natural leads the score counts: Douyin's, plus WeCom and
    /// vertical-media leads where the brand opts in.
    pub fn scored_natural_leads(&self, settings: &RankingSettings) -> u64 {
        self.natural_leads
            + if settings.count_wecom_leads {
                self.wecom_leads
            } else {
                0
            }
            + if settings.count_vertical_leads {
                self.vertical_leads
            } else {
                0
            }
    }
}

/// The ten base-score metrics. Content rates are fractions of plays, live
/// rates fractions of live viewers (0 without any). Frequencies are per the
/// brand's period (a week by default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Metrics {
    pub videos_per_period: f64,
    pub live_sessions_per_period: f64,
    pub live_hours_per_live_day: f64,
    pub like_rate: f64,
    pub comment_rate: f64,
    pub share_rate: f64,
    pub completion_rate: f64,
    pub live_follow_rate: f64,
    pub live_comment_rate: f64,
    pub live_share_rate: f64,
}

/// The metrics in a fixed order, by name (the stored and displayed names).
pub const METRIC_NAMES: [&str; 10] = [
    "videos",
    "live_sessions",
    "live_hours",
    "like_rate",
    "comment_rate",
    "share_rate",
    "completion_rate",
    "live_follow_rate",
    "live_comment_rate",
    "live_share_rate",
];

/// The scale of each metric, in [`METRIC_NAMES`] order.
fn scales() -> [Scale<4>; 10] {
    use levels::*;
    let two = |good: f64, excellent: f64| Scale {
        anchors: [
            (0.0, 0.0),
            (good, GOOD_POINTS),
            (excellent, EXCELLENT_POINTS),
            (excellent, EXCELLENT_POINTS),
        ],
    };
    let average = |avg: f64| two(avg, 2.0 * avg);
    [
        two(VIDEOS_PER_WEEK_GOOD, VIDEOS_PER_WEEK_EXCELLENT),
        two(
            LIVE_SESSIONS_PER_WEEK_GOOD,
            LIVE_SESSIONS_PER_WEEK_EXCELLENT,
        ),
        Scale {
            anchors: [
                (0.0, 0.0),
                (LIVE_HOURS_PER_DAY_EXCELLENT, EXCELLENT_POINTS),
                (LIVE_HOURS_PER_DAY_EXCELLENT, EXCELLENT_POINTS),
                (LIVE_HOURS_PER_DAY_EXCELLENT, EXCELLENT_POINTS),
            ],
        },
        three_level(LIKE_RATE),
        three_level(COMMENT_RATE),
        three_level(SHARE_RATE),
        three_level(COMPLETION_RATE),
        average(LIVE_FOLLOW_RATE_AVERAGE),
        average(LIVE_COMMENT_RATE_AVERAGE),
        average(LIVE_SHARE_RATE_AVERAGE),
    ]
}

impl Metrics {
    pub fn of(t: &WindowTotals, window_days: u32, settings: &RankingSettings) -> Self {
        let periods = f64::from(window_days.max(1)) / f64::from(settings.period_days.max(1));
        let ratio = |x: u64, of: u64| if of == 0 { 0.0 } else { x as f64 / of as f64 };
        Metrics {
            videos_per_period: t.videos as f64 / periods,
            live_sessions_per_period: t.effective_live_sessions as f64 / periods,
            live_hours_per_live_day: ratio(t.live_minutes, t.live_days) / 60.0,
            like_rate: ratio(t.likes, t.plays),
            comment_rate: ratio(t.comments, t.plays),
            share_rate: ratio(t.shares, t.plays),
            completion_rate: ratio(t.completed_plays, t.plays),
            live_follow_rate: ratio(t.live_follows, t.live_viewers),
            live_comment_rate: ratio(t.live_comments, t.live_viewers),
            live_share_rate: ratio(t.live_shares, t.live_viewers),
        }
    }

    fn all(&self) -> [f64; 10] {
        [
            self.videos_per_period,
            self.live_sessions_per_period,
            self.live_hours_per_live_day,
            self.like_rate,
            self.comment_rate,
            self.share_rate,
            self.completion_rate,
            self.live_follow_rate,
            self.live_comment_rate,
            self.live_share_rate,
        ]
    }

    /// Each metric on its 0-100 scale.
    pub fn points(&self) -> Components {
        let scales = scales();
        let p: Vec<f64> = self
            .all()
            .iter()
            .zip(scales)
            .map(|(v, s)| s.points(*v))
            .collect();
        Components {
            videos: p[0],
            live_sessions: p[1],
            live_hours: p[2],
            like_rate: p[3],
            comment_rate: p[4],
            share_rate: p[5],
            completion_rate: p[6],
            live_follow_rate: p[7],
            live_comment_rate: p[8],
            live_share_rate: p[9],
        }
    }

    /// Rounded for storage and display (rates to 0.01 percentage point).
    fn rounded(&self) -> Metrics {
        let r = |x: f64, scale: f64| (x * scale).round() / scale;
        Metrics {
            videos_per_period: r(self.videos_per_period, 100.0),
            live_sessions_per_period: r(self.live_sessions_per_period, 100.0),
            live_hours_per_live_day: r(self.live_hours_per_live_day, 100.0),
            like_rate: r(self.like_rate, 10_000.0),
            comment_rate: r(self.comment_rate, 10_000.0),
            share_rate: r(self.share_rate, 10_000.0),
            completion_rate: r(self.completion_rate, 10_000.0),
            live_follow_rate: r(self.live_follow_rate, 10_000.0),
            live_comment_rate: r(self.live_comment_rate, 10_000.0),
            live_share_rate: r(self.live_share_rate, 10_000.0),
        }
    }
}

/// Points (0-100) per metric.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Components {
    pub videos: f64,
    pub live_sessions: f64,
    pub live_hours: f64,
    pub like_rate: f64,
    pub comment_rate: f64,
    pub share_rate: f64,
    pub completion_rate: f64,
    pub live_follow_rate: f64,
    pub live_comment_rate: f64,
    pub live_share_rate: f64,
}

impl Components {
    fn all(&self) -> [f64; 10] {
        [
            self.videos,
            self.live_sessions,
            self.live_hours,
            self.like_rate,
            self.comment_rate,
            self.share_rate,
            self.completion_rate,
            self.live_follow_rate,
            self.live_comment_rate,
            self.live_share_rate,
        ]
    }

    fn rounded(&self) -> Components {
        let r = |x: f64| centi(x) as f64 / 100.0;
        Components {
            videos: r(self.videos),
            live_sessions: r(self.live_sessions),
            live_hours: r(self.live_hours),
            like_rate: r(self.like_rate),
            comment_rate: r(self.comment_rate),
            share_rate: r(self.share_rate),
            completion_rate: r(self.completion_rate),
            live_follow_rate: r(self.live_follow_rate),
            live_comment_rate: r(self.live_comment_rate),
            live_share_rate: r(self.live_share_rate),
        }
    }
}

/// How much each metric counts in the base score (brand config; relative
/// weights, normalised by their sum). Missing fields take the defaults:
/// posting 20, live sessions 20, live hours 10, likes 20, comments 7.5,
/// shares 7.5, completion 15, the three live interaction rates 0.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScoreWeights {
    pub videos: f64,
    pub live_sessions: f64,
    pub live_hours: f64,
    pub like_rate: f64,
    pub comment_rate: f64,
    pub share_rate: f64,
    pub completion_rate: f64,
    pub live_follow_rate: f64,
    pub live_comment_rate: f64,
    pub live_share_rate: f64,
}

impl Default for ScoreWeights {
    fn default() -> Self {
        ScoreWeights {
            videos: 20.0,
            live_sessions: 20.0,
            live_hours: 10.0,
            like_rate: 20.0,
            comment_rate: 7.5,
            share_rate: 7.5,
            completion_rate: 15.0,
            live_follow_rate: 0.0,
            live_comment_rate: 0.0,
            live_share_rate: 0.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WeightsError {
    #[error("score weights must be finite and not negative")]
    Negative,
    #[error("score weights must not all be zero")]
    AllZero,
}

/// The metric whose next level would add the most to a dealer's base score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BestGain {
    /// One of [`METRIC_NAMES`].
    pub metric: String,
    /// Base-score points gained by reaching the metric's next level.
    pub points: f64,
}

impl ScoreWeights {
    fn all(&self) -> [f64; 10] {
        [
            self.videos,
            self.live_sessions,
            self.live_hours,
            self.like_rate,
            self.comment_rate,
            self.share_rate,
            self.completion_rate,
            self.live_follow_rate,
            self.live_comment_rate,
            self.live_share_rate,
        ]
    }

    pub fn validate(&self) -> Result<(), WeightsError> {
        let all = self.all();
        if all.iter().any(|w| !w.is_finite() || *w < 0.0) {
            return Err(WeightsError::Negative);
        }
        if all.iter().sum::<f64>() <= 0.0 {
            return Err(WeightsError::AllZero);
        }
        Ok(())
    }

    /// The weighted mean of the components (weights assumed valid).
    pub fn base_score(&self, c: &Components) -> f64 {
        let weights = self.all();
        let total: f64 = weights.iter().sum();
        weights.iter().zip(c.all()).map(|(w, p)| w * p).sum::<f64>() / total
    }

    /// The weighted metric whose next level (the next anchor of its scale
    /// above its points now) adds the most base-score points; ties go to the
    /// earlier metric in [`METRIC_NAMES`]. `None` when every weighted metric
    /// is at 100.
    pub fn best_gain(&self, c: &Components) -> Option<BestGain> {
        let weights = self.all();
        let total: f64 = weights.iter().sum();
        let mut best: Option<(usize, f64)> = None;
        for (i, (scale, points)) in scales().iter().zip(c.all()).enumerate() {
            if weights[i] <= 0.0 {
                continue;
            }
            let Some(next) = scale
                .anchors
                .iter()
                .map(|(_, p)| *p)
                .find(|p| *p > points + 1e-9)
            else {
                continue;
            };
            let gain = weights[i] * (next - points) / total;
            if best.is_none_or(|(_, g)| gain > g + 1e-9) {
                best = Some((i, gain));
            }
        }
        best.map(|(i, gain)| BestGain {
            metric: METRIC_NAMES[i].to_string(),
            points: centi(gain) as f64 / 100.0,
        })
    }
}

/// Natural-lead points: 100 · n / (n + k), k > 0. Strictly increasing in n,
/// from 0 (no leads) towards 100.
pub fn natural_lead_points(natural_leads: u64, k: f64) -> f64 {
    let n = natural_leads as f64;
    100.0 * n / (n + k)
}

/// k for a brand: the median of its dealers' natural leads, at least 1 (so a
/// brand where most dealers have none still scores its few leads).
pub fn natural_lead_scale(natural_leads: &[u64]) -> f64 {
    if natural_leads.is_empty() {
        return 1.0;
    }
    let mut sorted = natural_leads.to_vec();
    sorted.sort_unstable();
    let mid = sorted.len() / 2;
    let median = if sorted.len() % 2 == 1 {
        sorted[mid] as f64
    } else {
        (sorted[mid - 1] as f64 + sorted[mid] as f64) / 2.0
    };
    median.max(1.0)
}

/// Tier cut-offs as percentages of the brand's ranked dealers, best first:
/// the top `s` % are S, the next `a` % A, the next `b` % B, the rest C.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierCutoffs {
    pub s: u32,
    pub a: u32,
    pub b: u32,
}

impl Default for TierCutoffs {
    fn default() -> Self {
        TierCutoffs {
            s: 10,
            a: 20,
            b: 40,
        }
    }
}

impl TierCutoffs {
    /// From "S,A,B" percentages, e.g. "10,20,40"; they may not exceed 100 together.
    pub fn parse(text: &str) -> Result<Self, String> {
        let parts: Vec<u32> = text
            .split(',')
            .map(|p| p.trim().parse::<u32>())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("tier cut-offs {text:?}: {e}"))?;
        let [s, a, b] = parts[..] else {
            return Err(format!(
                "tier cut-offs {text:?}: expected three percentages S,A,B"
            ));
        };
        // Summed wide: "4294967295,1,0" must be refused, not overflow.
        if u64::from(s) + u64::from(a) + u64::from(b) > 100 {
            return Err(format!("tier cut-offs {text:?} add up to more than 100%"));
        }
        Ok(TierCutoffs { s, a, b })
    }

    /// The tier of the dealer at 1-based `rank` among `ranked`. Each band's
    /// upper bound rounds up, so a small brand still has an S dealer.
    pub fn tier(&self, rank: u32, ranked: u32) -> Tier {
        let bound = |percent: u32| (u64::from(ranked) * u64::from(percent)).div_ceil(100);
        let rank = u64::from(rank);
        if rank <= bound(self.s) {
            Tier::S
        } else if rank <= bound(self.s + self.a) {
            Tier::A
        } else if rank <= bound(self.s + self.a + self.b) {
            Tier::B
        } else {
            Tier::C
        }
    }
}

/// The first and last day of the window ending on `date` (both included).
pub fn window(date: NaiveDate, days: u32) -> (NaiveDate, NaiveDate) {
    let back = u64::from(days.max(1) - 1);
    (date - Days::new(back), date)
}

/// A dealer to rank: who, and its window totals.
#[derive(Debug, Clone, PartialEq)]
pub struct DealerInput {
    pub dealer_id: String,
    pub name: String,
    pub totals: WindowTotals,
}

/// Scores in points, rounded to hundredths; `total = base + natural`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Score {
    pub total: f64,
    pub base: f64,
    pub natural: f64,
}

/// One dealer's place in its brand's snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankedDealer {
    pub dealer_id: String,
    pub name: String,
    /// 1 is best.
    pub rank: u32,
    pub tier: Tier,
    pub score: Score,
    pub components: Components,
    pub metrics: Metrics,
    /// The natural leads scored (Douyin's, plus the brand's opt-ins).
    pub natural_leads: u64,
    pub paid_leads: u64,
    /// The window's sums the metrics came from (with the score's basis,
    /// enough to re-derive the score).
    #[serde(default)]
    pub totals: WindowTotals,
    /// The metric whose next level would gain the most points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_gain: Option<BestGain>,
    /// Rank in the previous snapshot, if the dealer was in it.
    pub previous_rank: Option<u32>,
    /// previous rank − rank: positive = moved up.
    pub rank_change: Option<i64>,
}

/// What the brand's ranking used, kept with the snapshot so a dealer's score
/// can be re-derived.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankingBasis {
    pub window_days: u32,
    pub weights: ScoreWeights,
    pub cutoffs: TierCutoffs,
    /// k of the natural-lead score.
    pub natural_lead_k: f64,
    /// The brand's period, live minimum and natural-lead opt-ins.
    #[serde(default)]
    pub settings: RankingSettings,
}

/// Hundredths of a point, the unit compared when ranking.
fn centi(points: f64) -> u32 {
    // Points are within 0..=200; `as` saturates on anything odd.
    (points * 100.0).round() as u32
}

/// Ranks a brand's dealers. Order: effect score desc, then natural leads
/// desc, then dealer id asc, so equal inputs always give the same order.
/// `previous` maps dealer id -> rank in the previous snapshot.
pub fn rank_brand(
    dealers: &[DealerInput],
    basis: &RankingBasis,
    previous: &HashMap<String, u32>,
) -> Vec<RankedDealer> {
    struct Scored<'a> {
        input: &'a DealerInput,
        metrics: Metrics,
        components: Components,
        base: u32,
        natural: u32,
        natural_leads: u64,
    }
    let mut scored: Vec<Scored> = dealers
        .iter()
        .map(|input| {
            let metrics = Metrics::of(&input.totals, basis.window_days, &basis.settings);
            let components = metrics.points();
            let natural_leads = input.totals.scored_natural_leads(&basis.settings);
            Scored {
                input,
                metrics,
                components,
                base: centi(basis.weights.base_score(&components)),
                natural: centi(natural_lead_points(natural_leads, basis.natural_lead_k)),
                natural_leads,
                // Rounding each part before adding keeps total = base + natural
                // exactly as displayed.
            }
        })
        .collect();
    scored.sort_by(|a, b| {
        (b.base + b.natural)
            .cmp(&(a.base + a.natural))
            .then(b.natural_leads.cmp(&a.natural_leads))
            .then_with(|| a.input.dealer_id.cmp(&b.input.dealer_id))
    });
    let ranked = u32::try_from(scored.len()).unwrap_or(u32::MAX);
    scored
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let rank = u32::try_from(i + 1).unwrap_or(u32::MAX);
            let previous_rank = previous.get(&s.input.dealer_id).copied();
            RankedDealer {
                dealer_id: s.input.dealer_id.clone(),
                name: s.input.name.clone(),
                rank,
                tier: basis.cutoffs.tier(rank, ranked),
                score: Score {
                    total: f64::from(s.base + s.natural) / 100.0,
                    base: f64::from(s.base) / 100.0,
                    natural: f64::from(s.natural) / 100.0,
                },
                best_gain: basis.weights.best_gain(&s.components),
                components: s.components.rounded(),
                metrics: s.metrics.rounded(),
                natural_leads: s.natural_leads,
                paid_leads: s.input.totals.paid_leads,
                totals: s.input.totals,
                previous_rank,
                rank_change: previous_rank.map(|p| i64::from(p) - i64::from(rank)),
            }
        })
        .collect()
}

/// The basis for a brand's dealers: its weights (defaults if unset or
/// invalid), its settings (defaults if unset) and k from their scored
/// natural leads.
pub fn basis_for(
    dealers: &[DealerInput],
    weights: Option<&ScoreWeights>,
    settings: Option<&RankingSettings>,
    cutoffs: TierCutoffs,
    window_days: u32,
) -> RankingBasis {
    let weights = weights
        .filter(|w| w.validate().is_ok())
        .copied()
        .unwrap_or_default();
    let settings = settings.copied().unwrap_or_default().sanitised();
    let leads: Vec<u64> = dealers
        .iter()
        .map(|d| d.totals.scored_natural_leads(&settings))
        .collect();
    RankingBasis {
        window_days,
        weights,
        cutoffs,
        natural_lead_k: natural_lead_scale(&leads),
        settings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    /// Window totals that give exactly `per_week` of a weekly count over 28 days.
    fn per_week(count_per_week: u64) -> u64 {
        count_per_week * 4
    }

    #[test]
    fn videos_per_week_at_each_level() {
        let s = two_level(3.0, 5.0);
        for (value, points) in [
            (0.0, 0.0),
            (1.5, 35.0),
            (3.0, 70.0),
            (4.0, 85.0),
            (5.0, 100.0),
            (9.0, 100.0),
        ] {
            assert!(
                close(s.points(value), points),
                "{value} -> {}",
                s.points(value)
            );
        }
    }

    #[test]
    fn every_reference_level_gives_its_anchor_points() {
        use levels::*;
        let cases: [(&str, [f64; 3]); 4] = [
            ("like", LIKE_RATE),
            ("comment", COMMENT_RATE),
            ("share", SHARE_RATE),
            ("completion", COMPLETION_RATE),
        ];
        for (name, lv) in cases {
            let s = three_level(lv);
            assert!(close(s.points(0.0), 0.0), "{name} zero");
            assert!(close(s.points(lv[0]), 40.0), "{name} poor");
            assert!(close(s.points(lv[1]), 70.0), "{name} good");
            assert!(close(s.points(lv[2]), 100.0), "{name} excellent");
            assert!(close(s.points(lv[2] * 3.0), 100.0), "{name} capped");
            assert!(close(s.points(lv[0] / 2.0), 20.0), "{name} half of poor");
            let mid = (lv[1] + lv[2]) / 2.0;
            assert!(
                close(s.points(mid), 85.0),
                "{name} between good and excellent"
            );
        }
        let live = two_level(
            LIVE_SESSIONS_PER_WEEK_GOOD,
            LIVE_SESSIONS_PER_WEEK_EXCELLENT,
        );
        assert!(close(live.points(5.0), 70.0));
        assert!(close(live.points(10.0), 100.0));
        assert!(close(live.points(7.5), 85.0));
    }

    #[test]
    fn scale_treats_negative_and_nan_as_nothing() {
        let s = three_level(levels::LIKE_RATE);
        assert_eq!(s.points(-1.0), 0.0);
        assert_eq!(s.points(f64::NAN), 0.0);
        assert_eq!(s.points(f64::INFINITY), 0.0);
    }

    #[test]
    fn metrics_from_window_totals_at_the_reference_levels() {
        // 28 days = 4 weeks: 3 videos and 5 effective live sessions a week,
        // 4 h on each live day, like 2%, comments 0.3%, shares 0.3%,
        // completion 20%.
        let totals = WindowTotals {
            videos: per_week(3),
            live_sessions: per_week(6),
            effective_live_sessions: per_week(5),
            live_minutes: 20 * 240,
            live_days: 20,
            plays: 100_000,
            likes: 2_000,
            comments: 300,
            shares: 300,
            completed_plays: 20_000,
            natural_leads: 7,
            paid_leads: 3,
            ..WindowTotals::default()
        };
        let m = Metrics::of(&totals, 28, &RankingSettings::default());
        assert!(close(m.videos_per_period, 3.0));
        assert!(
            close(m.live_sessions_per_period, 5.0),
            "effective ones only"
        );
        assert!(close(m.live_hours_per_live_day, 4.0));
        assert!(close(m.like_rate, 0.02));
        assert!(close(m.comment_rate, 0.003));
        assert!(close(m.share_rate, 0.003));
        assert!(close(m.completion_rate, 0.2));
        let c = m.points();
        assert!(close(c.videos, 70.0));
        assert!(close(c.live_sessions, 70.0));
        assert!(close(c.live_hours, 100.0));
        assert!(close(c.like_rate, 70.0));
        assert!(close(c.comment_rate, 70.0));
        assert!(close(c.share_rate, 70.0));
        assert!(close(c.completion_rate, 70.0));
        // Default weights: (20·70 + 20·70 + 10·100 + 20·70 + 7.5·70 + 7.5·70
        // + 15·70) / 100 = 73.
        assert!(close(ScoreWeights::default().base_score(&c), 73.0));
    }

    #[test]
    fn comment_rate_and_share_rate_are_scored_on_their_own_levels() {
        // Comments 0.5% (excellent), shares none: 100 and 0 points. Their
        // mean (0.25%) on one scale would have given both 62.5.
        let totals = WindowTotals {
            plays: 100_000,
            comments: 500,
            ..WindowTotals::default()
        };
        let c = Metrics::of(&totals, 28, &RankingSettings::default()).points();
        assert!(close(c.comment_rate, 100.0), "{}", c.comment_rate);
        assert!(close(c.share_rate, 0.0), "{}", c.share_rate);
        // Shares 0.2%: halfway from poor (40) to good (70) = 55.
        let totals = WindowTotals {
            shares: 200,
            ..totals
        };
        let c = Metrics::of(&totals, 28, &RankingSettings::default()).points();
        assert!(close(c.share_rate, 55.0), "{}", c.share_rate);
        // Default weights 7.5 each of 100: 7.5·100/100 + 7.5·55/100 = 11.625.
        assert!(close(ScoreWeights::default().base_score(&c), 11.625));
    }

    fn d(day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, day).unwrap()
    }

    fn account(day: u32, account: &str, stats: AccountDay) -> StatsItem {
        StatsItem::Account {
            day: d(day),
            account: account.into(),
            stats,
        }
    }

    fn natural(day: u32, lead_id: &str) -> StatsItem {
        StatsItem::Natural {
            day: d(day),
            lead_id: lead_id.into(),
        }
    }

    #[test]
    fn two_accounts_on_one_dealer_are_summed_per_day_then_over_the_window() {
        let items = [
            account(
                3,
                "dy-1",
                AccountDay {
                    videos: 2,
                    plays: 1_000,
                    likes: 10,
                    live_sessions: 1,
                    live_minutes: 120,
                    ..AccountDay::default()
                },
            ),
            // Same day, second account: 2 sessions of 25 min on average, not effective.
            account(
                3,
                "dy-2",
                AccountDay {
                    videos: 1,
                    plays: 3_000,
                    likes: 50,
                    live_sessions: 2,
                    live_minutes: 50,
                    ..AccountDay::default()
                },
            ),
            account(
                4,
                "dy-2",
                AccountDay {
                    live_sessions: 1,
                    live_minutes: 30,
                    ..AccountDay::default()
                },
            ),
            StatsItem::Counter {
                day: d(3),
                counts: LeadCounts {
                    paid_leads: 2,
                    wecom_leads: 1,
                    ..LeadCounts::default()
                },
            },
            StatsItem::Counter {
                day: d(4),
                counts: LeadCounts {
                    paid_leads: 1,
                    vertical_leads: 4,
                    ..LeadCounts::default()
                },
            },
        ];
        let t = WindowTotals::of_items(&items, &HashSet::new(), &RankingSettings::default());
        assert_eq!((t.videos, t.plays, t.likes), (3, 4_000, 60));
        assert_eq!(t.accounts, 2);
        assert_eq!(t.live_sessions, 4);
        assert_eq!(t.effective_live_sessions, 2, "120 min, and 30 of 30");
        assert_eq!(t.live_minutes, 200);
        assert_eq!(t.live_days, 2, "two accounts live on day 3 is one live day");
        assert_eq!((t.paid_leads, t.wecom_leads, t.vertical_leads), (3, 1, 4));
        let m = Metrics::of(&t, 28, &RankingSettings::default());
        assert!(close(m.like_rate, 0.015), "60 of 4,000 plays");
        assert!(close(m.live_hours_per_live_day, 200.0 / 60.0 / 2.0));
    }

    #[test]
    fn a_customer_counts_once_per_dealer_merged_touches_included() {
        let items = [
            natural(1, "L1"),
            // L1's customer again two days later (a merged touch).
            natural(3, "L1"),
            natural(1, "L2"),
            // A merged touch of a customer whose lead another dealer created.
            natural(2, "L9"),
        ];
        let t = WindowTotals::of_items(&items, &HashSet::new(), &RankingSettings::default());
        assert_eq!(t.natural_leads, 3);
        assert_eq!(t.invalid_natural_leads, 0);
    }

    #[test]
    fn leads_marked_invalid_are_subtracted() {
        let items = [natural(1, "L1"), natural(3, "L1"), natural(1, "L2")];
        let invalid = HashSet::from(["L1".to_string(), "L-elsewhere".to_string()]);
        let t = WindowTotals::of_items(&items, &invalid, &RankingSettings::default());
        assert_eq!(t.natural_leads, 1, "L2 only");
        assert_eq!(t.invalid_natural_leads, 1, "L1 once, however many touches");
    }

    #[test]
    fn only_douyin_natural_traffic_is_a_natural_lead() {
        use LeadCounter::*;
        let cases = [
            (Platform::Douyin, Traffic::Natural, DouyinNatural),
            (Platform::Feiyu, Traffic::Natural, DouyinNatural),
            (Platform::Douyin, Traffic::Paid, Paid),
            (Platform::Feiyu, Traffic::Paid, Paid),
            (Platform::Wecom, Traffic::Natural, Wecom),
            (Platform::Dongchedi, Traffic::Natural, Vertical),
            (Platform::Autohome, Traffic::Natural, Vertical),
            (Platform::Yiche, Traffic::Natural, Vertical),
            (Platform::Autohome, Traffic::Paid, Paid),
            (Platform::OemCrm, Traffic::Natural, Other),
        ];
        for (platform, traffic, counter) in cases {
            assert_eq!(
                LeadCounter::of(platform, traffic),
                counter,
                "{platform:?} {traffic:?}"
            );
        }
        assert_eq!(DouyinNatural.field(), None);
        assert_eq!(Wecom.field(), Some("wecom_leads"));
    }

    #[test]
    fn a_wecom_heavy_dealer_does_not_outrank_a_douyin_natural_one() {
        let content = WindowTotals {
            plays: 10_000,
            likes: 200,
            videos: 12,
            ..WindowTotals::default()
        };
        let wecom = WindowTotals {
            wecom_leads: 40,
            vertical_leads: 10,
            ..content
        };
        let douyin = WindowTotals {
            natural_leads: 3,
            ..content
        };
        let dealers = [dealer("d-a-wecom", wecom), dealer("d-b-douyin", douyin)];
        let basis = basis_for(&dealers, None, None, TierCutoffs::default(), 28);
        let ranked = rank_brand(&dealers, &basis, &HashMap::new());
        assert_eq!(order(&ranked), ["d-b-douyin", "d-a-wecom"]);
        assert_eq!(ranked[1].natural_leads, 0);
        assert_eq!(ranked[1].score.natural, 0.0);
        // k = median(0, 3) = 1.5: 100·3/4.5 = 66.67.
        assert_eq!(ranked[0].score.natural, 66.67);
        // A brand that opts in counts them: 50 against 3.
        let opted = RankingSettings {
            count_wecom_leads: true,
            count_vertical_leads: true,
            ..RankingSettings::default()
        };
        let basis = basis_for(&dealers, None, Some(&opted), TierCutoffs::default(), 28);
        let ranked = rank_brand(&dealers, &basis, &HashMap::new());
        assert_eq!(order(&ranked), ["d-a-wecom", "d-b-douyin"]);
        assert_eq!(ranked[0].natural_leads, 50);
    }

    #[test]
    fn an_effective_live_session_lasts_the_brand_minimum() {
        let listed = AccountDay {
            live_sessions: 4,
            live_minutes: 114,
            live_session_minutes: vec![10, 45, 30, 29],
            ..AccountDay::default()
        };
        assert_eq!(listed.effective_live_sessions(30), 2);
        assert_eq!(listed.effective_live_sessions(0), 4);
        assert_eq!(listed.effective_live_sessions(46), 0);
        // Totals only: all or none by the mean length.
        let totals = AccountDay {
            live_sessions: 3,
            live_minutes: 89,
            ..AccountDay::default()
        };
        assert_eq!(totals.effective_live_sessions(30), 0);
        let totals = AccountDay {
            live_minutes: 90,
            ..totals
        };
        assert_eq!(totals.effective_live_sessions(30), 3);
        assert_eq!(DEFAULT_MIN_LIVE_SESSION_MINUTES, 30);
        // The brand's minimum decides.
        let items = [account(1, "dy", listed)];
        let strict = RankingSettings {
            min_live_session_minutes: 45,
            ..RankingSettings::default()
        };
        let t = WindowTotals::of_items(&items, &HashSet::new(), &strict);
        assert_eq!((t.live_sessions, t.effective_live_sessions), (4, 1));
    }

    #[test]
    fn the_frequency_period_is_a_brand_setting() {
        let t = WindowTotals {
            videos: 12,
            effective_live_sessions: 20,
            ..WindowTotals::default()
        };
        let weekly = Metrics::of(&t, 28, &RankingSettings::default());
        assert!(close(weekly.videos_per_period, 3.0));
        assert!(close(weekly.points().videos, 70.0));
        let fortnightly = RankingSettings {
            period_days: 14,
            ..RankingSettings::default()
        };
        let m = Metrics::of(&t, 28, &fortnightly);
        assert!(close(m.videos_per_period, 6.0));
        assert!(close(m.live_sessions_per_period, 10.0));
        assert!(close(m.points().videos, 100.0));
        assert!(close(m.points().live_sessions, 100.0));
        // A zero period is a week.
        let zero = RankingSettings {
            period_days: 0,
            ..RankingSettings::default()
        };
        let basis = basis_for(&[], None, Some(&zero), TierCutoffs::default(), 28);
        assert_eq!(basis.settings.period_days, 7);
    }

    #[test]
    fn live_interaction_counts_only_with_brand_weight() {
        let t = WindowTotals {
            live_viewers: 10_000,
            live_follows: 168,
            live_comments: 900,
            live_shares: 0,
            ..WindowTotals::default()
        };
        let c = Metrics::of(&t, 28, &RankingSettings::default()).points();
        assert!(close(c.live_follow_rate, 70.0), "1.68% is the average");
        assert!(close(c.live_comment_rate, 100.0), "9% is twice 4.5%");
        assert!(close(c.live_share_rate, 0.0));
        assert_eq!(
            ScoreWeights::default().base_score(&c),
            0.0,
            "weight 0 by default"
        );
        let w = ScoreWeights {
            live_follow_rate: 10.0,
            ..ScoreWeights::default()
        };
        // 10·70 / (100 + 10) = 6.3636...
        assert!(close(w.base_score(&c), 700.0 / 110.0));
    }

    #[test]
    fn a_day_without_live_minutes_is_not_a_live_day() {
        let items = [
            account(
                3,
                "dy-1",
                AccountDay {
                    live_sessions: 1,
                    live_minutes: 60,
                    ..AccountDay::default()
                },
            ),
            // Posted a video, never went live.
            account(
                4,
                "dy-1",
                AccountDay {
                    videos: 1,
                    ..AccountDay::default()
                },
            ),
        ];
        let t = WindowTotals::of_items(&items, &HashSet::new(), &RankingSettings::default());
        assert_eq!(t.live_days, 1);
    }

    #[test]
    fn equal_gains_name_the_earlier_metric() {
        // Comments and shares both 0 -> 40 (3 points each at default
        // weights); everything else full. Comments come first in METRIC_NAMES.
        let c = Components {
            videos: 100.0,
            live_sessions: 100.0,
            live_hours: 100.0,
            like_rate: 100.0,
            completion_rate: 100.0,
            ..Components::default()
        };
        let best = ScoreWeights::default().best_gain(&c).unwrap();
        assert_eq!(best.metric, "comment_rate");
        assert_eq!(best.points, 3.0);
    }

    #[test]
    fn the_metric_that_would_gain_most_points() {
        let c = Components {
            videos: 100.0,
            live_sessions: 35.0,
            live_hours: 50.0,
            like_rate: 20.0,
            ..Components::default()
        };
        // Next levels, default weights of 100: live sessions 35 -> 70 gains
        // 20·35/100 = 7; completion 0 -> 40: 6; live hours 50 -> 100: 5;
        // likes 20 -> 40: 4; comments, shares 0 -> 40: 3 each; videos none.
        let best = ScoreWeights::default().best_gain(&c).unwrap();
        assert_eq!(best.metric, "live_sessions");
        assert_eq!(best.points, 7.0);
        let full = Components {
            videos: 100.0,
            live_sessions: 100.0,
            live_hours: 100.0,
            like_rate: 100.0,
            comment_rate: 100.0,
            share_rate: 100.0,
            completion_rate: 100.0,
            ..Components::default()
        };
        assert_eq!(
            ScoreWeights::default().best_gain(&full),
            None,
            "live rates weigh 0"
        );
    }

    /// The README's worked example, number for number.
    #[test]
    fn the_readme_worked_example() {
        let t = WindowTotals {
            videos: 18,
            live_sessions: 20,
            effective_live_sessions: 18,
            live_minutes: 60 * 60,
            live_days: 15,
            plays: 200_000,
            likes: 3_000,
            comments: 400,
            shares: 800,
            completed_plays: 50_000,
            natural_leads: 28,
            invalid_natural_leads: 2,
            wecom_leads: 40,
            ..WindowTotals::default()
        };
        let basis = RankingBasis {
            window_days: 30,
            natural_lead_k: 20.0,
            ..basis()
        };
        let r = &rank_brand(&[dealer("d", t)], &basis, &HashMap::new())[0];
        let c = r.components;
        assert_eq!(
            (c.videos, c.live_sessions, c.live_hours, c.like_rate),
            (88.0, 58.8, 100.0, 55.0)
        );
        assert_eq!(
            (c.comment_rate, c.share_rate, c.completion_rate),
            (55.0, 85.0, 85.0)
        );
        assert_eq!(r.score.base, 73.61);
        assert_eq!(r.score.natural, 58.33);
        assert_eq!(r.score.total, 131.94);
        assert_eq!(r.natural_leads, 28, "WeCom contacts not counted");
        let gain = r.best_gain.as_ref().unwrap();
        assert_eq!((gain.metric.as_str(), gain.points), ("like_rate", 3.0));
    }

    #[test]
    fn no_plays_and_no_live_days_mean_zero_not_nan() {
        let m = Metrics::of(&WindowTotals::default(), 30, &RankingSettings::default());
        assert_eq!(m, Metrics::default());
        let c = m.points();
        assert_eq!(ScoreWeights::default().base_score(&c), 0.0);
    }

    #[test]
    fn weights_validate_and_partial_config_keeps_defaults() {
        let w: ScoreWeights = serde_json::from_str(r#"{"videos": 50}"#).unwrap();
        assert_eq!(w.videos, 50.0);
        assert_eq!(w.live_sessions, 20.0);
        assert!(serde_json::from_str::<ScoreWeights>(r#"{"video": 1}"#).is_err());
        let zero = ScoreWeights {
            videos: 0.0,
            live_sessions: 0.0,
            live_hours: 0.0,
            like_rate: 0.0,
            comment_rate: 0.0,
            share_rate: 0.0,
            completion_rate: 0.0,
            live_follow_rate: 0.0,
            live_comment_rate: 0.0,
            live_share_rate: 0.0,
        };
        assert_eq!(zero.validate(), Err(WeightsError::AllZero));
        let negative = ScoreWeights {
            videos: -1.0,
            ..ScoreWeights::default()
        };
        assert_eq!(negative.validate(), Err(WeightsError::Negative));
        // Only one metric weighted: base = that metric's points.
        let only_likes = ScoreWeights {
            like_rate: 3.0,
            ..zero
        };
        let c = Components {
            like_rate: 55.0,
            videos: 100.0,
            ..Components::default()
        };
        assert!(close(only_likes.base_score(&c), 55.0));
        // Invalid brand weights fall back to the defaults.
        let basis = basis_for(&[], Some(&negative), None, TierCutoffs::default(), 30);
        assert_eq!(basis.weights, ScoreWeights::default());
    }

    #[test]
    fn natural_lead_scale_is_the_median_at_least_one() {
        assert_eq!(natural_lead_scale(&[]), 1.0);
        assert_eq!(natural_lead_scale(&[0, 0, 5]), 1.0);
        assert_eq!(natural_lead_scale(&[9, 1, 4]), 4.0);
        assert_eq!(natural_lead_scale(&[1, 4, 6, 100]), 5.0);
        assert_eq!(natural_lead_points(0, 4.0), 0.0);
        assert_eq!(natural_lead_points(4, 4.0), 50.0);
        assert_eq!(natural_lead_points(12, 4.0), 75.0);
    }

    #[test]
    fn tiers_by_percentile_with_default_cutoffs() {
        let c = TierCutoffs::default();
        let tiers: String = (1..=10).map(|r| format!("{:?}", c.tier(r, 10))).collect();
        assert_eq!(tiers, "SAABBBBCCC");
        // Small brands: each cumulative bound rounds up (3 dealers: S up to
        // rank ceil(0.3) = 1, A up to ceil(0.9) = 1, B up to ceil(2.1) = 3).
        assert_eq!(c.tier(1, 1), Tier::S);
        assert_eq!(
            (1..=3).map(|r| c.tier(r, 3)).collect::<Vec<_>>(),
            [Tier::S, Tier::B, Tier::B]
        );
        let counts = |n: u32| {
            let mut k = [0u32; 4];
            for r in 1..=n {
                k[c.tier(r, n) as usize] += 1;
            }
            k
        };
        assert_eq!(counts(34_000), [3_400, 6_800, 13_600, 10_200]);
        assert_eq!(
            TierCutoffs::parse("5, 15,30").unwrap().tier(2, 100),
            Tier::S
        );
        assert!(TierCutoffs::parse("50,40,20").is_err());
        assert!(TierCutoffs::parse("10,20").is_err());
        assert!(TierCutoffs::parse("a,b,c").is_err());
        // Large enough to overflow a u32 sum: refused, no panic.
        assert!(TierCutoffs::parse("4294967295,1,0").is_err());
        assert!(TierCutoffs::parse("4294967295,4294967295,4294967295").is_err());
        let no_s = TierCutoffs { s: 0, a: 50, b: 50 };
        assert_eq!(no_s.tier(1, 10), Tier::A);
    }

    #[test]
    fn window_is_thirty_days_ending_on_the_date() {
        let date = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
        let (from, to) = window(date, 30);
        assert_eq!(from.to_string(), "2026-01-31");
        assert_eq!(to, date);
    }

    /// Every field of the window is a sum over the account-days and
    /// counter shards (two days, two accounts, each field non-zero on both).
    #[test]
    fn every_window_total_is_the_sum_over_both_days() {
        let items = [
            account(
                1,
                "dy-1",
                AccountDay {
                    videos: 2,
                    live_sessions: 1,
                    live_minutes: 40,
                    live_session_minutes: vec![40],
                    live_viewers: 300,
                    live_follows: 5,
                    live_comments: 12,
                    live_shares: 2,
                    plays: 1_000,
                    likes: 30,
                    comments: 4,
                    shares: 3,
                    completed_plays: 200,
                },
            ),
            account(
                2,
                "dy-2",
                AccountDay {
                    videos: 3,
                    live_sessions: 2,
                    live_minutes: 70,
                    live_session_minutes: vec![35, 35],
                    live_viewers: 500,
                    live_follows: 7,
                    live_comments: 20,
                    live_shares: 3,
                    plays: 2_000,
                    likes: 50,
                    comments: 6,
                    shares: 5,
                    completed_plays: 700,
                },
            ),
            StatsItem::Counter {
                day: d(1),
                counts: LeadCounts {
                    paid_leads: 2,
                    wecom_leads: 3,
                    vertical_leads: 4,
                    other_leads: 5,
                },
            },
            StatsItem::Counter {
                day: d(2),
                counts: LeadCounts {
                    paid_leads: 3,
                    wecom_leads: 2,
                    vertical_leads: 1,
                    other_leads: 6,
                },
            },
            natural(1, "L1"),
            natural(2, "L2"),
        ];
        let t = WindowTotals::of_items(&items, &HashSet::new(), &RankingSettings::default());
        assert_eq!(
            t,
            WindowTotals {
                videos: 5,
                live_sessions: 3,
                effective_live_sessions: 3,
                live_minutes: 110,
                live_days: 2,
                live_viewers: 800,
                live_follows: 12,
                live_comments: 32,
                live_shares: 5,
                plays: 3_000,
                likes: 80,
                comments: 10,
                shares: 8,
                completed_plays: 900,
                natural_leads: 2,
                invalid_natural_leads: 0,
                paid_leads: 5,
                wecom_leads: 5,
                vertical_leads: 5,
                other_leads: 11,
                accounts: 2,
            }
        );
    }

    /// The snapshot stores metrics rounded to 0.01 (rates to 0.0001, i.e.
    /// 0.01 percentage point) and components to 0.01 point, on values with
    /// more decimals than that.
    #[test]
    fn stored_metrics_and_components_are_rounded_to_hundredths() {
        let t = WindowTotals {
            // 8 videos in 21 days = 2.666… a week: 62.222… points.
            videos: 8,
            // 100 minutes over 3 live days = 0.5555… h a day: 13.888… points.
            live_minutes: 100,
            live_days: 3,
            // 100 likes of 7,000 plays = 1.42857…%: 40 + 30·0.42857… = 52.857… points.
            plays: 7_000,
            likes: 100,
            ..WindowTotals::default()
        };
        let basis = RankingBasis {
            window_days: 21,
            ..basis()
        };
        let r = &rank_brand(&[dealer("d", t)], &basis, &HashMap::new())[0];
        let m = r.metrics;
        assert_eq!(
            (m.videos_per_period, m.live_hours_per_live_day, m.like_rate),
            (2.67, 0.56, 0.0143)
        );
        let c = r.components;
        assert_eq!((c.videos, c.live_hours, c.like_rate), (62.22, 13.89, 52.86));
    }

    #[test]
    fn weights_of_zero_are_valid_and_only_negative_or_odd_ones_are_not() {
        assert_eq!(ScoreWeights::default().validate(), Ok(()));
        assert_eq!(only_completion().validate(), Ok(()), "zero weights allowed");
        for odd in [-0.5, f64::NAN, f64::INFINITY] {
            let w = ScoreWeights {
                live_hours: odd,
                ..ScoreWeights::default()
            };
            assert_eq!(w.validate(), Err(WeightsError::Negative), "{odd}");
        }
        // Valid brand weights are kept.
        let basis = basis_for(
            &[],
            Some(&only_completion()),
            None,
            TierCutoffs::default(),
            30,
        );
        assert_eq!(basis.weights, only_completion());
    }

    #[test]
    fn tier_cutoffs_may_add_up_to_exactly_one_hundred() {
        assert_eq!(
            TierCutoffs::parse("50,30,20"),
            Ok(TierCutoffs {
                s: 50,
                a: 30,
                b: 20
            })
        );
        assert_eq!(
            TierCutoffs::parse("0,0,100"),
            Ok(TierCutoffs { s: 0, a: 0, b: 100 })
        );
        assert!(TierCutoffs::parse("50,30,21").is_err());
    }

    fn dealer(id: &str, totals: WindowTotals) -> DealerInput {
        DealerInput {
            dealer_id: id.into(),
            name: format!("{id} 店"),
            totals,
        }
    }

    fn leads(natural: u64) -> WindowTotals {
        WindowTotals {
            natural_leads: natural,
            ..WindowTotals::default()
        }
    }

    fn basis() -> RankingBasis {
        RankingBasis {
            window_days: 28,
            weights: ScoreWeights::default(),
            cutoffs: TierCutoffs::default(),
            natural_lead_k: 4.0,
            settings: RankingSettings::default(),
        }
    }

    fn only_completion() -> ScoreWeights {
        ScoreWeights {
            videos: 0.0,
            live_sessions: 0.0,
            live_hours: 0.0,
            like_rate: 0.0,
            comment_rate: 0.0,
            share_rate: 0.0,
            completion_rate: 1.0,
            live_follow_rate: 0.0,
            live_comment_rate: 0.0,
            live_share_rate: 0.0,
        }
    }

    fn order(ranked: &[RankedDealer]) -> Vec<&str> {
        ranked.iter().map(|r| r.dealer_id.as_str()).collect()
    }

    #[test]
    fn equal_scores_and_leads_break_ties_by_dealer_id() {
        let same = leads(5);
        let dealers = [
            dealer("d-c", same),
            dealer("d-a", same),
            dealer("d-b", same),
        ];
        let ranked = rank_brand(&dealers, &basis(), &HashMap::new());
        assert_eq!(order(&ranked), ["d-a", "d-b", "d-c"]);
        assert_eq!(ranked.iter().map(|r| r.rank).collect::<Vec<_>>(), [1, 2, 3]);
    }

    #[test]
    fn equal_totals_prefer_more_natural_leads() {
        // Completion is the only weighted metric; k = 4.
        let basis = RankingBasis {
            weights: only_completion(),
            ..basis()
        };
        // a: completion 20% (70 points) + 4 leads (50 points) = 120.
        let a = WindowTotals {
            plays: 1_000,
            completed_plays: 200,
            natural_leads: 4,
            ..WindowTotals::default()
        };
        // z: completion 11.67% (40 + 30 x 1/6 = 45 points) + 12 leads (75 points) = 120.
        let z = WindowTotals {
            plays: 6_000,
            completed_plays: 700,
            natural_leads: 12,
            ..WindowTotals::default()
        };
        let ranked = rank_brand(
            &[dealer("d-a", a), dealer("d-z", z)],
            &basis,
            &HashMap::new(),
        );
        assert_eq!(ranked[0].score.total, 120.0);
        assert_eq!(ranked[1].score.total, 120.0);
        assert_eq!(
            order(&ranked),
            ["d-z", "d-a"],
            "same total: more natural leads first"
        );
    }

    #[test]
    fn rank_change_against_the_previous_snapshot() {
        let dealers = [
            dealer("d-1", leads(1)),
            dealer("d-2", leads(2)),
            dealer("d-3", leads(3)),
        ];
        let previous = HashMap::from([("d-1".to_string(), 1), ("d-3".to_string(), 3)]);
        let ranked = rank_brand(&dealers, &basis(), &previous);
        let by_id: HashMap<&str, &RankedDealer> =
            ranked.iter().map(|r| (r.dealer_id.as_str(), r)).collect();
        assert_eq!(by_id["d-3"].rank, 1);
        assert_eq!(by_id["d-3"].rank_change, Some(2), "3 -> 1 is up two");
        assert_eq!(by_id["d-1"].rank_change, Some(-2));
        assert_eq!(by_id["d-2"].previous_rank, None);
        assert_eq!(by_id["d-2"].rank_change, None, "new in this snapshot");
    }

    #[test]
    fn ranking_is_deterministic_whatever_the_input_order() {
        let dealers: Vec<DealerInput> = (0..200)
            .map(|i| dealer(&format!("d-{i:03}"), leads(i % 7)))
            .collect();
        let mut reversed = dealers.clone();
        reversed.reverse();
        let a = rank_brand(&dealers, &basis(), &HashMap::new());
        let b = rank_brand(&reversed, &basis(), &HashMap::new());
        assert_eq!(a, b);
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&b).unwrap()
        );
    }

    #[test]
    fn total_is_base_plus_natural_as_displayed() {
        let t = WindowTotals {
            videos: 13,
            live_sessions: 11,
            effective_live_sessions: 9,
            live_minutes: 1_000,
            live_days: 7,
            plays: 77_777,
            likes: 1_234,
            comments: 111,
            shares: 99,
            completed_plays: 12_345,
            natural_leads: 3,
            ..WindowTotals::default()
        };
        let r = &rank_brand(&[dealer("d", t)], &basis(), &HashMap::new())[0];
        assert!(close(r.score.total, r.score.base + r.score.natural));
        assert_eq!(r.tier, Tier::S);
    }

    /// 34,000 dealers × 30 days in one brand (the worst case: every Douyin car
    /// dealer in one ranking): aggregation + scoring + sort. Prints the time;
    /// asserts only the result.
    #[test]
    fn ranks_34000_dealers_over_30_days() {
        let days_per_dealer = 30usize;
        let dealers_n = 34_000usize;
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |m: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % m
        };
        let first = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
        // Each dealer's items are made and aggregated in turn (all of them
        // at once would hold millions of items); the time includes making them.
        let started = std::time::Instant::now();
        let inputs: Vec<DealerInput> = (0..dealers_n)
            .map(|d| {
                let items: Vec<StatsItem> = (0..days_per_dealer)
                    .flat_map(|i| {
                        let day = first + Days::new(i as u64);
                        let plays = next(20_000);
                        let mut items = vec![
                            StatsItem::Account {
                                day,
                                account: "dy".to_string(),
                                stats: AccountDay {
                                    videos: next(3),
                                    live_sessions: next(3),
                                    live_minutes: next(300),
                                    plays,
                                    likes: plays * next(40) / 1_000,
                                    comments: plays * next(6) / 1_000,
                                    shares: plays * next(6) / 1_000,
                                    completed_plays: plays * next(40) / 100,
                                    ..AccountDay::default()
                                },
                            },
                            StatsItem::Counter {
                                day,
                                counts: LeadCounts {
                                    paid_leads: next(3),
                                    ..LeadCounts::default()
                                },
                            },
                        ];
                        for c in 0..next(4) {
                            items.push(StatsItem::Natural {
                                day,
                                lead_id: format!("L{i}-{c}"),
                            });
                        }
                        items
                    })
                    .collect();
                DealerInput {
                    dealer_id: format!("dealer-{d:05}"),
                    name: String::new(),
                    totals: WindowTotals::of_items(
                        &items,
                        &HashSet::new(),
                        &RankingSettings::default(),
                    ),
                }
            })
            .collect();
        let basis = basis_for(&inputs, None, None, TierCutoffs::default(), WINDOW_DAYS);
        let ranked = rank_brand(&inputs, &basis, &HashMap::new());
        let elapsed = started.elapsed();
        eprintln!(
            "ranking: {dealers_n} dealers x {days_per_dealer} days aggregated, scored and ranked in {:.1} ms ({} build)",
            elapsed.as_secs_f64() * 1e3,
            if cfg!(debug_assertions) { "debug" } else { "release" }
        );
        assert_eq!(ranked.len(), dealers_n);
        assert!(ranked
            .windows(2)
            .all(|w| w[0].score.total >= w[1].score.total));
        assert_eq!(ranked.iter().filter(|r| r.tier == Tier::S).count(), 3_400);
    }

    proptest! {
        #[test]
        fn natural_lead_points_strictly_increase_and_stay_below_100(
            n in 0u64..1_000_000, step in 1u64..1_000, k in 1.0f64..10_000.0
        ) {
            let here = natural_lead_points(n, k);
            let more = natural_lead_points(n + step, k);
            prop_assert!(more > here, "{n} -> {here}, {} -> {more}", n + step);
            prop_assert!((0.0..100.0).contains(&here));
            prop_assert!((0.0..100.0).contains(&more));
        }

        #[test]
        fn more_natural_leads_never_rank_lower_all_else_equal(
            others in proptest::collection::vec(0u64..50, 1..40), extra in 1u64..20
        ) {
            // Same content for everyone; one dealer gains leads: its rank can
            // only improve (or stay).
            let mut dealers: Vec<DealerInput> = others
                .iter()
                .enumerate()
                .map(|(i, &n)| dealer(&format!("d-{i:02}"), leads(n)))
                .collect();
            let k = natural_lead_scale(&others);
            let basis = RankingBasis { natural_lead_k: k, ..basis() };
            let before = rank_brand(&dealers, &basis, &HashMap::new());
            dealers[0].totals.natural_leads += extra;
            let after = rank_brand(&dealers, &basis, &HashMap::new());
            let rank_of = |r: &[RankedDealer]| r.iter().find(|d| d.dealer_id == "d-00").unwrap().rank;
            prop_assert!(rank_of(&after) <= rank_of(&before));
        }

        #[test]
        fn every_scale_is_monotonic_and_within_0_100(a in 0.0f64..1.0, b in 0.0f64..1.0) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            for s in [three_level(levels::LIKE_RATE), three_level(levels::COMMENT_RATE), three_level(levels::SHARE_RATE), three_level(levels::COMPLETION_RATE)] {
                prop_assert!(s.points(lo) <= s.points(hi));
                prop_assert!((0.0..=100.0).contains(&s.points(hi)));
            }
            let videos = two_level(3.0, 5.0);
            prop_assert!(videos.points(lo * 10.0) <= videos.points(hi * 10.0));
        }
    }
}
