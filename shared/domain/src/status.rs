//! Status events posted by sales consultants, and how they move a lead
//! through the funnel (docs/api.md): assigned -> contacted -> invited ->
//! visited -> won, with lost and invalid as exits from any open stage.
//!
//! Events are delivered at least once, so repeating the event that produced
//! the current status is accepted and changes nothing.

use serde::{Deserialize, Serialize};

use crate::lead::LeadStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusEvent {
    /// First contact made (stops the first-contact SLA clock).
    Contacted,
    /// Customer invited to the showroom (邀约).
    Invited,
    /// Customer came to the showroom (到店).
    Visited,
    /// Car sold (成交).
    Won,
    /// Customer bought elsewhere or gave up (战败).
    Lost,
    /// 线索有效性标记: a real prospect. Recorded for metrics; the status stays.
    MarkedValid,
    /// 线索有效性标记: fake, wrong number, not a buyer. Closes the lead.
    MarkedInvalid,
}

/// A consultant's request to close the lead as lost, waiting for a manager
/// of the dealer (`Brand::lost_approval`). The lead stays open meanwhile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LostRequest {
    /// The brand's reason code, checked when requested.
    pub reason: String,
    /// The consultant who asked.
    pub by: String,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// Whether `event` by someone of `role` waits for a manager's approval
/// instead of applying: a consultant's `lost`, where the brand audits them.
pub fn needs_approval(
    event: StatusEvent,
    role: crate::directory::StaffRole,
    brand: &crate::directory::Brand,
) -> bool {
    event == StatusEvent::Lost
        && brand.lost_approval
        && role != crate::directory::StaffRole::Manager
}

/// A closing event's reason code, checked against the brand's list. The
/// messages list the allowed codes and never repeat what was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReasonError {
    #[error("{event:?} needs a reason, one of {allowed:?}")]
    Required {
        event: StatusEvent,
        allowed: Vec<String>,
    },
    #[error("not a reason code of this brand; one of {allowed:?}")]
    Unknown { allowed: Vec<String> },
    #[error("only lost and marked_invalid take a reason")]
    NotExpected,
}

/// The reason recorded with `event`: `lost` and `marked_invalid` need one
/// of the brand's codes; other events take none.
pub fn close_reason(
    event: StatusEvent,
    reason: Option<&str>,
    brand: &crate::directory::Brand,
) -> Result<Option<String>, ReasonError> {
    let allowed = match event {
        StatusEvent::Lost => &brand.lost_reasons,
        StatusEvent::MarkedInvalid => &brand.invalid_reasons,
        _ => {
            return match reason {
                None => Ok(None),
                Some(_) => Err(ReasonError::NotExpected),
            }
        }
    };
    match reason {
        None => Err(ReasonError::Required {
            event,
            allowed: allowed.clone(),
        }),
        Some(r) if allowed.iter().any(|a| a == r) => Ok(Some(r.to_string())),
        Some(_) => Err(ReasonError::Unknown {
            allowed: allowed.clone(),
        }),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("lead is {from:?}; {event:?} is not allowed")]
    NotAllowed {
        from: LeadStatus,
        event: StatusEvent,
    },
}

/// The lead's status after `event`, or why the event does not apply.
///
/// - Assigned -> Contacted; Contacted -> Invited or Visited (a walk-in needs no
///   invitation); Invited -> Visited; Visited -> Won.
/// - Lost, MarkedInvalid (-> Invalid) and MarkedValid (status unchanged) are
///   allowed at any open stage (see [`is_open`]).
/// - The event that produced the current status may come again (redelivery):
///   Ok with the status unchanged. This includes Won on Won, Lost on Lost and
///   MarkedInvalid on Invalid; anything else on Won, Lost or Invalid fails.
/// - New, Offered and Unroutable leads have no assignee, so no consultant
///   event applies to them.
pub fn apply(current: LeadStatus, event: StatusEvent) -> Result<LeadStatus, TransitionError> {
    use LeadStatus as S;
    use StatusEvent as E;

    if produced_by(event) == Some(current) {
        return Ok(current);
    }
    let next = match (current, event) {
        (S::Assigned, E::Contacted) => S::Contacted,
        (S::Contacted, E::Invited) => S::Invited,
        (S::Contacted | S::Invited, E::Visited) => S::Visited,
        (S::Visited, E::Won) => S::Won,
        (open, E::Lost) if is_open(open) => S::Lost,
        (open, E::MarkedInvalid) if is_open(open) => S::Invalid,
        (open, E::MarkedValid) if is_open(open) => open,
        (from, event) => return Err(TransitionError::NotAllowed { from, event }),
    };
    Ok(next)
}

/// The status an event leads to when it applies; `None` for MarkedValid,
/// which leaves the status alone.
fn produced_by(event: StatusEvent) -> Option<LeadStatus> {
    match event {
        StatusEvent::Contacted => Some(LeadStatus::Contacted),
        StatusEvent::Invited => Some(LeadStatus::Invited),
        StatusEvent::Visited => Some(LeadStatus::Visited),
        StatusEvent::Won => Some(LeadStatus::Won),
        StatusEvent::Lost => Some(LeadStatus::Lost),
        StatusEvent::MarkedInvalid => Some(LeadStatus::Invalid),
        StatusEvent::MarkedValid => None,
    }
}

/// Whether the lead counts toward its consultant's open leads (their cap):
/// assigned and neither closed nor back in a pool.
pub fn is_open(status: LeadStatus) -> bool {
    matches!(
        status,
        LeadStatus::Assigned | LeadStatus::Contacted | LeadStatus::Invited | LeadStatus::Visited
    )
}

/// Closed for good: no event moves the lead on. A lead merged into another
/// one is closed too (its customer lives on in the surviving lead).
pub fn is_terminal(status: LeadStatus) -> bool {
    matches!(
        status,
        LeadStatus::Won | LeadStatus::Lost | LeadStatus::Invalid | LeadStatus::Merged
    )
}

/// Whether the event is progress in the funnel: Contacted, Invited, Visited or
/// Won. Progress keeps the consultant's exclusive follow-up right (without
/// progress for the exclusivity period the lead returns to the pool). Lost and
/// the validity marks are not progress.
///
/// This looks at the event only: a redelivered event is still "progress", so
/// callers should skip events they have already recorded (by event id).
pub fn is_progress(event: StatusEvent) -> bool {
    matches!(
        event,
        StatusEvent::Contacted | StatusEvent::Invited | StatusEvent::Visited | StatusEvent::Won
    )
}

/// What a status event does to a lead: the new status and what goes with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub next: LeadStatus,
    /// The validity mark it sets (marked valid / invalid).
    pub valid: Option<bool>,
    /// The reason code it closes with (lost, invalid).
    pub reason: Option<String>,
    /// Funnel progress (renews the exclusivity).
    pub progress: bool,
    /// It closes an open lead (frees a slot under the consultant's cap).
    pub closes: bool,
}

/// Why an event cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    #[error(transparent)]
    Reason(#[from] ReasonError),
    #[error(transparent)]
    Transition(#[from] TransitionError),
}

/// What `event` (with `reason`) does to a lead in `current` status, for any
/// actor (a consultant through the API, the brand's CRM): None when it is a
/// repeat that changes nothing.
pub fn change(
    current: LeadStatus,
    event: StatusEvent,
    reason: Option<&str>,
    brand: &crate::directory::Brand,
) -> Result<Option<Change>, ChangeError> {
    let reason = close_reason(event, reason, brand)?;
    let next = apply(current, event)?;
    if next == current && event != StatusEvent::MarkedValid {
        return Ok(None);
    }
    Ok(Some(Change {
        next,
        valid: match event {
            StatusEvent::MarkedValid => Some(true),
            StatusEvent::MarkedInvalid => Some(false),
            _ => None,
        },
        reason,
        progress: is_progress(event),
        closes: is_open(current) && !is_open(next),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use LeadStatus as S;
    use StatusEvent as E;

    #[test]
    fn only_a_consultants_lost_waits_and_only_where_the_brand_audits_them() {
        use crate::directory::StaffRole;
        let mut brand = crate::directory::Brand::with_defaults("b");
        assert!(!needs_approval(E::Lost, StaffRole::Sales, &brand));
        brand.lost_approval = true;
        assert!(needs_approval(E::Lost, StaffRole::Sales, &brand));
        assert!(needs_approval(E::Lost, StaffRole::Dcc, &brand));
        assert!(!needs_approval(E::Lost, StaffRole::Manager, &brand));
        for other in [E::Contacted, E::Won, E::MarkedInvalid, E::MarkedValid] {
            assert!(
                !needs_approval(other, StaffRole::Sales, &brand),
                "{other:?}"
            );
        }
    }

    #[test]
    fn closing_needs_a_reason_of_the_brand_and_nothing_else_takes_one() {
        let mut brand = crate::directory::Brand::with_defaults("b");
        brand.lost_reasons = vec!["price".into(), "unreachable".into()];
        assert_eq!(
            close_reason(E::Lost, Some("price"), &brand),
            Ok(Some("price".into()))
        );
        // A default code the brand dropped is unknown; the message lists the
        // brand's codes and never repeats what was sent.
        let err = close_reason(E::Lost, Some("13812345678"), &brand).unwrap_err();
        assert!(matches!(err, ReasonError::Unknown { .. }));
        assert!(err.to_string().contains("unreachable") && !err.to_string().contains("138"));
        assert!(matches!(
            close_reason(E::Lost, Some("postponed"), &brand),
            Err(ReasonError::Unknown { .. })
        ));
        assert!(matches!(
            close_reason(E::MarkedInvalid, None, &brand),
            Err(ReasonError::Required { .. })
        ));
        assert_eq!(
            close_reason(E::MarkedInvalid, Some("wrong_number"), &brand),
            Ok(Some("wrong_number".into()))
        );
        assert_eq!(close_reason(E::Contacted, None, &brand), Ok(None));
        assert_eq!(
            close_reason(E::Contacted, Some("price"), &brand),
            Err(ReasonError::NotExpected)
        );
    }

    const ALL_STATUSES: [LeadStatus; 11] = [
        S::New,
        S::Offered,
        S::Assigned,
        S::Contacted,
        S::Invited,
        S::Visited,
        S::Won,
        S::Lost,
        S::Invalid,
        S::Unroutable,
        S::Merged,
    ];

    const ALL_EVENTS: [StatusEvent; 7] = [
        E::Contacted,
        E::Invited,
        E::Visited,
        E::Won,
        E::Lost,
        E::MarkedValid,
        E::MarkedInvalid,
    ];

    /// The full table, written out independently of `apply`'s match:
    /// every (status, event) pair not listed here must fail.
    const ALLOWED: &[(LeadStatus, StatusEvent, LeadStatus)] = &[
        (S::Assigned, E::Contacted, S::Contacted),
        (S::Assigned, E::Lost, S::Lost),
        (S::Assigned, E::MarkedValid, S::Assigned),
        (S::Assigned, E::MarkedInvalid, S::Invalid),
        (S::Contacted, E::Contacted, S::Contacted),
        (S::Contacted, E::Invited, S::Invited),
        (S::Contacted, E::Visited, S::Visited),
        (S::Contacted, E::Lost, S::Lost),
        (S::Contacted, E::MarkedValid, S::Contacted),
        (S::Contacted, E::MarkedInvalid, S::Invalid),
        (S::Invited, E::Invited, S::Invited),
        (S::Invited, E::Visited, S::Visited),
        (S::Invited, E::Lost, S::Lost),
        (S::Invited, E::MarkedValid, S::Invited),
        (S::Invited, E::MarkedInvalid, S::Invalid),
        (S::Visited, E::Visited, S::Visited),
        (S::Visited, E::Won, S::Won),
        (S::Visited, E::Lost, S::Lost),
        (S::Visited, E::MarkedValid, S::Visited),
        (S::Visited, E::MarkedInvalid, S::Invalid),
        // Redelivery of the closing event.
        (S::Won, E::Won, S::Won),
        (S::Lost, E::Lost, S::Lost),
        (S::Invalid, E::MarkedInvalid, S::Invalid),
    ];

    #[test]
    fn full_transition_table() {
        for from in ALL_STATUSES {
            for event in ALL_EVENTS {
                let expected = ALLOWED
                    .iter()
                    .find(|(f, e, _)| *f == from && *e == event)
                    .map(|(_, _, to)| *to)
                    .ok_or(TransitionError::NotAllowed { from, event });
                assert_eq!(apply(from, event), expected, "{from:?} + {event:?}");
            }
        }
    }

    #[test]
    fn no_events_without_an_assignee() {
        for from in [S::New, S::Offered, S::Unroutable, S::Merged] {
            for event in ALL_EVENTS {
                assert!(apply(from, event).is_err(), "{from:?} + {event:?}");
            }
        }
    }

    #[test]
    fn open_terminal_and_progress() {
        let open: Vec<_> = ALL_STATUSES.into_iter().filter(|s| is_open(*s)).collect();
        assert_eq!(open, [S::Assigned, S::Contacted, S::Invited, S::Visited]);
        let terminal: Vec<_> = ALL_STATUSES
            .into_iter()
            .filter(|s| is_terminal(*s))
            .collect();
        assert_eq!(terminal, [S::Won, S::Lost, S::Invalid, S::Merged]);
        let progress: Vec<_> = ALL_EVENTS.into_iter().filter(|e| is_progress(*e)).collect();
        assert_eq!(progress, [E::Contacted, E::Invited, E::Visited, E::Won]);
    }

    #[test]
    fn error_message_and_serde() {
        let err = apply(S::Won, E::Contacted).unwrap_err();
        assert_eq!(err.to_string(), "lead is Won; Contacted is not allowed");
        assert_eq!(
            serde_json::to_string(&E::MarkedInvalid).unwrap(),
            "\"marked_invalid\""
        );
        assert_eq!(
            serde_json::from_str::<StatusEvent>("\"visited\"").unwrap(),
            E::Visited
        );
    }

    /// Position in the funnel; `None` for statuses outside it.
    fn funnel_stage(status: LeadStatus) -> Option<u8> {
        match status {
            S::Assigned => Some(0),
            S::Contacted => Some(1),
            S::Invited => Some(2),
            S::Visited => Some(3),
            S::Won => Some(4),
            _ => None,
        }
    }

    proptest! {
        #[test]
        fn events_never_leave_a_terminal_state_or_go_backwards(
            start in prop::sample::select(ALL_STATUSES.to_vec()),
            events in prop::collection::vec(prop::sample::select(ALL_EVENTS.to_vec()), 0..30),
        ) {
            let mut status = start;
            for event in events {
                let Ok(next) = apply(status, event) else {
                    continue; // rejected: the status stays as it was
                };
                if is_terminal(status) {
                    prop_assert_eq!(next, status, "left terminal {:?} on {:?}", status, event);
                }
                if let (Some(before), Some(after)) = (funnel_stage(status), funnel_stage(next)) {
                    prop_assert!(after >= before, "{:?} -> {:?} on {:?}", status, next, event);
                }
                // Statuses without an assignee never move.
                if matches!(status, S::New | S::Offered | S::Unroutable) {
                    prop_assert!(false, "{:?} accepted {:?}", status, event);
                }
                // Applying the same event again is a no-op (redelivery).
                prop_assert_eq!(apply(next, event), Ok(next));
                status = next;
            }
        }
    }
}
