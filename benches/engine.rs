//! The full per-capsule path, umbrald's engine against umbral-pre, single thread:
//! parse + check the capsule, re-encrypt, serialize the cfrag.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use umbral_pre::{DefaultDeserialize, DefaultSerialize};
use umbrald_benches::Workload;
use umbrald_core::{Engine, ReencryptItem};

fn full_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("reencrypt");
    group.sample_size(10);
    let engine = Engine::cpu();
    for n in [1usize, 16, 256] {
        let w = Workload::new(n);
        let [k, d, r, v] = &w.policy_bytes;
        let kfrag = engine.verify_policy(k, d, r, v).expect("policy");
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("umbral-pre", n), &w, |b, w| {
            b.iter(|| {
                for bytes in &w.capsules {
                    let capsule = umbral_pre::Capsule::from_bytes(bytes).expect("capsule");
                    let cfrag = umbral_pre::reencrypt(&capsule, w.kfrag.clone());
                    criterion::black_box(cfrag.to_bytes().expect("cfrag"));
                }
            })
        });
        group.bench_with_input(BenchmarkId::new("umbrald", n), &w, |b, w| {
            b.iter(|| {
                let items: Vec<ReencryptItem<'_>> = w
                    .capsules
                    .iter()
                    .map(|c| ReencryptItem {
                        capsule: c,
                        kfrag: &kfrag,
                    })
                    .collect();
                for result in engine.reencrypt_batch(&items) {
                    criterion::black_box(result.expect("cfrag").to_bytes());
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, full_path);
criterion_main!(benches);
