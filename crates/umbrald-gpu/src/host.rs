//! The kernel sources compiled as host C++ (`kernels/host_harness.cpp`, built by `build.rs`).
//!
//! These functions run exactly the field, point and scalar code the GPU runs, with the PTX carry
//! instructions replaced by their portable emulation (`kernels/carry.cuh`). They exist for
//! conformance tests against k256 and for [`HostExecutor`], which replays whole kernel launches
//! on the CPU. They are slow (portable 32-bit limb arithmetic): never a production backend.
//!
//! Byte conventions follow k256: field elements and scalars are 32 bytes big-endian, affine
//! points are `x || y` (64 bytes), and the point at infinity is reported as `None`.

use std::time::Instant;

use cpu_time::ThreadTime;

use k256::Scalar;
use umbrald_core::backend::{CapsuleInput, CapsuleOutcome, CfragParts, CFRAG_PARTS_LEN};
use umbrald_core::curve::{Affine, CompressedPoint};

use crate::exec::{ExecError, KernelExecutor, PairProducts, Products, Timing};
use crate::layout::{self, LayoutError};
use crate::table::{FixedBase, FixedBaseTable, ENTRY_WORDS, ROW, WINDOWS};

mod ffi {
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
        pub fn umbh_launch_cfrag_parts(
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
    unsafe { ffi::umbh_block_size() }
}

macro_rules! unary {
    ($(#[$doc:meta])* $name:ident, $ffi:ident) => {
        $(#[$doc])*
        pub fn $name(a: &Bytes32) -> Bytes32 {
            let mut out = [0u8; 32];
            // SAFETY: `a` is 32 readable bytes and `out` 32 writable bytes, as the C side
            // expects; it keeps no pointer after returning.
            unsafe { ffi::$ffi(a.as_ptr(), out.as_mut_ptr()) };
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
            unsafe { ffi::$ffi(a.as_ptr(), b.as_ptr(), out.as_mut_ptr()) };
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
    unsafe { ffi::umbh_fe_mul_small(a.as_ptr(), u32::from(c), out.as_mut_ptr()) };
    out
}

/// `2P` with `P` given in projective form `(x z, y z, z)` (`z` non-zero); an identity input is
/// `(0 : y z : 0)`.
pub fn prj_dbl(p: &Point64, p_inf: bool, z: &Bytes32) -> Option<Point64> {
    let mut out = [0u8; 64];
    // SAFETY: 64 + 32 readable bytes in, 64 writable bytes out, as the C side expects.
    let inf = unsafe { ffi::umbh_prj_dbl(p.as_ptr(), p_inf.into(), z.as_ptr(), out.as_mut_ptr()) };
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
        ffi::umbh_prj_add(
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
        ffi::umbh_prj_add_affine(
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
    unsafe { ffi::umbh_digits(k.as_ptr(), out.as_mut_ptr()) };
    out
}

/// `k * P` by the variable-base kernel path (table of P, the kernel's GLV split of k, 4-bit
/// signed windows on both halves).
pub fn mul_var(p: &Point64, k: &Scalar) -> Option<Point64> {
    let k: Bytes32 = k.to_bytes().into();
    let mut out = [0u8; 64];
    // SAFETY: 64 + 32 readable bytes in, 64 writable bytes out.
    let inf = unsafe { ffi::umbh_mul_var(p.as_ptr(), k.as_ptr(), out.as_mut_ptr()) };
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
        ffi::umbh_glv_split(
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
    let inf = unsafe { ffi::umbh_mul_fixed(table.words().as_ptr(), k.as_ptr(), out.as_mut_ptr()) };
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
        ffi::umbh_launch_pairs(
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
    let ok = unsafe { ffi::umbh_decompress(x.as_ptr(), odd.into(), y.as_mut_ptr()) };
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
    unsafe { ffi::umbh_launch_decompress(input.as_ptr(), out.as_mut_ptr(), n) };
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
    unsafe { ffi::umbh_launch_fixed(table.words().as_ptr(), input.as_ptr(), out.as_mut_ptr(), n) };
    out
}

/// SHA-256 of `msg` by the kernels' implementation (`kernels/finish.cuh`).
pub fn sha256(msg: &[u8]) -> [u8; 32] {
    let len = u32::try_from(msg.len()).unwrap_or_else(|_| panic!("message over 4 GiB"));
    let mut out = [0u8; 32];
    // SAFETY: `msg` holds `len` readable bytes (none are read when it is empty) and `out` 32
    // writable bytes; the C side keeps no pointer after returning.
    unsafe { ffi::umbh_sha256(msg.as_ptr(), len, out.as_mut_ptr()) };
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
    unsafe { ffi::umbh_scalar_mul_add(a.as_ptr(), b.as_ptr(), c.as_ptr(), out.as_mut_ptr()) };
    scalar_from_reduced(&out)
}

/// `digest mod (n − 1) + 1` by the kernels' code: umbral-pre's hash-to-scalar of a SHA-256
/// digest (big-endian).
pub fn hash_to_scalar(digest: &Bytes32) -> Scalar {
    let mut out = [0u8; 32];
    // SAFETY: 32 readable bytes in, 32 writable bytes out.
    unsafe { ffi::umbh_hash_to_scalar(digest.as_ptr(), out.as_mut_ptr()) };
    scalar_from_reduced(&out)
}

/// A scalar from 32 big-endian bytes the kernel code has reduced below n.
fn scalar_from_reduced(bytes: &Bytes32) -> Scalar {
    use k256::elliptic_curve::PrimeField;
    Option::from(Scalar::from_repr((*bytes).into()))
        .unwrap_or_else(|| unreachable!("the kernel code reduces below n"))
}

/// Replays a `umb_cfrag_parts` launch over words in the device layout for `c` capsules:
/// `pair_in` and `pair_out` are a `umb_mul_pairs` launch's input and output over `2c` items
/// (`E_j`, `V_j`, both with the scalars `[rk_j, t_j]`), `fixed_out` a `umb_mul_fixed` output
/// with U's table for the `t_j`, `u1_in` the [`layout::PARTS_U1_WORDS`] rows of each `U1_j`.
/// Returns [`layout::PARTS_OUT_WORDS`] rows of `c` words.
pub fn launch_cfrag_parts(
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
        ffi::umbh_launch_cfrag_parts(
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
        ffi::umbh_launch_reenc_prep(
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
/// Returns [`layout::PARTS_OUT_WORDS`] rows of `c` words, as [`launch_cfrag_parts`] with the
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
        ffi::umbh_launch_reenc_finish(
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

/// Replays a whole re-encryption call for `c` capsules, the six launches of
/// `kernels/reenc.cuh` in order: `umb_reenc_prep`, `umb_mul_pairs` over `2c` items,
/// `umb_mul_pairs` with `second = 0` over `c` items (`h·E`), `umb_mul_fixed` with G's table on
/// rows 18..25 of `input` (`s·G`) and with U's on rows 34..41 (`t·U`), `umb_reenc_finish`.
/// `input` is [`layout::REENC_IN_WORDS`] rows of `c` words; returns
/// [`layout::PARTS_OUT_WORDS`] rows.
pub fn launch_reenc(
    input: &[u32],
    c: u32,
    g_table: &FixedBaseTable,
    u_table: &FixedBaseTable,
) -> Vec<u32> {
    let n = c as usize;
    assert_eq!(input.len(), layout::REENC_IN_WORDS * n, "input words");
    let items = c.checked_mul(2).expect("at most 2^31 - 1 capsules");
    let (pair_in, firsts_in, prep) = launch_reenc_prep(input, c);
    let pair_in = zeroize::Zeroizing::new(pair_in); // holds the secrets rk and t
    let pair_out = launch_pairs(&pair_in, items, false, true);
    let firsts_out = launch_pairs(&firsts_in, c, false, false);
    let scalars = |row: usize| &input[row * n..(row + layout::FIXED_IN_WORDS) * n];
    let g_out = launch_fixed(g_table, scalars(18), c);
    let u_out = launch_fixed(u_table, scalars(34), c);
    launch_reenc_finish(
        input,
        &pair_in,
        &pair_out,
        &firsts_out,
        &g_out,
        &u_out,
        &prep,
        c,
    )
}

/// A [`KernelExecutor`] that replays the kernels on the calling thread with the host-compiled
/// harness: same code, same layouts, same per-block batch inversion. For tests and debugging;
/// about a millisecond per scalar multiplication.
#[derive(Debug)]
pub struct HostExecutor {
    table_u: FixedBaseTable,
    table_g: FixedBaseTable,
}

impl HostExecutor {
    /// Builds the fixed-base tables (a few milliseconds).
    pub fn new() -> Self {
        Self {
            table_u: FixedBaseTable::new(FixedBase::U),
            table_g: FixedBaseTable::new(FixedBase::G),
        }
    }

    fn table(&self, base: FixedBase) -> &FixedBaseTable {
        match base {
            FixedBase::U => &self.table_u,
            FixedBase::G => &self.table_g,
        }
    }
}
impl Default for HostExecutor {
    fn default() -> Self {
        Self::new()
    }
}

fn item_count(n: usize) -> Result<u32, ExecError> {
    u32::try_from(n).map_err(|_| ExecError::Unsupported("more than 2^32 - 1 items"))
}

/// One replayed launch: `pack` fills a zeroed input of `in_words` words, `launch` runs the
/// kernel code over it, `unpack` reads its output; the time in the kernel code and the time
/// packing and unpacking (the layout) are measured apart, as the device executor reports them.
fn replay<T>(
    in_words: usize,
    pack: impl FnOnce(&mut [u32]) -> Result<(), LayoutError>,
    launch: impl FnOnce(&[u32]) -> Vec<u32>,
    unpack: impl FnOnce(&[u32]) -> Result<T, LayoutError>,
) -> Result<(T, Timing), ExecError> {
    let mut input = zeroize::Zeroizing::new(vec![0u32; in_words]);
    let packing = ThreadTime::now();
    pack(&mut input)?;
    let packed = packing.elapsed();
    let start = Instant::now();
    let words = launch(&input);
    let kernel = start.elapsed();
    let reading = ThreadTime::now();
    let out = unpack(&words)?;
    let timing = Timing {
        kernel,
        layout: packed + reading.elapsed(),
        ..Timing::default()
    };
    Ok((out, timing))
}

impl KernelExecutor for HostExecutor {
    fn mul_pairs(
        &self,
        bases: &[Affine],
        scalars: &[[Scalar; 2]],
    ) -> Result<(PairProducts, Timing), ExecError> {
        let n = item_count(bases.len())?;
        replay(
            layout::PAIR_IN_WORDS * bases.len(),
            |dst| layout::pack_pairs(bases, scalars, dst),
            |input| launch_pairs(input, n, false, true),
            |words| {
                let mut out = Vec::new();
                layout::unpack_pairs(words, scalars, &mut out)?;
                Ok(out)
            },
        )
    }

    /// As the device executor does it: only the bases and first scalars packed (the second
    /// scalars' rows stay zero and are not read), only the first output slot read back.
    fn mul_firsts(
        &self,
        bases: &[Affine],
        scalars: &[Scalar],
    ) -> Result<(PairProducts, Timing), ExecError> {
        let n = item_count(bases.len())?;
        let len = bases.len();
        replay(
            layout::PAIR_IN_WORDS * len,
            |dst| layout::pack_firsts(bases, scalars, &mut dst[..layout::FIRSTS_IN_WORDS * len]),
            |input| launch_pairs(input, n, false, false),
            |words| {
                let mut out = vec![[None, None]; len];
                layout::unpack_firsts_into(
                    &words[..layout::FIRSTS_OUT_WORDS * len],
                    scalars,
                    &mut out,
                )?;
                Ok(out)
            },
        )
    }

    fn mul_fixed(
        &self,
        base: FixedBase,
        scalars: &[Scalar],
    ) -> Result<(Products, Timing), ExecError> {
        let n = item_count(scalars.len())?;
        replay(
            layout::FIXED_IN_WORDS * scalars.len(),
            |dst| layout::pack_fixed(scalars, dst),
            |input| launch_fixed(self.table(base), input, n),
            |words| {
                let mut out = Vec::new();
                layout::unpack_fixed(words, scalars, &mut out)?;
                Ok(out)
            },
        )
    }

    /// As the device executor does it: one input (the pairs', the nonces' and the
    /// commitments' words), the three kernels in a row on it, only the parts read back.
    fn cfrag_parts(
        &self,
        bases: &[Affine],
        scalars: &[[Scalar; 2]],
        commitments: &[[u8; 33]],
    ) -> Result<(Vec<CfragParts>, Timing), ExecError> {
        let c = commitments.len();
        let capsules = item_count(c)?;
        let items = item_count(2 * c)?;
        if bases.len() != 2 * c || scalars.len() != 2 * c {
            return Err(ExecError::Unsupported(
                "not two bases and scalars per capsule",
            ));
        }
        replay(
            layout::PARTS_IN_WORDS * c,
            |dst| layout::pack_parts(bases, scalars, commitments, dst),
            |input| {
                let (pair_in, rest) = input.split_at(2 * layout::PAIR_IN_WORDS * c);
                let (nonces, u1s) = rest.split_at(layout::FIXED_IN_WORDS * c);
                let pair_out = launch_pairs(pair_in, items, false, true);
                let fixed_out = launch_fixed(self.table(FixedBase::U), nonces, capsules);
                launch_cfrag_parts(pair_in, &pair_out, &fixed_out, u1s, capsules)
            },
            |words| {
                let mut out = vec![[0u8; CFRAG_PARTS_LEN]; c];
                layout::unpack_parts_into(words, &mut out)?;
                Ok(out)
            },
        )
    }

    /// As the device executor does it: one input, the six launches in a row, only the parts
    /// and statuses read back.
    fn reencrypt_capsules(
        &self,
        capsules: &[CapsuleInput],
        scalars: &[[Scalar; 2]],
    ) -> Result<(Vec<CapsuleOutcome>, Timing), ExecError> {
        let c = capsules.len();
        let n = item_count(2 * c)?;
        if scalars.len() != c {
            return Err(ExecError::Unsupported("not one [rk, t] per capsule"));
        }
        replay(
            layout::REENC_IN_WORDS * c,
            |dst| layout::pack_reenc(capsules, scalars, dst),
            |input| launch_reenc(input, n / 2, &self.table_g, &self.table_u),
            |words| {
                let mut out = vec![CapsuleOutcome::Rejected; c];
                layout::unpack_reenc_into(words, &mut out)?;
                Ok(out)
            },
        )
    }

    fn decompress(&self, points: &[CompressedPoint]) -> Result<(Products, Timing), ExecError> {
        let n = item_count(points.len())?;
        replay(
            layout::DECOMPRESS_IN_WORDS * points.len(),
            |dst| layout::pack_decompress(points, dst),
            |input| launch_decompress(input, n),
            |words| {
                let mut out = Vec::new();
                layout::unpack_decompress(words, points, &mut out)?;
                Ok(out)
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use k256::elliptic_curve::Field;
    use k256::ProjectivePoint;
    use rand::SeedableRng;
    use umbrald_core::backend::{CpuBackend, EcBackend};

    use super::*;

    #[test]
    fn shared_memory_table_layout_gives_the_same_products() {
        // The UMB_TABLE_SHARED build reads the affine tables from one block-wide array with a
        // column per thread; its replay must agree word for word with the in-place tables, and
        // both with the CPU. 200 items: a full block and a partial one, zero scalars included.
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let bases: Vec<Affine> = (0..200)
            .map(|_| {
                let p = ProjectivePoint::GENERATOR * Scalar::random(&mut rng);
                Affine::from_k256(&p).expect("finite")
            })
            .collect();
        let scalars: Vec<[Scalar; 2]> = (0..200)
            .map(|i| match i % 9 {
                0 => [Scalar::ZERO, -Scalar::ONE],
                _ => [Scalar::random(&mut rng), Scalar::random(&mut rng)],
            })
            .collect();
        let mut input = vec![0u32; layout::PAIR_IN_WORDS * bases.len()];
        layout::pack_pairs(&bases, &scalars, &mut input).expect("pack");
        let local = launch_pairs(&input, 200, false, true);
        let shared = launch_pairs(&input, 200, true, true);
        assert_eq!(local, shared);
        let mut got = Vec::new();
        layout::unpack_pairs(&shared, &scalars, &mut got).expect("unpack");
        let want = CpuBackend::new().mul_pairs(&bases, &scalars).expect("cpu");
        assert_eq!(got, want);
    }

    #[test]
    fn a_launch_without_second_products_matches_zero_second_scalars() {
        // `second` false (the capsule check's h·E) skips the second ladder; for zero second
        // scalars the words must equal a full launch's, with either table placement, and the
        // products the CPU's. 300 items: two full blocks and a partial one, with the scalars
        // 0, 1 and n - 1 among random ones.
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let bases: Vec<Affine> = (0..300)
            .map(|_| {
                let p = ProjectivePoint::GENERATOR * Scalar::random(&mut rng);
                Affine::from_k256(&p).expect("finite")
            })
            .collect();
        let firsts: Vec<Scalar> = (0..300)
            .map(|i| match i % 50 {
                0 => Scalar::ZERO,
                1 => Scalar::ONE,
                2 => -Scalar::ONE,
                _ => Scalar::random(&mut rng),
            })
            .collect();
        let scalars = crate::exec::with_zero_seconds(&firsts);
        let mut input = vec![0u32; layout::PAIR_IN_WORDS * bases.len()];
        layout::pack_pairs(&bases, &scalars, &mut input).expect("pack");
        let full = launch_pairs(&input, 300, false, true);
        for shared in [false, true] {
            assert_eq!(
                launch_pairs(&input, 300, shared, false),
                full,
                "shared: {shared}"
            );
        }
        let (got, _) = HostExecutor::new()
            .mul_firsts(&bases, &firsts)
            .expect("host executor");
        let want = CpuBackend::new().mul_pairs(&bases, &scalars).expect("cpu");
        assert_eq!(got, want);
        assert!(got.iter().all(|[_, second]| second.is_none()));
    }

    /// Big-endian `x` as 32 bytes, for building scalars and digests from hex.
    fn be32(hex_str: &str) -> Bytes32 {
        let bytes = hex::decode(hex_str).expect("hex");
        bytes.try_into().expect("32 bytes")
    }

    const N_HEX: &str = "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141";
    const N_MINUS_1_HEX: &str = "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364140";
    const N_C_HEX: &str = "000000000000000000000000000000014551231950b75fc4402da1732fc9bebf";
    const N_MINUS_2_HEX: &str = "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd036413f";

    #[test]
    fn sha256_matches_sha2_on_every_length() {
        use rand::RngCore;
        use sha2::{Digest, Sha256};
        // Every length 0..=400 (one, two and more blocks, every padding case: 55, 56, 63, 64,
        // 119, 120, ...) and the challenge's 319 bytes, random contents.
        let mut rng = rand::rngs::StdRng::seed_from_u64(21);
        let mut msg = vec![0u8; 401];
        for len in (0..=400).chain([0, 55, 56, 63, 64, 119, 319, 319]) {
            rng.fill_bytes(&mut msg[..len]);
            let want: [u8; 32] = Sha256::digest(&msg[..len]).into();
            assert_eq!(sha256(&msg[..len]), want, "length {len}");
        }
        // The FIPS 180-4 example "abc".
        assert_eq!(
            hex::encode(sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    /// `a · b + c mod n` through the harness on raw 32-byte inputs (`a`, `b` any 256-bit
    /// values, `c` below n).
    fn mul_add_bytes(a: &Bytes32, b: &Bytes32, c: &Bytes32) -> Bytes32 {
        let mut out = [0u8; 32];
        // SAFETY: three 32-byte inputs and one 32-byte output.
        unsafe { ffi::umbh_scalar_mul_add(a.as_ptr(), b.as_ptr(), c.as_ptr(), out.as_mut_ptr()) };
        out
    }

    #[test]
    fn scalar_mul_add_matches_k256() {
        use k256::elliptic_curve::ops::Reduce;
        use k256::U256;
        let reduce = |b: &Bytes32| <Scalar as Reduce<U256>>::reduce_bytes(&(*b).into());
        let n_minus_1 = -Scalar::ONE;
        let two_128 = Scalar::from(1u64 << 32).pow_vartime([4u64]);
        let two_255 = reduce(&be32(&format!("8{}", "0".repeat(63))));
        // 2^256 - n = N_C (129 bits) and its neighbours: the folds' largest partial sums.
        let n_c = reduce(&be32(N_C_HEX));
        let edges = [
            Scalar::ZERO,
            Scalar::ONE,
            Scalar::from(2u64),
            n_minus_1,
            n_minus_1 - Scalar::ONE,
            two_128,
            two_128 - Scalar::ONE,
            two_255,
            two_255 - Scalar::ONE,
            n_c,
            n_c - Scalar::ONE,
            -n_c,
            reduce(&[0xff; 32]), // 2^256 - 1 mod n = N_C - 1
        ];
        for a in &edges {
            for b in &edges {
                for c in [Scalar::ZERO, Scalar::ONE, n_minus_1, *a] {
                    assert_eq!(scalar_mul_add(a, b, &c), a * b + c, "{a:?} {b:?} {c:?}");
                }
            }
        }
        // (n-1)(n-1) + (n-1): the largest product and the largest addend.
        assert_eq!(
            scalar_mul_add(&n_minus_1, &n_minus_1, &n_minus_1),
            n_minus_1 * n_minus_1 + n_minus_1
        );
        let mut rng = rand::rngs::StdRng::seed_from_u64(22);
        for _ in 0..5_000 {
            let (a, b, c) = (
                Scalar::random(&mut rng),
                Scalar::random(&mut rng),
                Scalar::random(&mut rng),
            );
            assert_eq!(scalar_mul_add(&a, &b, &c), a * b + c);
        }
        // The reduction takes any 512-bit product: factors at and above n, up to 2^256 - 1.
        let raw = [
            [0xffu8; 32],
            be32(N_HEX),
            be32(N_MINUS_1_HEX),
            be32("fffffffffffffffffffffffffffffffeffffffffffffffffffffffffffffffff"),
            be32("ffffffffffffffffffffffffffffffffbaaedce6af48a03bbfd25e8cd0364141"),
        ];
        for a in &raw {
            for b in &raw {
                for c in [Scalar::ZERO, n_minus_1] {
                    let want = reduce(a) * reduce(b) + c;
                    let got = mul_add_bytes(a, b, &c.to_bytes().into());
                    assert_eq!(got, <Bytes32>::from(want.to_bytes()));
                }
            }
        }
    }

    #[test]
    fn hash_to_scalar_matches_core_reduction() {
        use k256::elliptic_curve::ops::Reduce;
        use k256::{NonZeroScalar, U256};
        use rand::RngCore;
        let want = |d: &Bytes32| *<NonZeroScalar as Reduce<U256>>::reduce_bytes(&(*d).into());
        let n_plus_1 = "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364142";
        let mut digests = vec![
            [0u8; 32],
            be32(N_MINUS_2_HEX),
            be32(N_MINUS_1_HEX),
            be32(N_HEX),
            be32(n_plus_1),
            [0xff; 32],
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(23);
        for _ in 0..2_000 {
            let mut d = [0u8; 32];
            rng.fill_bytes(&mut d);
            digests.push(d);
        }
        for d in &digests {
            assert_eq!(hash_to_scalar(d), want(d), "{}", hex::encode(d));
        }
        // The edges land where x mod (n - 1) + 1 says.
        assert_eq!(hash_to_scalar(&[0u8; 32]), Scalar::ONE);
        assert_eq!(hash_to_scalar(&be32(N_MINUS_2_HEX)), -Scalar::ONE);
        assert_eq!(hash_to_scalar(&be32(N_MINUS_1_HEX)), Scalar::ONE);
        assert_eq!(hash_to_scalar(&be32(N_HEX)), Scalar::from(2u64));
    }

    /// The inputs of a `umb_cfrag_parts` launch for random capsules, and the parts the CPU
    /// computes for them (k256 and `umbrald_core::hash`): 197 bytes per capsule.
    #[derive(Clone)]
    struct CfragCase {
        pair_in: Vec<u32>,
        pair_out: Vec<u32>,
        fixed_out: Vec<u32>,
        u1_in: Vec<u32>,
        want: Vec<[u8; 197]>,
    }

    fn cfrag_case(c: usize, seed: u64) -> CfragCase {
        use umbrald_core::curve::params::U_COMPRESSED;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let random_point =
            |rng: &mut rand::rngs::StdRng| ProjectivePoint::GENERATOR * Scalar::random(rng);
        let compress = |p: &ProjectivePoint| Affine::from_k256(p).expect("finite").to_compressed();
        let non_zero = |rng: &mut rand::rngs::StdRng| loop {
            let s = Scalar::random(&mut *rng);
            if !bool::from(s.is_zero()) {
                break s;
            }
        };
        let u = FixedBase::U.point().to_k256();
        let mut bases = Vec::with_capacity(2 * c);
        let mut scalars = Vec::with_capacity(2 * c);
        let mut ts = Vec::with_capacity(c);
        let mut u1_in = vec![0u32; layout::PARTS_U1_WORDS * c];
        let mut want = Vec::with_capacity(c);
        for j in 0..c {
            let (e, v) = (random_point(&mut rng), random_point(&mut rng));
            let (rk, t) = (non_zero(&mut rng), non_zero(&mut rng));
            let u1 = compress(&random_point(&mut rng));
            for (b, byte) in u1.iter().enumerate() {
                u1_in[(b / 4) * c + j] |= u32::from(*byte) << (8 * (b % 4));
            }
            bases.push(Affine::from_k256(&e).expect("finite"));
            bases.push(Affine::from_k256(&v).expect("finite"));
            scalars.push([rk, t]);
            scalars.push([rk, t]);
            ts.push(t);
            let (ce, cv) = (compress(&e), compress(&v));
            let (e1, e2) = (compress(&(e * rk)), compress(&(e * t)));
            let (v1, v2) = (compress(&(v * rk)), compress(&(v * t)));
            let u2 = compress(&(u * t));
            let h = umbrald_core::hash::cfrag_verification([
                &ce,
                &e1,
                &e2,
                &cv,
                &v1,
                &v2,
                &U_COMPRESSED,
                &u1,
                &u2,
            ]);
            let z: Bytes32 = (rk * h + t).to_bytes().into();
            let mut parts = [0u8; 197];
            for (k, chunk) in [e1, v1, e2, v2, u2].iter().enumerate() {
                parts[33 * k..33 * (k + 1)].copy_from_slice(chunk);
            }
            parts[165..].copy_from_slice(&z);
            want.push(parts);
        }
        let mut pair_in = vec![0u32; layout::PAIR_IN_WORDS * 2 * c];
        layout::pack_pairs(&bases, &scalars, &mut pair_in).expect("pack pairs");
        let pair_out = launch_pairs(&pair_in, (2 * c) as u32, false, true);
        let mut fixed_in = vec![0u32; layout::FIXED_IN_WORDS * c];
        layout::pack_fixed(&ts, &mut fixed_in).expect("pack fixed");
        let fixed_out = launch_fixed(&FixedBaseTable::new(FixedBase::U), &fixed_in, c as u32);
        CfragCase {
            pair_in,
            pair_out,
            fixed_out,
            u1_in,
            want,
        }
    }

    impl CfragCase {
        fn launch(&self) -> Vec<u32> {
            let c = self.want.len();
            launch_cfrag_parts(
                &self.pair_in,
                &self.pair_out,
                &self.fixed_out,
                &self.u1_in,
                c as u32,
            )
        }
    }

    /// Capsule `j`'s 197 bytes and status from a `umb_cfrag_parts` output over `c` capsules.
    fn cfrag_parts_of(out: &[u32], c: usize, j: usize) -> ([u8; 197], u32) {
        let mut bytes = [0u8; 200];
        for w in 0..50 {
            bytes[4 * w..4 * w + 4].copy_from_slice(&out[w * c + j].to_le_bytes());
        }
        assert_eq!(bytes[197..], [0, 0, 0], "padding bytes of capsule {j}");
        let mut parts = [0u8; 197];
        parts.copy_from_slice(&bytes[..197]);
        (parts, out[50 * c + j])
    }

    #[test]
    fn cfrag_parts_launch_matches_cpu() {
        // 130 capsules (260 pair items: two full blocks of the pair kernel and a partial one;
        // 130 is no multiple of the block) and a single one.
        for (c, seed) in [(130usize, 31u64), (1, 32)] {
            let case = cfrag_case(c, seed);
            let out = case.launch();
            assert_eq!(out.len(), layout::PARTS_OUT_WORDS * c);
            for (j, want) in case.want.iter().enumerate() {
                let (parts, status) = cfrag_parts_of(&out, c, j);
                assert_eq!(status, 0, "capsule {j} of {c}");
                assert_eq!(hex::encode(parts), hex::encode(want), "capsule {j} of {c}");
            }
        }
        assert!(launch_cfrag_parts(&[], &[], &[], &[], 0).is_empty());
    }

    #[test]
    fn cfrag_parts_status_flags_bad_products() {
        let c = 3;
        let base = cfrag_case(c, 33);
        let good = base.launch();
        for j in 0..c {
            assert_eq!(cfrag_parts_of(&good, c, j), (base.want[j], 0));
        }
        // Changes one capsule's product, expects that status for it and the others untouched.
        let check = |name: &str, corrupt: &dyn Fn(&mut CfragCase), bad: usize, status: u32| {
            let mut case = base.clone();
            corrupt(&mut case);
            let out = case.launch();
            for j in 0..c {
                let (parts, got) = cfrag_parts_of(&out, c, j);
                if j == bad {
                    assert_eq!(got, status, "{name}: capsule {j}");
                } else {
                    assert_eq!(got, 0, "{name}: capsule {j}");
                    assert_eq!(parts, cfrag_parts_of(&good, c, j).0, "{name}: capsule {j}");
                }
            }
        };
        let n2 = 2 * c;
        // E2 of capsule 1 (slot 1 of item 2): y limb 0 changed, off the curve.
        check(
            "E2 off the curve",
            &|case| case.pair_out[(17 + 8) * n2 + 2] ^= 1,
            1,
            2,
        );
        // V1 of capsule 0 (slot 0 of item 1): identity flag set, coordinates still on the curve.
        check("V1 identity", &|case| case.pair_out[16 * n2 + 1] = 1, 0, 1);
        // U2 of capsule 2: identity flag set.
        check("U2 identity", &|case| case.fixed_out[16 * c + 2] = 1, 2, 1);
        // U2 of capsule 2 as the kernels store the identity: flag 1, x = y = 0 (off the curve).
        check(
            "U2 stored identity",
            &|case| {
                for w in 0..17 {
                    case.fixed_out[w * c + 2] = u32::from(w == 16);
                }
            },
            2,
            3,
        );
        // x of V2 of capsule 1 (slot 1 of item 3) changed: off the curve.
        check(
            "V2 off the curve",
            &|case| case.pair_out[17 * n2 + 3] ^= 0x8000_0000,
            1,
            2,
        );
    }

    /// One capsule of a re-encryption call: the compressed `E`, `V` as given (not necessarily
    /// curve points), the capsule's scalar `s`, the secrets `[rk, t]` and `U1`.
    #[derive(Clone)]
    struct ReencCapsule {
        e: [u8; 33],
        v: [u8; 33],
        s: Scalar,
        scalars: [Scalar; 2],
        u1: [u8; 33],
    }

    impl ReencCapsule {
        /// A valid capsule: `E = e·G`, `V = v·G`, `s = v + h·e` with `h = H(E, V)`, so that
        /// `s·G = V + h·E`; random non-zero `rk`, `t` and `U1 = u·G`.
        fn random(rng: &mut rand::rngs::StdRng) -> Self {
            let non_zero = |rng: &mut rand::rngs::StdRng| loop {
                let s = Scalar::random(&mut *rng);
                if !bool::from(s.is_zero()) {
                    break s;
                }
            };
            let compress = |k: &Scalar| {
                Affine::from_k256(&(ProjectivePoint::GENERATOR * k))
                    .expect("finite")
                    .to_compressed()
            };
            let (e, v) = (non_zero(rng), non_zero(rng));
            let (e_bytes, v_bytes) = (compress(&e), compress(&v));
            let h = umbrald_core::hash::capsule_points(&e_bytes, &v_bytes);
            ReencCapsule {
                e: e_bytes,
                v: v_bytes,
                s: v + h * e,
                scalars: [non_zero(rng), non_zero(rng)],
                u1: compress(&non_zero(rng)),
            }
        }

        /// The parts the CPU computes for this capsule's secrets on the points `e`, `v`.
        fn cpu_parts(&self, e: &Affine, v: &Affine) -> [u8; 197] {
            umbrald_core::cfrag_parts_on_cpu(e, v, &self.scalars, &self.u1).expect("cpu parts")
        }

        fn points(&self) -> (Affine, Affine) {
            (
                Affine::decompress_vartime(&self.e).expect("E"),
                Affine::decompress_vartime(&self.v).expect("V"),
            )
        }
    }

    /// Words 0..8 of a column-layout array's item `j` from `row` on.
    fn put_col(dst: &mut [u32], c: usize, row: usize, j: usize, words: &[u32]) {
        for (w, word) in words.iter().enumerate() {
            dst[(row + w) * c + j] = *word;
        }
    }

    /// The input of a re-encryption call (`kernels/reenc.cuh`) for `capsules`.
    fn pack_reenc(capsules: &[ReencCapsule]) -> Vec<u32> {
        let c = capsules.len();
        let mut input = vec![0u32; layout::REENC_IN_WORDS * c];
        let scalar = |k: &Scalar| layout::limbs_from_be(&k.to_bytes().into());
        for (j, cap) in capsules.iter().enumerate() {
            for (row, point) in [(0, &cap.e), (9, &cap.v)] {
                let x: Bytes32 = point[1..].try_into().expect("32 bytes");
                put_col(&mut input, c, row, j, &layout::limbs_from_be(&x));
                put_col(&mut input, c, row + 8, j, &[u32::from(point[0] & 1)]);
            }
            put_col(&mut input, c, 18, j, &scalar(&cap.s));
            put_col(&mut input, c, 26, j, &scalar(&cap.scalars[0]));
            put_col(&mut input, c, 34, j, &scalar(&cap.scalars[1]));
            for (b, byte) in cap.u1.iter().enumerate() {
                input[(42 + b / 4) * c + j] |= u32::from(*byte) << (8 * (b % 4));
            }
        }
        input
    }

    #[test]
    fn reenc_launch_matches_cpu() {
        // 130 capsules (260 pair items: two full blocks and a partial one; 130 itself is no
        // multiple of the block) and a single one, every capsule valid: status 0 and the CPU's
        // parts, from nothing but the compressed capsule points and the scalars.
        let (g_table, u_table) = (
            FixedBaseTable::new(FixedBase::G),
            FixedBaseTable::new(FixedBase::U),
        );
        for (c, seed) in [(130usize, 41u64), (1, 42)] {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let capsules: Vec<ReencCapsule> =
                (0..c).map(|_| ReencCapsule::random(&mut rng)).collect();
            let input = pack_reenc(&capsules);

            // The prep launch alone: the pair kernel's input as layout::pack_pairs writes it,
            // E and h = H(E, V) for the first kernel, status 0.
            let (pair_in, firsts_in, prep) = launch_reenc_prep(&input, c as u32);
            let mut bases = Vec::new();
            let mut scalars = Vec::new();
            for cap in &capsules {
                let (e, v) = cap.points();
                bases.extend([e, v]);
                scalars.extend([cap.scalars, cap.scalars]);
            }
            let mut want_pair_in = vec![0u32; layout::PAIR_IN_WORDS * 2 * c];
            layout::pack_pairs(&bases, &scalars, &mut want_pair_in).expect("pack pairs");
            assert_eq!(pair_in, want_pair_in, "pair input of {c}");
            let hs: Vec<Scalar> = capsules
                .iter()
                .map(|cap| umbrald_core::hash::capsule_points(&cap.e, &cap.v))
                .collect();
            let es: Vec<Affine> = bases.iter().step_by(2).copied().collect();
            let mut want_firsts_in = vec![0u32; layout::PAIR_IN_WORDS * c];
            layout::pack_firsts(&es, &hs, &mut want_firsts_in[..layout::FIRSTS_IN_WORDS * c])
                .expect("pack firsts");
            assert_eq!(firsts_in, want_firsts_in, "firsts input of {c}");
            assert!(prep.iter().all(|&p| p == 0));

            let out = launch_reenc(&input, c as u32, &g_table, &u_table);
            assert_eq!(out.len(), layout::PARTS_OUT_WORDS * c);
            for (j, cap) in capsules.iter().enumerate() {
                let (e, v) = cap.points();
                let (parts, status) = cfrag_parts_of(&out, c, j);
                assert_eq!(status, 0, "capsule {j} of {c}");
                assert_eq!(
                    hex::encode(parts),
                    hex::encode(cap.cpu_parts(&e, &v)),
                    "capsule {j} of {c}"
                );
            }
        }
        assert!(launch_reenc(&[], 0, &g_table, &u_table).is_empty());
    }

    #[test]
    fn reenc_status_flags_bad_capsules() {
        // One launch with valid capsules around bad ones: each bad capsule gets exactly its
        // status, every other one status 0 and the CPU's bytes.
        let c = 7;
        let mut rng = rand::rngs::StdRng::seed_from_u64(43);
        let mut capsules: Vec<ReencCapsule> =
            (0..c).map(|_| ReencCapsule::random(&mut rng)).collect();
        let valid = capsules.clone();
        // x = 5: 5^3 + 7 = 132 is not a square mod p; x = p + 1: not below p.
        let mut x5 = [0u8; 33];
        x5[0] = 0x02;
        x5[32] = 5;
        let mut x_p1 = [0xffu8; 33];
        x_p1[0] = 0x03;
        x_p1[25..].copy_from_slice(&[0xff, 0xff, 0xff, 0xfe, 0xff, 0xff, 0xfc, 0x30]);
        for bad in [x5, x_p1] {
            assert!(Affine::decompress_vartime(&bad).is_err());
            let mut odd = bad;
            odd[0] ^= 1;
            assert!(Affine::decompress_vartime(&odd).is_err());
        }
        capsules[1].s += Scalar::ONE; // s·G = V + h·E + G
        capsules[2].e = x5;
        let mut v_odd = x5;
        v_odd[0] = 0x03;
        capsules[3].v = v_odd;
        capsules[5].e = x_p1;
        let out = launch_reenc(
            &pack_reenc(&capsules),
            c as u32,
            &FixedBaseTable::new(FixedBase::G),
            &FixedBaseTable::new(FixedBase::U),
        );
        // A point that does not decompress is replaced by G for the ladders and the check; h
        // still hashes the bytes as given. The parts are then those of G in its place, and the
        // check fails too (V + h·G = s·G only if E = G): status 8 | 4.
        let g = Affine::from_k256(&ProjectivePoint::GENERATOR).expect("finite");
        for (j, cap) in valid.iter().enumerate() {
            let (e, v) = cap.points();
            let (want_status, (e, v)) = match j {
                1 => (4, (e, v)),
                2 | 5 => (12, (g, v)),
                3 => (12, (e, g)),
                _ => (0, (e, v)),
            };
            let (parts, status) = cfrag_parts_of(&out, c, j);
            assert_eq!(status, want_status, "capsule {j}");
            assert_eq!(
                hex::encode(parts),
                hex::encode(cap.cpu_parts(&e, &v)),
                "capsule {j}"
            );
        }
    }
}
