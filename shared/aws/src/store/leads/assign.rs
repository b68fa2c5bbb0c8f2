//! Assignment: open counts, the round-robin ticket, giving a lead to a consultant below cap, claim offers.

use super::*;

impl DynamoLeads {
    /// The dealer's next round-robin ticket (atomic counter).
    pub async fn next_ticket(&self, dealer_id: &str) -> Result<u64, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::ticket(dealer_id).primary()))
            .update_expression("ADD seq :one")
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(StoreError::dynamodb)?;
        let seq = out
            .attributes
            .and_then(|a| {
                a.get("seq")
                    .and_then(|v| v.as_n().ok())
                    .and_then(|v| v.parse().ok())
            })
            .unwrap_or(1u64);
        Ok(seq - 1)
    }

    /// Each staff member's current open leads, for the assignment rules.
    pub async fn staff_loads(
        &self,
        dealer_id: &str,
        staff: &[Staff],
    ) -> Result<Vec<StaffLoad>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :staff)")
            .expression_attribute_values(":pk", s(format!("ASSIGN#{dealer_id}")))
            .expression_attribute_values(":staff", s("STAFF#"))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::dynamodb)?;
        let mut open = std::collections::HashMap::new();
        for item in out.items.unwrap_or_default() {
            let sk = item
                .get("sk")
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default();
            let counter: StaffCounter = from_item(item)?;
            open.insert(sk.trim_start_matches("STAFF#").to_string(), counter.open);
        }
        Ok(staff
            .iter()
            .map(|s| StaffLoad {
                staff_id: s.staff_id.clone(),
                role: s.role,
                on_duty: s.on_duty,
                cap: s.cap,
                open_leads: open.get(&s.staff_id).copied().unwrap_or(0),
            })
            .collect())
    }

    /// Gives the lead to a consultant: their open count goes up only while below
    /// cap, and the lead only if it has no assignee yet, in one transaction.
    pub async fn assign(
        &self,
        lead: &LeadRecord,
        staff: &StaffLoad,
        brand: &Brand,
        now: DateTime<Utc>,
    ) -> Result<AssignResult, StoreError> {
        let dealer_id = lead.dealer_id.as_deref().unwrap_or_default();
        let due = leads_domain::decision::first_contact_due(brand, now);
        let exclusive = leads_domain::decision::exclusive_until(brand, now);
        // The transaction's items, by position (for its cancellation reasons).
        const LEAD: usize = 1;
        let items = vec![
            // 0: a slot under the consultant's cap.
            TransactWriteItem::builder()
                .update(
                    Update::builder()
                        .table_name(&self.table)
                        .set_key(Some(
                            keys::staff_counter(dealer_id, &staff.staff_id).primary(),
                        ))
                        .update_expression("ADD #open :one")
                        .condition_expression("attribute_not_exists(#open) OR #open < :cap")
                        .expression_attribute_names("#open", "open")
                        .expression_attribute_values(":one", n(1))
                        .expression_attribute_values(":cap", n(staff.cap))
                        .build()
                        .expect("table and key are set"),
                )
                .build(),
            // LEAD: still unassigned and not merged.
            TransactWriteItem::builder()
                .update(
                    with_milestone(Update::builder(), MilestoneKind::Assigned, now)?
                        .table_name(&self.table)
                        .set_key(Some(keys::lead(&lead.lead_id).primary()))
                        .update_expression(format!(
                            "SET assignee = :staff, #status = :assigned, assigned_at = :now, \
                             first_contact_due = :due, exclusive_until = :excl, \
                             gsi2pk = :due_pk, gsi2sk = :due, {APPEND_MILESTONE}"
                        ))
                        // A lead merged into another one is nobody's to take.
                        .condition_expression(
                            "attribute_exists(pk) AND attribute_not_exists(assignee) \
                             AND attribute_not_exists(merged_into)",
                        )
                        .expression_attribute_names("#status", "status")
                        .expression_attribute_values(":staff", s(&staff.staff_id))
                        .expression_attribute_values(":assigned", s("assigned"))
                        .expression_attribute_values(":now", s(now.to_rfc3339()))
                        .expression_attribute_values(":due", s(due.to_rfc3339()))
                        .expression_attribute_values(":excl", s(exclusive.to_rfc3339()))
                        // Sparse SLA index, sharded by brand so the sweeper can fan out.
                        .expression_attribute_values(":due_pk", s(due_partition(&lead.brand_id)))
                        .build()
                        .expect("table and key are set"),
                )
                .build(),
            // 2: the customer's identity remembers who has them.
            TransactWriteItem::builder()
                .update(
                    Update::builder()
                        .table_name(&self.table)
                        .set_key(Some(
                            keys::customer(dedup::customer_key(&lead.brand_id, &lead.customer))
                                .primary(),
                        ))
                        .update_expression("SET last_dealer = :dealer, last_assignee = :staff")
                        .condition_expression("attribute_exists(pk)")
                        .expression_attribute_values(":dealer", s(dealer_id))
                        .expression_attribute_values(":staff", s(&staff.staff_id))
                        .build()
                        .expect("table and key are set"),
                )
                .build(),
        ];
        let result = self.transact(items).await;
        match result {
            Ok(_) => Ok(AssignResult::Assigned),
            Err(err) => match cancelled(&err) {
                Some(reasons) if failed(&reasons, LEAD) => Ok(AssignResult::AlreadyAssigned),
                Some(_) => Ok(AssignResult::CapReached),
                None => Err(transaction_failed(err)),
            },
        }
    }

    /// The customer's linked keys remember who has them (as `assign` does for
    /// the lead's own key), so that a return after the window through any key
    /// goes back to that consultant. Each only while it still points at the
    /// lead; a key that moved on is left alone.
    pub async fn remember_assignee(
        &self,
        lead: &LeadRecord,
        dealer_id: &str,
        staff_id: &str,
    ) -> Result<(), StoreError> {
        for key in &lead.linked_keys {
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(
                    keys::customer(dedup::customer_key(&lead.brand_id, key)).primary(),
                ))
                .update_expression("SET last_dealer = :dealer, last_assignee = :staff")
                .condition_expression("lead_id = :lead")
                .expression_attribute_values(":lead", s(&lead.lead_id))
                .expression_attribute_values(":dealer", s(dealer_id))
                .expression_attribute_values(":staff", s(staff_id))
                .send()
                .await;
            applied(result)?;
        }
        Ok(())
    }

    /// Claim strategy: offers the lead to a group; only a new, unassigned lead.
    pub async fn offer(
        &self,
        lead: &LeadRecord,
        staff_ids: &[String],
        now: DateTime<Utc>,
        fallback_minutes: u32,
    ) -> Result<bool, StoreError> {
        let until = now + chrono::Duration::minutes(i64::from(fallback_minutes));
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::lead(&lead.lead_id).primary()))
            .update_expression(
                "SET #status = :offered, offered_to = :ids, gsi2pk = :due_pk, gsi2sk = :until",
            )
            .condition_expression(
                "attribute_exists(pk) AND #status = :new AND attribute_not_exists(assignee)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":offered", s("offered"))
            .expression_attribute_values(":new", s("new"))
            .expression_attribute_values(
                ":ids",
                AttributeValue::L(staff_ids.iter().map(s).collect()),
            )
            .expression_attribute_values(":due_pk", s(due_partition(&lead.brand_id)))
            .expression_attribute_values(":until", s(until.to_rfc3339()))
            .send()
            .await;
        applied(result)
    }
}
