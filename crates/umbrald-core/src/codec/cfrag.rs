//! `CapsuleFrag`: a re-encrypted capsule with its proof of correct re-encryption.

use super::msgpack::{Reader, Writer};
use super::{read_nonzero_scalar, read_point, read_signature, CodecError, KeyFrag};

const WHAT: &str = "CapsuleFrag";

/// A capsule fragment, held as its canonical encoded fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapsuleFrag {
    /// `E1 = rk·E`.
    pub e1: [u8; 33],
    /// `V1 = rk·V`.
    pub v1: [u8; 33],
    /// The kfrag's identifier.
    pub kfrag_id: [u8; 32],
    /// The kfrag's precursor point.
    pub precursor: [u8; 33],
    /// `E2 = t·E`.
    pub e2: [u8; 33],
    /// `V2 = t·V`.
    pub v2: [u8; 33],
    /// `U1 = rk·U`, the kfrag's commitment.
    pub u1: [u8; 33],
    /// `U2 = t·U`.
    pub u2: [u8; 33],
    /// `z = rk·h + t`.
    pub z: [u8; 32],
    /// The kfrag's signature for the receiver.
    pub kfrag_signature: [u8; 64],
}

impl CapsuleFrag {
    /// Length of the MessagePack encoding.
    pub const ENCODED_LEN: usize = 381;

    /// Parses umbral-pre's MessagePack encoding (structure, points and scalars; the proof is
    /// not verified here).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CodecError> {
        let mut r = Reader::new(WHAT, bytes);
        r.array("cfrag", 5)?;
        let (_, e1) = read_point(&mut r, WHAT, "point_e1")?;
        let (_, v1) = read_point(&mut r, WHAT, "point_v1")?;
        let kfrag_id = *r.bin_exact::<32>("kfrag_id")?;
        let (_, precursor) = read_point(&mut r, WHAT, "precursor")?;
        r.array("proof", 6)?;
        let (_, e2) = read_point(&mut r, WHAT, "proof.point_e2")?;
        let (_, v2) = read_point(&mut r, WHAT, "proof.point_v2")?;
        let (_, u1) = read_point(&mut r, WHAT, "proof.kfrag_commitment")?;
        let (_, u2) = read_point(&mut r, WHAT, "proof.kfrag_pok")?;
        let z = read_nonzero_scalar(&mut r, WHAT, "proof.signature")?
            .to_bytes()
            .into();
        let (_, kfrag_signature) = read_signature(&mut r, WHAT, "proof.kfrag_signature")?;
        r.finish()?;
        Ok(Self {
            e1,
            v1,
            kfrag_id,
            precursor,
            e2,
            v2,
            u1,
            u2,
            z,
            kfrag_signature,
        })
    }

    /// The MessagePack encoding (byte-identical to umbral-pre's).
    pub fn to_bytes(&self) -> [u8; Self::ENCODED_LEN] {
        let mut out = [0u8; Self::ENCODED_LEN];
        let mut w = Writer::new(&mut out);
        w.array(5);
        w.bin(&self.e1);
        w.bin(&self.v1);
        w.bin(&self.kfrag_id);
        w.bin(&self.precursor);
        w.array(6);
        w.bin(&self.e2);
        w.bin(&self.v2);
        w.bin(&self.u1);
        w.bin(&self.u2);
        w.bin(&self.z);
        w.bin(&self.kfrag_signature);
        debug_assert_eq!(w.written(), Self::ENCODED_LEN);
        out
    }

    /// Length of [`CapsuleFrag::to_parts`].
    pub const PARTS_LEN: usize = crate::backend::CFRAG_PARTS_LEN;

    /// The capsule-specific fields, `E1 ‖ V1 ‖ E2 ‖ V2 ‖ U2 ‖ z`: what a cfrag adds to the
    /// kfrag it was made with (the rest is copied from the kfrag).
    pub fn to_parts(&self) -> [u8; Self::PARTS_LEN] {
        let mut out = [0u8; Self::PARTS_LEN];
        let fields: [&[u8]; 6] = [&self.e1, &self.v1, &self.e2, &self.v2, &self.u2, &self.z];
        let mut at = 0;
        for field in fields {
            out[at..at + field.len()].copy_from_slice(field);
            at += field.len();
        }
        out
    }

    /// The cfrag made with `kfrag` whose capsule-specific fields are `parts`
    /// ([`CapsuleFrag::to_parts`]). Only the length is checked: the points and the scalar
    /// are checked where the cfrag is parsed and verified (`umbral_pre::CapsuleFrag`).
    pub fn from_parts(parts: &[u8], kfrag: &KeyFrag) -> Result<Self, CodecError> {
        let parts: &[u8; Self::PARTS_LEN] =
            parts.try_into().map_err(|_| CodecError::FieldLength {
                what: WHAT,
                field: "parts",
                expected: Self::PARTS_LEN,
                got: parts.len(),
            })?;
        let point = |i: usize| -> [u8; 33] {
            let mut p = [0u8; 33];
            p.copy_from_slice(&parts[33 * i..33 * (i + 1)]);
            p
        };
        let mut z = [0u8; 32];
        z.copy_from_slice(&parts[5 * 33..]);
        Ok(Self {
            e1: point(0),
            v1: point(1),
            kfrag_id: kfrag.id,
            precursor: kfrag.precursor,
            e2: point(2),
            v2: point(3),
            u1: kfrag.commitment_bytes,
            u2: point(4),
            z,
            kfrag_signature: kfrag.sig_receiver_bytes,
        })
    }
}
