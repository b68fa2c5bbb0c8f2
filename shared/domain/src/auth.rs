//! Caller tokens for the read/update API: who is calling (a staff member of a
//! dealer, or the brand's operations team) and until when. A token is
//! `base64url(claims JSON) "." hex(HMAC-SHA256(secret, that base64 text))`,
//! issued by `leadctl token` (or the brand's SSO bridge) with the API secret
//! from configuration.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::directory::StaffRole;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub staff_id: String,
    pub dealer_id: String,
    pub brand_id: String,
    pub role: StaffRole,
    /// Expiry, Unix seconds.
    pub exp: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("malformed token")]
    Malformed,
    #[error("token signature does not match")]
    BadSignature,
    #[error("token expired")]
    Expired,
}

fn mac(secret: &[u8], payload: &str) -> Hmac<Sha256> {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    m.update(payload.as_bytes());
    m
}

pub fn issue(secret: &[u8], claims: &Claims) -> String {
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialise"));
    let sig = hex::encode(mac(secret, &payload).finalize().into_bytes());
    format!("{payload}.{sig}")
}

pub fn verify(secret: &[u8], token: &str, now: DateTime<Utc>) -> Result<Claims, AuthError> {
    let (payload, sig) = token.trim().split_once('.').ok_or(AuthError::Malformed)?;
    let sig = hex::decode(sig).map_err(|_| AuthError::Malformed)?;
    // Constant-time comparison inside verify_slice.
    mac(secret, payload)
        .verify_slice(&sig)
        .map_err(|_| AuthError::BadSignature)?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| AuthError::Malformed)?;
    let claims: Claims = serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed)?;
    if claims.exp <= now.timestamp() {
        return Err(AuthError::Expired);
    }
    Ok(claims)
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

    fn claims(exp: i64) -> Claims {
        Claims {
            staff_id: "s1".into(),
            dealer_id: "d1".into(),
            brand_id: "b".into(),
            role: StaffRole::Sales,
            exp,
        }
    }

    #[test]
    fn issued_tokens_verify_and_forgeries_do_not() {
        let now = Utc::now();
        let token = issue(b"secret", &claims(now.timestamp() + 60));
        assert_eq!(
            verify(b"secret", &token, now).unwrap(),
            claims(now.timestamp() + 60)
        );
        assert_eq!(verify(b"other", &token, now), Err(AuthError::BadSignature));
        let expired = issue(b"secret", &claims(now.timestamp() - 1));
        assert_eq!(verify(b"secret", &expired, now), Err(AuthError::Expired));
        // Swapping in other claims breaks the signature.
        let (_, sig) = token.split_once('.').unwrap();
        let mut other = claims(now.timestamp() + 60);
        other.dealer_id = "d2".into();
        let forged = format!(
            "{}.{sig}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&other).unwrap())
        );
        assert_eq!(
            verify(b"secret", &forged, now),
            Err(AuthError::BadSignature)
        );
        assert_eq!(verify(b"secret", "garbage", now), Err(AuthError::Malformed));
        assert_eq!(bearer(Some("Bearer abc")), Ok("abc"));
        assert_eq!(bearer(Some("Basic abc")), Err(AuthError::Missing));
    }
}
