//! Webhook intake: HTTP request in, domain call, effects out.
//!
//! 1. `leads_domain::intake::handle` authenticates and parses (pure).
//! 2. An accepted delivery's raw body is written with a conditional put that is
//!    also the claim on the delivery (state `SENDING`, a lease of [`LEASE`]).
//! 3. The owner of the claim sends the messages to the lead queue: 2 AWS
//!    requests in all. If the send fails it gives the claim back and answers
//!    500, so the platform's retry enqueues: nothing accepted is lost.
//!
//! Copies and retries find the claim. One that arrives during the lease is a
//! concurrent copy: it waits for the lease to end and looks again. A claim
//! given back it claims itself. A lease that ended on an unconfirmed `SENDING`
//! claim cannot tell a sent delivery from an owner that died between its put
//! and its send, or whose send and release both failed, so the copy takes the
//! claim over, sends again and marks it `SENT`; the router's delivery marker
//! makes that possible second message a no-op.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, RequestExt, Response};
use leads_aws::secrets::CachedSecret;
use leads_aws::store::{new_claim_id, Claim, DynamoRawPayloads, MessageQueue, SendState, SqsQueue};
use leads_aws::{config, AwsClients, Settings};
use leads_domain::identity::PhoneHasher;
use leads_domain::intake::normalise::raw_payload_ref;
use leads_domain::intake::{
    self, IntakeError, IntakeMessage, IntakeRequest, IntakeSecrets, Method, Normaliser, Outcome,
    Reply, Source,
};
use leads_domain::seal::ContactSeal;

/// How long a claim's owner has to enqueue (or give the claim back), from just
/// before its put. Copies arriving meanwhile wait this long at most, inside the
/// platforms' 5-second window.
pub const LEASE: Duration = Duration::from_millis(3_000);
/// The owner stops trying to send this long before its lease ends, and a
/// waiting copy looks again this long after it: room for clock skew between
/// instances and for the owner's release to land.
const MARGIN: Duration = Duration::from_millis(250);
/// Claims a copy looks at before asking the platform to retry (409).
const MAX_ROUNDS: usize = 3;
/// How long an owner whose send failed keeps trying to give the claim back.
const RELEASE_FOR: Duration = Duration::from_millis(3_000);

pub struct Intake {
    /// Re-read from Secrets Manager after their TTL (a rotation needs no redeploy).
    secrets: CachedSecret<IntakeSecrets>,
    /// Seals each lead's phone and name before it goes on the queue.
    seal: ContactSeal,
    normaliser: Normaliser,
    raw_payloads: DynamoRawPayloads,
    lead_queue: SqsQueue,
    /// `ACCEPT_MAINLAND_MOBILES` (default true); false outside China.
    accept_mainland_mobiles: bool,
}

/// Effects failed after the delivery was claimed: the platform must retry.
#[derive(Debug)]
struct EffectError(String);

impl Intake {
    /// Builds from the environment: table/queue names from the template; the
    /// webhook secrets and the phone-hash key from Secrets Manager (by the ids
    /// in `WEBHOOK_SECRET_ID` and `PHONE_HASH_SECRET_ID`), the webhook secrets
    /// read again every `SECRETS_TTL_SECONDS`.
    pub async fn from_env() -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let settings = Settings::from_env()?;
        let clients = AwsClients::from_env().await;
        let secrets = leads_aws::secrets::intake_secrets(&clients.secrets).await?;
        let accept = match config::optional("ACCEPT_MAINLAND_MOBILES").as_deref() {
            None | Some("true") => true,
            Some("false") => false,
            Some(other) => {
                return Err(
                    format!("ACCEPT_MAINLAND_MOBILES must be true or false, not {other:?}").into(),
                )
            }
        };
        Ok(Self::with_secrets(&settings, &clients, secrets)
            .await
            .accepting_mainland_mobiles(accept))
    }

    /// false: refuse leads with a mainland mobile (a stack outside China).
    pub fn accepting_mainland_mobiles(mut self, accept: bool) -> Self {
        self.accept_mainland_mobiles = accept;
        self
    }

    /// Fixed secrets (tests, benchmarks).
    pub fn new(settings: &Settings, clients: &AwsClients, secrets: IntakeSecrets) -> Self {
        let key = secrets.phone_hash_key.as_bytes().to_vec();
        Self::build(settings, clients, CachedSecret::fixed(secrets), &key)
    }

    /// Secrets that are read again after their TTL (the phone-hash key in
    /// them never changes: it is read once, with them).
    pub async fn with_secrets(
        settings: &Settings,
        clients: &AwsClients,
        secrets: CachedSecret<IntakeSecrets>,
    ) -> Self {
        let key = secrets.get().await.phone_hash_key.as_bytes().to_vec();
        Self::build(settings, clients, secrets, &key)
    }

    fn build(
        settings: &Settings,
        clients: &AwsClients,
        secrets: CachedSecret<IntakeSecrets>,
        phone_hash_key: &[u8],
    ) -> Self {
        Intake {
            normaliser: Normaliser::new(PhoneHasher::new(phone_hash_key.to_vec())),
            seal: ContactSeal::from_phone_hash_key(phone_hash_key),
            secrets,
            raw_payloads: DynamoRawPayloads::new(
                clients.dynamodb.clone(),
                &settings.tables.raw_payload,
                settings.raw_payload_retention,
            ),
            lead_queue: SqsQueue::new(clients.sqs.clone(), &settings.queues.lead),
            accept_mainland_mobiles: true,
        }
    }

    pub async fn handle(&self, request: Request) -> Response<Body> {
        let source_name = source_of(&request);
        let source = Source::parse(&source_name);
        let result = match source {
            None => Err(IntakeError::UnknownSource),
            Some(source) => self.process(source, &request).await,
        };
        match result {
            Ok(response) => response,
            Err(err) => {
                // The source as we know it, never the path as sent.
                let source = source.map_or("unknown", Source::as_str);
                tracing::warn!(source, status = err.status(), code = err.code(), reason = %err, "webhook rejected");
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
        let secrets = self.secrets.get().await;
        match intake::handle(&req, &secrets, &self.normaliser)? {
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
            } => {
                if let Err(refused) =
                    intake::check_residency(&messages, self.accept_mainland_mobiles)
                {
                    leads_aws::emf::count(leads_aws::emf::names::MAINLAND_MOBILES_REFUSED, 1);
                    return Err(refused);
                }
                let mut messages = messages;
                for message in &mut messages {
                    if let IntakeMessage::Lead(lead) = message {
                        self.seal.seal(lead);
                    }
                }
                Ok(self
                .accept(source, &delivery_key, body, &messages, &reply)
                .await
                .unwrap_or_else(|EffectError(message)| {
                    tracing::error!(%source, %delivery_key, error = %message, "webhook not stored; the platform will retry");
                    error_response(500, "internal", "temporary failure; please retry")
                }))
            }
        }
    }

    /// Stores and enqueues one delivery once per delivery key (see the module doc).
    async fn accept(
        &self,
        source: Source,
        delivery_key: &str,
        body: &[u8],
        messages: &[IntakeMessage],
        reply: &Reply,
    ) -> Result<Response<Body>, EffectError> {
        let fail = |e: leads_aws::StoreError| EffectError(e.to_string());
        let payload = self.raw_payloads.payload(
            raw_payload_ref(source, delivery_key),
            source.as_str(),
            String::from_utf8_lossy(body).into_owned(),
            Utc::now(),
        );
        let attempt = Attempt {
            source,
            delivery_key,
            reference: &payload.pk,
            claim_id: new_claim_id(),
        };
        for _ in 0..MAX_ROUNDS {
            let now = Utc::now();
            let lease_until = now + LEASE;
            match self
                .raw_payloads
                .claim(&payload, &attempt.claim_id, lease_until, now)
                .await
                .map_err(fail)?
            {
                Claim::Owner => return self.send(&attempt, messages, lease_until, reply).await,
                // Our own put: it had landed before the SDK retried it.
                Claim::Taken {
                    state: SendState::Sending,
                    lease_until_ms,
                    claim_id: Some(holder),
                } if holder == attempt.claim_id => {
                    let lease_until =
                        DateTime::from_timestamp_millis(lease_until_ms).unwrap_or(lease_until);
                    return self.send(&attempt, messages, lease_until, reply).await;
                }
                Claim::Taken {
                    state: SendState::Sent,
                    ..
                } => {
                    tracing::info!(%source, %delivery_key, "redelivery acknowledged, not enqueued again");
                    return Ok(reply_response(reply));
                }
                Claim::Taken {
                    lease_until_ms: lease,
                    ..
                } if lease > now.timestamp_millis() => {
                    // Someone holds the claim now: wait for its lease, then look again.
                    let wait = (lease - now.timestamp_millis()) as u64 + MARGIN.as_millis() as u64;
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                }
                Claim::Taken {
                    lease_until_ms: lease,
                    ..
                } => {
                    // A lease ended unconfirmed: maybe sent, maybe not. Send again.
                    // This holds for a copy that waited out the lease too: an
                    // owner whose send failed and whose release failed leaves
                    // the same unchanged lease as an owner that sent.
                    let new_lease = Utc::now() + LEASE;
                    if self
                        .raw_payloads
                        .take_over(&payload.pk, lease, &attempt.claim_id, new_lease)
                        .await
                        .map_err(fail)?
                    {
                        tracing::info!(%source, %delivery_key, "unconfirmed claim taken over; enqueueing again");
                        let response = self.send(&attempt, messages, new_lease, reply).await?;
                        if response.status() == StatusCode::OK {
                            if let Err(e) = self
                                .raw_payloads
                                .mark_sent(&payload.pk, new_lease.timestamp_millis())
                                .await
                            {
                                // Harmless: the next redelivery sends once more.
                                tracing::warn!(%source, %delivery_key, error = %e, "send not confirmed on the claim");
                            }
                        }
                        return Ok(response);
                    }
                }
            }
        }
        tracing::info!(%source, %delivery_key, "delivery still being processed; asking for a retry");
        Ok(error_response(
            409,
            "in_progress",
            "this delivery is being processed; retry later",
        ))
    }

    /// The claim's owner enqueues the messages before its lease ends; on
    /// failure it gives the claim back and answers 500 so the platform retries.
    async fn send(
        &self,
        attempt: &Attempt<'_>,
        messages: &[IntakeMessage],
        lease_until: DateTime<Utc>,
        reply: &Reply,
    ) -> Result<Response<Body>, EffectError> {
        let (source, delivery_key) = (attempt.source, attempt.delivery_key);
        let budget = (lease_until - Utc::now())
            .to_std()
            .unwrap_or_default()
            .saturating_sub(MARGIN);
        let error = match tokio::time::timeout(budget, self.lead_queue.send_all(messages)).await {
            Ok(Ok(())) => {
                let leads = messages
                    .iter()
                    .filter(|m| matches!(m, IntakeMessage::Lead(_)))
                    .count();
                tracing::info!(%source, %delivery_key, leads, stats = messages.len() - leads, "webhook accepted");
                return Ok(reply_response(reply));
            }
            Ok(Err(e)) => e.to_string(),
            // Storing the claim and the raw body used the whole lease (slow
            // storage under a burst): nothing was sent.
            Err(_) if budget.is_zero() => "the claim's lease ran out before the enqueue".into(),
            Err(_) => format!("enqueue took longer than {budget:?}"),
        };
        // Give the claim back, retrying while storage is briefly unavailable.
        let give_up = tokio::time::Instant::now() + RELEASE_FOR;
        let mut pause = Duration::from_millis(100);
        loop {
            match self
                .raw_payloads
                .release(attempt.reference, &attempt.claim_id)
                .await
            {
                Ok(_) => break,
                Err(release) if tokio::time::Instant::now() + pause >= give_up => {
                    // The claim stays: answer only after its lease, so the
                    // platform's retry finds it ended and sends again.
                    tracing::warn!(%source, %delivery_key, error = %release, "claim not released; waiting out its lease");
                    let left = (lease_until - Utc::now()).to_std().unwrap_or_default();
                    tokio::time::sleep(left + MARGIN).await;
                    break;
                }
                Err(_) => {
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
            }
        }
        Err(EffectError(error))
    }
}

/// One attempt at a delivery: who it is for and its claim's id.
struct Attempt<'a> {
    source: Source,
    delivery_key: &'a str,
    reference: &'a str,
    claim_id: String,
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
