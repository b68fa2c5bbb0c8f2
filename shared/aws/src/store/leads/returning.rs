//! A customer who comes back inside the window after their lead was closed
//! (won, lost, invalid) or while it sat unrouted (`dedup::returning_to`):
//! the delivery makes a new lead that continues the old one. The old lead
//! learns which (`reopened_as`, set once, in the new lead's transaction), so
//! a later delivery under another of the customer's keys, whose identity
//! still names the old lead, merges into the new one instead of making a
//! third.

use super::*;

/// Where the dedup loop merges a delivery, from what it learnt of the lead
/// the customer's identity names (`identity_lead`).
#[derive(Debug, Clone, Default)]
pub struct MergeTarget {
    identity_lead: Option<String>,
    /// The lead that continues the identity's closed one.
    into: Option<String>,
    /// The lead is unrouted and takes the touch anyway (the delivery could
    /// not be routed either).
    unrouted: bool,
}

impl MergeTarget {
    /// Forgets what was learnt when the identity now names another lead.
    pub fn reset_unless(&mut self, identity_lead: &str) {
        if self.identity_lead.as_deref() != Some(identity_lead) {
            *self = MergeTarget {
                identity_lead: Some(identity_lead.to_string()),
                ..MergeTarget::default()
            };
        }
    }

    /// The identity's lead was continued by `next`: merge there.
    pub fn follow(&mut self, identity_lead: &str, next: &str) {
        self.reset_unless(identity_lead);
        self.into = Some(next.to_string());
        self.unrouted = false;
    }

    /// The lead merged into may be unrouted.
    pub fn accept_unrouted(&mut self, identity_lead: &str) {
        self.reset_unless(identity_lead);
        self.unrouted = true;
    }

    /// The lead the delivery goes to.
    pub(super) fn lead<'a>(&'a self, identity_lead: &'a str) -> &'a str {
        self.into.as_deref().unwrap_or(identity_lead)
    }

    pub(super) fn takes_unrouted(&self) -> bool {
        self.unrouted
    }
}

/// A new lead that continues `holder` (closed or unrouted), for a customer
/// whose identity names `identity_lead` (the holder, or the lead it
/// continues).
#[derive(Debug, Clone, Copy)]
pub struct Returning<'a> {
    pub identity_lead: &'a str,
    pub holder: &'a LeadRecord,
}

impl Returning<'_> {
    /// Marks `record` as the holder's continuation; who had the customer
    /// comes along (as after the window).
    pub fn continue_in(&self, record: &mut LeadRecord) {
        record.returned_from = Some(self.holder.lead_id.clone());
        if self.holder.assignee.is_some() {
            record.previous_dealer = self.holder.dealer_id.clone();
            record.previous_assignee = self.holder.assignee.clone();
        }
    }

    /// Whether the new lead supersedes the holder (an unrouted lead is
    /// merged into it; a closed one stays closed).
    pub fn supersedes(&self) -> bool {
        self.holder.status == LeadStatus::Unroutable
    }
}

impl DynamoLeads {
    /// The holder's side of a continuation, in the new lead's transaction:
    /// it names the new lead, once, unchanged since read.
    pub(super) fn reopen_holder(
        &self,
        holder: &LeadRecord,
        new_lead_id: &str,
    ) -> TransactWriteItem {
        let expression = match holder.status {
            // Superseded: out of the SLA index and the brand's unrouted list.
            LeadStatus::Unroutable => {
                "SET #status = :merged, merged_into = :new, reopened_as = :new \
                 REMOVE gsi2pk, gsi2sk, gsi3pk, gsi3sk"
            }
            _ => "SET reopened_as = :new",
        };
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(keys::lead(&holder.lead_id).primary()))
            .update_expression(expression)
            .condition_expression(
                "attribute_exists(pk) AND attribute_not_exists(reopened_as) AND #status = :seen",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":new", s(new_lead_id))
            .expression_attribute_values(":seen", s(wire_name(&holder.status)));
        if holder.status == LeadStatus::Unroutable {
            update =
                update.expression_attribute_values(":merged", s(wire_name(&LeadStatus::Merged)));
        }
        TransactWriteItem::builder()
            .update(update.build().expect("table and key are set"))
            .build()
    }
}
