//! The SLA sweeper's writes: every one conditional on the lead being as read.

use super::*;
use leads_domain::audit::AuditEvent;

impl DynamoLeads {
    // ------------------------------------------------------------ SLA sweeper
    //
    // Every write below is conditional on the lead still being indexed under
    // the deadline the sweeper read (`gsi2sk`), in the status it read: a
    // consultant's event, a claim or an overlapping sweeper run that changed
    // the lead first makes the write a no-op (`Changed`), never a double move.

    /// Ids of a brand's leads whose SLA deadline is at or before `now`, oldest
    /// first, at most `limit` (the rest wait for the next run). The index is
    /// eventually consistent: read each lead with [`Self::due_lead`].
    pub async fn due_lead_ids(
        &self,
        brand_id: &str,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let mut ids = Vec::new();
        let mut start = None;
        while ids.len() < limit {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .index_name("by_due")
                .key_condition_expression("gsi2pk = :pk AND gsi2sk <= :now")
                .expression_attribute_values(":pk", s(due_partition(brand_id)))
                .expression_attribute_values(":now", s(now.to_rfc3339()))
                .limit(
                    i32::try_from(limit - ids.len())
                        .unwrap_or(i32::MAX)
                        .min(500),
                )
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(StoreError::dynamodb)?;
            for item in page.items.unwrap_or_default() {
                let pk = item.get("pk").and_then(|v| v.as_s().ok());
                if let Some(id) = pk.and_then(|pk| pk.strip_prefix("LEAD#")) {
                    ids.push(id.to_string());
                }
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        ids.truncate(limit);
        Ok(ids)
    }

    /// The lead and the deadline it is indexed under, read consistently.
    pub async fn due_lead(&self, lead_id: &str) -> Result<Option<DueLead>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(keys::lead(lead_id).primary()))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::dynamodb)?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let due = match item.get("gsi2sk").and_then(|v| v.as_s().ok()) {
            Some(raw) => Some(Due {
                at: DateTime::parse_from_rfc3339(raw)
                    .map_err(|e| StoreError::Malformed(format!("gsi2sk of {lead_id}: {e}")))?
                    .with_timezone(&Utc),
                raw: raw.clone(),
            }),
            None => None,
        };
        let pool_excluded = item
            .get("pool_excluded")
            .and_then(|v| v.as_s().ok())
            .cloned();
        Ok(Some(DueLead {
            lead: from_item(item)?,
            due,
            pool_excluded,
        }))
    }

    /// Puts an unassigned lead in the SLA index for a pool retry at `retry_at`
    /// (nobody could take it), so the sweeper tries again; only if it still has
    /// no assignee and is not indexed yet.
    pub async fn wait_in_pool(
        &self,
        lead: &LeadRecord,
        retry_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::lead(&lead.lead_id).primary()))
            .update_expression("SET gsi2pk = :due_pk, gsi2sk = :at")
            .condition_expression(
                "attribute_exists(pk) AND attribute_not_exists(assignee) \
                 AND attribute_not_exists(gsi2pk) AND attribute_not_exists(merged_into)",
            )
            .expression_attribute_values(":due_pk", s(due_partition(&lead.brand_id)))
            .expression_attribute_values(":at", s(retry_at.to_rfc3339()))
            .send()
            .await;
        applied(result)
    }

    /// Records on the lead that its first contact was overdue (the sweeper's
    /// breach, once per deadline: its step runs once), for the KPIs.
    pub async fn record_breach(&self, lead_id: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::lead(lead_id).primary()))
            .update_expression(format!("SET {APPEND_MILESTONE}"))
            .condition_expression("attribute_exists(pk)");
        let result = milestone_values(MilestoneKind::SlaBreached, now)?
            .into_iter()
            .fold(update, |u, (name, value)| {
                u.expression_attribute_values(name, value)
            })
            .send()
            .await;
        // A lead erased meanwhile has nothing to record.
        applied(result).map(|_| ())
    }

    /// Moves the lead's index entry to `next` (or out of the index), if it is
    /// still under `due`. Returns false if the lead changed meanwhile.
    pub async fn reschedule(
        &self,
        lead: &DueLead,
        due: &Due,
        next: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::lead(&lead.lead.lead_id).primary()))
            .condition_expression("gsi2sk = :due")
            .expression_attribute_values(":due", s(&due.raw));
        update = match next {
            Some(next) => update
                .update_expression("SET gsi2pk = :due_pk, gsi2sk = :next")
                .expression_attribute_values(":due_pk", s(due_partition(&lead.lead.brand_id)))
                .expression_attribute_values(":next", s(next.to_rfc3339())),
            None => update.update_expression("REMOVE gsi2pk, gsi2sk"),
        };
        applied(update.send().await)
    }

    /// Gives the lead to `to` (another consultant, or a first one after an
    /// expired claim offer or a pool retry), in one transaction: `to`'s open
    /// count goes up only below their cap, the previous assignee's (if any)
    /// goes down, and the lead only moves if it is unchanged since it was read
    /// under `due`. The new assignee gets a fresh first-contact deadline and
    /// exclusivity, and the index holds the first-contact deadline.
    pub async fn reassign(
        &self,
        lead: &DueLead,
        due: &Due,
        to: &StaffLoad,
        brand: &Brand,
        audit: Option<&AuditEvent>,
        now: DateTime<Utc>,
    ) -> Result<ReassignResult, StoreError> {
        let record = &lead.lead;
        // The hand-off's audit entry, in the same transaction (a manager's transfer).
        let audit = audit.map(|event| self.audit_put(event)).transpose()?;
        let dealer_id = record.dealer_id.as_deref().unwrap_or_default();
        let first_contact = leads_domain::decision::first_contact_due(brand, now);
        let exclusive = leads_domain::decision::exclusive_until(brand, now);
        let mut release_previous = record.assignee.is_some();
        for _attempt in 0..2 {
            // From one consultant to another, or a first one (an expired claim
            // offer, a pool retry): the KPIs count either.
            let milestone = match record.assignee {
                Some(_) => MilestoneKind::Reassigned,
                None => MilestoneKind::Assigned,
            };
            let mut lead_update = with_milestone(Update::builder(), milestone, now)?
                .table_name(&self.table)
                .set_key(Some(keys::lead(&record.lead_id).primary()))
                .update_expression(format!(
                    "SET assignee = :to, #status = :assigned, assigned_at = :now, \
                     first_contact_due = :first, exclusive_until = :excl, \
                     gsi2pk = :due_pk, gsi2sk = :first, {APPEND_MILESTONE} \
                     REMOVE offered_to, pool_excluded"
                ))
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":to", s(&to.staff_id))
                .expression_attribute_values(":assigned", s(wire_name(&LeadStatus::Assigned)))
                .expression_attribute_values(":now", s(now.to_rfc3339()))
                .expression_attribute_values(":first", s(first_contact.to_rfc3339()))
                .expression_attribute_values(":excl", s(exclusive.to_rfc3339()))
                .expression_attribute_values(":due_pk", s(due_partition(&record.brand_id)));
            lead_update = unchanged_since(lead_update, record, due);
            // The transaction's items, by position: a slot under the new
            // consultant's cap, the lead as read, the previous one's slot freed.
            const CAP: usize = 0;
            const LEAD: usize = 1;
            const RELEASE: usize = 2;
            let mut items = vec![
                TransactWriteItem::builder()
                    .update(
                        Update::builder()
                            .table_name(&self.table)
                            .set_key(Some(keys::staff_counter(dealer_id, &to.staff_id).primary()))
                            .update_expression("ADD #open :one")
                            .condition_expression("attribute_not_exists(#open) OR #open < :cap")
                            .expression_attribute_names("#open", "open")
                            .expression_attribute_values(":one", n(1))
                            .expression_attribute_values(":cap", n(to.cap))
                            .build()
                            .expect("table and key are set"),
                    )
                    .build(),
                TransactWriteItem::builder()
                    .update(lead_update.build().expect("table and key are set"))
                    .build(),
            ];
            if let (true, Some(previous)) = (release_previous, &record.assignee) {
                items.push(self.release_slot(dealer_id, previous));
            }
            items.extend(audit.clone());
            let result = self.transact(items).await;
            match result {
                Ok(_) => return Ok(ReassignResult::Reassigned),
                Err(err) => match cancelled(&err) {
                    Some(reasons) if failed(&reasons, LEAD) => return Ok(ReassignResult::Changed),
                    Some(reasons) if failed(&reasons, CAP) => {
                        return Ok(ReassignResult::CapReached)
                    }
                    Some(reasons) if failed(&reasons, RELEASE) => {
                        // The previous assignee's counter is already 0 (drift
                        // from before counters existed): move the lead anyway.
                        tracing::warn!(lead_id = %record.lead_id, "previous assignee's open counter is 0; not decremented");
                        release_previous = false;
                    }
                    _ => return Err(transaction_failed(err)),
                },
            }
        }
        Err(StoreError::Service {
            service: "dynamodb",
            message: format!("reassigning {} did not settle", record.lead_id),
        })
    }

    /// Nobody can take the lead: back to the dealer's pool (status new, no
    /// assignee, the previous assignee's slot freed), indexed for another try
    /// at `retry_at`; `exclude` (whose exclusivity lapsed) is not given it
    /// back by those tries. Returns false if the lead changed since it was read.
    pub async fn return_to_pool(
        &self,
        lead: &DueLead,
        due: &Due,
        retry_at: DateTime<Utc>,
        exclude: Option<&str>,
    ) -> Result<bool, StoreError> {
        let record = &lead.lead;
        let dealer_id = record.dealer_id.as_deref().unwrap_or_default();
        let mut release_previous = record.assignee.is_some();
        for _attempt in 0..2 {
            let (set_excluded, remove_excluded) = match exclude {
                Some(_) => (", pool_excluded = :excluded", ""),
                None => ("", ", pool_excluded"),
            };
            let mut lead_update = Update::builder()
                .table_name(&self.table)
                .set_key(Some(keys::lead(&record.lead_id).primary()))
                .update_expression(format!(
                    "SET #status = :new, gsi2pk = :due_pk, gsi2sk = :retry{set_excluded} \
                     REMOVE assignee, assigned_at, first_contact_due, exclusive_until, \
                     offered_to{remove_excluded}"
                ))
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":new", s(wire_name(&LeadStatus::New)))
                .expression_attribute_values(":due_pk", s(due_partition(&record.brand_id)))
                .expression_attribute_values(":retry", s(retry_at.to_rfc3339()));
            if let Some(excluded) = exclude {
                lead_update = lead_update.expression_attribute_values(":excluded", s(excluded));
            }
            lead_update = unchanged_since(lead_update, record, due);
            // The transaction's items, by position: the lead as read, the
            // previous assignee's slot freed.
            const LEAD: usize = 0;
            const RELEASE: usize = 1;
            let mut items = vec![TransactWriteItem::builder()
                .update(lead_update.build().expect("table and key are set"))
                .build()];
            if let (true, Some(previous)) = (release_previous, &record.assignee) {
                items.push(self.release_slot(dealer_id, previous));
            }
            let result = self.transact(items).await;
            match result {
                Ok(_) => return Ok(true),
                Err(err) => match cancelled(&err) {
                    Some(reasons) if failed(&reasons, LEAD) => return Ok(false),
                    Some(reasons) if failed(&reasons, RELEASE) => {
                        tracing::warn!(lead_id = %record.lead_id, "previous assignee's open counter is 0; not decremented");
                        release_previous = false;
                    }
                    _ => return Err(transaction_failed(err)),
                },
            }
        }
        Err(StoreError::Service {
            service: "dynamodb",
            message: format!("returning {} to the pool did not settle", record.lead_id),
        })
    }

    /// Frees one slot under a consultant's cap (never below zero).
    pub(super) fn release_slot(&self, dealer_id: &str, staff_id: &str) -> TransactWriteItem {
        TransactWriteItem::builder()
            .update(
                Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(keys::staff_counter(dealer_id, staff_id).primary()))
                    .update_expression("ADD #open :minus")
                    .condition_expression("#open > :zero")
                    .expression_attribute_names("#open", "open")
                    .expression_attribute_values(":minus", n(-1))
                    .expression_attribute_values(":zero", n(0))
                    .build()
                    .expect("table and key are set"),
            )
            .build()
    }
}

/// Conditions an update of `record` on it being as the sweeper read it:
/// same status, same assignee (or still none), still indexed under `due`.
fn unchanged_since(
    update: aws_sdk_dynamodb::types::builders::UpdateBuilder,
    record: &LeadRecord,
    due: &Due,
) -> aws_sdk_dynamodb::types::builders::UpdateBuilder {
    let update = update
        .expression_attribute_values(":seen_status", s(wire_name(&record.status)))
        .expression_attribute_values(":seen_due", s(&due.raw));
    match &record.assignee {
        Some(previous) => update
            .condition_expression(
                "#status = :seen_status AND gsi2sk = :seen_due AND assignee = :previous",
            )
            .expression_attribute_values(":previous", s(previous)),
        None => update.condition_expression(
            "#status = :seen_status AND gsi2sk = :seen_due AND attribute_not_exists(assignee)",
        ),
    }
}

/// A deadline in the SLA index: the time and the stored string (conditions
/// compare the exact string the item holds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    pub at: DateTime<Utc>,
    pub raw: String,
}

/// A lead as read for the SLA sweeper, with the deadline it is indexed under
/// (`None`: not in the index any more).
#[derive(Debug, Clone, PartialEq)]
pub struct DueLead {
    pub lead: LeadRecord,
    pub due: Option<Due>,
    /// In the pool after this consultant's exclusivity lapsed: not them again.
    pub pool_excluded: Option<String>,
}

/// The result of a sweeper's reassignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReassignResult {
    Reassigned,
    /// The chosen consultant reached their cap concurrently: choose again.
    CapReached,
    /// The lead changed since it was read (contacted, claimed, or another
    /// sweeper run acted first): nothing to do.
    Changed,
}
