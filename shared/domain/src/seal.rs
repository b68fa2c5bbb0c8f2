//! The customer's contact (phone and name) sealed for the lead queue.
//!
//! A lead travels from the intake to the router through SQS, and a message
//! that fails lands in the dead-letter queue for 14 days: neither may hold a
//! phone in clear (PIPL). The intake seals the contact with AES-256-GCM under
//! a key derived (HKDF-SHA256) from the phone-hash key, with the lead's
//! delivery id as associated data, so a sealed contact cannot be pasted onto
//! another lead; the router opens it. The phone-hash key never rotates in
//! place, so neither does this key (docs/operations.md, "Secrets").

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::lead::CanonicalLead;
use crate::Phone;

/// Prefix of a sealed contact: the format's version.
const VERSION: &str = "v1:";
/// HKDF `info`: this key is for nothing else derived from the phone-hash key.
const INFO: &[u8] = b"leads/lead-queue-contact/v1";
const NONCE_LEN: usize = 12;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Tampered with, sealed under another key, or for another lead. The
    /// message says which lead, never what is inside.
    #[error("the sealed contact of delivery {0} does not open with this stack's key")]
    DoesNotOpen(String),
}

/// The key that seals and opens contacts (intake and router hold the same).
#[derive(Clone)]
pub struct ContactSeal {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for ContactSeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ContactSeal(..)")
    }
}

#[derive(Serialize, Deserialize)]
struct Contact {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    phone: Option<Phone>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
}

impl ContactSeal {
    /// The sealing key of a stack, derived from its phone-hash key.
    pub fn from_phone_hash_key(phone_hash_key: &[u8]) -> Self {
        let mut key = [0u8; 32];
        hkdf::Hkdf::<sha2::Sha256>::new(None, phone_hash_key)
            .expand(INFO, &mut key)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        ContactSeal {
            cipher: Aes256Gcm::new(&key.into()),
        }
    }

    /// Moves the lead's phone and name into `sealed_contact` (nothing to seal:
    /// the lead is left as it is).
    pub fn seal(&self, lead: &mut CanonicalLead) {
        if lead.phone.is_none() && lead.customer_name.is_none() {
            return;
        }
        let contact = Contact {
            phone: lead.phone.take(),
            name: lead.customer_name.take(),
        };
        let plaintext = serde_json::to_vec(&contact).expect("a contact serialises");
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: &plaintext,
                    aad: lead.source_event_id.as_bytes(),
                },
            )
            .expect("AES-GCM encrypts any message this size");
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        lead.sealed_contact = Some(format!(
            "{VERSION}{}",
            base64::engine::general_purpose::STANDARD.encode(bytes)
        ));
    }

    /// Puts the sealed phone and name back on the lead. A lead without a
    /// sealed contact (sent before sealing existed) is left as it is.
    pub fn open(&self, lead: &mut CanonicalLead) -> Result<(), SealError> {
        let Some(sealed) = lead.sealed_contact.take() else {
            return Ok(());
        };
        let refused = || SealError::DoesNotOpen(lead.source_event_id.clone());
        let bytes = sealed
            .strip_prefix(VERSION)
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .filter(|b| b.len() > NONCE_LEN)
            .ok_or_else(refused)?;
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let plaintext = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: lead.source_event_id.as_bytes(),
                },
            )
            .map_err(|_| refused())?;
        let contact: Contact = serde_json::from_slice(&plaintext).map_err(|_| refused())?;
        lead.phone = contact.phone;
        lead.customer_name = contact.name;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::Platform;
    use crate::identity::PhoneHasher;
    use crate::lead::{CustomerKey, Scene, Traffic};
    use proptest::prelude::*;

    fn lead(phone: &str, name: Option<&str>) -> CanonicalLead {
        let phone = Phone::parse(phone).unwrap();
        CanonicalLead {
            source_event_id: "evt-1".into(),
            platform: Platform::Douyin,
            account_id: "acc".into(),
            scene: Scene::Live,
            traffic: Traffic::Natural,
            customer: CustomerKey::Phone {
                hash: PhoneHasher::new(b"k".to_vec()).hash(&phone),
            },
            linked_customer: None,
            phone: Some(phone),
            customer_name: name.map(str::to_string),
            declared_city: None,
            attributed_city: None,
            series_interest: vec![],
            staff_hint: None,
            channel_tag: None,
            received_at: chrono::Utc::now(),
            raw_payload_ref: "RAW#douyin#1".into(),
            signer_brand: None,
            sealed_contact: None,
        }
    }

    fn seal() -> ContactSeal {
        ContactSeal::from_phone_hash_key(b"a phone-hash key")
    }

    proptest! {
        /// What the queue carries holds neither the phone nor the name, and
        /// opening gives both back.
        #[test]
        fn sealed_leads_carry_no_contact_and_open_to_the_same(
            digits in "1[3-9][0-9]{9}", name in "[\u{4e00}-\u{9fa5}]{2,3}"
        ) {
            let original = lead(&digits, Some(&name));
            let mut sealed = original.clone();
            seal().seal(&mut sealed);
            let wire = serde_json::to_string(&sealed).unwrap();
            prop_assert!(!wire.contains(&digits));
            prop_assert!(!wire.contains(&name));
            let mut opened: CanonicalLead = serde_json::from_str(&wire).unwrap();
            seal().open(&mut opened).unwrap();
            prop_assert_eq!(opened, original);
        }
    }

    #[test]
    fn another_key_another_lead_or_a_changed_byte_does_not_open() {
        let mut sealed = lead("13812345678", None);
        seal().seal(&mut sealed);

        let mut other_key = sealed.clone();
        let err = ContactSeal::from_phone_hash_key(b"another key")
            .open(&mut other_key)
            .unwrap_err();
        assert!(!err.to_string().contains("13812345678"));

        let mut moved = sealed.clone();
        moved.source_event_id = "evt-2".into();
        assert!(seal().open(&mut moved).is_err());

        let mut tampered = sealed.clone();
        let text = tampered.sealed_contact.take().unwrap();
        let last = text.chars().last().unwrap();
        let flipped = if last == 'A' { 'B' } else { 'A' };
        tampered.sealed_contact = Some(format!("{}{flipped}", &text[..text.len() - 1]));
        assert!(seal().open(&mut tampered).is_err());
    }

    #[test]
    fn a_lead_sent_before_sealing_opens_as_it_is() {
        let plain = lead("13812345678", Some("张三"));
        let mut opened = plain.clone();
        seal().open(&mut opened).unwrap();
        assert_eq!(opened, plain);
    }
}
