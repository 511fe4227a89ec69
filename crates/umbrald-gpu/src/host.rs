//! The kernel sources compiled as host C++ (`kernels/host_harness.cpp`, built by `build.rs`
//! with the `host-harness` feature, which only tests, examples and benches enable).
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
use umbrald_core::backend::{CapsuleInput, CapsuleOutcome};
use umbrald_core::curve::{Affine, CompressedPoint};

use crate::exec::{ExecError, KernelExecutor, PairProducts, Products, Timing};
use crate::layout::{self, LayoutError};
use crate::table::{FixedBase, FixedBaseTable};

pub use crate::ffi::host::{
    block_size, decompress, digits, fe_add, fe_inv, fe_mul, fe_mul_small, fe_neg, fe_reduce,
    fe_sqr, fe_sub, finish_parts, glv_split, hash_to_scalar, launch_decompress, launch_fixed,
    launch_pairs, launch_reenc_finish, launch_reenc_prep, mul_fixed, mul_var, prj_add,
    prj_add_affine, prj_dbl, scalar_mul_add, sha256, Bytes32, Point64,
};

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
    fn harness_block_size_matches_the_kernels() {
        assert_eq!(block_size(), crate::source::BLOCK_THREADS);
    }

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
        crate::ffi::host::scalar_mul_add_bytes(a, b, c)
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

    /// The inputs of the parts step for random capsules, and the parts the CPU
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
            finish_parts(
                &self.pair_in,
                &self.pair_out,
                &self.fixed_out,
                &self.u1_in,
                c as u32,
            )
        }
    }

    /// Capsule `j`'s 197 bytes and status from a parts output over `c` capsules.
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
    fn finish_parts_match_cpu() {
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
        assert!(finish_parts(&[], &[], &[], &[], 0).is_empty());
    }

    #[test]
    fn finish_parts_status_flags_bad_products() {
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
