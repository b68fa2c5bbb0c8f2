//! WeCom app messages (`POST /cgi-bin/message/send`, text cards).
//!
//! - The access token comes from `GET /cgi-bin/gettoken` and is cached until
//!   shortly before it expires; one fetch at a time (a lock), so a burst of
//!   jobs on a cold start asks once.
//! - A token WeCom says is expired or invalid (42001, 40014) is fetched again
//!   and the message sent once more, within the same attempt.
//! - `invaliduser` recipients failed permanently; the others got it.
//! - At most 30 messages a minute per member: recipients over the window are
//!   left out and reported throttled (SQS retries the job later).
//! - A hand-off of a WeCom contact moves it to the new consultant
//!   (`POST /cgi-bin/externalcontact/transfer_customer`, or
//!   `.../resigned/transfer_customer` for a member who left), one contact
//!   per delivery, with the same token.

use chrono::{DateTime, Utc};
use leads_domain::delivery::{
    token_refresh_at, transfer_verdict, wecom_verdict, ChannelKind, Failure, RateWindow,
    WecomReply, WecomVerdict, WECOM_TOKEN_ERRCODES,
};
use leads_domain::notification::WecomTransfer;
use leads_domain::templates::truncate_bytes;
use serde::Deserialize;
use tokio::sync::Mutex;

use super::{
    request_failure, status_failure, Address, Attempt, AttemptFuture, Channel, Envelope, Recipient,
};
use crate::config::WecomConfig;

struct CachedToken {
    value: String,
    refresh_at: DateTime<Utc>,
}

pub struct WecomChannel {
    http: reqwest::Client,
    config: WecomConfig,
    token: Mutex<Option<CachedToken>>,
    window: std::sync::Mutex<RateWindow>,
}

#[derive(Deserialize)]
struct TokenReply {
    #[serde(default)]
    errcode: i64,
    #[serde(default)]
    errmsg: String,
    #[serde(default)]
    access_token: String,
    #[serde(default)]
    expires_in: i64,
}

impl WecomChannel {
    pub fn new(http: reqwest::Client, config: WecomConfig) -> Self {
        let window = RateWindow::wecom(config.per_member_per_minute);
        WecomChannel {
            http,
            config,
            token: Mutex::new(None),
            window: std::sync::Mutex::new(window),
        }
    }

    /// The corp whose members and contacts this client reaches.
    pub fn corp_id(&self) -> &str {
        &self.config.corp_id
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.base_url.trim_end_matches('/'))
    }

    /// The cached token, or a new one if it is missing, due for refresh, or
    /// `stale` (the one WeCom just refused).
    async fn token(&self, stale: Option<&str>) -> Result<String, Failure> {
        let mut cached = self.token.lock().await;
        let now = Utc::now();
        if let Some(t) = cached.as_ref() {
            if t.refresh_at > now && Some(t.value.as_str()) != stale {
                return Ok(t.value.clone());
            }
        }
        let reply = self
            .http
            .get(self.url("/cgi-bin/gettoken"))
            .query(&[
                ("corpid", self.config.corp_id.as_str()),
                ("corpsecret", &self.config.corp_secret.expose()),
            ])
            .send()
            .await
            .map_err(request_failure)?;
        if let Some(failure) = status_failure(reply.status()) {
            // Whatever the status, a token we cannot get is not the job's fault.
            return Err(Failure::Transient(format!(
                "gettoken: {}",
                failure.reason()
            )));
        }
        let reply: TokenReply = reply.json().await.map_err(request_failure)?;
        if reply.errcode != 0 || reply.access_token.is_empty() {
            return Err(Failure::Transient(format!(
                "gettoken errcode {}: {}",
                reply.errcode, reply.errmsg
            )));
        }
        tracing::info!(expires_in = reply.expires_in, "wecom access token fetched");
        let value = reply.access_token;
        *cached = Some(CachedToken {
            value: value.clone(),
            refresh_at: token_refresh_at(now, reply.expires_in),
        });
        Ok(value)
    }

    /// POSTs `body` to `path` with the cached token; when WeCom says the
    /// token is expired or invalid (`errcode` of the answer), fetches a new
    /// one and sends once more. The second answer is the caller's to judge.
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
        errcode: impl Fn(&T) -> i64,
    ) -> Result<T, Failure> {
        let token = self.token(None).await?;
        let reply: T = self.post_to(path, &token, body).await?;
        let code = errcode(&reply);
        if !WECOM_TOKEN_ERRCODES.contains(&code) {
            return Ok(reply);
        }
        // Revoked or expired early: fetch a new one and send once more.
        tracing::info!(
            errcode = code,
            "wecom refused the token; fetching a new one"
        );
        let fresh = self.token(Some(&token)).await?;
        self.post_to(path, &fresh, body).await
    }

    async fn post_to<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        token: &str,
        body: &serde_json::Value,
    ) -> Result<T, Failure> {
        let reply = self
            .http
            .post(self.url(path))
            .query(&[("access_token", token)])
            .json(body)
            .send()
            .await
            .map_err(request_failure)?;
        if let Some(failure) = status_failure(reply.status()) {
            return Err(failure);
        }
        reply.json().await.map_err(request_failure)
    }

    /// Moves one WeCom contact to another member (see the module docs).
    async fn transfer(&self, t: &WecomTransfer) -> Result<(), Failure> {
        #[derive(Deserialize)]
        struct Customer {
            #[serde(default)]
            errcode: i64,
        }
        #[derive(Deserialize)]
        struct Reply {
            errcode: i64,
            #[serde(default)]
            errmsg: String,
            #[serde(default)]
            customer: Vec<Customer>,
        }
        let path = match t.resigned {
            true => "/cgi-bin/externalcontact/resigned/transfer_customer",
            false => "/cgi-bin/externalcontact/transfer_customer",
        };
        let body = serde_json::json!({
            "handover_userid": t.handover_userid,
            "takeover_userid": t.takeover_userid,
            "external_userid": [t.external_userid],
        });
        let reply: Reply = self.call(path, &body, |r: &Reply| r.errcode).await?;
        transfer_verdict(
            reply.errcode,
            &reply.errmsg,
            reply.customer.first().map(|c| c.errcode),
        )
    }

    async fn attempt(&self, envelope: &Envelope<'_>, to: &[Recipient]) -> Attempt {
        // Contacts to move are one request each; messages share one.
        if to
            .iter()
            .all(|r| matches!(r.address, Address::WecomTransfer(_)))
        {
            let mut results = Vec::with_capacity(to.len());
            for r in to {
                if let Address::WecomTransfer(t) = &r.address {
                    results.push(self.transfer(t).await);
                }
            }
            return results;
        }
        let userid = |r: &Recipient| match &r.address {
            Address::Wecom(u) => Some(u.clone()),
            _ => None,
        };
        // Take a rate slot per member now; those over the window wait for SQS.
        let now = Utc::now();
        let allowed: Vec<bool> = {
            let mut window = self.window.lock().expect("rate window lock");
            to.iter()
                .map(|r| userid(r).is_some_and(|u| window.try_take(&u, now)))
                .collect()
        };
        let members: Vec<String> = to
            .iter()
            .zip(&allowed)
            .filter(|(_, ok)| **ok)
            .filter_map(|(r, _)| userid(r))
            .collect();
        let outcome = if members.is_empty() {
            Ok(Vec::new())
        } else {
            self.send_to(envelope, &members).await
        };
        to.iter()
            .zip(allowed)
            .map(|(r, allowed)| {
                let Some(u) = userid(r) else {
                    return Err(Failure::Permanent("no WeCom userid".into()));
                };
                if !allowed {
                    return Err(Failure::Throttled(format!(
                        "over {} messages a minute for this member",
                        self.config.per_member_per_minute
                    )));
                }
                match &outcome {
                    Ok(rejected) if rejected.contains(&u) => {
                        Err(Failure::Permanent("wecom invaliduser".into()))
                    }
                    Ok(_) => Ok(()),
                    Err(failure) => Err(failure.clone()),
                }
            })
            .collect()
    }

    /// Sends one text card to `members`; returns those WeCom rejected.
    async fn send_to(
        &self,
        envelope: &Envelope<'_>,
        members: &[String],
    ) -> Result<Vec<String>, Failure> {
        let m = envelope.message;
        let body = serde_json::json!({
            "touser": members.join("|"),
            "msgtype": "textcard",
            "agentid": self.config.agent_id,
            "textcard": {
                "title": truncate_bytes(&m.title, 128),
                "description": truncate_bytes(&m.body, 512),
                "url": m.url,
                "btntxt": m.button,
            },
            // WeCom drops an identical message within 30 minutes: a second
            // line of defence behind our own delivery keys.
            "enable_duplicate_check": 1,
            "duplicate_check_interval": 1800,
        });
        let reply: WecomReply = self
            .call("/cgi-bin/message/send", &body, |r: &WecomReply| r.errcode)
            .await?;
        match wecom_verdict(&reply, members) {
            WecomVerdict::Sent { rejected } => Ok(rejected),
            WecomVerdict::TokenExpired => Err(Failure::Transient(format!(
                "wecom refused a fresh token (errcode {})",
                reply.errcode
            ))),
            WecomVerdict::Failed(failure) => Err(failure),
        }
    }
}

impl Channel for WecomChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Wecom
    }

    fn send<'a>(&'a self, envelope: &'a Envelope<'a>, to: &'a [Recipient]) -> AttemptFuture<'a> {
        Box::pin(self.attempt(envelope, to))
    }
}
