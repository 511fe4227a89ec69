//! Why the GPU backend is not available.

/// Why [`crate::GpuBackend::probe`] found no usable GPU. Its `Display` is one line for the
/// start-up log; the caller then serves with the CPU backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GpuUnavailable {
    /// `libcuda` could not be loaded: no NVIDIA driver on this machine.
    #[error("no CUDA driver (libcuda not found)")]
    NoDriver,
    /// The driver reports no device with the requested ordinal.
    #[error("no CUDA device {requested} (the driver reports {count})")]
    NoDevice {
        /// The ordinal asked for.
        requested: usize,
        /// Devices present.
        count: usize,
    },
    /// A driver call failed while setting up.
    #[error("CUDA driver error during {stage}: {message}")]
    Driver {
        /// What was being done.
        stage: &'static str,
        /// The driver's error.
        message: String,
    },
    /// `libnvrtc` could not be loaded and no PTX file was given.
    #[error("NVRTC not found (install the CUDA NVRTC library or pass a PTX file)")]
    NoNvrtc,
    /// NVRTC rejected the kernels.
    #[error("kernel compilation failed: {0}")]
    Compile(String),
    /// The PTX file could not be read.
    #[error("cannot read PTX file {path}: {message}")]
    PtxFile {
        /// The file.
        path: String,
        /// The I/O error.
        message: String,
    },
    /// The kernels ran but gave wrong answers on known inputs.
    #[error("GPU self-test failed: {0}")]
    SelfTest(String),
    /// The CUDA libraries panicked (for example a missing driver symbol).
    #[error("CUDA library panicked: {0}")]
    Panicked(String),
}
