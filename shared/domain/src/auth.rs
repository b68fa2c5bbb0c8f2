//! Caller tokens for the read/update API: who is calling (a staff member of a
//! dealer, or the ranking page of one) and until when. A token is
//! `base64url(claims JSON) "." hex(HMAC-SHA256(key, that base64 text))`,
//! issued by `leadctl token` (or the brand's SSO bridge) with the current key
//! of the API keyring.
//!
//! Verification checks, in this order: the key id (`kid`) names a live key of
//! the keyring (two are live during a rotation), the signature, the audience
//! (`aud`: the staff API, or the ranking page, which can only read
//! rankings), the issue time (`iat`, not in the future beyond a small skew)
//! and the expiry (`exp`, passed, or more than [`MAX_LIFETIME_S`] after
//! `iat`). The role and the dealer in a token are only a claim: the API
//! checks the caller against the directory on every request.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::directory::StaffRole;

/// The staff API audience: leads and rankings.
pub const AUD_STAFF: &str = "leads-api";
/// The ranking page's audience: it can only read rankings.
pub const AUD_RANKINGS: &str = "rankings";
/// The longest a token may live (`exp - iat`), enforced at verification.
pub const MAX_LIFETIME_S: i64 = 12 * 3600;
/// Clock skew tolerated on `iat`.
const SKEW_S: i64 = 60;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    /// The keyring key that signed this token.
    pub kid: String,
    /// [`AUD_STAFF`] or [`AUD_RANKINGS`].
    pub aud: String,
    pub staff_id: String,
    pub dealer_id: String,
    pub brand_id: String,
    pub role: StaffRole,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expiry, Unix seconds; at most [`MAX_LIFETIME_S`] after `iat`.
    pub exp: i64,
}

impl Claims {
    /// Claims of a staff API token issued `now`, valid for `ttl_s` seconds.
    pub fn staff(
        staff_id: &str,
        dealer_id: &str,
        brand_id: &str,
        role: StaffRole,
        now: DateTime<Utc>,
        ttl_s: i64,
    ) -> Self {
        Claims {
            kid: String::new(),
            aud: AUD_STAFF.into(),
            staff_id: staff_id.into(),
            dealer_id: dealer_id.into(),
            brand_id: brand_id.into(),
            role,
            iat: now.timestamp(),
            exp: now.timestamp() + ttl_s,
        }
    }

    /// The same caller, for the ranking page (rankings only).
    pub fn for_rankings(mut self) -> Self {
        self.aud = AUD_RANKINGS.into();
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("malformed token")]
    Malformed,
    #[error("token signature does not match")]
    BadSignature,
    #[error("token key is not live")]
    UnknownKey,
    #[error("token is not for this API")]
    WrongAudience,
    #[error("token expired")]
    Expired,
    #[error("token lifetime exceeds 12 hours")]
    TooLong,
}

/// One signing key.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct TokenKey {
    pub kid: String,
    pub secret: String,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenKey({}, <redacted>)", self.kid)
    }
}

/// The live token keys: the first signs, all of them verify (during a
/// rotation the retiring key stays until the tokens it signed expired).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyring {
    keys: Vec<TokenKey>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyringError {
    #[error("the API token keys must be a non-empty string or a JSON list of {{\"kid\", \"secret\"}} (at most two, secrets of 16+ characters, distinct kids)")]
    Invalid,
}

impl Keyring {
    /// `text` is a plain secret (key id `k1`), or a JSON list
    /// `[{"kid": "k2", "secret": "..."}, {"kid": "k1", "secret": "..."}]`
    /// whose first key signs. The error never quotes the text.
    pub fn parse(text: &str) -> Result<Self, KeyringError> {
        let text = text.trim();
        let keys = if text.starts_with('[') {
            serde_json::from_str::<Vec<TokenKey>>(text).map_err(|_| KeyringError::Invalid)?
        } else {
            vec![TokenKey {
                kid: "k1".into(),
                secret: text.to_string(),
            }]
        };
        Self::new(keys)
    }

    pub fn new(keys: Vec<TokenKey>) -> Result<Self, KeyringError> {
        let distinct = keys.len() < 2 || keys[0].kid != keys[1].kid;
        if keys.is_empty()
            || keys.len() > 2
            || !distinct
            || keys
                .iter()
                .any(|k| k.kid.is_empty() || k.secret.trim().len() < 16)
        {
            return Err(KeyringError::Invalid);
        }
        Ok(Keyring { keys })
    }

    /// One key, `kid`, for tests and tools.
    pub fn single(kid: &str, secret: &[u8]) -> Self {
        Keyring {
            keys: vec![TokenKey {
                kid: kid.into(),
                secret: String::from_utf8_lossy(secret).into_owned(),
            }],
        }
    }

    /// The id of the key that signs.
    pub fn current_kid(&self) -> &str {
        &self.keys[0].kid
    }

    fn key(&self, kid: &str) -> Option<&TokenKey> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    /// A token for `claims`, signed with the current key (its `kid` is set).
    pub fn issue(&self, claims: &Claims) -> String {
        let mut claims = claims.clone();
        claims.kid = self.keys[0].kid.clone();
        sign(self.keys[0].secret.as_bytes(), &claims)
    }

    /// The claims of a token signed by a live key, for audience `aud`.
    pub fn verify(&self, token: &str, aud: &str, now: DateTime<Utc>) -> Result<Claims, AuthError> {
        let (payload, sig) = token.trim().split_once('.').ok_or(AuthError::Malformed)?;
        let sig = hex::decode(sig).map_err(|_| AuthError::Malformed)?;
        let bytes = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| AuthError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed)?;
        let key = self.key(&claims.kid).ok_or(AuthError::UnknownKey)?;
        // Constant-time comparison inside verify_slice.
        mac(key.secret.as_bytes(), payload)
            .verify_slice(&sig)
            .map_err(|_| AuthError::BadSignature)?;
        if claims.aud != aud {
            return Err(AuthError::WrongAudience);
        }
        let now = now.timestamp();
        if claims.exp <= now {
            return Err(AuthError::Expired);
        }
        if claims.iat > now + SKEW_S || claims.exp - claims.iat > MAX_LIFETIME_S {
            return Err(AuthError::TooLong);
        }
        Ok(claims)
    }
}

fn mac(secret: &[u8], payload: &str) -> Hmac<Sha256> {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    m.update(payload.as_bytes());
    m
}

/// A token for `claims` signed with `secret` as the keyring's only key, `k1`
/// (what a plain `API_TOKEN_SECRET` is).
pub fn issue(secret: &[u8], claims: &Claims) -> String {
    Keyring::single("k1", secret).issue(claims)
}

/// A token for `claims` exactly as given (its `kid` included), signed with `secret`.
pub fn sign(secret: &[u8], claims: &Claims) -> String {
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialise"));
    let sig = hex::encode(mac(secret, &payload).finalize().into_bytes());
    format!("{payload}.{sig}")
}

/// The token from an `Authorization: Bearer …` header value.
pub fn bearer(header: Option<&str>) -> Result<&str, AuthError> {
    header
        .and_then(|h| h.strip_prefix("Bearer "))
        .filter(|t| !t.is_empty())
        .ok_or(AuthError::Missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S1: &[u8] = b"secret-one-16-chars";
    const S2: &[u8] = b"secret-two-16-chars";

    fn claims(now: DateTime<Utc>, ttl: i64) -> Claims {
        Claims::staff("s1", "d1", "b", StaffRole::Sales, now, ttl)
    }

    #[test]
    fn issued_tokens_verify_and_forgeries_do_not() {
        let now = Utc::now();
        let ring = Keyring::single("k1", S1);
        let token = ring.issue(&claims(now, 60));
        let mut expected = claims(now, 60);
        expected.kid = "k1".into();
        assert_eq!(ring.verify(&token, AUD_STAFF, now).unwrap(), expected);
        assert_eq!(
            Keyring::single("k1", S2).verify(&token, AUD_STAFF, now),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            Keyring::single("k2", S1).verify(&token, AUD_STAFF, now),
            Err(AuthError::UnknownKey)
        );
        assert_eq!(
            ring.verify(&token, AUD_RANKINGS, now),
            Err(AuthError::WrongAudience)
        );
        let expired = ring.issue(&claims(now - chrono::Duration::seconds(61), 60));
        assert_eq!(
            ring.verify(&expired, AUD_STAFF, now),
            Err(AuthError::Expired)
        );
        // Swapping in other claims breaks the signature.
        let (_, sig) = token.split_once('.').unwrap();
        let mut other = expected.clone();
        other.dealer_id = "d2".into();
        let forged = format!(
            "{}.{sig}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&other).unwrap())
        );
        assert_eq!(
            ring.verify(&forged, AUD_STAFF, now),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            ring.verify("garbage", AUD_STAFF, now),
            Err(AuthError::Malformed)
        );
        assert_eq!(bearer(Some("Bearer abc")), Ok("abc"));
        assert_eq!(bearer(Some("Basic abc")), Err(AuthError::Missing));
    }

    #[test]
    fn lifetimes_over_twelve_hours_and_future_issue_times_are_refused() {
        let now = Utc::now();
        let ring = Keyring::single("k1", S1);
        let ok = ring.issue(&claims(now, MAX_LIFETIME_S));
        assert!(ring.verify(&ok, AUD_STAFF, now).is_ok());
        let long = ring.issue(&claims(now, MAX_LIFETIME_S + 1));
        assert_eq!(ring.verify(&long, AUD_STAFF, now), Err(AuthError::TooLong));
        // A token "issued" in the future to stretch its life.
        let ahead = ring.issue(&claims(now + chrono::Duration::hours(11), 3600));
        assert_eq!(ring.verify(&ahead, AUD_STAFF, now), Err(AuthError::TooLong));
        // Missing kid/aud/iat (the old format) is malformed.
        let old = format!(
            "{}.00",
            URL_SAFE_NO_PAD.encode(
                br#"{"staff_id":"s","dealer_id":"d","brand_id":"b","role":"manager","exp":4102444800}"#
            )
        );
        assert_eq!(ring.verify(&old, AUD_STAFF, now), Err(AuthError::Malformed));
    }

    #[test]
    fn during_a_rotation_both_keys_verify_and_the_new_one_signs() {
        let now = Utc::now();
        let old = Keyring::single("k1", S1);
        let old_token = old.issue(&claims(now, 600));
        let both = Keyring::parse(
            r#"[{"kid":"k2","secret":"secret-two-16-chars"},{"kid":"k1","secret":"secret-one-16-chars"}]"#,
        )
        .unwrap();
        assert_eq!(both.current_kid(), "k2");
        assert!(both.verify(&old_token, AUD_STAFF, now).is_ok());
        let new_token = both.issue(&claims(now, 600));
        assert!(both.verify(&new_token, AUD_STAFF, now).is_ok());
        // After the overlap only k2 is live: k1's tokens are refused.
        let after = Keyring::parse(r#"[{"kid":"k2","secret":"secret-two-16-chars"}]"#).unwrap();
        assert_eq!(
            after.verify(&old_token, AUD_STAFF, now),
            Err(AuthError::UnknownKey)
        );
        assert!(after.verify(&new_token, AUD_STAFF, now).is_ok());
        // A plain secret is one key, k1; bad keyrings say so without quoting.
        assert_eq!(Keyring::parse("secret-one-16-chars").unwrap(), old);
        for bad in ["", "short", "[]", r#"[{"kid":"k1"}]"#, "[{\"kid\":\"k1\",\"secret\":\"secret-one-16-chars\"},{\"kid\":\"k1\",\"secret\":\"secret-two-16-chars\"}]"] {
            let err = Keyring::parse(bad).unwrap_err().to_string();
            assert!(!err.contains("secret-"), "{err}");
        }
    }
}
