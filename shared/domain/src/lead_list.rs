//! `GET /leads`: who may list which of a dealer's leads, the query's
//! bounds, and the cursor that pages through it.
//!
//! Leads are listed per dealer, newest first, by the day they were received
//! (China time, like every day in this system), over at most
//! [`MAX_RANGE_DAYS`]. A consultant lists their own leads or the dealer's
//! pool (no assignee); a manager any of the dealer's. A cursor is bound to
//! the query it came from: used with another, it is refused.

use std::collections::HashMap;

use base64::Engine;
use chrono::{Duration, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::directory::{Staff, StaffRole};
use crate::lead::{LeadStatus, Touchpoint};
use crate::CityCode;

pub const MAX_RANGE_DAYS: i64 = 92;
pub const DEFAULT_DAYS: i64 = 7;
pub const MAX_LIMIT: u32 = 100;
pub const DEFAULT_LIMIT: u32 = 50;

/// Whose leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// Any (a manager who names nobody).
    Anyone,
    Staff(String),
    /// The dealer's pool: leads nobody holds.
    Pool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub dealer_id: String,
    pub holder: Holder,
    pub status: Option<LeadStatus>,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub limit: u32,
    /// Where the previous page stopped (the index's last evaluated key).
    pub after: Option<IndexKey>,
}

/// A position in the dealer index (what DynamoDB returns as the last
/// evaluated key of a query on it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexKey {
    pub pk: String,
    pub sk: String,
    pub gsi3pk: String,
    pub gsi3sk: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListError {
    /// 400: a parameter that does not parse (named, its value not repeated).
    #[error("parameter {0} is not valid")]
    Malformed(&'static str),
    /// 403: a consultant asking for someone else's leads, or another dealer's.
    #[error("a consultant lists only their own leads or the pool, of their own dealer")]
    NotYours,
    /// 422: `to` before `from`, or a range over the limit.
    #[error("the range must run forwards over at most {MAX_RANGE_DAYS} days")]
    Range,
    /// 400: a cursor from another query (or altered).
    #[error("the cursor belongs to another query")]
    Cursor,
}

/// A dealer's partition of the dealer index (`LeadsTable`'s `by_dealer`).
pub fn index_partition(dealer_id: &str) -> String {
    format!("DEALER#{dealer_id}")
}

/// The brand's leads no dealer could take, in the same index (listed by
/// nobody; the brand's KPIs count them).
pub fn unrouted_partition(brand_id: &str) -> String {
    format!("UNROUTED#{brand_id}")
}

/// Where `lead` stands in the dealer index: under its dealer once routed,
/// under its brand's unrouted partition when no dealer could take it, not
/// at all before it is routed.
pub fn index_entry(lead: &crate::lead::LeadRecord) -> Option<(String, String)> {
    match (&lead.dealer_id, lead.status) {
        (Some(dealer), _) => Some(index_keys(dealer, lead.received_at, &lead.lead_id)),
        (None, LeadStatus::Unroutable) => {
            let (_, sk) = index_keys("", lead.received_at, &lead.lead_id);
            Some((unrouted_partition(&lead.brand_id), sk))
        }
        (None, _) => None,
    }
}

/// The dealer index's keys of a lead.
pub fn index_keys(
    dealer_id: &str,
    received_at: chrono::DateTime<Utc>,
    lead_id: &str,
) -> (String, String) {
    (
        index_partition(dealer_id),
        format!(
            "{}#{lead_id}",
            received_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        ),
    )
}

/// Who lists: a dealer's staff member, or the brand's operations (who
/// name the dealer, and see all of its leads like its manager).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    pub staff_id: String,
    pub dealer_id: String,
    /// A manager, or brand operations: any of the dealer's leads.
    pub sees_whole_dealer: bool,
}

impl From<&Staff> for Viewer {
    fn from(me: &Staff) -> Viewer {
        Viewer {
            staff_id: me.staff_id.clone(),
            dealer_id: me.dealer_id.clone(),
            sees_whole_dealer: me.role == StaffRole::Manager,
        }
    }
}

/// The index sort-key bounds of the China days `from` to `to`: the start
/// of `from` and the start of the day after `to`.
pub fn day_bounds(from: NaiveDate, to: NaiveDate) -> (String, String) {
    let start = |day: NaiveDate| {
        let local = day.and_hms_opt(0, 0, 0).expect("midnight exists");
        (Utc.from_utc_datetime(&local) - Duration::hours(8))
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    };
    (start(from), start(to + Duration::days(1)))
}

/// The `from`/`to` of a query (China days, default the last
/// [`DEFAULT_DAYS`] to `today`), at most [`MAX_RANGE_DAYS`] long.
pub fn period(
    params: &HashMap<String, String>,
    today: NaiveDate,
) -> Result<(NaiveDate, NaiveDate), ListError> {
    let date = |name: &'static str| {
        params
            .get(name)
            .map(|v| {
                NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| ListError::Malformed(name))
            })
            .transpose()
    };
    let to = date("to")?.unwrap_or(today);
    let from = date("from")?.unwrap_or(to - Duration::days(DEFAULT_DAYS - 1));
    if to < from || (to - from).num_days() >= MAX_RANGE_DAYS {
        return Err(ListError::Range);
    }
    Ok((from, to))
}

impl ListQuery {
    /// The query `me` asks for with `params` (the URL's), today being `today`.
    /// `dealer`, if given, must be the viewer's.
    pub fn parse(
        params: &HashMap<String, String>,
        me: &Viewer,
        today: NaiveDate,
    ) -> Result<ListQuery, ListError> {
        const KNOWN: [&str; 8] = [
            "status", "assignee", "pool", "from", "to", "limit", "cursor", "dealer",
        ];
        if params.get("dealer").is_some_and(|d| *d != me.dealer_id) {
            return Err(ListError::NotYours);
        }
        if params.keys().any(|k| !KNOWN.contains(&k.as_str())) {
            return Err(ListError::Malformed("(unknown parameter)"));
        }
        let (from, to) = period(params, today)?;
        let status = params
            .get("status")
            .map(|v| {
                serde_json::from_value(serde_json::Value::String(v.clone()))
                    .map_err(|_| ListError::Malformed("status"))
            })
            .transpose()?;
        let limit = match params.get("limit") {
            None => DEFAULT_LIMIT,
            Some(v) => v
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or(ListError::Malformed("limit"))?,
        };
        let pool = match params.get("pool").map(String::as_str) {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => return Err(ListError::Malformed("pool")),
        };
        let named = params.get("assignee").map(|a| match a.as_str() {
            "me" => me.staff_id.clone(),
            other => other.to_string(),
        });
        let holder = match (pool, named) {
            (true, Some(_)) => return Err(ListError::Malformed("pool")),
            (true, None) => Holder::Pool,
            (false, Some(a)) => Holder::Staff(a),
            (false, None) if me.sees_whole_dealer => Holder::Anyone,
            (false, None) => Holder::Staff(me.staff_id.clone()),
        };
        let own = match &holder {
            Holder::Pool => true,
            Holder::Staff(a) => *a == me.staff_id,
            Holder::Anyone => false,
        };
        if !me.sees_whole_dealer && !own {
            return Err(ListError::NotYours);
        }
        let mut query = ListQuery {
            dealer_id: me.dealer_id.clone(),
            holder,
            status,
            from,
            to,
            limit,
            after: None,
        };
        if let Some(cursor) = params.get("cursor") {
            query.after = Some(query.open_cursor(cursor)?);
        }
        Ok(query)
    }

    /// The received-at bounds of the index query: from the start of `from`
    /// to the start of the day after `to`, China time, as index sort keys.
    pub fn bounds(&self) -> (String, String) {
        day_bounds(self.from, self.to)
    }

    /// What a cursor is bound to: every parameter but the cursor and the
    /// page size (an export pages the same query in larger pages).
    fn fingerprint(&self) -> String {
        let text = format!(
            "{}|{:?}|{:?}|{}|{}",
            self.dealer_id, self.holder, self.status, self.from, self.to
        );
        hex::encode(&sha2::Sha256::digest(text.as_bytes())[..12])
    }

    /// The cursor of the page after `last` (the query's last evaluated key).
    pub fn cursor(&self, last: &IndexKey) -> String {
        let body = serde_json::json!({ "q": self.fingerprint(), "k": last });
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(body.to_string())
    }

    fn open_cursor(&self, cursor: &str) -> Result<IndexKey, ListError> {
        #[derive(Deserialize)]
        struct Cursor {
            q: String,
            k: IndexKey,
        }
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(cursor)
            .map_err(|_| ListError::Cursor)?;
        let c: Cursor = serde_json::from_slice(&bytes).map_err(|_| ListError::Cursor)?;
        if c.q != self.fingerprint() || c.k.gsi3pk != index_partition(&self.dealer_id) {
            return Err(ListError::Cursor);
        }
        Ok(c.k)
    }
}

/// A cell of a CSV export as a spreadsheet must show it: text that Excel
/// would run as a formula (`=`, `+`, `-`, `@`, a tab or carriage return
/// first: OWASP's CSV injection) is prefixed with `'`, so a series name a
/// platform sent as `=HYPERLINK(...)` stays text.
pub fn spreadsheet_cell(text: String) -> String {
    match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{text}"),
        _ => text,
    }
}

/// One lead in a list: what the dealer index projects. No full phone and no
/// name (a name may hold a phone): `GET /leads/{id}` shows those to whom
/// may see them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeadSummary {
    pub lead_id: String,
    pub status: LeadStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_masked: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_city: Option<CityCode>,
    #[serde(default, deserialize_with = "crate::lead::distinct")]
    pub series_interest: Vec<String>,
    pub first_touch: Touchpoint,
    pub touchpoints: u32,
    pub received_at: chrono::DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_contact_due: Option<chrono::DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contacted_at: Option<chrono::DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<crate::followup::Intent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_follow_up_at: Option<chrono::DateTime<Utc>>,
    /// What the service KPIs need besides (`kpi`): where the lead went, from
    /// which dealer's account, what happened to it since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<crate::routing::Route>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_dealer: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub milestones: Vec<crate::lead::Milestone>,
}

/// The attributes the dealer index projects (`LeadsTable`, `by_dealer`, in
/// template.yaml): [`LeadSummary`]'s fields. DynamoDB allows 20.
pub const PROJECTED: [&str; 18] = [
    "lead_id",
    "status",
    "assignee",
    "phone_masked",
    "customer_city",
    "series_interest",
    "first_touch",
    "touchpoints",
    "received_at",
    "first_contact_due",
    "contacted_at",
    "valid",
    "close_reason",
    "intent",
    "next_follow_up_at",
    "route",
    "account_dealer",
    "milestones",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn staff(role: StaffRole) -> Viewer {
        let me: Staff = serde_json::from_value(serde_json::json!({
            "staff_id": "s1", "dealer_id": "d1", "name": "n", "role": role, "on_duty": true, "cap": 5
        }))
        .unwrap();
        Viewer::from(&me)
    }

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, 2).unwrap()
    }

    #[test]
    fn a_consultant_lists_their_own_or_the_pool_a_manager_anyones() {
        let sales = staff(StaffRole::Sales);
        let q = ListQuery::parse(&params(&[]), &sales, today()).unwrap();
        assert_eq!(q.holder, Holder::Staff("s1".into()));
        assert_eq!((q.from, q.to), (today() - Duration::days(6), today()));
        assert_eq!(
            ListQuery::parse(&params(&[("pool", "true")]), &sales, today())
                .unwrap()
                .holder,
            Holder::Pool
        );
        assert_eq!(
            ListQuery::parse(&params(&[("assignee", "s2")]), &sales, today()),
            Err(ListError::NotYours)
        );
        assert_eq!(
            ListQuery::parse(&params(&[("dealer", "d2")]), &sales, today()),
            Err(ListError::NotYours)
        );
        let manager = staff(StaffRole::Manager);
        assert_eq!(
            ListQuery::parse(&params(&[("dealer", "d2")]), &manager, today()),
            Err(ListError::NotYours)
        );
        assert_eq!(
            ListQuery::parse(&params(&[]), &manager, today())
                .unwrap()
                .holder,
            Holder::Anyone
        );
        assert_eq!(
            ListQuery::parse(&params(&[("assignee", "s2")]), &manager, today())
                .unwrap()
                .holder,
            Holder::Staff("s2".into())
        );
    }

    #[test]
    fn bad_parameters_and_ranges() {
        let me = staff(StaffRole::Manager);
        for (p, e) in [
            (
                vec![("status", "teleported")],
                ListError::Malformed("status"),
            ),
            (vec![("from", "2026-13-01")], ListError::Malformed("from")),
            (vec![("limit", "0")], ListError::Malformed("limit")),
            (vec![("limit", "101")], ListError::Malformed("limit")),
            (vec![("pool", "yes")], ListError::Malformed("pool")),
            (
                vec![("phone", "13812345678")],
                ListError::Malformed("(unknown parameter)"),
            ),
            (
                vec![("from", "2026-12-03"), ("to", "2026-12-02")],
                ListError::Range,
            ),
            (
                vec![("from", "2026-08-31"), ("to", "2026-12-01")],
                ListError::Range,
            ),
            (vec![("cursor", "bm90IGEgY3Vyc29y")], ListError::Cursor),
        ] {
            assert_eq!(ListQuery::parse(&params(&p), &me, today()), Err(e), "{p:?}");
        }
        // 92 days inclusive is the limit.
        assert!(ListQuery::parse(
            &params(&[("from", "2026-09-02"), ("to", "2026-12-02")]),
            &me,
            today()
        )
        .is_ok());
    }

    #[test]
    fn a_cursor_works_only_for_its_own_query() {
        let me = staff(StaffRole::Manager);
        let q = ListQuery::parse(&params(&[("status", "assigned")]), &me, today()).unwrap();
        let key = IndexKey {
            pk: "LEAD#L1".into(),
            sk: "LEAD".into(),
            gsi3pk: "DEALER#d1".into(),
            gsi3sk: "2026-12-01T00:00:00.000000Z#L1".into(),
        };
        let cursor = q.cursor(&key);
        let again = ListQuery::parse(
            &params(&[("status", "assigned"), ("cursor", &cursor)]),
            &me,
            today(),
        )
        .unwrap();
        assert_eq!(again.after, Some(key));
        assert_eq!(
            ListQuery::parse(
                &params(&[("status", "won"), ("cursor", &cursor)]),
                &me,
                today()
            ),
            Err(ListError::Cursor)
        );
    }

    #[test]
    fn export_cells_never_start_a_formula() {
        for (cell, shown) in [
            (
                "=HYPERLINK(\"http://x\",\"点我\")",
                "'=HYPERLINK(\"http://x\",\"点我\")",
            ),
            ("+1", "'+1"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("H6", "H6"),
            ("138****5678", "138****5678"),
            ("", ""),
        ] {
            assert_eq!(spreadsheet_cell(cell.to_string()), shown);
        }
    }

    #[test]
    fn bounds_are_china_days() {
        let me = staff(StaffRole::Manager);
        let q = ListQuery::parse(
            &params(&[("from", "2026-12-01"), ("to", "2026-12-01")]),
            &me,
            today(),
        )
        .unwrap();
        assert_eq!(
            q.bounds(),
            (
                "2026-11-30T16:00:00.000000Z".into(),
                "2026-12-01T16:00:00.000000Z".into()
            )
        );
    }
}
