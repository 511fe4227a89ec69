//! The GPU backend's host work around every device call: packing a batch into the kernels'
//! limb-major layout and reading the results back (with the on-curve check of every output
//! point). Single-threaded sizes (below the layout's parallel threshold), per item.

// criterion's macros define undocumented items.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use k256::elliptic_curve::Field;
use k256::{ProjectivePoint, Scalar};
use umbrald_core::backend::{CapsuleInput, CapsuleOutcome};
use umbrald_core::curve::{Affine, CompressedPoint};
use umbrald_gpu::layout::{
    self, DECOMPRESS_IN_WORDS, DECOMPRESS_OUT_WORDS, FIRSTS_IN_WORDS, FIRSTS_OUT_WORDS,
    FIXED_IN_WORDS, FIXED_OUT_WORDS, PAIR_IN_WORDS, PAIR_OUT_WORDS, PARTS_OUT_WORDS,
    REENC_IN_WORDS,
};

/// Items per call: one GPU host thread's part of a batch, packed by one thread.
const N: usize = 4096;

/// `count` curve points, cycling through 64 random ones (the layout code does not care).
fn points(count: usize) -> Vec<Affine> {
    let mut rng = rand::thread_rng();
    let distinct: Vec<Affine> = (0..64)
        .map(|_| {
            Affine::from_k256(&(ProjectivePoint::GENERATOR * Scalar::random(&mut rng)))
                .expect("finite")
        })
        .collect();
    (0..count).map(|i| distinct[i % distinct.len()]).collect()
}

/// The compressed forms of `points`, and the decompression kernel's answer for them (y, flag 1).
fn decompression(points: &[Affine]) -> (Vec<CompressedPoint>, Vec<u32>) {
    let n = points.len();
    let compressed = points
        .iter()
        .map(|p| CompressedPoint::parse(&p.to_compressed()).expect("valid"))
        .collect();
    let mut words = vec![0u32; DECOMPRESS_OUT_WORDS * n];
    for (i, p) in points.iter().enumerate() {
        let (_, y) = p.to_xy_limbs();
        for w in 0..8 {
            words[w * n + i] = y[w];
        }
        words[8 * n + i] = 1;
    }
    (compressed, words)
}

/// A kernel output of `slots` points per item, as the device writes it (flag 0: a point).
fn device_output(points: &[Affine], slots: usize) -> Vec<u32> {
    let n = points.len() / slots;
    let mut words = vec![0u32; 17 * slots * n];
    for i in 0..n {
        for slot in 0..slots {
            let (x, y) = points[i * slots + slot].to_xy_limbs();
            for w in 0..8 {
                words[(17 * slot + w) * n + i] = x[w];
                words[(17 * slot + 8 + w) * n + i] = y[w];
            }
        }
    }
    words
}

fn layout_bench(c: &mut Criterion) {
    let mut rng = rand::thread_rng();
    let bases = points(N);
    let scalars: Vec<[Scalar; 2]> = (0..N)
        .map(|_| [Scalar::random(&mut rng), Scalar::random(&mut rng)])
        .collect();
    let singles: Vec<Scalar> = scalars.iter().map(|[a, _]| *a).collect();
    let pair_out = device_output(&points(2 * N), 2);
    let fixed_out = device_output(&points(N), 1);
    assert_eq!(pair_out.len(), PAIR_OUT_WORDS * N);
    assert_eq!(fixed_out.len(), FIXED_OUT_WORDS * N);

    let mut group = c.benchmark_group("gpu-layout");
    group.sample_size(20);
    group.throughput(Throughput::Elements(N as u64));
    let mut input = vec![0u32; PAIR_IN_WORDS * N];
    group.bench_function("pack_pairs", |b| {
        b.iter(|| layout::pack_pairs(&bases, &scalars, &mut input).expect("pack"))
    });
    group.bench_function("unpack_pairs", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(N);
            layout::unpack_pairs(&pair_out, &scalars, &mut out).expect("valid output");
            out
        })
    });
    group.bench_function("unpack_fixed", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(N);
            layout::unpack_fixed(&fixed_out, &singles, &mut out).expect("valid output");
            out
        })
    });
    // The capsule check's h·E: before, the pair [h, 0] packed and read whole; now the first
    // scalars packed and the first slot read.
    let mut h0_out = pair_out.clone();
    h0_out[17 * N..33 * N].fill(0);
    h0_out[33 * N..].fill(1);
    group.bench_function("h0/pack_as_pairs", |b| {
        b.iter(|| {
            let zero_seconds: Vec<[Scalar; 2]> =
                singles.iter().map(|k| [*k, Scalar::ZERO]).collect();
            layout::pack_pairs(&bases, &zero_seconds, &mut input).expect("pack");
            zero_seconds
        })
    });
    let mut firsts_in = vec![0u32; FIRSTS_IN_WORDS * N];
    group.bench_function("h0/pack_firsts", |b| {
        b.iter(|| layout::pack_firsts(&bases, &singles, &mut firsts_in).expect("pack"))
    });
    let zero_seconds: Vec<[Scalar; 2]> = singles.iter().map(|k| [*k, Scalar::ZERO]).collect();
    group.bench_function("h0/unpack_as_pairs", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(N);
            layout::unpack_pairs(&h0_out, &zero_seconds, &mut out).expect("valid output");
            out
        })
    });
    group.bench_function("h0/unpack_firsts", |b| {
        b.iter(|| {
            let mut out = vec![[None, None]; N];
            layout::unpack_firsts_into(&h0_out[..FIRSTS_OUT_WORDS * N], &singles, &mut out)
                .expect("valid output");
            out
        })
    });
    let mut fixed_in = vec![0u32; FIXED_IN_WORDS * N];
    group.bench_function("pack_fixed", |b| {
        b.iter(|| layout::pack_fixed(&singles, &mut fixed_in).expect("pack"))
    });
    // Decompression: the compressed forms of `bases`, and the device's answer (y, flag 1).
    let (compressed, decompress_out) = decompression(&bases);
    let mut decompress_in = vec![0u32; DECOMPRESS_IN_WORDS * N];
    group.bench_function("pack_decompress", |b| {
        b.iter(|| layout::pack_decompress(&compressed, &mut decompress_in).expect("pack"))
    });
    group.bench_function("unpack_decompress", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(N);
            layout::unpack_decompress(&decompress_out, &compressed, &mut out).expect("valid");
            out
        })
    });
    group.finish();
}

/// A capsule's device calls as the host sees them, `N / 2` capsules (the `N` pair items of the
/// calls above): step by step, the pairs `[rk, t]` of `E` and `V` and `t·U` packed and every
/// product read back and checked (with the decompression and the check's products before
/// them); in one call, one input packed and 197 bytes per capsule read back.
fn capsule_bench(c: &mut Criterion) {
    let capsules = N / 2;
    let mut rng = rand::thread_rng();
    let bases = points(N);
    let scalars: Vec<[Scalar; 2]> = (0..capsules)
        .flat_map(|_| [[Scalar::random(&mut rng), Scalar::random(&mut rng)]; 2])
        .collect();
    let nonces: Vec<Scalar> = scalars.iter().step_by(2).map(|[_, t]| *t).collect();
    let commitments: Vec<[u8; 33]> = points(capsules).iter().map(Affine::to_compressed).collect();
    let pair_out = device_output(&points(2 * N), 2);
    let fixed_out = device_output(&points(capsules), 1);
    let parts_out: Vec<u32> = (0..PARTS_OUT_WORDS * capsules)
        .map(|w| {
            if w < (PARTS_OUT_WORDS - 1) * capsules {
                w as u32
            } else {
                0
            }
        })
        .collect();

    let mut group = c.benchmark_group("gpu-layout-capsule");
    group.sample_size(20);
    group.throughput(Throughput::Elements(capsules as u64));
    let mut pair_in = vec![0u32; PAIR_IN_WORDS * N];
    let mut fixed_in = vec![0u32; FIXED_IN_WORDS * capsules];
    group.bench_function("products", |b| {
        b.iter(|| {
            layout::pack_pairs(&bases, &scalars, &mut pair_in).expect("pack");
            layout::pack_fixed(&nonces, &mut fixed_in).expect("pack");
            let mut products = Vec::with_capacity(N);
            layout::unpack_pairs(&pair_out, &scalars, &mut products).expect("valid output");
            let mut u2s = Vec::with_capacity(capsules);
            layout::unpack_fixed(&fixed_out, &nonces, &mut u2s).expect("valid output");
            (products, u2s)
        })
    });
    // A whole capsule's device calls: step by step, the decompression of E and V, the
    // check's h·E and s·G, and the products; with `one_call`, one input and the parts.
    let es: Vec<Affine> = bases.iter().step_by(2).copied().collect();
    let (compressed, decompress_out) = decompression(&bases);
    let hs: Vec<Scalar> = nonces
        .iter()
        .map(|t| t.invert().unwrap_or(Scalar::ONE))
        .collect();
    let firsts_out = device_output(&points(2 * capsules), 2);
    let mut decompress_in = vec![0u32; DECOMPRESS_IN_WORDS * N];
    let mut firsts_in = vec![0u32; FIRSTS_IN_WORDS * capsules];
    group.bench_function("capsule-in-steps", |b| {
        b.iter(|| {
            layout::pack_decompress(&compressed, &mut decompress_in).expect("pack");
            let mut points = Vec::with_capacity(N);
            layout::unpack_decompress(&decompress_out, &compressed, &mut points).expect("valid");
            layout::pack_firsts(&es, &hs, &mut firsts_in).expect("pack");
            layout::pack_fixed(&nonces, &mut fixed_in).expect("pack");
            let mut checks = vec![[None, None]; capsules];
            layout::unpack_firsts_into(
                &firsts_out[..FIRSTS_OUT_WORDS * capsules],
                &hs,
                &mut checks,
            )
            .expect("valid output");
            let mut sg = Vec::with_capacity(capsules);
            layout::unpack_fixed(&fixed_out, &nonces, &mut sg).expect("valid output");
            layout::pack_pairs(&bases, &scalars, &mut pair_in).expect("pack");
            layout::pack_fixed(&nonces, &mut fixed_in).expect("pack");
            let mut products = Vec::with_capacity(N);
            layout::unpack_pairs(&pair_out, &scalars, &mut products).expect("valid output");
            let mut u2s = Vec::with_capacity(capsules);
            layout::unpack_fixed(&fixed_out, &nonces, &mut u2s).expect("valid output");
            (points, checks, sg, products, u2s)
        })
    });
    let inputs: Vec<CapsuleInput> = (0..capsules)
        .map(|j| CapsuleInput {
            e: compressed[2 * j],
            v: compressed[2 * j + 1],
            s: nonces[j],
            commitment: commitments[j],
        })
        .collect();
    let pairs: Vec<[Scalar; 2]> = scalars.iter().step_by(2).copied().collect();
    let mut reenc_in = vec![0u32; REENC_IN_WORDS * capsules];
    group.bench_function("capsule-in-one-call", |b| {
        b.iter(|| {
            layout::pack_reenc(&inputs, &pairs, &mut reenc_in).expect("pack");
            let mut out = vec![CapsuleOutcome::Rejected; capsules];
            layout::unpack_reenc_into(&parts_out, &mut out).expect("status 0");
            out
        })
    });
    group.finish();
}

criterion_group!(benches, layout_bench, capsule_bench);
criterion_main!(benches);
