//! Webhook intake: HTTP request in, domain call, effects out.
//!
//! 1. `leads_domain::intake::handle` authenticates and parses (pure).
//! 2. An accepted delivery is claimed in the idempotency table (conditional put).
//! 3. Its raw body is kept (TTL), its messages go to the lead queue, and the
//!    claim is marked completed. Any failure releases the claim and answers 500,
//!    so the platform's retry enqueues after all: nothing accepted is lost.

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, RequestExt, Response};
use leads_aws::store::{
    Begin, DynamoIdempotency, DynamoRawPayloads, IdempotencyStore, MessageQueue, RawPayloadStore,
    SqsQueue,
};
use leads_aws::{config, AwsClients, Settings};
use leads_domain::identity::PhoneHasher;
use leads_domain::intake::normalise::raw_payload_ref;
use leads_domain::intake::{
    self, IntakeError, IntakeMessage, IntakeRequest, IntakeSecrets, Method, Normaliser, Outcome,
    Reply, Source,
};

/// How long a claimed delivery blocks its copies if this attempt dies (above the
/// function timeout of 10 s).
const LEASE: Duration = Duration::from_secs(30);
/// How long a concurrent copy waits for the first one to finish before asking
/// the platform to retry.
const WAIT_FOR_COPY: Duration = Duration::from_millis(2_000);

pub struct Intake {
    secrets: IntakeSecrets,
    normaliser: Normaliser,
    idempotency: DynamoIdempotency,
    raw_payloads: DynamoRawPayloads,
    lead_queue: SqsQueue,
}

/// Effects failed after the delivery was claimed: the platform must retry.
#[derive(Debug)]
struct EffectError(String);

impl Intake {
    /// Builds from the environment: table/queue names from the template, the
    /// secrets JSON from `INTAKE_SECRETS` (Secrets Manager in AWS).
    pub async fn from_env() -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let settings = Settings::from_env()?;
        let secrets = IntakeSecrets::from_json(&config::required("INTAKE_SECRETS")?)?;
        let clients = AwsClients::from_env().await;
        Ok(Self::new(&settings, &clients, secrets))
    }

    pub fn new(settings: &Settings, clients: &AwsClients, secrets: IntakeSecrets) -> Self {
        let hasher = PhoneHasher::new(secrets.phone_hash_key.as_bytes().to_vec());
        Intake {
            normaliser: Normaliser::new(hasher),
            secrets,
            idempotency: DynamoIdempotency::new(
                clients.dynamodb.clone(),
                &settings.tables.idempotency,
                settings.idempotency_retention,
                LEASE,
            ),
            raw_payloads: DynamoRawPayloads::new(
                clients.dynamodb.clone(),
                &settings.tables.raw_payload,
                settings.raw_payload_retention,
            ),
            lead_queue: SqsQueue::new(clients.sqs.clone(), &settings.queues.lead),
        }
    }

    pub async fn handle(&self, request: Request) -> Response<Body> {
        let source_name = source_of(&request);
        let result = match Source::parse(&source_name) {
            None => Err(IntakeError::UnknownSource(source_name.clone())),
            Some(source) => self.process(source, &request).await,
        };
        match result {
            Ok(response) => response,
            Err(err) => {
                tracing::warn!(source = %source_name, status = err.status(), code = err.code(), reason = %err, "webhook rejected");
                error_response(err.status(), err.code(), &err.to_string())
            }
        }
    }

    async fn process(
        &self,
        source: Source,
        request: &Request,
    ) -> Result<Response<Body>, IntakeError> {
        let method = match request.method().as_str() {
            "GET" => Method::Get,
            "POST" => Method::Post,
            _ => return Err(IntakeError::MethodNotAllowed),
        };
        let headers: HashMap<String, String> = request
            .headers()
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    k.as_str().to_ascii_lowercase(),
                    v.to_str().ok()?.to_string(),
                ))
            })
            .collect();
        let query: HashMap<String, String> = request
            .query_string_parameters()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let body: &[u8] = request.body().as_ref();
        let now = Utc::now();
        let req = IntakeRequest {
            source,
            method,
            headers: &headers,
            query: &query,
            body,
            now,
        };
        match intake::handle(&req, &self.secrets, &self.normaliser)? {
            Outcome::Handshake(reply) => {
                tracing::info!(%source, "url verification answered");
                Ok(reply_response(&reply))
            }
            Outcome::Ignored { reason, reply } => {
                tracing::info!(%source, %reason, "webhook acknowledged, nothing to enqueue");
                Ok(reply_response(&reply))
            }
            Outcome::Accepted {
                delivery_key,
                messages,
                reply,
            } => Ok(self
                .accept(source, &delivery_key, body, &messages, &reply)
                .await
                .unwrap_or_else(|EffectError(message)| {
                    tracing::error!(%source, %delivery_key, error = %message, "webhook not stored; the platform will retry");
                    error_response(500, "internal", "temporary failure; please retry")
                })),
        }
    }

    /// Stores and enqueues one delivery exactly once per delivery key.
    async fn accept(
        &self,
        source: Source,
        delivery_key: &str,
        body: &[u8],
        messages: &[IntakeMessage],
        reply: &Reply,
    ) -> Result<Response<Body>, EffectError> {
        let claim = format!("{source}#{delivery_key}");
        let fail = |e: leads_aws::StoreError| EffectError(e.to_string());
        match self
            .idempotency
            .begin(&claim, Utc::now())
            .await
            .map_err(fail)?
        {
            Begin::AlreadyCompleted => {
                tracing::info!(%source, %delivery_key, "redelivery acknowledged, not enqueued again");
                return Ok(reply_response(reply));
            }
            Begin::InProgress => {
                return self
                    .wait_for_copy(&claim, source, delivery_key, reply)
                    .await
            }
            Begin::Started => {}
        }
        let effects = async {
            let payload = self.raw_payloads.payload(
                raw_payload_ref(source, delivery_key),
                source.as_str(),
                String::from_utf8_lossy(body).into_owned(),
                Utc::now(),
            );
            self.raw_payloads.put(&payload).await?;
            self.lead_queue.send_all(messages).await?;
            self.idempotency
                .complete(&claim, messages.len() as u32)
                .await
        };
        if let Err(e) = effects.await {
            // Let the retry through now rather than after the lease.
            if let Err(release) = self.idempotency.release(&claim).await {
                tracing::warn!(%source, %delivery_key, error = %release, "claim not released; it expires with its lease");
            }
            return Err(fail(e));
        }
        let leads = messages
            .iter()
            .filter(|m| matches!(m, IntakeMessage::Lead(_)))
            .count();
        tracing::info!(%source, %delivery_key, leads, stats = messages.len() - leads, "webhook accepted");
        Ok(reply_response(reply))
    }

    /// A copy of this delivery is being processed concurrently: wait briefly for
    /// it; if it completes, acknowledge; otherwise ask the platform to retry.
    async fn wait_for_copy(
        &self,
        claim: &str,
        source: Source,
        delivery_key: &str,
        reply: &Reply,
    ) -> Result<Response<Body>, EffectError> {
        let deadline = tokio::time::Instant::now() + WAIT_FOR_COPY;
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            match self.idempotency.status(claim).await {
                Ok(Some(leads_aws::store::idempotency::Status::Completed)) => {
                    tracing::info!(%source, %delivery_key, "concurrent copy acknowledged, not enqueued again");
                    return Ok(reply_response(reply));
                }
                Ok(_) => {}
                Err(e) => return Err(EffectError(e.to_string())),
            }
        }
        tracing::info!(%source, %delivery_key, "concurrent copy still in progress; asking for a retry");
        Ok(error_response(
            409,
            "in_progress",
            "this delivery is being processed; retry later",
        ))
    }
}

/// `{source}` from the API Gateway path parameter, else from the path itself.
fn source_of(request: &Request) -> String {
    if let Some(source) = request.path_parameters().first("source") {
        return source.to_string();
    }
    let path = request.uri().path();
    path.trim_end_matches('/')
        .rsplit_once("/webhooks/")
        .map(|(_, s)| s.to_string())
        .unwrap_or_default()
}

fn reply_response(reply: &Reply) -> Response<Body> {
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", reply.content_type)
        .body(Body::Text(reply.body.clone()))
        .expect("static response parts are valid")
}

/// Errors are JSON `{code, message}` with a stable code.
pub fn error_response(status: u16, code: &str, message: &str) -> Response<Body> {
    let body = serde_json::json!({ "code": code, "message": message });
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::Text(body.to_string()))
        .expect("static response parts are valid")
}
