//! The host-compiled kernels (`kernels/host_harness.cpp`, built by `build.rs` with the
//! `host-harness` feature): the C functions and the safe functions around them that
//! `crate::host` exports.

use k256::Scalar;

use crate::layout;
use crate::table::{FixedBaseTable, ENTRY_WORDS, ROW, WINDOWS};

mod sys {
    extern "C" {
        pub fn umbh_block_size() -> u32;
        pub fn umbh_fe_mul(a: *const u8, b: *const u8, out: *mut u8);
        pub fn umbh_fe_sqr(a: *const u8, out: *mut u8);
        pub fn umbh_fe_add(a: *const u8, b: *const u8, out: *mut u8);
        pub fn umbh_fe_sub(a: *const u8, b: *const u8, out: *mut u8);
        pub fn umbh_fe_neg(a: *const u8, out: *mut u8);
        pub fn umbh_fe_inv(a: *const u8, out: *mut u8);
        pub fn umbh_fe_reduce(a: *const u8, out: *mut u8);
        pub fn umbh_prj_dbl(p: *const u8, p_inf: i32, zp: *const u8, out: *mut u8) -> i32;
        pub fn umbh_prj_add(
            p: *const u8,
            p_inf: i32,
            zp: *const u8,
            q: *const u8,
            q_inf: i32,
            zq: *const u8,
            out: *mut u8,
        ) -> i32;
        pub fn umbh_prj_add_affine(
            p: *const u8,
            p_inf: i32,
            zp: *const u8,
            q: *const u8,
            q_inf: i32,
            out: *mut u8,
        ) -> i32;
        pub fn umbh_digits(k: *const u8, digits: *mut i32);
        pub fn umbh_fe_mul_small(a: *const u8, c: u32, out: *mut u8);
        pub fn umbh_mul_var(p: *const u8, k: *const u8, out: *mut u8) -> i32;
        pub fn umbh_glv_split(
            k: *const u8,
            mag1: *mut u8,
            mag2: *mut u8,
            neg1: *mut i32,
            neg2: *mut i32,
        );
        pub fn umbh_mul_fixed(table: *const u32, k: *const u8, out: *mut u8) -> i32;
        pub fn umbh_launch_pairs(
            bases: *const u32,
            scalars: *const u32,
            out: *mut u32,
            n: u32,
            shared_table: i32,
            second: i32,
        );
        pub fn umbh_launch_fixed(table: *const u32, scalars: *const u32, out: *mut u32, n: u32);
        pub fn umbh_decompress(x: *const u8, odd: i32, y_out: *mut u8) -> i32;
        pub fn umbh_launch_decompress(input: *const u32, out: *mut u32, n: u32);
        pub fn umbh_sha256(msg: *const u8, len: u32, out: *mut u8);
        pub fn umbh_scalar_mul_add(a: *const u8, b: *const u8, c: *const u8, out: *mut u8);
        pub fn umbh_hash_to_scalar(digest: *const u8, out: *mut u8);
        pub fn umbh_finish_parts(
            pair_in: *const u32,
            pair_out: *const u32,
            fixed_out: *const u32,
            u1_in: *const u32,
            out: *mut u32,
            c: u32,
        );
        pub fn umbh_launch_reenc_prep(
            input: *const u32,
            pair_in: *mut u32,
            firsts_in: *mut u32,
            prep: *mut u32,
            c: u32,
        );
        pub fn umbh_launch_reenc_finish(
            input: *const u32,
            pair_in: *const u32,
            pair_out: *const u32,
            firsts_out: *const u32,
            g_out: *const u32,
            u_out: *const u32,
            prep: *const u32,
            out: *mut u32,
            c: u32,
        );
    }
}

/// 32 big-endian bytes: a field element or a scalar.
pub type Bytes32 = [u8; 32];
/// An affine point as big-endian `x || y`.
pub type Point64 = [u8; 64];

/// `UMB_BLOCK` as compiled into the kernels.
pub fn block_size() -> u32 {
    // SAFETY: no arguments; returns a constant.
    unsafe { sys::umbh_block_size() }
}

macro_rules! unary {
    ($(#[$doc:meta])* $name:ident, $ffi:ident) => {
        $(#[$doc])*
        pub fn $name(a: &Bytes32) -> Bytes32 {
            let mut out = [0u8; 32];
            // SAFETY: `a` is 32 readable bytes and `out` 32 writable bytes, as the C side
            // expects; it keeps no pointer after returning.
            unsafe { sys::$ffi(a.as_ptr(), out.as_mut_ptr()) };
            out
        }
    };
}

macro_rules! binary {
    ($(#[$doc:meta])* $name:ident, $ffi:ident) => {
        $(#[$doc])*
        pub fn $name(a: &Bytes32, b: &Bytes32) -> Bytes32 {
            let mut out = [0u8; 32];
            // SAFETY: `a`, `b` are 32 readable bytes and `out` 32 writable bytes, as the C side
            // expects; it keeps no pointer after returning.
            unsafe { sys::$ffi(a.as_ptr(), b.as_ptr(), out.as_mut_ptr()) };
            out
        }
    };
}

binary!(
    /// `a * b mod p` (inputs reduced mod p first, like every field function here).
    fe_mul, umbh_fe_mul
);
binary!(
    /// `a + b mod p`.
    fe_add, umbh_fe_add
);
binary!(
    /// `a - b mod p`.
    fe_sub, umbh_fe_sub
);
unary!(
    /// `a^2 mod p`.
    fe_sqr, umbh_fe_sqr
);
unary!(
    /// `-a mod p`.
    fe_neg, umbh_fe_neg
);
unary!(
    /// `a^-1 mod p` (0 for 0).
    fe_inv, umbh_fe_inv
);
unary!(
    /// `a mod p` for any 256-bit `a`.
    fe_reduce, umbh_fe_reduce
);

fn point_result(out: Point64, inf: i32) -> Option<Point64> {
    (inf == 0).then_some(out)
}

/// `a * c mod p` for a small constant `c` (below 2^16), as the point formulas use it.
pub fn fe_mul_small(a: &Bytes32, c: u16) -> Bytes32 {
    let mut out = [0u8; 32];
    // SAFETY: 32 readable bytes in, 32 writable bytes out.
    unsafe { sys::umbh_fe_mul_small(a.as_ptr(), u32::from(c), out.as_mut_ptr()) };
    out
}

/// `2P` with `P` given in projective form `(x z, y z, z)` (`z` non-zero); an identity input is
/// `(0 : y z : 0)`.
pub fn prj_dbl(p: &Point64, p_inf: bool, z: &Bytes32) -> Option<Point64> {
    let mut out = [0u8; 64];
    // SAFETY: 64 + 32 readable bytes in, 64 writable bytes out, as the C side expects.
    let inf = unsafe { sys::umbh_prj_dbl(p.as_ptr(), p_inf.into(), z.as_ptr(), out.as_mut_ptr()) };
    point_result(out, inf)
}

/// `P + Q` (complete projective addition), both given in projective form scaled by `zp`, `zq`.
pub fn prj_add(
    p: &Point64,
    p_inf: bool,
    zp: &Bytes32,
    q: &Point64,
    q_inf: bool,
    zq: &Bytes32,
) -> Option<Point64> {
    let mut out = [0u8; 64];
    // SAFETY: pointers to arrays of the sizes the C side reads and writes.
    let inf = unsafe {
        sys::umbh_prj_add(
            p.as_ptr(),
            p_inf.into(),
            zp.as_ptr(),
            q.as_ptr(),
            q_inf.into(),
            zq.as_ptr(),
            out.as_mut_ptr(),
        )
    };
    point_result(out, inf)
}

/// `P + Q` with `Q` affine (complete mixed addition), `P` in projective form scaled by `zp`.
pub fn prj_add_affine(
    p: &Point64,
    p_inf: bool,
    zp: &Bytes32,
    q: &Point64,
    q_inf: bool,
) -> Option<Point64> {
    let mut out = [0u8; 64];
    // SAFETY: pointers to arrays of the sizes the C side reads and writes.
    let inf = unsafe {
        sys::umbh_prj_add_affine(
            p.as_ptr(),
            p_inf.into(),
            zp.as_ptr(),
            q.as_ptr(),
            q_inf.into(),
            out.as_mut_ptr(),
        )
    };
    point_result(out, inf)
}

/// The 65 signed window digits of `k` (least significant first): `k = sum d_i 16^i`.
pub fn digits(k: &Bytes32) -> [i32; 65] {
    let mut out = [0i32; 65];
    // SAFETY: 32 readable bytes in, 65 writable i32 out.
    unsafe { sys::umbh_digits(k.as_ptr(), out.as_mut_ptr()) };
    out
}

/// `k * P` by the variable-base kernel path (table of P, the kernel's GLV split of k, 4-bit
/// signed windows on both halves).
pub fn mul_var(p: &Point64, k: &Scalar) -> Option<Point64> {
    let k: Bytes32 = k.to_bytes().into();
    let mut out = [0u8; 64];
    // SAFETY: 64 + 32 readable bytes in, 64 writable bytes out.
    let inf = unsafe { sys::umbh_mul_var(p.as_ptr(), k.as_ptr(), out.as_mut_ptr()) };
    point_result(out, inf)
}

/// The kernel's GLV split of `k`: `(|k1|, k1 < 0, |k2|, k2 < 0)` with `k = k1 + k2·λ (mod n)`,
/// magnitudes as 16 big-endian bytes.
pub fn glv_split(k: &Scalar) -> ([u8; 16], bool, [u8; 16], bool) {
    let k: Bytes32 = k.to_bytes().into();
    let (mut m1, mut m2) = ([0u8; 16], [0u8; 16]);
    let (mut n1, mut n2) = (0i32, 0i32);
    // SAFETY: 32 readable bytes, two 16-byte outputs and two i32 outputs, as the C side writes.
    unsafe {
        sys::umbh_glv_split(
            k.as_ptr(),
            m1.as_mut_ptr(),
            m2.as_mut_ptr(),
            &mut n1,
            &mut n2,
        )
    };
    (m1, n1 != 0, m2, n2 != 0)
}

/// `k * Q` by the fixed-base kernel path with `table` built for `Q`.
pub fn mul_fixed(table: &FixedBaseTable, k: &Bytes32) -> Option<Point64> {
    debug_assert_eq!(table.words().len(), WINDOWS * ROW * ENTRY_WORDS);
    let mut out = [0u8; 64];
    // SAFETY: the table has the full WINDOWS * ROW * ENTRY_WORDS words the C side reads.
    let inf = unsafe { sys::umbh_mul_fixed(table.words().as_ptr(), k.as_ptr(), out.as_mut_ptr()) };
    point_result(out, inf)
}

/// Replays a `umb_mul_pairs` launch over words in the device layout, with the affine tables in
/// local memory or (`shared_table`) laid out as the `UMB_TABLE_SHARED` build's shared memory;
/// `second` false skips the second products (every second scalar must then be zero).
pub fn launch_pairs(input: &[u32], n: u32, shared_table: bool, second: bool) -> Vec<u32> {
    let n_items = n as usize;
    assert_eq!(input.len(), layout::PAIR_IN_WORDS * n_items, "input words");
    let mut out = vec![0u32; layout::PAIR_OUT_WORDS * n_items];
    let (bases, scalars) = input.split_at(layout::PAIR_BASE_WORDS * n_items);
    // SAFETY: the slices hold 16n, 16n and 34n words, the sizes the replay reads and writes.
    unsafe {
        sys::umbh_launch_pairs(
            bases.as_ptr(),
            scalars.as_ptr(),
            out.as_mut_ptr(),
            n,
            i32::from(shared_table),
            i32::from(second),
        )
    };
    out
}

/// `y` with `y² = x³ + 7` and the given parity, by the decompression kernel's code; `None` when
/// `x` is not on the curve.
pub fn decompress(x: &Bytes32, odd: bool) -> Option<Bytes32> {
    let mut y = [0u8; 32];
    // SAFETY: 32 readable bytes in, 32 writable bytes out.
    let ok = unsafe { sys::umbh_decompress(x.as_ptr(), odd.into(), y.as_mut_ptr()) };
    (ok == 1).then_some(y)
}

/// Replays a `umb_decompress` launch over words in the device layout.
pub fn launch_decompress(input: &[u32], n: u32) -> Vec<u32> {
    let n_items = n as usize;
    assert_eq!(
        input.len(),
        layout::DECOMPRESS_IN_WORDS * n_items,
        "input words"
    );
    let mut out = vec![0u32; layout::DECOMPRESS_OUT_WORDS * n_items];
    // SAFETY: input and output hold the 9n words the replay reads and writes.
    unsafe { sys::umbh_launch_decompress(input.as_ptr(), out.as_mut_ptr(), n) };
    out
}

/// Replays a `umb_mul_fixed` launch over words in the device layout.
pub fn launch_fixed(table: &FixedBaseTable, input: &[u32], n: u32) -> Vec<u32> {
    let n_items = n as usize;
    assert_eq!(input.len(), layout::FIXED_IN_WORDS * n_items, "input words");
    assert_eq!(
        table.words().len(),
        WINDOWS * ROW * ENTRY_WORDS,
        "table words"
    );
    let mut out = vec![0u32; layout::FIXED_OUT_WORDS * n_items];
    // SAFETY: table, input and output hold the full sizes the replay reads and writes.
    unsafe { sys::umbh_launch_fixed(table.words().as_ptr(), input.as_ptr(), out.as_mut_ptr(), n) };
    out
}

/// SHA-256 of `msg` by the kernels' implementation (`kernels/finish.cuh`).
pub fn sha256(msg: &[u8]) -> [u8; 32] {
    let len = u32::try_from(msg.len()).unwrap_or_else(|_| panic!("message over 4 GiB"));
    let mut out = [0u8; 32];
    // SAFETY: `msg` holds `len` readable bytes (none are read when it is empty) and `out` 32
    // writable bytes; the C side keeps no pointer after returning.
    unsafe { sys::umbh_sha256(msg.as_ptr(), len, out.as_mut_ptr()) };
    out
}

/// `a · b + c mod n` by the kernels' constant-time scalar code (the cfrag proof's
/// `z = rk · h + t`).
pub fn scalar_mul_add(a: &Scalar, b: &Scalar, c: &Scalar) -> Scalar {
    let a = zeroize::Zeroizing::new(<Bytes32>::from(a.to_bytes()));
    let b = zeroize::Zeroizing::new(<Bytes32>::from(b.to_bytes()));
    let c = zeroize::Zeroizing::new(<Bytes32>::from(c.to_bytes()));
    let mut out = zeroize::Zeroizing::new([0u8; 32]);
    // SAFETY: three 32-byte inputs and one 32-byte output, as the C side reads and writes.
    unsafe { sys::umbh_scalar_mul_add(a.as_ptr(), b.as_ptr(), c.as_ptr(), out.as_mut_ptr()) };
    scalar_from_reduced(&out)
}

/// `digest mod (n − 1) + 1` by the kernels' code: umbral-pre's hash-to-scalar of a SHA-256
/// digest (big-endian).
pub fn hash_to_scalar(digest: &Bytes32) -> Scalar {
    let mut out = [0u8; 32];
    // SAFETY: 32 readable bytes in, 32 writable bytes out.
    unsafe { sys::umbh_hash_to_scalar(digest.as_ptr(), out.as_mut_ptr()) };
    scalar_from_reduced(&out)
}

/// A scalar from 32 big-endian bytes the kernel code has reduced below n.
fn scalar_from_reduced(bytes: &Bytes32) -> Scalar {
    use k256::elliptic_curve::PrimeField;
    Option::from(Scalar::from_repr((*bytes).into()))
        .unwrap_or_else(|| unreachable!("the kernel code reduces below n"))
}

/// Runs the cfrag-parts step of `umb_reenc_finish` (`umb_cfrag_parts_item`, with no status
/// bits of its own) over words in the device layout for `c` capsules:
/// `pair_in` and `pair_out` are a `umb_mul_pairs` launch's input and output over `2c` items
/// (`E_j`, `V_j`, both with the scalars `[rk_j, t_j]`), `fixed_out` a `umb_mul_fixed` output
/// with U's table for the `t_j`, `u1_in` the [`layout::PARTS_U1_WORDS`] rows of each `U1_j`.
/// Returns [`layout::PARTS_OUT_WORDS`] rows of `c` words.
pub fn finish_parts(
    pair_in: &[u32],
    pair_out: &[u32],
    fixed_out: &[u32],
    u1_in: &[u32],
    c: u32,
) -> Vec<u32> {
    let n = c as usize;
    assert_eq!(pair_in.len(), layout::PAIR_IN_WORDS * 2 * n, "pair input");
    assert_eq!(
        pair_out.len(),
        layout::PAIR_OUT_WORDS * 2 * n,
        "pair output"
    );
    assert_eq!(fixed_out.len(), layout::FIXED_OUT_WORDS * n, "fixed output");
    assert_eq!(u1_in.len(), layout::PARTS_U1_WORDS * n, "U1 words");
    let mut out = vec![0u32; layout::PARTS_OUT_WORDS * n];
    // SAFETY: the slices hold 64c, 68c, 17c and 9c words and `out` 51c, the sizes the replay
    // reads and writes.
    unsafe {
        sys::umbh_finish_parts(
            pair_in.as_ptr(),
            pair_out.as_ptr(),
            fixed_out.as_ptr(),
            u1_in.as_ptr(),
            out.as_mut_ptr(),
            c,
        )
    };
    out
}

/// Replays a `umb_reenc_prep` launch for `c` capsules: from `input`
/// ([`layout::REENC_IN_WORDS`] rows) returns the pair kernel's input for `2c` items
/// ([`layout::PAIR_IN_WORDS`] rows), the `second = 0` input for `c` items
/// ([`layout::PAIR_IN_WORDS`] rows, scalar rows 8..15 zero) and one status word per capsule
/// (8: `E` or `V` does not decompress).
pub fn launch_reenc_prep(input: &[u32], c: u32) -> (Vec<u32>, Vec<u32>, Vec<u32>) {
    let n = c as usize;
    assert_eq!(input.len(), layout::REENC_IN_WORDS * n, "input words");
    let mut pair_in = vec![0u32; layout::PAIR_IN_WORDS * 2 * n];
    let mut firsts_in = vec![0u32; layout::PAIR_IN_WORDS * n];
    let mut prep = vec![0u32; n];
    // SAFETY: `input` holds 51c words, `pair_in` 64c, `firsts_in` 32c (the replay writes its
    // first 24c) and `prep` c, the sizes the replay reads and writes.
    unsafe {
        sys::umbh_launch_reenc_prep(
            input.as_ptr(),
            pair_in.as_mut_ptr(),
            firsts_in.as_mut_ptr(),
            prep.as_mut_ptr(),
            c,
        )
    };
    (pair_in, firsts_in, prep)
}

/// Replays a `umb_reenc_finish` launch for `c` capsules over the buffers of the launches
/// before it (`kernels/reenc.cuh`): `pair_in`/`pair_out` over `2c` items, `firsts_out` (the
/// `second = 0` launch's output, slot 0 read), `g_out` (`s·G`), `u_out` (`t·U`), `prep`.
/// Returns [`layout::PARTS_OUT_WORDS`] rows of `c` words, as [`finish_parts`] with the
/// status bits 4 (`s·G ≠ V + h·E`) and 8 (from `prep`).
#[allow(clippy::too_many_arguments)]
pub fn launch_reenc_finish(
    input: &[u32],
    pair_in: &[u32],
    pair_out: &[u32],
    firsts_out: &[u32],
    g_out: &[u32],
    u_out: &[u32],
    prep: &[u32],
    c: u32,
) -> Vec<u32> {
    let n = c as usize;
    assert_eq!(input.len(), layout::REENC_IN_WORDS * n, "input words");
    assert_eq!(pair_in.len(), layout::PAIR_IN_WORDS * 2 * n, "pair input");
    assert_eq!(
        pair_out.len(),
        layout::PAIR_OUT_WORDS * 2 * n,
        "pair output"
    );
    assert!(
        firsts_out.len() >= layout::FIRSTS_OUT_WORDS * n,
        "firsts output"
    );
    assert_eq!(g_out.len(), layout::FIXED_OUT_WORDS * n, "s·G output");
    assert_eq!(u_out.len(), layout::FIXED_OUT_WORDS * n, "t·U output");
    assert_eq!(prep.len(), n, "prep words");
    let mut out = vec![0u32; layout::PARTS_OUT_WORDS * n];
    // SAFETY: the slices hold at least 51c, 64c, 68c, 17c, 17c, 17c and c words and `out` 51c,
    // the sizes the replay reads and writes.
    unsafe {
        sys::umbh_launch_reenc_finish(
            input.as_ptr(),
            pair_in.as_ptr(),
            pair_out.as_ptr(),
            firsts_out.as_ptr(),
            g_out.as_ptr(),
            u_out.as_ptr(),
            prep.as_ptr(),
            out.as_mut_ptr(),
            c,
        )
    };
    out
}

/// `a · b + c mod n` by the kernels' scalar code on raw 32-byte big-endian inputs (`a`, `b`
/// any 256-bit values, `c` below n). For the tests of `crate::host`.
#[cfg(test)]
pub fn scalar_mul_add_bytes(a: &Bytes32, b: &Bytes32, c: &Bytes32) -> Bytes32 {
    let mut out = [0u8; 32];
    // SAFETY: three 32-byte inputs and one 32-byte output, as the C side reads and writes.
    unsafe { sys::umbh_scalar_mul_add(a.as_ptr(), b.as_ptr(), c.as_ptr(), out.as_mut_ptr()) };
    out
}
