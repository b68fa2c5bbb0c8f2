//! A new lead written once: the decision (`leads_domain::decision`) is made
//! from what was read, and one transaction writes the customer identity, the
//! delivery marker, the lead in its final state, its first touchpoint, the
//! dealer's daily counter (one of its shards), the consultant's cap counter,
//! the remote dealer's capacity and the audit entries. The round-robin
//! ticket is not in it: an atomic counter taken before the decision (in it,
//! every round-robin lead of a dealer would conflict with every other). Every item
//! the decision depended on carries a condition; which one failed (read by
//! name, not position) tells the caller what to do. A customer back after
//! their lead was closed or left unrouted (`returning`) adds the old lead's
//! side and its audit entry. At most 10 items: the local engine (DynamoDB
//! Local 1.11) still has the old limit of 10 per transaction (DynamoDB's is
//! 100).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{KeysAndAttributes, ReturnValuesOnConditionCheckFailure};
use leads_domain::decision::NewLeadPlan;

use super::*;
use crate::store::audit::audit_group_item;

/// What the decision read and the transaction checks.
#[derive(Debug, Clone, Default)]
pub struct Contended {
    /// The consultant given the lead and their cap.
    pub staff: Option<(String, u32)>,
    /// The remote dealer's daily capacity.
    pub remote_capacity: Option<u32>,
}

/// What the decision knew of the customer's identity.
#[derive(Debug, Clone, Copy)]
pub enum IdentitySeen<'a> {
    /// Read, and absent.
    Absent,
    /// Read: a customer whose window ended (who had them last comes along).
    Expired(&'a CustomerItem),
    /// Read, inside the window, naming a lead that takes no more touches:
    /// the new lead continues it.
    Returning(Returning<'a>),
}

/// What writing a decided new lead did.
#[derive(Debug, Clone, PartialEq)]
pub enum CreateResult {
    Created,
    /// The customer's identity is not what the decision read (a concurrent
    /// delivery created it): decide again with `current` (None: read it).
    IdentityTaken {
        current: Option<CustomerItem>,
    },
    /// This delivery was recorded before.
    Duplicate {
        lead_id: String,
        outcome: DedupOutcome,
    },
    /// The consultant reached their cap or the remote capacity was used up
    /// since read: decide again from fresh state.
    Stale,
}

/// The items of the transaction, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Identity,
    Marker,
    Lead,
    Touchpoint,
    DailyCount,
    StaffCounter,
    RemoteCapacity,
    Audit,
    /// The closed or unrouted lead the new one continues.
    Holder,
    HolderAudit,
}

impl DynamoLeads {
    /// The customer's identity item (consistent read), if any.
    pub async fn identity(&self, customer_key: &str) -> Result<Option<CustomerItem>, StoreError> {
        self.customer(customer_key).await
    }

    /// The dealer's consultants' open counts, in one consistent query of the
    /// dealer's assignment partition.
    pub async fn loads(
        &self,
        dealer_id: &str,
        staff: &[Staff],
    ) -> Result<Vec<StaffLoad>, StoreError> {
        let items: Vec<Item> = super::super::item::query_all_items(
            self.client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :staff)")
                .expression_attribute_values(":pk", s(format!("ASSIGN#{dealer_id}")))
                .expression_attribute_values(":staff", s("STAFF#"))
                .consistent_read(true),
        )
        .await?;
        let mut open = HashMap::new();
        for item in items {
            let sk = item
                .get("sk")
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default();
            let number = |name: &str| {
                item.get(name)
                    .and_then(|v| v.as_n().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            if let Some(staff_id) = sk.strip_prefix("STAFF#") {
                open.insert(staff_id.to_string(), number("open") as u32);
            }
        }
        let loads = staff
            .iter()
            .map(|s| StaffLoad {
                staff_id: s.staff_id.clone(),
                role: s.role,
                on_duty: s.on_duty,
                cap: s.cap,
                open_leads: open.get(&s.staff_id).copied().unwrap_or(0),
            })
            .collect();
        Ok(loads)
    }

    /// Remote leads each dealer received today, in one consistent BatchGetItem.
    pub async fn remote_received(
        &self,
        dealer_ids: &[String],
        now: DateTime<Utc>,
    ) -> Result<HashMap<String, u32>, StoreError> {
        let mut received = HashMap::new();
        if dealer_ids.is_empty() {
            return Ok(received);
        }
        let day = dedup::china_day(now);
        let mut keys = KeysAndAttributes::builder().consistent_read(true);
        for dealer in dealer_ids.iter().take(100) {
            keys = keys.keys(keys::remote_day(dealer, day).primary());
        }
        let mut pending = Some(HashMap::from([(
            self.stats_table.clone(),
            keys.build().expect("keys are set"),
        )]));
        while let Some(request) = pending.take().filter(|r| !r.is_empty()) {
            let out = self
                .client
                .batch_get_item()
                .set_request_items(Some(request))
                .send()
                .await
                .map_err(StoreError::dynamodb)?;
            for item in out
                .responses
                .unwrap_or_default()
                .remove(&self.stats_table)
                .unwrap_or_default()
            {
                let dealer = item
                    .get("pk")
                    .and_then(|v| v.as_s().ok())
                    .and_then(|pk| pk.strip_prefix("DEALER#"))
                    .unwrap_or_default()
                    .to_string();
                let n = item
                    .get("remote_received")
                    .and_then(|v| v.as_n().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                received.insert(dealer, n);
            }
            pending = out.unprocessed_keys;
        }
        Ok(received)
    }

    /// Writes a decided new lead in one transaction (see the module doc).
    #[allow(clippy::too_many_arguments)]
    pub async fn create_decided(
        &self,
        brand: &Brand,
        lead: &CanonicalLead,
        customer_key: &str,
        seen: IdentitySeen<'_>,
        plan: &NewLeadPlan,
        contended: &Contended,
        now: DateTime<Utc>,
    ) -> Result<CreateResult, StoreError> {
        let record = &plan.lead;
        let lead_id = &record.lead_id;
        let mut parts = Vec::new();
        let mut items = Vec::new();
        let mut push = |part: Part, item: TransactWriteItem| {
            parts.push(part);
            items.push(item);
        };

        // The identity remembers who has the customer (for a return after
        // the window), or keeps who had them last (the router copied them
        // into the record from the expired identity or the closed lead).
        let customer = CustomerItem {
            lead_id: lead_id.clone(),
            first_platform: lead.platform,
            first_seen: lead.received_at,
            window_until_s: dedup::window_until(brand, lead.received_at).timestamp(),
            last_dealer: match &record.assignee {
                Some(_) => record.dealer_id.clone(),
                None => record.previous_dealer.clone(),
            },
            last_assignee: record
                .assignee
                .clone()
                .or_else(|| record.previous_assignee.clone()),
        };
        let identity = Put::builder()
            .table_name(&self.table)
            .set_item(Some(expiring(
                to_item(&keys::customer(customer_key.to_string()), &customer)?,
                brand,
                now,
            )))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        let identity = match seen {
            // Still naming the closed lead's customer, inside the window.
            IdentitySeen::Returning(r) => identity
                .condition_expression("lead_id = :holder AND window_until_s > :now")
                .expression_attribute_values(":holder", s(r.identity_lead)),
            // Still absent, or its window still over (as read).
            _ => {
                identity.condition_expression("attribute_not_exists(pk) OR window_until_s <= :now")
            }
        }
        .expression_attribute_values(":now", n(now.timestamp()));
        push(
            Part::Identity,
            TransactWriteItem::builder()
                .put(identity.build().expect("table and item are set"))
                .build(),
        );
        let marker = EventMarker {
            lead_id: lead_id.clone(),
            outcome: DedupOutcome::Created,
        };
        push(
            Part::Marker,
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(expiring(
                            to_item(
                                &keys::event(&brand.brand_id, &lead.source_event_id),
                                &marker,
                            )?,
                            brand,
                            now,
                        )))
                        .condition_expression("attribute_not_exists(pk)")
                        // A redelivery learns where it went from the failure itself.
                        .return_values_on_condition_check_failure(
                            ReturnValuesOnConditionCheckFailure::AllOld,
                        )
                        .build()
                        .expect("table and item are set"),
                )
                .build(),
        );
        let mut lead_item = expiring(self.lead_item(record)?, brand, now);
        let indexed = leads_domain::lead_list::index_entry(record);
        if let Some((pk, sk)) = indexed {
            lead_item.insert("gsi3pk".into(), s(pk));
            lead_item.insert("gsi3sk".into(), s(sk));
        }
        if let Some(due) = plan.due {
            lead_item.insert("gsi2pk".into(), s(due_partition(&record.brand_id)));
            lead_item.insert("gsi2sk".into(), s(due.to_rfc3339()));
        }
        push(
            Part::Lead,
            self.put(lead_item, Some("attribute_not_exists(pk)")),
        );
        let touch = Touchpoint::from(lead);
        push(
            Part::Touchpoint,
            self.put(
                expiring(
                    to_item(&keys::touchpoint(lead_id, &touch), &touch)?,
                    brand,
                    now,
                ),
                None,
            ),
        );
        if let Some(dealer) = &record.account_dealer {
            push(Part::DailyCount, self.count_lead(dealer, lead, lead_id));
        }
        if let (Some((staff_id, cap)), Some(dealer)) = (&contended.staff, &record.dealer_id) {
            push(
                Part::StaffCounter,
                TransactWriteItem::builder()
                    .update(
                        Update::builder()
                            .table_name(&self.table)
                            .set_key(Some(keys::staff_counter(dealer, staff_id).primary()))
                            .update_expression("ADD #open :one")
                            .condition_expression("attribute_not_exists(#open) OR #open < :cap")
                            .expression_attribute_names("#open", "open")
                            .expression_attribute_values(":one", n(1))
                            .expression_attribute_values(":cap", n(*cap))
                            .build()
                            .expect("table and key are set"),
                    )
                    .build(),
            );
        }
        if let (Some(cap), Some(Route::Remote { dealer_id, .. })) =
            (contended.remote_capacity, &record.route)
        {
            push(
                Part::RemoteCapacity,
                TransactWriteItem::builder()
                    .update(
                        Update::builder()
                            .table_name(&self.stats_table)
                            .set_key(Some(
                                keys::remote_day(dealer_id, dedup::china_day(now)).primary(),
                            ))
                            .update_expression("ADD remote_received :one")
                            .condition_expression(
                                "attribute_not_exists(remote_received) OR remote_received < :cap",
                            )
                            .expression_attribute_values(":one", n(1))
                            .expression_attribute_values(":cap", n(cap))
                            .build()
                            .expect("table and key are set"),
                    )
                    .build(),
            );
        }
        if let (Some(audit_table), false) = (&self.audit_table, plan.audit.is_empty()) {
            let put = Put::builder()
                .table_name(audit_table)
                .set_item(Some(audit_group_item(&plan.audit)?))
                .build()
                .expect("table and item are set");
            push(Part::Audit, TransactWriteItem::builder().put(put).build());
        }
        if let IdentitySeen::Returning(r) = seen {
            push(Part::Holder, self.reopen_holder(r.holder, lead_id));
            if let Some(audit_table) = &self.audit_table {
                let event = leads_domain::decision::reopened_audit(r.holder, lead_id, now);
                let put = Put::builder()
                    .table_name(audit_table)
                    .set_item(Some(crate::store::audit::audit_item(&event)?))
                    .build()
                    .expect("table and item are set");
                push(
                    Part::HolderAudit,
                    TransactWriteItem::builder().put(put).build(),
                );
            }
        }

        let err = match self.transact(items).await {
            Ok(_) => return Ok(CreateResult::Created),
            Err(err) => err,
        };
        let Some(failed) = cancelled(&err) else {
            return Err(transaction_failed(err));
        };
        let failed_part = |part: Part| parts.iter().zip(&failed).any(|(p, f)| *p == part && *f);
        if failed_part(Part::Marker) || failed_part(Part::Lead) {
            let old = old_item(&err, &parts, Part::Marker);
            let marker: EventMarker = match old {
                Some(m) => m,
                None => self
                    .get_item(keys::event(&brand.brand_id, &lead.source_event_id))
                    .await?
                    .ok_or_else(|| {
                        StoreError::Malformed("event marker missing after a conflict".into())
                    })?,
            };
            return Ok(CreateResult::Duplicate {
                lead_id: marker.lead_id,
                outcome: marker.outcome,
            });
        }
        if failed_part(Part::Identity) {
            return Ok(CreateResult::IdentityTaken {
                current: old_item(&err, &parts, Part::Identity),
            });
        }
        // The old lead changed since read (another delivery continued it,
        // or it was closed): read the identity again.
        if failed_part(Part::Holder) {
            return Ok(CreateResult::IdentityTaken { current: None });
        }
        Ok(CreateResult::Stale)
    }
}

/// An item as it was when the transaction's condition on it failed
/// (returned with the cancellation, `ReturnValuesOnConditionCheckFailure`).
fn old_item<T: serde::de::DeserializeOwned>(
    err: &aws_sdk_dynamodb::error::SdkError<TransactWriteItemsError, impl std::fmt::Debug>,
    parts: &[Part],
    part: Part,
) -> Option<T> {
    returned_item(err, parts.iter().position(|p| *p == part)?)
}

/// The item returned with the cancellation reason of the transaction's
/// item number `at` (None if the engine returned none).
pub(super) fn returned_item<T: serde::de::DeserializeOwned>(
    err: &aws_sdk_dynamodb::error::SdkError<TransactWriteItemsError, impl std::fmt::Debug>,
    at: usize,
) -> Option<T> {
    let TransactWriteItemsError::TransactionCanceledException(e) = err.as_service_error()? else {
        return None;
    };
    let item = e.cancellation_reasons().get(at)?.item()?.clone();
    from_item(item).ok()
}
