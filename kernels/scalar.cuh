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

// A value of L 32-bit limbs recoded for windowed multiplication: k + C (C = 0x8888...88 over
// the L limbs) as L limbs plus the carry bit: 8 L digits in [-8, 7] and the top digit 0 or 1.
template <int L>
struct umb_recoded_limbs {
    umb_u32 v[L];
    umb_u32 top;
};

// k (L little-endian limbs, any value) -> k + 0x8888...88.
template <int L>
UMB_DEVICE void umb_recode_limbs(umb_recoded_limbs<L> &r, const umb_u32 k[L]) {
    umb_cc c = UMB_CC_INIT;
    r.v[0] = umb_add_cc(c, k[0], 0x88888888u);
UMB_UNROLL
    for (int i = 1; i < L; i++) r.v[i] = umb_addc_cc(c, k[i], 0x88888888u);
    r.top = umb_addc(c, 0, 0);
}

// Digit i (0 <= i < 8 L, public) as magnitude in 0..8 and a negation mask.
template <int L>
UMB_DEVICE void umb_digit_of(const umb_recoded_limbs<L> &r, int i, umb_u32 &mag, umb_u32 &neg) {
    umb_u32 nib = (r.v[i >> 3] >> (4 * (i & 7))) & 15u;
    umb_u32 keep = umb_mask_from_bit(nib >> 3);  // nib >= 8  <=>  d = nib - 8 >= 0
    mag = umb_select(keep, nib - 8u, 8u - nib);
    neg = ~keep & umb_mask_from_bit(umb_is_zero_bit(mag) ^ 1u);  // -0 is just 0
}

// A full scalar (8 limbs): 64 digits and the top digit.
typedef umb_recoded_limbs<8> umb_recoded;

UMB_DEVICE void umb_recode(umb_recoded &r, const umb_u32 k[8]) { umb_recode_limbs<8>(r, k); }

UMB_DEVICE void umb_digit(const umb_recoded &r, int i, umb_u32 &mag, umb_u32 &neg) {
    umb_digit_of<8>(r, i, mag, neg);
}

// A GLV half-scalar (a magnitude below 2^128, 4 limbs): 32 digits and the top digit.
typedef umb_recoded_limbs<4> umb_recoded128;

#define UMB_HALF_WINDOWS 32

UMB_DEVICE void umb_recode128(umb_recoded128 &r, const umb_u32 m[4]) {
    umb_recode_limbs<4>(r, m);
}

UMB_DEVICE void umb_digit128(const umb_recoded128 &r, int i, umb_u32 &mag, umb_u32 &neg) {
    umb_digit_of<4>(r, i, mag, neg);
}

#endif // UMB_SCALAR_CUH
