//! `Capsule`: the KEM ciphertext `(E, V, s)`.

use k256::Scalar;

use super::msgpack::{Reader, Writer};
use super::{read_compressed, read_nonzero_scalar, CodecError};
use crate::curve::{varmul, verify, Affine, CompressedPoint, PointError};
use crate::hash;

const WHAT: &str = "Capsule";

/// A structurally valid capsule: both points valid and non-identity, `s` non-zero.
///
/// Parsing does not check the capsule's equation `s·G = V + h·E`; the engine checks it for a
/// whole batch at once, and [`Capsule::check_vartime`] checks one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capsule {
    pub(crate) e: Affine,
    pub(crate) v: Affine,
    pub(crate) s: Scalar,
    pub(crate) e_bytes: [u8; 33],
    pub(crate) v_bytes: [u8; 33],
}

/// A capsule whose encoding is checked but whose points are not decompressed yet, so that a
/// batch's square roots can be taken together (on a device backend,
/// [`crate::backend::EcBackend::decompress_points`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapsuleParts {
    e: CompressedPoint,
    v: CompressedPoint,
    s: Scalar,
    e_bytes: [u8; 33],
    v_bytes: [u8; 33],
}

impl CapsuleParts {
    /// Checks umbral-pre's MessagePack encoding: the framing, both point encodings (all but
    /// whether they are on the curve) and the non-zero scalar.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CodecError> {
        let mut r = Reader::new(WHAT, bytes);
        r.array("capsule", 3)?;
        let (e, e_bytes) = read_compressed(&mut r, WHAT, "point_e")?;
        let (v, v_bytes) = read_compressed(&mut r, WHAT, "point_v")?;
        let s = read_nonzero_scalar(&mut r, WHAT, "signature")?;
        r.finish()?;
        Ok(Self {
            e,
            v,
            s,
            e_bytes,
            v_bytes,
        })
    }

    /// `E` and `V`, compressed.
    pub fn points(&self) -> [CompressedPoint; 2] {
        [self.e, self.v]
    }

    /// The capsule's scalar `s` (non-zero).
    pub fn signature(&self) -> Scalar {
        self.s
    }

    /// The capsule, given the decompression of `E` and `V` (which the caller has checked
    /// against [`CapsuleParts::points`]).
    pub fn finish(
        self,
        e: Result<Affine, PointError>,
        v: Result<Affine, PointError>,
    ) -> Result<Capsule, CodecError> {
        let invalid = |field, reason| CodecError::InvalidPoint {
            what: WHAT,
            field,
            reason,
        };
        Ok(Capsule {
            e: e.map_err(|reason| invalid("point_e", reason))?,
            v: v.map_err(|reason| invalid("point_v", reason))?,
            s: self.s,
            e_bytes: self.e_bytes,
            v_bytes: self.v_bytes,
        })
    }
}

impl Capsule {
    /// Length of the MessagePack encoding.
    pub const ENCODED_LEN: usize = 105;

    /// Parses umbral-pre's MessagePack encoding.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CodecError> {
        let parts = CapsuleParts::from_bytes(bytes)?;
        let [e, v] = parts.points().map(|p| p.decompress_vartime());
        parts.finish(e, v)
    }

    /// The MessagePack encoding (byte-identical to umbral-pre's).
    pub fn to_bytes(&self) -> [u8; Self::ENCODED_LEN] {
        let mut out = [0u8; Self::ENCODED_LEN];
        let mut w = Writer::new(&mut out);
        w.array(3);
        w.bin(&self.e_bytes);
        w.bin(&self.v_bytes);
        w.bin(&self.s.to_bytes());
        debug_assert_eq!(w.written(), Self::ENCODED_LEN);
        out
    }

    /// The capsule's challenge `h = H(E, V)`.
    pub fn challenge(&self) -> Scalar {
        hash::capsule_points(&self.e_bytes, &self.v_bytes)
    }

    /// Checks `s·G == V + h·E` for this capsule alone (variable time; public data).
    pub fn check_vartime(&self) -> bool {
        let table = varmul::build_tables(std::slice::from_ref(&self.e));
        self.check_with_table_vartime(&table[0])
    }

    /// [`Capsule::check_vartime`] with `E`'s table of odd multiples already built.
    pub(crate) fn check_with_table_vartime(&self, e_table: &varmul::OddTable) -> bool {
        verify::capsule_equation_vartime(e_table, &self.v, &self.s, &self.challenge())
    }
}
