//! Nightly brand ranking (DESIGN.md §7, reference 000 p.33):
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
//! | short videos per week | 0 -> 0, 3 (good) -> 70, 5 (excellent) -> 100 |
//! | live sessions per week | 0 -> 0, 5 (good) -> 70, 10 (excellent) -> 100 |
//! | live hours per live day | 0 -> 0, 4 (the ">4 h a day" level) -> 100 |
//! | like rate (likes / plays) | 0 -> 0, 1% (poor) -> 40, 2% (good) -> 70, 3% (excellent) -> 100 |
//! | comment and share rate ((comments + shares) / 2 / plays) | 0 -> 0, 0.1% -> 40, 0.3% -> 70, 0.5% -> 100 |
//! | completion rate (completed plays / plays) | 0 -> 0, 10% -> 40, 20% -> 70, 30% -> 100 |
//!
//! The reference gives the comment rate and the share rate the same levels
//! each; their mean is scored against those levels. Live duration is per day
//! the dealer went live, because how often it goes live is already the
//! sessions-per-week metric.
//!
//! Base score = weighted mean of the six (brand weights, [`ScoreWeights`]).
//! Natural-lead score = 100 · n / (n + k), n the dealer's natural leads in the
//! window and k the brand's median n (at least 1): strictly increasing in n,
//! below 100, and 50 points means "as many as the brand's typical dealer".
//! Effect score = base + natural, 0-200. Scores are rounded to hundredths
//! before ranking, so what a dealer sees is what was compared.

use std::collections::HashMap;

use chrono::{Days, NaiveDate};
use serde::{Deserialize, Serialize};

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
    pub const COMMENT_SHARE_RATE: [f64; 3] = [0.001, 0.003, 0.005];
    pub const COMPLETION_RATE: [f64; 3] = [0.10, 0.20, 0.30];
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

/// One dealer-day as the stats table holds it (`pk=DEALER#<d>, sk=DAY#<day>`).
/// Every counter may be missing (a day with leads but no content stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DayStats {
    pub videos: u64,
    pub live_sessions: u64,
    pub live_minutes: u64,
    pub plays: u64,
    pub likes: u64,
    pub comments: u64,
    pub shares: u64,
    pub completed_plays: u64,
    pub natural_leads: u64,
    pub paid_leads: u64,
}

/// A dealer's sums over the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowTotals {
    pub videos: u64,
    pub live_sessions: u64,
    pub live_minutes: u64,
    /// Days with any live minutes.
    pub live_days: u64,
    pub plays: u64,
    pub likes: u64,
    pub comments: u64,
    pub shares: u64,
    pub completed_plays: u64,
    pub natural_leads: u64,
    pub paid_leads: u64,
}

impl WindowTotals {
    pub fn add(&mut self, day: &DayStats) {
        self.videos += day.videos;
        self.live_sessions += day.live_sessions;
        self.live_minutes += day.live_minutes;
        self.live_days += u64::from(day.live_minutes > 0);
        self.plays += day.plays;
        self.likes += day.likes;
        self.comments += day.comments;
        self.shares += day.shares;
        self.completed_plays += day.completed_plays;
        self.natural_leads += day.natural_leads;
        self.paid_leads += day.paid_leads;
    }

    pub fn of<'a>(days: impl IntoIterator<Item = &'a DayStats>) -> Self {
        let mut totals = WindowTotals::default();
        for day in days {
            totals.add(day);
        }
        totals
    }
}

/// The six base-score metrics. Rates are fractions of plays (0 without plays).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub videos_per_week: f64,
    pub live_sessions_per_week: f64,
    pub live_hours_per_live_day: f64,
    pub like_rate: f64,
    pub comment_share_rate: f64,
    pub completion_rate: f64,
}

impl Metrics {
    pub fn of(t: &WindowTotals, window_days: u32) -> Self {
        let weeks = f64::from(window_days.max(1)) / 7.0;
        let per_play = |x: u64| {
            if t.plays == 0 {
                0.0
            } else {
                x as f64 / t.plays as f64
            }
        };
        Metrics {
            videos_per_week: t.videos as f64 / weeks,
            live_sessions_per_week: t.live_sessions as f64 / weeks,
            live_hours_per_live_day: if t.live_days == 0 {
                0.0
            } else {
                t.live_minutes as f64 / 60.0 / t.live_days as f64
            },
            like_rate: per_play(t.likes),
            comment_share_rate: per_play(t.comments + t.shares) / 2.0,
            completion_rate: per_play(t.completed_plays),
        }
    }

    /// Each metric on its 0-100 scale.
    pub fn points(&self) -> Components {
        use levels::*;
        Components {
            videos: two_level(VIDEOS_PER_WEEK_GOOD, VIDEOS_PER_WEEK_EXCELLENT)
                .points(self.videos_per_week),
            live_sessions: two_level(
                LIVE_SESSIONS_PER_WEEK_GOOD,
                LIVE_SESSIONS_PER_WEEK_EXCELLENT,
            )
            .points(self.live_sessions_per_week),
            live_hours: Scale {
                anchors: [(0.0, 0.0), (LIVE_HOURS_PER_DAY_EXCELLENT, EXCELLENT_POINTS)],
            }
            .points(self.live_hours_per_live_day),
            like_rate: three_level(LIKE_RATE).points(self.like_rate),
            comment_share_rate: three_level(COMMENT_SHARE_RATE).points(self.comment_share_rate),
            completion_rate: three_level(COMPLETION_RATE).points(self.completion_rate),
        }
    }

    /// Rounded for storage and display (rates to 0.01 percentage point).
    fn rounded(&self) -> Metrics {
        let r = |x: f64, scale: f64| (x * scale).round() / scale;
        Metrics {
            videos_per_week: r(self.videos_per_week, 100.0),
            live_sessions_per_week: r(self.live_sessions_per_week, 100.0),
            live_hours_per_live_day: r(self.live_hours_per_live_day, 100.0),
            like_rate: r(self.like_rate, 10_000.0),
            comment_share_rate: r(self.comment_share_rate, 10_000.0),
            completion_rate: r(self.completion_rate, 10_000.0),
        }
    }
}

/// Points (0-100) per metric.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Components {
    pub videos: f64,
    pub live_sessions: f64,
    pub live_hours: f64,
    pub like_rate: f64,
    pub comment_share_rate: f64,
    pub completion_rate: f64,
}

impl Components {
    fn rounded(&self) -> Components {
        let r = |x: f64| centi(x) as f64 / 100.0;
        Components {
            videos: r(self.videos),
            live_sessions: r(self.live_sessions),
            live_hours: r(self.live_hours),
            like_rate: r(self.like_rate),
            comment_share_rate: r(self.comment_share_rate),
            completion_rate: r(self.completion_rate),
        }
    }
}

/// How much each metric counts in the base score (brand config; relative
/// weights, normalised by their sum). Missing fields take the defaults:
/// posting 20, live sessions 20, live hours 10, likes 20, comments and
/// shares 15, completion 15.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScoreWeights {
    pub videos: f64,
    pub live_sessions: f64,
    pub live_hours: f64,
    pub like_rate: f64,
    pub comment_share_rate: f64,
    pub completion_rate: f64,
}

impl Default for ScoreWeights {
    fn default() -> Self {
        ScoreWeights {
            videos: 20.0,
            live_sessions: 20.0,
            live_hours: 10.0,
            like_rate: 20.0,
            comment_share_rate: 15.0,
            completion_rate: 15.0,
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

impl ScoreWeights {
    fn all(&self) -> [f64; 6] {
        [
            self.videos,
            self.live_sessions,
            self.live_hours,
            self.like_rate,
            self.comment_share_rate,
            self.completion_rate,
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
        let points = [
            c.videos,
            c.live_sessions,
            c.live_hours,
            c.like_rate,
            c.comment_share_rate,
            c.completion_rate,
        ];
        let weights = self.all();
        let total: f64 = weights.iter().sum();
        weights.iter().zip(points).map(|(w, p)| w * p).sum::<f64>() / total
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
        if s + a + b > 100 {
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
    pub natural_leads: u64,
    pub paid_leads: u64,
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
    }
    let mut scored: Vec<Scored> = dealers
        .iter()
        .map(|input| {
            let metrics = Metrics::of(&input.totals, basis.window_days);
            let components = metrics.points();
            Scored {
                input,
                metrics,
                components,
                base: centi(basis.weights.base_score(&components)),
                natural: centi(natural_lead_points(
                    input.totals.natural_leads,
                    basis.natural_lead_k,
                )),
                // Rounding each part before adding keeps total = base + natural
                // exactly as displayed.
            }
        })
        .collect();
    scored.sort_by(|a, b| {
        (b.base + b.natural)
            .cmp(&(a.base + a.natural))
            .then(
                b.input
                    .totals
                    .natural_leads
                    .cmp(&a.input.totals.natural_leads),
            )
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
                components: s.components.rounded(),
                metrics: s.metrics.rounded(),
                natural_leads: s.input.totals.natural_leads,
                paid_leads: s.input.totals.paid_leads,
                previous_rank,
                rank_change: previous_rank.map(|p| i64::from(p) - i64::from(rank)),
            }
        })
        .collect()
}

/// The basis for a brand's dealers: its weights (defaults if unset or
/// invalid) and k from their natural leads.
pub fn basis_for(
    dealers: &[DealerInput],
    weights: Option<&ScoreWeights>,
    cutoffs: TierCutoffs,
    window_days: u32,
) -> RankingBasis {
    let weights = weights
        .filter(|w| w.validate().is_ok())
        .copied()
        .unwrap_or_default();
    let leads: Vec<u64> = dealers.iter().map(|d| d.totals.natural_leads).collect();
    RankingBasis {
        window_days,
        weights,
        cutoffs,
        natural_lead_k: natural_lead_scale(&leads),
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
        let cases: [(&str, [f64; 3]); 3] = [
            ("like", LIKE_RATE),
            ("comment+share", COMMENT_SHARE_RATE),
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
        // 28 days = 4 weeks: 3 videos and 5 live sessions a week, 4 h on each
        // live day, like 2%, comments 0.2% + shares 0.4% (mean 0.3%), completion 20%.
        let totals = WindowTotals {
            videos: per_week(3),
            live_sessions: per_week(5),
            live_minutes: 20 * 240,
            live_days: 20,
            plays: 100_000,
            likes: 2_000,
            comments: 200,
            shares: 400,
            completed_plays: 20_000,
            natural_leads: 7,
            paid_leads: 3,
        };
        let m = Metrics::of(&totals, 28);
        assert!(close(m.videos_per_week, 3.0));
        assert!(close(m.live_sessions_per_week, 5.0));
        assert!(close(m.live_hours_per_live_day, 4.0));
        assert!(close(m.like_rate, 0.02));
        assert!(close(m.comment_share_rate, 0.003));
        assert!(close(m.completion_rate, 0.2));
        let c = m.points();
        assert!(close(c.videos, 70.0));
        assert!(close(c.live_sessions, 70.0));
        assert!(close(c.live_hours, 100.0));
        assert!(close(c.like_rate, 70.0));
        assert!(close(c.comment_share_rate, 70.0));
        assert!(close(c.completion_rate, 70.0));
        // Default weights: (20·70 + 20·70 + 10·100 + 20·70 + 15·70 + 15·70) / 100 = 73.
        assert!(close(ScoreWeights::default().base_score(&c), 73.0));
    }

    #[test]
    fn no_plays_and_no_live_days_mean_zero_not_nan() {
        let m = Metrics::of(&WindowTotals::default(), 30);
        assert_eq!(m, Metrics::default());
        let c = m.points();
        assert_eq!(ScoreWeights::default().base_score(&c), 0.0);
    }

    #[test]
    fn window_totals_count_live_days_and_sum_counters() {
        let days = [
            DayStats {
                videos: 1,
                live_minutes: 90,
                natural_leads: 2,
                ..DayStats::default()
            },
            DayStats {
                videos: 2,
                paid_leads: 1,
                ..DayStats::default()
            },
            DayStats {
                live_minutes: 30,
                ..DayStats::default()
            },
        ];
        let t = WindowTotals::of(&days);
        assert_eq!((t.videos, t.live_minutes, t.live_days), (3, 120, 2));
        assert_eq!((t.natural_leads, t.paid_leads), (2, 1));
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
            comment_share_rate: 0.0,
            completion_rate: 0.0,
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
        let basis = basis_for(&[], Some(&negative), TierCutoffs::default(), 30);
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
            weights: ScoreWeights {
                videos: 0.0,
                live_sessions: 0.0,
                live_hours: 0.0,
                like_rate: 0.0,
                comment_share_rate: 0.0,
                completion_rate: 1.0,
            },
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
            live_minutes: 1_000,
            live_days: 7,
            plays: 77_777,
            likes: 1_234,
            comments: 111,
            shares: 99,
            completed_plays: 12_345,
            natural_leads: 3,
            paid_leads: 0,
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
        let raw: Vec<Vec<DayStats>> = (0..dealers_n)
            .map(|_| {
                (0..days_per_dealer)
                    .map(|_| {
                        let plays = next(20_000);
                        DayStats {
                            videos: next(3),
                            live_sessions: next(3),
                            live_minutes: next(300),
                            plays,
                            likes: plays * next(40) / 1_000,
                            comments: plays * next(6) / 1_000,
                            shares: plays * next(6) / 1_000,
                            completed_plays: plays * next(40) / 100,
                            natural_leads: next(4),
                            paid_leads: next(3),
                        }
                    })
                    .collect()
            })
            .collect();
        let started = std::time::Instant::now();
        let inputs: Vec<DealerInput> = raw
            .iter()
            .enumerate()
            .map(|(i, days)| DealerInput {
                dealer_id: format!("dealer-{i:05}"),
                name: String::new(),
                totals: WindowTotals::of(days),
            })
            .collect();
        let basis = basis_for(&inputs, None, TierCutoffs::default(), WINDOW_DAYS);
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
            for s in [three_level(levels::LIKE_RATE), three_level(levels::COMMENT_SHARE_RATE), three_level(levels::COMPLETION_RATE)] {
                prop_assert!(s.points(lo) <= s.points(hi));
                prop_assert!((0.0..=100.0).contains(&s.points(hi)));
            }
            let videos = two_level(3.0, 5.0);
            prop_assert!(videos.points(lo * 10.0) <= videos.points(hi * 10.0));
        }
    }
}
