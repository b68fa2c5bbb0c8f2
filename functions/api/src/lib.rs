//! The read/update API for dealers' staff. Every call carries a bearer token
//! (`leads_domain::auth`: a live key id, this API's audience, at most 12 h);
//! the caller is then looked up in the directory (a snapshot cached for
//! [`DIRECTORY_TTL`]): a staff id that is not on its dealer's roster is
//! refused, and the role and brand are the directory's, not the token's. A
//! caller sees and changes only their own dealer's leads, and only the
//! assignee (or the dealer's manager) sees the full phone. Brand operations
//! (the directory's `brand_ops`) read lists and KPIs of the dealers they
//! oversee and change nothing. A ranking-page
//! token (audience `rankings`) reads rankings and nothing else.
//!
//! - `GET  /leads?dealer&status&assignee&pool&from&to&limit&cursor`  a page of
//!   a dealer's leads, newest first (`leads_domain::lead_list`; brand
//!   operations name the dealer); `GET /leads/export.csv?...` the same as CSV
//! - `GET  /brands/{b}/metrics?from&to&group_by`  service KPIs of the dealers
//!   the caller oversees (`leads_domain::kpi`); `.../metrics/export.csv` as CSV
//!   (both in `oversight`)
//! - `GET  /leads/{id}`          the lead, its touchpoints
//! - `GET  /leads/{id}/audit`    its audit trail
//! - `GET  /leads/{id}/timeline` its touchpoints and audit trail in time order
//! - `POST /leads/{id}/events`   `{"event": "follow_up", "note", "intent": "H"|"A"|"B"|"C"|"N",
//!                                "next_at"?}`: a follow-up call (`leads_domain::followup`)
//! - `POST /leads/{id}/events`   `{"event": "contacted" | "invited" | "visited" | "won" |
//!                                "lost" | "marked_valid" | "marked_invalid" | "claim"}`
//!   (`lost` and `marked_invalid` with `"reason"`: a code of the brand's list)
//! - `POST /leads/{id}/events`   `{"event": "phone", "phone": "138..."}`: the phone a
//!   WeCom contact gave in the chat, on a WeCom-contact lead without a phone,
//!   linked to the customer (may merge two leads of the caller's dealer; a
//!   phone of another dealer's live lead: one generic 409, audited)
//! - `POST /leads/{id}/tags` `{"add": [...], "remove": [...]}`: manual tags
//!   (`leads_domain::tags`), by the assignee or a manager
//! - `POST /leads/{id}/transfer` `{"to": "<staff id>"}`: the dealer's manager
//!   hands an open lead to another consultant (`leads_domain::handoff`)
//! - `POST /leads/{id}/handoff` `{"to": "<staff id>"}`: the DCC agent holding
//!   the lead hands it to a sales consultant (DCC screening dealers)
//! - `POST /staff/{id}/handover` `{"to"?}`: the dealer's manager hands all of a
//!   consultant's open leads to one colleague, or each to the freest one
//! - `PUT  /staff/{id}/duty` `{"on_duty": bool}`: the dealer's manager puts a
//!   consultant off or on duty (the router honours it)
//! - `PUT  /staff/{id}/leave` `{"from", "to"}` or `{"leave": null}`: the
//!   manager sets or clears a leave window (off duty inside it)
//! - `GET  /rankings/{brand}/{date}?top=N`  the brand's top N (default 10, at
//!   most 100) for a date (`YYYY-MM-DD` or `latest`); any staff of that brand
//! - `GET  /rankings/{brand}/{date}/dealers/{dealer}`  one dealer's position,
//!   components and change; only that dealer's staff
//! - `GET  /brands/dashboard`  the brand dashboard page (static HTML, JS and
//!   the vendored chart library: loading them needs no token)
//! - `GET  /rankings/page`  the dealer ranking page (static HTML: loading it
//!   needs no token, its API calls carry one)
//! - `POST /admin/tokens`  `{"staff_id", "dealer_id", "brand_id", "hours"}`: a
//!   staff token signed here with the run-time secret, so no operator holds the
//!   signing key. Only by a direct Lambda invoke (the operator's
//!   `lambda:InvokeFunction`; `leadctl token --invoke-event` writes the event):
//!   the HTTP API routes no `/admin` path to this function, and the request
//!   context must be the one leadctl writes ([`ADMIN_INVOKE_API_ID`]). The
//!   role is the directory's, the staff member must be on that dealer of that
//!   brand, and at most [`MAX_ADMIN_TOKEN_HOURS`] long.

use chrono::{NaiveDate, Utc};
use lambda_http::{Body, Request, Response};
use leads_aws::retry::{ConflictRetry, IsConflict};
use leads_aws::secrets::{self, CachedSecret};
use leads_aws::store::{
    AssignResult, DirectoryStore, DynamoAudit, DynamoDirectory, DynamoLeads, DynamoRankings,
    MessageQueue, ReassignResult, SqsQueue, StatusResult,
};
use leads_aws::{AwsClients, Settings, StoreError};
use leads_domain::assignment::StaffLoad;
use leads_domain::audit::{Actor, AuditAction, AuditEvent};
use leads_domain::auth::{self, Claims, Keyring};
use leads_domain::crm::CrmEvent;
use leads_domain::dedup::{self, LinkOutcome};
use leads_domain::directory::{Brand, Dealer, Staff, StaffRole};
use leads_domain::handoff;
use leads_domain::identity::PhoneHasher;
use leads_domain::lead::{CustomerKey, LeadRecord, LeadStatus};
use leads_domain::notification::{NotificationJob, NotificationKind};
use leads_domain::status::{self, StatusEvent};
use leads_domain::Phone;
use serde::Deserialize;

mod lost_approval;
mod oversight;
mod tags;
pub use oversight::EXPORT_ROWS;

/// How long the API reuses a directory read (a dealer's roster, a dealer):
/// a consultant removed from the directory, or a demoted manager, loses
/// access within this time.
pub const DIRECTORY_TTL: std::time::Duration = std::time::Duration::from_secs(60);

type Cached<V> = std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, V)>>;

pub struct Api {
    /// The staff-token keys, re-read from Secrets Manager after their TTL.
    keyring: CachedSecret<Keyring>,
    directory_ttl: std::time::Duration,
    rosters: Cached<Vec<Staff>>,
    dealers: Cached<Option<Dealer>>,
    /// Brand operations staff, by brand and staff id.
    ops: Cached<Option<leads_domain::directory::BrandOps>>,
    directory: DynamoDirectory,
    leads: DynamoLeads,
    audit: DynamoAudit,
    rankings: DynamoRankings,
    notifications: SqsQueue,
    /// Every status change, for the brand's own CRM (the notifier delivers it).
    crm: SqsQueue,
    /// Turns a recorded phone into its dedup key (the intake's key); without
    /// it the `phone` event answers 500.
    phone_hasher: Option<PhoneHasher>,
    /// Write conflicts retried in process (see `handle`).
    conflicts_retried: std::sync::atomic::AtomicU64,
}

/// The `requestContext.apiId` of leadctl's direct-invoke event (an HTTP API
/// request carries its API's id instead).
pub const ADMIN_INVOKE_API_ID: &str = "leadctl-direct-invoke";
/// The longest token `/admin/tokens` issues.
pub const MAX_ADMIN_TOKEN_HOURS: i64 = auth::MAX_LIFETIME_S / 3600;

#[derive(Deserialize)]
struct TokenRequest {
    staff_id: String,
    /// Absent for brand operations (the directory's `brand_ops`).
    #[serde(default)]
    dealer_id: String,
    brand_id: String,
    #[serde(default = "default_token_hours")]
    hours: i64,
}

fn default_token_hours() -> i64 {
    12
}

/// How long a request may spend retrying write conflicts (the function's
/// timeout is 10 s).
const CONFLICT_BUDGET: std::time::Duration = std::time::Duration::from_secs(5);

/// The dealer ranking page: plain HTML and JS, no build step.
const RANKING_PAGE: &str = include_str!("ranking_page.html");

/// Rows of a brand's ranking one call returns at most.
const MAX_TOP: u32 = 100;

/// A successful answer: JSON, or a file (an export).
enum Answer {
    Json(serde_json::Value),
    File(Response<Body>),
}

/// An error answer: status, stable code, human message (never a phone number).
#[derive(Debug)]
pub struct ApiError(u16, &'static str, String);

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_conflict() {
            // Retried in `handle`; answered only if the retries ran out.
            return ApiError(503, "busy", "the lead is changing; please retry".into());
        }
        tracing::error!(error = %e, "storage failed");
        ApiError(500, "internal", "temporary failure; please retry".into())
    }
}

impl IsConflict for ApiError {
    fn is_conflict(&self) -> bool {
        self.0 == 503 && self.1 == "busy"
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TransferBody {
    to: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HandoverBody {
    #[serde(default)]
    to: Option<String>,
    /// The consultant left the company (not only on leave): their WeCom
    /// contacts move by WeCom's resigned-member transfer.
    #[serde(default)]
    left: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DutyBody {
    on_duty: bool,
}

/// `{"from", "to"}` sets the leave window, `{"leave": null}` clears it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LeaveBody {
    #[serde(default)]
    from: Option<chrono::DateTime<Utc>>,
    #[serde(default)]
    to: Option<chrono::DateTime<Utc>>,
    /// Only `null` parses: the key is allowed so the clearing body reads as
    /// what it does.
    #[serde(default, rename = "leave")]
    _clear: Option<()>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventBody {
    event: String,
    /// Only with `"event": "phone"`. Any JSON value, so that a number sent
    /// as a number is refused by our check (whose message never echoes it),
    /// not by serde's (which would).
    #[serde(default)]
    phone: Option<serde_json::Value>,
    /// With `lost` and `marked_invalid`: a reason code of the brand's list.
    #[serde(default)]
    reason: Option<String>,
    /// With `follow_up`: what was said, the intent, the next call (RFC 3339).
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    intent: Option<leads_domain::followup::Intent>,
    #[serde(default)]
    next_at: Option<String>,
}

impl Api {
    pub async fn from_env() -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let settings = Settings::from_env()?;
        let clients = AwsClients::from_env().await;
        // Both from Secrets Manager: the token keys (re-read after their TTL,
        // so a rotation needs no redeploy) and the intake's phone-hash key.
        let keyring = secrets::staff_token_keys(&clients.secrets).await?;
        let hash_key = secrets::phone_hash_key(&clients.secrets).await?;
        Ok(Self::new(&settings, &clients, Vec::new())
            .with_keyring_secret(keyring)
            .with_phone_hasher(PhoneHasher::new(hash_key)))
    }

    /// The key that turns a recorded phone into the customer's dedup key; it
    /// must be the intake's, or a recorded phone would never match a lead.
    pub fn with_phone_hasher(mut self, hasher: PhoneHasher) -> Self {
        self.phone_hasher = Some(hasher);
        self
    }

    /// The token keys (replacing the one `new` was given).
    pub fn with_keyring(self, keyring: Keyring) -> Self {
        self.with_keyring_secret(CachedSecret::fixed(keyring))
    }

    /// Token keys that are read again after their TTL.
    pub fn with_keyring_secret(mut self, keyring: CachedSecret<Keyring>) -> Self {
        self.keyring = keyring;
        self
    }

    /// How long directory reads are reused (default [`DIRECTORY_TTL`]).
    pub fn with_directory_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.directory_ttl = ttl;
        self
    }

    /// `token_secret`: the only token key, `k1` (see [`Self::with_keyring`]).
    pub fn new(settings: &Settings, clients: &AwsClients, token_secret: Vec<u8>) -> Self {
        let t = &settings.tables;
        Api {
            keyring: CachedSecret::fixed(Keyring::single("k1", &token_secret)),
            directory_ttl: DIRECTORY_TTL,
            rosters: Default::default(),
            dealers: Default::default(),
            ops: Default::default(),
            directory: DynamoDirectory::new(clients.dynamodb.clone(), &t.directory),
            // The audit table: a transfer writes its entry in its transaction.
            leads: DynamoLeads::new(clients.dynamodb.clone(), &t.leads, &t.stats)
                .with_audit(&t.audit),
            audit: DynamoAudit::new(clients.dynamodb.clone(), &t.audit),
            rankings: DynamoRankings::new(clients.dynamodb.clone(), &t.stats, &t.rankings),
            notifications: SqsQueue::new(clients.sqs.clone(), &settings.queues.notification),
            crm: SqsQueue::new(clients.sqs.clone(), &settings.queues.crm),
            phone_hasher: None,
            conflicts_retried: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Write conflicts retried in process since this API was built.
    pub fn conflicts_retried(&self) -> u64 {
        self.conflicts_retried
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub async fn handle(&self, request: Request) -> Response<Body> {
        if request.method() == "GET" && is_ranking_page(request.uri().path()) {
            return ranking_page();
        }
        if request.method() == "GET" {
            if let Some(file) = oversight::dashboard_file(request.uri().path()) {
                return file;
            }
        }
        if request.uri().path().trim_end_matches('/') == "/admin/tokens" {
            return match self.issue_token(&request).await {
                Ok(body) => json(200, &body),
                Err(ApiError(status, code, message)) => json(
                    status,
                    &serde_json::json!({ "code": code, "message": message }),
                ),
            };
        }
        // A write that met a concurrent transaction (DynamoDB's
        // TransactionConflict) is re-run from the start: it re-reads the lead
        // and decides again.
        let retry = ConflictRetry {
            reserve: std::time::Duration::from_millis(500),
            ..ConflictRetry::default()
        };
        let deadline = std::time::Instant::now() + CONFLICT_BUDGET;
        let before = self.conflicts_retried();
        let answer = retry
            .run(deadline, &self.conflicts_retried, || {
                Box::pin(self.route(&request))
            })
            .await;
        leads_aws::emf::count(
            leads_aws::emf::names::CONFLICTS_RETRIED,
            self.conflicts_retried() - before,
        );
        match answer {
            Ok(Answer::Json(body)) => json(200, &body),
            Ok(Answer::File(response)) => response,
            Err(ApiError(status, code, message)) => json(
                status,
                &serde_json::json!({ "code": code, "message": message }),
            ),
        }
    }

    async fn route(&self, request: &Request) -> Result<Answer, ApiError> {
        let header = request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        let now = Utc::now();
        let token = auth::bearer(header).map_err(unauthorized)?;
        // A ranking-page token is only good for the two ranking reads.
        let keyring = self.keyring.get().await;
        let (claims, rankings_only) = match keyring.verify(token, auth::AUD_STAFF, now) {
            Err(auth::AuthError::WrongAudience) => (
                keyring
                    .verify(token, auth::AUD_RANKINGS, now)
                    .map_err(unauthorized)?,
                true,
            ),
            verified => (verified.map_err(unauthorized)?, false),
        };
        let claims = self.authorise(claims).await?;
        let path = request.uri().path().trim_end_matches('/');
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        // Stage prefixes (`/prod/leads/...`) are tolerated.
        let parts = match parts
            .iter()
            .position(|p| matches!(*p, "leads" | "rankings" | "staff" | "brands"))
        {
            Some(i) => &parts[i..],
            None => return Err(ApiError(404, "not_found", "no such route".into())),
        };
        if rankings_only && !(request.method() == "GET" && parts[0] == "rankings") {
            return Err(ApiError(
                403,
                "forbidden",
                "a ranking-page token only reads rankings".into(),
            ));
        }
        let query = request.uri().query();
        // Exports answer a file, everything else JSON.
        match (request.method().as_str(), parts) {
            ("GET", ["leads", "export.csv"]) => {
                return self.export_leads(&claims, query).await.map(Answer::File)
            }
            ("GET", ["brands", brand, "metrics", "export.csv"]) => {
                return self
                    .export_metrics(&claims, brand, query)
                    .await
                    .map(Answer::File)
            }
            _ => {}
        }
        let answer = match (request.method().as_str(), parts) {
            ("GET", ["brands", brand, "metrics"]) => self.metrics(&claims, brand, query).await,
            ("GET", ["rankings", brand, date]) => {
                let top = top_param(request.uri().query())?;
                self.ranking_top(&claims, brand, date, top).await
            }
            ("GET", ["rankings", brand, date, "dealers", dealer]) => {
                self.ranking_position(&claims, brand, date, dealer).await
            }
            ("GET", ["leads"]) => self.list(&claims, request.uri().query()).await,
            ("GET", ["leads", id]) => self.lead(&claims, id).await,
            ("GET", ["leads", id, "audit"]) => self.trail(&claims, id).await,
            ("GET", ["leads", id, "timeline"]) => self.timeline(&claims, id).await,
            ("POST", ["leads", id, "events"]) => {
                let body: EventBody =
                    serde_json::from_slice(request.body().as_ref()).map_err(|e| {
                        // Position only: serde's message can quote the input.
                        ApiError(
                            400,
                            "malformed",
                            format!(
                                "body must be {{\"event\": ...}} (error at line {}, column {})",
                                e.line(),
                                e.column()
                            ),
                        )
                    })?;
                let follow_up_fields =
                    body.note.is_some() || body.intent.is_some() || body.next_at.is_some();
                if body.event == "follow_up" {
                    return Ok(Answer::Json(
                        self.follow_up(
                            &claims,
                            id,
                            body.note.as_deref(),
                            body.intent,
                            body.next_at.as_deref(),
                        )
                        .await?,
                    ));
                }
                if follow_up_fields {
                    return Err(ApiError(
                        400,
                        "malformed",
                        "\"note\", \"intent\" and \"next_at\" go only with the \"follow_up\" event"
                            .into(),
                    ));
                }
                match (body.event.as_str(), body.phone) {
                    ("phone", phone) => self.record_phone(&claims, id, phone).await,
                    (_, Some(_)) => Err(ApiError(
                        400,
                        "malformed",
                        "\"phone\" goes only with the \"phone\" event".into(),
                    )),
                    (event, None) => {
                        self.post_event(&claims, id, event, body.reason.as_deref())
                            .await
                    }
                }
            }
            ("POST", ["leads", id, "tags"]) => {
                let body: tags::TagsBody = body_of(request, tags::TagsBody::SHAPE)?;
                self.edit_tags(&claims, id, body).await
            }
            ("POST", ["leads", id, "transfer"]) => {
                let body: TransferBody = body_of(request, "{\"to\": \"<staff id>\"}")?;
                self.hand_off_one(&claims, id, &body.to, handoff::HandOff::Transfer)
                    .await
            }
            ("POST", ["leads", id, "handoff"]) => {
                let body: TransferBody = body_of(request, "{\"to\": \"<staff id>\"}")?;
                self.hand_off_one(&claims, id, &body.to, handoff::HandOff::DccHandoff)
                    .await
            }
            ("POST", ["staff", staff_id, "handover"]) => {
                let body: HandoverBody =
                    body_of(request, "{\"to\": \"<staff id>\", \"left\": bool} or {}")?;
                self.handover(&claims, staff_id, body.to.as_deref(), body.left)
                    .await
            }
            ("PUT", ["staff", staff_id, "duty"]) => {
                let body: DutyBody = body_of(request, "{\"on_duty\": true|false}")?;
                self.set_duty(&claims, staff_id, body.on_duty).await
            }
            ("PUT", ["staff", staff_id, "leave"]) => {
                let body: LeaveBody = body_of(
                    request,
                    "{\"from\": RFC 3339, \"to\": RFC 3339} or {\"leave\": null}",
                )?;
                self.set_leave(&claims, staff_id, body).await
            }
            _ => Err(ApiError(404, "not_found", "no such route".into())),
        };
        answer.map(Answer::Json)
    }

    /// The brand's settings (one missing from the directory: the defaults).
    async fn brand_of(&self, brand_id: &str) -> Result<Brand, ApiError> {
        Ok(self
            .directory
            .brand(brand_id)
            .await?
            .unwrap_or_else(|| Brand::with_defaults(brand_id)))
    }

    /// `POST /leads/{id}/events` `{"event": "follow_up", "note", "intent",
    /// "next_at"?}`: the assignee (or a manager) records a follow-up call on
    /// an open lead (`leads_domain::followup`).
    async fn follow_up(
        &self,
        claims: &Claims,
        lead_id: &str,
        note: Option<&str>,
        intent: Option<leads_domain::followup::Intent>,
        next_at: Option<&str>,
    ) -> Result<serde_json::Value, ApiError> {
        use leads_domain::followup;
        let me = self.caller(claims).await?;
        let (Some(note), Some(intent)) = (note, intent) else {
            return Err(ApiError(
                422,
                "follow_up_incomplete",
                "a follow-up needs \"note\" and \"intent\" (H, A, B, C or N)".into(),
            ));
        };
        let next_at = next_at
            .map(|t| {
                chrono::DateTime::parse_from_rfc3339(t)
                    .map(|d| d.with_timezone(&Utc))
                    .map_err(|_| {
                        ApiError(
                            422,
                            "bad_next_at",
                            "next_at must be an RFC 3339 time".into(),
                        )
                    })
            })
            .transpose()?;
        let brand = self.brand_of(&claims.brand_id).await?;
        for _attempt in 0..3 {
            let lead = self.visible_lead(claims, lead_id).await?;
            may_act(&lead, claims, &me)?;
            if !status::is_open(lead.status) {
                return Err(ApiError(
                    409,
                    "not_open",
                    format!(
                        "the lead is {}; only an open lead is followed up",
                        leads_domain::wire_name(&lead.status)
                    ),
                ));
            }
            let now = Utc::now();
            let checked = followup::check(note, intent, next_at, &brand.follow_up_cadence, now)
                .map_err(|e| {
                    let code = match e {
                        followup::FollowUpError::Note => "bad_note",
                        followup::FollowUpError::NextAt => "bad_next_at",
                    };
                    ApiError(422, code, e.to_string())
                })?;
            let next = checked.next_at.map_or(String::new(), |at| {
                format!(", next call {}", at.to_rfc3339())
            });
            let event = AuditEvent {
                lead_id: lead_id.to_string(),
                action: AuditAction::FollowedUp,
                actor: Actor::Staff(claims.staff_id.clone()),
                at: now,
                detail: format!("intent {intent:?}{next}: {}", checked.note),
            };
            match self
                .leads
                .record_follow_up(&lead, &checked, &event, &brand, now)
                .await?
            {
                StatusResult::Applied => {
                    return Ok(serde_json::json!({
                        "lead_id": lead_id, "intent": intent,
                        "next_follow_up_at": checked.next_at, "follow_ups": lead.follow_ups + 1
                    }))
                }
                StatusResult::Conflict => continue,
            }
        }
        Err(ApiError(
            409,
            "conflict",
            "the lead changed concurrently; retry".into(),
        ))
    }

    /// `GET /leads/{id}/timeline`: the lead's touchpoints and its audit trail
    /// (status changes, follow-ups with their notes, hand-offs) in time order.
    async fn timeline(
        &self,
        claims: &Claims,
        lead_id: &str,
    ) -> Result<serde_json::Value, ApiError> {
        self.readable_lead(claims, lead_id).await?;
        let mut entries: Vec<(chrono::DateTime<Utc>, serde_json::Value)> = self
            .leads
            .touchpoints(lead_id)
            .await?
            .into_iter()
            .map(|t| {
                (
                    t.at,
                    serde_json::json!({
                        "at": t.at, "kind": "touchpoint", "platform": t.platform,
                        "account_id": t.account_id, "scene": t.scene, "traffic": t.traffic
                    }),
                )
            })
            .collect();
        for e in self.audit.trail(lead_id).await? {
            entries.push((
                e.at,
                serde_json::json!({ "at": e.at, "kind": e.action, "actor": e.actor, "detail": e.detail }),
            ));
        }
        entries.sort_by_key(|(at, _)| *at);
        Ok(serde_json::json!({
            "lead_id": lead_id,
            "entries": entries.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
        }))
    }

    /// One lead to `to`: `POST /leads/{id}/transfer` (a manager of the
    /// lead's dealer gives an open lead to another consultant there) or
    /// `POST /leads/{id}/handoff` (the DCC agent holding a screened lead
    /// gives it to a sales consultant); see [`Self::hand_over`].
    async fn hand_off_one(
        &self,
        claims: &Claims,
        lead_id: &str,
        to: &str,
        kind: handoff::HandOff,
    ) -> Result<serde_json::Value, ApiError> {
        let me = self.caller(claims).await?;
        let (from, to) = self.hand_over(&me, claims, lead_id, Some(to), kind).await?;
        Ok(serde_json::json!({
            "lead_id": lead_id, "status": LeadStatus::Assigned,
            "assignee": to, "previous_assignee": from
        }))
    }

    /// `POST /staff/{id}/handover` `{"to"?}`: a manager hands every open lead
    /// of a consultant (on leave, leaving) to `to`, or each to the colleague
    /// on duty with the most free slots (`handoff::pick_cover`). Each lead
    /// moves as a transfer does; one that cannot is listed with why.
    async fn handover(
        &self,
        claims: &Claims,
        staff_id: &str,
        to: Option<&str>,
        left: bool,
    ) -> Result<serde_json::Value, ApiError> {
        let me = self.manager_of(claims, staff_id).await?;
        let mut moved = Vec::new();
        let mut kept = Vec::new();
        for lead_id in self
            .leads
            .open_leads_of(&claims.dealer_id, staff_id)
            .await?
        {
            match self
                .hand_over(
                    &me,
                    claims,
                    &lead_id,
                    to,
                    handoff::HandOff::Handover { left },
                )
                .await
            {
                Ok((_, to)) => {
                    moved.push(serde_json::json!({ "lead_id": lead_id, "assignee": to }))
                }
                Err(ApiError(_, code, _)) => {
                    kept.push(serde_json::json!({ "lead_id": lead_id, "reason": code }))
                }
            }
        }
        tracing::info!(manager = %me.staff_id, %staff_id, moved = moved.len(), kept = kept.len(), "handover");
        Ok(serde_json::json!({ "staff_id": staff_id, "moved": moved, "kept": kept }))
    }

    /// Moves one open lead to `to` (None: the cover pick) as manager `me`.
    /// One transaction takes a slot under the new consultant's cap, frees
    /// the previous one's, moves the lead (assigned again, a new
    /// first-contact deadline) and writes the audit entry naming the manager
    /// and both consultants (`why` says how). Returns (from, to).
    async fn hand_over(
        &self,
        me: &Staff,
        claims: &Claims,
        lead_id: &str,
        to: Option<&str>,
        kind: handoff::HandOff,
    ) -> Result<(String, String), ApiError> {
        let read = self
            .leads
            .due_lead(lead_id)
            .await?
            .filter(|r| r.lead.dealer_id.as_deref() == Some(claims.dealer_id.as_str()))
            .ok_or_else(|| unknown_lead(claims, lead_id))?;
        let roster = self.roster(&claims.dealer_id).await?;
        let from = read.lead.assignee.clone().unwrap_or_default();
        let candidates: Vec<Staff> = match to {
            Some(to) => roster
                .iter()
                .filter(|s| s.staff_id == to)
                .cloned()
                .collect(),
            None => roster.clone(),
        };
        let loads = match candidates.is_empty() {
            true => Vec::new(),
            false => {
                self.leads
                    .staff_loads(&claims.dealer_id, &candidates)
                    .await?
            }
        };
        let target = match to {
            Some(_) => loads.first(),
            None => handoff::pick_cover(&loads, &from),
        };
        if to.is_none() && target.is_none() {
            return Err(refused(handoff::Refusal::CannotTake));
        }
        kind.check(me, &read.lead, target).map_err(refused)?;
        let target = target.expect("checked");
        let to = target.staff_id.clone();
        let due = read
            .due
            .as_ref()
            .ok_or_else(|| refused(handoff::Refusal::NotOpen))?;
        let brand = self.brand_of(&read.lead.brand_id).await?;
        let now = Utc::now();
        let event = AuditEvent {
            lead_id: lead_id.to_string(),
            action: AuditAction::Reassigned,
            actor: Actor::Staff(me.staff_id.clone()),
            at: now,
            detail: format!("{} {} from {from} to {to}", kind.describe(), me.staff_id),
        };
        match self
            .leads
            .reassign(&read, due, target, &brand, Some(&event), now)
            .await?
        {
            ReassignResult::Reassigned => {
                let mut moved = read.lead.clone();
                moved.assignee = Some(to.clone());
                let mut job = NotificationJob::for_lead(
                    &moved,
                    NotificationKind::Reassigned,
                    vec![to.clone()],
                    format!("transfer-{}", now.timestamp_millis()),
                    now,
                );
                // A WeCom contact moves to the new consultant in WeCom too.
                let person = |id: &str| roster.iter().find(|s| s.staff_id == id);
                if let (Some(a), Some(b)) = (person(&from), person(&to)) {
                    job.wecom_transfer = leads_domain::notification::WecomTransfer::for_handoff(
                        &read.lead,
                        a,
                        b,
                        kind.from_resigned(),
                    );
                }
                // The lead has moved: a lost job is logged, the new assignee
                // still finds the lead in their list.
                if let Err(e) = self.notifications.send(&job).await {
                    tracing::error!(%lead_id, error = %e, "hand-off notification not sent");
                }
                tracing::info!(%lead_id, by = %me.staff_id, %from, %to, ?kind, "lead handed over");
                Ok((from, to))
            }
            ReassignResult::CapReached => Err(refused(handoff::Refusal::CannotTake)),
            ReassignResult::Changed => Err(ApiError(
                409,
                "changed",
                "the lead changed meanwhile; read it again".into(),
            )),
        }
    }

    /// `PUT /staff/{id}/duty`: a manager puts a consultant of their dealer on
    /// or off duty; the router stops (or starts) giving them leads once its
    /// directory snapshot refreshes (at most a minute).
    async fn set_duty(
        &self,
        claims: &Claims,
        staff_id: &str,
        on_duty: bool,
    ) -> Result<serde_json::Value, ApiError> {
        let me = self.manager_of(claims, staff_id).await?;
        if !self
            .directory
            .set_on_duty(&claims.dealer_id, staff_id, on_duty)
            .await?
        {
            return Err(unknown_consultant(claims, staff_id));
        }
        self.forget_roster(&claims.dealer_id);
        tracing::info!(manager = %me.staff_id, %staff_id, on_duty, "duty changed");
        Ok(serde_json::json!({ "staff_id": staff_id, "on_duty": on_duty }))
    }

    /// `PUT /staff/{id}/leave`: the dealer's manager sets (or clears) a
    /// consultant's leave window; inside it they are off duty for the
    /// router, the sweeper and hand-offs.
    async fn set_leave(
        &self,
        claims: &Claims,
        staff_id: &str,
        body: LeaveBody,
    ) -> Result<serde_json::Value, ApiError> {
        use leads_domain::directory::Leave;
        let leave = match (body.from, body.to) {
            (Some(from), Some(to)) => Some(
                Leave::new(from, to, Utc::now())
                    .map_err(|e| ApiError(422, "bad_leave", e.to_string()))?,
            ),
            (None, None) => None,
            _ => {
                return Err(ApiError(
                    400,
                    "malformed",
                    "give both \"from\" and \"to\", or {\"leave\": null} to clear".into(),
                ))
            }
        };
        let me = self.manager_of(claims, staff_id).await?;
        if !self
            .directory
            .set_leave(&claims.dealer_id, staff_id, leave.as_ref())
            .await?
        {
            return Err(unknown_consultant(claims, staff_id));
        }
        self.forget_roster(&claims.dealer_id);
        tracing::info!(manager = %me.staff_id, %staff_id, ?leave, "leave changed");
        Ok(serde_json::json!({ "staff_id": staff_id, "leave": leave }))
    }

    /// The caller, if they are the manager of `staff_id`'s dealer (403
    /// otherwise; 404 for someone not on its roster).
    async fn manager_of(&self, claims: &Claims, staff_id: &str) -> Result<Staff, ApiError> {
        let me = self.caller(claims).await?;
        if me.role != StaffRole::Manager {
            return Err(refused(handoff::Refusal::NotManager));
        }
        let roster = self.roster(&claims.dealer_id).await?;
        if !roster.iter().any(|s| s.staff_id == staff_id) {
            return Err(unknown_consultant(claims, staff_id));
        }
        Ok(me)
    }

    /// After a change to the roster: this instance sees it at once.
    fn forget_roster(&self, dealer_id: &str) {
        self.rosters.lock().expect("not poisoned").remove(dealer_id);
    }

    /// `POST /admin/tokens` (see the module docs).
    async fn issue_token(&self, request: &Request) -> Result<serde_json::Value, ApiError> {
        use lambda_http::request::RequestContext;
        use lambda_http::RequestExt;
        let direct = matches!(
            request.request_context_ref(),
            Some(RequestContext::ApiGatewayV2(ctx)) if ctx.apiid.as_deref() == Some(ADMIN_INVOKE_API_ID)
        );
        if !direct || request.method() != "POST" {
            return Err(ApiError(404, "not_found", "no such route".into()));
        }
        let body: TokenRequest = serde_json::from_slice(request.body().as_ref()).map_err(|e| {
            ApiError(
                400,
                "malformed",
                format!(
                    "body must be {{\"staff_id\", \"dealer_id\", \"brand_id\", \"hours\"}} (error at line {}, column {})",
                    e.line(),
                    e.column()
                ),
            )
        })?;
        if !(1..=MAX_ADMIN_TOKEN_HOURS).contains(&body.hours) {
            return Err(ApiError(
                400,
                "malformed",
                format!("hours must be 1 to {MAX_ADMIN_TOKEN_HOURS}"),
            ));
        }
        if body.dealer_id.is_empty() {
            let ops = self
                .directory
                .brand_ops(&body.brand_id, &body.staff_id)
                .await?
                .ok_or_else(|| {
                    ApiError(
                        404,
                        "unknown_staff",
                        format!(
                            "no brand operations {} at brand {}",
                            body.staff_id, body.brand_id
                        ),
                    )
                })?;
            let claims = Claims::staff(
                &ops.staff_id,
                "",
                &ops.brand_id,
                StaffRole::BrandOps,
                Utc::now(),
                body.hours * 3600,
            );
            return self.signed(claims).await;
        }
        let dealer = self.directory.dealer(&body.dealer_id).await?;
        let staff = self.directory.staff_of(&body.dealer_id).await?;
        let person = staff.iter().find(|s| s.staff_id == body.staff_id);
        let (Some(dealer), Some(person)) = (dealer, person) else {
            return Err(ApiError(
                404,
                "unknown_staff",
                format!("no staff {} at dealer {}", body.staff_id, body.dealer_id),
            ));
        };
        if dealer.brand_id != body.brand_id {
            return Err(ApiError(
                404,
                "unknown_staff",
                format!(
                    "dealer {} is not a dealer of brand {}",
                    body.dealer_id, body.brand_id
                ),
            ));
        }
        let claims = Claims::staff(
            &person.staff_id,
            &dealer.dealer_id,
            &dealer.brand_id,
            person.role,
            Utc::now(),
            body.hours * 3600,
        );
        self.signed(claims).await
    }

    /// `/admin/tokens`'s answer: the token signed with the current key.
    async fn signed(&self, claims: Claims) -> Result<serde_json::Value, ApiError> {
        let hours = (claims.exp - claims.iat) / 3600;
        tracing::info!(staff_id = %claims.staff_id, dealer_id = %claims.dealer_id, role = ?claims.role, hours, "staff token issued by direct invoke");
        Ok(serde_json::json!({
            "token": self.keyring.get().await.issue(&claims),
            "staff_id": claims.staff_id,
            "role": claims.role,
            "expires_at": claims.exp,
        }))
    }

    /// The lead, if the caller may read it: their dealer has it, or (brand
    /// operations) a dealer they oversee. Reads only: every write takes
    /// `visible_lead` and a caller on the dealer's roster.
    async fn readable_lead(&self, claims: &Claims, lead_id: &str) -> Result<LeadRecord, ApiError> {
        match claims.role {
            StaffRole::BrandOps => self.overseen_lead(claims, lead_id).await,
            _ => self.visible_lead(claims, lead_id).await,
        }
    }

    /// The lead, if the caller's dealer has it.
    async fn visible_lead(&self, claims: &Claims, lead_id: &str) -> Result<LeadRecord, ApiError> {
        let lead = self.leads.get(lead_id).await?;
        match lead {
            Some(l) if l.dealer_id.as_deref() == Some(claims.dealer_id.as_str()) => Ok(l),
            _ => Err(unknown_lead(claims, lead_id)),
        }
    }

    async fn lead(&self, claims: &Claims, lead_id: &str) -> Result<serde_json::Value, ApiError> {
        // Brand operations read the leads of the dealers they oversee (masked below).
        let mut lead = self.readable_lead(claims, lead_id).await?;
        // Brand operations read an unrouted lead's phone: they place it
        // (`readable_lead` lets only brand-wide operations have one).
        // The role is the directory's (see `authorise`).
        let placing = claims.role == StaffRole::BrandOps && lead.dealer_id.is_none();
        let may_call = lead.assignee.as_deref() == Some(claims.staff_id.as_str())
            || claims.role == StaffRole::Manager
            || placing;
        if placing && lead.phone.is_some() {
            self.audit
                .append(&[AuditEvent {
                    lead_id: lead_id.to_string(),
                    action: AuditAction::PhoneShown,
                    actor: Actor::Staff(claims.staff_id.clone()),
                    at: Utc::now(),
                    detail: "full phone of an unrouted lead shown to brand operations".into(),
                }])
                .await?;
        }
        if !may_call {
            lead.phone = None;
            // A name that is (or holds) a phone is masked like the phone.
            lead.customer_name = lead
                .customer_name
                .as_deref()
                .map(leads_domain::phone::mask_phones);
        }
        let touchpoints = self.leads.touchpoints(lead_id).await?;
        tracing::info!(lead_id, staff_id = %claims.staff_id, full_phone_shown = may_call && lead.phone.is_some(), "lead read");
        let auto_tags = leads_domain::tags::automatic(&lead, &touchpoints);
        Ok(serde_json::json!({ "lead": lead, "touchpoints": touchpoints, "auto_tags": auto_tags }))
    }

    async fn trail(&self, claims: &Claims, lead_id: &str) -> Result<serde_json::Value, ApiError> {
        self.readable_lead(claims, lead_id).await?;
        Ok(serde_json::json!({ "events": self.audit.trail(lead_id).await? }))
    }

    async fn post_event(
        &self,
        claims: &Claims,
        lead_id: &str,
        event: &str,
        reason: Option<&str>,
    ) -> Result<serde_json::Value, ApiError> {
        let me = &self.caller(claims).await?;
        match event {
            "claim" => return self.claim(claims, me, lead_id).await,
            "approve_lost" => return self.decide_lost(claims, me, lead_id, true).await,
            "reject_lost" => return self.decide_lost(claims, me, lead_id, false).await,
            _ => {}
        }
        let event: StatusEvent =
            serde_json::from_value(serde_json::Value::String(event.to_string())).map_err(|_| {
                // Echo the name, but never a phone typed into it.
                let shown = leads_domain::templates::mask_phones(event);
                ApiError(400, "unknown_event", format!("unknown event {shown:?}"))
            })?;
        let brand = self.brand_of(&claims.brand_id).await?;
        for _attempt in 0..3 {
            let lead = self.visible_lead(claims, lead_id).await?;
            may_act(&lead, claims, me)?;
            // The same rules for every actor (`status::change`).
            let change = match status::change(lead.status, event, reason, &brand) {
                Ok(Some(change)) => change,
                Ok(None) => {
                    return Ok(
                        serde_json::json!({ "lead_id": lead_id, "status": lead.status, "changed": false }),
                    )
                }
                Err(status::ChangeError::Reason(e)) => {
                    let code = match e {
                        status::ReasonError::Required { .. } => "reason_required",
                        status::ReasonError::Unknown { .. } => "unknown_reason",
                        status::ReasonError::NotExpected => "unexpected_reason",
                    };
                    return Err(ApiError(422, code, e.to_string()));
                }
                Err(status::ChangeError::Transition(e)) => {
                    return Err(ApiError(409, "invalid_transition", e.to_string()))
                }
            };
            // Where the brand audits them, a consultant's lost waits for a manager.
            if status::needs_approval(event, me.role, &brand) {
                let reason = change.reason.clone().unwrap_or_default();
                match self.request_lost(claims, &lead, reason).await? {
                    Some(answer) => return Ok(answer),
                    None => continue,
                }
            }
            let next = change.next;
            let now = Utc::now();
            match self.leads.apply_status(&lead, &change, &brand, now).await? {
                StatusResult::Applied => {
                    self.audit
                        .append(&[AuditEvent {
                            lead_id: lead_id.to_string(),
                            action: AuditAction::StatusChanged,
                            actor: Actor::Staff(claims.staff_id.clone()),
                            at: now,
                            detail: match &change.reason {
                                Some(r) => {
                                    format!("{event:?}: {:?} -> {next:?} (reason {r})", lead.status)
                                }
                                None => format!("{event:?}: {:?} -> {next:?}", lead.status),
                            },
                        }])
                        .await?;
                    tracing::info!(lead_id, staff_id = %claims.staff_id, ?event, from = ?lead.status, to = ?next, "status changed");
                    let crm_event = CrmEvent::status_changed(
                        &lead,
                        event,
                        next,
                        change.reason.clone(),
                        &claims.staff_id,
                        now,
                    );
                    let crm = self.tell_crm(&crm_event).await;
                    return Ok(
                        serde_json::json!({ "lead_id": lead_id, "status": next, "changed": true, "crm_event": crm }),
                    );
                }
                StatusResult::Conflict => continue,
            }
        }
        Err(ApiError(
            409,
            "conflict",
            "the lead changed concurrently; retry".into(),
        ))
    }

    /// Queues a status change for the brand's CRM: `"queued"`, or `"unsent"`
    /// when SQS refused it after the SDK's retries. The change itself is
    /// saved either way, so the caller is not told to retry it; the miss is
    /// logged and counted (`CrmEventsUnsent`, on the operations dashboard).
    async fn tell_crm(&self, event: &CrmEvent) -> &'static str {
        match self.crm.send(event).await {
            Ok(_) => "queued",
            Err(e) => {
                tracing::error!(event_id = %event.event_id, error = %e, "status change saved but its CRM event could not be queued");
                leads_aws::emf::count(leads_aws::emf::names::CRM_EVENTS_UNSENT, 1);
                "unsent"
            }
        }
    }

    /// The phone a WeCom contact gave in the chat, recorded by the assignee
    /// or a manager: the phone's identity is linked to the customer's lead
    /// (one transaction; see `DynamoLeads::link`). If the phone already has
    /// another live lead inside the window, the later of the two is merged
    /// into the earlier one and the survivor's assignee is told.
    async fn record_phone(
        &self,
        claims: &Claims,
        lead_id: &str,
        phone: Option<serde_json::Value>,
    ) -> Result<serde_json::Value, ApiError> {
        let me = self.caller(claims).await?;
        let lead = self.visible_lead(claims, lead_id).await?;
        may_act(&lead, claims, &me)?;
        // Only a WeCom contact lacks a phone; a phone already recorded is
        // not replaced (repeating the same one is a no-op).
        // The messages never contain the input.
        let phone = match phone {
            Some(serde_json::Value::String(text)) => Phone::parse(&text).map_err(|e| e.to_string()),
            Some(serde_json::Value::Null) | None => Err("\"phone\" is missing".to_string()),
            Some(_) => Err("\"phone\" must be a JSON string".to_string()),
        }
        .map_err(|message| ApiError(422, "invalid_phone", message))?;
        let wecom_contact = matches!(lead.customer, CustomerKey::Wecom { .. });
        if !wecom_contact || lead.phone.as_ref().is_some_and(|p| *p != phone) {
            return Err(ApiError(
                409,
                "not_a_wecom_contact",
                "a phone is recorded only on a WeCom-contact lead that has none".into(),
            ));
        }
        let hasher = self.phone_hasher.as_ref().ok_or_else(|| {
            tracing::error!("PHONE_HASH_KEY is not configured; cannot record phones");
            ApiError(500, "internal", "phone linking is not configured".into())
        })?;
        let brand = self
            .directory
            .brand(&lead.brand_id)
            .await?
            .ok_or_else(|| ApiError(500, "internal", "brand missing".into()))?;
        let key = CustomerKey::Phone {
            hash: hasher.hash(&phone),
        };
        let now = Utc::now();
        let outcome = self
            .leads
            .link_for_staff(&brand, &lead, &key, Some(&phone), now)
            .await?;
        let events = dedup::link_audit(&outcome, &key, &Actor::Staff(claims.staff_id.clone()), now);
        if !events.is_empty() {
            self.audit.append(&events).await?;
        }
        if let Some(job) = dedup::link_notification(&outcome, now) {
            self.notifications.send(&job).await?;
        }
        if let LinkOutcome::Refused { holder_lead_id, .. } = &outcome {
            tracing::warn!(lead_id, staff_id = %claims.staff_id, %holder_lead_id, "phone refused: another dealer's live lead has it");
            // The same answer whatever the other lead is: no id, name or city.
            return Err(ApiError(
                409,
                "phone_unavailable",
                "this phone cannot be recorded on this lead".into(),
            ));
        }
        let customer_lead = &outcome.lead().lead_id;
        tracing::info!(lead_id, staff_id = %claims.staff_id, outcome = outcome.as_str(), %customer_lead, "phone recorded");
        let mut answer = serde_json::json!({
            "lead_id": lead_id,
            "event": "phone",
            "outcome": outcome.as_str(),
            "changed": matches!(outcome, LinkOutcome::Linked { .. } | LinkOutcome::Merged { .. }),
            "phone_masked": phone.masked(),
            // The lead that has the customer now (this one unless merged away).
            "customer_lead_id": customer_lead,
        });
        if let LinkOutcome::Merged { survivor, absorbed } = &outcome {
            answer["merged"] = serde_json::json!({
                "survivor": survivor.lead_id,
                "absorbed": absorbed.lead_id,
            });
        }
        Ok(answer)
    }

    /// The caller as a member of the dealer's staff (tokens outlive changes).
    async fn caller(&self, claims: &Claims) -> Result<Staff, ApiError> {
        let staff = self.roster(&claims.dealer_id).await?;
        staff
            .into_iter()
            .find(|s| s.staff_id == claims.staff_id)
            .ok_or_else(not_on_staff)
    }

    /// The verified claims checked against the directory: the staff member
    /// is on the roster of the token's dealer, and the role and brand are
    /// the directory's (a demoted manager is a consultant at once, within
    /// the snapshot's TTL).
    async fn authorise(&self, mut claims: Claims) -> Result<Claims, ApiError> {
        // Brand operations are in the brand's list, on no dealer's roster.
        if claims.role == StaffRole::BrandOps {
            self.brand_ops(&claims).await?.ok_or_else(not_on_staff)?;
            return Ok(claims);
        }
        let me = self.caller(&claims).await?;
        let dealer = self
            .dealer(&claims.dealer_id)
            .await?
            .ok_or_else(not_on_staff)?;
        if me.dealer_id != claims.dealer_id || dealer.brand_id != claims.brand_id {
            return Err(not_on_staff());
        }
        claims.role = me.role;
        Ok(claims)
    }

    /// The dealer's staff as of now (a consultant on leave is off duty).
    async fn roster(&self, dealer_id: &str) -> Result<Vec<Staff>, ApiError> {
        let v = match fresh(&self.rosters, dealer_id, self.directory_ttl) {
            Some(v) => v,
            None => {
                let v = self.directory.staff_of(dealer_id).await?;
                keep(&self.rosters, dealer_id, v.clone());
                v
            }
        };
        let now = Utc::now();
        Ok(v.into_iter().map(|s| s.as_of(now)).collect())
    }

    async fn dealer(&self, dealer_id: &str) -> Result<Option<Dealer>, ApiError> {
        if let Some(v) = fresh(&self.dealers, dealer_id, self.directory_ttl) {
            return Ok(v);
        }
        let v = self.directory.dealer(dealer_id).await?;
        keep(&self.dealers, dealer_id, v.clone());
        Ok(v)
    }

    async fn claim(
        &self,
        claims: &Claims,
        me: &leads_domain::directory::Staff,
        lead_id: &str,
    ) -> Result<serde_json::Value, ApiError> {
        let lead = self.visible_lead(claims, lead_id).await?;
        if lead.status != LeadStatus::Offered || !lead.offered_to.contains(&claims.staff_id) {
            return Err(ApiError(
                409,
                "not_claimable",
                "the lead is not on offer to you".into(),
            ));
        }
        let brand = self
            .directory
            .brand(&lead.brand_id)
            .await?
            .ok_or_else(|| ApiError(500, "internal", "brand missing".into()))?;
        let loads = self
            .leads
            .staff_loads(&claims.dealer_id, std::slice::from_ref(me))
            .await?;
        let load: &StaffLoad = &loads[0];
        if !load.can_take() {
            return Err(ApiError(
                409,
                "at_cap",
                "you are at your open-lead cap or off duty".into(),
            ));
        }
        let now = Utc::now();
        match self.leads.assign(&lead, load, &brand, now).await? {
            AssignResult::Assigned => {
                self.audit
                    .append(&[AuditEvent {
                        lead_id: lead_id.to_string(),
                        action: AuditAction::Claimed,
                        actor: Actor::Staff(claims.staff_id.clone()),
                        at: now,
                        detail: String::new(),
                    }])
                    .await?;
                Ok(
                    serde_json::json!({ "lead_id": lead_id, "status": LeadStatus::Assigned, "assignee": claims.staff_id }),
                )
            }
            AssignResult::AlreadyAssigned => Err(ApiError(
                409,
                "already_claimed",
                "someone else claimed it first".into(),
            )),
            AssignResult::CapReached => Err(ApiError(
                409,
                "at_cap",
                "you are at your open-lead cap".into(),
            )),
        }
    }
}

impl Api {
    /// The snapshot date a path names: `YYYY-MM-DD`, or `latest` (the brand's
    /// newest ranked date).
    async fn ranking_date(&self, brand_id: &str, date: &str) -> Result<NaiveDate, ApiError> {
        if date == "latest" {
            return self.rankings.latest_date(brand_id).await?.ok_or_else(|| {
                ApiError(
                    404,
                    "no_ranking",
                    format!("brand {brand_id} has not been ranked yet"),
                )
            });
        }
        date.parse().map_err(|_| {
            ApiError(
                400,
                "bad_date",
                format!("date must be YYYY-MM-DD or latest, not {date:?}"),
            )
        })
    }

    /// Brand top N: any staff member of that brand.
    async fn ranking_top(
        &self,
        claims: &Claims,
        brand_id: &str,
        date: &str,
        top: u32,
    ) -> Result<serde_json::Value, ApiError> {
        if claims.brand_id != brand_id {
            return Err(ApiError(
                403,
                "forbidden",
                "you may only see your own brand's ranking".into(),
            ));
        }
        let date = self.ranking_date(brand_id, date).await?;
        let meta = self.rankings.meta(brand_id, date).await?.ok_or_else(|| {
            ApiError(
                404,
                "no_ranking",
                format!("no ranking of brand {brand_id} for {date}"),
            )
        })?;
        let rows = self.rankings.rows(brand_id, date, top).await?;
        Ok(serde_json::json!({
            "brand_id": brand_id,
            "date": date,
            "dealers": meta.dealers,
            "window": { "from": meta.window_from, "to": meta.window_to },
            "previous_date": meta.previous_date,
            "top": rows,
        }))
    }

    /// One dealer's position, components and change: that dealer's own staff only.
    async fn ranking_position(
        &self,
        claims: &Claims,
        brand_id: &str,
        date: &str,
        dealer_id: &str,
    ) -> Result<serde_json::Value, ApiError> {
        if claims.brand_id != brand_id || claims.dealer_id != dealer_id {
            return Err(ApiError(
                403,
                "forbidden",
                "you may only see your own dealer's ranking detail".into(),
            ));
        }
        let date = self.ranking_date(brand_id, date).await?;
        let not_ranked = || {
            ApiError(
                404,
                "no_ranking",
                format!("dealer {dealer_id} has no ranking for {date}"),
            )
        };
        let position = self
            .rankings
            .position(dealer_id, date)
            .await?
            // A dealer that moved brands keeps its old rows: show only this brand's.
            .filter(|p| p.brand_id == brand_id)
            .ok_or_else(not_ranked)?;
        let meta = self
            .rankings
            .meta(brand_id, date)
            .await?
            .ok_or_else(not_ranked)?;
        Ok(serde_json::json!({
            "brand_id": brand_id,
            "date": date,
            "dealers": position.dealers,
            "window": { "from": meta.window_from, "to": meta.window_to },
            "previous_date": meta.previous_date,
            "basis": meta.basis,
            "dealer": position.dealer,
        }))
    }
}

/// A lead absent or of another dealer: the same answer for both, so that
/// nobody can probe for another dealer's leads.
fn unknown_consultant(claims: &Claims, staff_id: &str) -> ApiError {
    ApiError(
        404,
        "unknown_consultant",
        format!("no consultant {staff_id} at dealer {}", claims.dealer_id),
    )
}

fn unknown_lead(claims: &Claims, lead_id: &str) -> ApiError {
    ApiError(
        404,
        "unknown_lead",
        format!("no lead {lead_id} for dealer {}", claims.dealer_id),
    )
}

/// Only the lead's assignee or a manager of its dealer acts on it.
fn may_act(lead: &LeadRecord, claims: &Claims, me: &Staff) -> Result<(), ApiError> {
    if lead.assignee.as_deref() == Some(claims.staff_id.as_str()) || me.role == StaffRole::Manager {
        return Ok(());
    }
    Err(ApiError(
        403,
        "forbidden",
        "only the assignee or a manager may update this lead".into(),
    ))
}

/// A JSON body of shape `T`; a bad one is refused with its position only
/// (serde's message can quote the input).
fn body_of<T: serde::de::DeserializeOwned>(request: &Request, shape: &str) -> Result<T, ApiError> {
    serde_json::from_slice(request.body().as_ref()).map_err(|e| {
        ApiError(
            400,
            "malformed",
            format!(
                "body must be {shape} (error at line {}, column {})",
                e.line(),
                e.column()
            ),
        )
    })
}

/// The API answer of a refused hand-off.
fn refused(r: handoff::Refusal) -> ApiError {
    use handoff::Refusal::*;
    let (status, code) = match r {
        NotManager => (403, "forbidden"),
        UnknownConsultant => (404, "unknown_consultant"),
        NotOpen => (409, "not_open"),
        SameConsultant => (409, "same_consultant"),
        CannotTake => (409, "cannot_take"),
        NotScreener => (403, "forbidden"),
    };
    ApiError(status, code, r.to_string())
}

fn unauthorized(e: auth::AuthError) -> ApiError {
    ApiError(401, "unauthorized", e.to_string())
}

fn not_on_staff() -> ApiError {
    ApiError(
        403,
        "forbidden",
        "caller is not on this dealer's staff".into(),
    )
}

fn fresh<V: Clone>(cache: &Cached<V>, key: &str, ttl: std::time::Duration) -> Option<V> {
    let cache = cache.lock().expect("cache lock");
    let (at, v) = cache.get(key)?;
    (at.elapsed() < ttl).then(|| v.clone())
}

fn keep<V>(cache: &Cached<V>, key: &str, value: V) {
    cache
        .lock()
        .expect("cache lock")
        .insert(key.to_string(), (std::time::Instant::now(), value));
}

/// `top=N` from a query string: default 10, 1..=100.
fn top_param(query: Option<&str>) -> Result<u32, ApiError> {
    let raw = query
        .unwrap_or("")
        .split('&')
        .find_map(|pair| pair.strip_prefix("top="));
    match raw {
        None => Ok(10),
        Some(n) => n
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_TOP).contains(n))
            .ok_or_else(|| {
                ApiError(
                    400,
                    "bad_top",
                    format!("top must be a number from 1 to {MAX_TOP}"),
                )
            }),
    }
}

/// `/rankings/page`, behind any stage or local prefix.
fn is_ranking_page(path: &str) -> bool {
    path.trim_end_matches('/').ends_with("/rankings/page")
}

fn ranking_page() -> Response<Body> {
    Response::builder()
        .status(200)
        .header("content-type", "text/html; charset=utf-8")
        // The page only talks to this API; the token stays in the fragment.
        .header(
            "content-security-policy",
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
             frame-ancestors 'none'",
        )
        .header("referrer-policy", "no-referrer")
        .header("x-content-type-options", "nosniff")
        .header("cache-control", "no-cache")
        .body(Body::Text(RANKING_PAGE.to_string()))
        .expect("static response parts are valid")
}

fn json(status: u16, body: &serde_json::Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::Text(body.to_string()))
        .expect("static response parts are valid")
}
