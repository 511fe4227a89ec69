//! The kernel sources, embedded at build time, and the include expansion that turns a `.cu` file
//! into the single translation unit NVRTC compiles.
//!
//! NVRTC gets no file system: every `#include "name"` of a kernel file is replaced by the named
//! embedded file (once; later includes of the same file are dropped), with `#line` markers so
//! that compiler messages name the original file and line. `#include <...>` lines are left
//! alone; the kernels only have one (`<assert.h>`), in a host-only branch.

/// Every kernel file, by name, as embedded in this binary.
pub const KERNEL_FILES: &[(&str, &str)] = &[
    (
        "umb_types.cuh",
        include_str!("../../../kernels/umb_types.cuh"),
    ),
    ("carry.cuh", include_str!("../../../kernels/carry.cuh")),
    ("field.cuh", include_str!("../../../kernels/field.cuh")),
    ("point.cuh", include_str!("../../../kernels/point.cuh")),
    ("scalar.cuh", include_str!("../../../kernels/scalar.cuh")),
    (
        "scalar_mul.cuh",
        include_str!("../../../kernels/scalar_mul.cuh"),
    ),
    ("finish.cuh", include_str!("../../../kernels/finish.cuh")),
    ("reenc.cuh", include_str!("../../../kernels/reenc.cuh")),
    (
        "scalar_mul.cu",
        include_str!("../../../kernels/scalar_mul.cu"),
    ),
];

/// The translation units (`.cu` files) the backend compiles; each defines `extern "C"`
/// kernels.
pub const KERNEL_UNITS: &[&str] = &["scalar_mul.cu"];

/// Kernel entry point: `umb_mul_pairs(bases, scalars, out, n, second)`.
pub const FN_MUL_PAIRS: &str = "umb_mul_pairs";
/// Kernel entry point: `umb_mul_fixed(table, scalars, out, n)`.
pub const FN_MUL_FIXED: &str = "umb_mul_fixed";
/// Kernel entry point: `umb_decompress(in, out, n)`.
pub const FN_DECOMPRESS: &str = "umb_decompress";
/// Kernel entry point: `umb_reenc_prep(in, pair_in, firsts_in, prep, c)`, one thread per
/// capsule, no barrier, the first launch of a re-encryption call: from `in` (51 rows per
/// capsule: `E`'s and `V`'s x and parity, `s`, `rk`, `t`, `U1`'s packed bytes) decompresses `E`
/// and `V` (a point that does not decompress becomes G and sets bit 8 in `prep`), writes the
/// `umb_mul_pairs` input for `2c` items (`E_j`, `V_j`, scalars `[rk_j, t_j]`) into `pair_in`,
/// the `second = 0` input for `c` items (`E_j`, `h_j = H(E_j, V_j)`, scalar rows 0..7 only)
/// into `firsts_in`, and one status word per capsule into `prep`. Layout: `kernels/reenc.cuh`.
pub const FN_REENC_PREP: &str = "umb_reenc_prep";
/// Kernel entry point: `umb_reenc_finish(in, pair_in, pair_out, firsts_out, g_out, u_out,
/// prep, out, c)`, one thread per capsule, no barrier, the last launch of a re-encryption call
/// (after `umb_mul_pairs` on `pair_in` and `firsts_in`, `umb_mul_fixed` with G's table on `s`
/// and with U's on `t`): checks `s·G = V + h·E` and writes 51 rows per capsule:
/// `E1 || V1 || E2 || V2 || U2 || z` (197 bytes, packed little-endian into 50 words) and a
/// status word (bit 0: an identity product, bit 1: a product off the curve, 4: the capsule's
/// equation fails, 8: from `prep`, `E` or `V` does not decompress). Layout:
/// `kernels/finish.cuh` and `kernels/reenc.cuh`.
pub const FN_REENC_FINISH: &str = "umb_reenc_finish";

/// Threads per block; must equal `UMB_BLOCK` in `umb_types.cuh` (a test checks it against the
/// host harness, which is compiled from that header).
pub const BLOCK_THREADS: u32 = 128;

/// Why a kernel file could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// A `.cu` file or an `#include "..."` names a file that is not embedded.
    #[error("kernel file {0:?} is not embedded")]
    Missing(String),
    /// Includes nest deeper than any real header chain (a cycle without include guards).
    #[error("include depth exceeded at {0:?}")]
    TooDeep(String),
}

/// Returns the embedded text of kernel file `name`.
pub fn kernel_file(name: &str) -> Option<&'static str> {
    KERNEL_FILES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| *text)
}

/// Expands `unit` (a `.cu` file name) and its quoted includes into one source string.
pub fn expand_unit(unit: &str) -> Result<String, SourceError> {
    let mut out = String::new();
    let mut seen: Vec<&str> = Vec::new();
    expand_into(unit, &mut out, &mut seen, 0)?;
    Ok(out)
}

fn expand_into<'a>(
    name: &'a str,
    out: &mut String,
    seen: &mut Vec<&'a str>,
    depth: usize,
) -> Result<(), SourceError> {
    const MAX_DEPTH: usize = 16;
    if depth > MAX_DEPTH {
        return Err(SourceError::TooDeep(name.to_owned()));
    }
    let (file_name, text) = KERNEL_FILES
        .iter()
        .find(|(n, _)| *n == name)
        .ok_or_else(|| SourceError::Missing(name.to_owned()))?;
    seen.push(file_name);
    out.push_str(&format!("#line 1 \"{file_name}\"\n"));
    for (index, line) in text.lines().enumerate() {
        match quoted_include(line) {
            Some(inner) => {
                if !seen.contains(&inner) {
                    let inner_name = KERNEL_FILES
                        .iter()
                        .map(|(n, _)| *n)
                        .find(|n| *n == inner)
                        .ok_or_else(|| SourceError::Missing(inner.to_owned()))?;
                    expand_into(inner_name, out, seen, depth + 1)?;
                }
                // Back in this file: the next line is index + 2 (1-based).
                out.push_str(&format!("#line {} \"{file_name}\"\n", index + 2));
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    Ok(())
}

/// `#include "name"` -> `Some(name)`; anything else -> `None`.
fn quoted_include(line: &str) -> Option<&str> {
    let rest = line.trim_start().strip_prefix('#')?.trim_start();
    let rest = rest.strip_prefix("include")?.trim_start();
    let rest = rest.strip_prefix('"')?;
    let end = rest.find('"')?;
    Some(&rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unit_expands_without_quoted_includes() {
        for unit in KERNEL_UNITS {
            let src = expand_unit(unit).expect("expands");
            assert!(src.lines().all(|l| quoted_include(l).is_none()), "{unit}");
            assert!(
                src.contains(FN_MUL_PAIRS)
                    && src.contains(FN_MUL_FIXED)
                    && src.contains(FN_DECOMPRESS)
                    && src.contains(FN_REENC_PREP)
                    && src.contains(FN_REENC_FINISH)
            );
            // Each header appears once.
            assert_eq!(src.matches("#define UMB_FIELD_CUH").count(), 1);
            assert_eq!(src.matches("#define UMB_FINISH_CUH").count(), 1);
            assert_eq!(src.matches("#define UMB_REENC_CUH").count(), 1);
        }
    }

    #[test]
    fn quoted_include_parses_only_quoted_forms() {
        assert_eq!(quoted_include("#include \"field.cuh\""), Some("field.cuh"));
        assert_eq!(quoted_include("  #  include \"a.cuh\" // x"), Some("a.cuh"));
        assert_eq!(quoted_include("#include <assert.h>"), None);
        assert_eq!(quoted_include("// #include \"x\""), None);
    }

    #[test]
    fn missing_unit_is_an_error() {
        assert_eq!(
            expand_unit("nope.cu"),
            Err(SourceError::Missing("nope.cu".to_owned()))
        );
    }

    #[test]
    fn every_kernel_file_on_disk_is_embedded() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../kernels");
        for entry in std::fs::read_dir(&dir).expect("kernels/ exists") {
            let name = entry
                .expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned();
            if name.ends_with(".cuh") || name.ends_with(".cu") {
                let on_disk = std::fs::read_to_string(dir.join(&name)).expect("readable");
                assert_eq!(
                    kernel_file(&name),
                    Some(on_disk.as_str()),
                    "{name} not embedded"
                );
            }
        }
    }

    #[test]
    fn block_size_matches_header() {
        let header = kernel_file("umb_types.cuh").expect("embedded");
        assert!(header.contains(&format!("#define UMB_BLOCK {BLOCK_THREADS}\n")));
    }
}
