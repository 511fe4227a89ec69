// SPDX-License-Identifier: GPL-3.0-only
//
// scalar.cuh: branch-free signed fixed-window recoding of 256-bit scalars and constant-time
// table selection.
//
// Recoding. With C = 0x8888...88 (a nibble of 8 in each of the 64 positions), k' = k + C has 257
// bits and k = sum_{i<64} (nib_i(k') - 8) 16^i + carry(k') 16^64. So the signed digits
// d_i = nib_i(k') - 8 lie in [-8, 7], the top digit d_64 = carry is 0 or 1, and every digit is
// read straight from k' at a public position: one 8-limb addition, no data-dependent branch,
// no per-digit carry propagation. Tables then need |d| in 0..8 and a conditional negation.
//
// Selection. A table entry is chosen by reading every entry and keeping the wanted one with a
// mask, so the sequence of memory addresses is the same for every scalar.
#ifndef UMB_SCALAR_CUH
#define UMB_SCALAR_CUH

#include "point.cuh"

// Number of 4-bit windows: 64 digits plus the 0/1 carry digit.
#define UMB_WINDOWS 65
// Entries of a fixed-base table row: |d| * 16^j * Q for |d| = 1..8.
#define UMB_ROW 8

// A scalar recoded for windowed multiplication: k + C as 8 limbs plus the carry bit.
struct umb_recoded {
    umb_u32 v[8];
    umb_u32 top;
};

// k (8 little-endian limbs, any 256-bit value) -> k + 0x8888...88.
UMB_DEVICE void umb_recode(umb_recoded &r, const umb_u32 k[8]) {
    umb_cc c = UMB_CC_INIT;
    r.v[0] = umb_add_cc(c, k[0], 0x88888888u);
UMB_UNROLL
    for (int i = 1; i < 8; i++) r.v[i] = umb_addc_cc(c, k[i], 0x88888888u);
    r.top = umb_addc(c, 0, 0);
}

// Digit i (0 <= i < 64, public) as magnitude in 0..8 and a negation mask.
UMB_DEVICE void umb_digit(const umb_recoded &r, int i, umb_u32 &mag, umb_u32 &neg) {
    umb_u32 nib = (r.v[i >> 3] >> (4 * (i & 7))) & 15u;
    umb_u32 nonneg = nib >> 3;               // nib >= 8  <=>  d = nib - 8 >= 0
    umb_u32 keep = umb_mask_from_bit(nonneg);
    mag = umb_select(keep, nib - 8u, 8u - nib);
    neg = ~keep & umb_mask_from_bit(umb_is_zero_bit(mag) ^ 1u);  // -0 is just 0
}

// A GLV half-scalar (a magnitude below 2^128) recoded the same way: m + 0x8888...88 (128 bits)
// as 4 limbs plus the carry bit; 32 digits in [-8, 7] and the top digit 0 or 1.
struct umb_recoded128 {
    umb_u32 v[4];
    umb_u32 top;
};

#define UMB_HALF_WINDOWS 32

UMB_DEVICE void umb_recode128(umb_recoded128 &r, const umb_u32 m[4]) {
    umb_cc c = UMB_CC_INIT;
    r.v[0] = umb_add_cc(c, m[0], 0x88888888u);
UMB_UNROLL
    for (int i = 1; i < 4; i++) r.v[i] = umb_addc_cc(c, m[i], 0x88888888u);
    r.top = umb_addc(c, 0, 0);
}

// Digit i (0 <= i < 32, public) of a recoded half-scalar, as in umb_digit.
UMB_DEVICE void umb_digit128(const umb_recoded128 &r, int i, umb_u32 &mag, umb_u32 &neg) {
    umb_u32 nib = (r.v[i >> 3] >> (4 * (i & 7))) & 15u;
    umb_u32 keep = umb_mask_from_bit(nib >> 3);
    mag = umb_select(keep, nib - 8u, 8u - nib);
    neg = ~keep & umb_mask_from_bit(umb_is_zero_bit(mag) ^ 1u);
}

#endif // UMB_SCALAR_CUH
