//! A dealer manager hands an open lead to another consultant of the dealer
//! (cover during leave, a consultant who left, a DCC -> sales hand-off), or
//! all of one consultant's open leads at once.
//! Who may do it and to whom is decided here; the store moves both cap
//! counters and writes the audit entry in one transaction.

use crate::assignment::StaffLoad;
use crate::directory::{Staff, StaffRole};
use crate::lead::LeadRecord;
use crate::status;

/// Why a transfer is refused (each maps to one API answer).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Only a manager of the lead's dealer moves its leads.
    #[error("only a manager of the lead's dealer may transfer it")]
    NotManager,
    /// Closed, merged, or never assigned (a pool lead is assigned by the router).
    #[error("only an open, assigned lead can be transferred")]
    NotOpen,
    #[error("the consultant is not on this dealer's staff")]
    UnknownConsultant,
    #[error("the lead is already with that consultant")]
    SameConsultant,
    /// Off duty, not a sales consultant, or at their cap.
    #[error("that consultant cannot take a lead now (off duty, not sales, or at their cap)")]
    CannotTake,
    /// A DCC hand-off by someone who is not the DCC agent holding the lead.
    #[error("only the DCC agent holding the lead hands it to sales")]
    NotScreener,
}

/// Who moves a lead, and so which rule applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandOff {
    /// A manager gives one lead to a named consultant.
    Transfer,
    /// A manager moves all of a consultant's open leads; `left`: the
    /// consultant left the company (their WeCom contacts move by WeCom's
    /// resigned-member transfer).
    Handover { left: bool },
    /// A DCC agent, having screened the lead, gives it to sales.
    DccHandoff,
}

impl HandOff {
    /// Whether `actor` may give `lead` to `target` this way.
    pub fn check(
        self,
        actor: &Staff,
        lead: &LeadRecord,
        target: Option<&StaffLoad>,
    ) -> Result<(), Refusal> {
        match self {
            HandOff::Transfer | HandOff::Handover { .. } => check_transfer(actor, lead, target),
            HandOff::DccHandoff => check_dcc_handoff(actor, lead, target),
        }
    }

    /// How the audit entry names it.
    pub fn describe(self) -> &'static str {
        match self {
            HandOff::Transfer => "transferred by manager",
            HandOff::Handover { .. } => "handed over by manager",
            HandOff::DccHandoff => "screened and handed to sales by DCC",
        }
    }

    /// Whether the consultant the lead leaves has left the company.
    pub fn from_resigned(self) -> bool {
        matches!(self, HandOff::Handover { left: true })
    }
}

/// Whether `manager` may give `lead` to `target` (its load, from the
/// dealer's roster and counters; `None`: not on the roster).
pub fn check_transfer(
    manager: &Staff,
    lead: &LeadRecord,
    target: Option<&StaffLoad>,
) -> Result<(), Refusal> {
    if manager.role != StaffRole::Manager || lead.dealer_id.as_deref() != Some(&manager.dealer_id) {
        return Err(Refusal::NotManager);
    }
    check_target(lead, target)
}

/// Whether the DCC agent `screener` may give `lead` (theirs) to `target`,
/// a sales consultant of the dealer who can take it.
pub fn check_dcc_handoff(
    screener: &Staff,
    lead: &LeadRecord,
    target: Option<&StaffLoad>,
) -> Result<(), Refusal> {
    if screener.role != StaffRole::Dcc
        || lead.dealer_id.as_deref() != Some(&screener.dealer_id)
        || lead.assignee.as_deref() != Some(&screener.staff_id)
    {
        return Err(Refusal::NotScreener);
    }
    check_target(lead, target)
}

/// An open, assigned lead going to someone else who can take it.
fn check_target(lead: &LeadRecord, target: Option<&StaffLoad>) -> Result<(), Refusal> {
    if !status::is_open(lead.status) || lead.assignee.is_none() {
        return Err(Refusal::NotOpen);
    }
    let target = target.ok_or(Refusal::UnknownConsultant)?;
    if lead.assignee.as_deref() == Some(target.staff_id.as_str()) {
        return Err(Refusal::SameConsultant);
    }
    if !target.can_take() {
        return Err(Refusal::CannotTake);
    }
    Ok(())
}

/// Who covers the leads of `leaving` when the manager names nobody: the
/// sales consultant on duty with the most free slots under their cap (ties:
/// the lower staff id), never `leaving` themselves.
pub fn pick_cover<'a>(loads: &'a [StaffLoad], leaving: &str) -> Option<&'a StaffLoad> {
    loads
        .iter()
        .filter(|l| l.staff_id != leaving && l.can_take())
        .min_by(|a, b| {
            (b.cap - b.open_leads)
                .cmp(&(a.cap - a.open_leads))
                .then_with(|| a.staff_id.cmp(&b.staff_id))
        })
}

#[cfg(test)]
mod dcc_tests {
    use super::*;
    use crate::lead::LeadStatus;

    #[test]
    fn only_the_dcc_agent_holding_the_lead_hands_it_to_a_free_sales_consultant() {
        let person = |id: &str, role: StaffRole| -> Staff {
            serde_json::from_value(serde_json::json!({
                "staff_id": id, "dealer_id": "d1", "name": id, "role": role, "on_duty": true, "cap": 5
            }))
            .unwrap()
        };
        let mut lead: LeadRecord = serde_json::from_value(serde_json::json!({
            "lead_id": "L1", "brand_id": "b1", "status": "contacted",
            "customer": {"kind": "phone", "hash": "h"},
            "first_touch": {"platform": "douyin", "account_id": "a", "scene": "live",
                "traffic": "natural", "at": "2026-12-03T00:00:00Z", "source_event_id": "e"},
            "touchpoints": 1, "dealer_id": "d1", "assignee": "dcc1",
            "raw_payload_ref": "RAW#1", "received_at": "2026-12-03T00:00:00Z"
        }))
        .unwrap();
        let load = |id: &str, role: StaffRole| StaffLoad {
            staff_id: id.into(),
            role,
            on_duty: true,
            cap: 5,
            open_leads: 0,
        };
        let (dcc, other_dcc, sales) = (
            person("dcc1", StaffRole::Dcc),
            person("dcc2", StaffRole::Dcc),
            person("s1", StaffRole::Sales),
        );
        let to_sales = load("s1", StaffRole::Sales);
        assert_eq!(
            HandOff::DccHandoff.check(&dcc, &lead, Some(&to_sales)),
            Ok(())
        );
        for actor in [&other_dcc, &sales] {
            assert_eq!(
                HandOff::DccHandoff.check(actor, &lead, Some(&to_sales)),
                Err(Refusal::NotScreener)
            );
        }
        assert_eq!(
            HandOff::DccHandoff.check(&dcc, &lead, Some(&load("dcc2", StaffRole::Dcc))),
            Err(Refusal::CannotTake),
            "to sales only"
        );
        lead.status = LeadStatus::Won;
        assert_eq!(
            HandOff::DccHandoff.check(&dcc, &lead, Some(&to_sales)),
            Err(Refusal::NotOpen)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lead::LeadStatus;

    fn staff(id: &str, dealer: &str, role: StaffRole) -> Staff {
        serde_json::from_value(serde_json::json!({
            "staff_id": id, "dealer_id": dealer, "name": id, "role": role, "on_duty": true, "cap": 5
        }))
        .unwrap()
    }

    fn load(id: &str, open: u32, on_duty: bool) -> StaffLoad {
        StaffLoad {
            staff_id: id.into(),
            role: StaffRole::Sales,
            on_duty,
            cap: 5,
            open_leads: open,
        }
    }

    fn lead(status: LeadStatus, assignee: Option<&str>) -> LeadRecord {
        let mut l: LeadRecord = serde_json::from_value(serde_json::json!({
            "lead_id": "L1", "brand_id": "b", "status": status,
            "customer": {"kind": "phone", "hash": "h"},
            "first_touch": {"platform": "douyin", "account_id": "a", "scene": "live",
                "traffic": "natural", "at": "2026-12-01T00:00:00Z", "source_event_id": "e"},
            "touchpoints": 1, "dealer_id": "d1",
            "raw_payload_ref": "RAW#x", "received_at": "2026-12-01T00:00:00Z"
        }))
        .unwrap();
        l.assignee = assignee.map(str::to_string);
        l
    }

    #[test]
    fn a_manager_of_the_dealer_moves_an_open_lead_to_a_free_colleague() {
        let m = staff("m", "d1", StaffRole::Manager);
        let l = lead(LeadStatus::Contacted, Some("s1"));
        assert_eq!(check_transfer(&m, &l, Some(&load("s2", 4, true))), Ok(()));
    }

    #[test]
    fn the_cover_is_the_free_est_colleague_on_duty() {
        let loads = [
            load("leaver", 0, true),
            load("b", 1, true),
            load("a", 1, true),
            load("c", 0, false),
            load("d", 5, true),
        ];
        // a and b have 4 free slots each: the lower id; c is off duty, d full.
        assert_eq!(pick_cover(&loads, "leaver").unwrap().staff_id, "a");
        assert!(pick_cover(&loads[3..], "leaver").is_none());
    }

    #[test]
    fn each_refusal() {
        let m = staff("m", "d1", StaffRole::Manager);
        let open = lead(LeadStatus::Assigned, Some("s1"));
        let free = load("s2", 0, true);
        // A consultant, or another dealer's manager.
        for who in [
            staff("s1", "d1", StaffRole::Sales),
            staff("m2", "d2", StaffRole::Manager),
        ] {
            assert_eq!(
                check_transfer(&who, &open, Some(&free)),
                Err(Refusal::NotManager)
            );
        }
        for l in [
            lead(LeadStatus::Won, Some("s1")),
            lead(LeadStatus::Merged, Some("s1")),
            lead(LeadStatus::New, None),
        ] {
            assert_eq!(check_transfer(&m, &l, Some(&free)), Err(Refusal::NotOpen));
        }
        assert_eq!(
            check_transfer(&m, &open, None),
            Err(Refusal::UnknownConsultant)
        );
        assert_eq!(
            check_transfer(&m, &open, Some(&load("s1", 0, true))),
            Err(Refusal::SameConsultant)
        );
        for target in [load("s2", 5, true), load("s2", 0, false)] {
            assert_eq!(
                check_transfer(&m, &open, Some(&target)),
                Err(Refusal::CannotTake)
            );
        }
    }
}
