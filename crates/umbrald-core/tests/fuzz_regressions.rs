//! Inputs found by the fuzz targets in `fuzz/`, kept as tests: each pins what umbrald does
//! with one of them, and what umbral-pre 0.11 does where the two differ on purpose.

mod common;

use common::fixture;
use umbral_pre::{DefaultDeserialize, DefaultSerialize};
use umbrald_core::{CodecError, KeyFrag};

/// `diff_codecs`: the golden kfrag with four bytes changed, one of them in the parameter point
/// `U` (still a valid point, but not Umbral's). umbral-pre 0.11 parses it and re-encodes it
/// byte for byte; umbrald refuses any `U` but Umbral's own. The fuzz target allows exactly
/// this difference.
#[test]
fn kfrag_with_another_valid_parameter_point_is_refused_where_umbral_pre_parses_it() {
    let mut bytes = fixture("kfrag0.msgpack");
    for (offset, byte) in [(26, 0x99), (151, 0x77), (152, 0x49), (240, 0x8c)] {
        bytes[offset] = byte;
    }
    let theirs = umbral_pre::KeyFrag::from_bytes(&bytes).expect("umbral-pre parses it");
    assert_eq!(
        theirs.to_bytes().expect("re-encodes").into_vec(),
        bytes,
        "umbral-pre's behaviour changed"
    );
    assert_eq!(
        KeyFrag::from_bytes(&bytes).map(|k| k.to_bytes().to_vec()),
        Err(CodecError::WrongParameters)
    );
}
