//! Shared set-up for umbrald's criterion benchmarks (`cargo bench -p umbrald-benches`).

use k256::{ProjectivePoint, Scalar};
use umbral_pre::DefaultSerialize;
use umbrald_core::backend::{
    BackendError, CapsuleInput, CapsuleOutcome, EcBackend, CFRAG_PARTS_LEN,
};
use umbrald_core::curve::{Affine, CompressedPoint};

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

/// A curve backend that answers every product at once with the generator (cfrags made with it
/// are wrong): what remains of the engine's time is its work around the curve arithmetic, the
/// per-item cost a GPU backend leaves on the host. It can also offer a workload's capsule-check
/// products and decompressed points, computed before the clock starts, as the GPU backend
/// offers them (by position: a batch must list the capsules in the workload's order).
#[derive(Default)]
pub struct InstantBackend {
    /// `(E, [h·E, s·G])` of every offered capsule, in workload order.
    check: Option<Vec<(Affine, [Option<Affine>; 2])>>,
    /// `E` and `V` of every offered capsule, compressed and decompressed, in workload order.
    points: Option<Vec<(CompressedPoint, Affine)>>,
    /// Offer `reencrypt_capsules` (every capsule answered with constant parts).
    one_call: bool,
}

impl EcBackend for InstantBackend {
    fn name(&self) -> &'static str {
        "instant"
    }

    fn mul_pairs(
        &self,
        bases: &[Affine],
        _: &[[Scalar; 2]],
    ) -> Result<Vec<[Option<Affine>; 2]>, BackendError> {
        let g = Affine::from_k256(&ProjectivePoint::GENERATOR);
        Ok(vec![[g, g]; bases.len()])
    }

    fn mul_u(&self, scalars: &[Scalar]) -> Result<Vec<Option<Affine>>, BackendError> {
        Ok(vec![
            Affine::from_k256(&ProjectivePoint::GENERATOR);
            scalars.len()
        ])
    }

    fn capsule_check_products(
        &self,
        es: &[Affine],
        _: &[Scalar],
        _: &[Scalar],
    ) -> Result<Vec<[Option<Affine>; 2]>, BackendError> {
        // Answered by position, as a device returns them (a hash lookup per item would cost
        // more than the engine's own work around it); a batch in another order is declined.
        let declined = BackendError::NotOffered("not this workload's capsules");
        let check = self
            .check
            .as_ref()
            .ok_or(BackendError::NotOffered("checks"))?;
        if es.len() > check.len() {
            return Err(declined);
        }
        es.iter()
            .zip(check)
            .map(|(e, (offered, products))| e.eq_vartime(offered).then_some(*products))
            .collect::<Option<Vec<_>>>()
            .ok_or(declined)
    }

    fn offers_reencrypt_capsules(&self) -> bool {
        self.one_call
    }

    fn reencrypt_capsules(
        &self,
        capsules: &[CapsuleInput],
        _: &[[Scalar; 2]],
    ) -> Result<Vec<CapsuleOutcome>, BackendError> {
        self.one_call
            .then(|| vec![CapsuleOutcome::Parts([2u8; CFRAG_PARTS_LEN]); capsules.len()])
            .ok_or(BackendError::NotOffered("one call"))
    }

    /// True, as for the GPU backend: every point it returns is a curve point.
    fn checks_outputs(&self) -> bool {
        true
    }

    fn decompress_points(
        &self,
        points: &[CompressedPoint],
    ) -> Result<Vec<Option<Affine>>, BackendError> {
        let known = self
            .points
            .as_ref()
            .ok_or(BackendError::NotOffered("points"))?;
        if points.len() > known.len() {
            return Err(BackendError::NotOffered("not this workload's points"));
        }
        Ok(points
            .iter()
            .zip(known)
            .map(|(p, (offered, point))| {
                (p.odd == offered.odd && p.x.eq_vartime(&offered.x)).then_some(*point)
            })
            .collect())
    }
}

impl InstantBackend {
    /// Also offers `[h·E, s·G]` for these capsules (`EcBackend::capsule_check_products`).
    pub fn offering_checks(mut self, capsules: &[Vec<u8>]) -> Self {
        self.check = Some(check_products(capsules));
        self
    }

    /// Also offers whole capsules re-encrypted in one call (`EcBackend::reencrypt_capsules`,
    /// constant parts), as the GPU backend with `one_call` does: the engine then only parses,
    /// draws nonces and copies parts.
    pub fn offering_one_call(mut self) -> Self {
        self.one_call = true;
        self
    }

    /// Also offers these capsules' points decompressed (`EcBackend::decompress_points`).
    pub fn offering_points(mut self, capsules: &[Vec<u8>]) -> Self {
        self.points = Some(decompressed(capsules));
        self
    }
}

/// `E` and `V` of every capsule, compressed and decompressed, in order.
fn decompressed(capsules: &[Vec<u8>]) -> Vec<(CompressedPoint, Affine)> {
    capsules
        .iter()
        .flat_map(|bytes| [&bytes[3..36], &bytes[38..71]])
        .map(|sec1| {
            let c = CompressedPoint::parse(sec1).expect("valid point");
            let p = c.decompress_vartime().expect("on the curve");
            (c, p)
        })
        .collect()
}

/// `E` and `[h·E, s·G]` of every capsule, in order.
fn check_products(capsules: &[Vec<u8>]) -> Vec<(Affine, [Option<Affine>; 2])> {
    capsules
        .iter()
        .map(|bytes| {
            let c = umbrald_core::Capsule::from_bytes(bytes).expect("capsule");
            let e = c.to_bytes();
            let e_point = Affine::decompress_vartime(&e[3..36]).expect("E");
            let s = <Scalar as k256::elliptic_curve::PrimeField>::from_repr(
                <[u8; 32]>::try_from(&e[73..105]).expect("s").into(),
            )
            .expect("s");
            let he = Affine::from_k256(&(e_point.to_k256() * c.challenge()));
            let sg = Affine::from_k256(&(ProjectivePoint::GENERATOR * s));
            (e_point, [he, sg])
        })
        .collect()
}
