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
}
