//! Follow-up (回访): after each call the consultant notes what was said, how
//! likely the customer is to buy (intent H/A/B/C/N, the dealers' usual
//! grades) and when to call next. The next call defaults to the brand's
//! cadence for that intent.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// The longest note kept (characters).
pub const MAX_NOTE_CHARS: usize = 500;
/// How far ahead a next call may be set.
pub const MAX_AHEAD_DAYS: i64 = 90;

/// 意向等级: H (buys within 7 days) to C, N (no intent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Intent {
    H,
    A,
    B,
    C,
    N,
}

/// Hours to the next call per intent (`None`: no next call by default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cadence {
    pub h: Option<u32>,
    pub a: Option<u32>,
    pub b: Option<u32>,
    pub c: Option<u32>,
    pub n: Option<u32>,
}

impl Default for Cadence {
    /// The guide's rhythm: a hot customer the next day, then wider.
    fn default() -> Self {
        Cadence {
            h: Some(24),
            a: Some(72),
            b: Some(168),
            c: Some(336),
            n: None,
        }
    }
}

impl Cadence {
    fn hours(&self, intent: Intent) -> Option<u32> {
        match intent {
            Intent::H => self.h,
            Intent::A => self.a,
            Intent::B => self.b,
            Intent::C => self.c,
            Intent::N => self.n,
        }
    }
}

/// A checked follow-up, ready to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowUp {
    /// Phones in it masked.
    pub note: String,
    pub intent: Intent,
    pub next_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FollowUpError {
    #[error("the note is empty or longer than {MAX_NOTE_CHARS} characters")]
    Note,
    #[error("next_at must be in the future and at most {MAX_AHEAD_DAYS} days ahead")]
    NextAt,
}

/// Checks a follow-up; `next_at` absent takes the cadence's default.
pub fn check(
    note: &str,
    intent: Intent,
    next_at: Option<DateTime<Utc>>,
    cadence: &Cadence,
    now: DateTime<Utc>,
) -> Result<FollowUp, FollowUpError> {
    let note = note.trim();
    if note.is_empty() || note.chars().count() > MAX_NOTE_CHARS {
        return Err(FollowUpError::Note);
    }
    let next_at = match next_at {
        Some(at) if at <= now || at > now + Duration::days(MAX_AHEAD_DAYS) => {
            return Err(FollowUpError::NextAt)
        }
        Some(at) => Some(at),
        None => cadence
            .hours(intent)
            .map(|h| now + Duration::hours(i64::from(h))),
    };
    Ok(FollowUp {
        note: crate::phone::mask_phones(note),
        intent,
        next_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 2, 2, 0, 0).unwrap()
    }

    #[test]
    fn the_cadence_sets_the_next_call_and_a_given_one_is_bounded() {
        let c = Cadence::default();
        let f = check("试驾意向强", Intent::H, None, &c, now()).unwrap();
        assert_eq!(f.next_at, Some(now() + Duration::hours(24)));
        assert_eq!(
            check("不买了", Intent::N, None, &c, now()).unwrap().next_at,
            None
        );
        let at = now() + Duration::days(3);
        assert_eq!(
            check("周末到店", Intent::A, Some(at), &c, now())
                .unwrap()
                .next_at,
            Some(at)
        );
        for bad in [
            now(),
            now() - Duration::hours(1),
            now() + Duration::days(91),
        ] {
            assert_eq!(
                check("x", Intent::A, Some(bad), &c, now()),
                Err(FollowUpError::NextAt)
            );
        }
        assert_eq!(
            check("x", Intent::A, Some(now() + Duration::days(90)), &c, now())
                .unwrap()
                .next_at,
            Some(now() + Duration::days(90))
        );
    }

    #[test]
    fn notes_are_bounded_and_phones_in_them_masked() {
        let c = Cadence::default();
        assert_eq!(
            check("  ", Intent::B, None, &c, now()),
            Err(FollowUpError::Note)
        );
        let long = "好".repeat(MAX_NOTE_CHARS + 1);
        assert_eq!(
            check(&long, Intent::B, None, &c, now()),
            Err(FollowUpError::Note)
        );
        let f = check("客户说打 13812345678 找他老婆", Intent::B, None, &c, now()).unwrap();
        assert!(!f.note.contains("13812345678"), "{}", f.note);
    }
}
