//! Layer benchmarks: one constant-time variable-base multiplication (umbrald's batched GLV
//! against k256's), the fixed-base `t·U`, and the combined capsule check per capsule.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use k256::elliptic_curve::Field;
use k256::{ProjectivePoint, Scalar};
use umbrald_core::curve::{fixed, msm, varmul, Affine};

fn random_points(n: usize) -> Vec<Affine> {
    let mut rng = rand::thread_rng();
    (0..n)
        .map(|_| {
            Affine::from_k256(&(ProjectivePoint::GENERATOR * Scalar::random(&mut rng)))
                .expect("finite")
        })
        .collect()
}

fn curve(c: &mut Criterion) {
    let mut rng = rand::thread_rng();
    let n = 128;
    let bases = random_points(n);
    let scalars: Vec<[Scalar; 2]> = (0..n)
        .map(|_| [Scalar::random(&mut rng), Scalar::random(&mut rng)])
        .collect();
    let mut group = c.benchmark_group("scalar-mul");
    group.sample_size(10);
    group.throughput(Throughput::Elements(2 * n as u64));
    group.bench_function("k256 variable-base", |b| {
        let projective: Vec<ProjectivePoint> = bases.iter().map(|p| p.to_k256()).collect();
        b.iter(|| {
            for (p, [a, s]) in projective.iter().zip(&scalars) {
                criterion::black_box((p * a).to_affine());
                criterion::black_box((p * s).to_affine());
            }
        })
    });
    group.bench_function("umbrald mul_pairs", |b| {
        b.iter(|| criterion::black_box(varmul::mul_pairs(&bases, &scalars)))
    });
    let ts: Vec<Scalar> = scalars.iter().flatten().copied().collect();
    group.bench_function("umbrald mul_u (fixed base)", |b| {
        b.iter(|| criterion::black_box(fixed::mul_u(&ts)))
    });
    let points = random_points(2 * n);
    group.bench_function("msm_vartime (per point)", |b| {
        b.iter(|| criterion::black_box(msm::msm_vartime(&points, &ts)))
    });
    group.finish();
}

criterion_group!(benches, curve);
criterion_main!(benches);
