//! Erasing one customer's personal data on request (PIPL): `leadctl erase`.
//!
//! From a dedup key (a phone's, made with the stack's phone-hash key) or a
//! lead id, it follows the customer through every lead that holds them (the
//! identities of each lead's keys, `merged_into`, `absorbed_leads`) and:
//! - deletes each lead, its touchpoints and the identity items of its keys;
//!   an open lead frees its consultant's slot in the same transaction;
//! - removes the body of every raw payload they came in. The item stays,
//!   bodiless, as the intake's claim on the delivery: a platform's redelivery
//!   of that body is still recognised and not enqueued again;
//! - deletes the customer's messages waiting in the lead and notification
//!   dead-letter queues (where a failed message can wait 14 days);
//! - writes an `erased` audit entry on each lead (no phone, no name).
//!
//! What stays holds no personal data: the leads' audit trails (never a
//! phone), the delivery markers and the ranking's counters and markers (lead
//! ids only), so a dealer's past scores do not change.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, DeleteRequest, Put, TransactWriteItem, Update, WriteRequest,
};
use chrono::{DateTime, Utc};
use leads_domain::audit::{Actor, AuditAction, AuditEvent};
use leads_domain::dedup;
use leads_domain::intake::IntakeMessage;
use leads_domain::lead::LeadRecord;
use leads_domain::{status, wire_name};
use serde::Serialize;

use super::audit::audit_item;
use super::item::{from_item, query_all_items, write_chunk, Item};
use super::leads::CustomerItem;
use crate::error::applied;
use crate::StoreError;

/// Who is to be erased.
#[derive(Debug, Clone)]
pub enum Subject {
    /// A customer key as stored (`dedup::customer_key` of the brand).
    CustomerKey(String),
    Lead(String),
}

/// What an erasure removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ErasureReport {
    pub leads: Vec<String>,
    pub identities: usize,
    pub touchpoints: usize,
    pub raw_payloads: usize,
    pub dead_letters: usize,
}

pub struct DynamoErasure {
    db: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    leads_table: String,
    raw_table: String,
    audit_table: String,
    /// The dead-letter queues searched for the customer's messages.
    lead_dlq: Option<String>,
    notification_dlq: Option<String>,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn key(pk: impl Into<String>, sk: &str) -> Item {
    Item::from([("pk".to_string(), s(pk)), ("sk".to_string(), s(sk))])
}

impl DynamoErasure {
    pub fn new(
        db: aws_sdk_dynamodb::Client,
        sqs: aws_sdk_sqs::Client,
        tables: &crate::config::Tables,
    ) -> Self {
        DynamoErasure {
            db,
            sqs,
            leads_table: tables.leads.clone(),
            raw_table: tables.raw_payload.clone(),
            audit_table: tables.audit.clone(),
            lead_dlq: None,
            notification_dlq: None,
        }
    }

    /// The dead-letter queues of the lead and notification queues.
    pub fn with_dead_letter_queues(mut self, lead: String, notification: String) -> Self {
        self.lead_dlq = Some(lead);
        self.notification_dlq = Some(notification);
        self
    }

    /// Erases the customer `subject` names within `brand_id` (see the module
    /// doc); `request` (the erasure request's reference) goes in the audit.
    /// Re-runnable: a second run finds nothing and erases nothing.
    pub async fn erase(
        &self,
        brand_id: &str,
        subject: &Subject,
        request: &str,
        now: DateTime<Utc>,
    ) -> Result<ErasureReport, StoreError> {
        let (leads, keys) = self.find(brand_id, subject).await?;
        let mut report = ErasureReport::default();
        let mut raw_refs = BTreeSet::new();
        for (lead_id, record) in &leads {
            raw_refs.insert(record.raw_payload_ref.clone());
            raw_refs.extend(record.first_touch.raw_payload_ref.clone());
            let touches = query_all_items(
                self.db
                    .query()
                    .table_name(&self.leads_table)
                    .key_condition_expression("pk = :pk AND begins_with(sk, :tp)")
                    .expression_attribute_values(":pk", s(format!("LEAD#{lead_id}")))
                    .expression_attribute_values(":tp", s("TP#"))
                    .consistent_read(true),
            )
            .await?;
            let mut deletes = Vec::new();
            for t in touches {
                if let Some(r) = t.get("raw_payload_ref").and_then(|v| v.as_s().ok()) {
                    raw_refs.insert(r.clone());
                }
                let k = Item::from_iter(
                    ["pk", "sk"].map(|n| (n.to_string(), t.get(n).cloned().unwrap_or(s("")))),
                );
                deletes.push(
                    WriteRequest::builder()
                        .delete_request(
                            DeleteRequest::builder()
                                .set_key(Some(k))
                                .build()
                                .expect("key is set"),
                        )
                        .build(),
                );
            }
            report.touchpoints += deletes.len();
            // Its follow-up reminder, if any.
            deletes.push(
                WriteRequest::builder()
                    .delete_request(
                        DeleteRequest::builder()
                            .set_key(Some(key(format!("LEAD#{lead_id}"), "FOLLOWUP")))
                            .build()
                            .expect("key is set"),
                    )
                    .build(),
            );
            for chunk in deletes.chunks(25) {
                write_chunk(&self.db, &self.leads_table, chunk.to_vec()).await?;
            }
            self.delete_lead(record, request, now).await?;
            report.leads.push(lead_id.clone());
        }
        for pk in &keys {
            let out = self
                .db
                .delete_item()
                .table_name(&self.leads_table)
                .set_key(Some(key(pk.clone(), "IDENTITY")))
                .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
                .send()
                .await
                .map_err(StoreError::dynamodb)?;
            report.identities += usize::from(out.attributes.is_some());
        }
        if let Some(dlq) = &self.lead_dlq {
            // A delivery of the customer that failed is in no lead: its
            // message names its raw body.
            let failed = std::sync::Mutex::new(Vec::new());
            report.dead_letters += self
                .scrub_dead_letters(dlq, |body| {
                    let l = match serde_json::from_str(body) {
                        Ok(IntakeMessage::Lead(l)) => l,
                        Ok(IntakeMessage::ContactDeleted(d)) => {
                            let key = leads_domain::lead::CustomerKey::Wecom {
                                corp_id: d.corp_id,
                                external_userid: d.external_userid,
                            };
                            return keys.contains(&dedup::customer_key(brand_id, &key));
                        }
                        _ => return false,
                    };
                    let theirs = std::iter::once(&l.customer)
                        .chain(l.linked_customer.as_ref())
                        .any(|k| keys.contains(&dedup::customer_key(brand_id, k)));
                    if theirs {
                        failed.lock().expect("not poisoned").push(l.raw_payload_ref);
                    }
                    theirs
                })
                .await?;
            raw_refs.extend(failed.into_inner().expect("not poisoned"));
        }
        for reference in &raw_refs {
            report.raw_payloads += usize::from(self.empty_raw_payload(reference, now).await?);
        }
        if let Some(dlq) = &self.notification_dlq {
            report.dead_letters += self
                .scrub_dead_letters(dlq, |body| {
                    serde_json::from_str::<serde_json::Value>(body)
                        .ok()
                        .and_then(|v| v.get("lead_id")?.as_str().map(str::to_string))
                        .is_some_and(|id| leads.contains_key(&id))
                })
                .await?;
        }
        Ok(report)
    }

    /// The customer's leads (by id) and every customer key they answer to.
    async fn find(
        &self,
        brand_id: &str,
        subject: &Subject,
    ) -> Result<(BTreeMap<String, LeadRecord>, BTreeSet<String>), StoreError> {
        let mut keys = BTreeSet::new();
        let mut pending = Vec::new();
        match subject {
            Subject::Lead(id) => pending.push(id.clone()),
            Subject::CustomerKey(k) => {
                keys.insert(k.clone());
                pending.extend(self.identity(k).await?.map(|c| c.lead_id));
            }
        }
        let mut leads = BTreeMap::new();
        while let Some(id) = pending.pop() {
            if leads.contains_key(&id) {
                continue;
            }
            let Some(item) = self.get(key(format!("LEAD#{id}"), "LEAD")).await? else {
                continue;
            };
            let absorbed: Vec<String> = item
                .get("absorbed_leads")
                .and_then(|v| v.as_l().ok())
                .map(|l| l.iter().filter_map(|v| v.as_s().ok().cloned()).collect())
                .unwrap_or_default();
            let record: LeadRecord = from_item(item)?;
            if record.brand_id != brand_id {
                return Err(StoreError::ConditionFailed(format!(
                    "lead {id} is not a lead of brand {brand_id}"
                )));
            }
            for k in record.keys() {
                let k = dedup::customer_key(brand_id, k);
                if keys.insert(k.clone()) {
                    pending.extend(self.identity(&k).await?.map(|c| c.lead_id));
                }
            }
            pending.extend(record.merged_into.clone());
            pending.extend(absorbed);
            leads.insert(id, record);
        }
        Ok((leads, keys))
    }

    async fn get(&self, key: Item) -> Result<Option<Item>, StoreError> {
        Ok(self
            .db
            .get_item()
            .table_name(&self.leads_table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::dynamodb)?
            .item)
    }

    async fn identity(&self, customer_key: &str) -> Result<Option<CustomerItem>, StoreError> {
        self.get(key(customer_key, "IDENTITY"))
            .await?
            .map(from_item)
            .transpose()
    }

    /// Deletes the lead as read, with its consultant's slot freed (if open)
    /// and the erasure audited, in one transaction; a lead changed meanwhile
    /// is read again.
    async fn delete_lead(
        &self,
        read: &LeadRecord,
        request: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let lead_key = || key(format!("LEAD#{}", read.lead_id), "LEAD");
        let event = AuditEvent {
            lead_id: read.lead_id.clone(),
            action: AuditAction::Erased,
            actor: Actor::System("leadctl erase".into()),
            at: now,
            detail: format!(
                "the customer's personal data was erased (request {})",
                leads_domain::phone::mask_phones(request)
            ),
        };
        let audit = TransactWriteItem::builder()
            .put(
                Put::builder()
                    .table_name(&self.audit_table)
                    .set_item(Some(audit_item(&event)?))
                    .build()
                    .expect("table and item are set"),
            )
            .build();
        let mut lead = read.clone();
        // False once the slot counter was found at 0 (nothing to free).
        let mut free_slot = true;
        for _ in 0..5 {
            let delete = Delete::builder()
                .table_name(&self.leads_table)
                .set_key(Some(lead_key()))
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
                let slot = Update::builder()
                    .table_name(&self.leads_table)
                    .set_key(Some(key(
                        format!("ASSIGN#{dealer}"),
                        &format!("STAFF#{staff}"),
                    )))
                    .update_expression("ADD #open :minus")
                    .condition_expression("#open > :zero")
                    .expression_attribute_names("#open", "open")
                    .expression_attribute_values(":minus", AttributeValue::N("-1".into()))
                    .expression_attribute_values(":zero", AttributeValue::N("0".into()))
                    .build()
                    .expect("table and key are set");
                items.push(TransactWriteItem::builder().update(slot).build());
            }
            let err = match self
                .db
                .transact_write_items()
                .set_transact_items(Some(items))
                .send()
                .await
            {
                Ok(_) => return Ok(()),
                Err(err) => err,
            };
            let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
                err.as_service_error()
            else {
                return Err(StoreError::dynamodb(err));
            };
            let failed = |at: usize| {
                cancelled
                    .cancellation_reasons()
                    .get(at)
                    .and_then(|r| r.code())
                    == Some("ConditionalCheckFailed")
            };
            if failed(2) {
                free_slot = false;
            }
            if failed(0) {
                // Changed since read: read again (gone: erased meanwhile).
                match self.get(lead_key()).await? {
                    None => return Ok(()),
                    Some(item) => lead = from_item(item)?,
                }
            }
        }
        Err(StoreError::Conflict {
            operation: "erasing a lead",
        })
    }

    /// Removes the body of a raw payload (true if there was one).
    async fn empty_raw_payload(
        &self,
        reference: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        applied(
            self.db
                .update_item()
                .table_name(&self.raw_table)
                .key("pk", s(reference))
                .update_expression("REMOVE body SET erased_at = :now")
                .condition_expression("attribute_exists(body)")
                .expression_attribute_values(":now", s(now.to_rfc3339()))
                .send()
                .await,
        )
    }

    /// Deletes the messages of `dlq` that `erase` selects; the others are
    /// made visible again. Returns how many were deleted.
    async fn scrub_dead_letters(
        &self,
        dlq: &str,
        erase: impl Fn(&str) -> bool,
    ) -> Result<usize, StoreError> {
        let mut deleted = 0;
        let mut kept = Vec::new();
        loop {
            let out = self
                .sqs
                .receive_message()
                .queue_url(dlq)
                .max_number_of_messages(10)
                // Long enough to read the whole queue once before any comes back.
                .visibility_timeout(120)
                .send()
                .await
                .map_err(StoreError::sqs)?;
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                break;
            }
            for m in messages {
                let receipt = m.receipt_handle.unwrap_or_default();
                if erase(m.body.as_deref().unwrap_or_default()) {
                    self.sqs
                        .delete_message()
                        .queue_url(dlq)
                        .receipt_handle(receipt)
                        .send()
                        .await
                        .map_err(StoreError::sqs)?;
                    deleted += 1;
                } else {
                    kept.push(receipt);
                }
            }
        }
        for receipt in kept {
            self.sqs
                .change_message_visibility()
                .queue_url(dlq)
                .receipt_handle(receipt)
                .visibility_timeout(0)
                .send()
                .await
                .map_err(StoreError::sqs)?;
        }
        Ok(deleted)
    }
}
