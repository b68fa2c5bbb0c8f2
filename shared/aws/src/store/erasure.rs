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

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use leads_domain::audit::{Actor, AuditAction, AuditEvent};
use leads_domain::dedup;
use leads_domain::intake::IntakeMessage;
use leads_domain::lead::LeadRecord;
use serde::Serialize;

use super::leads::DynamoLeads;
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
    /// The leads table's side (with the audit table: each deletion is audited).
    leads: DynamoLeads,
    raw_table: String,
    /// The dead-letter queues searched for the customer's messages.
    lead_dlq: Option<String>,
    notification_dlq: Option<String>,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

impl DynamoErasure {
    pub fn new(
        db: aws_sdk_dynamodb::Client,
        sqs: aws_sdk_sqs::Client,
        tables: &crate::config::Tables,
    ) -> Self {
        DynamoErasure {
            leads: DynamoLeads::new(db.clone(), &tables.leads, &tables.stats)
                .with_audit(&tables.audit),
            db,
            sqs,
            raw_table: tables.raw_payload.clone(),
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
            let touches = self.leads.delete_touchpoints(lead_id).await?;
            report.touchpoints += touches.len();
            raw_refs.extend(touches.into_iter().filter_map(|t| t.raw_payload_ref));
            let event = AuditEvent {
                lead_id: lead_id.clone(),
                action: AuditAction::Erased,
                actor: Actor::System("leadctl erase".into()),
                at: now,
                detail: format!(
                    "the customer's personal data was erased (request {})",
                    leads_domain::phone::mask_phones(request)
                ),
            };
            self.leads.delete_lead(record, &event).await?;
            report.leads.push(lead_id.clone());
        }
        for key in &keys {
            report.identities += usize::from(self.leads.delete_identity(key).await?);
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
                pending.extend(self.leads.identity(k).await?.map(|c| c.lead_id));
            }
        }
        let mut leads = BTreeMap::new();
        while let Some(id) = pending.pop() {
            if leads.contains_key(&id) {
                continue;
            }
            let Some((record, absorbed)) = self.leads.lead_and_absorbed(&id).await? else {
                continue;
            };
            if record.brand_id != brand_id {
                return Err(StoreError::ConditionFailed(format!(
                    "lead {id} is not a lead of brand {brand_id}"
                )));
            }
            for k in record.keys() {
                let k = dedup::customer_key(brand_id, k);
                if keys.insert(k.clone()) {
                    pending.extend(self.leads.identity(&k).await?.map(|c| c.lead_id));
                }
            }
            pending.extend(record.merged_into.clone());
            pending.extend(absorbed);
            leads.insert(id, record);
        }
        Ok((leads, keys))
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
