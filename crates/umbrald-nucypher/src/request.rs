//! `ReencryptionRequest` (`ReRq` 3.0): parsing, and the conditions policy.

use crate::msgpack::{malformed, Reader};
use crate::{split_header, NucypherError};

/// Brand of a `ReencryptionRequest`.
pub const REQUEST_BRAND: [u8; 4] = *b"ReRq";
/// The `ReencryptionRequest` version nucypher-core 0.16 writes, and the only one accepted.
pub const REQUEST_VERSION: (u16, u16) = (3, 0);

/// A parsed `ReencryptionRequest`, borrowing from the received bytes.
///
/// Parsing checks the structure only; capsules, keys and the kfrag are checked by
/// [`crate::NodeKeys::authorize`] and the re-encryption engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReencryptionRequest<'a> {
    /// Each capsule's umbral-pre MessagePack bytes, as received.
    pub capsules: Vec<&'a [u8]>,
    /// The policy's HRAC (hashed resource access code).
    pub hrac: [u8; 16],
    /// The encrypted kfrag's Umbral capsule (MessagePack bytes).
    pub ekfrag_capsule: &'a [u8],
    /// The encrypted kfrag's DEM ciphertext (an `AuthorizedKeyFrag`, once decrypted).
    pub ekfrag_ciphertext: &'a [u8],
    /// The publisher's verifying key (33-byte compressed point).
    pub publisher_verifying_key: [u8; 33],
    /// Bob's verifying key (33-byte compressed point).
    pub bob_verifying_key: [u8; 33],
    /// The conditions (JSON text), if any.
    pub conditions: Option<&'a str>,
    /// The context for evaluating conditions (JSON text), if any.
    pub context: Option<&'a str>,
}

impl<'a> ReencryptionRequest<'a> {
    /// Parses a whole `ReRq` message: header, then the MessagePack array
    /// `[capsules, hrac, encrypted_kfrag, publisher_verifying_key, bob_verifying_key,
    /// conditions, context]`.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, NucypherError> {
        let body = split_header(
            bytes,
            &REQUEST_BRAND,
            "ReencryptionRequest",
            REQUEST_VERSION,
        )?;
        let mut r = Reader::new(body);
        r.array_exact("ReencryptionRequest", 7)?;
        let n = r.array_len("capsules")?;
        let mut capsules = Vec::with_capacity(n);
        for _ in 0..n {
            capsules.push(r.value("capsules")?);
        }
        let hrac = r.bin_exact::<16>("hrac")?;
        r.array_exact("encrypted_kfrag", 2)?;
        let ekfrag_capsule = r.value("encrypted_kfrag.capsule")?;
        let ekfrag_ciphertext = r.bin("encrypted_kfrag.ciphertext")?;
        let publisher_verifying_key = r.bin_exact::<33>("publisher_verifying_key")?;
        let bob_verifying_key = r.bin_exact::<33>("bob_verifying_key")?;
        let conditions = r.opt_str("conditions")?;
        let context = r.opt_str("context")?;
        r.finish("ReencryptionRequest")?;
        Ok(Self {
            capsules,
            hrac,
            ekfrag_capsule,
            ekfrag_ciphertext,
            publisher_verifying_key,
            bob_verifying_key,
            conditions,
            context,
        })
    }

    /// Refuses requests that carry conditions, since this server cannot evaluate them.
    ///
    /// "No conditions" is an absent field, JSON `null`, or — what nucypher's Python client sends
    /// when none of the capsules has conditions — a JSON array of `null`s. Anything else is
    /// [`NucypherError::ConditionsUnsupported`]; the context only matters with conditions.
    pub fn check_no_conditions(&self) -> Result<(), NucypherError> {
        let Some(text) = self.conditions else {
            return Ok(());
        };
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| malformed("conditions", format!("not JSON: {e}")))?;
        let none = match &value {
            serde_json::Value::Null => true,
            serde_json::Value::Array(items) => items.iter().all(serde_json::Value::is_null),
            _ => false,
        };
        if none {
            Ok(())
        } else {
            let shown: String = text.chars().take(64).collect();
            let ellipsis = if text.chars().count() > 64 { "…" } else { "" };
            Err(NucypherError::ConditionsUnsupported(format!(
                "{shown}{ellipsis}"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_conditions(conditions: Option<&str>) -> ReencryptionRequest<'_> {
        ReencryptionRequest {
            capsules: Vec::new(),
            hrac: [0; 16],
            ekfrag_capsule: &[],
            ekfrag_ciphertext: &[],
            publisher_verifying_key: [0; 33],
            bob_verifying_key: [0; 33],
            conditions,
            context: None,
        }
    }

    #[test]
    fn only_absent_or_null_conditions_pass() {
        for none in [
            None,
            Some("null"),
            Some("[]"),
            Some("[null, null]"),
            Some(" [null] "),
        ] {
            with_conditions(none)
                .check_no_conditions()
                .unwrap_or_else(|e| panic!("{none:?}: {e}"));
        }
        for some in [
            "[null, {\"chain\": 1}]",
            "{\"operator\": \"and\"}",
            "true",
            "\"x\"",
        ] {
            assert!(matches!(
                with_conditions(Some(some)).check_no_conditions(),
                Err(NucypherError::ConditionsUnsupported(_))
            ));
        }
        assert!(matches!(
            with_conditions(Some("[null,")).check_no_conditions(),
            Err(NucypherError::Malformed {
                field: "conditions",
                ..
            })
        ));
        let long = format!("[{}]", "1,".repeat(100) + "1");
        match with_conditions(Some(&long)).check_no_conditions() {
            Err(NucypherError::ConditionsUnsupported(shown)) => {
                assert!(shown.ends_with('…') && shown.chars().count() == 65)
            }
            other => panic!("{other:?}"),
        }
    }
}
