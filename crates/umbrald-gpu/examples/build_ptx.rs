//! Compiles the embedded kernels with NVRTC and writes the PTX, for hosts that should load PTX
//! built beforehand (`GpuOptions::ptx_file`) instead of running NVRTC at start-up.
//!
//! ```text
//! cargo run -p umbrald-gpu --example build_ptx -- OUT.ptx [ARCH [NVRTC-OPTION...]]
//! ```
//! ARCH defaults to compute_90; add `-DUMB_TABLE_SHARED=1` for the shared-memory tables (the
//! default placement; a server runs the build its PTX file holds). With `sm_90` and
//! `--ptxas-options=-v` NVRTC also runs ptxas and the log (printed) reports registers, stack
//! and spills, e.g. for a variant compiled with `-DUMB_POINT_FN=UMB_DEVICE`.
//! libnvrtc must be loadable (e.g. `LD_LIBRARY_PATH` pointing at the `nvidia-cuda-nvrtc-cu12`
//! wheel's `nvidia/cuda_nvrtc/lib`). PTX for compute_XY loads on any device of compute
//! capability X.Y or newer whose driver is at least as new as the NVRTC that built it.

use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(out) = args.next() else {
        eprintln!("usage: build_ptx OUT.ptx [ARCH [NVRTC-OPTION...]]");
        return ExitCode::from(2);
    };
    let arch = args.next().unwrap_or_else(|| "compute_90".to_owned());
    let extra: Vec<String> = args.collect();
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let start = Instant::now();
    let units = match umbrald_gpu::nvrtc::compile_all(&arch, &extra) {
        Ok(units) => units,
        Err(e) => {
            eprintln!("NVRTC failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    for unit in &units {
        if !unit.log.trim().is_empty() {
            eprintln!("{}: {}", unit.unit, unit.log.trim());
        }
    }
    let ptx: Vec<String> = units.into_iter().map(|u| u.ptx).collect();
    if let Err(e) = std::fs::write(&out, ptx.join("\n")) {
        eprintln!("cannot write {out}: {e}");
        return ExitCode::FAILURE;
    }
    eprintln!(
        "wrote {out} for {arch} in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}
