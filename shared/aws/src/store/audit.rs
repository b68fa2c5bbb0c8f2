//! The audit trail: one item per hand-off, ordered by time within the lead.

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use leads_domain::audit::AuditEvent;
use serde::Serialize;

use super::item::from_item;
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
        for chunk in events.chunks(25) {
            let mut requests = Vec::with_capacity(chunk.len());
            for e in chunk {
                let item = AuditItem {
                    pk: format!("LEAD#{}", e.lead_id),
                    sk: format!(
                        "{}#{}",
                        e.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                        serde_json::to_value(e.action)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_default()
                    ),
                    expires_at: (e.at + chrono::Duration::days(RETENTION_DAYS)).timestamp(),
                    event: e,
                };
                let put = PutRequest::builder()
                    .set_item(Some(serde_dynamo::to_item(&item)?))
                    .build()
                    .expect("item is set");
                requests.push(WriteRequest::builder().put_request(put).build());
            }
            let mut pending = requests;
            for attempt in 0..6u32 {
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, pending)
                    .send()
                    .await
                    .map_err(StoreError::dynamodb)?;
                pending = out
                    .unprocessed_items
                    .and_then(|mut m| m.remove(&self.table))
                    .unwrap_or_default();
                if pending.is_empty() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(25 << attempt)).await;
            }
            if !pending.is_empty() {
                return Err(StoreError::Service {
                    service: "dynamodb",
                    message: format!("{} audit events left unprocessed", pending.len()),
                });
            }
        }
        Ok(())
    }

    /// A lead's trail, oldest first.
    pub async fn trail(&self, lead_id: &str) -> Result<Vec<AuditEvent>, StoreError> {
        let mut events = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", AttributeValue::S(format!("LEAD#{lead_id}")))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(StoreError::dynamodb)?;
            for item in out.items.unwrap_or_default() {
                events.push(from_item(item)?);
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(events),
            }
        }
    }
}
