//! The CUDA executor: driver probing, module loading, and the double-buffered launch pipeline.
//!
//! One executor owns a context on one device, the two kernels, the fixed-base tables in device
//! memory, and one or more *pipelines* of two *lanes* (`GpuOptions::concurrent_calls`). A lane
//! is a stream with its own pinned host buffers and device buffers sized for one launch. A call
//! takes a free pipeline (or waits for one); its batch is cut into launches of at most
//! `chunk_items`, launch `c` going to lane `c % 2`, so the copies of one launch overlap the
//! kernel of the other. Before a lane takes a new launch, the previous one is collected
//! (stream synchronized, timings read, results unpacked). Calls on different pipelines run on
//! the device at the same time. Secret scalars are wiped from the pinned buffer after each
//! launch and from device memory right after the copy back.

use std::fmt;
use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::Duration;

use cpu_time::ThreadTime;

use cudarc::driver::{
    sys, CudaContext, CudaEvent, CudaFunction, CudaSlice, CudaStream, DriverError, PinnedHostSlice,
};
use cudarc::nvrtc::Ptx;
use k256::Scalar;
use umbrald_core::backend::{CapsuleInput, CapsuleOutcome};
use umbrald_core::curve::{Affine, CompressedPoint};
use zeroize::Zeroize;

use crate::error::GpuUnavailable;
use crate::exec::{ExecError, KernelExecutor, PairProducts, Products, Timing};
use crate::ffi::cuda::{self, describe};
use crate::layout::{self, LayoutError};
use crate::nvrtc::{self, panic_message};
use crate::options::{GpuOptions, HostWait};
use crate::source::{
    BLOCK_THREADS, FN_DECOMPRESS, FN_MUL_FIXED, FN_MUL_PAIRS, FN_REENC_FINISH, FN_REENC_PREP,
};
use crate::table::{FixedBase, FixedBaseTable};

/// `UMB_TABLE_SMEM_BYTES` in scalar_mul.cuh: 8 affine entries of 16 words per thread.
const PAIRS_TABLE_SMEM_BYTES: u32 = 8 * 16 * BLOCK_THREADS * 4;
/// The pair kernel's static shared memory: the inversion tree, 2 * block field elements.
const PAIRS_TREE_SMEM_BYTES: u32 = 8 * 2 * BLOCK_THREADS * 4;

/// What [`crate::GpuBackend::probe`] found and how it got its kernels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// CUDA device ordinal.
    pub ordinal: usize,
    /// The device's name, as the driver reports it.
    pub name: String,
    /// Compute capability (major, minor).
    pub compute_capability: (i32, i32),
    /// Device memory in bytes.
    pub total_memory: usize,
    /// The driver's CUDA version, e.g. 13000 for 13.0 (0 when unknown).
    pub driver_version: i32,
    /// Where the kernels came from.
    pub kernels: KernelOrigin,
    /// Resident blocks of the pair kernel per SM (from its register and shared-memory use; 0
    /// when unknown).
    pub blocks_per_sm: u32,
    /// Items per kernel launch: `GpuOptions::chunk_items` rounded to whole waves of resident
    /// blocks, so that no launch ends with a partly filled wave (0 when unknown).
    pub launch_items: usize,
    /// Whether the pair kernel keeps its per-thread tables in shared memory: asked for with
    /// [`GpuOptions::table_in_shared`], and only when the device lets a block have that much
    /// shared memory (a PTX file's own build decides instead).
    pub table_in_shared: bool,
}

/// Where the loaded kernels came from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KernelOrigin {
    /// Compiled at start-up by NVRTC `version` for `arch`.
    Nvrtc {
        /// NVRTC (major, minor).
        version: (i32, i32),
        /// The `--gpu-architecture` used.
        arch: String,
    },
    /// Loaded from a PTX file.
    PtxFile(PathBuf),
    /// No device: the host-compiled kernels ([`crate::host::HostExecutor`]) or a test executor.
    Emulated,
}

impl fmt::Display for DeviceInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (major, minor) = self.compute_capability;
        write!(
            f,
            "CUDA device {} \"{}\" (sm_{major}{minor}, {:.1} GiB, driver CUDA {}.{}), kernels ",
            self.ordinal,
            self.name,
            self.total_memory as f64 / f64::from(1u32 << 30),
            self.driver_version / 1000,
            (self.driver_version % 1000) / 10,
        )?;
        match &self.kernels {
            KernelOrigin::Nvrtc {
                version: (a, b),
                arch,
            } => write!(f, "from NVRTC {a}.{b} for {arch}"),
            KernelOrigin::PtxFile(path) => write!(f, "from {}", path.display()),
            KernelOrigin::Emulated => write!(f, "emulated on the host"),
        }?;
        if self.launch_items > 0 {
            write!(
                f,
                ", {} blocks/SM, {} items per launch, tables in {} memory",
                self.blocks_per_sm,
                self.launch_items,
                if self.table_in_shared {
                    "shared"
                } else {
                    "local"
                }
            )?;
        }
        Ok(())
    }
}

impl DeviceInfo {
    /// The info reported by backends that run without a device.
    pub fn emulated() -> Self {
        DeviceInfo {
            ordinal: 0,
            name: "host emulation".to_owned(),
            compute_capability: (0, 0),
            total_memory: 0,
            driver_version: 0,
            kernels: KernelOrigin::Emulated,
            blocks_per_sm: 0,
            launch_items: 0,
            table_in_shared: false,
        }
    }
}

/// Opens device `opts.device`, gets the kernels, uploads the tables and allocates the lanes.
/// Never panics: a panic inside the CUDA libraries becomes [`GpuUnavailable::Panicked`].
pub(crate) fn probe(opts: &GpuOptions) -> Result<(CudaExecutor, DeviceInfo), GpuUnavailable> {
    match catch_unwind(AssertUnwindSafe(|| probe_inner(opts))) {
        Ok(result) => result,
        Err(panic) => Err(GpuUnavailable::Panicked(panic_message(panic.as_ref()))),
    }
}

fn driver(stage: &'static str) -> impl Fn(DriverError) -> GpuUnavailable {
    move |e| GpuUnavailable::Driver {
        stage,
        message: describe(&e),
    }
}

fn probe_inner(opts: &GpuOptions) -> Result<(CudaExecutor, DeviceInfo), GpuUnavailable> {
    // `CudaContext::new` would panic without the driver library.
    if !cuda::driver_present() {
        return Err(GpuUnavailable::NoDriver);
    }
    let count = CudaContext::device_count().map_err(driver("cuInit/cuDeviceGetCount"))?;
    let count = usize::try_from(count).unwrap_or(0);
    if opts.device >= count {
        return Err(GpuUnavailable::NoDevice {
            requested: opts.device,
            count,
        });
    }
    let ctx = CudaContext::new(opts.device).map_err(driver("context creation"))?;
    ctx.set_flags(match opts.host_wait {
        HostWait::Block => sys::CUctx_flags::CU_CTX_SCHED_BLOCKING_SYNC,
        HostWait::Yield => sys::CUctx_flags::CU_CTX_SCHED_YIELD,
        HostWait::Spin => sys::CUctx_flags::CU_CTX_SCHED_SPIN,
    })
    .map_err(driver("context scheduling flags"))?;
    let name = ctx.name().map_err(driver("device name"))?;
    let compute_capability = ctx
        .compute_capability()
        .map_err(driver("device attributes"))?;
    let total_memory = ctx.total_mem().map_err(driver("device memory"))?;
    let driver_version = cuda::driver_version();

    // The shared-table build needs its tables and its inversion tree in one block's shared
    // memory; a device that cannot give a block that much runs the local-memory build.
    let smem_optin = ctx
        .attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)
        .map_err(driver("device attributes"))?;
    let shared_fits =
        u32::try_from(smem_optin).unwrap_or(0) >= PAIRS_TABLE_SMEM_BYTES + PAIRS_TREE_SMEM_BYTES;
    let (ptx, kernels, table_in_shared) = kernel_ptx(
        opts,
        compute_capability,
        opts.table_in_shared && shared_fits,
    )?;
    let module = ctx
        .load_module(ptx)
        .map_err(driver("module load (PTX JIT)"))?;
    let pairs_fn = module
        .load_function(FN_MUL_PAIRS)
        .map_err(driver("kernel lookup"))?;
    let fixed_fn = module
        .load_function(FN_MUL_FIXED)
        .map_err(driver("kernel lookup"))?;
    let decompress_fn = module
        .load_function(FN_DECOMPRESS)
        .map_err(driver("kernel lookup"))?;
    // Only with `one_call` (its lanes need larger buffers), and optional: PTX built before the
    // one-call kernels existed lacks them, and the engine then takes the step-by-step calls.
    let reenc_fns = if opts.one_call {
        module
            .load_function(FN_REENC_PREP)
            .and_then(|prep| Ok((prep, module.load_function(FN_REENC_FINISH)?)))
            .ok()
    } else {
        None
    };

    let upload = ctx.default_stream();
    let table_u = upload
        .clone_htod(FixedBaseTable::new(FixedBase::U).words())
        .map_err(driver("table upload"))?;
    let table_g = upload
        .clone_htod(FixedBaseTable::new(FixedBase::G).words())
        .map_err(driver("table upload"))?;
    upload.synchronize().map_err(driver("table upload"))?;

    let sms = ctx
        .attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
        .map_err(driver("device attributes"))?;
    let pairs_smem = if table_in_shared {
        PAIRS_TABLE_SMEM_BYTES
    } else {
        0
    };
    if pairs_smem > 0 {
        pairs_fn
            .set_attribute(
                sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                pairs_smem as i32,
            )
            .map_err(driver("shared memory attribute"))?;
    }
    let blocks_per_sm = pairs_fn
        .occupancy_max_active_blocks_per_multiprocessor(BLOCK_THREADS, pairs_smem as usize, None)
        .map_err(driver("occupancy query"))?;
    let wave = usize::try_from(sms).unwrap_or(0) * blocks_per_sm as usize * BLOCK_THREADS as usize;
    let chunk = whole_waves(opts.chunk_items, wave).clamp(1, u32::MAX as usize);
    let pipelines = (0..opts.concurrent_calls.max(1))
        .map(|_| {
            let sizes = LaneSizes::new(chunk, reenc_fns.is_some());
            Ok(Mutex::new([
                Lane::new(&ctx, sizes)?,
                Lane::new(&ctx, sizes)?,
            ]))
        })
        .collect::<Result<Vec<_>, GpuUnavailable>>()?;
    let info = DeviceInfo {
        ordinal: opts.device,
        name,
        compute_capability,
        total_memory,
        driver_version,
        kernels,
        blocks_per_sm,
        launch_items: chunk,
        table_in_shared,
    };
    let exec = CudaExecutor {
        ctx,
        pairs_fn,
        fixed_fn,
        decompress_fn,
        reenc_fns,
        table_u,
        table_g,
        pairs_smem,
        pipelines,
        next_pipeline: AtomicUsize::new(0),
        chunk,
    };
    Ok((exec, info))
}

/// `items` rounded to the nearest whole number (at least one) of waves of `wave` items; `items`
/// itself when the wave size is unknown (0).
fn whole_waves(items: usize, wave: usize) -> usize {
    if wave == 0 {
        return items;
    }
    let waves = ((items + wave / 2) / wave).max(1);
    waves * wave
}

/// PTX from the file in the options, or from NVRTC for the requested or the device's arch
/// (the shared-table build when `table_in_shared`), and whether it is the shared-table build:
/// a PTX file's own build decides that, whatever the options say.
fn kernel_ptx(
    opts: &GpuOptions,
    cc: (i32, i32),
    table_in_shared: bool,
) -> Result<(Ptx, KernelOrigin, bool), GpuUnavailable> {
    if let Some(path) = &opts.ptx_file {
        let text = std::fs::read_to_string(path).map_err(|e| GpuUnavailable::PtxFile {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        // The shared-table build declares its dynamic shared memory by this name; launches
        // are configured for the build the file holds.
        let shared = ptx_is_shared_table_build(&text);
        return Ok((
            Ptx::from_src(text),
            KernelOrigin::PtxFile(path.clone()),
            shared,
        ));
    }
    let version = nvrtc::nvrtc_version().ok_or(GpuUnavailable::NoNvrtc)?;
    let arch = opts
        .arch
        .clone()
        .unwrap_or_else(|| format!("compute_{}{}", cc.0, cc.1));
    let mut extra: Vec<&str> = opts.nvrtc_options.iter().map(String::as_str).collect();
    if table_in_shared {
        extra.push("-DUMB_TABLE_SHARED=1");
    }
    let units =
        nvrtc::compile_all(&arch, &extra).map_err(|e| GpuUnavailable::Compile(e.to_string()))?;
    // One unit today; more would be loaded as more modules.
    let ptx = units
        .into_iter()
        .map(|u| u.ptx)
        .collect::<Vec<_>>()
        .join("\n");
    Ok((
        Ptx::from_src(ptx),
        KernelOrigin::Nvrtc { version, arch },
        table_in_shared,
    ))
}

/// Whether PTX text is the shared-table build (`-DUMB_TABLE_SHARED=1`), which declares its
/// dynamic shared memory as `umb_table_smem`.
fn ptx_is_shared_table_build(ptx: &str) -> bool {
    ptx.contains("umb_table_smem")
}

/// The CUDA implementation of [`KernelExecutor`].
pub(crate) struct CudaExecutor {
    ctx: Arc<CudaContext>,
    pairs_fn: CudaFunction,
    fixed_fn: CudaFunction,
    decompress_fn: CudaFunction,
    /// `umb_reenc_prep` and `umb_reenc_finish`, when `one_call` is on and the module has them.
    reenc_fns: Option<(CudaFunction, CudaFunction)>,
    table_u: CudaSlice<u32>,
    table_g: CudaSlice<u32>,
    /// Dynamic shared memory of each `umb_mul_pairs` block (0 unless the table is in shared
    /// memory).
    pairs_smem: u32,
    /// Pairs of lanes; a call holds one pair for its duration.
    pipelines: Vec<Mutex<[Lane; 2]>>,
    /// Where the next call starts looking for a free pipeline.
    next_pipeline: AtomicUsize,
    chunk: usize,
}

/// One stream with the buffers for one launch in flight.
struct Lane {
    stream: Arc<CudaStream>,
    host_in: PinnedHostSlice<u32>,
    host_out: PinnedHostSlice<u32>,
    dev_in: CudaSlice<u32>,
    dev_out: CudaSlice<u32>,
    /// Recorded before the upload, before the kernel, after the kernel, after the download.
    marks: [CudaEvent; 4],
    pending: Option<Pending>,
}

/// A launch submitted on a lane and not yet collected.
#[derive(Debug, Clone)]
struct Pending {
    items: Range<usize>,
    in_words: usize,
    out_words: usize,
    /// Host time spent packing the input.
    packed_in: Duration,
}

/// One backend call in flight through the pipeline.
enum Job<'a> {
    Pairs {
        bases: &'a [Affine],
        scalars: PairScalars<'a>,
        out: Vec<[Option<Affine>; 2]>,
    },
    Fixed {
        base: FixedBase,
        scalars: &'a [Scalar],
        out: Vec<Option<Affine>>,
    },
    Decompress {
        points: &'a [CompressedPoint],
        out: Vec<Option<Affine>>,
    },
    /// Whole capsules re-encrypted in one call (`scalars[j] = [rk, t]`).
    Reenc {
        capsules: &'a [CapsuleInput],
        scalars: &'a [[Scalar; 2]],
        out: Vec<CapsuleOutcome>,
    },
}

/// The scalars of a `umb_mul_pairs` call.
#[derive(Clone, Copy)]
enum PairScalars<'a> {
    /// `[a, b]` for every base: both products.
    Both(&'a [[Scalar; 2]]),
    /// `a` for every base, `b` zero: a launch with `second = 0`, which skips the second
    /// ladder; only the bases and first scalars go up and only the first slot comes back.
    Firsts(&'a [Scalar]),
}

impl PairScalars<'_> {
    fn len(&self) -> usize {
        match self {
            PairScalars::Both(s) => s.len(),
            PairScalars::Firsts(s) => s.len(),
        }
    }
}

impl Job<'_> {
    fn len(&self) -> usize {
        match self {
            Job::Pairs { scalars, .. } => scalars.len(),
            Job::Fixed { scalars, .. } => scalars.len(),
            Job::Decompress { points, .. } => points.len(),
            Job::Reenc { capsules, .. } => capsules.len(),
        }
    }

    /// Items per launch for a pipeline whose lanes hold `chunk` pair items: half as many
    /// capsules for a one-call launch (two pair items each).
    fn chunk(&self, chunk: usize) -> usize {
        match self {
            Job::Reenc { .. } => (chunk / 2).max(1),
            _ => chunk,
        }
    }

    fn words(&self) -> (usize, usize) {
        match self {
            Job::Pairs {
                scalars: PairScalars::Both(_),
                ..
            } => (layout::PAIR_IN_WORDS, layout::PAIR_OUT_WORDS),
            Job::Pairs {
                scalars: PairScalars::Firsts(_),
                ..
            } => (layout::FIRSTS_IN_WORDS, layout::FIRSTS_OUT_WORDS),
            Job::Fixed { .. } => (layout::FIXED_IN_WORDS, layout::FIXED_OUT_WORDS),
            Job::Decompress { .. } => (layout::DECOMPRESS_IN_WORDS, layout::DECOMPRESS_OUT_WORDS),
            Job::Reenc { .. } => (layout::REENC_IN_WORDS, layout::PARTS_OUT_WORDS),
        }
    }

    /// Where in the device output buffer a launch of `n` items leaves what is copied back:
    /// after the products for a one-call launch, else at the start.
    fn output_offset(&self, n: usize) -> usize {
        match self {
            Job::Reenc { .. } => (layout::REENC_DEVICE_OUT_WORDS - layout::PARTS_OUT_WORDS) * n,
            _ => 0,
        }
    }

    /// Words of the device input buffer to wipe after a launch of `n` items: the upload,
    /// and for a one-call launch the scratch its first kernel copies the secret scalars into.
    fn scrub_words(&self, n: usize) -> usize {
        match self {
            Job::Reenc { .. } => (layout::REENC_IN_WORDS + layout::REENC_SCRATCH_IN_WORDS) * n,
            _ => self.words().0 * n,
        }
    }

    fn pack(&self, items: Range<usize>, dst: &mut [u32]) -> Result<(), LayoutError> {
        match self {
            Job::Pairs { bases, scalars, .. } => match scalars {
                PairScalars::Both(s) => layout::pack_pairs(&bases[items.clone()], &s[items], dst),
                PairScalars::Firsts(s) => {
                    layout::pack_firsts(&bases[items.clone()], &s[items], dst)
                }
            },
            Job::Fixed { scalars, .. } => layout::pack_fixed(&scalars[items], dst),
            Job::Decompress { points, .. } => layout::pack_decompress(&points[items], dst),
            Job::Reenc {
                capsules, scalars, ..
            } => layout::pack_reenc(&capsules[items.clone()], &scalars[items], dst),
        }
    }

    fn unpack(&mut self, items: Range<usize>, src: &[u32]) -> Result<(), LayoutError> {
        match self {
            Job::Pairs { scalars, out, .. } => match scalars {
                PairScalars::Both(s) => {
                    layout::unpack_pairs_into(src, &s[items.clone()], &mut out[items])?;
                }
                PairScalars::Firsts(s) => {
                    layout::unpack_firsts_into(src, &s[items.clone()], &mut out[items])?;
                }
            },
            Job::Fixed { scalars, out, .. } => {
                layout::unpack_fixed_into(src, &scalars[items.clone()], &mut out[items])?;
            }
            Job::Decompress { points, out } => {
                layout::unpack_decompress_into(src, &points[items.clone()], &mut out[items])?;
            }
            Job::Reenc { out, .. } => layout::unpack_reenc_into(src, &mut out[items])?,
        }
        Ok(())
    }
}

/// Buffer sizes (words) of one lane.
#[derive(Clone, Copy, Debug)]
struct LaneSizes {
    /// Pinned input: what one launch uploads.
    in_cap: usize,
    /// Device input: the upload and what a one-call launch's first kernel writes beside it.
    dev_in_cap: usize,
    /// Pinned output: what one launch copies back.
    out_cap: usize,
    /// Device output: everything one launch's kernels write.
    dev_out_cap: usize,
}

impl LaneSizes {
    /// For launches of `chunk` pair items, and (`reenc`) for one-call launches of half as many
    /// capsules (`Job::chunk`): device buffers several times larger.
    fn new(chunk: usize, reenc: bool) -> Self {
        let capsules = (chunk / 2).max(1);
        let when = |on: bool, words: usize| if on { capsules * words } else { 0 };
        let in_cap = (chunk * layout::PAIR_IN_WORDS).max(when(reenc, layout::REENC_IN_WORDS));
        let out_cap = (chunk * layout::PAIR_OUT_WORDS).max(when(reenc, layout::PARTS_OUT_WORDS));
        Self {
            in_cap,
            dev_in_cap: in_cap.max(when(
                reenc,
                layout::REENC_IN_WORDS + layout::REENC_SCRATCH_IN_WORDS,
            )),
            out_cap,
            dev_out_cap: out_cap.max(when(reenc, layout::REENC_DEVICE_OUT_WORDS)),
        }
    }
}

fn exec_err(e: DriverError) -> ExecError {
    cuda::driver(e)
}

impl Lane {
    /// A stream with its pinned and device buffers and events.
    fn new(ctx: &Arc<CudaContext>, sizes: LaneSizes) -> Result<Self, GpuUnavailable> {
        let LaneSizes {
            in_cap,
            dev_in_cap,
            out_cap,
            dev_out_cap,
        } = sizes;
        let stream = ctx.new_stream().map_err(driver("stream creation"))?;
        let host_in = cuda::alloc_pinned(ctx, in_cap).map_err(driver("pinned allocation"))?;
        let host_out = cuda::alloc_pinned(ctx, out_cap).map_err(driver("pinned allocation"))?;
        let dev_in = stream
            .alloc_zeros::<u32>(dev_in_cap)
            .map_err(driver("device allocation"))?;
        let dev_out = stream
            .alloc_zeros::<u32>(dev_out_cap)
            .map_err(driver("device allocation"))?;
        let mark = || ctx.new_event(Some(sys::CUevent_flags::CU_EVENT_DEFAULT));
        let marks = [
            mark().map_err(driver("event creation"))?,
            mark().map_err(driver("event creation"))?,
            mark().map_err(driver("event creation"))?,
            mark().map_err(driver("event creation"))?,
        ];
        stream.synchronize().map_err(driver("device allocation"))?;
        Ok(Lane {
            stream,
            host_in,
            host_out,
            dev_in,
            dev_out,
            marks,
            pending: None,
        })
    }

    /// Packs `items` of `job`, then queues upload, kernel, download and the wipe of the input.
    fn submit(
        &mut self,
        exec: &CudaExecutor,
        job: &Job<'_>,
        items: Range<usize>,
    ) -> Result<(), ExecError> {
        let (in_per, out_per) = job.words();
        let n = items.len();
        let mut pending = Pending {
            items: items.clone(),
            in_words: in_per * n,
            out_words: out_per * n,
            packed_in: Duration::ZERO,
        };
        let host = self.host_in.as_mut_slice().map_err(exec_err)?;
        let packing = ThreadTime::now();
        job.pack(items, &mut host[..pending.in_words])?;
        pending.packed_in = packing.elapsed();

        self.marks[0].record(&self.stream).map_err(exec_err)?;
        // The pinned source stays untouched until `collect` has synchronized this stream.
        cuda::copy_to_device_async(
            &self.stream,
            &host[..pending.in_words],
            &mut self.dev_in.slice_mut(0..pending.in_words),
        )?;
        self.marks[1].record(&self.stream).map_err(exec_err)?;
        self.launch(exec, job, n)?;
        self.marks[2].record(&self.stream).map_err(exec_err)?;
        {
            // The pinned destination is not read before `collect` synchronizes this stream.
            let host_out = self.host_out.as_mut_slice().map_err(exec_err)?;
            let at = job.output_offset(n);
            cuda::copy_from_device_async(
                &self.stream,
                &self.dev_out.slice(at..at + pending.out_words),
                &mut host_out[..pending.out_words],
            )?;
        }
        self.marks[3].record(&self.stream).map_err(exec_err)?;
        self.stream
            .memset_zeros(&mut self.dev_in.slice_mut(0..job.scrub_words(n)))
            .map_err(exec_err)?;
        self.pending = Some(pending);
        Ok(())
    }

    fn launch(&mut self, exec: &CudaExecutor, job: &Job<'_>, n: usize) -> Result<(), ExecError> {
        let n32 = u32::try_from(n).map_err(|_| ExecError::Unsupported("launch too large"))?;
        match job {
            Job::Pairs { scalars, .. } => {
                let (second, in_words) = match scalars {
                    PairScalars::Both(_) => (1, layout::PAIR_IN_WORDS * n),
                    PairScalars::Firsts(_) => (0, layout::FIRSTS_IN_WORDS * n),
                };
                self.launch_pairs(
                    exec,
                    0..in_words,
                    0..layout::PAIR_OUT_WORDS * n,
                    n32,
                    second,
                )?;
            }
            Job::Fixed { base, .. } => {
                let table = match base {
                    FixedBase::U => &exec.table_u,
                    FixedBase::G => &exec.table_g,
                };
                self.launch_fixed(exec, table, 0..8 * n, 0..layout::FIXED_OUT_WORDS * n, n32)?;
            }
            Job::Reenc { .. } => self.launch_reenc(exec, n32)?,
            Job::Decompress { .. } => {
                cuda::launch_decompress(
                    &self.stream,
                    &exec.decompress_fn,
                    &self.dev_in.slice(0..layout::DECOMPRESS_IN_WORDS * n),
                    &mut self.dev_out.slice_mut(0..layout::DECOMPRESS_OUT_WORDS * n),
                    n32,
                )?;
            }
        }
        Ok(())
    }

    /// One `umb_mul_pairs` launch of `n` items: its input at `input` of the device input
    /// buffer (16n words of bases, then the scalars: 16n words, or 8n with `second = 0`), its
    /// 34n words of output at `out` of the device output buffer.
    fn launch_pairs(
        &mut self,
        exec: &CudaExecutor,
        input: Range<usize>,
        out: Range<usize>,
        n: u32,
        second: u32,
    ) -> Result<(), ExecError> {
        let split = input.start + layout::PAIR_BASE_WORDS * n as usize;
        cuda::launch_mul_pairs(
            &self.stream,
            &exec.pairs_fn,
            &self.dev_in.slice(input.start..split),
            &self.dev_in.slice(split..input.end),
            &mut self.dev_out.slice_mut(out),
            n,
            second,
            exec.pairs_smem,
        )
    }

    /// One `umb_mul_fixed` launch of `n` items with `table`: 8n words of scalars at `scalars`
    /// of the device input buffer, 17n words of output at `out` of the device output buffer.
    fn launch_fixed(
        &mut self,
        exec: &CudaExecutor,
        table: &CudaSlice<u32>,
        scalars: Range<usize>,
        out: Range<usize>,
        n: u32,
    ) -> Result<(), ExecError> {
        cuda::launch_mul_fixed(
            &self.stream,
            &exec.fixed_fn,
            table,
            &self.dev_in.slice(scalars),
            &mut self.dev_out.slice_mut(out),
            n,
        )
    }

    /// The six launches of a one-call re-encryption of `c` capsules, in a row on the lane's
    /// stream. Device input: the upload (`REENC_IN_WORDS` rows), then the scratch the prep
    /// kernel writes (the pair input of `E` and `V`, the `h·E` input, a status row); device
    /// output: the pair outputs, `h·E`, `s·G`, `t·U`, then the parts.
    fn launch_reenc(&mut self, exec: &CudaExecutor, c: u32) -> Result<(), ExecError> {
        let Some((prep_fn, finish_fn)) = exec.reenc_fns.as_ref() else {
            return Err(ExecError::Unsupported("no one-call kernels in the module"));
        };
        let m = c as usize;
        let items = u32::try_from(2 * m).map_err(|_| ExecError::Unsupported("launch too large"))?;
        // Device input regions (words).
        let input = 0..layout::REENC_IN_WORDS * m;
        let pair_in = input.end..input.end + 2 * layout::PAIR_IN_WORDS * m;
        let firsts_in = pair_in.end..pair_in.end + layout::PAIR_IN_WORDS * m;
        let prep = firsts_in.end..firsts_in.end + m;
        let s_rows = layout::REENC_S_ROW * m..(layout::REENC_S_ROW + 8) * m;
        let t_rows = layout::REENC_T_ROW * m..(layout::REENC_T_ROW + 8) * m;
        // Device output regions.
        let pair_out = 0..2 * layout::PAIR_OUT_WORDS * m;
        let firsts_out = pair_out.end..pair_out.end + layout::PAIR_OUT_WORDS * m;
        let g_out = firsts_out.end..firsts_out.end + layout::FIXED_OUT_WORDS * m;
        let u_out = g_out.end..g_out.end + layout::FIXED_OUT_WORDS * m;
        let parts = u_out.end..u_out.end + layout::PARTS_OUT_WORDS * m;
        {
            // 1. Decompress E and V, hash h, lay out the pair and h·E inputs.
            let (upload, mut scratch) = self.dev_in.split_at_mut(input.end);
            let upload = upload.slice(input.clone());
            let (mut pair_dst, mut rest) = scratch.split_at_mut(pair_in.len());
            let (mut firsts_dst, mut prep_rest) = rest.split_at_mut(firsts_in.len());
            let mut prep_dst = prep_rest.slice_mut(0..prep.len());
            cuda::launch_reenc_prep(
                &self.stream,
                prep_fn,
                &upload,
                &mut pair_dst,
                &mut firsts_dst,
                &mut prep_dst,
                c,
            )?;
        }
        // 2, 3. The products [rk·P, t·P] of E and V, then h·E.
        self.launch_pairs(exec, pair_in.clone(), pair_out.clone(), items, 1)?;
        self.launch_pairs(exec, firsts_in, firsts_out.clone(), c, 0)?;
        // 4, 5. s·G and t·U, their scalars read straight from the upload's rows.
        self.launch_fixed(exec, &exec.table_g, s_rows, g_out.clone(), c)?;
        self.launch_fixed(exec, &exec.table_u, t_rows, u_out.clone(), c)?;
        // 6. The capsule check and the parts.
        let input_view = self.dev_in.slice(input);
        let pair_in_view = self.dev_in.slice(pair_in);
        let prep_view = self.dev_in.slice(prep);
        let (products, mut tail) = self.dev_out.split_at_mut(parts.start);
        let inputs = cuda::ReencFinishInputs {
            upload: &input_view,
            pair_in: &pair_in_view,
            pair_out: &products.slice(pair_out),
            firsts_out: &products.slice(firsts_out),
            g_out: &products.slice(g_out),
            u_out: &products.slice(u_out),
            prep: &prep_view,
        };
        cuda::launch_reenc_finish(
            &self.stream,
            finish_fn,
            &inputs,
            &mut tail.slice_mut(0..parts.len()),
            c,
        )
    }

    /// Waits for the lane's launch, wipes its input and unpacks its results into `job`.
    fn collect(&mut self, job: &mut Job<'_>) -> Result<Timing, ExecError> {
        let Some(pending) = self.pending.take() else {
            return Ok(Timing::default());
        };
        let synced = self.stream.synchronize().map_err(exec_err);
        let host_in = self.host_in.as_mut_slice().map_err(exec_err)?;
        host_in[..pending.in_words].zeroize();
        synced?;
        let ms = |a: usize, b: usize| -> Result<Duration, ExecError> {
            let elapsed = self.marks[a].elapsed_ms(&self.marks[b]).map_err(exec_err)?;
            Ok(Duration::from_secs_f64(f64::from(elapsed.max(0.0)) / 1e3))
        };
        let host_out = self.host_out.as_slice().map_err(exec_err)?;
        let reading = ThreadTime::now();
        job.unpack(pending.items, &host_out[..pending.out_words])?;
        Ok(Timing {
            kernel: ms(1, 2)?,
            copy: ms(0, 1)? + ms(2, 3)?,
            layout: pending.packed_in + reading.elapsed(),
        })
    }

    /// After a failure: drain the stream (ignoring errors) and wipe the input buffer.
    fn abandon(&mut self) {
        let _ = self.stream.synchronize();
        self.pending = None;
        if let Ok(host_in) = self.host_in.as_mut_slice() {
            host_in.zeroize();
        }
    }
}

impl CudaExecutor {
    fn run(&self, job: &mut Job<'_>) -> Result<Timing, ExecError> {
        self.ctx.bind_to_thread().map_err(exec_err)?;
        let mut lanes = self.take_pipeline()?;
        let result = self.pipeline(&mut lanes, job);
        if result.is_err() {
            lanes.iter_mut().for_each(Lane::abandon);
        }
        result
    }

    /// A free pipeline if there is one (starting from a rotating index), else the next one
    /// once its current call is done.
    fn take_pipeline(&self) -> Result<MutexGuard<'_, [Lane; 2]>, ExecError> {
        let count = self.pipelines.len();
        let first = self.next_pipeline.fetch_add(1, Ordering::Relaxed) % count;
        for k in 0..count {
            match self.pipelines[(first + k) % count].try_lock() {
                Ok(guard) => return Ok(guard),
                Err(TryLockError::WouldBlock) => continue,
                Err(TryLockError::Poisoned(_)) => return Err(ExecError::Poisoned),
            }
        }
        self.pipelines[first]
            .lock()
            .map_err(|_| ExecError::Poisoned)
    }

    fn pipeline(&self, lanes: &mut [Lane; 2], job: &mut Job<'_>) -> Result<Timing, ExecError> {
        let mut timing = Timing::default();
        let total = job.len();
        let mut start = 0;
        let mut launches = 0;
        let chunk = job.chunk(self.chunk);
        while start < total {
            let end = total.min(start + chunk);
            let lane = &mut lanes[launches % 2];
            timing += lane.collect(job)?;
            lane.submit(self, job, start..end)?;
            start = end;
            launches += 1;
        }
        for k in 0..2 {
            timing += lanes[(launches + k) % 2].collect(job)?;
        }
        Ok(timing)
    }
}

impl CudaExecutor {
    /// A `umb_mul_pairs` call: both products, or (`Firsts`) the first only.
    fn pairs(
        &self,
        bases: &[Affine],
        scalars: PairScalars<'_>,
    ) -> Result<(PairProducts, Timing), ExecError> {
        if bases.len() != scalars.len() {
            return Err(ExecError::Unsupported("bases and scalars differ in length"));
        }
        let mut job = Job::Pairs {
            bases,
            scalars,
            out: vec![[None, None]; bases.len()],
        };
        let timing = self.run(&mut job)?;
        match job {
            Job::Pairs { out, .. } => Ok((out, timing)),
            _ => unreachable!("the job keeps its kind"),
        }
    }
}

impl KernelExecutor for CudaExecutor {
    fn reencrypt_capsules(
        &self,
        capsules: &[CapsuleInput],
        scalars: &[[Scalar; 2]],
    ) -> Result<(Vec<CapsuleOutcome>, Timing), ExecError> {
        if self.reenc_fns.is_none() {
            return Err(ExecError::Unsupported("no one-call kernels in the module"));
        }
        if scalars.len() != capsules.len() {
            return Err(ExecError::Unsupported("not one [rk, t] per capsule"));
        }
        let mut job = Job::Reenc {
            capsules,
            scalars,
            out: vec![CapsuleOutcome::Rejected; capsules.len()],
        };
        let timing = self.run(&mut job)?;
        match job {
            Job::Reenc { out, .. } => Ok((out, timing)),
            _ => unreachable!("the job keeps its kind"),
        }
    }

    fn mul_pairs(
        &self,
        bases: &[Affine],
        scalars: &[[Scalar; 2]],
    ) -> Result<(PairProducts, Timing), ExecError> {
        self.pairs(bases, PairScalars::Both(scalars))
    }

    fn mul_firsts(
        &self,
        bases: &[Affine],
        scalars: &[Scalar],
    ) -> Result<(PairProducts, Timing), ExecError> {
        self.pairs(bases, PairScalars::Firsts(scalars))
    }

    fn mul_fixed(
        &self,
        base: FixedBase,
        scalars: &[Scalar],
    ) -> Result<(Products, Timing), ExecError> {
        let mut job = Job::Fixed {
            base,
            scalars,
            out: vec![None; scalars.len()],
        };
        let timing = self.run(&mut job)?;
        match job {
            Job::Fixed { out, .. } | Job::Decompress { out, .. } => Ok((out, timing)),
            _ => unreachable!("the job keeps its kind"),
        }
    }

    fn decompress(&self, points: &[CompressedPoint]) -> Result<(Products, Timing), ExecError> {
        let mut job = Job::Decompress {
            points,
            out: vec![None; points.len()],
        };
        let timing = self.run(&mut job)?;
        match job {
            Job::Fixed { out, .. } | Job::Decompress { out, .. } => Ok((out, timing)),
            _ => unreachable!("the job keeps its kind"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::whole_waves;

    #[test]
    fn launches_are_rounded_to_whole_waves() {
        // 132 SMs with 3 resident blocks of 128 threads each: 50,688 items per wave.
        let wave = 132 * 3 * 128;
        assert_eq!(whole_waves(65_536, wave), wave);
        assert_eq!(whole_waves(1, wave), wave);
        assert_eq!(whole_waves(4 * wave + wave / 2 + 1, wave), 5 * wave);
        assert_eq!(whole_waves(4 * wave + wave / 2 - 1, wave), 4 * wave);
        assert_eq!(whole_waves(1000, 0), 1000);
    }
}
