//! The leads table's part of erasing a customer (`store::erasure`, which
//! finds the customer's leads and calls these).

use aws_sdk_dynamodb::types::{Delete, DeleteRequest, WriteRequest};
use leads_domain::audit::AuditEvent;

use super::*;

impl DynamoLeads {
    /// The lead as stored and the leads merged into it (`absorbed_leads`,
    /// appended by a lead merge so that an erasure can find them).
    pub async fn lead_and_absorbed(
        &self,
        lead_id: &str,
    ) -> Result<Option<(LeadRecord, Vec<String>)>, StoreError> {
        let Some(item) = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(keys::lead(lead_id).primary()))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::dynamodb)?
            .item
        else {
            return Ok(None);
        };
        let absorbed = item
            .get("absorbed_leads")
            .and_then(|v| v.as_l().ok())
            .map(|l| l.iter().filter_map(|v| v.as_s().ok().cloned()).collect())
            .unwrap_or_default();
        Ok(Some((from_item(item)?, absorbed)))
    }

    /// Deletes the lead's touchpoints and its follow-up reminder. Returns
    /// the touchpoints, for the raw payloads they name.
    pub async fn delete_touchpoints(&self, lead_id: &str) -> Result<Vec<Touchpoint>, StoreError> {
        let touches = self.touchpoints(lead_id).await?;
        let deletes: Vec<WriteRequest> = touches
            .iter()
            .map(|t| keys::touchpoint(lead_id, t))
            .chain([keys::follow_up_reminder(lead_id)])
            .map(|k| {
                WriteRequest::builder()
                    .delete_request(
                        DeleteRequest::builder()
                            .set_key(Some(k.primary()))
                            .build()
                            .expect("key is set"),
                    )
                    .build()
            })
            .collect();
        for chunk in deletes.chunks(25) {
            super::super::item::write_chunk(&self.client, &self.table, chunk.to_vec()).await?;
        }
        Ok(touches)
    }

    /// Deletes a customer's identity item; true if there was one.
    pub async fn delete_identity(&self, customer_key: &str) -> Result<bool, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(keys::customer(customer_key.to_string()).primary()))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(StoreError::dynamodb)?;
        Ok(out.attributes.is_some())
    }

    /// Deletes the lead as read, with its consultant's slot freed if it was
    /// open and `event` audited, in one transaction; a lead changed meanwhile
    /// is read again (gone: erased meanwhile).
    pub async fn delete_lead(
        &self,
        read: &LeadRecord,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        // The transaction's items, by position.
        const LEAD: usize = 0;
        const SLOT: usize = 2;
        let audit = self.audit_put(event)?;
        let mut lead = read.clone();
        // False once the slot counter was found at 0 (nothing to free).
        let mut free_slot = true;
        for _attempt in 0..5 {
            let delete = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(keys::lead(&lead.lead_id).primary()))
                .condition_expression("#status = :seen")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":seen", s(wire_name(&lead.status)))
                .build()
                .expect("table and key are set");
            let mut items = vec![
                TransactWriteItem::builder().delete(delete).build(),
                audit.clone(),
            ];
            if let (true, true, Some(dealer), Some(staff)) = (
                free_slot,
                status::is_open(lead.status),
                &lead.dealer_id,
                &lead.assignee,
            ) {
                items.push(self.release_slot(dealer, staff));
            }
            let err = match self.transact(items).await {
                Ok(_) => return Ok(()),
                Err(err) => err,
            };
            match cancelled(&err) {
                Some(reasons) => {
                    if failed(&reasons, SLOT) {
                        free_slot = false;
                    }
                    if failed(&reasons, LEAD) {
                        match self.get(&lead.lead_id).await? {
                            None => return Ok(()),
                            Some(fresh) => lead = fresh,
                        }
                    }
                }
                None => match transaction_failed(err) {
                    // A concurrent write to the lead or the counter: again.
                    StoreError::Conflict { .. } => {}
                    other => return Err(other),
                },
            }
        }
        Err(StoreError::Conflict {
            operation: "erasing a lead",
        })
    }
}
