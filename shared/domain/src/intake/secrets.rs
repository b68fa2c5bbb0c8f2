//! Intake secrets, loaded from configuration (Secrets Manager in AWS, the local
//! stack's generated file locally); never from the repository.
//!
//! ```json
//! {
//!   "phone_hash_key": "…",
//!   "douyin": { "<client_key>": "<client_secret>" },
//!   "douyin_accounts": { "<client_key>": ["<account id>", "…"] },
//!   "hmac": {
//!     "autohome": { "secrets": ["current", "previous"], "accounts": { "<account id>": ["…"] } }
//!   },
//!   "oem_crm_brands": { "<brand id>": ["…"] },
//!   "wecom": [ { "corp_id": "ww…", "token": "…", "encoding_aes_key": "<43 chars>" } ]
//! }
//! ```
//! Several secrets per source allow rotation without downtime.

use std::collections::HashMap;

use serde::Deserialize;

use super::Source;

/// What the intake authenticates with. In AWS two secrets: the webhook secret
/// (JSON, everything but the key, read by [`IntakeSecrets::from_webhooks_json`])
/// and the phone-hash key (its own secret, never rotated in place). Unknown
/// fields are refused: a misspelt `douyin_acounts` must not silently unbind apps.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntakeSecrets {
    /// Key of the HMAC that turns phones into dedup keys.
    #[serde(default)]
    pub phone_hash_key: String,
    /// Douyin apps: client_key -> client_secret (also used by `douyin_stats`).
    #[serde(default)]
    pub douyin: HashMap<String, String>,
    /// The accounts each Douyin app may speak for (leads and stats); a body
    /// naming another account is refused (401). An app without an entry may
    /// speak for any account (a start-up warning says so).
    #[serde(default)]
    pub douyin_accounts: HashMap<String, Vec<String>>,
    /// HMAC-signed sources (feiyu, vertical media, OEM CRM).
    #[serde(default)]
    pub hmac: HashMap<Source, HmacSecrets>,
    /// The brand CRM's secrets per brand (`oem_crm` with `X-Brand-Id`): a
    /// delivery signed with one brand's secret creates leads only for that
    /// brand's accounts (the router checks).
    #[serde(default)]
    pub oem_crm_brands: HashMap<String, Vec<String>>,
    /// WeCom corps whose callbacks we accept.
    #[serde(default)]
    pub wecom: Vec<WecomCorp>,
}

#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HmacSecrets {
    /// Accepted for every account of the source.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Per-account secrets, chosen by the `X-Account-Id` header.
    #[serde(default)]
    pub accounts: HashMap<String, Vec<String>>,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WecomCorp {
    pub corp_id: String,
    pub token: String,
    pub encoding_aes_key: String,
}

impl IntakeSecrets {
    /// Whether the Douyin app `client_key` may deliver for `account`.
    pub fn douyin_may_speak_for(&self, client_key: &str, account: &str) -> bool {
        match self.douyin_accounts.get(client_key) {
            Some(accounts) => accounts.iter().any(|a| a == account),
            None => true,
        }
    }

    /// Douyin apps not bound to accounts (each may speak for any account).
    pub fn unbound_douyin_apps(&self) -> Vec<&str> {
        self.douyin
            .keys()
            .filter(|k| !self.douyin_accounts.contains_key(*k))
            .map(String::as_str)
            .collect()
    }

    /// The webhook secret's JSON plus the phone-hash key from its own secret.
    /// A `phone_hash_key` inside the JSON is refused: the key lives only in
    /// its secret, so the internet-facing webhook secret cannot leak it.
    pub fn from_webhooks_json(text: &str, phone_hash_key: &str) -> Result<Self, String> {
        let mut secrets = Self::parse(text)?;
        if !secrets.phone_hash_key.is_empty() {
            return Err(
                "webhook secret: phone_hash_key belongs in the phone-hash secret, not here".into(),
            );
        }
        secrets.phone_hash_key = Self::phone_hash_key(phone_hash_key)?;
        secrets.check()
    }

    /// The phone-hash secret's text, trimmed: at least 16 characters.
    pub fn phone_hash_key(text: &str) -> Result<String, &'static str> {
        let key = text.trim();
        if key.len() < 16 {
            return Err("the phone-hash key must be at least 16 characters");
        }
        Ok(key.to_string())
    }

    /// Everything in one JSON, the key included (tests and benchmarks).
    pub fn from_json(text: &str) -> Result<Self, String> {
        let secrets = Self::parse(text)?;
        Self::phone_hash_key(&secrets.phone_hash_key)
            .map_err(|e| format!("intake secrets: {e}"))?;
        secrets.check()
    }

    fn parse(text: &str) -> Result<Self, String> {
        // Position only: serde's message can quote the secret.
        serde_json::from_str(text).map_err(|e| {
            format!(
                "intake secrets are invalid JSON or of the wrong shape (line {}, column {})",
                e.line(),
                e.column()
            )
        })
    }

    fn check(self) -> Result<Self, String> {
        let secrets = self;
        // A bad EncodingAESKey fails at start-up, not as a stream of 401s.
        for corp in &secrets.wecom {
            super::wecom::WecomCrypto::new(corp)
                .map_err(|e| format!("intake secrets: WeCom corp {}: {e}", corp.corp_id))?;
        }
        Ok(secrets)
    }
}

// Secrets never reach a log line, even through `{:?}`.
impl std::fmt::Debug for IntakeSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntakeSecrets")
            .field("douyin_apps", &self.douyin.keys().collect::<Vec<_>>())
            .field("hmac_sources", &self.hmac.keys().collect::<Vec<_>>())
            .field(
                "wecom_corps",
                &self.wecom.iter().map(|c| &c.corp_id).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod webhook_secret_tests {
    use super::*;

    const KEY: &str = "phone-hash-key-0123456789";

    #[test]
    fn the_webhook_secret_takes_its_key_from_the_phone_hash_secret() {
        let s = IntakeSecrets::from_webhooks_json(
            r#"{"douyin": {"app": "app-secret"}}"#,
            &format!("  {KEY}\n"),
        )
        .unwrap();
        assert_eq!(s.phone_hash_key, KEY);
        assert_eq!(s.douyin["app"], "app-secret");
        // An empty webhook secret is valid: no platform configured yet.
        assert!(IntakeSecrets::from_webhooks_json("{}", KEY).is_ok());
    }

    #[test]
    fn a_key_inside_the_webhook_secret_or_a_short_key_is_refused_without_quoting_it() {
        let err = IntakeSecrets::from_webhooks_json(
            r#"{"phone_hash_key": "s3cr3t-inline-key-0123"}"#,
            KEY,
        )
        .unwrap_err();
        assert!(
            err.contains("phone-hash secret") && !err.contains("s3cr3t"),
            "{err}"
        );
        let err = IntakeSecrets::from_webhooks_json("{}", "s3cr3t-short").unwrap_err();
        assert!(err.contains("16") && !err.contains("s3cr3t"), "{err}");
    }

    #[test]
    fn a_misspelt_field_is_refused_not_ignored() {
        let err = IntakeSecrets::from_webhooks_json(
            r#"{"douyin_acounts": {"app": ["s3cr3t-account"]}}"#,
            KEY,
        )
        .unwrap_err();
        assert!(
            err.contains("wrong shape") && !err.contains("s3cr3t"),
            "{err}"
        );
    }
}
