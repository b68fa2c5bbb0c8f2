//! Delivery rules the notifier applies, kept pure so they are tested without
//! a network: which failures are worth retrying, how long to wait between
//! attempts, how many messages a WeCom member may get, what WeCom's answer
//! means for each recipient, and the key that makes a delivery happen once.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where a notification goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// WeCom app message to a staff member.
    Wecom,
    /// SMS through the configured gateway.
    Sms,
    /// Signed webhook to the brand's CRM/DMS.
    Webhook,
    /// A WeCom contact moved to the consultant who took the lead over.
    WecomTransfer,
    /// A lifecycle event to the brand's own CRM (its endpoint and key).
    BrandCrm,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Wecom => "wecom",
            ChannelKind::Sms => "sms",
            ChannelKind::Webhook => "webhook",
            ChannelKind::WecomTransfer => "wecom_transfer",
            ChannelKind::BrandCrm => "brand_crm",
        }
    }
}

impl std::fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The idempotency key of one delivery: a job reaches a recipient on a
/// channel at most once, however often SQS delivers the job.
pub fn delivery_key(job_id: &str, channel: ChannelKind, recipient: &str) -> String {
    format!("notify#{job_id}#{channel}#{recipient}")
}

/// Marks that a recipient rejected a job on a channel for good (WeCom's
/// `invaliduser`), so a redelivered job still knows to fall back to SMS for
/// them although their WeCom delivery is done.
pub fn rejection_key(job_id: &str, channel: ChannelKind, recipient: &str) -> String {
    format!("{}#rejected", delivery_key(job_id, channel, recipient))
}

/// Why a delivery did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Worth retrying: a timeout, a 5xx, throttling, a busy upstream.
    Transient(String),
    /// Retrying cannot help (a 4xx, an unknown WeCom user): record and drop.
    Permanent(String),
    /// Over a rate limit: retrying within seconds cannot help either, but the
    /// job's next SQS delivery (after the visibility timeout) can.
    Throttled(String),
}

impl Failure {
    pub fn is_permanent(&self) -> bool {
        matches!(self, Failure::Permanent(_))
    }

    /// Worth another attempt in this invocation.
    pub fn retry_now(&self) -> bool {
        matches!(self, Failure::Transient(_))
    }

    pub fn reason(&self) -> &str {
        match self {
            Failure::Transient(r) | Failure::Permanent(r) | Failure::Throttled(r) => r,
        }
    }
}

/// What an HTTP status means for a delivery: `None` is success (2xx).
/// Timeouts (408), throttling (429), too-early (425) and 5xx are transient;
/// any other 4xx is the request's own fault and permanent. Anything else
/// (a redirect we do not follow, 1xx) is a misconfiguration worth keeping
/// in the DLQ rather than dropping: transient.
pub fn classify_http(status: u16) -> Option<Failure> {
    match status {
        200..=299 => None,
        408 | 425 | 429 => Some(Failure::Transient(format!("HTTP {status}"))),
        400..=499 => Some(Failure::Permanent(format!("HTTP {status}"))),
        _ => Some(Failure::Transient(format!("HTTP {status}"))),
    }
}

/// Exponential backoff with "equal jitter": retry `n` waits between half and
/// all of `min(max, base * 2^n)`, so retries of many jobs spread out but never
/// come back immediately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
    /// Attempts in one invocation, the first included.
    pub max_attempts: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(200),
            max: Duration::from_secs(4),
            max_attempts: 4,
        }
    }
}

impl Backoff {
    /// The wait before retry `retry` (0 = the wait after the first attempt);
    /// `jitter` in [0, 1).
    pub fn delay(&self, retry: u32, jitter: f64) -> Duration {
        let full = self
            .base
            .checked_mul(1u32.checked_shl(retry.min(20)).unwrap_or(u32::MAX))
            .unwrap_or(self.max)
            .min(self.max);
        let jitter = jitter.clamp(0.0, 1.0);
        full / 2 + full.mul_f64(jitter / 2.0)
    }

    /// The wait before the next attempt, if one is allowed: fewer than
    /// `max_attempts` made, and the wait plus one more attempt (at most
    /// `attempt_timeout`) fits in `remaining` (the invocation's time left,
    /// so retries stay inside the SQS visibility window).
    pub fn next(
        &self,
        attempts_made: u32,
        remaining: Duration,
        attempt_timeout: Duration,
        jitter: f64,
    ) -> Option<Duration> {
        if attempts_made == 0 {
            return (attempt_timeout <= remaining).then_some(Duration::ZERO);
        }
        if attempts_made >= self.max_attempts {
            return None;
        }
        let wait = self.delay(attempts_made - 1, jitter);
        (wait + attempt_timeout <= remaining).then_some(wait)
    }
}

/// One limit: at most `limit` messages in any `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub limit: u32,
    pub per: chrono::Duration,
}

/// Per-member sliding windows (WeCom: 30 messages a minute and 1000 an hour
/// per member and app). A member over a limit is not sent to now; the job is
/// left to SQS to retry after its visibility timeout.
#[derive(Debug, Clone, Default)]
pub struct RateWindow {
    limits: Vec<RateLimit>,
    sent: HashMap<String, VecDeque<DateTime<Utc>>>,
}

impl RateWindow {
    pub fn new(limits: Vec<RateLimit>) -> Self {
        RateWindow {
            limits,
            sent: HashMap::new(),
        }
    }

    /// WeCom's published per-member limits for app messages.
    pub fn wecom(per_minute: u32) -> Self {
        RateWindow::new(vec![
            RateLimit {
                limit: per_minute,
                per: chrono::Duration::minutes(1),
            },
            RateLimit {
                limit: 1000,
                per: chrono::Duration::hours(1),
            },
        ])
    }

    /// Takes a slot for `member` at `now` if every limit allows one more.
    pub fn try_take(&mut self, member: &str, now: DateTime<Utc>) -> bool {
        let longest = self
            .limits
            .iter()
            .map(|l| l.per)
            .max()
            .unwrap_or_else(chrono::Duration::zero);
        let sent = self.sent.entry(member.to_string()).or_default();
        while sent.front().is_some_and(|t| *t <= now - longest) {
            sent.pop_front();
        }
        let allowed = self.limits.iter().all(|l| {
            let recent = sent.iter().filter(|t| **t > now - l.per).count();
            (recent as u64) < u64::from(l.limit)
        });
        if allowed {
            sent.push_back(now);
        }
        allowed
    }
}

/// WeCom's answer to `message/send` (and the error fields of any API call).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct WecomReply {
    pub errcode: i64,
    #[serde(default)]
    pub errmsg: String,
    /// `a|b`: recipients WeCom does not know (or may not message).
    #[serde(default)]
    pub invaliduser: String,
    /// `a|b`: recipients without a licence for the app.
    #[serde(default)]
    pub unlicenseduser: String,
}

/// What a `message/send` answer means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WecomVerdict {
    /// Sent to everyone except `rejected`, who failed permanently.
    Sent { rejected: Vec<String> },
    /// The access token expired or was revoked: refresh it and send again.
    TokenExpired,
    /// Nobody got it.
    Failed(Failure),
}

/// errcodes for an access token that is no longer valid.
pub const WECOM_TOKEN_ERRCODES: [i64; 2] = [42001, 40014];

/// Interprets WeCom's answer for a message to `recipients` (WeCom userids).
///
/// Per-recipient problems are permanent for those recipients only. Token
/// problems mean refresh and retry. Throttling and "system busy" are
/// transient. Any other errcode (wrong corp id, agent id, IP allow-list...)
/// is a configuration fault that no retry of this job fixes, but dropping
/// the message would lose it: transient, so it ends in the DLQ for a
/// redrive once the configuration is fixed.
/// What WeCom's answer to a customer transfer (`externalcontact/transfer_customer`
/// or its `resigned/` twin) means, given the answer's `errcode` and that of
/// the one customer moved (None when the answer lists none). The token
/// errcodes are the caller's to handle first. A customer WeCom refuses to
/// move (not that member's contact, moved twice in 90 days, a member not
/// activated, ...) is refused for good: no retry changes that.
pub fn transfer_verdict(errcode: i64, errmsg: &str, customer: Option<i64>) -> Result<(), Failure> {
    match (errcode, customer) {
        (0, Some(0)) => Ok(()),
        (0, Some(code)) => Err(Failure::Permanent(format!(
            "wecom refused to transfer the contact (errcode {code})"
        ))),
        (0, None) => Err(Failure::Transient(
            "wecom's transfer answer lists no customer".into(),
        )),
        (code, _) => Err(Failure::Transient(format!(
            "wecom errcode {code}: {errmsg}"
        ))),
    }
}

pub fn wecom_verdict(reply: &WecomReply, recipients: &[String]) -> WecomVerdict {
    let listed = |field: &str| -> Vec<String> {
        field
            .split('|')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_string)
            .collect()
    };
    match reply.errcode {
        0 => {
            let mut rejected = listed(&reply.invaliduser);
            for u in listed(&reply.unlicenseduser) {
                if !rejected.contains(&u) {
                    rejected.push(u);
                }
            }
            WecomVerdict::Sent { rejected }
        }
        code if WECOM_TOKEN_ERRCODES.contains(&code) => WecomVerdict::TokenExpired,
        // 40003 invalid userid, 60111 userid not found, 81013 every
        // recipient invalid: nobody here can ever receive it.
        40003 | 60111 | 81013 => WecomVerdict::Sent {
            rejected: recipients.to_vec(),
        },
        code => WecomVerdict::Failed(Failure::Transient(format!(
            "wecom errcode {code}: {}",
            reply.errmsg
        ))),
    }
}

/// When a cached access token should be replaced: `expires_in` seconds
/// after it was fetched, less a margin (5 minutes, or a tenth of a short
/// lifetime) so a message never goes out with a token about to expire.
pub fn token_refresh_at(fetched_at: DateTime<Utc>, expires_in_secs: i64) -> DateTime<Utc> {
    let margin = (expires_in_secs / 10).min(300);
    fetched_at + chrono::Duration::seconds(expires_in_secs.max(0) - margin)
}

#[cfg(test)]
mod transfer_tests {
    use super::*;

    #[test]
    fn a_transfer_is_done_refused_for_good_or_retried() {
        assert_eq!(transfer_verdict(0, "ok", Some(0)), Ok(()));
        assert!(matches!(
            transfer_verdict(0, "ok", Some(40096)),
            Err(Failure::Permanent(_))
        ));
        assert!(matches!(
            transfer_verdict(-1, "system busy", None),
            Err(Failure::Transient(_))
        ));
        assert!(matches!(
            transfer_verdict(0, "ok", None),
            Err(Failure::Transient(_))
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 0, 0, 0).unwrap() + chrono::Duration::seconds(secs)
    }

    #[test]
    fn delivery_keys() {
        assert_eq!(
            delivery_key("L1#new_assignment#1", ChannelKind::Wecom, "s1"),
            "notify#L1#new_assignment#1#wecom#s1"
        );
        assert_eq!(
            rejection_key("L1#new_assignment#1", ChannelKind::Wecom, "s1"),
            "notify#L1#new_assignment#1#wecom#s1#rejected"
        );
    }

    #[test]
    fn http_statuses() {
        assert_eq!(classify_http(200), None);
        assert_eq!(classify_http(204), None);
        for s in [408, 425, 429, 500, 502, 503, 504, 302] {
            assert!(
                matches!(classify_http(s), Some(Failure::Transient(_))),
                "{s}"
            );
        }
        for s in [400, 401, 403, 404, 410, 413, 422] {
            assert!(classify_http(s).unwrap().is_permanent(), "{s}");
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let b = Backoff::default();
        assert_eq!(b.delay(0, 0.0), Duration::from_millis(100));
        assert_eq!(
            b.delay(0, 0.999_999),
            Duration::from_millis(199) + Duration::from_nanos(999_900)
        );
        assert_eq!(b.delay(1, 0.0), Duration::from_millis(200));
        assert_eq!(b.delay(2, 0.0), Duration::from_millis(400));
        assert_eq!(b.delay(10, 1.0), Duration::from_secs(4));
        assert_eq!(b.delay(u32::MAX, 1.0), Duration::from_secs(4));
    }

    #[test]
    fn next_attempt_respects_count_and_time_left() {
        let b = Backoff::default();
        let t = Duration::from_secs(5);
        assert_eq!(
            b.next(0, Duration::from_secs(20), t, 0.5),
            Some(Duration::ZERO)
        );
        assert_eq!(
            b.next(0, Duration::from_secs(4), t, 0.5),
            None,
            "no time for one attempt"
        );
        assert_eq!(
            b.next(1, Duration::from_secs(20), t, 0.0),
            Some(Duration::from_millis(100))
        );
        assert_eq!(
            b.next(4, Duration::from_secs(60), t, 0.0),
            None,
            "max attempts"
        );
        assert_eq!(
            b.next(2, Duration::from_millis(5_100), t, 0.0),
            None,
            "wait + attempt > left"
        );
    }

    #[test]
    fn rate_window_allows_30_a_minute_per_member() {
        let mut w = RateWindow::wecom(30);
        for i in 0..30 {
            assert!(w.try_take("u1", at(i)), "message {i}");
        }
        assert!(!w.try_take("u1", at(30)), "31st within the minute");
        assert!(w.try_take("u2", at(30)), "other members are separate");
        // The first slot frees at t = 60 (the window is (now - 60s, now]).
        assert!(!w.try_take("u1", at(59)));
        assert!(w.try_take("u1", at(60)));
        assert!(!w.try_take("u1", at(60)));
    }

    #[test]
    fn rate_window_hourly_limit() {
        let mut w = RateWindow::new(vec![
            RateLimit {
                limit: 2,
                per: chrono::Duration::minutes(1),
            },
            RateLimit {
                limit: 3,
                per: chrono::Duration::hours(1),
            },
        ]);
        assert!(w.try_take("u", at(0)));
        assert!(w.try_take("u", at(1)));
        assert!(!w.try_take("u", at(2)), "minute limit");
        assert!(w.try_take("u", at(61)));
        assert!(!w.try_take("u", at(200)), "hour limit");
        assert!(w.try_take("u", at(3600)), "first one left the hour");
    }

    #[test]
    fn wecom_answers() {
        let to: Vec<String> = vec!["a".into(), "b".into(), "c".into()];
        let reply = |errcode, invalid: &str| WecomReply {
            errcode,
            errmsg: "msg".into(),
            invaliduser: invalid.into(),
            unlicenseduser: String::new(),
        };
        assert_eq!(
            wecom_verdict(&reply(0, ""), &to),
            WecomVerdict::Sent { rejected: vec![] }
        );
        assert_eq!(
            wecom_verdict(&reply(0, "b|c"), &to),
            WecomVerdict::Sent {
                rejected: vec!["b".into(), "c".into()]
            }
        );
        let mut unlicensed = reply(0, "b");
        unlicensed.unlicenseduser = "b|a".into();
        assert_eq!(
            wecom_verdict(&unlicensed, &to),
            WecomVerdict::Sent {
                rejected: vec!["b".into(), "a".into()]
            }
        );
        assert_eq!(
            wecom_verdict(&reply(42001, ""), &to),
            WecomVerdict::TokenExpired
        );
        assert_eq!(
            wecom_verdict(&reply(40014, ""), &to),
            WecomVerdict::TokenExpired
        );
        assert_eq!(
            wecom_verdict(&reply(81013, ""), &to),
            WecomVerdict::Sent {
                rejected: to.clone()
            }
        );
        for code in [-1, 45009, 45033, 60020, 40013] {
            assert!(
                matches!(
                    wecom_verdict(&reply(code, ""), &to),
                    WecomVerdict::Failed(Failure::Transient(_))
                ),
                "{code}"
            );
        }
        let parsed: WecomReply =
            serde_json::from_str(r#"{"errcode":0,"errmsg":"ok","invaliduser":"x","msgid":"m"}"#)
                .unwrap();
        assert_eq!(parsed.invaliduser, "x");
    }

    #[test]
    fn tokens_are_refreshed_early() {
        assert_eq!(token_refresh_at(at(0), 7200), at(6900));
        assert_eq!(token_refresh_at(at(0), 60), at(54));
        assert_eq!(token_refresh_at(at(0), 0), at(0));
    }

    proptest! {
        #[test]
        fn delays_are_bounded_and_grow(retry in 0u32..40, j1 in 0.0f64..1.0) {
            let b = Backoff::default();
            let d = b.delay(retry, j1);
            prop_assert!(d <= b.max);
            prop_assert!(d >= b.base / 2);
            // Never shorter than half the previous step's longest wait.
            if retry > 0 {
                prop_assert!(d >= b.delay(retry - 1, 1.0) / 2);
            }
        }

        #[test]
        fn retries_fit_the_time_left(
            budget_ms in 0u64..60_000,
            timeout_ms in 1u64..10_000,
            jitters in prop::collection::vec(0.0f64..1.0, 10),
        ) {
            // Simulate worst cases: each attempt takes its whole timeout.
            let b = Backoff::default();
            let timeout = Duration::from_millis(timeout_ms);
            let mut left = Duration::from_millis(budget_ms);
            let mut attempts = 0;
            while let Some(wait) = b.next(attempts, left, timeout, jitters[attempts as usize]) {
                left = left.checked_sub(wait + timeout).expect("never overruns the budget");
                attempts += 1;
            }
            prop_assert!(attempts <= b.max_attempts);
        }

        #[test]
        fn never_more_than_the_limit_in_any_minute(
            gaps in prop::collection::vec(0i64..5, 1..300),
        ) {
            let mut w = RateWindow::wecom(30);
            let mut t = 0;
            let mut taken = Vec::new();
            for g in gaps {
                t += g;
                if w.try_take("m", at(t)) {
                    taken.push(t);
                }
            }
            for (i, start) in taken.iter().enumerate() {
                let in_minute = taken[i..].iter().take_while(|x| **x < start + 60).count();
                prop_assert!(in_minute <= 30, "{} in the minute from {}", in_minute, start);
            }
        }
    }
}
