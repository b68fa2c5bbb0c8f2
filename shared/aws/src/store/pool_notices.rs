//! The leads folded into a dealer's "nobody available" summary, one item per
//! (dealer, window) in `IdempotencyTable` (`pool#{summary job id}`): a string
//! set of lead ids (adding one again is a no-op, so a redelivered job counts
//! once), whether the summary was queued, and whether it was closed (read for
//! sending: later jobs go to another window).

use std::time::Duration;

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use chrono::{DateTime, Utc};

use crate::StoreError;

/// What folding a lead found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fold {
    /// Counted; `queued` says whether the summary was already put on the queue.
    Open { queued: bool },
    /// The summary was already read for sending: fold into a later window.
    Closed,
}

pub struct DynamoPoolNotices {
    client: aws_sdk_dynamodb::Client,
    table: String,
    retention: Duration,
}

impl DynamoPoolNotices {
    pub fn new(
        client: aws_sdk_dynamodb::Client,
        table: impl Into<String>,
        retention: Duration,
    ) -> Self {
        DynamoPoolNotices {
            client,
            table: table.into(),
            retention,
        }
    }

    fn key(summary_job_id: &str) -> AttributeValue {
        AttributeValue::S(format!("pool#{summary_job_id}"))
    }

    /// Adds `lead_id` to the summary unless it is closed (one conditional update).
    pub async fn fold(
        &self,
        summary_job_id: &str,
        lead_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Fold, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", Self::key(summary_job_id))
            .update_expression("ADD leads :lead SET expires_at = :expires")
            .condition_expression("attribute_not_exists(closed)")
            .expression_attribute_values(":lead", AttributeValue::Ss(vec![lead_id.to_string()]))
            .expression_attribute_values(
                ":expires",
                AttributeValue::N((now.timestamp() + self.retention.as_secs() as i64).to_string()),
            )
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => Ok(Fold::Open {
                queued: out.attributes.is_some_and(|a| a.contains_key("queued")),
            }),
            Err(err) => match err.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(_)) => Ok(Fold::Closed),
                _ => Err(StoreError::dynamodb(err)),
            },
        }
    }

    /// Notes that the summary is on the queue, so later jobs do not queue it again.
    pub async fn mark_queued(&self, summary_job_id: &str) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", Self::key(summary_job_id))
            .update_expression("SET queued = :yes")
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .send()
            .await
            .map_err(StoreError::dynamodb)?;
        Ok(())
    }

    /// Closes the summary and returns how many leads it names; the same
    /// number on every later call (closed summaries take no more leads).
    pub async fn close(&self, summary_job_id: &str) -> Result<u32, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", Self::key(summary_job_id))
            .update_expression("SET closed = :yes")
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(StoreError::dynamodb)?;
        Ok(match out.attributes.as_ref().and_then(|a| a.get("leads")) {
            Some(AttributeValue::Ss(leads)) => leads.len() as u32,
            _ => 0,
        })
    }
}
