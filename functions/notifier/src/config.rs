//! The notifier's settings, from environment variables that `template.yaml`
//! sets (secrets resolved from Secrets Manager at deploy time). A channel is
//! on when all of its variables are set, off when none are, and a
//! configuration error when only some are: a half-configured channel would
//! otherwise fail silently.

use std::time::Duration;

use leads_aws::config::{self, ConfigError};
use leads_domain::delivery::Backoff;

/// A credential: usable, but never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
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

#[derive(Debug, Clone)]
pub struct NotifierConfig {
    /// Links in messages are `{lead_link_base}/leads/{id}`.
    pub lead_link_base: String,
    pub wecom: Option<WecomConfig>,
    pub sms: Option<SmsConfig>,
    pub webhook: Option<WebhookConfig>,
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

impl NotifierConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let config = Self::from_env_unchecked()?;
        let loopback = config::optional("NOTIFY_ALLOW_LOOPBACK_HTTP").as_deref() == Some("1");
        if let Some(w) = &config.wecom {
            check_url("WECOM_BASE_URL", &w.base_url, loopback)?;
        }
        if let Some(s) = &config.sms {
            check_url("SMS_GATEWAY_URL", &s.url, loopback)?;
        }
        if let Some(w) = &config.webhook {
            check_url("CRM_WEBHOOK_URL", &w.url, loopback)?;
        }
        Ok(config)
    }

    fn from_env_unchecked() -> Result<Self, ConfigError> {
        let wecom = match all_or_none(&["WECOM_CORP_ID", "WECOM_CORP_SECRET", "WECOM_AGENT_ID"])? {
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
        let sms = all_or_none(&["SMS_GATEWAY_URL", "SMS_API_KEY"])?.map(|v| SmsConfig {
            url: v[0].clone(),
            api_key: Secret::new(v[1].clone()),
        });
        let webhook =
            all_or_none(&["CRM_WEBHOOK_URL", "CRM_WEBHOOK_SECRET"])?.map(|v| WebhookConfig {
                url: v[0].clone(),
                secret: Secret::new(v[1].clone()),
            });
        let defaults = Backoff::default();
        Ok(NotifierConfig {
            lead_link_base: config::required("LEAD_LINK_BASE")?,
            wecom,
            sms,
            webhook,
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
}

/// The values of `names` if all are set, `None` if none is, an error naming
/// the first missing one otherwise.
fn all_or_none(names: &[&'static str]) -> Result<Option<Vec<String>>, ConfigError> {
    let values: Vec<Option<String>> = names.iter().map(|n| config::optional(n)).collect();
    if values.iter().all(Option::is_none) {
        return Ok(None);
    }
    names
        .iter()
        .zip(values)
        .map(|(name, v)| v.ok_or(ConfigError::Missing(name)))
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
}
