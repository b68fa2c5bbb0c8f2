//! The real functions, reached through `cargo lambda watch` on 127.0.0.1:
//! function URLs for the HTTP ones (intake, staff API) and the runtime's
//! invoke API for the rest. Locally nothing triggers a function from a queue,
//! so [`Functions::play_queue`] plays the SQS event-source mapping: receive,
//! invoke with an SQS event, delete all but the reported `batchItemFailures`.

use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
use leads_aws::AwsClients;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::dataset::Webhook;

pub type DemoResult<T> = Result<T, Box<dyn std::error::Error>>;

pub struct Functions {
    http: reqwest::Client,
    endpoint: String,
}

/// What playing a queue's trigger did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Played {
    pub invocations: usize,
    pub messages: usize,
    /// Messages the function reported as failed (left for SQS to retry).
    pub failures: usize,
}

impl std::ops::AddAssign for Played {
    fn add_assign(&mut self, other: Played) {
        self.invocations += other.invocations;
        self.messages += other.messages;
        self.failures += other.failures;
    }
}

impl Functions {
    pub fn new(endpoint: &str) -> DemoResult<Functions> {
        Ok(Functions {
            // Lambda's own limit: a sweep or a ranking over a large region is
            // slow on the emulator.
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(900))
                .build()?,
            endpoint: endpoint.trim_end_matches('/').to_string(),
        })
    }

    /// Posts a platform's webhook to `webhook-intake`; the HTTP status.
    pub async fn webhook(&self, hook: &Webhook) -> Result<u16, String> {
        let url = format!(
            "{}/lambda-url/webhook-intake/webhooks/{}",
            self.endpoint, hook.source
        );
        let mut request = self
            .http
            .post(url)
            .query(&hook.query)
            .body(hook.body.clone());
        for (k, v) in &hook.headers {
            request = request.header(k, v);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("webhook-intake unreachable: {e}"))?;
        Ok(response.status().as_u16())
    }

    /// A staff API call as the holder of `token`: status and JSON body.
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<serde_json::Value>,
    ) -> DemoResult<(u16, serde_json::Value)> {
        let url = format!("{}/lambda-url/api{path}", self.endpoint);
        let mut request = self.http.request(method, url).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(serde_json::Value::Null);
        Ok((status, body))
    }

    /// Invokes `function` with `payload` and returns its answer; a function
    /// error is an error here.
    pub async fn invoke<R: DeserializeOwned>(
        &self,
        function: &str,
        payload: &impl Serialize,
    ) -> DemoResult<R> {
        let url = format!(
            "{}/2015-03-31/functions/{function}/invocations",
            self.endpoint
        );
        let response = self.http.post(url).json(payload).send().await?;
        let status = response.status();
        let body: serde_json::Value = response.json().await?;
        if !status.is_success() || body.get("errorType").is_some() {
            return Err(format!("{function} failed ({status}): {body}").into());
        }
        Ok(serde_json::from_value(body)?)
    }

    /// Plays the SQS trigger of `function` on `queue` with `consumers`
    /// concurrent pollers (as the event-source mapping scales out; each
    /// invocation goes to a free instance of the function). Each long-polls
    /// (1 s); with `until_empty` it stops when the queue stays empty for two
    /// polls, otherwise at its first empty one. `seen` gets every message body
    /// handed to the function.
    pub async fn play_queue(
        &self,
        clients: &AwsClients,
        queue: &str,
        function: &str,
        consumers: usize,
        until_empty: bool,
        seen: &(dyn Fn(&str) + Sync),
    ) -> DemoResult<Played> {
        let polls = (0..consumers.max(1))
            .map(|_| self.poll_queue(clients, queue, function, until_empty, seen));
        let mut played = Played::default();
        for result in futures::future::join_all(polls).await {
            played += result?;
        }
        Ok(played)
    }

    /// One poller of [`Self::play_queue`]: receive up to 10, invoke, delete
    /// all but the reported `batchItemFailures`.
    async fn poll_queue(
        &self,
        clients: &AwsClients,
        queue: &str,
        function: &str,
        until_empty: bool,
        seen: &(dyn Fn(&str) + Sync),
    ) -> DemoResult<Played> {
        let mut played = Played::default();
        let mut empty_polls = 0;
        loop {
            let received = clients
                .sqs
                .receive_message()
                .queue_url(queue)
                .max_number_of_messages(10)
                // Long polling, as the event-source mapping does: an empty
                // queue costs one request a second, not a busy loop.
                .wait_time_seconds(1)
                .send()
                .await?;
            let messages = received.messages.unwrap_or_default();
            if messages.is_empty() {
                empty_polls += 1;
                if !until_empty || empty_polls >= 2 {
                    return Ok(played);
                }
                continue;
            }
            empty_polls = 0;
            let mut event = SqsEvent::default();
            event.records = messages
                .iter()
                .map(|m| {
                    seen(m.body.as_deref().unwrap_or_default());
                    let mut record = SqsMessage::default();
                    record.message_id = m.message_id.clone();
                    record.receipt_handle = m.receipt_handle.clone();
                    record.body = m.body.clone();
                    record.event_source = Some("aws:sqs".into());
                    record.event_source_arn =
                        Some(format!("arn:aws:sqs:us-east-1:123456789012:{function}"));
                    record
                })
                .collect();
            let response: SqsBatchResponse = self.invoke(function, &event).await?;
            played.invocations += 1;
            played.messages += messages.len();
            let failed: Vec<&str> = response
                .batch_item_failures
                .iter()
                .map(|f| f.item_identifier.as_str())
                .collect();
            played.failures += failed.len();
            // What SQS's trigger does: one DeleteMessageBatch for the batch;
            // the failed ones become visible again after the timeout.
            let done: Vec<DeleteMessageBatchRequestEntry> = messages
                .iter()
                .enumerate()
                .filter(|(_, m)| !failed.contains(&m.message_id.as_deref().unwrap_or_default()))
                .filter_map(|(i, m)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .set_receipt_handle(m.receipt_handle.clone())
                        .build()
                        .ok()
                })
                .collect();
            if !done.is_empty() {
                let out = clients
                    .sqs
                    .delete_message_batch()
                    .queue_url(queue)
                    .set_entries(Some(done))
                    .send()
                    .await?;
                if !out.failed.is_empty() {
                    return Err(format!(
                        "{} messages not deleted: {:?}",
                        out.failed.len(),
                        out.failed
                    )
                    .into());
                }
            }
        }
    }
}
