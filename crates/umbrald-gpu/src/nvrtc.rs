//! Compiling the embedded kernels with NVRTC (loaded at run time; no CUDA toolkit at build time).

use std::ffi::{c_char, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use cudarc::nvrtc::{result, sys};

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
    // SAFETY: only tries to dlopen candidate library names; no symbol is called.
    unsafe { sys::is_culib_present() }
}

/// The loaded NVRTC's version as (major, minor), if it can be loaded.
pub fn nvrtc_version() -> Option<(i32, i32)> {
    if !nvrtc_available() {
        return None;
    }
    let (mut major, mut minor) = (0, 0);
    // SAFETY: two valid out-pointers; the library is loadable (checked above).
    let call = catch_unwind(AssertUnwindSafe(|| unsafe {
        sys::nvrtcVersion(&mut major, &mut minor)
    }));
    match call {
        Ok(sys::nvrtcResult::NVRTC_SUCCESS) => Some((major, minor)),
        _ => None,
    }
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
    let prog = result::create_program(&src, Some(&name))
        .map_err(|e| NvrtcError::Api(format!("nvrtcCreateProgram: {e:?}")))?;
    // SAFETY: `prog` was just created and is destroyed exactly once below; `src` and `name`
    // outlive it.
    let compiled = unsafe { result::compile_program(prog, options) };
    // SAFETY: as above.
    let log = unsafe { result::get_program_log(prog) }
        .map(c_chars_to_string)
        .unwrap_or_default();
    let ptx = match compiled {
        // SAFETY: as above; compilation succeeded.
        Ok(()) => unsafe { result::get_ptx(prog) }
            .map(c_chars_to_string)
            .map_err(|e| NvrtcError::Api(format!("nvrtcGetPTX: {e:?}"))),
        Err(e) => Err(NvrtcError::Failed {
            unit,
            code: format!("{e:?}"),
            log: log.clone(),
        }),
    };
    // SAFETY: `prog` is valid and not used after this.
    let _ = unsafe { result::destroy_program(prog) };
    Ok(CompiledUnit {
        unit,
        ptx: ptx?,
        log,
    })
}

fn c_chars_to_string(chars: Vec<c_char>) -> String {
    let bytes: Vec<u8> = chars
        .into_iter()
        .map(|c| c as u8)
        .take_while(|b| *b != 0)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
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
