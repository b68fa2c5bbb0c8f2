//! Consultants' status events.

use super::*;

impl DynamoLeads {
    /// Applies a status change (`status::change`, a consultant's or the
    /// CRM's), only if the lead still has the status and the assignee it was
    /// read with (optimistic concurrency). Progress renews the exclusivity
    /// and moves the lead's SLA index entry to that new deadline (the
    /// first-contact check no longer applies); closing the lead takes it out
    /// of the index and frees a slot under the consultant's cap, in the same
    /// transaction.
    pub async fn apply_status(
        &self,
        lead: &LeadRecord,
        change: &status::Change,
        brand: &Brand,
        now: DateTime<Utc>,
    ) -> Result<StatusResult, StoreError> {
        let status::Change {
            next,
            valid,
            ref reason,
            progress,
            closes,
        } = *change;
        let current = wire_name(&lead.status);
        let next_s = wire_name(&next);
        // Its data lives on: a consultant's progress is activity on the lead.
        let mut set = vec!["#status = :next", "expires_at = :expires"];
        let mut remove = Vec::new();
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(keys::lead(&lead.lead_id).primary()))
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":current", s(current))
            .expression_attribute_values(":next", s(next_s))
            .expression_attribute_values(":expires", expiry(brand, now));
        // Same assignee too: the SLA sweeper may have given the lead to someone
        // else (status still assigned) since it was read.
        update = match &lead.assignee {
            Some(assignee) => update
                .condition_expression("#status = :current AND assignee = :assignee")
                .expression_attribute_values(":assignee", s(assignee)),
            None => update.condition_expression("#status = :current"),
        };
        if progress {
            set.push("exclusive_until = :excl");
            update = update.expression_attribute_values(
                ":excl",
                s((now + chrono::Duration::days(i64::from(brand.exclusivity_days))).to_rfc3339()),
            );
        }
        if !status::is_open(next) {
            // Closed: nothing left for the sweeper to watch, nor for a
            // manager to approve.
            remove.extend(["gsi2pk", "gsi2sk", "lost_request"]);
        } else if progress {
            // Still open: the sweeper next looks at it when exclusivity ends.
            set.extend(["gsi2pk = :due_pk", "gsi2sk = :excl"]);
            update =
                update.expression_attribute_values(":due_pk", s(due_partition(&lead.brand_id)));
        }
        if next == LeadStatus::Contacted && lead.contacted_at.is_none() {
            set.push("contacted_at = :now");
            update = update.expression_attribute_values(":now", s(now.to_rfc3339()));
        }
        // Invited, visited, won: the funnel's stages, kept for the KPIs.
        if let Some(kind) = leads_domain::lead::MilestoneKind::of_status(next) {
            set.push(APPEND_MILESTONE);
            update = with_milestone(update, kind, now)?;
        }
        if let Some(reason) = reason {
            set.push("close_reason = :reason");
            update = update.expression_attribute_values(":reason", s(reason));
        }
        if let Some(valid) = valid {
            set.push("valid = :valid");
            update = update.expression_attribute_values(":valid", AttributeValue::Bool(valid));
        }
        let mut expression = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        let mut items = vec![TransactWriteItem::builder()
            .update(
                update
                    .update_expression(expression)
                    .build()
                    .expect("table and key are set"),
            )
            .build()];
        if let (true, Some(dealer), Some(staff)) = (closes, &lead.dealer_id, &lead.assignee) {
            items.push(
                TransactWriteItem::builder()
                    .update(
                        Update::builder()
                            .table_name(&self.table)
                            .set_key(Some(keys::staff_counter(dealer, staff).primary()))
                            .update_expression("ADD #open :minus")
                            .condition_expression("#open > :zero")
                            .expression_attribute_names("#open", "open")
                            .expression_attribute_values(":minus", n(-1))
                            .expression_attribute_values(":zero", n(0))
                            .build()
                            .expect("table and key are set"),
                    )
                    .build(),
            );
        }
        // Marked invalid: the ranking subtracts it (from its brand's list,
        // so a re-run of any date gives the corrected count).
        if valid == Some(false) {
            items.push(
                TransactWriteItem::builder()
                    .update(
                        Update::builder()
                            .table_name(&self.stats_table)
                            .set_key(Some(
                                keys::invalid_lead(
                                    &lead.brand_id,
                                    dedup::china_day(lead.first_touch.at),
                                    &lead.lead_id,
                                )
                                .primary(),
                            ))
                            .update_expression("SET lead_id = :lead")
                            .expression_attribute_values(":lead", s(&lead.lead_id))
                            .build()
                            .expect("table and key are set"),
                    )
                    .build(),
            );
        }
        let result = self.transact(items).await;
        match result {
            Ok(_) => Ok(StatusResult::Applied),
            Err(err) => match cancelled(&err) {
                Some(_) => Ok(StatusResult::Conflict),
                None => Err(transaction_failed(err)),
            },
        }
    }
}

impl DynamoLeads {
    /// Records a consultant's request to close the lead as lost, on the lead
    /// as read (same status, same assignee, no request pending): false if
    /// it changed.
    pub async fn request_lost(
        &self,
        lead: &LeadRecord,
        request: &status::LostRequest,
    ) -> Result<bool, StoreError> {
        let written = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::lead(&lead.lead_id).primary()))
            .update_expression("SET lost_request = :request")
            .condition_expression(
                "#status = :current AND assignee = :assignee AND attribute_not_exists(lost_request)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":current", s(wire_name(&lead.status)))
            .expression_attribute_values(":assignee", s(lead.assignee.as_deref().unwrap_or_default()))
            .expression_attribute_values(":request", serde_dynamo::to_attribute_value(request)?)
            .send()
            .await;
        applied(written)
    }

    /// Drops the lead's pending lost request (a manager rejected it): false
    /// if it is no longer the one read.
    pub async fn withdraw_lost_request(
        &self,
        lead: &LeadRecord,
        request: &status::LostRequest,
    ) -> Result<bool, StoreError> {
        let written = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::lead(&lead.lead_id).primary()))
            .update_expression("REMOVE lost_request")
            .condition_expression("lost_request.#by = :by AND lost_request.#at = :at")
            .expression_attribute_names("#by", "by")
            .expression_attribute_names("#at", "at")
            .expression_attribute_values(":by", s(&request.by))
            .expression_attribute_values(":at", serde_dynamo::to_attribute_value(request.at)?)
            .send()
            .await;
        applied(written)
    }
}

/// The result of a consultant's status event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusResult {
    Applied,
    /// The lead changed since it was read (another event won): read and retry.
    Conflict,
}

impl DynamoLeads {
    /// Records a consultant's follow-up on the lead as read (same status,
    /// same assignee): its intent and next call on the lead, the note in the
    /// audit trail, in one transaction. Conflict: the lead changed.
    pub async fn record_follow_up(
        &self,
        lead: &LeadRecord,
        follow_up: &leads_domain::followup::FollowUp,
        event: &leads_domain::audit::AuditEvent,
        brand: &Brand,
        now: DateTime<Utc>,
    ) -> Result<StatusResult, StoreError> {
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(keys::lead(&lead.lead_id).primary()))
            .condition_expression("#status = :seen AND assignee = :assignee")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":seen", s(wire_name(&lead.status)))
            .expression_attribute_values(":assignee", s(lead.assignee.clone().unwrap_or_default()))
            .expression_attribute_values(":intent", s(wire_name(&follow_up.intent)))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":expires", expiry(brand, now));
        let expression = match follow_up.next_at {
            Some(at) => {
                update = update.expression_attribute_values(":next", s(at.to_rfc3339()));
                "SET intent = :intent, next_follow_up_at = :next, expires_at = :expires ADD follow_ups :one"
            }
            None => "SET intent = :intent, expires_at = :expires ADD follow_ups :one REMOVE next_follow_up_at",
        };
        let audit = self.audit_put(event)?;
        // The reminder: its own item, in the brand's follow-up partition of
        // the SLA index, for the sweeper (a lead's own index entry is its SLA's).
        let reminder_key = keys::follow_up_reminder(&lead.lead_id);
        let reminder = match follow_up.next_at {
            Some(at) => {
                let mut item = reminder_key.primary();
                item.insert("gsi2pk".into(), s(follow_up_partition(&lead.brand_id)));
                item.insert("gsi2sk".into(), s(at.to_rfc3339()));
                item.insert("lead_id".into(), s(&lead.lead_id));
                TransactWriteItem::builder()
                    .put(
                        Put::builder()
                            .table_name(&self.table)
                            .set_item(Some(expiring(item, brand, now)))
                            .build()
                            .expect("table and item are set"),
                    )
                    .build()
            }
            None => TransactWriteItem::builder()
                .delete(
                    aws_sdk_dynamodb::types::Delete::builder()
                        .table_name(&self.table)
                        .set_key(Some(reminder_key.primary()))
                        .build()
                        .expect("table and key are set"),
                )
                .build(),
        };
        let items = vec![
            TransactWriteItem::builder()
                .update(
                    update
                        .update_expression(expression)
                        .build()
                        .expect("table and key are set"),
                )
                .build(),
            audit,
            reminder,
        ];
        match self.transact(items).await {
            Ok(_) => Ok(StatusResult::Applied),
            Err(err) => match cancelled(&err) {
                Some(reasons) if failed(&reasons, 0) => Ok(StatusResult::Conflict),
                _ => Err(transaction_failed(err)),
            },
        }
    }
}

/// A follow-up whose next call is due (see [`DynamoLeads::due_follow_ups`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueFollowUp {
    pub lead_id: String,
    /// The next call as indexed (the reminder is deleted only if unchanged).
    pub at: String,
}

impl DynamoLeads {
    /// Follow-ups of the brand whose next call is at or before `now`.
    pub async fn due_follow_ups(
        &self,
        brand_id: &str,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<DueFollowUp>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("by_due")
            .key_condition_expression("gsi2pk = :pk AND gsi2sk <= :now")
            .expression_attribute_values(":pk", s(follow_up_partition(brand_id)))
            .expression_attribute_values(":now", s(now.to_rfc3339()))
            .limit(limit as i32)
            .send()
            .await
            .map_err(StoreError::dynamodb)?;
        Ok(out
            .items
            .unwrap_or_default()
            .iter()
            .filter_map(|i| {
                let lead_id = i.get("pk")?.as_s().ok()?.strip_prefix("LEAD#")?.to_string();
                let at = i.get("gsi2sk")?.as_s().ok()?.clone();
                Some(DueFollowUp { lead_id, at })
            })
            .collect())
    }

    /// Deletes a reminder that was sent (or is moot), unless a newer
    /// follow-up has set another next call meanwhile.
    pub async fn reminder_done(&self, due: &DueFollowUp) -> Result<bool, StoreError> {
        crate::error::applied(
            self.client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(keys::follow_up_reminder(&due.lead_id).primary()))
                .condition_expression("gsi2sk = :at")
                .expression_attribute_values(":at", s(&due.at))
                .send()
                .await,
        )
    }
}

impl DynamoLeads {
    /// Records on the lead that its WeCom contact ended (`event`'s detail
    /// says who removed whom), once per delivery (`source_event_id`), with
    /// the audit entry in the same transaction. False: recorded before.
    pub async fn record_contact_deleted(
        &self,
        lead_id: &str,
        source_event_id: &str,
        event: &leads_domain::audit::AuditEvent,
        by: &str,
    ) -> Result<bool, StoreError> {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(keys::lead(lead_id).primary()))
            .update_expression(
                "SET contact_deleted_event = :e, contact_deleted_at = :at, contact_deleted_by = :by \
                 ADD contact_deletions :one",
            )
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(contact_deleted_event) \
                 OR contact_deleted_event <> :e)",
            )
            .expression_attribute_values(":e", s(source_event_id))
            .expression_attribute_values(":at", s(event.at.to_rfc3339()))
            .expression_attribute_values(":by", s(by))
            .expression_attribute_values(":one", n(1))
            .build()
            .expect("table and key are set");
        let items = vec![
            TransactWriteItem::builder().update(update).build(),
            self.audit_put(event)?,
        ];
        match self.transact(items).await {
            Ok(_) => Ok(true),
            Err(err) => match cancelled(&err) {
                Some(reasons) if failed(&reasons, 0) => Ok(false),
                _ => Err(transaction_failed(err)),
            },
        }
    }
}

impl DynamoLeads {
    /// Replaces the lead's manual tags with `tags`, if they are still those
    /// read (`lead.tags`): false if another edit came first.
    pub async fn set_tags(&self, lead: &LeadRecord, tags: &[String]) -> Result<bool, StoreError> {
        let list = |tags: &[String]| AttributeValue::L(tags.iter().map(s).collect());
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::lead(&lead.lead_id).primary()));
        update = if lead.tags.is_empty() {
            update.condition_expression("attribute_exists(pk) AND attribute_not_exists(tags)")
        } else {
            update
                .condition_expression("tags = :read")
                .expression_attribute_values(":read", list(&lead.tags))
        };
        update = if tags.is_empty() {
            update.update_expression("REMOVE tags")
        } else {
            update
                .update_expression("SET tags = :tags")
                .expression_attribute_values(":tags", list(tags))
        };
        applied(update.send().await)
    }
}
