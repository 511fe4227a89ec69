//! The CUDA driver: loading, pinned memory, asynchronous copies and the kernel launches, each
//! launch behind a function that checks its buffers against the kernel's layout
//! (`kernels/scalar_mul.cu`, `crate::layout`).

use std::sync::Arc;

use cudarc::driver::{
    result as cu, sys, CudaContext, CudaFunction, CudaSlice, CudaStream, CudaView, CudaViewMut,
    DevicePtr, DevicePtrMut, DriverError, LaunchConfig, PinnedHostSlice, PushKernelArg,
};

use crate::exec::ExecError;
use crate::layout;

/// Whether the driver library (`libcuda`) can be loaded.
pub(crate) fn driver_present() -> bool {
    // SAFETY: only tries to dlopen candidate library names; no symbol is called.
    unsafe { sys::is_culib_present() }
}

/// The driver's CUDA version, e.g. 13000 for 13.0; 0 when unknown. The driver must be
/// present ([`driver_present`]).
pub(crate) fn driver_version() -> i32 {
    let mut version = 0;
    // SAFETY: a valid out-pointer that outlives the call.
    let _ = unsafe { sys::cuDriverGetVersion(&mut version) };
    version
}

/// `len` words of ordinary cached pinned host memory (flags 0: write-combined memory,
/// cudarc's default, is slow for the CPU to read, and the packers write with strides).
pub(crate) fn alloc_pinned(
    ctx: &Arc<CudaContext>,
    len: usize,
) -> Result<PinnedHostSlice<u32>, DriverError> {
    // SAFETY: u32 has no invalid bit patterns; every buffer is written before it is read.
    unsafe { ctx.alloc_pinned_with_flags::<u32>(len, 0) }
}

/// Queues a copy of `src` (pinned host memory) into the start of `dst` on `stream`.
///
/// The copy runs after this returns: the caller must neither write nor free `src` until it
/// has synchronized `stream` (the device executor's lanes own their pinned buffers and
/// synchronize a lane's stream before touching them again).
pub(crate) fn copy_to_device_async(
    stream: &CudaStream,
    src: &[u32],
    dst: &mut CudaViewMut<'_, u32>,
) -> Result<(), ExecError> {
    if src.len() > dst.len() {
        return Err(ExecError::Unsupported("copy larger than its device buffer"));
    }
    let (ptr, _record) = dst.device_ptr_mut(stream);
    // SAFETY: `ptr` addresses at least `src.len()` words of device memory (checked above);
    // the pinned source stays allocated and unwritten until the stream is synchronized, as
    // documented above.
    unsafe { cu::memcpy_htod_async(ptr, src, stream.cu_stream()) }.map_err(driver)
}

/// Queues a copy of the start of `src` into `dst` (pinned host memory) on `stream`, after the
/// work queued before it.
///
/// The copy runs after this returns: the caller must not read `dst` until it has
/// synchronized `stream`, nor free it before.
pub(crate) fn copy_from_device_async(
    stream: &CudaStream,
    src: &CudaView<'_, u32>,
    dst: &mut [u32],
) -> Result<(), ExecError> {
    if dst.len() > src.len() {
        return Err(ExecError::Unsupported("copy larger than its device buffer"));
    }
    let (ptr, _record) = src.device_ptr(stream);
    // SAFETY: `ptr` addresses at least `dst.len()` words of device memory (checked above);
    // the pinned destination stays allocated and unread until the stream is synchronized.
    unsafe { cu::memcpy_dtoh_async(dst, ptr, stream.cu_stream()) }.map_err(driver)
}

/// The driver error as an executor error, with the driver's own description.
pub(crate) fn driver(e: DriverError) -> ExecError {
    ExecError::Driver(describe(&e))
}

/// A driver error as text: its code and the driver's description.
pub(crate) fn describe(e: &DriverError) -> String {
    match e.error_string() {
        Ok(text) => format!("{:?}: {}", e.0, text.to_string_lossy()),
        Err(_) => format!("{:?}", e.0),
    }
}

/// `Unsupported` unless a buffer holds at least `words`.
fn holds(len: usize, words: usize) -> Result<(), ExecError> {
    if len >= words {
        Ok(())
    } else {
        Err(ExecError::Unsupported(
            "kernel buffer smaller than its layout",
        ))
    }
}

/// A launch of `n` threads in blocks of `UMB_BLOCK`, with `shared` bytes of dynamic shared
/// memory.
fn blocks(n: u32, shared: u32) -> LaunchConfig {
    let block = crate::source::BLOCK_THREADS;
    LaunchConfig {
        grid_dim: (n.div_ceil(block), 1, 1),
        block_dim: (block, 1, 1),
        shared_mem_bytes: shared,
    }
}

/// `umb_mul_pairs(bases, scalars, out, n, second)`: 16n words of bases, 16n of scalars (8n
/// with `second = 0`, when the kernel reads only the first scalars), 34n of output. `shared`:
/// the dynamic shared memory of each block (0, or what the `UMB_TABLE_SHARED` build reads).
#[allow(clippy::too_many_arguments)]
pub(crate) fn launch_mul_pairs(
    stream: &CudaStream,
    func: &CudaFunction,
    bases: &CudaView<'_, u32>,
    scalars: &CudaView<'_, u32>,
    out: &mut CudaViewMut<'_, u32>,
    n: u32,
    second: u32,
    shared: u32,
) -> Result<(), ExecError> {
    let items = n as usize;
    let scalar_words = if second == 0 { 8 } else { 16 };
    holds(bases.len(), layout::PAIR_BASE_WORDS * items)?;
    holds(scalars.len(), scalar_words * items)?;
    holds(out.len(), layout::PAIR_OUT_WORDS * items)?;
    let mut launch = stream.launch_builder(func);
    launch.arg(bases).arg(scalars).arg(out).arg(&n).arg(&second);
    // SAFETY: `func` is umb_mul_pairs(const u32*, const u32*, u32*, u32, u32) and the
    // arguments match it; the buffers hold what the kernel reads and writes for `n` items
    // (checked above); blockDim is UMB_BLOCK; the caller sizes `shared` for the build it
    // loaded.
    unsafe { launch.launch(blocks(n, shared)) }.map_err(driver)?;
    Ok(())
}

/// `umb_mul_fixed(table, scalars, out, n)`: a fixed-base table of 65 · 8 · 16 words, 8n words
/// of scalars, 17n of output.
pub(crate) fn launch_mul_fixed(
    stream: &CudaStream,
    func: &CudaFunction,
    table: &CudaSlice<u32>,
    scalars: &CudaView<'_, u32>,
    out: &mut CudaViewMut<'_, u32>,
    n: u32,
) -> Result<(), ExecError> {
    let items = n as usize;
    holds(
        table.len(),
        crate::table::WINDOWS * crate::table::ROW * crate::table::ENTRY_WORDS,
    )?;
    holds(scalars.len(), layout::FIXED_IN_WORDS * items)?;
    holds(out.len(), layout::FIXED_OUT_WORDS * items)?;
    let mut launch = stream.launch_builder(func);
    launch.arg(table).arg(scalars).arg(out).arg(&n);
    // SAFETY: `func` is umb_mul_fixed(const u32*, const u32*, u32*, u32) and the arguments
    // match it; the buffers hold what it reads and writes (checked above); blockDim is
    // UMB_BLOCK.
    unsafe { launch.launch(blocks(n, 0)) }.map_err(driver)?;
    Ok(())
}

/// `umb_decompress(in, out, n)`: 9n words in, 9n out.
pub(crate) fn launch_decompress(
    stream: &CudaStream,
    func: &CudaFunction,
    input: &CudaView<'_, u32>,
    out: &mut CudaViewMut<'_, u32>,
    n: u32,
) -> Result<(), ExecError> {
    let items = n as usize;
    holds(input.len(), layout::DECOMPRESS_IN_WORDS * items)?;
    holds(out.len(), layout::DECOMPRESS_OUT_WORDS * items)?;
    let mut launch = stream.launch_builder(func);
    launch.arg(input).arg(out).arg(&n);
    // SAFETY: `func` is umb_decompress(const u32*, u32*, u32) and the arguments match it;
    // both buffers hold 9n words (checked above); blockDim is UMB_BLOCK.
    unsafe { launch.launch(blocks(n, 0)) }.map_err(driver)?;
    Ok(())
}

/// `umb_reenc_prep(in, pair_in, firsts_in, prep, c)`: 51c words of upload, 64c of pair input,
/// 32c of `h·E` input and c of status written.
pub(crate) fn launch_reenc_prep(
    stream: &CudaStream,
    func: &CudaFunction,
    upload: &CudaView<'_, u32>,
    pair_in: &mut CudaViewMut<'_, u32>,
    firsts_in: &mut CudaViewMut<'_, u32>,
    prep: &mut CudaViewMut<'_, u32>,
    c: u32,
) -> Result<(), ExecError> {
    let m = c as usize;
    holds(upload.len(), layout::REENC_IN_WORDS * m)?;
    holds(pair_in.len(), 2 * layout::PAIR_IN_WORDS * m)?;
    holds(firsts_in.len(), layout::PAIR_IN_WORDS * m)?;
    holds(prep.len(), m)?;
    let mut launch = stream.launch_builder(func);
    launch
        .arg(upload)
        .arg(pair_in)
        .arg(firsts_in)
        .arg(prep)
        .arg(&c);
    // SAFETY: `func` is umb_reenc_prep(const u32*, u32*, u32*, u32*, u32) and the arguments
    // match it; the buffers hold what it reads and writes (checked above) and the written
    // ones are disjoint views; blockDim is UMB_BLOCK.
    unsafe { launch.launch(blocks(c, 0)) }.map_err(driver)?;
    Ok(())
}

/// The buffers `umb_reenc_finish` reads, for `c` capsules.
pub(crate) struct ReencFinishInputs<'a, 'b> {
    /// The upload: 51c words.
    pub upload: &'a CudaView<'b, u32>,
    /// The pair input of `E` and `V`: 64c words.
    pub pair_in: &'a CudaView<'b, u32>,
    /// The pair output of `E` and `V`: 68c words.
    pub pair_out: &'a CudaView<'b, u32>,
    /// The `h·E` output: 34c words.
    pub firsts_out: &'a CudaView<'b, u32>,
    /// `s·G`: 17c words.
    pub g_out: &'a CudaView<'b, u32>,
    /// `t·U`: 17c words.
    pub u_out: &'a CudaView<'b, u32>,
    /// The prep kernel's status: c words.
    pub prep: &'a CudaView<'b, u32>,
}

/// `umb_reenc_finish(in, pair_in, pair_out, firsts_out, g_out, u_out, prep, out, c)`: the
/// inputs as [`ReencFinishInputs`] lists them, 51c words of parts written.
pub(crate) fn launch_reenc_finish(
    stream: &CudaStream,
    func: &CudaFunction,
    inputs: &ReencFinishInputs<'_, '_>,
    out: &mut CudaViewMut<'_, u32>,
    c: u32,
) -> Result<(), ExecError> {
    let m = c as usize;
    holds(inputs.upload.len(), layout::REENC_IN_WORDS * m)?;
    holds(inputs.pair_in.len(), 2 * layout::PAIR_IN_WORDS * m)?;
    holds(inputs.pair_out.len(), 2 * layout::PAIR_OUT_WORDS * m)?;
    holds(inputs.firsts_out.len(), layout::PAIR_OUT_WORDS * m)?;
    holds(inputs.g_out.len(), layout::FIXED_OUT_WORDS * m)?;
    holds(inputs.u_out.len(), layout::FIXED_OUT_WORDS * m)?;
    holds(inputs.prep.len(), m)?;
    holds(out.len(), layout::PARTS_OUT_WORDS * m)?;
    let mut launch = stream.launch_builder(func);
    launch
        .arg(inputs.upload)
        .arg(inputs.pair_in)
        .arg(inputs.pair_out)
        .arg(inputs.firsts_out)
        .arg(inputs.g_out)
        .arg(inputs.u_out)
        .arg(inputs.prep)
        .arg(out)
        .arg(&c);
    // SAFETY: `func` is umb_reenc_finish(const u32* x 7, u32*, u32) and the arguments match
    // it; the buffers hold what it reads and writes (checked above), the output disjoint from
    // the inputs (a mutable view); blockDim is UMB_BLOCK.
    unsafe { launch.launch(blocks(c, 0)) }.map_err(driver)?;
    Ok(())
}
