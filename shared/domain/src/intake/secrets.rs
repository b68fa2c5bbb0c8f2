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

/// The deployment secret holds other functions' keys too (`api_token_secret`),
/// so unknown top-level fields are allowed here.
#[derive(Clone, Default, Deserialize)]
pub struct IntakeSecrets {
    /// Key of the HMAC that turns phones into dedup keys.
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

    pub fn from_json(text: &str) -> Result<Self, String> {
        // Position only: serde's message can quote the secret.
        let secrets: IntakeSecrets = serde_json::from_str(text).map_err(|e| {
            format!(
                "intake secrets are invalid JSON or of the wrong shape (line {}, column {})",
                e.line(),
                e.column()
            )
        })?;
        if secrets.phone_hash_key.len() < 16 {
            return Err("intake secrets: phone_hash_key must be at least 16 characters".into());
        }
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
