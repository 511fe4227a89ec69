//! Server configuration: defaults < `[gpu] profile` < TOML file < `UMBRALD_*` environment <
//! flags.
//!
//! Every setting is declared once, in `sections.rs`: its field, default, TOML key, environment
//! variables and, for operational settings only, its flag. [`Config::load`] merges the layers
//! (with figment), reads every value, refuses unknown keys and checks ranges, and reports every
//! problem at once, each naming where its value came from: file and key, environment variable
//! or flag.
//!
//! This module is a leaf of the crate: it uses nothing else from it.

mod error;
mod flags;
mod layers;
mod sections;
mod setting;
mod validate;
mod values;

#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Serialize;

pub use error::{ConfigError, Origin, Problem, Problems};
pub use flags::Overrides;
pub use sections::{
    AccessSection, AuditSection, BatcherSection, GpuSection, GpuTuning, LimitsSection, LogSection,
    MetricsSection, NucypherSection, ServerSection, TlsSection, WorkersSection,
};
pub use setting::{Section, Setting};
pub use validate::MAX_GPU_PIPELINES;
pub use values::{parse_sha256_hex, BackendKind, GpuProfile, PolicyCheck, SettingValue, Syntax};

use layers::{Inputs, Layers, Toml};

/// Every section: its TOML table and its settings.
pub(crate) const SECTIONS: &[(&str, &[Setting])] = &[
    (ServerSection::PATH, ServerSection::SETTINGS),
    (TlsSection::PATH, TlsSection::SETTINGS),
    (LimitsSection::PATH, LimitsSection::SETTINGS),
    (AccessSection::PATH, AccessSection::SETTINGS),
    (BatcherSection::PATH, BatcherSection::SETTINGS),
    (WorkersSection::PATH, WorkersSection::SETTINGS),
    (GpuSection::PATH, GpuSection::SETTINGS),
    (GpuTuning::PATH, GpuTuning::SETTINGS),
    (NucypherSection::PATH, NucypherSection::SETTINGS),
    (MetricsSection::PATH, MetricsSection::SETTINGS),
    (AuditSection::PATH, AuditSection::SETTINGS),
    (LogSection::PATH, LogSection::SETTINGS),
];

/// Every setting, in the order of the sections.
pub fn settings() -> impl Iterator<Item = &'static Setting> {
    SECTIONS.iter().flat_map(|(_, settings)| settings.iter())
}

/// Most pipelines chosen for `[gpu.tuning] pipelines = 0` (one per host thread up to this).
const DEFAULT_MAX_GPU_PIPELINES: usize = 8;

/// The whole server configuration. Every section and field has a default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Config {
    /// Listening address, data directory, runtime.
    pub server: ServerSection,
    /// Certificates and optional mutual TLS.
    pub tls: TlsSection,
    /// Per-request and per-connection limits.
    pub limits: LimitsSection,
    /// Allowed clients and per-client limits (reloaded on SIGHUP).
    pub access: AccessSection,
    /// The dynamic batcher.
    pub batcher: BatcherSection,
    /// The worker pool and its backend.
    pub workers: WorkersSection,
    /// The GPU backend (used when `workers.backend` is `gpu` or `auto`).
    pub gpu: GpuSection,
    /// The NuCypher HTTPS endpoint and the node it fronts.
    pub nucypher: NucypherSection,
    /// The metrics and health HTTP endpoint.
    pub metrics: MetricsSection,
    /// The audit log.
    pub audit: AuditSection,
    /// Logging.
    pub log: LogSection,
}

impl Config {
    /// Defaults, the profile, the TOML file named by `overrides.config` (if any), the
    /// `UMBRALD_*` environment and the flags in `overrides`; validated.
    pub fn load(overrides: &Overrides) -> Result<Self, ConfigError> {
        let env = |name: &str| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned());
        Self::load_with_env(overrides, &env)
    }

    /// [`Config::load`] with the environment variables that `env` returns instead of the
    /// process's.
    pub fn load_with_env(
        overrides: &Overrides,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let text = match &overrides.config {
            Some(path) => Some(read_file(path)?),
            None => None,
        };
        let toml = match (&overrides.config, &text) {
            (Some(path), Some(text)) => Toml::File(path, text),
            _ => Toml::None,
        };
        Self::read(
            &Inputs {
                toml,
                env,
                flags: &overrides.flags,
            },
            true,
        )
    }

    /// Reads a TOML file on top of the defaults and its profile (not validated).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = read_file(path)?;
        Self::read(&Self::toml_only(Toml::File(path, &text)), false)
    }

    /// Parses TOML text on top of the defaults and its profile (not validated).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        Self::read(&Self::toml_only(Toml::Text(text)), false)
    }

    fn toml_only(toml: Toml<'_>) -> Inputs<'_> {
        fn no_env(_: &str) -> Option<String> {
            None
        }
        Inputs {
            toml,
            env: &no_env,
            flags: &[],
        }
    }

    /// Merges `inputs` over the defaults and reads every setting; every problem at once.
    fn read(inputs: &Inputs<'_>, validate: bool) -> Result<Self, ConfigError> {
        let layers = Layers::new(inputs);
        let mut problems = layers.unreadable();
        if !problems.is_empty() {
            return Err(ConfigError::Invalid(Problems(problems)));
        }
        let config = Self {
            server: Section::extract(&layers, &mut problems),
            tls: Section::extract(&layers, &mut problems),
            limits: Section::extract(&layers, &mut problems),
            access: Section::extract(&layers, &mut problems),
            batcher: Section::extract(&layers, &mut problems),
            workers: Section::extract(&layers, &mut problems),
            gpu: Section::extract(&layers, &mut problems),
            nucypher: Section::extract(&layers, &mut problems),
            metrics: Section::extract(&layers, &mut problems),
            audit: Section::extract(&layers, &mut problems),
            log: Section::extract(&layers, &mut problems),
        };
        problems.extend(layers.unknown_keys(SECTIONS));
        if validate {
            // A key that could not be read holds its default: no range check on it.
            let unread: HashSet<String> = problems
                .iter()
                .flat_map(|p| p.sources.iter().map(|(key, _)| key.clone()))
                .collect();
            for violation in validate::violations(&config) {
                if violation.keys.iter().any(|key| unread.contains(*key)) {
                    continue;
                }
                problems.push(Problem {
                    message: violation.message.to_owned(),
                    sources: violation
                        .keys
                        .iter()
                        .map(|key| ((*key).to_owned(), layers.origin(key)))
                        .collect(),
                });
            }
        }
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid(Problems(problems)))
        }
    }

    /// The configuration as TOML (what `umbrald config check` prints).
    pub fn to_toml(&self) -> String {
        // Plain structs of strings, numbers, paths and addresses serialize unless a path is not
        // UTF-8; the error is shown then.
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# not representable: {e}"))
    }

    /// Checks ranges and consistency; every violation at once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let problems: Vec<Problem> = validate::violations(self)
            .into_iter()
            .map(|v| Problem {
                message: v.message.to_owned(),
                sources: Vec::new(),
            })
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(Problems(problems)))
        }
    }

    /// Host threads of the GPU worker: `gpu.tuning.host_threads`, or one per worker thread for
    /// 0.
    pub fn gpu_host_threads(&self) -> usize {
        match self.gpu.tuning.host_threads {
            0 => self.worker_threads(),
            n => n,
        }
    }

    /// `[gpu]` with `tuning.host_threads` and `tuning.pipelines` resolved.
    pub fn gpu_section(&self) -> GpuSection {
        let host_threads = self.gpu_host_threads();
        let mut gpu = self.gpu.clone();
        gpu.tuning.host_threads = host_threads;
        gpu.tuning.pipelines = match gpu.tuning.pipelines {
            0 => host_threads.clamp(1, DEFAULT_MAX_GPU_PIPELINES),
            n => n,
        };
        gpu
    }

    /// Threads of the async runtime: `server.io_threads`, or for 0 with the CPU backend one
    /// per 8 available cores, 1 to 4 (every extra one costs the workers CPU), and with `gpu` or
    /// `auto` three per 8 cores, 1 to 8 (the QUIC side binds there;
    /// docs/PERFORMANCE.md#settings-measured).
    pub fn io_threads(&self) -> usize {
        match self.server.io_threads {
            0 => auto_io_threads(
                std::thread::available_parallelism().map_or(1, |n| n.get()),
                self.workers.backend,
            ),
            n => n,
        }
    }

    /// Worker threads to start: the configured count, else one per listed core, else one per
    /// available core.
    pub fn worker_threads(&self) -> usize {
        if self.workers.threads > 0 {
            self.workers.threads
        } else if !self.workers.cores.is_empty() {
            self.workers.cores.len()
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    }

    /// A configuration for tests and the in-process `demo`: ephemeral ports on loopback, the
    /// given data directory, `threads` workers, metrics on an ephemeral port.
    pub fn ephemeral(data_dir: impl Into<PathBuf>, threads: usize) -> Self {
        let mut config = Self::default();
        config.server.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.server.data_dir = data_dir.into();
        config.server.shutdown_grace_ms = 5_000;
        config.workers.threads = threads.max(1);
        config.metrics.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config
    }
}

/// The automatic I/O thread count for `cores` available cores serving with `backend`.
fn auto_io_threads(cores: usize, backend: BackendKind) -> usize {
    match backend {
        BackendKind::Cpu => (cores / 8).clamp(1, 4),
        BackendKind::Gpu | BackendKind::Auto => (3 * cores / 8).clamp(1, 8),
    }
}

fn read_file(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })
}
