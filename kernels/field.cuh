// SPDX-License-Identifier: GPL-3.0-only
//
// field.cuh: arithmetic in GF(p), p = 2^256 - 2^32 - 977 (secp256k1).
//
// Representation: eight 32-bit limbs, little-endian (v[0] least significant), always fully
// reduced to [0, p). Full reduction after every operation keeps equality and zero tests to a
// plain limb comparison; lazy reduction is a later optimisation (see kernels/README.md).
//
// Reduction uses the special form of p: 2^256 = 2^32 + 977 (mod p), so the high half H of a
// 512-bit product folds back as H * 977 + (H << 32) -- two cheap passes and one conditional
// subtraction instead of a general Montgomery or Barrett step.
//
// Every function runs the same instruction sequence for every input: no branch and no memory
// index depends on the values (conditional results are chosen with masks).
#ifndef UMB_FIELD_CUH
#define UMB_FIELD_CUH

#include "umb_types.cuh"
#include "carry.cuh"

// A field element: 8 little-endian 32-bit limbs in [0, p).
struct umb_fe {
    umb_u32 v[8];
};

// 2^256 - p = 2^32 + 977 = 0x1_000003D1, as (low limb, next limb).
#define UMB_P_COMP_LO 0x000003D1u
#define UMB_P_COMP_HI 0x00000001u

UMB_DEVICE void umb_fe_set_zero(umb_fe &r) {
UMB_UNROLL
    for (int i = 0; i < 8; i++) r.v[i] = 0;
}

UMB_DEVICE void umb_fe_set_one(umb_fe &r) {
    umb_fe_set_zero(r);
    r.v[0] = 1;
}

// r = mask ? a : r.
UMB_DEVICE void umb_fe_cmov(umb_fe &r, const umb_fe &a, umb_u32 mask) {
UMB_UNROLL
    for (int i = 0; i < 8; i++) r.v[i] = umb_select(mask, a.v[i], r.v[i]);
}

// all-ones if a == 0, else 0.
UMB_DEVICE umb_u32 umb_fe_is_zero(const umb_fe &a) {
    umb_u32 acc = 0;
UMB_UNROLL
    for (int i = 0; i < 8; i++) acc |= a.v[i];
    return umb_is_zero_mask(acc);
}

// all-ones if a == b, else 0.
UMB_DEVICE umb_u32 umb_fe_eq(const umb_fe &a, const umb_fe &b) {
    umb_u32 acc = 0;
UMB_UNROLL
    for (int i = 0; i < 8; i++) acc |= a.v[i] ^ b.v[i];
    return umb_is_zero_mask(acc);
}

// Given s in [0, 2^256) plus an extra carry bit `hi` (so the value is s + hi * 2^256 < 2p),
// returns the value mod p: subtracts p exactly when the value is >= p.
UMB_DEVICE void umb_fe_reduce_once(umb_fe &r, const umb_u32 s[8], umb_u32 hi) {
    // u = s + (2^256 - p); its carry-out says s >= p (when hi == 0).
    umb_cc c = UMB_CC_INIT;
    umb_u32 u[8];
    u[0] = umb_add_cc(c, s[0], UMB_P_COMP_LO);
    u[1] = umb_addc_cc(c, s[1], UMB_P_COMP_HI);
UMB_UNROLL
    for (int i = 2; i < 8; i++) u[i] = umb_addc_cc(c, s[i], 0);
    umb_u32 carry = umb_addc(c, 0, 0);
    // When hi == 1 the value is >= 2^256 > p and u (mod 2^256) is value - p, which is < p.
    umb_u32 take_u = umb_mask_from_bit(carry | hi);
UMB_UNROLL
    for (int i = 0; i < 8; i++) r.v[i] = umb_select(take_u, u[i], s[i]);
}

// r = a + b mod p.
UMB_DEVICE void umb_fe_add(umb_fe &r, const umb_fe &a, const umb_fe &b) {
    umb_cc c = UMB_CC_INIT;
    umb_u32 s[8];
    s[0] = umb_add_cc(c, a.v[0], b.v[0]);
UMB_UNROLL
    for (int i = 1; i < 8; i++) s[i] = umb_addc_cc(c, a.v[i], b.v[i]);
    umb_u32 hi = umb_addc(c, 0, 0);
    umb_fe_reduce_once(r, s, hi);
}

// r = a - b mod p.
UMB_DEVICE void umb_fe_sub(umb_fe &r, const umb_fe &a, const umb_fe &b) {
    umb_cc c = UMB_CC_INIT;
    umb_u32 d[8];
    d[0] = umb_sub_cc(c, a.v[0], b.v[0]);
UMB_UNROLL
    for (int i = 1; i < 8; i++) d[i] = umb_subc_cc(c, a.v[i], b.v[i]);
    umb_u32 borrow = umb_subc(c, 0, 0) & 1u;  // 0 - 0 - CF: all-ones on borrow
    // On borrow d holds a - b + 2^256; the answer a - b + p is d - (2^256 - p), which cannot
    // borrow again because a - b + 2^256 > 2^256 - p.
    umb_u32 m = umb_mask_from_bit(borrow);
    d[0] = umb_sub_cc(c, d[0], UMB_P_COMP_LO & m);
    d[1] = umb_subc_cc(c, d[1], UMB_P_COMP_HI & m);
UMB_UNROLL
    for (int i = 2; i < 7; i++) d[i] = umb_subc_cc(c, d[i], 0);
    d[7] = umb_subc(c, d[7], 0);
UMB_UNROLL
    for (int i = 0; i < 8; i++) r.v[i] = d[i];
}

// r = -a mod p.
UMB_DEVICE void umb_fe_neg(umb_fe &r, const umb_fe &a) {
    umb_fe z;
    umb_fe_set_zero(z);
    umb_fe_sub(r, z, a);
}

// r = mask ? -r : r.
UMB_DEVICE void umb_fe_cneg(umb_fe &r, umb_u32 mask) {
    umb_fe n;
    umb_fe_neg(n, r);
    umb_fe_cmov(r, n, mask);
}

// w[0..16) = a * b (full 512-bit product), operand scanning: for each limb b[i], one carry
// chain adds the low halves of a[j]*b[i] and a second adds the high halves one limb up.
UMB_DEVICE void umb_mul_wide(umb_u32 w[16], const umb_u32 a[8], const umb_u32 b[8]) {
UMB_UNROLL
    for (int k = 0; k < 16; k++) w[k] = 0;
UMB_UNROLL
    for (int i = 0; i < 8; i++) {
        umb_cc c = UMB_CC_INIT;
        // Low halves into w[i..i+8); the carry lands in w[i+8], which no earlier row touched.
        w[i] = umb_mad_lo_cc(c, a[0], b[i], w[i]);
UMB_UNROLL
        for (int j = 1; j < 8; j++) w[i + j] = umb_madc_lo_cc(c, a[j], b[i], w[i + j]);
        w[i + 8] = umb_addc(c, w[i + 8], 0);
        // High halves into w[i+1..i+9). The running sum after row i is below 2^(32*(i+9)),
        // so it fits in w[0..i+9) and the last add cannot carry.
        w[i + 1] = umb_mad_hi_cc(c, a[0], b[i], w[i + 1]);
UMB_UNROLL
        for (int j = 1; j < 7; j++) w[i + 1 + j] = umb_madc_hi_cc(c, a[j], b[i], w[i + 1 + j]);
        w[i + 8] = umb_madc_hi(c, a[7], b[i], w[i + 8]);
    }
}

// r = w mod p for a 512-bit w, using 2^256 = 2^32 + 977 (mod p).
UMB_DEVICE void umb_fe_reduce_wide(umb_fe &r, const umb_u32 w[16]) {
    const umb_u32 *lo = w;
    const umb_u32 *hi = w + 8;
    umb_cc c = UMB_CC_INIT;
    umb_u32 t[10];

    // Fold 1: t = lo + hi * 977 + (hi << 32) < 2^289.
    t[0] = umb_mad_lo_cc(c, hi[0], 977u, lo[0]);
UMB_UNROLL
    for (int j = 1; j < 8; j++) t[j] = umb_madc_lo_cc(c, hi[j], 977u, lo[j]);
    t[8] = umb_addc(c, 0, 0);

    t[1] = umb_mad_hi_cc(c, hi[0], 977u, t[1]);
UMB_UNROLL
    for (int j = 1; j < 8; j++) t[1 + j] = umb_madc_hi_cc(c, hi[j], 977u, t[1 + j]);
    t[9] = umb_addc(c, 0, 0);

    t[1] = umb_add_cc(c, t[1], hi[0]);
UMB_UNROLL
    for (int j = 1; j < 8; j++) t[1 + j] = umb_addc_cc(c, t[1 + j], hi[j]);
    t[9] = umb_addc(c, t[9], 0);

    // Fold 2: h = t >> 256 = t[8] + t[9] * 2^32 < 2^33, m = h * (2^32 + 977) < 2^66 as three
    // limbs (m0, m1, m2).
    umb_u32 h0 = t[8], h1 = t[9];
    umb_u32 m0 = h0 * 977u;
    umb_u32 m1 = umb_mad_hi_cc(c, h0, 977u, h0);  // hi(h0*977) + h0
    umb_u32 m2 = umb_addc(c, h1, 0);
    m1 = umb_mad_lo_cc(c, h1, 977u, m1);  // + h1*977 (< 2^10)
    m2 = umb_addc(c, m2, 0);

    umb_u32 s[8];
    s[0] = umb_add_cc(c, t[0], m0);
    s[1] = umb_addc_cc(c, t[1], m1);
    s[2] = umb_addc_cc(c, t[2], m2);
UMB_UNROLL
    for (int j = 3; j < 8; j++) s[j] = umb_addc_cc(c, t[j], 0);
    umb_u32 top = umb_addc(c, 0, 0);

    // Fold 3: if that overflowed, the low part is below 2^66, so adding top * (2^32 + 977)
    // cannot overflow again.
    s[0] = umb_mad_lo_cc(c, top, 977u, s[0]);
    s[1] = umb_addc_cc(c, s[1], top);
UMB_UNROLL
    for (int j = 2; j < 7; j++) s[j] = umb_addc_cc(c, s[j], 0);
    s[7] = umb_addc(c, s[7], 0);

    umb_fe_reduce_once(r, s, 0);
}

// Qualifier of the multiplication core. Called, not inlined, by default: a point formula holds
// a dozen multiplications, and inlined copies of the ~250-instruction body overflow the SM's
// instruction cache (the kernels then stall on instruction fetch;
// docs/PERFORMANCE.md#gpu-kernel-alone). A
// build may define it as UMB_DEVICE (`GpuOptions::nvrtc_options`) to compare.
#ifndef UMB_FIELD_FN
#define UMB_FIELD_FN UMB_NOINLINE
#endif

// a * b mod p, by value so that a called core keeps its operands in registers.
UMB_FIELD_FN umb_fe umb_fe_mul_core(umb_fe a, umb_fe b) {
    umb_u32 w[16];
    umb_mul_wide(w, a.v, b.v);
    umb_fe r;
    umb_fe_reduce_wide(r, w);
    return r;
}

// r = a * b mod p.
UMB_DEVICE void umb_fe_mul(umb_fe &r, const umb_fe &a, const umb_fe &b) {
    r = umb_fe_mul_core(a, b);
}

// w[0..16) = a^2: the 28 cross products a[i] a[j] (i < j) once, doubled by a one-bit shift,
// plus the 8 squares a[i]^2 -- 36 limb products (72 multiply instructions) against 64 (128).
// Rows as in umb_mul_wide; after row i the cross sum is below 2^(32 (i + 9)) (it is at most
// (a mod 2^(32 (i+1))) * 2^256), so w[i + 8] absorbs each row's last carry. The cross sum X
// satisfies 2X < a^2 < 2^512, so the shift loses no bit and the squares' chain ends carry-free.
UMB_DEVICE void umb_sqr_wide(umb_u32 w[16], const umb_u32 a[8]) {
UMB_UNROLL
    for (int k = 0; k < 16; k++) w[k] = 0;
UMB_UNROLL
    for (int i = 0; i < 7; i++) {
        umb_cc c = UMB_CC_INIT;
        // Low halves of a[j] a[i], j = i+1..7, into w[2i+1 .. i+8).
        w[2 * i + 1] = umb_mad_lo_cc(c, a[i + 1], a[i], w[2 * i + 1]);
UMB_UNROLL
        for (int j = i + 2; j < 8; j++) w[i + j] = umb_madc_lo_cc(c, a[j], a[i], w[i + j]);
        w[i + 8] = umb_addc(c, w[i + 8], 0);
        // High halves one limb up, into w[2i+2 .. i+9).
        if (i < 6) {  // unrolled: i is a compile-time constant
            w[2 * i + 2] = umb_mad_hi_cc(c, a[i + 1], a[i], w[2 * i + 2]);
UMB_UNROLL
            for (int j = i + 2; j < 7; j++)
                w[i + j + 1] = umb_madc_hi_cc(c, a[j], a[i], w[i + j + 1]);
            w[i + 8] = umb_madc_hi(c, a[7], a[i], w[i + 8]);
        } else {
            w[14] = umb_mad_hi_cc(c, a[7], a[6], w[14]);  // carry-free by the bound above
        }
    }
    // Double the cross sum.
    umb_cc c = UMB_CC_INIT;
    w[1] = umb_add_cc(c, w[1], w[1]);
UMB_UNROLL
    for (int k = 2; k < 15; k++) w[k] = umb_addc_cc(c, w[k], w[k]);
    w[15] = umb_addc(c, w[15], w[15]);
    // Add the squares a[i]^2 at limb 2i.
    w[0] = umb_mad_lo_cc(c, a[0], a[0], w[0]);
    w[1] = umb_madc_hi_cc(c, a[0], a[0], w[1]);
UMB_UNROLL
    for (int i = 1; i < 7; i++) {
        w[2 * i] = umb_madc_lo_cc(c, a[i], a[i], w[2 * i]);
        w[2 * i + 1] = umb_madc_hi_cc(c, a[i], a[i], w[2 * i + 1]);
    }
    w[14] = umb_madc_lo_cc(c, a[7], a[7], w[14]);
    w[15] = umb_madc_hi(c, a[7], a[7], w[15]);
}

// a^2 mod p, called like umb_fe_mul_core.
UMB_FIELD_FN umb_fe umb_fe_sqr_core(umb_fe a) {
    umb_u32 w[16];
    umb_sqr_wide(w, a.v);
    umb_fe r;
    umb_fe_reduce_wide(r, w);
    return r;
}

// r = a^2 mod p.
UMB_DEVICE void umb_fe_sqr(umb_fe &r, const umb_fe &a) { r = umb_fe_sqr_core(a); }

// r = a * c mod p for a small public constant c (below 2^16; the point formulas use 21 = 3b).
// One row of products and a single fold: about a sixth of a full multiplication.
UMB_DEVICE void umb_fe_mul_small(umb_fe &r, const umb_fe &a, umb_u32 c) {
    umb_cc cc = UMB_CC_INIT;
    umb_u32 w[8];
UMB_UNROLL
    for (int j = 0; j < 8; j++) w[j] = a.v[j] * c;  // low halves
    // High halves one limb up; the top one, h < c, is the part above 2^256.
    w[1] = umb_mad_hi_cc(cc, a.v[0], c, w[1]);
UMB_UNROLL
    for (int j = 1; j < 7; j++) w[j + 1] = umb_madc_hi_cc(cc, a.v[j], c, w[j + 1]);
    umb_u32 h = umb_madc_hi(cc, a.v[7], c, 0);
    // h * 2^256 = h * (2^32 + 977) (mod p); h * 977 < 2^26 fits one limb.
    umb_u32 s[8];
    s[0] = umb_add_cc(cc, w[0], h * 977u);
    s[1] = umb_addc_cc(cc, w[1], h);
UMB_UNROLL
    for (int j = 2; j < 8; j++) s[j] = umb_addc_cc(cc, w[j], 0);
    umb_u32 top = umb_addc(cc, 0, 0);
    // On overflow the low part is below 2^49, so one more fold cannot overflow again.
    s[0] = umb_add_cc(cc, s[0], top * 977u);
    s[1] = umb_addc_cc(cc, s[1], top);
UMB_UNROLL
    for (int j = 2; j < 7; j++) s[j] = umb_addc_cc(cc, s[j], 0);
    s[7] = umb_addc(cc, s[7], 0);
    umb_fe_reduce_once(r, s, 0);
}

// r = a^(2^n) mod p: n successive squarings (n is a public constant).
UMB_NOINLINE void umb_fe_sqr_n(umb_fe &r, const umb_fe &a, int n) {
    r = a;
    for (int i = 0; i < n; i++) umb_fe_sqr(r, r);
}

// The common head of libsecp256k1's inversion and square-root chains: x_k = a^(2^k - 1) for
// k = 2, 3, 22 and 223 (247 squarings and 12 multiplications whatever the input).
struct umb_fe_chain {
    umb_fe x2, x3, x22, x223;
};

UMB_NOINLINE void umb_fe_chain_head(umb_fe_chain &c, const umb_fe &a) {
    umb_fe x6, x9, x11, x44, x88, x176, x220;
    umb_fe_sqr(c.x2, a);
    umb_fe_mul(c.x2, c.x2, a);  // 2^2 - 1
    umb_fe_sqr(c.x3, c.x2);
    umb_fe_mul(c.x3, c.x3, a);  // 2^3 - 1
    umb_fe_sqr_n(x6, c.x3, 3);
    umb_fe_mul(x6, x6, c.x3);
    umb_fe_sqr_n(x9, x6, 3);
    umb_fe_mul(x9, x9, c.x3);
    umb_fe_sqr_n(x11, x9, 2);
    umb_fe_mul(x11, x11, c.x2);
    umb_fe_sqr_n(c.x22, x11, 11);
    umb_fe_mul(c.x22, c.x22, x11);
    umb_fe_sqr_n(x44, c.x22, 22);
    umb_fe_mul(x44, x44, c.x22);
    umb_fe_sqr_n(x88, x44, 44);
    umb_fe_mul(x88, x88, x44);
    umb_fe_sqr_n(x176, x88, 88);
    umb_fe_mul(x176, x176, x88);
    umb_fe_sqr_n(x220, x176, 44);
    umb_fe_mul(x220, x220, x44);
    umb_fe_sqr_n(c.x223, x220, 3);
    umb_fe_mul(c.x223, c.x223, c.x3);
}

// r = a^(p-2) = a^-1 mod p (and 0 for a = 0), by a fixed addition chain: 255 squarings and
// 15 multiplications whatever the input (the chain of libsecp256k1's secp256k1_fe_inv).
UMB_NOINLINE void umb_fe_inv(umb_fe &r, const umb_fe &a) {
    umb_fe_chain c;
    umb_fe_chain_head(c, a);
    umb_fe t;
    // p - 2 = [223 ones] 0 [22 ones] 0000 1 0 11 0 1  (blocks 223, 22, 1, 2, 1 from the top)
    umb_fe_sqr_n(t, c.x223, 23);
    umb_fe_mul(t, t, c.x22);
    umb_fe_sqr_n(t, t, 5);
    umb_fe_mul(t, t, a);
    umb_fe_sqr_n(t, t, 3);
    umb_fe_mul(t, t, c.x2);
    umb_fe_sqr_n(t, t, 2);
    umb_fe_mul(r, t, a);
}

// r = a^((p+1)/4): a square root of a when a is a square (p = 3 mod 4), by libsecp256k1's
// chain (the inversion's x2 ... x223, then 23 + 6 + 2 squarings and 2 multiplications). The
// caller checks r^2 == a.
UMB_NOINLINE void umb_fe_sqrt_candidate(umb_fe &r, const umb_fe &a) {
    umb_fe_chain c;
    umb_fe_chain_head(c, a);
    umb_fe t;
    // (p+1)/4 = [223 ones] 0 [22 ones] 0000 11 00
    umb_fe_sqr_n(t, c.x223, 23);
    umb_fe_mul(t, t, c.x22);
    umb_fe_sqr_n(t, t, 6);
    umb_fe_mul(t, t, c.x2);
    umb_fe_sqr_n(r, t, 2);
}

// Big-endian 32 bytes -> field element, reducing once (any 256-bit input is below 2p).
UMB_DEVICE void umb_fe_from_be(umb_fe &r, const umb_u8 b[32]) {
    umb_u32 s[8];
UMB_UNROLL
    for (int i = 0; i < 8; i++) {
        const umb_u8 *q = b + 28 - 4 * i;
        s[i] = ((umb_u32)q[0] << 24) | ((umb_u32)q[1] << 16) | ((umb_u32)q[2] << 8) | q[3];
    }
    umb_fe_reduce_once(r, s, 0);
}

// Field element -> big-endian 32 bytes.
UMB_DEVICE void umb_fe_to_be(umb_u8 b[32], const umb_fe &a) {
UMB_UNROLL
    for (int i = 0; i < 8; i++) {
        umb_u8 *q = b + 28 - 4 * i;
        q[0] = (umb_u8)(a.v[i] >> 24);
        q[1] = (umb_u8)(a.v[i] >> 16);
        q[2] = (umb_u8)(a.v[i] >> 8);
        q[3] = (umb_u8)a.v[i];
    }
}

#endif // UMB_FIELD_CUH
