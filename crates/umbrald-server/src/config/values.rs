//! The types of setting values, and how each is read from TOML, an environment variable or a
//! flag.

use std::net::SocketAddr;
use std::path::PathBuf;

use figment::Figment;
use serde::{Deserialize, Serialize};
use umbrald_gpu::HostWait;

/// Which elliptic-curve backend the engine runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// k256 on the worker threads.
    #[default]
    Cpu,
    /// The CUDA backend: starting fails when no usable GPU is found. The GPU worker takes every
    /// batch; the CPU workers serve only while the GPU is marked unhealthy.
    Gpu,
    /// The GPU when one is usable (GPU and CPU workers both take work, in proportion to their
    /// measured rates), else the CPU alone.
    Auto,
}

impl BackendKind {
    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Gpu => "gpu",
            Self::Auto => "auto",
        }
    }
}

/// `[gpu] profile`: a named set of tuning values, applied below the file, the environment and
/// the flags, so that any key set explicitly overrides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum GpuProfile {
    /// The built-in defaults.
    #[default]
    Default,
    /// The settings of the fastest measured GPU runs (docs/PERFORMANCE.md#gpu-end-to-end): three
    /// batches in
    /// flight over 8 host threads and 32 pipelines, 6 I/O threads, and a queue of 262,144 items.
    Throughput,
}

impl GpuProfile {
    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Throughput => "throughput",
        }
    }

    /// Writes the profile's values into `config`.
    pub(crate) fn apply(self, config: &mut super::Config) {
        match self {
            Self::Default => {}
            Self::Throughput => {
                config.server.io_threads = 6;
                config.batcher.max_queue_items = 262_144;
                config.gpu.tuning.batches_in_flight = 3;
                config.gpu.tuning.host_threads = 8;
                config.gpu.tuning.pipelines = 32;
            }
        }
    }
}

/// `[nucypher] policy_check`: whether a policy must be known paid before it is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PolicyCheck {
    /// Serve every policy whose kfrag authenticates.
    #[default]
    None,
    /// Serve a policy only after the upstream node served one of its requests.
    Upstream,
}

impl PolicyCheck {
    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Upstream => "upstream",
        }
    }
}

/// How a setting's text from an environment variable or a flag is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Syntax {
    /// Taken as a string as it is (paths, addresses, names); otherwise parsed as a value
    /// (numbers, booleans, `[1, 2]` lists).
    pub text: bool,
    /// The placeholder shown in `--help`.
    pub placeholder: &'static str,
    /// The accepted spellings, for names.
    pub choices: &'static [&'static str],
}

/// A type a setting can have.
pub trait SettingValue: Sized {
    /// How its text is read.
    const SYNTAX: Syntax;

    /// The value at `path` of `figment`.
    fn extract(figment: &Figment, path: &str) -> Result<Self, Box<figment::Error>>;
}

const fn parsed(placeholder: &'static str) -> Syntax {
    Syntax {
        text: false,
        placeholder,
        choices: &[],
    }
}

const fn text(placeholder: &'static str, choices: &'static [&'static str]) -> Syntax {
    Syntax {
        text: true,
        placeholder,
        choices,
    }
}

macro_rules! setting_values {
    ($($ty:ty => $syntax:expr;)*) => {$(
        impl SettingValue for $ty {
            const SYNTAX: Syntax = $syntax;

            fn extract(figment: &Figment, path: &str) -> Result<Self, Box<figment::Error>> {
                figment.extract_inner(path).map_err(Box::new)
            }
        }
    )*};
}

setting_values! {
    usize => parsed("N");
    u64 => parsed("N");
    u32 => parsed("N");
    i32 => parsed("N");
    bool => parsed("BOOL");
    Vec<usize> => parsed("[N, ...]");
    Vec<String> => parsed("[\"TEXT\", ...]");
    String => text("TEXT", &[]);
    PathBuf => text("PATH", &[]);
    Option<PathBuf> => text("PATH", &[]);
    Option<String> => text("TEXT", &[]);
    SocketAddr => text("ADDR", &[]);
    Option<SocketAddr> => text("ADDR", &[]);
    BackendKind => text("KIND", &["cpu", "gpu", "auto"]);
    GpuProfile => text("PROFILE", &["default", "throughput"]);
    PolicyCheck => text("CHECK", &["none", "upstream"]);
}

impl SettingValue for HostWait {
    const SYNTAX: Syntax = text("WAIT", &["block", "yield", "spin"]);

    fn extract(figment: &Figment, path: &str) -> Result<Self, Box<figment::Error>> {
        let spelling: String = figment.extract_inner(path).map_err(Box::new)?;
        spelling.parse().map_err(|why: String| {
            let mut error = figment::Error::from(why).with_path(path);
            error.metadata = figment.find_metadata(path).cloned();
            Box::new(error)
        })
    }
}

/// Serializes a value by its `Display` spelling (for library types without serde).
pub(crate) fn by_display<T: std::fmt::Display, S: serde::Serializer>(
    value: &T,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

/// Reads a SHA-256 written as 64 hex digits, in either case, optionally with `:` separators
/// and a `sha256:` prefix (fingerprints of certificates and public keys).
pub fn parse_sha256_hex(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    let text = text.strip_prefix("sha256:").unwrap_or(text);
    let digits: String = text.chars().filter(|c| *c != ':').collect();
    let bytes = hex::decode(digits).ok()?;
    bytes.try_into().ok()
}
