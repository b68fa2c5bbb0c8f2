//! Raw accepted webhook bodies, kept with a TTL so a lead can be traced back to
//! exactly what the platform sent.
//!
//! The intake's conditional put of the raw body is also its claim on the
//! delivery (see the README, "Webhook intake"): the item carries a `state`
//! (`SENDING` until a take-over confirms the send, then `SENT`) and a lease, the
//! time by which its owner has either enqueued the delivery's messages or given
//! the claim back.

use std::time::Duration;

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::item::from_item;
use crate::error::applied;
use crate::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SendState {
    /// Claimed; the owner enqueues before its lease ends (or gives it back).
    Sending,
    /// A take-over re-sent the messages and confirmed it.
    Sent,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawPayload {
    /// The lead's `raw_payload_ref`.
    pub pk: String,
    pub source: String,
    pub received_at: DateTime<Utc>,
    /// The body as received (UTF-8 checked by the caller; WeCom bodies are
    /// ciphertext). Empty once erased (`leadctl erase`): the item stays as the claim.
    #[serde(default)]
    pub body: String,
    pub expires_at: i64,
    /// `None` on items written before the claim lived here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<SendState>,
    /// Epoch ms: the owner's send deadline (see the module doc).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_until_ms: Option<i64>,
    /// Who holds the claim: an attempt recognises its own write when the SDK
    /// retried a request that had reached DynamoDB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_id: Option<String>,
}

/// A random id for one attempt's claim.
pub fn new_claim_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    // RandomState is seeded randomly per process and per instance.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(nanos);
    format!("{nanos:x}-{:016x}", h.finish())
}

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The item was written: this caller owns the delivery.
    Owner,
    /// Someone claimed it before.
    Taken {
        state: SendState,
        lease_until_ms: i64,
        claim_id: Option<String>,
    },
}

#[allow(async_fn_in_trait)]
pub trait RawPayloadStore {
    async fn put(&self, payload: &RawPayload) -> Result<(), StoreError>;
    async fn get(&self, reference: &str) -> Result<Option<RawPayload>, StoreError>;
}

pub struct DynamoRawPayloads {
    client: aws_sdk_dynamodb::Client,
    table: String,
    pub retention: Duration,
}

impl DynamoRawPayloads {
    pub fn new(
        client: aws_sdk_dynamodb::Client,
        table: impl Into<String>,
        retention: Duration,
    ) -> Self {
        DynamoRawPayloads {
            client,
            table: table.into(),
            retention,
        }
    }

    pub fn payload(
        &self,
        reference: String,
        source: &str,
        body: String,
        received_at: DateTime<Utc>,
    ) -> RawPayload {
        RawPayload {
            pk: reference,
            source: source.to_string(),
            received_at,
            body,
            expires_at: received_at.timestamp() + self.retention.as_secs() as i64,
            state: None,
            lease_until_ms: None,
            claim_id: None,
        }
    }

    /// Writes `payload` as claim `claim_id` (`SENDING`, lease until
    /// `lease_until`) if no live item has its reference: one conditional put,
    /// no read-then-write. A `Taken` with this `claim_id` is this caller's own
    /// write (an SDK retry of a put that had landed).
    pub async fn claim(
        &self,
        payload: &RawPayload,
        claim_id: &str,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Claim, StoreError> {
        let mut item = payload.clone();
        item.state = Some(SendState::Sending);
        item.lease_until_ms = Some(lease_until.timestamp_millis());
        item.claim_id = Some(claim_id.to_string());
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(serde_dynamo::to_item(&item)?))
            // Expired items count as absent (TTL deletion lags by up to 48 h).
            .condition_expression("attribute_not_exists(pk) OR expires_at < :now_s")
            .expression_attribute_values(":now_s", AttributeValue::N(now.timestamp().to_string()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Claim::Owner),
            Err(err) => match err.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(e)) => {
                    let old: Option<RawPayload> = e.item.clone().map(from_item).transpose()?;
                    Ok(match old {
                        Some(RawPayload {
                            state: Some(state),
                            lease_until_ms: Some(lease_until_ms),
                            claim_id,
                            ..
                        }) => Claim::Taken {
                            state,
                            lease_until_ms,
                            claim_id,
                        },
                        // An item from before claims lived here (its delivery was
                        // enqueued then), or an emulator without the old item.
                        _ => Claim::Taken {
                            state: SendState::Sent,
                            lease_until_ms: 0,
                            claim_id: None,
                        },
                    })
                }
                _ => Err(StoreError::dynamodb(err)),
            },
        }
    }

    /// Takes over (as `claim_id`) a claim whose lease ended while it was still
    /// `SENDING`: `false` if someone else did first (the lease changed) or it
    /// is `SENT`. Idempotent for the same `claim_id` (SDK retries).
    pub async fn take_over(
        &self,
        reference: &str,
        old_lease_until_ms: i64,
        claim_id: &str,
        lease_until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(reference.to_string()))
            .condition_expression(
                "(#state = :sending AND lease_until_ms = :old) \
                 OR (#state = :sending AND claim_id = :mine AND lease_until_ms = :new)",
            )
            .update_expression("SET lease_until_ms = :new, claim_id = :mine")
            .expression_attribute_values(":mine", AttributeValue::S(claim_id.to_string()))
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":sending", AttributeValue::S("SENDING".into()))
            .expression_attribute_values(":old", AttributeValue::N(old_lease_until_ms.to_string()))
            .expression_attribute_values(
                ":new",
                AttributeValue::N(lease_until.timestamp_millis().to_string()),
            )
            .send()
            .await;
        applied(result)
    }

    /// Confirms a take-over's send, so later redeliveries are answered by the
    /// claim's put alone. `false` if the lease is no longer this caller's.
    pub async fn mark_sent(
        &self,
        reference: &str,
        lease_until_ms: i64,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(reference.to_string()))
            .condition_expression("lease_until_ms = :mine")
            .update_expression("SET #state = :sent")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":sent", AttributeValue::S("SENT".into()))
            .expression_attribute_values(":mine", AttributeValue::N(lease_until_ms.to_string()))
            .send()
            .await;
        applied(result)
    }

    /// Gives a claim back after a failed send, so the platform's retry claims
    /// it afresh; only while it is still this caller's claim. Also when a
    /// waiting copy marked it `SENT` meanwhile: that copy guessed wrong, and
    /// the next redelivery must send.
    pub async fn release(&self, reference: &str, claim_id: &str) -> Result<bool, StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(reference.to_string()))
            .condition_expression("claim_id = :mine")
            .expression_attribute_values(":mine", AttributeValue::S(claim_id.to_string()))
            .send()
            .await;
        applied(result)
    }
}

impl RawPayloadStore for DynamoRawPayloads {
    /// Overwrites: a retry stores the same body under the same reference.
    async fn put(&self, payload: &RawPayload) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(serde_dynamo::to_item(payload)?))
            .send()
            .await
            .map_err(StoreError::dynamodb)?;
        Ok(())
    }

    async fn get(&self, reference: &str) -> Result<Option<RawPayload>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(reference.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::dynamodb)?;
        let payload: Option<RawPayload> = out.item.map(serde_dynamo::from_item).transpose()?;
        // TTL deletion lags (up to 48 h on AWS, never on the emulator): filter on read.
        Ok(payload.filter(|p| p.expires_at >= Utc::now().timestamp()))
    }
}
