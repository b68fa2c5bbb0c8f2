//! Items are domain records plus their key attributes, converted by `serde_dynamo`
//! (no hand-built attribute maps).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::StoreError;

pub type Item = HashMap<String, AttributeValue>;

/// Key attributes of a single-table item; GSI keys are optional (sparse indexes).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Keys {
    pub pk: String,
    pub sk: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gsi1pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gsi1sk: Option<String>,
}

impl Keys {
    pub fn new(pk: impl Into<String>, sk: impl Into<String>) -> Self {
        Keys {
            pk: pk.into(),
            sk: sk.into(),
            ..Keys::default()
        }
    }

    pub fn with_gsi1(mut self, pk: impl Into<String>, sk: impl Into<String>) -> Self {
        self.gsi1pk = Some(pk.into());
        self.gsi1sk = Some(sk.into());
        self
    }

    /// Just the primary key, for GetItem/DeleteItem.
    pub fn primary(&self) -> Item {
        HashMap::from([
            ("pk".to_string(), AttributeValue::S(self.pk.clone())),
            ("sk".to_string(), AttributeValue::S(self.sk.clone())),
        ])
    }
}

#[derive(Serialize)]
struct Keyed<'a, T> {
    #[serde(flatten)]
    keys: &'a Keys,
    #[serde(flatten)]
    record: &'a T,
}

/// A record with its keys, as a DynamoDB item.
pub fn to_item<T: Serialize>(keys: &Keys, record: &T) -> Result<Item, StoreError> {
    Ok(serde_dynamo::to_item(Keyed { keys, record })?)
}

/// A record from an item; key attributes are ignored.
pub fn from_item<T: DeserializeOwned>(item: Item) -> Result<T, StoreError> {
    Ok(serde_dynamo::from_item(item)?)
}

/// Every page of a query, as raw items.
pub async fn query_all_items(
    query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
) -> Result<Vec<Item>, StoreError> {
    query
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(StoreError::dynamodb)
}

/// Every page of a query, as records.
pub async fn query_all<T: DeserializeOwned>(
    query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
) -> Result<Vec<T>, StoreError> {
    query
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(StoreError::dynamodb)?
        .into_iter()
        .map(from_item)
        .collect()
}

/// Writes items in batches of 25 (see [`write_chunk`]).
pub async fn batch_put(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    items: Vec<Item>,
) -> Result<(), StoreError> {
    use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
    for chunk in items.chunks(25) {
        let requests = chunk
            .iter()
            .map(|item| {
                let put = PutRequest::builder()
                    .set_item(Some(item.clone()))
                    .build()
                    .expect("item is set");
                WriteRequest::builder().put_request(put).build()
            })
            .collect();
        write_chunk(client, table, requests).await?;
    }
    Ok(())
}

/// One chunk of at most 25 writes, retried with backoff while DynamoDB leaves
/// some unprocessed (throttling). Returns the requests made.
pub async fn write_chunk(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    mut pending: Vec<aws_sdk_dynamodb::types::WriteRequest>,
) -> Result<usize, StoreError> {
    const ATTEMPTS: u32 = 8;
    for attempt in 0..ATTEMPTS {
        let out = client
            .batch_write_item()
            .request_items(table, pending)
            .send()
            .await
            .map_err(StoreError::dynamodb)?;
        pending = out
            .unprocessed_items
            .and_then(|mut m| m.remove(table))
            .unwrap_or_default();
        if pending.is_empty() {
            return Ok(attempt as usize + 1);
        }
        tokio::time::sleep(std::time::Duration::from_millis(25 << attempt)).await;
    }
    Err(StoreError::Service {
        service: "dynamodb",
        message: format!(
            "{} items left unprocessed after {ATTEMPTS} attempts",
            pending.len()
        ),
    })
}
