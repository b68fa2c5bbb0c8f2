//! Secrets read at run time from Secrets Manager, never from the environment.
//!
//! The template gives each function the *ids* (ARNs) of the secrets it may read
//! (`*_SECRET_ID`) and `secretsmanager:GetSecretValue` on exactly those. A
//! function reads a secret when it starts and, for the secrets that rotate,
//! again once [`ttl_from_env`] has passed, so `put-secret-value` takes effect
//! within that time without a redeploy. A failed re-read keeps the copy it has
//! (and warns), so a Secrets Manager outage does not stop the intake.
//!
//! No error here quotes a secret's value.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use leads_domain::auth::Keyring;
use leads_domain::intake::IntakeSecrets;

use crate::config::{self, ConfigError};
use crate::StoreError;

/// The phone-hash key (plain text): every dedup key derives from it.
pub const PHONE_HASH_SECRET_ID: &str = "PHONE_HASH_SECRET_ID";
/// The platforms' webhook secrets (JSON, [`IntakeSecrets`] without the key).
pub const WEBHOOK_SECRET_ID: &str = "WEBHOOK_SECRET_ID";
/// The staff-token signing keys ([`Keyring::parse`]).
pub const STAFF_TOKEN_SECRET_ID: &str = "STAFF_TOKEN_SECRET_ID";
/// The notifier's channel keys (JSON).
pub const NOTIFIER_SECRET_ID: &str = "NOTIFIER_SECRET_ID";
/// How long a read secret is reused before it is read again.
pub const SECRETS_TTL_SECONDS: &str = "SECRETS_TTL_SECONDS";

/// A parser from a secret's text; its error must not quote the text.
type Parse<T> = Box<dyn Fn(&str) -> Result<T, String> + Send + Sync>;

struct Source<T> {
    client: aws_sdk_secretsmanager::Client,
    /// The env var the id came from (for messages) and the id itself.
    name: &'static str,
    id: String,
    ttl: Duration,
    parse: Parse<T>,
}

/// A secret's parsed value, read again after its TTL.
pub struct CachedSecret<T> {
    source: Option<Source<T>>,
    current: RwLock<(Arc<T>, Instant)>,
    /// One re-read at a time; the others keep using the current copy.
    refreshing: tokio::sync::Mutex<()>,
}

impl<T: Send + Sync + 'static> CachedSecret<T> {
    /// A value that never changes (tests, tools).
    pub fn fixed(value: T) -> Self {
        CachedSecret {
            source: None,
            current: RwLock::new((Arc::new(value), Instant::now())),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    /// Reads secret `id` now (failing start-up if it cannot be read or parsed)
    /// and again whenever a [`get`](Self::get) finds it older than `ttl`.
    pub async fn load(
        client: aws_sdk_secretsmanager::Client,
        name: &'static str,
        id: String,
        ttl: Duration,
        parse: impl Fn(&str) -> Result<T, String> + Send + Sync + 'static,
    ) -> Result<Self, ConfigError> {
        let source = Source {
            client,
            name,
            id,
            ttl,
            parse: Box::new(parse),
        };
        let value = source.read().await?;
        Ok(CachedSecret {
            source: Some(source),
            current: RwLock::new((Arc::new(value), Instant::now())),
            refreshing: tokio::sync::Mutex::new(()),
        })
    }

    /// The secret named by env var `name`, with the TTL from the environment.
    pub async fn from_env(
        client: &aws_sdk_secretsmanager::Client,
        name: &'static str,
        parse: impl Fn(&str) -> Result<T, String> + Send + Sync + 'static,
    ) -> Result<Self, ConfigError> {
        let id = config::required(name)?;
        Self::load(client.clone(), name, id, ttl_from_env()?, parse).await
    }

    /// The current value, re-read first if it is older than the TTL. A failed
    /// re-read keeps the old value and is tried again after another TTL.
    pub async fn get(&self) -> Arc<T> {
        let (value, read_at) = self.snapshot();
        let Some(source) = &self.source else {
            return value;
        };
        if read_at.elapsed() < source.ttl {
            return value;
        }
        let Ok(_guard) = self.refreshing.try_lock() else {
            return value; // someone else is reading it
        };
        let fresh = match source.read().await {
            Ok(fresh) => Arc::new(fresh),
            Err(e) => {
                tracing::warn!(secret = source.name, error = %e, "secret not re-read; keeping the copy read before");
                value
            }
        };
        *self.current.write().expect("secret cache lock") = (fresh.clone(), Instant::now());
        fresh
    }

    fn snapshot(&self) -> (Arc<T>, Instant) {
        let current = self.current.read().expect("secret cache lock");
        (current.0.clone(), current.1)
    }
}

impl<T> Source<T> {
    async fn read(&self) -> Result<T, ConfigError> {
        let text = read_text(&self.client, &self.id)
            .await
            .map_err(|e| ConfigError::Secret {
                name: self.name,
                reason: e.to_string(),
            })?;
        (self.parse)(&text).map_err(|reason| ConfigError::Secret {
            name: self.name,
            reason,
        })
    }
}

/// A secret's current text (`SecretString`).
pub async fn read_text(
    client: &aws_sdk_secretsmanager::Client,
    id: &str,
) -> Result<String, StoreError> {
    let out = client
        .get_secret_value()
        .secret_id(id)
        .send()
        .await
        .map_err(StoreError::secrets_manager)?;
    out.secret_string
        .ok_or_else(|| StoreError::Malformed("the secret has no SecretString".into()))
}

/// `SECRETS_TTL_SECONDS` (default 300 s).
pub fn ttl_from_env() -> Result<Duration, ConfigError> {
    Ok(Duration::from_secs(config::number(
        SECRETS_TTL_SECONDS,
        300,
    )?))
}

/// The phone-hash key, read once: it never rotates in place (every dedup key
/// derives from it).
pub async fn phone_hash_key(
    client: &aws_sdk_secretsmanager::Client,
) -> Result<Vec<u8>, ConfigError> {
    let id = config::required(PHONE_HASH_SECRET_ID)?;
    phone_hash_key_at(client, &id).await
}

pub async fn phone_hash_key_at(
    client: &aws_sdk_secretsmanager::Client,
    id: &str,
) -> Result<Vec<u8>, ConfigError> {
    Ok(phone_hash_key_text(client, id).await?.into_bytes())
}

async fn phone_hash_key_text(
    client: &aws_sdk_secretsmanager::Client,
    id: &str,
) -> Result<String, ConfigError> {
    let text = read_text(client, id)
        .await
        .map_err(|e| ConfigError::Secret {
            name: PHONE_HASH_SECRET_ID,
            reason: e.to_string(),
        })?;
    IntakeSecrets::phone_hash_key(&text).map_err(|reason| ConfigError::Secret {
        name: PHONE_HASH_SECRET_ID,
        reason: reason.to_string(),
    })
}

/// The intake's secrets: the webhook secret (re-read after `ttl`) combined
/// with the phone-hash key read at `phone_id`.
pub async fn intake_secrets_at(
    client: &aws_sdk_secretsmanager::Client,
    phone_id: &str,
    webhook_id: &str,
    ttl: Duration,
) -> Result<CachedSecret<IntakeSecrets>, ConfigError> {
    let key = phone_hash_key_text(client, phone_id).await?;
    CachedSecret::load(
        client.clone(),
        WEBHOOK_SECRET_ID,
        webhook_id.to_string(),
        ttl,
        move |text| {
            let secrets =
                IntakeSecrets::from_webhooks_json(text, &key).map_err(|e| e.to_string())?;
            for app in secrets.unbound_douyin_apps() {
                tracing::warn!(
                    client_key = app,
                    "Douyin app has no douyin_accounts entry: it may deliver for any account"
                );
            }
            Ok(secrets)
        },
    )
    .await
}

/// [`intake_secrets_at`] with the ids and TTL from the environment.
pub async fn intake_secrets(
    client: &aws_sdk_secretsmanager::Client,
) -> Result<CachedSecret<IntakeSecrets>, ConfigError> {
    intake_secrets_at(
        client,
        &config::required(PHONE_HASH_SECRET_ID)?,
        &config::required(WEBHOOK_SECRET_ID)?,
        ttl_from_env()?,
    )
    .await
}

/// The staff-token keys at `id`, re-read after `ttl`.
pub async fn staff_token_keys_at(
    client: &aws_sdk_secretsmanager::Client,
    id: &str,
    ttl: Duration,
) -> Result<CachedSecret<Keyring>, ConfigError> {
    CachedSecret::load(
        client.clone(),
        STAFF_TOKEN_SECRET_ID,
        id.to_string(),
        ttl,
        |text| Keyring::parse(text).map_err(|e| e.to_string()),
    )
    .await
}

/// [`staff_token_keys_at`] with the id and TTL from the environment.
pub async fn staff_token_keys(
    client: &aws_sdk_secretsmanager::Client,
) -> Result<CachedSecret<Keyring>, ConfigError> {
    staff_token_keys_at(
        client,
        &config::required(STAFF_TOKEN_SECRET_ID)?,
        ttl_from_env()?,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_fixed_secret_is_what_it_was_given() {
        let s = CachedSecret::fixed(7u32);
        assert_eq!(*s.get().await, 7);
    }
}
