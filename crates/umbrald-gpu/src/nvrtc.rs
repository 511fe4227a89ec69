//! Compiling the embedded kernels with NVRTC (loaded at run time; no CUDA toolkit at build time).

use std::ffi::CString;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::ffi::nvrtc::{self as sys, Step};
use crate::source::{expand_unit, SourceError, KERNEL_UNITS};

/// One translation unit compiled by NVRTC.
#[derive(Debug, Clone)]
pub struct CompiledUnit {
    /// The `.cu` file.
    pub unit: &'static str,
    /// The PTX text (NUL stripped).
    pub ptx: String,
    /// NVRTC's log: warnings, and with `--ptxas-options=-v` the register and spill report.
    pub log: String,
}

/// Why NVRTC did not produce PTX.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum NvrtcError {
    /// `libnvrtc` could not be loaded.
    #[error("libnvrtc not found")]
    Missing,
    /// The sources could not be assembled.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The compiler rejected a unit; `log` has its messages.
    #[error("{unit} failed to compile ({code}):\n{log}")]
    Failed {
        /// The `.cu` file.
        unit: &'static str,
        /// NVRTC's result code.
        code: String,
        /// The compiler log.
        log: String,
    },
    /// An NVRTC call other than compilation failed.
    #[error("NVRTC call failed: {0}")]
    Api(String),
    /// The NVRTC bindings panicked (for example a symbol missing from an old library).
    #[error("NVRTC panicked: {0}")]
    Panicked(String),
}

/// Whether a `libnvrtc` can be loaded (searched by the sonames of cudarc's CUDA version feature).
pub fn nvrtc_available() -> bool {
    sys::library_present()
}

/// The loaded NVRTC's version as (major, minor), if it can be loaded.
pub fn nvrtc_version() -> Option<(i32, i32)> {
    if !nvrtc_available() {
        return None;
    }
    catch_unwind(sys::version).ok().flatten()
}

/// Compiles every unit of [`KERNEL_UNITS`] for `arch` (an NVRTC `--gpu-architecture` value such
/// as `compute_90` for PTX to load, or `sm_90` to also run ptxas), with `extra` options.
pub fn compile_all(arch: &str, extra: &[&str]) -> Result<Vec<CompiledUnit>, NvrtcError> {
    KERNEL_UNITS
        .iter()
        .map(|unit| compile_unit(unit, arch, extra))
        .collect()
}

/// Compiles one unit; see [`compile_all`].
pub fn compile_unit(
    unit: &'static str,
    arch: &str,
    extra: &[&str],
) -> Result<CompiledUnit, NvrtcError> {
    if !nvrtc_available() {
        return Err(NvrtcError::Missing);
    }
    let source = expand_unit(unit)?;
    let mut options = vec![
        format!("--gpu-architecture={arch}"),
        "--generate-line-info".to_owned(),
    ];
    options.extend(extra.iter().map(|o| (*o).to_owned()));
    match catch_unwind(AssertUnwindSafe(|| compile_source(unit, &source, &options))) {
        Ok(result) => result,
        Err(panic) => Err(NvrtcError::Panicked(panic_message(panic.as_ref()))),
    }
}

fn compile_source(
    unit: &'static str,
    source: &str,
    options: &[String],
) -> Result<CompiledUnit, NvrtcError> {
    let src = CString::new(source).map_err(|_| NvrtcError::Api("NUL in kernel source".into()))?;
    let name = CString::new(unit).map_err(|_| NvrtcError::Api("NUL in unit name".into()))?;
    let compiled = sys::compile(&src, &name, options).map_err(NvrtcError::Api)?;
    let ptx = compiled.ptx.map_err(|step| match step {
        Step::Compile(code) => NvrtcError::Failed {
            unit,
            code,
            log: compiled.log.clone(),
        },
        Step::GetPtx(code) => NvrtcError::Api(format!("nvrtcGetPTX: {code}")),
    })?;
    Ok(CompiledUnit {
        unit,
        ptx,
        log: compiled.log,
    })
}

/// A panic payload as text.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_owned()
    }
}
