//! The leads table's key schema, in one place (layout on `LeadsTable` in template.yaml).

use super::*;

pub fn lead(lead_id: &str) -> Keys {
    Keys::new(format!("LEAD#{lead_id}"), "LEAD")
}
pub fn touchpoint(lead_id: &str, t: &Touchpoint) -> Keys {
    Keys::new(
        format!("LEAD#{lead_id}"),
        format!("TP#{}#{}", t.at.to_rfc3339(), t.source_event_id),
    )
}
/// A follow-up's reminder of the next call (indexed for the sweeper).
pub fn follow_up_reminder(lead_id: &str) -> Keys {
    Keys::new(format!("LEAD#{lead_id}"), "FOLLOWUP")
}
pub fn event(brand_id: &str, source_event_id: &str) -> Keys {
    Keys::new(format!("EVENT#{brand_id}#{source_event_id}"), "EVENT")
}
pub fn customer(customer_key: String) -> Keys {
    Keys::new(customer_key, "IDENTITY")
}
pub fn staff_counter(dealer_id: &str, staff_id: &str) -> Keys {
    Keys::new(format!("ASSIGN#{dealer_id}"), format!("STAFF#{staff_id}"))
}
pub fn ticket(dealer_id: &str) -> Keys {
    Keys::new(format!("ASSIGN#{dealer_id}"), "TICKET")
}
/// One of a dealer-day's lead-counter shards (see [`LEAD_COUNTER_SHARDS`]):
/// a live group-buy's leads for one dealer do not all write one item.
/// The ranking sums every item of the day (`DAY#<day>` and its shards).
pub fn dealer_day_shard(dealer_id: &str, day: chrono::NaiveDate, delivery: &str) -> Keys {
    let shard = delivery
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % LEAD_COUNTER_SHARDS;
    Keys::new(format!("DEALER#{dealer_id}"), format!("DAY#{day}#L{shard}"))
}
/// A Douyin natural lead or merged touch of the customer whose lead is
/// `lead_id`, on the dealer's account on `day` (read by the ranking with
/// the day's other items).
pub fn natural_marker(dealer_id: &str, day: chrono::NaiveDate, lead_id: &str) -> Keys {
    Keys::new(
        format!("DEALER#{dealer_id}"),
        format!("DAY#{day}#N#{lead_id}"),
    )
}
/// A lead marked invalid, in its brand's list (by the day it was received):
/// the ranking subtracts it from every dealer it counted for.
pub fn invalid_lead(brand_id: &str, day: chrono::NaiveDate, lead_id: &str) -> Keys {
    Keys::new(format!("INVALID#{brand_id}"), format!("{day}#{lead_id}"))
}
/// A dealer's remote leads received on a day (its own item: the remote
/// capacity check does not contend with the lead counters or content stats).
pub fn remote_day(dealer_id: &str, day: chrono::NaiveDate) -> Keys {
    Keys::new(format!("DEALER#{dealer_id}"), format!("REMOTE#{day}"))
}
#[allow(dead_code)]
pub fn dealer_day(dealer_id: &str, day: chrono::NaiveDate) -> Keys {
    Keys::new(format!("DEALER#{dealer_id}"), format!("DAY#{day}"))
}
pub fn overlap(brand_id: &str, day: chrono::NaiveDate, pair: String) -> Keys {
    Keys::new(format!("OVERLAP#{brand_id}#{day}"), pair)
}
