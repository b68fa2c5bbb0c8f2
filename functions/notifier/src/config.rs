//! The notifier's settings: environment variables that `template.yaml` sets
//! for everything that is not a secret, and the notifier secret in Secrets
//! Manager (`NOTIFIER_SECRET_ID`, JSON [`NotifierSecrets`]) for the channels'
//! keys, read again after `SECRETS_TTL_SECONDS`. A channel is on when all of
//! its settings are there, off when none are, and a configuration error when
//! only some are: a half-configured channel would otherwise fail silently.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use leads_aws::config::{self, ConfigError};
use leads_aws::secrets::NOTIFIER_SECRET_ID;
use leads_domain::delivery::Backoff;
use serde::Deserialize;

/// A credential: usable, but never printed. Clones share the value, so a
/// rotated key [`replace`](Secret::replace)d once reaches every channel.
#[derive(Clone)]
pub struct Secret(Arc<RwLock<String>>);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(Arc::new(RwLock::new(value.into())))
    }

    pub fn expose(&self) -> String {
        self.0.read().expect("secret lock").clone()
    }

    /// A rotated value, for this copy and every clone.
    pub fn replace(&self, value: &str) {
        let mut current = self.0.write().expect("secret lock");
        if *current != value {
            *current = value.to_string();
        }
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for Secret {}

/// The notifier secret: each channel's key, present when the channel is on.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifierSecrets {
    #[serde(default)]
    pub wecom_corp_secret: Option<String>,
    #[serde(default)]
    pub sms_api_key: Option<String>,
    #[serde(default)]
    pub crm_webhook_secret: Option<String>,
    /// Each brand's own CRM: where its lifecycle events (status changes,
    /// unroutable leads; `leads_domain::crm`) go and the key they are signed
    /// with. A brand without an entry gets none.
    #[serde(default)]
    pub brand_crms: BTreeMap<String, BrandCrmSecret>,
}

/// One brand's CRM endpoint in the notifier secret.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrandCrmSecret {
    pub url: String,
    pub secret: String,
}

impl NotifierSecrets {
    /// The error gives a position only: serde's message can quote the secret.
    pub fn from_json(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| {
            format!(
                "the notifier secret is invalid JSON or of the wrong shape (line {}, column {}); keys: wecom_corp_secret, sms_api_key, crm_webhook_secret, brand_crms (brand id -> url, secret)",
                e.line(),
                e.column()
            )
        })
    }
}

impl std::fmt::Debug for NotifierSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotifierSecrets")
            .field("wecom_corp_secret", &self.wecom_corp_secret.is_some())
            .field("sms_api_key", &self.sms_api_key.is_some())
            .field("crm_webhook_secret", &self.crm_webhook_secret.is_some())
            .field("brand_crms", &self.brand_crms.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// WeCom self-built app (自建应用) that sends the app messages.
#[derive(Debug, Clone)]
pub struct WecomConfig {
    /// `https://qyapi.weixin.qq.com` unless a test or a proxy says otherwise.
    pub base_url: String,
    pub corp_id: String,
    pub corp_secret: Secret,
    pub agent_id: i64,
    /// Messages per member per minute (WeCom allows 30).
    pub per_member_per_minute: u32,
}

/// An HTTP SMS gateway: JSON POST with a bearer API key.
#[derive(Debug, Clone)]
pub struct SmsConfig {
    pub url: String,
    pub api_key: Secret,
}

/// The brand's CRM/DMS endpoint, signed like our own intake expects
/// (HMAC-SHA256 over "{timestamp}.{body}").
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub url: String,
    pub secret: Secret,
}

/// The brands' own CRM endpoints (brand id -> endpoint), shared by the
/// config's clones so a rotation reaches the sender.
#[derive(Debug, Clone, Default)]
pub struct BrandCrms(Arc<RwLock<BTreeMap<String, WebhookConfig>>>);

impl BrandCrms {
    pub fn new(endpoints: BTreeMap<String, WebhookConfig>) -> Self {
        BrandCrms(Arc::new(RwLock::new(endpoints)))
    }

    /// The brand's endpoint, if it has one.
    pub fn get(&self, brand_id: &str) -> Option<WebhookConfig> {
        self.0
            .read()
            .expect("brand CRM lock")
            .get(brand_id)
            .cloned()
    }

    /// The endpoints of `secrets`, each URL checked (`allow_loopback_http`
    /// as for the other channels).
    pub fn from_secrets(
        secrets: &NotifierSecrets,
        allow_loopback_http: bool,
    ) -> Result<BTreeMap<String, WebhookConfig>, ConfigError> {
        secrets
            .brand_crms
            .iter()
            .map(|(brand, crm)| {
                check_url("brand_crms.url", &crm.url, allow_loopback_http)?;
                Ok((
                    brand.clone(),
                    WebhookConfig {
                        url: crm.url.clone(),
                        secret: Secret::new(crm.secret.clone()),
                    },
                ))
            })
            .collect()
    }

    fn replace(&self, endpoints: BTreeMap<String, WebhookConfig>) {
        *self.0.write().expect("brand CRM lock") = endpoints;
    }
}

#[derive(Debug, Clone)]
pub struct NotifierConfig {
    /// Links in messages are `{lead_link_base}/leads/{id}`.
    pub lead_link_base: String,
    pub wecom: Option<WecomConfig>,
    pub sms: Option<SmsConfig>,
    pub webhook: Option<WebhookConfig>,
    /// Each brand's own CRM (the CRM queue's events).
    pub brand_crms: BrandCrms,
    /// One HTTP request's limit (connect + answer).
    pub request_timeout: Duration,
    pub backoff: Backoff,
    /// How long an unfinished delivery blocks another copy of the job; above
    /// the function's timeout, below the queue's visibility timeout.
    pub delivery_lease: Duration,
}

/// An endpoint URL the notifier may send to: `https://` only. `http://` only
/// to `127.0.0.1` and only when `allow_loopback_http` (the local stack's
/// stand-ins; `NOTIFY_ALLOW_LOOPBACK_HTTP=1`, never set in `template.yaml`).
/// The error never quotes the URL (it may carry a key).
pub fn check_url(
    name: &'static str,
    url: &str,
    allow_loopback_http: bool,
) -> Result<(), ConfigError> {
    let lower = url.to_ascii_lowercase();
    let ok = match lower.strip_prefix("https://") {
        Some(rest) => !rest.is_empty(),
        None => {
            allow_loopback_http
                && lower.strip_prefix("http://127.0.0.1").is_some_and(|rest| {
                    rest.is_empty() || rest.starts_with(':') || rest.starts_with('/')
                })
        }
    };
    if ok {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            name,
            reason: "must be an https:// URL".into(),
        })
    }
}

/// `NOTIFY_ALLOW_LOOPBACK_HTTP=1`: the local stack's `http://127.0.0.1`
/// stand-ins are allowed (see [`check_url`]).
fn loopback_allowed() -> bool {
    config::optional("NOTIFY_ALLOW_LOOPBACK_HTTP").as_deref() == Some("1")
}

impl NotifierConfig {
    /// The environment's settings with the keys from `secrets`.
    pub fn from_env(secrets: &NotifierSecrets) -> Result<Self, ConfigError> {
        let config = Self::from_env_unchecked(secrets)?;
        let loopback = loopback_allowed();
        if let Some(w) = &config.wecom {
            check_url("WECOM_BASE_URL", &w.base_url, loopback)?;
        }
        if let Some(s) = &config.sms {
            check_url("SMS_GATEWAY_URL", &s.url, loopback)?;
        }
        if let Some(w) = &config.webhook {
            check_url("CRM_WEBHOOK_URL", &w.url, loopback)?;
        }
        config
            .brand_crms
            .replace(BrandCrms::from_secrets(secrets, loopback)?);
        Ok(config)
    }

    fn from_env_unchecked(secrets: &NotifierSecrets) -> Result<Self, ConfigError> {
        let env = |name: &'static str| (name, config::optional(name));
        let wecom = match all_or_none(&[
            env("WECOM_CORP_ID"),
            ("wecom_corp_secret", secrets.wecom_corp_secret.clone()),
            env("WECOM_AGENT_ID"),
        ])? {
            None => None,
            Some(v) => Some(WecomConfig {
                base_url: config::optional("WECOM_BASE_URL")
                    .unwrap_or_else(|| "https://qyapi.weixin.qq.com".to_string()),
                corp_id: v[0].clone(),
                corp_secret: Secret::new(v[1].clone()),
                agent_id: v[2].parse().map_err(|e| ConfigError::Invalid {
                    name: "WECOM_AGENT_ID",
                    reason: format!("{e}"),
                })?,
                per_member_per_minute: config::number("WECOM_PER_MEMBER_PER_MINUTE", 30)? as u32,
            }),
        };
        let sms = all_or_none(&[
            env("SMS_GATEWAY_URL"),
            ("sms_api_key", secrets.sms_api_key.clone()),
        ])?
        .map(|v| SmsConfig {
            url: v[0].clone(),
            api_key: Secret::new(v[1].clone()),
        });
        let webhook = all_or_none(&[
            env("CRM_WEBHOOK_URL"),
            ("crm_webhook_secret", secrets.crm_webhook_secret.clone()),
        ])?
        .map(|v| WebhookConfig {
            url: v[0].clone(),
            secret: Secret::new(v[1].clone()),
        });
        let defaults = Backoff::default();
        Ok(NotifierConfig {
            lead_link_base: config::required("LEAD_LINK_BASE")?,
            wecom,
            sms,
            webhook,
            brand_crms: BrandCrms::default(),
            request_timeout: Duration::from_millis(config::number(
                "NOTIFY_HTTP_TIMEOUT_MS",
                5_000,
            )?),
            backoff: Backoff {
                max_attempts: config::number(
                    "NOTIFY_MAX_ATTEMPTS",
                    u64::from(defaults.max_attempts),
                )? as u32,
                ..defaults
            },
            delivery_lease: Duration::from_secs(config::number("NOTIFY_LEASE_SECONDS", 120)?),
        })
    }

    /// Puts rotated keys from `secrets` into the channels that are on (a key
    /// missing from the secret keeps the one in use).
    pub fn rotate(&self, secrets: &NotifierSecrets) {
        if let (Some(w), Some(v)) = (&self.wecom, &secrets.wecom_corp_secret) {
            w.corp_secret.replace(v);
        }
        if let (Some(s), Some(v)) = (&self.sms, &secrets.sms_api_key) {
            s.api_key.replace(v);
        }
        if let (Some(w), Some(v)) = (&self.webhook, &secrets.crm_webhook_secret) {
            w.secret.replace(v);
        }
        // Endpoints come and go with the secret; a bad one keeps the old set.
        let loopback = loopback_allowed();
        match BrandCrms::from_secrets(secrets, loopback) {
            Ok(endpoints) => self.brand_crms.replace(endpoints),
            Err(e) => {
                tracing::error!(error = %e, "rotated brand CRM endpoints refused; the previous ones stay")
            }
        }
    }
}

/// The values of one channel's settings if all are set, `None` if none is,
/// an error naming the first missing one otherwise. A lower-case name is a key
/// of the notifier secret, an upper-case one an environment variable.
fn all_or_none(
    settings: &[(&'static str, Option<String>)],
) -> Result<Option<Vec<String>>, ConfigError> {
    if settings.iter().all(|(_, v)| v.is_none()) {
        return Ok(None);
    }
    settings
        .iter()
        .map(|(name, v)| {
            v.clone().ok_or_else(|| {
                if name.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                    ConfigError::Secret {
                        name: NOTIFIER_SECRET_ID,
                        reason: format!(
                            "{name} is missing, and the channel's other settings are set"
                        ),
                    }
                } else {
                    ConfigError::Missing(name)
                }
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_urls_and_loopback_http_when_allowed() {
        for ok in [
            "https://qyapi.weixin.qq.com",
            "https://crm.example.com/hook?k=1",
        ] {
            assert!(check_url("U", ok, false).is_ok(), "{ok}");
        }
        for local in ["http://127.0.0.1:8080/hook", "http://127.0.0.1"] {
            assert!(check_url("U", local, true).is_ok(), "{local}");
            assert!(check_url("U", local, false).is_err(), "{local}");
        }
        for bad in [
            "http://crm.example.com/hook",
            "http://127.0.0.1.evil.example/hook",
            "http://127.0.0.1@evil.example/",
            "ftp://x",
            "https://",
            "crm.example.com",
        ] {
            let err = check_url("U", bad, true).unwrap_err().to_string();
            assert!(!err.contains("example") && !err.contains("evil"), "{err}");
        }
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        let w = WebhookConfig {
            url: "https://crm".into(),
            secret: s,
        };
        assert!(!format!("{w:?}").contains("hunter2"));
    }

    #[test]
    fn brand_crm_endpoints_are_https_and_follow_a_rotation() {
        let secrets = |url: &str| {
            NotifierSecrets::from_json(&format!(
                r#"{{"brand_crms": {{"b1": {{"url": "{url}", "secret": "s3cr3t"}}}}}}"#
            ))
            .unwrap()
        };
        let good =
            BrandCrms::from_secrets(&secrets("https://crm.b1.example/events"), false).unwrap();
        assert_eq!(good["b1"].url, "https://crm.b1.example/events");
        assert_eq!(good["b1"].secret.expose(), "s3cr3t");
        let err = BrandCrms::from_secrets(&secrets("http://crm.b1.example/events"), true)
            .unwrap_err()
            .to_string();
        assert!(!err.contains("example") && !err.contains("s3cr3t"), "{err}");
        assert!(BrandCrms::from_secrets(&secrets("http://127.0.0.1:9/x"), false).is_err());
        assert!(BrandCrms::from_secrets(&secrets("http://127.0.0.1:9/x"), true).is_ok());

        // A clone (the channel's) sees the replaced set; a brand left out is gone.
        let crms = BrandCrms::new(good);
        let channel_copy = crms.clone();
        crms.replace(BTreeMap::new());
        assert!(channel_copy.get("b1").is_none());
        assert!(!format!(
            "{:?}",
            NotifierSecrets::from_json(
                r#"{"brand_crms": {"b1": {"url": "https://x", "secret": "s3cr3t"}}}"#
            )
            .unwrap()
        )
        .contains("s3cr3t"));
    }

    #[test]
    fn a_rotated_key_reaches_every_clone() {
        let s = Secret::new("old-key");
        let channel_copy = s.clone();
        s.replace("new-key");
        assert_eq!(channel_copy.expose(), "new-key");
    }

    #[test]
    fn the_notifier_secret_is_refused_without_quoting_it() {
        let ok = NotifierSecrets::from_json(r#"{"sms_api_key": "k"}"#).unwrap();
        assert_eq!(ok.sms_api_key.as_deref(), Some("k"));
        for bad in [
            r#"{"sms_api_kye": "s3cr3t"}"#,
            r#"{"sms_api_key": 7, "x": "s3cr3t"}"#,
            "s3cr3t",
        ] {
            let err = NotifierSecrets::from_json(bad).unwrap_err();
            assert!(!err.contains("s3cr3t"), "{err}");
        }
        assert!(!format!(
            "{:?}",
            NotifierSecrets::from_json(r#"{"crm_webhook_secret": "s3cr3t"}"#).unwrap()
        )
        .contains("s3cr3t"));
    }

    #[test]
    fn a_channel_half_configured_between_env_and_secret_is_an_error() {
        let err = all_or_none(&[
            ("SMS_GATEWAY_URL", Some("https://sms".into())),
            ("sms_api_key", None),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("NOTIFIER_SECRET_ID") && err.contains("sms_api_key"),
            "{err}"
        );
        let err = all_or_none(&[
            ("SMS_GATEWAY_URL", None),
            ("sms_api_key", Some("s3cr3t".into())),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("SMS_GATEWAY_URL") && !err.contains("s3cr3t"),
            "{err}"
        );
        assert!(
            all_or_none(&[("SMS_GATEWAY_URL", None), ("sms_api_key", None)])
                .unwrap()
                .is_none()
        );
    }
}
