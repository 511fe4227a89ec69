//! Malformed-input corpus: every case starts from bytes umbral-pre 0.11 wrote, breaks one thing,
//! and asserts the exact typed error (object, field and reason), never just `is_err()`.
//!
//! Where umbrald deliberately differs from umbral-pre (it is stricter: no identity, no
//! uncompressed points, canonical MessagePack only), the test says so and, where that is safe
//! to call, checks umbral-pre's side too, so a change in either shows up here.

mod common;

use common::{capsule_bytes, fixture, fixture_json, Policy};
use proptest::prelude::*;
use umbral_pre::{DefaultDeserialize, DefaultSerialize};
use umbrald_core::codec::KfragVerificationError;
use umbrald_core::curve::PointError;
use umbrald_core::{
    Capsule, CapsuleFrag, CodecError, Engine, ItemError, KeyFrag, PublicKey, ReencryptItem,
};
use umbrald_proto::ErrorCode;

// ---------------------------------------------------------------------------------------------
// Constants.

/// The field modulus p, p − 1, p − 3, p + 1 (big-endian).
const P: &str = "fffffffffffffffffffffffffffffffffffffffffffffffffffffffefffffc2f";
const P_MINUS_1: &str = "fffffffffffffffffffffffffffffffffffffffffffffffffffffffefffffc2e";
const P_MINUS_3: &str = "fffffffffffffffffffffffffffffffffffffffffffffffffffffffefffffc2c";
const P_PLUS_1: &str = "fffffffffffffffffffffffffffffffffffffffffffffffffffffffefffffc30";
/// The group order n, n − 1, n + 1 (big-endian).
const N: &str = "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141";
const N_MINUS_1: &str = "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364140";
const N_PLUS_1: &str = "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364142";
const ALL_FF: &str = "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";
/// The generator G, compressed.
const G: &str = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798";

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).expect("hex")
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// A 32-byte big-endian integer with value `v`.
fn u256(v: u8) -> Vec<u8> {
    let mut out = vec![0u8; 32];
    out[31] = v;
    out
}

/// MessagePack `bin8` (the only byte-string form umbral-pre writes).
fn bin8(payload: &[u8]) -> Vec<u8> {
    let len = u8::try_from(payload.len()).expect("bin8 payload");
    cat(&[&[0xc4, len], payload])
}

/// The 65-byte SEC1 uncompressed encoding of a compressed point (umbral-pre accepts it).
fn uncompressed(compressed: &[u8]) -> Vec<u8> {
    use k256::elliptic_curve::sec1::ToEncodedPoint;
    k256::PublicKey::from_sec1_bytes(compressed)
        .expect("valid point")
        .to_encoded_point(false)
        .as_bytes()
        .to_vec()
}

/// `n − s` for a 32-byte scalar `s`.
fn negate_scalar(bytes: &[u8]) -> Vec<u8> {
    use k256::elliptic_curve::PrimeField;
    let s: Option<k256::Scalar> =
        k256::Scalar::from_repr(*k256::FieldBytes::from_slice(bytes)).into();
    (-s.expect("scalar")).to_bytes().to_vec()
}

// ---------------------------------------------------------------------------------------------
// The three MessagePack objects, their field layout, and both decoders.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// fixarray with this many elements.
    Array(u8),
    /// bin8 of a 33-byte compressed point.
    Point,
    /// bin8 of a 32-byte scalar.
    Scalar,
    /// bin8 of a 32-byte kfrag id.
    Id,
    /// bin8 of a 64-byte `r || s` signature.
    Signature,
    /// MessagePack boolean.
    Bool,
}

impl Kind {
    fn encoded_len(self) -> usize {
        match self {
            Kind::Array(_) | Kind::Bool => 1,
            Kind::Point => 35,
            Kind::Scalar | Kind::Id => 34,
            Kind::Signature => 66,
        }
    }

    fn is_bin(self) -> bool {
        !matches!(self, Kind::Array(_) | Kind::Bool)
    }
}

#[derive(Clone, Copy, Debug)]
struct Field {
    name: &'static str,
    kind: Kind,
    /// Offset of the field's marker byte.
    start: usize,
    /// One past its last byte.
    end: usize,
}

impl Field {
    /// The field's payload (for bin fields: without marker and length).
    fn payload(self, bytes: &[u8]) -> &[u8] {
        let skip = if self.kind.is_bin() { 2 } else { 0 };
        &bytes[self.start + skip..self.end]
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Obj {
    Capsule,
    KeyFrag,
    CapsuleFrag,
}

const CAPSULE_SPEC: &[(&str, Kind)] = &[
    ("capsule", Kind::Array(3)),
    ("point_e", Kind::Point),
    ("point_v", Kind::Point),
    ("signature", Kind::Scalar),
];

const KFRAG_SPEC: &[(&str, Kind)] = &[
    ("kfrag", Kind::Array(5)),
    ("params", Kind::Array(1)),
    ("params.u", Kind::Point),
    ("id", Kind::Id),
    ("key", Kind::Scalar),
    ("precursor", Kind::Point),
    ("proof", Kind::Array(5)),
    ("proof.commitment", Kind::Point),
    ("proof.signature_for_proxy", Kind::Signature),
    ("proof.signature_for_receiver", Kind::Signature),
    ("proof.delegating_key_signed", Kind::Bool),
    ("proof.receiving_key_signed", Kind::Bool),
];

const CFRAG_SPEC: &[(&str, Kind)] = &[
    ("cfrag", Kind::Array(5)),
    ("point_e1", Kind::Point),
    ("point_v1", Kind::Point),
    ("kfrag_id", Kind::Id),
    ("precursor", Kind::Point),
    ("proof", Kind::Array(6)),
    ("proof.point_e2", Kind::Point),
    ("proof.point_v2", Kind::Point),
    ("proof.kfrag_commitment", Kind::Point),
    ("proof.kfrag_pok", Kind::Point),
    ("proof.signature", Kind::Scalar),
    ("proof.kfrag_signature", Kind::Signature),
];

impl Obj {
    const ALL: [Obj; 3] = [Obj::Capsule, Obj::KeyFrag, Obj::CapsuleFrag];

    /// The object name umbrald's errors use.
    fn what(self) -> &'static str {
        match self {
            Obj::Capsule => "Capsule",
            Obj::KeyFrag => "KeyFrag",
            Obj::CapsuleFrag => "CapsuleFrag",
        }
    }

    fn golden(self) -> Vec<u8> {
        fixture(match self {
            Obj::Capsule => "capsule.msgpack",
            Obj::KeyFrag => "kfrag0.msgpack",
            Obj::CapsuleFrag => "cfrag0.msgpack",
        })
    }

    fn encoded_len(self) -> usize {
        match self {
            Obj::Capsule => Capsule::ENCODED_LEN,
            Obj::KeyFrag => KeyFrag::ENCODED_LEN,
            Obj::CapsuleFrag => CapsuleFrag::ENCODED_LEN,
        }
    }

    fn fields(self) -> Vec<Field> {
        let spec = match self {
            Obj::Capsule => CAPSULE_SPEC,
            Obj::KeyFrag => KFRAG_SPEC,
            Obj::CapsuleFrag => CFRAG_SPEC,
        };
        let mut start = 0;
        spec.iter()
            .map(|&(name, kind)| {
                let field = Field {
                    name,
                    kind,
                    start,
                    end: start + kind.encoded_len(),
                };
                start = field.end;
                field
            })
            .collect()
    }

    fn field(self, name: &str) -> Field {
        self.fields()
            .into_iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("{self:?} has no field {name}"))
    }

    fn fields_of(self, kind: fn(Kind) -> bool) -> Vec<Field> {
        self.fields().into_iter().filter(|f| kind(f.kind)).collect()
    }

    /// The field whose encoding contains byte `offset`.
    fn field_at(self, offset: usize) -> Field {
        self.fields()
            .into_iter()
            .find(|f| f.start <= offset && offset < f.end)
            .unwrap_or_else(|| panic!("{self:?}: offset {offset} is past the end"))
    }

    /// umbrald's decoder; on success, its re-encoding.
    fn decode(self, bytes: &[u8]) -> Result<Vec<u8>, CodecError> {
        Ok(match self {
            Obj::Capsule => Capsule::from_bytes(bytes)?.to_bytes().to_vec(),
            Obj::KeyFrag => KeyFrag::from_bytes(bytes)?.to_bytes().to_vec(),
            Obj::CapsuleFrag => CapsuleFrag::from_bytes(bytes)?.to_bytes().to_vec(),
        })
    }

    /// umbral-pre's decoder; on success, its re-encoding. Never call it with an identity point:
    /// umbral-pre panics on those.
    fn umbral_pre_decode(self, bytes: &[u8]) -> Option<Vec<u8>> {
        let encoded = match self {
            Obj::Capsule => umbral_pre::Capsule::from_bytes(bytes).ok()?.to_bytes(),
            Obj::KeyFrag => umbral_pre::KeyFrag::from_bytes(bytes).ok()?.to_bytes(),
            Obj::CapsuleFrag => umbral_pre::CapsuleFrag::from_bytes(bytes).ok()?.to_bytes(),
        };
        Some(encoded.expect("umbral-pre re-encodes").into_vec())
    }
}

/// `base` with field `name`'s whole encoding (marker, length, payload) replaced by `encoding`.
fn splice(obj: Obj, base: &[u8], name: &str, encoding: &[u8]) -> Vec<u8> {
    let f = obj.field(name);
    cat(&[&base[..f.start], encoding, &base[f.end..]])
}

/// The golden object with bin field `name` holding `payload` instead.
fn with_payload(obj: Obj, name: &str, payload: &[u8]) -> Vec<u8> {
    splice(obj, &obj.golden(), name, &bin8(payload))
}

#[track_caller]
fn assert_rejected(obj: Obj, bytes: &[u8], expected: CodecError) {
    assert_eq!(
        obj.decode(bytes),
        Err(expected),
        "{obj:?}: {}",
        hex::encode(bytes)
    );
}

#[track_caller]
fn assert_round_trips(obj: Obj, bytes: &[u8]) {
    assert_eq!(obj.decode(bytes).as_deref(), Ok(bytes), "{obj:?}");
}

fn invalid_point(obj: Obj, field: &'static str, reason: PointError) -> CodecError {
    CodecError::InvalidPoint {
        what: obj.what(),
        field,
        reason,
    }
}

/// The field an error names, if any.
fn error_field(e: &CodecError) -> Option<&'static str> {
    match e {
        CodecError::Truncated { field, .. }
        | CodecError::WrongType { field, .. }
        | CodecError::ArrayLength { field, .. }
        | CodecError::FieldLength { field, .. }
        | CodecError::InvalidPoint { field, .. }
        | CodecError::ScalarOutOfRange { field, .. }
        | CodecError::ZeroScalar { field, .. }
        | CodecError::InvalidSignature { field, .. } => Some(field),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// The layout this file relies on.

#[test]
fn field_layout_matches_the_golden_bytes() {
    // Every splice below trusts this table, so check it against what umbral-pre wrote.
    for obj in Obj::ALL {
        let golden = obj.golden();
        let fields = obj.fields();
        assert_eq!(fields.last().map(|f| f.end), Some(obj.encoded_len()));
        assert_eq!(golden.len(), obj.encoded_len(), "{obj:?}");
        for f in fields {
            let head = &golden[f.start..];
            match f.kind {
                Kind::Array(n) => assert_eq!(head[0], 0x90 | n, "{obj:?}.{}", f.name),
                Kind::Bool => assert!(matches!(head[0], 0xc2 | 0xc3), "{obj:?}.{}", f.name),
                _ => assert_eq!(
                    [head[0], head[1]],
                    [0xc4, (f.end - f.start - 2) as u8],
                    "{obj:?}.{}",
                    f.name
                ),
            }
        }
        assert_round_trips(obj, &golden);
    }
}

// ---------------------------------------------------------------------------------------------
// Points.

#[test]
fn identity_point_is_rejected_in_every_point_field() {
    // `0x00` is SEC1's identity. umbral-pre 0.11 deserializes it and panics later, wherever it
    // expects a 33-byte compressed point (hashing, re-encoding); umbrald must stop it at the
    // decoder.
    for obj in Obj::ALL {
        for f in obj.fields_of(|k| k == Kind::Point) {
            let bytes = with_payload(obj, f.name, &[0x00]);
            assert_rejected(
                obj,
                &bytes,
                invalid_point(obj, f.name, PointError::Identity),
            );
        }
    }
}

#[test]
fn uncompressed_points_are_rejected_although_umbral_pre_accepts_them() {
    // umbral-pre accepts a 65-byte `04 || x || y` and silently re-encodes it compressed, so
    // its bytes-in != bytes-out. umbrald only accepts the canonical 33-byte form.
    for obj in Obj::ALL {
        let golden = obj.golden();
        for f in obj.fields_of(|k| k == Kind::Point) {
            let bytes = with_payload(obj, f.name, &uncompressed(f.payload(&golden)));
            assert_eq!(bytes.len(), golden.len() + 32);
            assert_rejected(
                obj,
                &bytes,
                invalid_point(obj, f.name, PointError::Uncompressed),
            );
            assert_eq!(
                obj.umbral_pre_decode(&bytes),
                Some(golden.clone()),
                "{obj:?}.{}: umbral-pre's behaviour changed",
                f.name
            );
        }
    }
}

#[test]
fn point_prefixes_other_than_02_and_03_are_rejected() {
    // 0x00 and 0x04 are only valid at lengths 1 and 65; 0x06/0x07 are SEC1 "hybrid"; 0x05 is
    // SEC1 "compact" (x only), which umbral-pre (through k256) accepts and re-encodes as
    // 0x02/0x03: umbrald rejects it like any other non-canonical prefix.
    for obj in Obj::ALL {
        let golden = obj.golden();
        for f in obj.fields_of(|k| k == Kind::Point) {
            for prefix in [0x00, 0x01, 0x04, 0x05, 0x06, 0x07, 0x12, 0x83, 0xff] {
                let x = &f.payload(&golden)[1..];
                let bytes = with_payload(obj, f.name, &cat(&[&[prefix], x]));
                let expected = invalid_point(obj, f.name, PointError::BadPrefix(prefix));
                assert_rejected(obj, &bytes, expected);
                if obj != Obj::Capsule {
                    // (A capsule's compact point may get the other y and fail its equation.)
                    let umbral_pre = obj.umbral_pre_decode(&bytes);
                    assert_eq!(umbral_pre.is_some(), prefix == 0x05, "{obj:?}.{}", f.name);
                }
            }
        }
    }
}

#[test]
fn x_coordinates_not_below_p_are_rejected() {
    // p + 1 ≡ 1 (mod p) and x = 1 is on the curve: a decoder that reduced x mod p would accept
    // it and re-encode different bytes.
    assert!(k256::PublicKey::from_sec1_bytes(&cat(&[&[0x02], &u256(1)])).is_ok());
    for obj in Obj::ALL {
        for f in obj.fields_of(|k| k == Kind::Point) {
            for x in [P, P_PLUS_1, ALL_FF] {
                for prefix in [0x02, 0x03] {
                    let bytes = with_payload(obj, f.name, &cat(&[&[prefix], &h(x)]));
                    let expected = invalid_point(obj, f.name, PointError::CoordinateOutOfRange);
                    assert_rejected(obj, &bytes, expected);
                }
            }
        }
    }
}

#[test]
fn x_coordinates_just_below_p_pass_the_range_check() {
    // p − 3 is the largest x on the curve and p − 1 is off it: x < p must be the range check
    // (p − 1 fails as `NotOnCurve`, not `CoordinateOutOfRange`), and p − 3 decodes. (A capsule
    // with it fails its equation, but that is the engine's check, not the decoder's.)
    assert!(k256::PublicKey::from_sec1_bytes(&cat(&[&[0x02], &h(P_MINUS_3)])).is_ok());
    assert!(k256::PublicKey::from_sec1_bytes(&cat(&[&[0x02], &h(P_MINUS_1)])).is_err());
    for obj in Obj::ALL {
        for f in obj.fields_of(|k| k == Kind::Point) {
            for prefix in [0x02, 0x03] {
                let off_curve = with_payload(obj, f.name, &cat(&[&[prefix], &h(P_MINUS_1)]));
                let expected = invalid_point(obj, f.name, PointError::NotOnCurve);
                assert_rejected(obj, &off_curve, expected);
                let largest = with_payload(obj, f.name, &cat(&[&[prefix], &h(P_MINUS_3)]));
                if f.name == "params.u" {
                    // Valid, but not U.
                    assert_rejected(obj, &largest, CodecError::WrongParameters);
                } else {
                    assert_round_trips(obj, &largest);
                }
            }
        }
    }
}

#[test]
fn x_without_a_curve_point_is_rejected() {
    // x³ + 7 is not a square for x = 0 and x = 5: no y exists.
    for x in [u256(0), u256(5)] {
        assert!(k256::PublicKey::from_sec1_bytes(&cat(&[&[0x02], &x])).is_err());
    }
    for obj in Obj::ALL {
        for f in obj.fields_of(|k| k == Kind::Point) {
            for x in [u256(0), u256(5)] {
                for prefix in [0x02, 0x03] {
                    let bytes = with_payload(obj, f.name, &cat(&[&[prefix], &x]));
                    let expected = invalid_point(obj, f.name, PointError::NotOnCurve);
                    assert_rejected(obj, &bytes, expected);
                }
            }
        }
    }
}

#[test]
fn point_fields_of_the_wrong_length_are_rejected() {
    for obj in Obj::ALL {
        let golden = obj.golden();
        for f in obj.fields_of(|k| k == Kind::Point) {
            let point = f.payload(&golden);
            let xy = &uncompressed(point)[1..];
            let cases: [Vec<u8>; 7] = [
                vec![],
                vec![point[0]],                        // a lone prefix byte
                point[..32].to_vec(),                  // one byte short
                cat(&[point, &[0x00]]),                // one byte long
                xy.to_vec(),                           // x || y without a prefix
                cat(&[&[0x06], xy]),                   // 65 bytes, hybrid prefix
                cat(&[&[0x04], &uncompressed(point)]), // 66 bytes
            ];
            for payload in cases {
                let expected = invalid_point(obj, f.name, PointError::Length(payload.len()));
                assert_rejected(obj, &with_payload(obj, f.name, &payload), expected);
            }
        }
    }
}

#[test]
fn kfrag_with_parameters_other_than_u_is_rejected() {
    // umbral-pre deserializes any `params.u` and verifies against it; umbrald pins Umbral's U.
    let golden = Obj::KeyFrag.golden();
    let u = Obj::KeyFrag.field("params.u").payload(&golden).to_vec();
    let mut minus_u = u.clone();
    minus_u[0] ^= 0x01; // same x, other y: −U
    for other in [h(G), minus_u] {
        let bytes = with_payload(Obj::KeyFrag, "params.u", &other);
        assert_rejected(Obj::KeyFrag, &bytes, CodecError::WrongParameters);
    }
}

// ---------------------------------------------------------------------------------------------
// Scalars, ids, signatures, booleans.

#[test]
fn scalar_fields_zero_or_not_below_n_are_rejected() {
    for obj in Obj::ALL {
        for f in obj.fields_of(|k| k == Kind::Scalar) {
            let what = obj.what();
            let field = f.name;
            // umbral-pre accepts a zero kfrag key or cfrag z; umbrald does not (s, key and z
            // are never zero in honest objects, and a zero key would make the identity).
            let zero = with_payload(obj, field, &u256(0));
            assert_rejected(obj, &zero, CodecError::ZeroScalar { what, field });
            if obj != Obj::Capsule {
                assert!(obj.umbral_pre_decode(&zero).is_some(), "{obj:?}.{field}");
            }
            // A decoder that reduced mod n would accept these and re-encode other bytes.
            for big in [N, N_PLUS_1, ALL_FF] {
                let bytes = with_payload(obj, field, &h(big));
                assert_rejected(obj, &bytes, CodecError::ScalarOutOfRange { what, field });
            }
            // The boundaries inside the range decode and re-encode unchanged.
            for ok in [h(N_MINUS_1), u256(1)] {
                assert_round_trips(obj, &with_payload(obj, field, &ok));
            }
        }
    }
}

#[test]
fn scalar_and_id_fields_of_the_wrong_length_are_rejected() {
    for obj in Obj::ALL {
        let golden = obj.golden();
        for f in obj.fields_of(|k| matches!(k, Kind::Scalar | Kind::Id)) {
            let good = f.payload(&golden);
            for payload in [vec![], good[..31].to_vec(), cat(&[good, &[0x00]])] {
                let expected = CodecError::FieldLength {
                    what: obj.what(),
                    field: f.name,
                    expected: 32,
                    got: payload.len(),
                };
                assert_rejected(obj, &with_payload(obj, f.name, &payload), expected);
            }
        }
    }
}

#[test]
fn any_32_byte_kfrag_id_is_accepted() {
    // The id is opaque: no value is invalid, and it must survive byte for byte.
    for obj in [Obj::KeyFrag, Obj::CapsuleFrag] {
        for f in obj.fields_of(|k| k == Kind::Id) {
            for id in [u256(0), h(ALL_FF)] {
                assert_round_trips(obj, &with_payload(obj, f.name, &id));
            }
        }
    }
}

#[test]
fn signature_fields_with_zero_or_out_of_range_halves_are_rejected() {
    for obj in [Obj::KeyFrag, Obj::CapsuleFrag] {
        let golden = obj.golden();
        for f in obj.fields_of(|k| k == Kind::Signature) {
            let (r, s) = f.payload(&golden).split_at(32);
            let invalid = [
                cat(&[&u256(0), s]),
                cat(&[r, &u256(0)]),
                cat(&[&h(N), s]),
                cat(&[r, &h(N)]),
                cat(&[&h(ALL_FF), &h(ALL_FF)]),
            ];
            for sig in invalid {
                let expected = CodecError::InvalidSignature {
                    what: obj.what(),
                    field: f.name,
                };
                assert_rejected(obj, &with_payload(obj, f.name, &sig), expected);
            }
            for payload in [
                vec![],
                f.payload(&golden)[..63].to_vec(),
                cat(&[r, s, &[0]]),
            ] {
                let expected = CodecError::FieldLength {
                    what: obj.what(),
                    field: f.name,
                    expected: 64,
                    got: payload.len(),
                };
                assert_rejected(obj, &with_payload(obj, f.name, &payload), expected);
            }
            // A high-s signature is a well-formed encoding (verification rejects it, see
            // `kfrag_with_malleated_signature_fails_verification`): it must round-trip.
            assert_round_trips(
                obj,
                &with_payload(obj, f.name, &cat(&[r, &negate_scalar(s)])),
            );
        }
    }
}

#[test]
fn kfrag_flags_accept_only_msgpack_booleans() {
    let golden = Obj::KeyFrag.golden();
    for f in Obj::KeyFrag.fields_of(|k| k == Kind::Bool) {
        // nil, fixints 0 and 1, empty fixstr, bin8.
        for marker in [0xc0, 0x00, 0x01, 0xa0, 0xc4] {
            let bytes = splice(Obj::KeyFrag, &golden, f.name, &[marker]);
            let expected = CodecError::WrongType {
                what: "KeyFrag",
                field: f.name,
                offset: f.start,
                expected: "bool",
                found: marker,
            };
            assert_rejected(Obj::KeyFrag, &bytes, expected);
        }
        // The other boolean is structurally fine (the signatures then fail to verify).
        for flag in [0xc2, 0xc3] {
            assert_round_trips(
                Obj::KeyFrag,
                &splice(Obj::KeyFrag, &golden, f.name, &[flag]),
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// MessagePack structure.

#[test]
fn byte_fields_in_other_msgpack_forms_are_rejected() {
    // Only `bin8` is canonical. umbral-pre (rmp-serde) also takes str8, bin16 and bin32 and
    // re-encodes them as bin8, so bytes-in != bytes-out; umbrald rejects them.
    for obj in Obj::ALL {
        let golden = obj.golden();
        for f in obj.fields_of(Kind::is_bin) {
            let payload = f.payload(&golden);
            let len = payload.len() as u8;
            let forms: [Vec<u8>; 6] = [
                cat(&[&[0xd9, len], payload]),                   // str8
                cat(&[&[0xc5, 0x00, len], payload]),             // bin16
                cat(&[&[0xc6, 0x00, 0x00, 0x00, len], payload]), // bin32
                cat(&[&[0xdc, 0x00, len], payload]),             // array16
                vec![0xc0],                                      // nil
                cat(&[&[0x81], &bin8(payload), &bin8(payload)]), // fixmap {payload: payload}
            ];
            for form in forms {
                let bytes = splice(obj, &golden, f.name, &form);
                let expected = CodecError::WrongType {
                    what: obj.what(),
                    field: f.name,
                    offset: f.start,
                    expected: "bin8",
                    found: form[0],
                };
                assert_rejected(obj, &bytes, expected);
                if matches!(form[0], 0xd9 | 0xc5 | 0xc6) {
                    assert_eq!(obj.umbral_pre_decode(&bytes), Some(golden.clone()));
                }
            }
        }
    }
}

#[test]
fn arrays_in_other_msgpack_forms_or_arities_are_rejected() {
    for obj in Obj::ALL {
        let golden = obj.golden();
        for f in obj.fields_of(|k| matches!(k, Kind::Array(_))) {
            let Kind::Array(n) = f.kind else {
                unreachable!()
            };
            // fixmap, array16 and array32 with the right count, bin8, nil.
            for form in [
                vec![0x80 | n],
                vec![0xdc, 0x00, n],
                vec![0xdd, 0x00, 0x00, 0x00, n],
                vec![0xc4, n],
                vec![0xc0],
            ] {
                let expected = CodecError::WrongType {
                    what: obj.what(),
                    field: f.name,
                    offset: f.start,
                    expected: "array",
                    found: form[0],
                };
                assert_rejected(obj, &splice(obj, &golden, f.name, &form), expected);
            }
            for got in [0, n - 1, n + 1, 15] {
                let expected = CodecError::ArrayLength {
                    what: obj.what(),
                    field: f.name,
                    expected: n,
                    got,
                };
                assert_rejected(obj, &splice(obj, &golden, f.name, &[0x90 | got]), expected);
            }
        }
    }
}

#[test]
fn empty_input_is_truncated_at_the_outer_array() {
    for obj in Obj::ALL {
        let field = obj.fields()[0].name;
        let expected = CodecError::Truncated {
            what: obj.what(),
            field,
        };
        assert_rejected(obj, &[], expected);
    }
    assert_eq!(
        PublicKey::from_bytes(&[]),
        Err(CodecError::InvalidPoint {
            what: "PublicKey",
            field: "key",
            reason: PointError::Length(0)
        })
    );
}

#[test]
fn every_truncation_is_an_error_naming_the_field_it_cut() {
    // All 105 + 310 + 381 proper prefixes: each is `Truncated` at exactly the field that
    // contains the first missing byte (marker, length byte or payload alike).
    for obj in Obj::ALL {
        let golden = obj.golden();
        for len in 0..golden.len() {
            let expected = CodecError::Truncated {
                what: obj.what(),
                field: obj.field_at(len).name,
            };
            assert_rejected(obj, &golden[..len], expected);
        }
    }
}

#[test]
fn trailing_bytes_after_a_complete_object_are_rejected() {
    // rmp-serde (and so umbral-pre) stops after one value; umbrald requires the input to be
    // exactly one object so that bytes-in == bytes-out.
    for obj in Obj::ALL {
        let golden = obj.golden();
        for extra in [vec![0x00], vec![0xc0], vec![0xc4, 0x00], golden.clone()] {
            let expected = CodecError::TrailingBytes {
                what: obj.what(),
                extra: extra.len(),
            };
            let bytes = cat(&[&golden, &extra]);
            assert_rejected(obj, &bytes, expected);
            assert_eq!(obj.umbral_pre_decode(&bytes), Some(golden.clone()));
        }
    }
}

#[test]
fn objects_of_one_kind_are_not_accepted_as_another() {
    // Different outer arities: fails at the outer array.
    let cases = [
        (Obj::Capsule, Obj::KeyFrag, 5),
        (Obj::Capsule, Obj::CapsuleFrag, 5),
        (Obj::KeyFrag, Obj::Capsule, 3),
        (Obj::CapsuleFrag, Obj::Capsule, 3),
    ];
    for (obj, other, got) in cases {
        let f = obj.fields()[0];
        let Kind::Array(expected) = f.kind else {
            unreachable!()
        };
        let expected = CodecError::ArrayLength {
            what: obj.what(),
            field: f.name,
            expected,
            got,
        };
        assert_rejected(obj, &other.golden(), expected);
    }
    // Same outer arity: a cfrag's first element is a point where a kfrag has `[U]`, and the
    // other way round.
    let expected = CodecError::WrongType {
        what: "KeyFrag",
        field: "params",
        offset: 1,
        expected: "array",
        found: 0xc4,
    };
    assert_rejected(Obj::KeyFrag, &Obj::CapsuleFrag.golden(), expected);
    let expected = CodecError::WrongType {
        what: "CapsuleFrag",
        field: "point_e1",
        offset: 1,
        expected: "bin8",
        found: 0x91,
    };
    assert_rejected(Obj::CapsuleFrag, &Obj::KeyFrag.golden(), expected);
}

// ---------------------------------------------------------------------------------------------
// Public keys (bare 33-byte SEC1, no MessagePack).

fn golden_key(name: &str) -> Vec<u8> {
    h(fixture_json("keys.json")[name].as_str().expect(name))
}

fn pk_error(reason: PointError) -> Result<PublicKey, CodecError> {
    Err(CodecError::InvalidPoint {
        what: "PublicKey",
        field: "key",
        reason,
    })
}

#[test]
fn public_key_decoding_rejects_each_malformed_encoding() {
    let pk = golden_key("alice_pk");
    assert_eq!(
        PublicKey::from_bytes(&pk).map(|k| k.as_bytes().to_vec()),
        Ok(pk.clone())
    );
    let x = &pk[1..];
    let cases: Vec<(Vec<u8>, PointError)> = vec![
        (vec![0x00], PointError::Identity),
        (uncompressed(&pk), PointError::Uncompressed),
        (cat(&[&[0x00], x]), PointError::BadPrefix(0x00)),
        (cat(&[&[0x01], x]), PointError::BadPrefix(0x01)),
        (cat(&[&[0x04], x]), PointError::BadPrefix(0x04)),
        (cat(&[&[0x05], x]), PointError::BadPrefix(0x05)),
        (cat(&[&[0xff], x]), PointError::BadPrefix(0xff)),
        (cat(&[&[0x02], &h(P)]), PointError::CoordinateOutOfRange),
        (
            cat(&[&[0x03], &h(P_PLUS_1)]),
            PointError::CoordinateOutOfRange,
        ),
        (
            cat(&[&[0x02], &h(ALL_FF)]),
            PointError::CoordinateOutOfRange,
        ),
        (cat(&[&[0x02], &u256(0)]), PointError::NotOnCurve),
        (cat(&[&[0x03], &u256(5)]), PointError::NotOnCurve),
        (pk[..32].to_vec(), PointError::Length(32)),
        (cat(&[&pk, &[0x00]]), PointError::Length(34)),
        (
            cat(&[&[0x06], &uncompressed(&pk)[1..]]),
            PointError::Length(65),
        ),
        (bin8(&pk), PointError::Length(35)), // MessagePack-wrapped: keys are bare bytes
    ];
    for (bytes, reason) in cases {
        assert_eq!(
            PublicKey::from_bytes(&bytes),
            pk_error(reason),
            "{}",
            hex::encode(&bytes)
        );
    }
    for len in 0..pk.len() {
        assert_eq!(
            PublicKey::from_bytes(&pk[..len]),
            pk_error(PointError::Length(len))
        );
    }
}

#[test]
fn every_single_byte_replacement_in_a_public_key_is_an_invalid_point_or_round_trips() {
    // And umbral-pre agrees, except that it takes the SEC1 compact prefix 0x05.
    let pk = golden_key("alice_pk");
    for offset in 0..pk.len() {
        for value in 0..=u8::MAX {
            let mut mutated = pk.clone();
            mutated[offset] = value;
            let umbral_pre = umbral_pre::PublicKey::try_from_compressed_bytes(&mutated).is_ok();
            match PublicKey::from_bytes(&mutated) {
                Ok(key) => {
                    assert_eq!(key.as_bytes().as_slice(), mutated.as_slice());
                    assert!(umbral_pre, "{}", hex::encode(&mutated));
                }
                Err(CodecError::InvalidPoint {
                    what: "PublicKey",
                    field: "key",
                    reason,
                }) => assert_eq!(
                    umbral_pre,
                    reason == PointError::BadPrefix(0x05),
                    "{reason:?}: {}",
                    hex::encode(&mutated)
                ),
                Err(e) => panic!("{}: {e}", hex::encode(&mutated)),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// KeyFrag verification.

struct GoldenPolicy {
    kfrag: Vec<u8>,
    delegating: Vec<u8>,
    receiving: Vec<u8>,
    verifying: Vec<u8>,
}

impl GoldenPolicy {
    fn load() -> Self {
        Self {
            kfrag: Obj::KeyFrag.golden(),
            delegating: golden_key("alice_pk"),
            receiving: golden_key("bob_pk"),
            verifying: golden_key("verifying_pk"),
        }
    }

    fn verify(&self, kfrag: &[u8]) -> Result<(), KfragVerificationError> {
        let key = |b: &[u8]| PublicKey::from_bytes(b).expect("golden key");
        KeyFrag::from_bytes(kfrag)
            .expect("kfrag decodes")
            .verify(
                &key(&self.verifying),
                &key(&self.delegating),
                &key(&self.receiving),
            )
            .map(|_| ())
    }

    /// umbral-pre's verdict on the same kfrag.
    fn umbral_pre_verify(&self, kfrag: &[u8]) -> Result<umbral_pre::VerifiedKeyFrag, String> {
        let key = |b: &[u8]| common::public_key(&hex::encode(b));
        umbral_pre::KeyFrag::from_bytes(kfrag)
            .expect("umbral-pre decodes")
            .verify(
                &key(&self.verifying),
                Some(&key(&self.delegating)),
                Some(&key(&self.receiving)),
            )
            .map_err(|(e, _)| e.to_string())
    }

    /// The kfrag with one byte of field `name`'s payload flipped.
    fn flip(&self, name: &str, payload_offset: usize) -> Vec<u8> {
        let mut bytes = self.kfrag.clone();
        bytes[Obj::KeyFrag.field(name).start + 2 + payload_offset] ^= 0x01;
        bytes
    }
}

#[test]
fn golden_kfrag_verifies() {
    // The baseline the tampering cases below depend on.
    let policy = GoldenPolicy::load();
    assert_eq!(policy.verify(&policy.kfrag), Ok(()));
    assert!(policy.umbral_pre_verify(&policy.kfrag).is_ok());
}

#[test]
fn kfrag_with_tampered_proxy_signature_fails_verification() {
    let policy = GoldenPolicy::load();
    for offset in [0, 31, 32, 63] {
        // Flipping the low bit of r or s keeps both in range: it still decodes.
        let tampered = policy.flip("proof.signature_for_proxy", offset);
        assert_eq!(
            policy.verify(&tampered),
            Err(KfragVerificationError::IncorrectProxySignature)
        );
        assert!(policy.umbral_pre_verify(&tampered).is_err());
    }
}

#[test]
fn kfrag_with_malleated_signature_fails_verification() {
    // (r, n − s) is the other valid-looking ECDSA signature for the same message; k256 (and so
    // umbral-pre) only accepts low s, and umbrald must agree.
    let policy = GoldenPolicy::load();
    let f = Obj::KeyFrag.field("proof.signature_for_proxy");
    let (r, s) = f.payload(&policy.kfrag).split_at(32);
    let malleated = splice(
        Obj::KeyFrag,
        &policy.kfrag,
        f.name,
        &bin8(&cat(&[r, &negate_scalar(s)])),
    );
    assert_eq!(
        policy.verify(&malleated),
        Err(KfragVerificationError::IncorrectProxySignature)
    );
    assert!(policy.umbral_pre_verify(&malleated).is_err());
}

#[test]
fn kfrag_with_tampered_receiver_signature_is_rejected_before_it_makes_bad_cfrags() {
    // umbral-pre does not check this signature on the kfrag; it copies it into every cfrag and
    // Bob rejects those. umbrald rejects the kfrag up front.
    let policy = GoldenPolicy::load();
    let tampered = policy.flip("proof.signature_for_receiver", 63);
    assert_eq!(
        policy.verify(&tampered),
        Err(KfragVerificationError::IncorrectReceiverSignature)
    );
    let verified = policy
        .umbral_pre_verify(&tampered)
        .expect("umbral-pre does not check the receiver signature");
    let capsule = umbral_pre::Capsule::from_bytes(&Obj::Capsule.golden()).expect("capsule");
    let cfrag = umbral_pre::reencrypt(&capsule, verified).unverify();
    let key = |name| common::public_key(&hex::encode(golden_key(name)));
    assert!(cfrag
        .verify(
            &capsule,
            &key("verifying_pk"),
            &key("alice_pk"),
            &key("bob_pk")
        )
        .is_err());
}

#[test]
fn kfrag_with_changed_key_flag_fails_the_proxy_signature() {
    // The flags select what the proxy signature covers; flipping one changes the message.
    let policy = GoldenPolicy::load();
    for name in ["proof.delegating_key_signed", "proof.receiving_key_signed"] {
        let tampered = splice(Obj::KeyFrag, &policy.kfrag, name, &[0xc2]);
        assert_ne!(tampered, policy.kfrag);
        assert_eq!(
            policy.verify(&tampered),
            Err(KfragVerificationError::IncorrectProxySignature)
        );
    }
}

#[test]
fn kfrag_whose_key_or_commitment_changed_fails_the_commitment_check() {
    let policy = GoldenPolicy::load();
    let key_changed = policy.flip("key", 31);
    let precursor = Obj::KeyFrag
        .field("precursor")
        .payload(&policy.kfrag)
        .to_vec();
    let commitment_changed = splice(
        Obj::KeyFrag,
        &policy.kfrag,
        "proof.commitment",
        &bin8(&precursor),
    );
    for tampered in [key_changed, commitment_changed] {
        assert_eq!(
            policy.verify(&tampered),
            Err(KfragVerificationError::IncorrectCommitment)
        );
        assert!(policy.umbral_pre_verify(&tampered).is_err());
    }
}

#[test]
fn kfrag_checked_against_the_wrong_keys_fails() {
    let policy = GoldenPolicy::load();
    let swapped = GoldenPolicy {
        delegating: policy.receiving.clone(),
        receiving: policy.delegating.clone(),
        ..GoldenPolicy::load()
    };
    assert_eq!(
        swapped.verify(&policy.kfrag),
        Err(KfragVerificationError::IncorrectProxySignature)
    );
    let other_signer = GoldenPolicy {
        verifying: policy.delegating.clone(),
        ..GoldenPolicy::load()
    };
    assert_eq!(
        other_signer.verify(&policy.kfrag),
        Err(KfragVerificationError::IncorrectProxySignature)
    );
}

// ---------------------------------------------------------------------------------------------
// The engine's per-item errors.

#[test]
fn engine_verify_policy_reports_the_exact_item_error() {
    let p = GoldenPolicy::load();
    let engine = Engine::cpu();
    let identity_kfrag = with_payload(Obj::KeyFrag, "proof.commitment", &[0x00]);
    let tampered = p.flip("proof.signature_for_proxy", 63);
    let pk_err = |which, reason| ItemError::InvalidPublicKey {
        which,
        source: CodecError::InvalidPoint {
            what: "PublicKey",
            field: "key",
            reason,
        },
    };
    let cases: [([&[u8]; 4], ItemError, ErrorCode); 6] = [
        (
            [&p.kfrag, &[0x00], &p.receiving, &p.verifying],
            pk_err("delegating", PointError::Identity),
            ErrorCode::InvalidKfrag,
        ),
        (
            [&p.kfrag, &p.delegating, &p.receiving[..32], &p.verifying],
            pk_err("receiving", PointError::Length(32)),
            ErrorCode::InvalidKfrag,
        ),
        (
            [
                &p.kfrag,
                &p.delegating,
                &p.receiving,
                &uncompressed(&p.verifying),
            ],
            pk_err("verifying", PointError::Uncompressed),
            ErrorCode::InvalidKfrag,
        ),
        (
            [&identity_kfrag, &p.delegating, &p.receiving, &p.verifying],
            ItemError::InvalidKfrag(invalid_point(
                Obj::KeyFrag,
                "proof.commitment",
                PointError::Identity,
            )),
            ErrorCode::InvalidKfrag,
        ),
        (
            [&p.kfrag[..300], &p.delegating, &p.receiving, &p.verifying],
            ItemError::InvalidKfrag(CodecError::Truncated {
                what: "KeyFrag",
                field: "proof.signature_for_receiver",
            }),
            ErrorCode::InvalidKfrag,
        ),
        (
            [&tampered, &p.delegating, &p.receiving, &p.verifying],
            ItemError::KfragVerification(KfragVerificationError::IncorrectProxySignature),
            ErrorCode::KfragVerificationFailed,
        ),
    ];
    for ([kfrag, d, r, v], expected, code) in cases {
        let err = engine
            .verify_policy(kfrag, d, r, v)
            .expect_err("malformed policy");
        assert_eq!(err, expected);
        assert_eq!(err.code(), code);
    }
    // None of the failures were cached: the good policy still verifies, and only it is cached.
    assert!(engine
        .verify_policy(&p.kfrag, &p.delegating, &p.receiving, &p.verifying)
        .is_ok());
    assert_eq!(engine.cached_policies(), 1);
}

/// Re-encrypts `capsules` in one batch with kfrag 0 of `policy`.
fn run_batch(policy: &Policy, capsules: &[Vec<u8>]) -> Vec<Result<CapsuleFrag, ItemError>> {
    let engine = Engine::cpu();
    let kfrag = policy.verified(&engine, 0);
    let items: Vec<ReencryptItem<'_>> = capsules
        .iter()
        .map(|capsule| ReencryptItem {
            capsule,
            kfrag: &kfrag,
        })
        .collect();
    let results = engine.reencrypt_batch(&items);
    assert_eq!(results.len(), capsules.len());
    results
}

#[test]
fn engine_batch_isolates_identity_point_capsules() {
    // Six good capsules (enough for the engine's combined equation check) with identity
    // points for E and for V mixed in: those two fail alone, with the decoder's exact error,
    // and every good item still yields a cfrag umbral-pre verifies and decrypts with.
    let policy = Policy::new(1, 1);
    let encrypted: Vec<_> = (0..6)
        .map(|i| policy.encrypt(format!("good {i}").as_bytes()))
        .collect();
    let mut capsules: Vec<Vec<u8>> = encrypted.iter().map(|(c, _)| capsule_bytes(c)).collect();
    // E = O, V = s·G satisfies s·G = V + h·E for any h: the equation check cannot catch it, and
    // umbral-pre (which checks it while decoding) accepts it and then panics.
    let identity_e = {
        use k256::elliptic_curve::sec1::ToEncodedPoint;
        let s = k256::Scalar::from(7u64);
        let v = (k256::ProjectivePoint::GENERATOR * s).to_affine();
        let v = v.to_encoded_point(true);
        cat(&[
            &[0x93],
            &bin8(&[0x00]),
            &bin8(v.as_bytes()),
            &bin8(&s.to_bytes()),
        ])
    };
    assert!(std::panic::catch_unwind(|| umbral_pre::Capsule::from_bytes(&identity_e)).is_err());
    let identity_v = splice(Obj::Capsule, &capsules[1], "point_v", &bin8(&[0x00]));
    capsules.insert(2, identity_e);
    capsules.push(identity_v);
    let results = run_batch(&policy, &capsules);
    for (i, field) in [(2, "point_e"), (7, "point_v")] {
        let expected =
            ItemError::InvalidCapsule(invalid_point(Obj::Capsule, field, PointError::Identity));
        assert_eq!(results[i].as_ref().err(), Some(&expected), "item {i}");
        assert_eq!(expected.code(), ErrorCode::InvalidCapsule);
    }
    let good = [0, 1, 3, 4, 5, 6];
    for (j, i) in good.into_iter().enumerate() {
        let cfrag = results[i].as_ref().expect("good capsule re-encrypts");
        let (capsule, ct) = &encrypted[j];
        let verified = policy.check_cfrag(capsule, &cfrag.to_bytes());
        assert_eq!(
            policy.decrypt(capsule, vec![verified], ct),
            format!("good {j}").into_bytes()
        );
    }
}

#[test]
fn engine_batch_reports_each_malformed_capsule_exactly() {
    let policy = Policy::new(1, 1);
    let encrypted: Vec<_> = (0..5).map(|i| policy.encrypt(&[i])).collect();
    let good: Vec<Vec<u8>> = encrypted.iter().map(|(c, _)| capsule_bytes(c)).collect();
    let base = &good[0];
    let e = Obj::Capsule.field("point_e").payload(base).to_vec();
    let what = "Capsule";
    let mut s_changed = base.clone();
    s_changed[104] ^= 0x01;
    let bad: Vec<(Vec<u8>, ItemError)> = vec![
        (
            splice(Obj::Capsule, base, "point_e", &bin8(&uncompressed(&e))),
            ItemError::InvalidCapsule(invalid_point(
                Obj::Capsule,
                "point_e",
                PointError::Uncompressed,
            )),
        ),
        (
            splice(
                Obj::Capsule,
                base,
                "point_v",
                &bin8(&cat(&[&[0x04], &e[1..]])),
            ),
            ItemError::InvalidCapsule(invalid_point(
                Obj::Capsule,
                "point_v",
                PointError::BadPrefix(0x04),
            )),
        ),
        (
            splice(
                Obj::Capsule,
                base,
                "point_e",
                &bin8(&cat(&[&[0x02], &h(P_PLUS_1)])),
            ),
            ItemError::InvalidCapsule(invalid_point(
                Obj::Capsule,
                "point_e",
                PointError::CoordinateOutOfRange,
            )),
        ),
        (
            splice(
                Obj::Capsule,
                base,
                "point_v",
                &bin8(&cat(&[&[0x03], &u256(0)])),
            ),
            ItemError::InvalidCapsule(invalid_point(
                Obj::Capsule,
                "point_v",
                PointError::NotOnCurve,
            )),
        ),
        (
            splice(Obj::Capsule, base, "signature", &bin8(&u256(0))),
            ItemError::InvalidCapsule(CodecError::ZeroScalar {
                what,
                field: "signature",
            }),
        ),
        (
            splice(Obj::Capsule, base, "signature", &bin8(&h(N))),
            ItemError::InvalidCapsule(CodecError::ScalarOutOfRange {
                what,
                field: "signature",
            }),
        ),
        (
            base[..70].to_vec(),
            ItemError::InvalidCapsule(CodecError::Truncated {
                what,
                field: "point_v",
            }),
        ),
        (
            cat(&[base, &[0x00]]),
            ItemError::InvalidCapsule(CodecError::TrailingBytes { what, extra: 1 }),
        ),
        (
            vec![],
            ItemError::InvalidCapsule(CodecError::Truncated {
                what,
                field: "capsule",
            }),
        ),
        (
            Obj::KeyFrag.golden(),
            ItemError::InvalidCapsule(CodecError::ArrayLength {
                what,
                field: "capsule",
                expected: 3,
                got: 5,
            }),
        ),
        // Well-formed but s·G ≠ V + h·E.
        (s_changed, ItemError::CapsuleCheckFailed),
    ];
    // Interleave good and bad items so that positions are checked too.
    enum Want {
        Cfrag(usize),
        Error(ItemError),
    }
    let mut capsules = Vec::new();
    let mut wants = Vec::new();
    for (k, (bytes, err)) in bad.into_iter().enumerate() {
        if let Some(capsule) = good.get(k) {
            capsules.push(capsule.clone());
            wants.push(Want::Cfrag(k));
        }
        capsules.push(bytes);
        wants.push(Want::Error(err));
    }
    let results = run_batch(&policy, &capsules);
    for (i, (result, want)) in results.iter().zip(wants).enumerate() {
        match want {
            Want::Error(err) => {
                assert_eq!(result.as_ref().err(), Some(&err), "item {i}");
                assert_eq!(err.code(), ErrorCode::InvalidCapsule);
            }
            Want::Cfrag(k) => {
                let cfrag = result.as_ref().expect("good capsule re-encrypts");
                policy.check_cfrag(&encrypted[k].0, &cfrag.to_bytes());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Exhaustive single-byte mutations and random inputs.

/// Where umbral-pre 0.11 is deliberately laxer than umbrald: it takes any `params.u`, SEC1
/// "compact" points (prefix 0x05, x only), and byte strings written as str8/bin16/bin32, and
/// re-encodes all of them differently from the input.
fn umbral_pre_is_laxer(e: &CodecError) -> bool {
    matches!(
        e,
        CodecError::WrongParameters
            | CodecError::InvalidPoint {
                reason: PointError::BadPrefix(0x05),
                ..
            }
            | CodecError::WrongType {
                found: 0xd9 | 0xc5 | 0xc6,
                ..
            }
    )
}

/// A same-length mutation of a golden object (bytes at `offsets` changed) must either fail,
/// naming one of the fields it changed (fields are fixed-length, so the unchanged ones before
/// it still decode), or decode and re-encode to exactly the mutated bytes.
///
/// With `oracle`, umbral-pre must also agree: where umbrald accepts, it accepts (a capsule
/// exactly when its equation holds, since umbral-pre checks that while decoding) and
/// re-encodes the same bytes; where umbrald rejects, it rejects too unless
/// [`umbral_pre_is_laxer`]. Only for mutations that cannot create an identity point: umbral-pre
/// panics on those.
fn check_mutation(
    obj: Obj,
    mutated: &[u8],
    offsets: &[usize],
    oracle: bool,
) -> Result<(), TestCaseError> {
    let changed: Vec<&str> = offsets.iter().map(|&o| obj.field_at(o).name).collect();
    match obj.decode(mutated) {
        Ok(reencoded) => {
            prop_assert_eq!(&reencoded, mutated);
            if oracle {
                let holds = match obj {
                    Obj::Capsule => Capsule::from_bytes(mutated)
                        .expect("decoded above")
                        .check_vartime(),
                    _ => true,
                };
                let umbral_pre = obj.umbral_pre_decode(mutated);
                prop_assert_eq!(umbral_pre.is_some(), holds, "{:?} {:?}", obj, changed);
                if let Some(bytes) = umbral_pre {
                    prop_assert_eq!(&bytes, mutated);
                }
            }
        }
        Err(e) => {
            let field = match e {
                CodecError::WrongParameters => "params.u",
                _ => error_field(&e).unwrap_or("<none>"),
            };
            prop_assert!(changed.contains(&field), "{:?} {:?}: {}", obj, changed, e);
            if oracle && !umbral_pre_is_laxer(&e) {
                prop_assert_eq!(obj.umbral_pre_decode(mutated), None, "{:?}: {}", obj, e);
            }
        }
    }
    Ok(())
}

#[test]
fn every_single_byte_replacement_fails_at_its_field_or_round_trips() {
    // All 255 other values at every offset of all three objects (~211k inputs). umbral-pre is
    // consulted for the single-bit flips among them (6.6k; all of them is ~1 min of CPU); the
    // proptest below samples the rest. No single-byte change can make an identity point.
    for obj in Obj::ALL {
        let golden = obj.golden();
        for offset in 0..golden.len() {
            for value in 0..=u8::MAX {
                let diff = value ^ golden[offset];
                if diff == 0 {
                    continue;
                }
                let mut mutated = golden.clone();
                mutated[offset] = value;
                check_mutation(obj, &mutated, &[offset], diff.is_power_of_two())
                    .unwrap_or_else(|e| panic!("{obj:?} byte {offset} = 0x{value:02x}: {e}"));
            }
        }
    }
}

fn any_obj() -> impl Strategy<Value = Obj> {
    prop_oneof![
        Just(Obj::Capsule),
        Just(Obj::KeyFrag),
        Just(Obj::CapsuleFrag)
    ]
}

fn decode_any(bytes: &[u8]) {
    for obj in Obj::ALL {
        if let Ok(reencoded) = obj.decode(bytes) {
            assert_eq!(reencoded, bytes, "{obj:?}");
        }
    }
    if let Ok(pk) = PublicKey::from_bytes(bytes) {
        assert_eq!(pk.as_bytes().as_slice(), bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    /// Arbitrary bytes never panic any decoder, and anything accepted re-encodes unchanged.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        decode_any(&bytes);
    }

    /// Same, past the first marker: a golden prefix followed by random bytes.
    #[test]
    fn golden_prefix_with_random_tail_never_panics(
        obj in any_obj(),
        cut in 0usize..381,
        tail in prop::collection::vec(any::<u8>(), 0..128),
    ) {
        let golden = obj.golden();
        let cut = cut % (golden.len() + 1);
        decode_any(&cat(&[&golden[..cut], &tail]));
    }

    /// Several bytes replaced or bits flipped at once: fails at one of the changed fields, or
    /// round-trips and umbral-pre agrees.
    #[test]
    fn random_multi_byte_mutations_fail_at_a_changed_field_or_round_trip(
        obj in any_obj(),
        edits in prop::collection::vec((0usize..381, any::<u8>(), any::<bool>()), 1..6),
    ) {
        let mut mutated = obj.golden();
        let len = mutated.len();
        let mut offsets = Vec::new();
        for (offset, value, flip_bit) in edits {
            let offset = offset % len;
            if flip_bit {
                mutated[offset] ^= 1 << (value % 8);
            } else {
                mutated[offset] = value;
            }
            offsets.push(offset);
        }
        // Several edits could in principle spell an identity point: only consult umbral-pre
        // when umbrald accepted (then there is none).
        let accepted = obj.decode(&mutated).is_ok();
        check_mutation(obj, &mutated, &offsets, accepted)?;
    }

    /// Random payloads in every point field: only `InvalidPoint` for that field, or a valid
    /// point that round-trips.
    #[test]
    fn random_point_payloads_are_invalid_points_or_round_trip(
        obj in any_obj(),
        which in 0usize..8,
        prefix in prop_oneof![Just(0x02u8), Just(0x03u8), any::<u8>()],
        x in prop::array::uniform32(any::<u8>()),
    ) {
        let points = obj.fields_of(|k| k == Kind::Point);
        let f = points[which % points.len()];
        let bytes = with_payload(obj, f.name, &cat(&[&[prefix], &x]));
        match obj.decode(&bytes) {
            Ok(reencoded) => prop_assert_eq!(reencoded, bytes),
            Err(CodecError::WrongParameters) => prop_assert_eq!(f.name, "params.u"),
            Err(CodecError::InvalidPoint { what, field, reason }) => {
                prop_assert_eq!((what, field), (obj.what(), f.name));
                let expected = match prefix {
                    0x02 | 0x03 => reason == PointError::NotOnCurve
                        || reason == PointError::CoordinateOutOfRange,
                    other => reason == PointError::BadPrefix(other),
                };
                prop_assert!(expected, "{:?}", reason);
            }
            Err(e) => return Err(TestCaseError::fail(format!("unexpected {e}"))),
        }
    }
}
