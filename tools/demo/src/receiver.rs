//! The outside world the notifier talks to, on 127.0.0.1: WeCom's app-message
//! API (`/cgi-bin/gettoken`, `/cgi-bin/message/send`), the SMS gateway
//! (`/sms`) and the brand's CRM webhook (`/crm`). It answers like the real
//! services do when all is well and keeps what it was sent, so the report can
//! count delivered notifications and check that none carries a full phone.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::Uri;
use axum::Json;
use serde_json::{json, Value};

/// One request the notifier made.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub path: String,
    pub body: String,
}

#[derive(Clone, Default)]
pub struct Receiver {
    seen: Arc<Mutex<Vec<Delivery>>>,
}

impl Receiver {
    /// Serves on `127.0.0.1:port` until the process ends.
    pub async fn start(port: u16) -> std::io::Result<Receiver> {
        let receiver = Receiver::default();
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(receiver)
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.seen.lock().expect("receiver lock").clone()
    }

    /// Messages per channel: WeCom app messages, SMS, CRM webhooks.
    pub fn per_channel(&self) -> BTreeMap<&'static str, usize> {
        let mut out = BTreeMap::new();
        for d in self.deliveries() {
            let channel = match d.path.as_str() {
                "/cgi-bin/message/send" => "wecom message",
                "/cgi-bin/gettoken" => "wecom access token",
                "/sms" => "sms",
                "/crm" => "crm webhook",
                _ => "other",
            };
            *out.entry(channel).or_default() += 1;
        }
        out
    }
}

async fn answer(State(receiver): State<Receiver>, uri: Uri, body: Bytes) -> Json<Value> {
    let path = uri.path().to_string();
    let reply = match path.as_str() {
        "/cgi-bin/gettoken" => {
            json!({"errcode": 0, "errmsg": "ok", "access_token": "demo-token", "expires_in": 7200})
        }
        "/cgi-bin/message/send" => {
            json!({"errcode": 0, "errmsg": "ok", "invaliduser": "", "msgid": "demo"})
        }
        // A handed-off WeCom contact: accepted (WeCom completes it in 24 h).
        "/cgi-bin/externalcontact/transfer_customer"
        | "/cgi-bin/externalcontact/resigned/transfer_customer" => {
            let asked: Value = serde_json::from_slice(&body).unwrap_or_default();
            let customers: Vec<Value> = asked["external_userid"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|id| json!({"external_userid": id, "errcode": 0}))
                .collect();
            json!({"errcode": 0, "errmsg": "ok", "customer": customers})
        }
        _ => json!({"code": 0}),
    };
    receiver.seen.lock().expect("receiver lock").push(Delivery {
        path,
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    Json(reply)
}
