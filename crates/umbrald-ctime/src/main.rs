//! Constant-time check of the re-encryption paths under valgrind memcheck ("secret taint", in
//! the style of libsecp256k1's `ctime_tests`): the CPU backend, and the GPU backend on the CUDA
//! kernels compiled as host C++. Run by `scripts/check-ctime.sh`:
//!
//! ```sh
//! CARGO_TARGET_DIR=target cargo build --release --locked \
//!     --manifest-path crates/umbrald-ctime/Cargo.toml
//! valgrind --error-exitcode=42 --track-origins=yes target/release/umbrald-ctime
//! ```
//!
//! The kfrag's secret scalar `rk` and every proof nonce `t` are marked undefined with memcheck's
//! client request `MAKE_MEM_UNDEFINED` as soon as they exist; memcheck then reports every
//! conditional jump, and every memory address, computed from them. Outputs that are public by
//! design (the cfrag's points and `z`) are marked defined again before they are inspected.
//! Outside valgrind the client requests are no-ops and the program only checks its results.
//!
//! `ctime leak` (or `CTIME_LEAK=1`) adds a deliberate branch and table index on `rk`, to show
//! that the check fails when a secret leaks.

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use k256::Scalar;
use umbral_pre::DefaultDeserialize;
use umbrald_core::backend::{CapsuleInput, CapsuleOutcome};
use umbrald_core::curve::{Affine, CompressedPoint};
use umbrald_core::{ctime_hook, CapsuleFrag, Engine, ReencryptItem, VerifiedKeyFrag};
use umbrald_gpu::host::HostExecutor;
use umbrald_gpu::{
    DeviceInfo, ExecError, FixedBase, GpuBackend, GpuOptions, KernelExecutor, PairProducts,
    Products, Timing,
};

/// Memcheck's client requests (`valgrind/memcheck.h`), issued with valgrind's "special
/// instruction" sequence; a no-op returning 0 when not run under valgrind.
#[allow(unsafe_code)]
mod memcheck {
    /// `VG_USERREQ_TOOL_BASE('M','C')`.
    const MC_BASE: u64 = ((b'M' as u64) << 24) | ((b'C' as u64) << 16);
    const MAKE_MEM_UNDEFINED: u64 = MC_BASE + 1;
    const MAKE_MEM_DEFINED: u64 = MC_BASE + 2;
    const GET_VBITS: u64 = MC_BASE + 8;
    /// `VG_USERREQ__RUNNING_ON_VALGRIND`.
    const RUNNING_ON_VALGRIND: u64 = 0x1001;

    #[cfg(target_arch = "x86_64")]
    fn request(default: u64, args: [u64; 6]) -> u64 {
        let result: u64;
        // SAFETY: the sequence rotates rdi by 128 bits in all (a no-op) and exchanges rbx with
        // itself; valgrind recognises it and serves the request described by `args`. It only
        // reads `args`.
        unsafe {
            std::arch::asm!(
                "rol rdi, 3", "rol rdi, 13", "rol rdi, 61", "rol rdi, 51",
                "xchg rbx, rbx",
                in("rax") args.as_ptr(),
                inout("rdx") default => result,
                options(nostack, preserves_flags),
            );
        }
        result
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn request(default: u64, _args: [u64; 6]) -> u64 {
        default
    }

    pub fn running_on_valgrind() -> bool {
        request(0, [RUNNING_ON_VALGRIND, 0, 0, 0, 0, 0]) != 0
    }

    /// Marks `value`'s bytes undefined: memcheck reports any branch or address derived from them.
    pub fn taint<T: ?Sized>(value: &T) {
        let (ptr, len) = (
            value as *const T as *const u8 as u64,
            std::mem::size_of_val(value),
        );
        request(0, [MAKE_MEM_UNDEFINED, ptr, len as u64, 0, 0, 0]);
    }

    /// Marks `value`'s bytes defined: public by design (declassified).
    pub fn declassify<T: ?Sized>(value: &T) {
        declassify_raw(value as *const T as *const u8, std::mem::size_of_val(value));
    }

    /// How many of `value`'s bytes are (partly) undefined, i.e. derived from a secret; 0 when
    /// not under valgrind. Reports nothing itself (unlike `CHECK_MEM_IS_DEFINED`).
    pub fn undefined_bytes<T: ?Sized>(value: &T) -> usize {
        let (ptr, len) = (
            value as *const T as *const u8 as u64,
            std::mem::size_of_val(value),
        );
        let mut vbits = vec![0u8; len];
        let ok = request(
            0,
            [GET_VBITS, ptr, vbits.as_mut_ptr() as u64, len as u64, 0, 0],
        );
        let vbits = std::hint::black_box(vbits);
        if ok != 1 {
            return 0;
        }
        vbits.iter().filter(|&&b| b != 0).count()
    }

    /// Marks `len` bytes at `ptr` defined (a client request: nothing is read or written).
    pub fn declassify_raw(ptr: *const u8, len: usize) {
        request(0, [MAKE_MEM_DEFINED, ptr as u64, len as u64, 0, 0, 0]);
    }
}

/// umbral-pre 0.11's golden keys, kfrags and capsule (the same fixtures umbrald-core's tests use).
const KEYS_JSON: &[u8] = include_bytes!("../../umbrald-core/tests/fixtures/umbral-0.11/keys.json");
const CAPSULE: &[u8] =
    include_bytes!("../../umbrald-core/tests/fixtures/umbral-0.11/capsule.msgpack");

fn taint_nonces(nonces: &[Scalar]) {
    memcheck::taint(nonces);
}

fn declassify_raw(ptr: *const u8, len: usize) {
    memcheck::declassify_raw(ptr, len);
}

fn main() {
    // Deliberate leaks, to prove the check fails: `leak` (or CTIME_LEAK=1), a branch and a
    // table index on `rk` in this program; `leak-vartime` (or CTIME_LEAK=vartime), k256's
    // variable-time `Scalar::invert_vartime` on `rk`.
    let mode = std::env::args()
        .nth(1)
        .or_else(|| {
            std::env::var("CTIME_LEAK").ok().map(|v| match v.as_str() {
                "1" => "leak".to_owned(),
                "vartime" => "leak-vartime".to_owned(),
                other => other.to_owned(),
            })
        })
        .unwrap_or_default();
    let (leak, leak_vartime) = match mode.as_str() {
        "" | "0" => (false, false),
        "leak" => (true, false),
        "leak-vartime" => (false, true),
        other => panic!("unknown mode {other:?}: expected leak or leak-vartime"),
    };
    // The deliberate leaks are caught on the CPU path alone.
    let skip_kernels = leak || leak_vartime;
    let under_valgrind = memcheck::running_on_valgrind();
    let keys: serde_json::Value = serde_json::from_slice(KEYS_JSON).expect("keys.json");
    let hex = |k: &str| hex::decode(keys[k].as_str().expect(k)).expect("hex");
    let capsule_bytes = CAPSULE.to_vec();
    let capsule = umbral_pre::Capsule::from_bytes(&capsule_bytes).expect("capsule");
    let pk = |k: &str| umbral_pre::PublicKey::try_from_compressed_bytes(&hex(k)).expect(k);
    let (alice_pk, bob_pk, verifying_pk) = (pk("alice_pk"), pk("bob_pk"), pk("verifying_pk"));

    let engine = Engine::cpu();
    // Public verification of the policies first (it does not read `rk`).
    let kfrags: Vec<std::sync::Arc<VerifiedKeyFrag>> = keys["kfrags"]
        .as_array()
        .expect("kfrags")
        .iter()
        .map(|k| {
            let kfrag = hex::decode(k.as_str().expect("hex")).expect("hex");
            engine
                .verify_policy(
                    &kfrag,
                    &hex("alice_pk"),
                    &hex("bob_pk"),
                    &hex("verifying_pk"),
                )
                .expect("fixture kfrag verifies")
        })
        .collect();
    // From here on every `rk` and every nonce is secret.
    for kfrag in &kfrags {
        memcheck::taint(ctime_hook::kfrag_key(kfrag.kfrag()));
    }
    ctime_hook::ON_NONCES
        .set(taint_nonces)
        .expect("hook set once");
    ctime_hook::ON_DECLASSIFY
        .set(declassify_raw)
        .expect("hook set once");

    if leak {
        // A deliberately secret-dependent branch and table index: must be reported.
        let rk = ctime_hook::kfrag_key(kfrags[0].kfrag()).to_bytes();
        let table: [u8; 256] = black_box(std::array::from_fn(|i| i as u8));
        let mut x = black_box(table[rk[31] as usize]);
        if rk[0] & 1 == 1 {
            x = x.wrapping_add(1);
        }
        black_box(x);
    }
    if leak_vartime {
        use k256::elliptic_curve::ops::Invert;
        let rk = ctime_hook::kfrag_key(kfrags[0].kfrag());
        black_box(bool::from(black_box(rk).invert_vartime().is_some()));
    }

    // Batch sizes chosen to reach every CPU path: 1 and 3 (the small-batch Jacobian path on
    // shared tables), 8 (the backend's Jacobian `mul_pairs` and fixed-base `t·U`), 64 (affine
    // lanes for `mul_pairs` and for `t·U`).
    let mut checked = reencrypt_and_check(
        &engine,
        &[1, 3, 8, 64],
        &kfrags,
        &capsule_bytes,
        &capsule,
        [&verifying_pk, &alice_pk, &bob_pk],
        under_valgrind,
    );

    // The CUDA kernels' code, compiled as host C++ (umbrald-gpu's host harness), behind the GPU
    // backend: its host-side packing of the secrets and the kernels' arithmetic on them. A batch
    // of 3 takes the step-by-step kernels (`mul_pairs`, fixed base), 8 and 64 the one-call
    // re-encryption kernels.
    if !skip_kernels {
        let tainted_calls = Arc::new(TaintedCalls::default());
        let gpu = GpuBackend::with_executor(
            Box::new(TaintWitness {
                kernels: HostExecutor::new(),
                tainted_calls: tainted_calls.clone(),
            }),
            DeviceInfo::emulated(),
            &GpuOptions::default(),
        );
        let gpu_engine = Engine::new(Arc::new(gpu));
        // The device's outputs are declassified as they are read back (they are the cfrag's
        // points), so the cfrags carry no taint here; the witness checks the inputs instead.
        checked += reencrypt_and_check(
            &gpu_engine,
            &[3, 8, 64],
            &kfrags,
            &capsule_bytes,
            &capsule,
            [&verifying_pk, &alice_pk, &bob_pk],
            false,
        );
        if under_valgrind {
            let [pairs, fixed, one_call] = tainted_calls.counts();
            assert!(
                pairs > 0 && fixed > 0 && one_call > 0,
                "the kernels did not all receive tainted secrets (pair calls {pairs}, \
                 fixed-base calls {fixed}, one-call re-encryptions {one_call})"
            );
        }
    }
    // The node's keys (umbrald-nucypher's NodeKeys): the whole struct tainted, its two public
    // keys declassified; the response signature (public by design) declassified before use.
    let node =
        umbrald_nucypher::NodeKeys::from_be_bytes(&[0x11; 32], &[0x22; 32]).expect("node keys");
    memcheck::taint(&node);
    memcheck::declassify(node.decrypting_public_key());
    memcheck::declassify(node.verifying_public_key());
    let response = node.sign_response(&[&capsule_bytes[..]], &[&capsule_bytes[..]]);
    memcheck::declassify(&response[..]);
    assert!(!response.is_empty());

    println!(
        "ctime: {checked} cfrags re-encrypted with tainted rk and t ({}), all verify with \
         umbral-pre{}",
        if skip_kernels {
            "CPU backend"
        } else {
            "CPU backend and host-compiled kernels"
        },
        if under_valgrind {
            " (under valgrind)"
        } else {
            " (not under valgrind: taint is a no-op)"
        }
    );
}

/// Re-encrypts batches of each size in `sizes` on `engine`, checks that the secrets' taint reached
/// every cfrag, declassifies the cfrags (public by design) and verifies them with umbral-pre.
/// Returns how many cfrags were checked.
fn reencrypt_and_check(
    engine: &Engine,
    sizes: &[usize],
    kfrags: &[std::sync::Arc<VerifiedKeyFrag>],
    capsule_bytes: &[u8],
    capsule: &umbral_pre::Capsule,
    [verifying_pk, alice_pk, bob_pk]: [&umbral_pre::PublicKey; 3],
    under_valgrind: bool,
) -> usize {
    let mut checked = 0;
    for &n in sizes {
        let items: Vec<ReencryptItem<'_>> = (0..n)
            .map(|i| ReencryptItem {
                capsule: capsule_bytes,
                kfrag: &kfrags[i % kfrags.len()],
            })
            .collect();
        let results = engine.reencrypt_batch(&items);
        for (i, result) in results.iter().enumerate() {
            // The taint must have reached the output, else the check proves nothing.
            if under_valgrind {
                assert!(
                    memcheck::undefined_bytes(result) > 0,
                    "{} batch {n} item {i}: the cfrag carries no taint: rk and t were not tainted",
                    engine.backend_name()
                );
            }
            // The cfrag (points, z) is public by design; its result tag is too.
            declassify_result(result);
            let cfrag = result.as_ref().expect("re-encryption succeeds");
            let bytes = cfrag.to_bytes();
            memcheck::declassify(&bytes[..]);
            check_cfrag(&bytes, capsule, verifying_pk, alice_pk, bob_pk, n, i);
            checked += 1;
        }
    }
    checked
}

/// Counts the kernel calls whose scalars arrived tainted, by kind.
#[derive(Default)]
struct TaintedCalls([AtomicUsize; 3]);

impl TaintedCalls {
    fn note(&self, kind: usize, scalars: &[impl Copy]) {
        if memcheck::undefined_bytes(scalars) > 0 {
            self.0[kind].fetch_add(1, Ordering::Relaxed);
        }
    }

    fn counts(&self) -> [usize; 3] {
        std::array::from_fn(|kind| self.0[kind].load(Ordering::Relaxed))
    }
}

/// The host-compiled kernels, noting which calls received tainted secrets: the witness that the
/// taint reached the kernel code (their outputs are declassified on the way back).
struct TaintWitness {
    kernels: HostExecutor,
    tainted_calls: Arc<TaintedCalls>,
}

impl KernelExecutor for TaintWitness {
    fn mul_pairs(
        &self,
        bases: &[Affine],
        scalars: &[[Scalar; 2]],
    ) -> Result<(PairProducts, Timing), ExecError> {
        self.tainted_calls.note(0, scalars);
        self.kernels.mul_pairs(bases, scalars)
    }

    fn mul_firsts(
        &self,
        bases: &[Affine],
        scalars: &[Scalar],
    ) -> Result<(PairProducts, Timing), ExecError> {
        self.kernels.mul_firsts(bases, scalars)
    }

    fn mul_fixed(
        &self,
        base: FixedBase,
        scalars: &[Scalar],
    ) -> Result<(Products, Timing), ExecError> {
        self.tainted_calls.note(1, scalars);
        self.kernels.mul_fixed(base, scalars)
    }

    fn reencrypt_capsules(
        &self,
        capsules: &[CapsuleInput],
        scalars: &[[Scalar; 2]],
    ) -> Result<(Vec<CapsuleOutcome>, Timing), ExecError> {
        self.tainted_calls.note(2, scalars);
        self.kernels.reencrypt_capsules(capsules, scalars)
    }

    fn decompress(&self, points: &[CompressedPoint]) -> Result<(Products, Timing), ExecError> {
        self.kernels.decompress(points)
    }
}

fn declassify_result(result: &Result<CapsuleFrag, umbrald_core::ItemError>) {
    memcheck::declassify(result);
}

fn check_cfrag(
    bytes: &[u8],
    capsule: &umbral_pre::Capsule,
    verifying_pk: &umbral_pre::PublicKey,
    alice_pk: &umbral_pre::PublicKey,
    bob_pk: &umbral_pre::PublicKey,
    n: usize,
    i: usize,
) {
    let parsed = umbral_pre::CapsuleFrag::from_bytes(bytes).expect("umbral-pre parses the cfrag");
    parsed
        .verify(capsule, verifying_pk, alice_pk, bob_pk)
        .map_err(|(e, _)| e)
        .unwrap_or_else(|e| panic!("batch {n} item {i}: cfrag does not verify: {e}"));
}
