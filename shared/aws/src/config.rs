//! The one configuration loader. Every name comes from an environment variable
//! that `template.yaml` sets (Globals) and the local stack exports the same way.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
    /// The secret named by env var `name` could not be read or parsed (the
    /// reason never quotes the secret).
    #[error("the secret named by {name} is unusable: {reason}")]
    Secret { name: &'static str, reason: String },
}

#[derive(Debug, Clone)]
pub struct Tables {
    pub directory: String,
    pub leads: String,
    pub idempotency: String,
    pub raw_payload: String,
    pub audit: String,
    pub stats: String,
    pub rankings: String,
}

#[derive(Debug, Clone)]
pub struct Queues {
    pub lead: String,
    pub notification: String,
    pub crm: String,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub stage: String,
    pub tables: Tables,
    pub queues: Queues,
    pub raw_payload_retention: Duration,
    pub idempotency_retention: Duration,
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Settings {
            stage: optional("STAGE").unwrap_or_else(|| "dev".to_string()),
            tables: Tables {
                directory: required("DIRECTORY_TABLE")?,
                leads: required("LEADS_TABLE")?,
                idempotency: required("IDEMPOTENCY_TABLE")?,
                raw_payload: required("RAW_PAYLOAD_TABLE")?,
                audit: required("AUDIT_TABLE")?,
                stats: required("STATS_TABLE")?,
                rankings: required("RANKINGS_TABLE")?,
            },
            queues: Queues {
                lead: required("LEAD_QUEUE_URL")?,
                notification: required("NOTIFICATION_QUEUE_URL")?,
                crm: required("CRM_QUEUE_URL")?,
            },
            raw_payload_retention: Duration::from_secs(
                number("RAW_PAYLOAD_RETENTION_DAYS", 30)? * 86_400,
            ),
            idempotency_retention: Duration::from_secs(
                number("IDEMPOTENCY_RETENTION_HOURS", 72)? * 3_600,
            ),
        })
    }
}

/// A required variable.
pub fn required(name: &'static str) -> Result<String, ConfigError> {
    optional(name).ok_or(ConfigError::Missing(name))
}

/// An optional variable; empty counts as unset.
pub fn optional(name: &'static str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A non-negative integer with a default.
pub fn number(name: &'static str, default: u64) -> Result<u64, ConfigError> {
    match optional(name) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|e| ConfigError::Invalid {
            name,
            reason: format!("{e}"),
        }),
    }
}
