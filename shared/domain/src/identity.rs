//! Customer identity: dedup keys are keyed hashes of the phone, never the phone.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::Phone;

/// HMAC-SHA256 of the E.164 phone under the deployment's secret, hex-encoded.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PhoneHash(pub String);

/// Computes dedup keys. The key comes from configuration (a secret), never the repo.
#[derive(Clone)]
pub struct PhoneHasher {
    key: Vec<u8>,
}

impl PhoneHasher {
    pub fn new(key: impl Into<Vec<u8>>) -> Self {
        PhoneHasher { key: key.into() }
    }

    pub fn hash(&self, phone: &Phone) -> PhoneHash {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC accepts keys of any length");
        mac.update(phone.e164().as_bytes());
        PhoneHash(hex::encode(mac.finalize().into_bytes()))
    }
}

impl std::fmt::Debug for PhoneHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PhoneHasher(<secret>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_phone_any_format_same_hash_and_key_matters() {
        let a = Phone::parse("138 1234 5678").unwrap();
        let b = Phone::parse("+86-138-1234-5678").unwrap();
        let h = PhoneHasher::new(b"k1".to_vec());
        assert_eq!(h.hash(&a), h.hash(&b));
        assert_ne!(h.hash(&a), PhoneHasher::new(b"k2".to_vec()).hash(&a));
        assert!(!h.hash(&a).0.contains("13812345678"));
    }
}
