//! Affine points and their 33-byte SEC1 compressed encoding.

use k256::elliptic_curve::sec1::ToEncodedPoint;
use k256::{AffinePoint, ProjectivePoint};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

use super::field::Fe;

/// Why 33 bytes are not a valid compressed secp256k1 point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PointError {
    /// The 1-byte SEC1 encoding of the identity (`0x00`): not allowed anywhere in Umbral.
    #[error("the identity point is not allowed")]
    Identity,
    /// A 65-byte uncompressed encoding; umbral-pre always writes compressed points.
    #[error("uncompressed point encoding is not accepted")]
    Uncompressed,
    /// The first byte is not `0x02` or `0x03`.
    #[error("invalid point prefix 0x{0:02x}")]
    BadPrefix(u8),
    /// The x coordinate is not below the field modulus.
    #[error("x coordinate is not a field element")]
    CoordinateOutOfRange,
    /// No point on the curve has this x coordinate.
    #[error("point is not on the curve")]
    NotOnCurve,
    /// The encoding has the wrong length.
    #[error("point encoding has {0} bytes, expected 33")]
    Length(usize),
}

/// A finite point `(x, y)` on secp256k1 with normalized coordinates.
///
/// This type cannot hold the identity; code that may produce it uses `Option<Affine>`.
#[derive(Clone, Copy, Debug)]
pub struct Affine {
    /// The x coordinate, normalized.
    pub x: Fe,
    /// The y coordinate, normalized.
    pub y: Fe,
}

/// `b = 7` in `y² = x³ + 7`.
const CURVE_B: Fe = Fe::from_u64(7);

/// A compressed point whose encoding is valid (33 bytes, prefix `0x02`/`0x03`, `x < p`) but
/// whose `y` is not computed yet: the square root is most of the cost of decompression, and a
/// device backend can take it for a whole batch ([`crate::backend::EcBackend::decompress_points`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompressedPoint {
    /// The x coordinate, normalized.
    pub x: Fe,
    /// Whether `y` is odd (prefix `0x03`).
    pub odd: bool,
}

impl CompressedPoint {
    /// Checks a 33-byte SEC1 compressed encoding; every error but [`PointError::NotOnCurve`]
    /// is found here.
    pub fn parse(bytes: &[u8]) -> Result<CompressedPoint, PointError> {
        match bytes {
            [0x00] => return Err(PointError::Identity),
            [0x04, ..] if bytes.len() == 65 => return Err(PointError::Uncompressed),
            _ if bytes.len() != 33 => return Err(PointError::Length(bytes.len())),
            _ => {}
        }
        let prefix = bytes[0];
        if prefix != 0x02 && prefix != 0x03 {
            return Err(PointError::BadPrefix(prefix));
        }
        let mut x_bytes = [0u8; 32];
        x_bytes.copy_from_slice(&bytes[1..]);
        let x: Option<Fe> = Fe::from_bytes(&x_bytes).into();
        let x = x.ok_or(PointError::CoordinateOutOfRange)?;
        Ok(CompressedPoint {
            x,
            odd: prefix == 0x03,
        })
    }

    /// The point, with the square root taken here (variable time: public data).
    pub fn decompress_vartime(&self) -> Result<Affine, PointError> {
        let rhs = self.x.square().mul(&self.x).add(&CURVE_B);
        let y: Option<Fe> = rhs.sqrt().into();
        let y = y.ok_or(PointError::NotOnCurve)?;
        let y = if bool::from(y.is_odd()) == self.odd {
            y
        } else {
            y.neg().normalize()
        };
        Ok(Affine { x: self.x, y })
    }

    /// Whether `p` is this point: same `x`, `y` of the right parity, on the curve. How the
    /// engine accepts a point decompressed elsewhere (three field operations, no square root).
    pub fn accepts(&self, p: &Affine) -> bool {
        self.matches(p) && p.is_on_curve()
    }

    /// Whether `p` has this `x` and a `y` of this parity: [`Self::accepts`] without the
    /// on-curve check, for a point whose source has already made it
    /// ([`crate::backend::EcBackend::checks_outputs`]).
    pub fn matches(&self, p: &Affine) -> bool {
        p.x.eq_vartime(&self.x) && (p.y.normalize().0[0] & 1 == 1) == self.odd
    }
}

impl Affine {
    /// Decodes a 33-byte SEC1 compressed point (variable time: the input is public).
    ///
    /// The identity, uncompressed encodings, out-of-range x and off-curve x are each a
    /// distinct [`PointError`].
    pub fn decompress_vartime(bytes: &[u8]) -> Result<Affine, PointError> {
        CompressedPoint::parse(bytes)?.decompress_vartime()
    }

    /// Builds a point from big-endian coordinates, checking that it is on the curve.
    pub fn from_xy_bytes(x: &[u8; 32], y: &[u8; 32]) -> Option<Affine> {
        let x: Option<Fe> = Fe::from_bytes(x).into();
        let y: Option<Fe> = Fe::from_bytes(y).into();
        let p = Affine { x: x?, y: y? };
        p.is_on_curve().then_some(p)
    }

    /// Builds a point from coordinates as eight little-endian 32-bit limbs each (the GPU
    /// kernels' layout), checking that they are below `p` and that the point is on the curve.
    pub fn from_xy_limbs(x: &[u32; 8], y: &[u32; 8]) -> Option<Affine> {
        let x: Option<Fe> = Fe::from_u32_limbs(x).into();
        let y: Option<Fe> = Fe::from_u32_limbs(y).into();
        let p = Affine { x: x?, y: y? };
        p.is_on_curve().then_some(p)
    }

    /// The coordinates as eight little-endian 32-bit limbs each (the GPU kernels' layout).
    pub fn to_xy_limbs(&self) -> ([u32; 8], [u32; 8]) {
        (self.x.to_u32_limbs(), self.y.to_u32_limbs())
    }

    /// `y² == x³ + 7`, in variable time (points checked are public: decoded or read back).
    pub fn is_on_curve(&self) -> bool {
        let lhs = self.y.square();
        let rhs = self.x.square().mul(&self.x).add(&CURVE_B);
        rhs.eq_vartime(&lhs)
    }

    /// Whether `self == other`, in variable time: for public points only (`==` is constant
    /// time).
    pub fn eq_vartime(&self, other: &Affine) -> bool {
        self.x.eq_vartime(&other.x) && self.y.eq_vartime(&other.y)
    }

    /// The 33-byte SEC1 compressed encoding.
    pub fn to_compressed(&self) -> [u8; 33] {
        let mut out = [0u8; 33];
        let y = self.y.normalize();
        out[0] = 0x02 | (y.is_odd().unwrap_u8());
        out[1..].copy_from_slice(&self.x.normalize().to_bytes());
        out
    }

    /// Big-endian `x || y`, 64 bytes (the layout device backends use).
    pub fn to_xy_bytes(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(&self.x.normalize().to_bytes());
        out[32..].copy_from_slice(&self.y.normalize().to_bytes());
        out
    }

    /// The point's negation `(x, −y)`.
    pub fn neg(&self) -> Affine {
        Affine {
            x: self.x,
            y: self.y.neg().normalize(),
        }
    }

    /// `−self` when `negate` is set, `self` otherwise; constant time.
    pub fn conditional_neg(&self, negate: Choice) -> Affine {
        let neg_y = self.y.neg().normalize();
        Affine {
            x: self.x,
            y: Fe::conditional_select(&self.y, &neg_y, negate),
        }
    }

    /// Converts to k256's projective type (for the complete-formula fallback and tests).
    pub fn to_k256(&self) -> ProjectivePoint {
        let bytes = self.to_compressed();
        let point: Option<AffinePoint> =
            k256::elliptic_curve::sec1::FromEncodedPoint::from_encoded_point(
                &k256::EncodedPoint::from_bytes(bytes).unwrap_or_default(),
            )
            .into();
        // `self` is a valid finite point by construction, so decoding its own encoding succeeds.
        ProjectivePoint::from(point.unwrap_or_default())
    }

    /// Converts a k256 point; `None` for the identity.
    pub fn from_k256(point: &ProjectivePoint) -> Option<Affine> {
        let encoded = point.to_affine().to_encoded_point(false);
        let (x, y) = (encoded.x()?, encoded.y()?);
        Affine::from_xy_bytes(&(*x).into(), &(*y).into())
    }
}

impl ConditionallySelectable for Affine {
    fn conditional_select(a: &Self, b: &Self, choice: Choice) -> Self {
        Affine {
            x: Fe::conditional_select(&a.x, &b.x, choice),
            y: Fe::conditional_select(&a.y, &b.y, choice),
        }
    }
}

impl PartialEq for Affine {
    fn eq(&self, other: &Self) -> bool {
        bool::from(self.x.ct_eq(&other.x) & self.y.ct_eq(&other.y))
    }
}

impl Eq for Affine {}
