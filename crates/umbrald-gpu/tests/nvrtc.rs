//! Compiles every kernel with NVRTC for sm_90 (no GPU needed, only libnvrtc). Ignored by default
//! because most machines have no libnvrtc; `scripts/check-kernels-nvrtc.sh` installs NVRTC from
//! PyPI and runs it with `--ignored`. When run, it fails if NVRTC cannot be loaded.

use umbrald_gpu::nvrtc::{compile_all, nvrtc_available, nvrtc_version};

#[test]
#[ignore = "needs libnvrtc: run scripts/check-kernels-nvrtc.sh"]
fn nvrtc_compiles_kernels() {
    assert!(
        nvrtc_available(),
        "libnvrtc could not be loaded: put its folder on LD_LIBRARY_PATH \
         (scripts/check-kernels-nvrtc.sh does this)"
    );
    let (major, minor) = nvrtc_version().expect("NVRTC version");
    eprintln!("NVRTC {major}.{minor}");
    // compute_90: the PTX the backend loads. sm_90: also runs ptxas, which checks the inline PTX
    // and reports registers and spills. Both builds of the pair kernel: tables in local memory
    // (default) and in shared memory (`[gpu] table_in_shared`).
    for (arch, variant) in [
        ("compute_90", None),
        ("sm_90", None),
        ("sm_90", Some("-DUMB_TABLE_SHARED=1")),
    ] {
        let mut opts = vec!["--ptxas-options=-v"];
        opts.extend(variant);
        let units = compile_all(arch, &opts)
            .unwrap_or_else(|e| panic!("kernels do not compile for {arch} {variant:?}:\n{e}"));
        for unit in units {
            assert!(
                unit.ptx.contains(".entry umb_mul_pairs"),
                "{arch}: umb_mul_pairs missing"
            );
            assert!(
                unit.ptx.contains(".entry umb_mul_fixed"),
                "{arch}: umb_mul_fixed missing"
            );
            assert!(
                unit.ptx.contains(".entry umb_decompress"),
                "{arch}: umb_decompress missing"
            );
            assert!(
                unit.ptx.contains("madc.hi.cc.u32"),
                "{arch}: carry chains not in the PTX"
            );
            assert_eq!(
                unit.ptx.contains("umb_table_smem"),
                variant.is_some(),
                "{arch} {variant:?}: shared-memory tables where not asked, or missing"
            );
            eprintln!(
                "{arch} {variant:?} {}: {} bytes of PTX",
                unit.unit,
                unit.ptx.len()
            );
            if !unit.log.trim().is_empty() {
                eprintln!("{}", unit.log.trim());
            }
        }
    }
}
