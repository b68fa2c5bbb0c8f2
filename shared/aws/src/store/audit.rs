//! The audit trail: one item per hand-off, ordered by time within the lead.

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use leads_domain::audit::AuditEvent;
use serde::{Deserialize, Serialize};

use super::item::{batch_put, query_all};
use crate::StoreError;

/// Audit events are kept about 13 months (TTL), long enough for a yearly review.
const RETENTION_DAYS: i64 = 400;

pub struct DynamoAudit {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

#[derive(Serialize)]
struct AuditItem<'a> {
    pk: String,
    sk: String,
    expires_at: i64,
    #[serde(flatten)]
    event: &'a AuditEvent,
}

/// One item holding the hand-offs of one transaction (a new lead's received,
/// deduped, routed and assigned): a transaction names each item it writes,
/// and keeping the trail to one of them leaves room for the items the
/// decision depends on. [`DynamoAudit::trail`] lists the events one by one.
#[derive(Serialize)]
struct AuditGroupItem<'a> {
    pk: String,
    sk: String,
    expires_at: i64,
    events: &'a [AuditEvent],
}

/// The item of a group of audit events of one lead (see [`AuditGroupItem`]).
pub fn audit_group_item(events: &[AuditEvent]) -> Result<super::item::Item, StoreError> {
    let first = events
        .first()
        .ok_or_else(|| StoreError::Malformed("an empty audit group".into()))?;
    Ok(serde_dynamo::to_item(&AuditGroupItem {
        pk: format!("LEAD#{}", first.lead_id),
        sk: format!(
            "{}#{}#group",
            first
                .at
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            leads_domain::wire_name(&first.action)
        ),
        expires_at: (first.at + chrono::Duration::days(RETENTION_DAYS)).timestamp(),
        events,
    })?)
}

/// An audit item as stored: one event, or a transaction's group of them.
#[derive(Deserialize)]
#[serde(untagged)]
enum Stored {
    Group { events: Vec<AuditEvent> },
    One(AuditEvent),
}

/// The item of one audit event (also written inside other stores' transactions).
pub fn audit_item(e: &AuditEvent) -> Result<super::item::Item, StoreError> {
    Ok(serde_dynamo::to_item(&AuditItem {
        pk: format!("LEAD#{}", e.lead_id),
        sk: format!(
            "{}#{}",
            e.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            leads_domain::wire_name(&e.action)
        ),
        expires_at: (e.at + chrono::Duration::days(RETENTION_DAYS)).timestamp(),
        event: e,
    })?)
}

impl DynamoAudit {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoAudit {
            client,
            table: table.into(),
        }
    }

    /// Appends events. The sort key is time + action, so writing the same event
    /// again (a redelivered batch) overwrites it instead of duplicating it.
    pub async fn append(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
        let items = events
            .iter()
            .map(audit_item)
            .collect::<Result<Vec<_>, _>>()?;
        batch_put(&self.client, &self.table, items).await
    }

    /// An event as one write of someone else's transaction.
    pub fn transact_put(&self, event: &AuditEvent) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(audit_item(event)?))
            .build()
            .map_err(|e| StoreError::Malformed(e.to_string()))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// A lead's trail, oldest first.
    pub async fn trail(&self, lead_id: &str) -> Result<Vec<AuditEvent>, StoreError> {
        let stored: Vec<Stored> = query_all(
            self.client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", AttributeValue::S(format!("LEAD#{lead_id}"))),
        )
        .await?;
        let mut events: Vec<AuditEvent> = stored
            .into_iter()
            .flat_map(|s| match s {
                Stored::Group { events } => events,
                Stored::One(event) => vec![event],
            })
            .collect();
        // A group's events keep their own times (received before routed).
        events.sort_by_key(|e| e.at);
        Ok(events)
    }
}
