//! Shared set-up for umbrald's criterion benchmarks (`cargo bench -p umbrald-benches`).

use umbral_pre::DefaultSerialize;

/// A policy with one kfrag and `n` capsules, all made with umbral-pre.
pub struct Workload {
    /// umbral-pre's verified kfrag.
    pub kfrag: umbral_pre::VerifiedKeyFrag,
    /// Bytes of the kfrag and the delegating, receiving and verifying keys.
    pub policy_bytes: [Vec<u8>; 4],
    /// Capsule bytes.
    pub capsules: Vec<Vec<u8>>,
}

impl Workload {
    /// Makes a workload of `n` capsules.
    pub fn new(n: usize) -> Self {
        let alice = umbral_pre::SecretKey::random();
        let bob = umbral_pre::SecretKey::random();
        let signer = umbral_pre::Signer::new(umbral_pre::SecretKey::random());
        let kfrag =
            umbral_pre::generate_kfrags(&alice, &bob.public_key(), &signer, 1, 1, true, true)[0]
                .clone();
        let capsules = (0..n)
            .map(|_| {
                let (capsule, _) = umbral_pre::encrypt(&alice.public_key(), b"bench").expect("enc");
                capsule.to_bytes().expect("bytes").into_vec()
            })
            .collect();
        let policy_bytes = [
            kfrag.to_bytes().expect("kfrag").into_vec(),
            alice.public_key().to_compressed_bytes().into_vec(),
            bob.public_key().to_compressed_bytes().into_vec(),
            signer.verifying_key().to_compressed_bytes().into_vec(),
        ];
        Self {
            kfrag,
            policy_bytes,
            capsules,
        }
    }
}
