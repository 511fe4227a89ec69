//! The batched re-encryption engine: capsules in, cfrags out.
//!
//! One call to [`Engine::reencrypt_batch`] does, for `n` items:
//! 1. parse every capsule (bad bytes fail that item only), taking the square roots of all its
//!    points together — on the backend when it offers them
//!    (`EcBackend::decompress_points`), every answer checked against the compressed form;
//! 2. check every capsule's equation `s·G = V + h·E` at once with a random linear combination
//!    (one variable-time multi-scalar multiplication over public data), naming the bad ones with
//!    per-capsule checks only when the combined check fails; a backend that offers the
//!    equations' products (`EcBackend::capsule_check_products`, the GPU) computes `h·E` and
//!    `s·G` instead and the engine compares each sum, re-checking on the CPU any capsule that
//!    comparison rejects;
//! 3. draw a fresh nonce `t` per item from a CSPRNG;
//! 4. run the secret-scalar work as two backend calls: `[rk·E, t·E]` and `[rk·V, t·V]` for all
//!    items (one table per base, shared by both scalars), and `t·U` for all items;
//! 5. hash each proof transcript and emit `z = rk·h + t`.
//!
//! A backend may take all of it: with `EcBackend::reencrypt_capsules` it takes each parsed
//! capsule as it is and does steps 1 (the square roots) to 5 in one call; the engine then
//! re-checks, step by step, every capsule the backend rejects.
//!
//! Batches of fewer than four capsules on the CPU engine take a shorter road: the tables of odd
//! multiples of every `E` and `V` are built once (one shared inversion) and serve both the
//! per-capsule checks (variable time, public data) and the constant-time products, and all
//! products, `t·U` included, are normalized with one more inversion.
//!
//! The result is exactly what umbral-pre's `reencrypt` produces, byte for byte in format.

use std::sync::{Arc, Mutex};

use k256::{NonZeroScalar, Scalar};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rand_core::OsRng;
use zeroize::Zeroizing;

use crate::backend::{
    CapsuleInput, CapsuleOutcome, CfragParts, CpuBackend, EcBackend, CFRAG_PARTS_LEN,
};
use crate::codec::{Capsule, CapsuleFrag, CapsuleParts, KeyFrag, PublicKey, VerifiedKeyFrag};
use crate::curve::{fixed, msm, params, varmul, verify, Affine, CompressedPoint, PointError};
use crate::error::ItemError;
use crate::hash;
use crate::kfrag_cache::{policy_key, KfragCache};

/// Batches at least this large check capsules with one combined equation.
const COMBINED_CHECK_MIN: usize = 4;
/// Default number of verified policies kept.
const DEFAULT_KFRAG_CACHE: usize = 4096;

/// One capsule to re-encrypt with a verified kfrag.
#[derive(Clone, Copy, Debug)]
pub struct ReencryptItem<'a> {
    /// The capsule's umbral-pre MessagePack bytes (105 bytes when valid).
    pub capsule: &'a [u8],
    /// The kfrag to re-encrypt with (shared by many items).
    pub kfrag: &'a VerifiedKeyFrag,
}

/// The re-encryption engine. Thread-safe: share one behind an `Arc` and call it from many
/// worker threads at once.
pub struct Engine {
    backend: Arc<dyn EcBackend>,
    /// The backend is the CPU itself: small batches may share tables between the capsule
    /// checks and the products.
    host_only: bool,
    cpu: CpuBackend,
    kfrags: Mutex<KfragCache>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("backend", &self.backend.name())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine on `backend`; the CPU backend takes over any batch the backend fails.
    pub fn new(backend: Arc<dyn EcBackend>) -> Self {
        Self {
            host_only: false,
            backend,
            cpu: CpuBackend::new(),
            kfrags: Mutex::new(KfragCache::new(DEFAULT_KFRAG_CACHE)),
        }
    }

    /// An engine on the CPU backend.
    pub fn cpu() -> Self {
        Self {
            host_only: true,
            ..Self::new(Arc::new(CpuBackend::new()))
        }
    }

    /// The primary backend's name (`"cpu"`, `"gpu"`, …).
    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// Number of verified policies currently cached.
    pub fn cached_policies(&self) -> usize {
        self.kfrags.lock().map(|c| c.len()).unwrap_or(0)
    }

    /// Parses and verifies a policy: the kfrag's commitment and signatures against the
    /// delegating, receiving and verifying keys.
    ///
    /// The result is cached by the exact bytes, so calling this for every request that names
    /// the same policy costs a hash and a lookup after the first time.
    pub fn verify_policy(
        &self,
        kfrag: &[u8],
        delegating_pk: &[u8],
        receiving_pk: &[u8],
        verifying_pk: &[u8],
    ) -> Result<Arc<VerifiedKeyFrag>, ItemError> {
        let key = policy_key([kfrag, delegating_pk, receiving_pk, verifying_pk]);
        if let Some(hit) = self.kfrags.lock().ok().and_then(|c| c.get(&key)) {
            return Ok(hit);
        }
        let parse_key = |which, bytes| {
            PublicKey::from_bytes(bytes)
                .map_err(|source| ItemError::InvalidPublicKey { which, source })
        };
        let delegating = parse_key("delegating", delegating_pk)?;
        let receiving = parse_key("receiving", receiving_pk)?;
        let verifying = parse_key("verifying", verifying_pk)?;
        let parsed = KeyFrag::from_bytes(kfrag).map_err(ItemError::InvalidKfrag)?;
        let verified = Arc::new(
            parsed
                .verify(&verifying, &delegating, &receiving)
                .map_err(ItemError::KfragVerification)?,
        );
        if let Ok(mut cache) = self.kfrags.lock() {
            cache.insert(key, verified.clone());
        }
        Ok(verified)
    }

    /// Re-encrypts a batch. Result `i` belongs to `items[i]`; a bad item fails alone.
    pub fn reencrypt_batch(
        &self,
        items: &[ReencryptItem<'_>],
    ) -> Vec<Result<CapsuleFrag, ItemError>> {
        if items.len() >= COMBINED_CHECK_MIN && self.backend.offers_reencrypt_capsules() {
            if let Some(results) = self.reencrypt_in_one_call(items) {
                return results;
            }
        }
        self.reencrypt_in_steps(items)
    }

    /// The whole batch in one backend call ([`EcBackend::reencrypt_capsules`]): parse, draw
    /// the nonces, and take the parts of every capsule the backend accepts; the capsules it
    /// rejects go through [`Self::reencrypt_in_steps`] again (a device could be wrong). `None`
    /// when the call is declined or fails.
    fn reencrypt_in_one_call(
        &self,
        items: &[ReencryptItem<'_>],
    ) -> Option<Vec<Result<CapsuleFrag, ItemError>>> {
        let parsed: Vec<Result<CapsuleParts, ItemError>> = items
            .iter()
            .map(|item| CapsuleParts::from_bytes(item.capsule).map_err(ItemError::InvalidCapsule))
            .collect();
        let good: Vec<usize> = (0..items.len()).filter(|&i| parsed[i].is_ok()).collect();
        if good.is_empty() {
            return None;
        }
        let mut rng = seeded_rng();
        let nonces = draw_nonces(&mut rng, good.len());
        let mut inputs = Vec::with_capacity(good.len());
        let mut scalars: Zeroizing<Vec<[Scalar; 2]>> =
            Zeroizing::new(Vec::with_capacity(good.len()));
        for (&i, t) in good.iter().zip(nonces.iter()) {
            let capsule = parsed[i].as_ref().ok()?;
            let kfrag = items[i].kfrag.kfrag();
            let [e, v] = capsule.points();
            inputs.push(CapsuleInput {
                e,
                v,
                s: capsule.signature(),
                commitment: kfrag.commitment_bytes,
            });
            scalars.push([kfrag.key, *t]);
        }
        let outcomes = self
            .backend
            .reencrypt_capsules(&inputs, &scalars)
            .ok()
            .filter(|outcomes| outcomes.len() == good.len())?;
        // Every parsed capsule's slot is written below.
        let mut results: Vec<Result<CapsuleFrag, ItemError>> = parsed
            .into_iter()
            .map(|parse| parse.and(Err(ItemError::Internal("capsule without a result"))))
            .collect();
        let mut again = Vec::new();
        for (&i, outcome) in good.iter().zip(&outcomes) {
            match outcome {
                CapsuleOutcome::Parts(parts) => {
                    results[i] = CapsuleFrag::from_parts(parts, items[i].kfrag.kfrag())
                        .map_err(|_| ItemError::Internal("backend returned short cfrag parts"));
                }
                CapsuleOutcome::Rejected => again.push(i),
            }
        }
        if !again.is_empty() {
            let subset: Vec<ReencryptItem<'_>> = again.iter().map(|&i| items[i]).collect();
            for (&i, result) in again.iter().zip(self.reencrypt_in_steps(&subset)) {
                results[i] = result;
            }
        }
        Some(results)
    }

    /// Re-encrypts a batch with one backend call per step (parse, check, products).
    fn reencrypt_in_steps(
        &self,
        items: &[ReencryptItem<'_>],
    ) -> Vec<Result<CapsuleFrag, ItemError>> {
        let mut results: Vec<Result<CapsuleFrag, ItemError>> = Vec::with_capacity(items.len());
        // 1. Parse.
        let parsed = self.parse_capsules(items);
        let good: Vec<(usize, &Capsule)> = parsed
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.as_ref().ok().map(|c| (i, c)))
            .collect();
        let mut rng = seeded_rng();
        // 2. Check the capsule equations, 3. draw nonces, 4. the secret-scalar work.
        let SecretWork {
            good,
            nonces,
            products,
            u2s,
        } = if self.host_only && good.len() < COMBINED_CHECK_MIN {
            self.small_batch_on_cpu(items, good, &mut rng)
        } else {
            self.batch_on_backend(items, good, &mut rng)
        };

        // 5. Proofs and encoding, each cfrag written once into its slot: a parse error stays,
        // a parsed capsule without a cfrag failed its check.
        results.extend(parsed.iter().map(|parse| match parse {
            Err(e) => Err(e.clone()),
            Ok(_) => Err(ItemError::CapsuleCheckFailed),
        }));
        for (j, (i, capsule)) in good.iter().enumerate() {
            let kfrag = items[*i].kfrag.kfrag();
            results[*i] = finish_cfrag(
                capsule,
                kfrag,
                &nonces[j],
                &products[2 * j],
                &products[2 * j + 1],
                &u2s[j],
            );
        }
        results
    }

    /// Re-encrypts one capsule (a batch of one).
    pub fn reencrypt(
        &self,
        capsule: &[u8],
        kfrag: &VerifiedKeyFrag,
    ) -> Result<CapsuleFrag, ItemError> {
        self.reencrypt_batch(&[ReencryptItem { capsule, kfrag }])
            .pop()
            .unwrap_or(Err(ItemError::Internal("empty batch result")))
    }

    /// Steps 2–4 for a few capsules on the CPU: one set of tables serves the checks and the
    /// products, and every product is normalized with one inversion.
    fn small_batch_on_cpu<'c>(
        &self,
        items: &[ReencryptItem<'_>],
        good: Vec<(usize, &'c Capsule)>,
        rng: &mut ChaCha20Rng,
    ) -> SecretWork<'c> {
        let bases: Vec<Affine> = good.iter().flat_map(|(_, c)| [c.e, c.v]).collect();
        let tables = varmul::build_tables(&bases);
        let mut checked = Vec::with_capacity(good.len());
        let mut base_tables = Vec::with_capacity(bases.len());
        for (capsule, pair) in good.iter().zip(tables.chunks_exact(2)) {
            if capsule.1.check_with_table_vartime(&pair[0]) {
                checked.push(*capsule);
                base_tables.extend([&pair[0], &pair[1]]);
            }
        }
        let nonces = draw_nonces(rng, checked.len());
        let scalars: Zeroizing<Vec<[Scalar; 2]>> = Zeroizing::new(
            checked
                .iter()
                .zip(nonces.iter())
                .flat_map(|((i, _), t)| [[items[*i].kfrag.kfrag().key, *t]; 2])
                .collect(),
        );
        let (products, u2s) = varmul::mul_pairs_and_u_on_tables(&base_tables, &scalars, &nonces);
        SecretWork {
            good: checked,
            nonces,
            products,
            u2s,
        }
    }

    /// Steps 2–4 on the engine's backend: the batch check, then one `mul_pairs` and one
    /// `mul_u` call for the capsules that passed it.
    fn batch_on_backend<'c>(
        &self,
        items: &[ReencryptItem<'_>],
        mut good: Vec<(usize, &'c Capsule)>,
        rng: &mut ChaCha20Rng,
    ) -> SecretWork<'c> {
        let failed_check = self.check_capsules(&good);
        // Rejected indices come in batch order: a binary search finds each.
        good.retain(|(i, _)| failed_check.binary_search(i).is_err());
        let nonces = draw_nonces(rng, good.len());
        let mut bases = Vec::with_capacity(2 * good.len());
        let mut scalars: Zeroizing<Vec<[Scalar; 2]>> =
            Zeroizing::new(Vec::with_capacity(2 * good.len()));
        for ((i, capsule), t) in good.iter().zip(nonces.iter()) {
            let rk = items[*i].kfrag.kfrag().key;
            bases.push(capsule.e);
            bases.push(capsule.v);
            scalars.push([rk, *t]);
            scalars.push([rk, *t]);
        }
        SecretWork {
            products: self.mul_pairs(&bases, &scalars),
            u2s: self.mul_u(&nonces),
            good,
            nonces,
        }
    }

    /// Step 1: every capsule parsed; the points decompressed on the backend when it offers it
    /// (for batches of at least [`COMBINED_CHECK_MIN`]), else on the host.
    fn parse_capsules(&self, items: &[ReencryptItem<'_>]) -> Vec<Result<Capsule, ItemError>> {
        let parts: Vec<Result<CapsuleParts, ItemError>> = items
            .iter()
            .map(|item| CapsuleParts::from_bytes(item.capsule).map_err(ItemError::InvalidCapsule))
            .collect();
        let points: Vec<CompressedPoint> = parts
            .iter()
            .flatten()
            .flat_map(CapsuleParts::points)
            .collect();
        let offered = if points.len() >= 2 * COMBINED_CHECK_MIN {
            self.backend
                .decompress_points(&points)
                .ok()
                .filter(|d| d.len() == points.len())
        } else {
            None
        };
        let mut answers = offered.into_iter().flatten();
        // A backend that checks its outputs has put every point it returns on the curve.
        let on_curve = self.backend.checks_outputs();
        parts
            .into_iter()
            .map(|part| {
                let part = part?;
                let [e, v] = part
                    .points()
                    .map(|p| accept_or_decompress(&p, answers.next(), on_curve));
                part.finish(e, v).map_err(ItemError::InvalidCapsule)
            })
            .collect()
    }

    /// Returns the indices (into the batch) of capsules whose equation does not hold: with the
    /// backend's products when it offers them, else on the CPU.
    fn check_capsules(&self, capsules: &[(usize, &Capsule)]) -> Vec<usize> {
        if capsules.len() >= COMBINED_CHECK_MIN {
            if let Some(rejected) = self.check_with_backend_products(capsules) {
                // A device could be wrong: the rejected few are checked again on the CPU.
                return check_capsules(&rejected);
            }
        }
        check_capsules(capsules)
    }

    /// The capsules whose equation fails with the backend's `h·E` and `s·G`, or `None` when
    /// the backend does not offer them (or returned the wrong number).
    fn check_with_backend_products<'c>(
        &self,
        capsules: &[(usize, &'c Capsule)],
    ) -> Option<Vec<(usize, &'c Capsule)>> {
        let es: Vec<Affine> = capsules.iter().map(|(_, c)| c.e).collect();
        let hs: Vec<Scalar> = capsules.iter().map(|(_, c)| c.challenge()).collect();
        let ss: Vec<Scalar> = capsules.iter().map(|(_, c)| c.s).collect();
        let products = self.backend.capsule_check_products(&es, &hs, &ss).ok()?;
        if products.len() != capsules.len() {
            return None;
        }
        Some(
            capsules
                .iter()
                .zip(&products)
                .filter(|((_, c), [he, sg])| !equation_holds(&c.v, he.as_ref(), sg.as_ref()))
                .map(|(capsule, _)| *capsule)
                .collect(),
        )
    }

    fn mul_pairs(&self, bases: &[Affine], scalars: &[[Scalar; 2]]) -> Vec<[Option<Affine>; 2]> {
        match self.backend.mul_pairs(bases, scalars) {
            Ok(out) if out.len() == bases.len() => out,
            _ => varmul_cpu(&self.cpu, bases, scalars),
        }
    }

    fn mul_u(&self, scalars: &[Scalar]) -> Vec<Option<Affine>> {
        match self.backend.mul_u(scalars) {
            Ok(out) if out.len() == scalars.len() => out,
            _ => self.cpu.mul_u(scalars).unwrap_or_default(),
        }
    }
}

fn varmul_cpu(
    cpu: &CpuBackend,
    bases: &[Affine],
    scalars: &[[Scalar; 2]],
) -> Vec<[Option<Affine>; 2]> {
    cpu.mul_pairs(bases, scalars).unwrap_or_default()
}

/// What steps 2–4 of a batch produce: the capsules that passed their check (with their
/// index in the batch), one nonce for each, `[rk·E, t·E]` and `[rk·V, t·V]` for each (in that
/// order), and `t·U` for each.
struct SecretWork<'c> {
    good: Vec<(usize, &'c Capsule)>,
    nonces: Zeroizing<Vec<Scalar>>,
    products: Vec<[Option<Affine>; 2]>,
    u2s: Vec<Option<Affine>>,
}

/// A CSPRNG for one batch's nonces, seeded from the operating system.
fn seeded_rng() -> ChaCha20Rng {
    ChaCha20Rng::from_rng(OsRng).unwrap_or_else(|_| {
        let mut seed = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(seed.as_mut());
        ChaCha20Rng::from_seed(*seed)
    })
}

/// `count` fresh non-zero nonces.
fn draw_nonces(rng: &mut ChaCha20Rng, count: usize) -> Zeroizing<Vec<Scalar>> {
    let nonces = Zeroizing::new(
        (0..count)
            .map(|_| *NonZeroScalar::random(&mut *rng))
            .collect::<Vec<Scalar>>(),
    );
    #[cfg(feature = "ctime-taint")]
    crate::ctime_hook::nonces_drawn(&nonces);
    nonces
}

/// Returns the indices (into the batch) of capsules whose equation does not hold.
fn check_capsules(capsules: &[(usize, &Capsule)]) -> Vec<usize> {
    if capsules.len() >= COMBINED_CHECK_MIN && combined_check(capsules) {
        return Vec::new();
    }
    // One by one, on tables of odd multiples of every E built with one shared inversion.
    let es: Vec<Affine> = capsules.iter().map(|(_, c)| c.e).collect();
    let tables = varmul::build_tables(&es);
    capsules
        .iter()
        .zip(&tables)
        .filter(|((_, c), table)| !c.check_with_table_vartime(table))
        .map(|((i, _), _)| *i)
        .collect()
}

/// The backend's decompression of `point` if it is right, else the host's. `on_curve`: the
/// backend has checked that its answers lie on the curve, so only `x` and the parity are left
/// to compare.
fn accept_or_decompress(
    point: &CompressedPoint,
    answer: Option<Option<Affine>>,
    on_curve: bool,
) -> Result<Affine, PointError> {
    match answer {
        Some(Some(p)) if point.matches(&p) && (on_curve || p.is_on_curve()) => Ok(p),
        _ => point.decompress_vartime(),
    }
}

/// Whether `s·G == V + h·E` given the two products (`None` = identity); variable time, public
/// data, no inversion (a collinearity test in the common case).
fn equation_holds(v: &Affine, he: Option<&Affine>, sg: Option<&Affine>) -> bool {
    verify::affine_sum_is_vartime(he, v, sg)
}

/// `Σ rᵢ·(sᵢ·G − Vᵢ − hᵢ·Eᵢ) == O` for random 128-bit `rᵢ`: true when every capsule holds
/// (and false, except with probability 2⁻¹²⁸, when any does not).
fn combined_check(capsules: &[(usize, &Capsule)]) -> bool {
    let mut rng = ChaCha20Rng::from_rng(OsRng).unwrap_or_else(|_| ChaCha20Rng::from_entropy());
    let mut points = Vec::with_capacity(2 * capsules.len());
    let mut scalars = Vec::with_capacity(2 * capsules.len());
    let mut g_scalar = Scalar::ZERO;
    for (_, c) in capsules {
        let r = Scalar::from(((rng.next_u64() as u128) << 64) | rng.next_u64() as u128);
        g_scalar += r * c.s;
        // r < 2¹²⁸ stays one short term in the MSM: negate the point, not the scalar.
        points.push(c.v.neg());
        scalars.push(r);
        points.push(c.e);
        scalars.push(-(r * c.challenge()));
    }
    let sum = msm::msm_vartime(&points, &scalars);
    let g_part = fixed::mul_g(&[g_scalar]).pop().flatten();
    match (sum, g_part) {
        (None, None) => true,
        (Some(sum), Some(g)) => sum == g.neg(),
        _ => false,
    }
}

fn finish_cfrag(
    capsule: &Capsule,
    kfrag: &KeyFrag,
    t: &Scalar,
    e_products: &[Option<Affine>; 2],
    v_products: &[Option<Affine>; 2],
    u2: &Option<Affine>,
) -> Result<CapsuleFrag, ItemError> {
    let proof = Proof::new(
        [&capsule.e_bytes, &capsule.v_bytes],
        &kfrag.commitment_bytes,
        [&kfrag.key, t],
        e_products,
        v_products,
        u2,
    )?;
    Ok(CapsuleFrag {
        e1: proof.e1,
        v1: proof.v1,
        kfrag_id: kfrag.id,
        precursor: kfrag.precursor,
        e2: proof.e2,
        v2: proof.v2,
        u1: kfrag.commitment_bytes,
        u2: proof.u2,
        z: proof.z,
        kfrag_signature: kfrag.sig_receiver_bytes,
    })
}

/// A cfrag's capsule-specific fields: the compressed products and the proof's `z`.
struct Proof {
    e1: [u8; 33],
    v1: [u8; 33],
    e2: [u8; 33],
    v2: [u8; 33],
    u2: [u8; 33],
    z: [u8; 32],
}

impl Proof {
    /// Compresses the products `[rk·E, t·E]`, `[rk·V, t·V]` and `t·U`, hashes the proof's
    /// transcript and computes `z = rk·h + t`.
    fn new(
        [e, v]: [&[u8; 33]; 2],
        u1: &[u8; 33],
        [rk, t]: [&Scalar; 2],
        e_products: &[Option<Affine>; 2],
        v_products: &[Option<Affine>; 2],
        u2: &Option<Affine>,
    ) -> Result<Self, ItemError> {
        let missing = ItemError::Internal("backend returned the identity for a non-zero scalar");
        let (Some(e1), Some(e2)) = (e_products[0], e_products[1]) else {
            return Err(missing);
        };
        let (Some(v1), Some(v2)) = (v_products[0], v_products[1]) else {
            return Err(missing);
        };
        let Some(u2) = u2 else { return Err(missing) };
        let (e1, e2, v1, v2, u2) = (
            e1.to_compressed(),
            e2.to_compressed(),
            v1.to_compressed(),
            v2.to_compressed(),
            u2.to_compressed(),
        );
        let h =
            hash::cfrag_verification([e, &e1, &e2, v, &v1, &v2, &params::U_COMPRESSED, u1, &u2]);
        let z = *rk * h + t;
        Ok(Self {
            e1,
            v1,
            e2,
            v2,
            u2,
            z: z.to_bytes().into(),
        })
    }
}

/// One cfrag's capsule-specific parts computed on the CPU from the capsule's points `E` and
/// `V`, the scalars `[rk, t]` (the kfrag's key and the proof's nonce) and the kfrag's
/// compressed commitment: the products, `t·U`, the proof's hash and `z = rk·h + t`. The
/// reference a device's answers are audited against. `None` when a product
/// is the identity (a zero scalar).
pub fn cfrag_parts_on_cpu(
    e: &Affine,
    v: &Affine,
    scalars: &[Scalar; 2],
    commitment: &[u8; 33],
) -> Option<CfragParts> {
    let cpu = CpuBackend::new();
    let products = cpu.mul_pairs(&[*e, *v], &[*scalars, *scalars]).ok()?;
    let u2 = cpu.mul_u(&scalars[1..]).ok()?;
    let (e_products, v_products) = (products.first()?, products.get(1)?);
    let proof = Proof::new(
        [&e.to_compressed(), &v.to_compressed()],
        commitment,
        [&scalars[0], &scalars[1]],
        e_products,
        v_products,
        u2.first()?,
    )
    .ok()?;
    let mut out = [0u8; CFRAG_PARTS_LEN];
    let fields: [&[u8]; 6] = [
        &proof.e1, &proof.v1, &proof.e2, &proof.v2, &proof.u2, &proof.z,
    ];
    let mut at = 0;
    for field in fields {
        out[at..at + field.len()].copy_from_slice(field);
        at += field.len();
    }
    Some(out)
}

/// One capsule's whole re-encryption on the CPU from the inputs of
/// [`EcBackend::reencrypt_capsules`]: rejected when a point does not decompress or the
/// capsule's equation fails, else the parts as [`cfrag_parts_on_cpu`] computes them. The
/// reference a device's answers are audited against.
pub fn reencrypt_capsule_on_cpu(input: &CapsuleInput, scalars: &[Scalar; 2]) -> CapsuleOutcome {
    let (Ok(e), Ok(v)) = (input.e.decompress_vartime(), input.v.decompress_vartime()) else {
        return CapsuleOutcome::Rejected;
    };
    let capsule = Capsule {
        e,
        v,
        s: input.s,
        e_bytes: e.to_compressed(),
        v_bytes: v.to_compressed(),
    };
    if !capsule.check_vartime() {
        return CapsuleOutcome::Rejected;
    }
    match cfrag_parts_on_cpu(&e, &v, scalars, &input.commitment) {
        Some(parts) => CapsuleOutcome::Parts(parts),
        None => CapsuleOutcome::Rejected,
    }
}
