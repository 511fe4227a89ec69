// SPDX-License-Identifier: GPL-3.0-only
//
// umb_types.cuh: fixed-width types, qualifiers and constant-time mask helpers shared by every
// kernel header. The headers compile both under NVRTC (device code) and as plain host C++ (the
// test harness in host_harness.cpp); NVRTC cannot include <stdint.h>, so the widths are defined
// here and checked with static_assert.
#ifndef UMB_TYPES_CUH
#define UMB_TYPES_CUH

typedef unsigned char umb_u8;
typedef unsigned int umb_u32;
typedef unsigned long long umb_u64;
typedef int umb_i32;

static_assert(sizeof(umb_u8) == 1, "umb_u8 must be 8 bits");
static_assert(sizeof(umb_u32) == 4, "umb_u32 must be 32 bits");
static_assert(sizeof(umb_u64) == 8, "umb_u64 must be 64 bits");

#if defined(__CUDACC__)
// Device build (NVRTC or nvcc): everything below the kernels is inlined into them.
#define UMB_DEVICE __device__ __forceinline__
// Large functions (point formulas, inversion, the multiplication loops) are called, not inlined:
// inlining everything makes ~7 MB of PTX and minutes of NVRTC and JIT time at start-up.
#define UMB_NOINLINE __device__ __noinline__
#define UMB_KERNEL extern "C" __global__
#define UMB_RESTRICT __restrict__
#define UMB_UNROLL _Pragma("unroll")
#else
// Host build (the cc-built test harness): ordinary inline functions.
#define UMB_DEVICE static inline
#define UMB_NOINLINE static
#define UMB_RESTRICT
#define UMB_UNROLL
#endif

// Threads per block of every batch kernel. The host launches exactly this many threads per
// block, and the per-block batch inversion uses it as its tree size, so it must be a power of
// two. 128 keeps the shared-memory tree at 8 KiB and leaves room for a register-heavy kernel.
#define UMB_BLOCK 128

// ---------------------------------------------------------------------------------------------
// Constant-time helpers. A "mask" is 0x00000000 or 0xFFFFFFFF; a "bit" is 0 or 1. None of these
// branches; callers combine them with & | ^ only, so that no control flow and no memory index
// ever depends on secret data.
// ---------------------------------------------------------------------------------------------

// 0/1 -> all-zeros/all-ones.
UMB_DEVICE umb_u32 umb_mask_from_bit(umb_u32 bit) { return 0u - bit; }

// 1 if x == 0, else 0.
UMB_DEVICE umb_u32 umb_is_zero_bit(umb_u32 x) { return ((x | (0u - x)) >> 31) ^ 1u; }

// all-ones if x == 0, else 0.
UMB_DEVICE umb_u32 umb_is_zero_mask(umb_u32 x) { return umb_mask_from_bit(umb_is_zero_bit(x)); }

// all-ones if a == b, else 0.
UMB_DEVICE umb_u32 umb_eq_mask(umb_u32 a, umb_u32 b) { return umb_is_zero_mask(a ^ b); }

// mask ? a : b, without branching.
UMB_DEVICE umb_u32 umb_select(umb_u32 mask, umb_u32 a, umb_u32 b) { return (a & mask) | (b & ~mask); }

#endif // UMB_TYPES_CUH
