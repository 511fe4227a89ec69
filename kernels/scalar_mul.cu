// SPDX-License-Identifier: GPL-3.0-only
//
// scalar_mul.cu: the batch kernels. Launch with blockDim.x == UMB_BLOCK (128) exactly and
// gridDim.x == ceil(n / UMB_BLOCK); every thread of a block must reach the barriers, so threads
// past n run the tree with the value 1 and store nothing. Layouts: see scalar_mul.cuh.
//
//   umb_mul_pairs(bases, scalars, out, n, second):
//                                           out[i] = (a_i * P_i, b_i * P_i); two block
//                                           inversions: P_i's table, then the results;
//                                           second = 0: every b_i is 0, b_i * P_i not computed
//   umb_mul_fixed(table, scalars, out, n):  out[i] = k_i * Q for the Q that built `table`
//                                           (Umbral's U or the generator G)
//   umb_decompress(in, out, n):             out[i] = y of the compressed point in[i] (x and
//                                           parity), with an on-curve flag; no barrier
//   umb_reenc_prep(in, pair_in, firsts_in, prep, c):
//                                           from capsule j's compressed E, V, s, rk, t, U1
//                                           (in): the pair kernel's input (E, V, [rk, t]), the
//                                           first kernel's (E, h = H(E, V)), a status word; no
//                                           barrier (layout: reenc.cuh)
//   umb_reenc_finish(in, pair_in, pair_out, firsts_out, g_out, u_out, prep, out, c):
//                                           out[j] = capsule j's cfrag parts E1, V1, E2, V2,
//                                           U2 (compressed) and z = rk h + t (finish.cuh),
//                                           the status with the check s G = V + h E; no
//                                           barrier. Between the two: umb_mul_pairs twice and
//                                           umb_mul_fixed twice (G: s, U: t), see reenc.cuh
#include "scalar_mul.cuh"
#include "finish.cuh"
#include "reenc.cuh"

// UMB_TABLE_SHARED=1 keeps each thread's affine table (512 bytes) in dynamic shared memory
// instead of local memory: the launch must pass UMB_TABLE_SMEM_BYTES (64 KiB) of dynamic shared
// memory (GpuOptions::table_in_shared). 3 blocks fit on an SM, which leaves 168 registers per
// thread (128 used: no spills).
#ifndef UMB_TABLE_SHARED
#define UMB_TABLE_SHARED 0
#endif

// Blocks per SM the compiler must leave room for (the second __launch_bounds__ argument) in the
// pair kernel: a higher value caps the registers per thread, trading spills for occupancy. A
// build may define it (`GpuOptions::nvrtc_options`) to measure that trade-off.
#ifndef UMB_MIN_BLOCKS
#if UMB_TABLE_SHARED
#define UMB_MIN_BLOCKS 3
#else
#define UMB_MIN_BLOCKS 6
#endif
#endif

// The same for the fixed-base kernel, whose occupancy does not depend on where the pair
// kernel keeps its tables.
#ifndef UMB_FIXED_MIN_BLOCKS
#define UMB_FIXED_MIN_BLOCKS 6
#endif

// Replaces z by 1/z for every thread of the block (all z non-zero): Montgomery's trick over a
// product tree in shared memory, one field inversion per block.
__device__ __forceinline__ void umb_block_invert(umb_u32 *tree, int t, const umb_fe &z,
                                                 umb_fe &zinv) {
    umb_tree_leaf(tree, t, z);
    __syncthreads();
    for (int s = UMB_BLOCK / 2; s >= 1; s >>= 1) {
        umb_tree_up(tree, s, t);
        __syncthreads();
    }
    umb_tree_root(tree, t);
    __syncthreads();
    for (int s = 1; s < UMB_BLOCK; s <<= 1) {
        umb_tree_down(tree, s, t);
        __syncthreads();
    }
    umb_tree_result(zinv, tree, t);
}

UMB_KERNEL void __launch_bounds__(UMB_BLOCK, UMB_MIN_BLOCKS)
umb_mul_pairs(const umb_u32 *UMB_RESTRICT bases, const umb_u32 *UMB_RESTRICT scalars,
              umb_u32 *UMB_RESTRICT out, umb_u32 n, umb_u32 second) {
    __shared__ umb_u32 tree[8 * 2 * UMB_BLOCK];
    int t = threadIdx.x;
    umb_u32 i = blockIdx.x * UMB_BLOCK + t;
    bool live = i < n;
    umb_pair_state st;
    umb_fe z, zinv;
    umb_pairs_phase1(st, z, bases, n, i, live);
    umb_block_invert(tree, t, z, zinv);
    __syncthreads();  // every thread has read its leaf before the tree is reused
#if UMB_TABLE_SHARED
    extern __shared__ umb_u32 umb_table_smem[];  // UMB_TABLE_SMEM_BYTES
    umb_table_view view = umb_table_in_shared(umb_table_smem, t);
#else
    umb_table_view view = umb_table_in_place(st.table);
#endif
    umb_pairs_phase2(st, z, zinv, view, scalars, n, i, live, second != 0);
    umb_block_invert(tree, t, z, zinv);
    umb_pairs_phase3(st, zinv, out, n, i, live);
}

UMB_KERNEL void __launch_bounds__(UMB_BLOCK, UMB_FIXED_MIN_BLOCKS)
umb_mul_fixed(const umb_u32 *UMB_RESTRICT table, const umb_u32 *UMB_RESTRICT scalars,
              umb_u32 *UMB_RESTRICT out, umb_u32 n) {
    __shared__ umb_u32 tree[8 * 2 * UMB_BLOCK];
    int t = threadIdx.x;
    umb_u32 i = blockIdx.x * UMB_BLOCK + t;
    bool live = i < n;
    umb_prj r;
    umb_fe z, zinv;
    umb_fixed_phase1(r, z, table, scalars, n, i, live);
    umb_block_invert(tree, t, z, zinv);
    umb_fixed_phase3(r, zinv, out, n, i, live);
}

UMB_KERNEL void __launch_bounds__(UMB_BLOCK)
umb_decompress(const umb_u32 *UMB_RESTRICT in, umb_u32 *UMB_RESTRICT out, umb_u32 n) {
    umb_u32 i = blockIdx.x * UMB_BLOCK + threadIdx.x;
    if (i < n) umb_decompress_item(in, out, n, i);  // index: public
}

UMB_KERNEL void __launch_bounds__(UMB_BLOCK)
umb_reenc_prep(const umb_u32 *UMB_RESTRICT in, umb_u32 *UMB_RESTRICT pair_in,
               umb_u32 *UMB_RESTRICT firsts_in, umb_u32 *UMB_RESTRICT prep, umb_u32 c) {
    umb_u32 i = blockIdx.x * UMB_BLOCK + threadIdx.x;
    if (i < c) umb_reenc_prep_item(in, pair_in, firsts_in, prep, c, i);  // index: public
}

UMB_KERNEL void __launch_bounds__(UMB_BLOCK)
umb_reenc_finish(const umb_u32 *UMB_RESTRICT in, const umb_u32 *UMB_RESTRICT pair_in,
                 const umb_u32 *UMB_RESTRICT pair_out, const umb_u32 *UMB_RESTRICT firsts_out,
                 const umb_u32 *UMB_RESTRICT g_out, const umb_u32 *UMB_RESTRICT u_out,
                 const umb_u32 *UMB_RESTRICT prep, umb_u32 *UMB_RESTRICT out, umb_u32 c) {
    umb_u32 i = blockIdx.x * UMB_BLOCK + threadIdx.x;
    if (i < c)  // index: public
        umb_reenc_finish_item(in, pair_in, pair_out, firsts_out, g_out, u_out, prep, out, c, i);
}
