//! Webhook idempotency, in the style of Powertools for AWS Lambda: a delivery is
//! first recorded IN_PROGRESS with a conditional put, then COMPLETED once its
//! messages are enqueued. A redelivery finds the record and is acknowledged
//! without enqueueing again; if processing failed midway the record is released
//! (or its in-progress lease expires) so the platform's retry enqueues after all.

use std::time::Duration;

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::item::{from_item, Item};
use crate::error::applied;
use crate::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    InProgress,
    Completed,
}

/// The outcome of trying to start a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// This caller owns the delivery and must complete or release it.
    Started,
    /// Done before: acknowledge, do nothing.
    AlreadyCompleted,
    /// Another copy is being processed right now.
    InProgress,
}

#[derive(Debug, Serialize, Deserialize)]
struct Record {
    pk: String,
    status: Status,
    /// Epoch seconds after which DynamoDB may delete the record (TTL).
    expires_at: i64,
    /// Epoch ms after which an IN_PROGRESS record is considered abandoned.
    lease_until_ms: i64,
    #[serde(default)]
    messages: u32,
}

#[allow(async_fn_in_trait)]
pub trait IdempotencyStore {
    async fn begin(&self, key: &str, now: DateTime<Utc>) -> Result<Begin, StoreError>;
    async fn complete(&self, key: &str, messages: u32) -> Result<(), StoreError>;
    async fn release(&self, key: &str) -> Result<(), StoreError>;
    async fn status(&self, key: &str) -> Result<Option<Status>, StoreError>;
}

pub struct DynamoIdempotency {
    client: aws_sdk_dynamodb::Client,
    table: String,
    retention: Duration,
    lease: Duration,
}

impl DynamoIdempotency {
    /// `lease` bounds how long a crashed attempt blocks retries; keep it above
    /// the function's timeout.
    pub fn new(
        client: aws_sdk_dynamodb::Client,
        table: impl Into<String>,
        retention: Duration,
        lease: Duration,
    ) -> Self {
        DynamoIdempotency {
            client,
            table: table.into(),
            retention,
            lease,
        }
    }

    fn key(key: &str) -> Item {
        Item::from([("pk".to_string(), AttributeValue::S(key.to_string()))])
    }
}

impl IdempotencyStore for DynamoIdempotency {
    async fn begin(&self, key: &str, now: DateTime<Utc>) -> Result<Begin, StoreError> {
        let record = Record {
            pk: key.to_string(),
            status: Status::InProgress,
            expires_at: now.timestamp() + self.retention.as_secs() as i64,
            lease_until_ms: now.timestamp_millis() + self.lease.as_millis() as i64,
            messages: 0,
        };
        // Take the key if it is new, expired (TTL deletion can lag by days), or an
        // abandoned in-progress attempt. One conditional write: no read-then-write race.
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(serde_dynamo::to_item(&record)?))
            .condition_expression(
                "attribute_not_exists(pk) OR expires_at < :now_s \
                 OR (#status = :in_progress AND lease_until_ms < :now_ms)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":now_s", AttributeValue::N(now.timestamp().to_string()))
            .expression_attribute_values(
                ":now_ms",
                AttributeValue::N(now.timestamp_millis().to_string()),
            )
            .expression_attribute_values(":in_progress", AttributeValue::S("IN_PROGRESS".into()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Begin::Started),
            Err(err) => match err.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(e)) => {
                    let existing: Option<Record> = e.item.clone().map(from_item).transpose()?;
                    Ok(match existing.map(|r| r.status) {
                        Some(Status::Completed) => Begin::AlreadyCompleted,
                        // Without the old item (some emulators), treat as in progress.
                        _ => Begin::InProgress,
                    })
                }
                _ => Err(StoreError::dynamodb(err)),
            },
        }
    }

    async fn complete(&self, key: &str, messages: u32) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(key)))
            .update_expression("SET #status = :completed, messages = :messages")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":completed", AttributeValue::S("COMPLETED".into()))
            .expression_attribute_values(":messages", AttributeValue::N(messages.to_string()))
            .send()
            .await
            .map_err(StoreError::dynamodb)?;
        Ok(())
    }

    async fn release(&self, key: &str) -> Result<(), StoreError> {
        // Only an unfinished attempt is released; a completed one stays.
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(key)))
            .condition_expression("#status = :in_progress")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":in_progress", AttributeValue::S("IN_PROGRESS".into()))
            .send()
            .await;
        applied(result).map(|_| ())
    }

    async fn status(&self, key: &str) -> Result<Option<Status>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::dynamodb)?;
        Ok(out
            .item
            .map(from_item::<Record>)
            .transpose()?
            .map(|r| r.status))
    }
}
