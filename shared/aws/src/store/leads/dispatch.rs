//! The brand's team places an unrouted lead (the brand CRM's `dispatch`):
//! the lead takes the dealer, a route, and the dealer's index entry in one
//! conditional update, only while it is still unrouted. Assignment follows
//! as for any routed lead (`assign`).

use super::*;

impl DynamoLeads {
    /// Gives the unrouted `lead` (as read) to `dealer_id`: `None` if it is
    /// no longer unrouted (routed, superseded, erased) since read.
    pub async fn dispatch(
        &self,
        lead: &LeadRecord,
        dealer_id: &str,
    ) -> Result<Option<LeadRecord>, StoreError> {
        let mut placed = lead.clone();
        placed.status = LeadStatus::New;
        placed.dealer_id = Some(dealer_id.to_string());
        // The account's own dealer keeps it; any other dealer takes it as a
        // remote lead referred by that account (none for a brand account).
        placed.route = Some(match lead.account_dealer.as_deref() {
            Some(own) if own == dealer_id => Route::Local {
                dealer_id: dealer_id.to_string(),
            },
            referrer => Route::Remote {
                dealer_id: dealer_id.to_string(),
                referrer: referrer.map(str::to_string),
            },
        });
        let (index_pk, index_sk) = leads_domain::lead_list::index_entry(&placed)
            .expect("a lead with a dealer is listed under it");
        let route = serde_dynamo::to_attribute_value(placed.route.as_ref().expect("set above"))?;
        let written = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::lead(&lead.lead_id).primary()))
            .update_expression(
                "SET #status = :new, dealer_id = :dealer, #route = :route, \
                 gsi3pk = :index_pk, gsi3sk = :index_sk",
            )
            .condition_expression(
                "attribute_exists(pk) AND #status = :unroutable AND attribute_not_exists(merged_into)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#route", "route")
            .expression_attribute_values(":new", s(wire_name(&LeadStatus::New)))
            .expression_attribute_values(":unroutable", s(wire_name(&LeadStatus::Unroutable)))
            .expression_attribute_values(":dealer", s(dealer_id))
            .expression_attribute_values(":route", route)
            .expression_attribute_values(":index_pk", s(index_pk))
            .expression_attribute_values(":index_sk", s(index_sk))
            .send()
            .await;
        Ok(applied(written)?.then_some(placed))
    }
}
