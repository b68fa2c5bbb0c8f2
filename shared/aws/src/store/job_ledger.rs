//! One item per notification job (`IdempotencyTable`, `notify#{job_id}`): which
//! of its deliveries are done, which recipients WeCom rejected for good, and a
//! lease while one copy of the job delivers. Two writes per job: the claim
//! (one UpdateItem that also reads what earlier copies did) and the completion
//! (one transaction with the job's audit events).

use std::collections::BTreeSet;
use std::time::Duration;

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use chrono::{DateTime, Utc};

use super::item::Item;
use crate::StoreError;

/// What earlier copies of the job did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobState {
    /// `channel#recipient` of every delivery done (delivered or failed for good).
    pub done: BTreeSet<String>,
    /// Recipients WeCom rejected for good (they get an SMS instead).
    pub rejected: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobClaim {
    /// This copy holds the lease and delivers what is not done.
    Owner(JobState),
    /// Another copy holds the lease right now.
    Busy(JobState),
}

pub struct DynamoJobLedger {
    client: aws_sdk_dynamodb::Client,
    table: String,
    retention: Duration,
    lease: Duration,
}

impl DynamoJobLedger {
    /// `lease` bounds how long a crashed copy blocks the others: above the
    /// function's timeout, below the queue's visibility timeout.
    pub fn new(
        client: aws_sdk_dynamodb::Client,
        table: impl Into<String>,
        retention: Duration,
        lease: Duration,
    ) -> Self {
        DynamoJobLedger {
            client,
            table: table.into(),
            retention,
            lease,
        }
    }

    fn key(job_id: &str) -> (String, AttributeValue) {
        (
            "pk".to_string(),
            AttributeValue::S(format!("notify#{job_id}")),
        )
    }

    /// Takes the job's lease if nobody holds it (one conditional update that
    /// returns what earlier copies recorded).
    pub async fn claim(&self, job_id: &str, now: DateTime<Utc>) -> Result<JobClaim, StoreError> {
        let (k, v) = Self::key(job_id);
        let lease_until = now.timestamp_millis() + self.lease.as_millis() as i64;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(k, v)
            .update_expression("SET lease_until_ms = :lease, expires_at = :expires")
            .condition_expression("attribute_not_exists(lease_until_ms) OR lease_until_ms < :now")
            .expression_attribute_values(":lease", AttributeValue::N(lease_until.to_string()))
            .expression_attribute_values(
                ":expires",
                AttributeValue::N((now.timestamp() + self.retention.as_secs() as i64).to_string()),
            )
            .expression_attribute_values(
                ":now",
                AttributeValue::N(now.timestamp_millis().to_string()),
            )
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => Ok(JobClaim::Owner(state_of(
                out.attributes.unwrap_or_default(),
            ))),
            Err(err) => match err.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(e)) => {
                    Ok(JobClaim::Busy(state_of(e.item.clone().unwrap_or_default())))
                }
                _ => Err(StoreError::dynamodb(err)),
            },
        }
    }

    /// Records what this copy did and gives the lease back, in one transaction
    /// with `audit` (writes of the audit table, see `DynamoAudit::transact_put`).
    /// The lease outlives the invocation, so it is still this copy's.
    pub async fn complete(
        &self,
        job_id: &str,
        done: &BTreeSet<String>,
        rejected: &BTreeSet<String>,
        audit: Vec<TransactWriteItem>,
    ) -> Result<(), StoreError> {
        let (k, v) = Self::key(job_id);
        let mut update = Update::builder()
            .table_name(&self.table)
            .key(k, v)
            .update_expression(completion_expression(
                !done.is_empty(),
                !rejected.is_empty(),
            ))
            .expression_attribute_values(":free", AttributeValue::N("0".into()));
        for (name, values) in [(":done", done), (":rejected", rejected)] {
            if !values.is_empty() {
                update = update.expression_attribute_values(
                    name,
                    AttributeValue::Ss(values.iter().cloned().collect()),
                );
            }
        }
        let update = update
            .build()
            .map_err(|e| StoreError::Malformed(e.to_string()))?;
        let mut items = vec![TransactWriteItem::builder().update(update).build()];
        items.extend(audit);
        self.client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map_err(StoreError::dynamodb)?;
        Ok(())
    }
}

fn completion_expression(done: bool, rejected: bool) -> String {
    let adds: Vec<&str> = [(done, "done :done"), (rejected, "rejected :rejected")]
        .into_iter()
        .filter_map(|(on, e)| on.then_some(e))
        .collect();
    let mut expression = String::new();
    if !adds.is_empty() {
        expression.push_str(&format!("ADD {} ", adds.join(", ")));
    }
    expression.push_str("SET lease_until_ms = :free");
    expression
}

fn state_of(item: Item) -> JobState {
    let set = |name: &str| -> BTreeSet<String> {
        match item.get(name) {
            Some(AttributeValue::Ss(values)) => values.iter().cloned().collect(),
            _ => BTreeSet::new(),
        }
    };
    JobState {
        done: set("done"),
        rejected: set("rejected"),
    }
}
