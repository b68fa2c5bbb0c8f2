//! The audit trail: one item per hand-off, ordered by time within the lead.

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use leads_domain::audit::AuditEvent;
use serde::Serialize;

use super::item::{batch_put, query_all, Item};
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
        let items = events.iter().map(item).collect::<Result<Vec<_>, _>>()?;
        batch_put(&self.client, &self.table, items).await
    }

    /// An event as one write of someone else's transaction.
    pub fn transact_put(&self, event: &AuditEvent) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item(event)?))
            .build()
            .map_err(|e| StoreError::Malformed(e.to_string()))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// A lead's trail, oldest first.
    pub async fn trail(&self, lead_id: &str) -> Result<Vec<AuditEvent>, StoreError> {
        query_all(
            self.client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", AttributeValue::S(format!("LEAD#{lead_id}"))),
        )
        .await
    }
}

fn item(e: &AuditEvent) -> Result<Item, StoreError> {
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
