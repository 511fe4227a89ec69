//! NVRTC, loaded at run time.

use std::ffi::{c_char, CString};

use cudarc::nvrtc::{result, sys};

/// Whether a `libnvrtc` can be loaded (searched by the sonames of cudarc's CUDA version
/// feature).
pub(crate) fn library_present() -> bool {
    // SAFETY: only tries to dlopen candidate library names; no symbol is called.
    unsafe { sys::is_culib_present() }
}

/// The loaded NVRTC's version as (major, minor); the library must be present
/// ([`library_present`]), else the bindings panic.
pub(crate) fn version() -> Option<(i32, i32)> {
    let (mut major, mut minor) = (0, 0);
    // SAFETY: two valid out-pointers that outlive the call.
    match unsafe { sys::nvrtcVersion(&mut major, &mut minor) } {
        sys::nvrtcResult::NVRTC_SUCCESS => Some((major, minor)),
        _ => None,
    }
}

/// What one compilation gave: the PTX (or NVRTC's error) and the compiler log.
pub(crate) struct Compiled {
    /// The PTX text (NUL stripped), or the result code of the failed step.
    pub ptx: Result<String, Step>,
    /// NVRTC's log.
    pub log: String,
}

/// Which NVRTC step failed, with its result code.
pub(crate) enum Step {
    /// `nvrtcCompileProgram`: the log has the compiler's messages.
    Compile(String),
    /// `nvrtcGetPTX`.
    GetPtx(String),
}

/// Compiles `source` named `name` with `options`. `Err` names a failed
/// `nvrtcCreateProgram`. The library must be present ([`library_present`]).
pub(crate) fn compile(
    source: &CString,
    name: &CString,
    options: &[String],
) -> Result<Compiled, String> {
    let prog = result::create_program(source, Some(name))
        .map_err(|e| format!("nvrtcCreateProgram: {e:?}"))?;
    // SAFETY: `prog` was just created and is destroyed exactly once below; `source` and
    // `name` outlive it.
    let compiled = unsafe { result::compile_program(prog, options) };
    // SAFETY: as above.
    let log = unsafe { result::get_program_log(prog) }
        .map(c_chars_to_string)
        .unwrap_or_default();
    let ptx = match compiled {
        // SAFETY: as above; compilation succeeded.
        Ok(()) => unsafe { result::get_ptx(prog) }
            .map(c_chars_to_string)
            .map_err(|e| Step::GetPtx(format!("{e:?}"))),
        Err(e) => Err(Step::Compile(format!("{e:?}"))),
    };
    // SAFETY: `prog` is valid and not used after this.
    let _ = unsafe { result::destroy_program(prog) };
    Ok(Compiled { ptx, log })
}

fn c_chars_to_string(chars: Vec<c_char>) -> String {
    let bytes: Vec<u8> = chars
        .into_iter()
        .map(|c| c as u8)
        .take_while(|b| *b != 0)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}
