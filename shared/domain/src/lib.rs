//! The lead back end's domain: plain Rust, no AWS types and no I/O.
//!
//! Handlers translate events into calls on this crate and its results back into
//! effects; everything here is unit- and property-tested without an emulator.

pub mod assignment;
pub mod attribution;
pub mod audit;
pub mod auth;
pub mod city;
pub mod crm;
pub mod decision;
pub mod dedup;
pub mod delivery;
pub mod directory;
pub mod directory_diff;
pub mod directory_file;
pub mod followup;
pub mod handoff;
pub mod identity;
pub mod intake;
pub mod kpi;
pub mod lead;
pub mod lead_list;
pub mod notification;
pub mod phone;
pub mod pool_notice;
pub mod ranking;
pub mod routing;
pub mod seal;
pub mod sla;
pub mod status;
pub mod tags;
pub mod templates;

pub use city::{City, CityCode};
pub use phone::{Phone, PhoneError};

/// The name a unit enum variant has on the wire (its serde name, e.g.
/// `"new_assignment"`), for keys and messages built from it.
pub fn wire_name<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => String::new(),
    }
}
