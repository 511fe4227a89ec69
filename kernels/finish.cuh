// SPDX-License-Identifier: GPL-3.0-only
//
// finish.cuh: the capsule-specific parts of Umbral cfrags from the pair and fixed-base kernels'
// outputs, so that the host reads back bytes instead of points: SEC1 compression, the curve
// check of every product, SHA-256, the challenge h = H(E, E1, E2, V, V1, V2, U, U1, U2) reduced
// as umbral-pre 0.11 does it (digest mod (n - 1) + 1), and the proof's response
// z = rk * h + t mod n. One thread per capsule, no barrier (the last step of umb_reenc_finish in
// reenc.cuh).
//
// Layout (column layout as in scalar_mul.cuh: word w of item i at [w * n + i]), c capsules:
//   pair_in    the umb_mul_pairs input for n = 2c items: item 2j = E_j, item 2j + 1 = V_j,
//              both with the scalars [rk_j, t_j] (read from item 2j)
//   pair_out   its output (34 rows): E1 = rk E, E2 = t E (slots 0, 1 of item 2j), V1 = rk V,
//              V2 = t V (slots 0, 1 of item 2j + 1)
//   fixed_out  the umb_mul_fixed output with U's table for the c scalars t_j: U2 = t U
//   u1_in      9 rows, n = c: U1's 33 compressed bytes, byte b in word b / 4 at bits
//              8 (b % 4), bytes 33..35 zero
//   out        51 rows, n = c: rows 0..49 the 197 bytes E1 || V1 || E2 || V2 || U2 (33 bytes
//              each, SEC1 compressed) || z (32 bytes big-endian) packed as u1_in (bytes
//              197..199 zero); row 50 the status: bit 0 some product's identity flag is set,
//              bit 1 some product is not on the curve. Non-zero status: the other rows are
//              still written (deterministically) but mean nothing.
//
// Scalars mod n: eight little-endian 32-bit limbs, like field elements. rk and t are secrets:
// z = rk h + t is a fixed sequence of carry-chain operations (a 512-bit product, three folds
// with 2^256 = N_C (mod n), masked subtractions of n) whatever the values. Everything else here
// (the points, the message, the digest, h) is public, published in the cfrag.
#ifndef UMB_FINISH_CUH
#define UMB_FINISH_CUH

#include "scalar_mul.cuh"

#define UMB_CFRAG_U1_ROWS 9
#define UMB_CFRAG_OUT_ROWS 51
// Bytes of rows 0..49 of the output: five compressed points and z.
#define UMB_CFRAG_PART_BYTES 197
// The challenge's message: 4 + 18 bytes of domain tag, nine 33-byte points.
#define UMB_CFRAG_MSG_BYTES 319

// ------------------------------------------------------------------ byte and word helpers

// Big-endian bytes at b -> one word.
UMB_DEVICE umb_u32 umb_be32(const umb_u8 *b) {
    return ((umb_u32)b[0] << 24) | ((umb_u32)b[1] << 16) | ((umb_u32)b[2] << 8) | b[3];
}

// Big-endian 32 bytes -> 8 little-endian limbs (no reduction).
UMB_DEVICE void umb_words_from_be(umb_u32 r[8], const umb_u8 b[32]) {
UMB_UNROLL
    for (int i = 0; i < 8; i++) r[i] = umb_be32(b + 28 - 4 * i);
}

// 8 little-endian limbs -> big-endian 32 bytes.
UMB_DEVICE void umb_words_to_be(umb_u8 b[32], const umb_u32 a[8]) {
UMB_UNROLL
    for (int i = 0; i < 8; i++) {
        umb_u8 *q = b + 28 - 4 * i;
        q[0] = (umb_u8)(a[i] >> 24);
        q[1] = (umb_u8)(a[i] >> 16);
        q[2] = (umb_u8)(a[i] >> 8);
        q[3] = (umb_u8)a[i];
    }
}

// ------------------------------------------------------------------ SHA-256 (public data)

UMB_DEVICE umb_u32 umb_rotr(umb_u32 x, int k) { return (x >> k) | (x << (32 - k)); }

// One SHA-256 compression of a 64-byte block into the state h (FIPS 180-4, 6.2.2), with the
// message schedule kept as a rolling window of 16 words.
UMB_NOINLINE void umb_sha256_compress(umb_u32 h[8], const umb_u8 *block) {
    const umb_u32 k[64] = {
        0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u, 0x3956c25bu, 0x59f111f1u,
        0x923f82a4u, 0xab1c5ed5u, 0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u,
        0x72be5d74u, 0x80deb1feu, 0x9bdc06a7u, 0xc19bf174u, 0xe49b69c1u, 0xefbe4786u,
        0x0fc19dc6u, 0x240ca1ccu, 0x2de92c6fu, 0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau,
        0x983e5152u, 0xa831c66du, 0xb00327c8u, 0xbf597fc7u, 0xc6e00bf3u, 0xd5a79147u,
        0x06ca6351u, 0x14292967u, 0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu, 0x53380d13u,
        0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u, 0xa2bfe8a1u, 0xa81a664bu,
        0xc24b8b70u, 0xc76c51a3u, 0xd192e819u, 0xd6990624u, 0xf40e3585u, 0x106aa070u,
        0x19a4c116u, 0x1e376c08u, 0x2748774cu, 0x34b0bcb5u, 0x391c0cb3u, 0x4ed8aa4au,
        0x5b9cca4fu, 0x682e6ff3u, 0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u,
        0x90befffau, 0xa4506cebu, 0xbef9a3f7u, 0xc67178f2u};
    umb_u32 w[16];
UMB_UNROLL
    for (int i = 0; i < 16; i++) w[i] = umb_be32(block + 4 * i);
    umb_u32 a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
UMB_UNROLL
    for (int i = 0; i < 64; i++) {
        if (i >= 16) {  // unrolled: i is a compile-time constant
            umb_u32 w15 = w[(i - 15) & 15], w2 = w[(i - 2) & 15];
            umb_u32 s0 = umb_rotr(w15, 7) ^ umb_rotr(w15, 18) ^ (w15 >> 3);
            umb_u32 s1 = umb_rotr(w2, 17) ^ umb_rotr(w2, 19) ^ (w2 >> 10);
            w[i & 15] += s0 + w[(i - 7) & 15] + s1;
        }
        umb_u32 t1 = hh + (umb_rotr(e, 6) ^ umb_rotr(e, 11) ^ umb_rotr(e, 25)) +
                     ((e & f) ^ (~e & g)) + k[i] + w[i & 15];
        umb_u32 t2 = (umb_rotr(a, 2) ^ umb_rotr(a, 13) ^ umb_rotr(a, 22)) +
                     ((a & b) ^ (a & c) ^ (b & c));
        hh = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += hh;
}

// out = SHA-256(msg[0..len)): the whole blocks straight from msg, then the padded tail (one or
// two blocks). len is public.
UMB_NOINLINE void umb_sha256(umb_u8 out[32], const umb_u8 *msg, umb_u32 len) {
    umb_u32 h[8] = {0x6a09e667u, 0xbb67ae85u, 0x3c6ef372u, 0xa54ff53au,
                    0x510e527fu, 0x9b05688cu, 0x1f83d9abu, 0x5be0cd19u};
    umb_u32 full = len / 64;
    for (umb_u32 b = 0; b < full; b++) umb_sha256_compress(h, msg + (umb_u64)b * 64);
    umb_u32 rest = len - full * 64;
    umb_u8 tail[128];
    for (int i = 0; i < 128; i++) tail[i] = 0;
    for (umb_u32 i = 0; i < rest; i++) tail[i] = msg[(umb_u64)full * 64 + i];
    tail[rest] = 0x80;
    umb_u32 blocks = rest < 56 ? 1u : 2u;
    umb_u64 bits = (umb_u64)len * 8;
    for (int i = 0; i < 8; i++) tail[blocks * 64 - 1 - i] = (umb_u8)(bits >> (8 * i));
    umb_sha256_compress(h, tail);
    if (blocks == 2) umb_sha256_compress(h, tail + 64);
UMB_UNROLL
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (umb_u8)(h[i] >> 24);
        out[4 * i + 1] = (umb_u8)(h[i] >> 16);
        out[4 * i + 2] = (umb_u8)(h[i] >> 8);
        out[4 * i + 3] = (umb_u8)h[i];
    }
}

// ------------------------------------------------------------------ scalars mod n

// n = FFFFFFFF FFFFFFFF FFFFFFFF FFFFFFFE BAAEDCE6 AF48A03B BFD25E8C D0364141, and
// N_C = 2^256 - n = 1 45512319 50B75FC4 402DA173 2FC9BEBF (129 bits) as limbs 0..3 (limb 4 is 1).
#define UMB_N_C_0 0x2FC9BEBFu
#define UMB_N_C_1 0x402DA173u
#define UMB_N_C_2 0x50B75FC4u
#define UMB_N_C_3 0x45512319u

// Given s in [0, 2^256) plus a carry bit hi (the value s + hi 2^256 is below 2n), returns the
// value mod n: subtracts n (adds N_C mod 2^256) exactly when the value is >= n, by mask.
UMB_DEVICE void umb_sc_reduce_once(umb_u32 r[8], const umb_u32 s[8], umb_u32 hi) {
    umb_cc c = UMB_CC_INIT;
    umb_u32 u[8];
    u[0] = umb_add_cc(c, s[0], UMB_N_C_0);
    u[1] = umb_addc_cc(c, s[1], UMB_N_C_1);
    u[2] = umb_addc_cc(c, s[2], UMB_N_C_2);
    u[3] = umb_addc_cc(c, s[3], UMB_N_C_3);
    u[4] = umb_addc_cc(c, s[4], 1u);
UMB_UNROLL
    for (int i = 5; i < 8; i++) u[i] = umb_addc_cc(c, s[i], 0);
    umb_u32 carry = umb_addc(c, 0, 0);  // s >= n
    umb_u32 take_u = umb_mask_from_bit(carry | hi);
UMB_UNROLL
    for (int i = 0; i < 8; i++) r[i] = umb_select(take_u, u[i], s[i]);
}

// r[0..RN) = lo[0..8) + hi[0..HN) * N_C, one carry chain per row of products, each carried to
// the top limb (the caller's RN leaves room for the whole sum, so the last carry is always 0).
// Needs RN >= 9 and RN >= HN + 5 (row 3's high halves end at limb HN + 3, their carry at
// HN + 4).
template <int HN, int RN>
UMB_DEVICE void umb_sc_fold(umb_u32 r[RN], const umb_u32 lo[8], const umb_u32 hi[HN]) {
    const umb_u32 nc[4] = {UMB_N_C_0, UMB_N_C_1, UMB_N_C_2, UMB_N_C_3};
UMB_UNROLL
    for (int k = 0; k < RN; k++) r[k] = k < 8 ? lo[k] : 0u;
UMB_UNROLL
    for (int j = 0; j < 4; j++) {
        umb_cc c = UMB_CC_INIT;
        // Low halves of hi[k] * nc[j] at limb j + k.
        r[j] = umb_mad_lo_cc(c, hi[0], nc[j], r[j]);
UMB_UNROLL
        for (int k = 1; k < HN; k++) r[j + k] = umb_madc_lo_cc(c, hi[k], nc[j], r[j + k]);
UMB_UNROLL
        for (int k = j + HN; k < RN - 1; k++) r[k] = umb_addc_cc(c, r[k], 0);
        r[RN - 1] = umb_addc(c, r[RN - 1], 0);
        // High halves one limb up.
        r[j + 1] = umb_mad_hi_cc(c, hi[0], nc[j], r[j + 1]);
UMB_UNROLL
        for (int k = 1; k < HN; k++)
            r[j + 1 + k] = umb_madc_hi_cc(c, hi[k], nc[j], r[j + 1 + k]);
UMB_UNROLL
        for (int k = j + 1 + HN; k < RN - 1; k++) r[k] = umb_addc_cc(c, r[k], 0);
        r[RN - 1] = umb_addc(c, r[RN - 1], 0);
    }
    // N_C's limb 4 is 1: hi itself at limb 4.
    umb_cc c = UMB_CC_INIT;
    r[4] = umb_add_cc(c, r[4], hi[0]);
UMB_UNROLL
    for (int k = 1; k < HN; k++) r[4 + k] = umb_addc_cc(c, r[4 + k], hi[k]);
UMB_UNROLL
    for (int k = 4 + HN; k < RN - 1; k++) r[k] = umb_addc_cc(c, r[k], 0);
    r[RN - 1] = umb_addc(c, r[RN - 1], 0);
}

// r = w mod n for a 512-bit w, with 2^256 = N_C (mod n), in libsecp256k1's three fixed rounds
// (secp256k1_scalar_reduce_512):
//   m = w_lo + w_hi N_C    < 2^256 + 2^385, 13 limbs (m >> 256 <= 2^129: 5 limbs)
//   p = m_lo + m_hi N_C    < 2^256 + 2^258, 10 limbs (p >> 256 < 8: limbs 8, 9)
//   q = p_lo + p_hi N_C    < 2^256 + 2^132 < 2n, 9 limbs (limb 8 is 0 or 1)
// and one masked subtraction of n. The same operations for every w.
UMB_NOINLINE void umb_sc_reduce_wide(umb_u32 r[8], const umb_u32 w[16]) {
    umb_u32 m[13], p[10], q[9];
    umb_sc_fold<8, 13>(m, w, w + 8);
    umb_sc_fold<5, 10>(p, m, m + 8);
    umb_sc_fold<2, 9>(q, p, p + 8);
    umb_sc_reduce_once(r, q, q[8]);
}

// r = a b + c mod n for a, b any 256-bit values and c < n (secrets: constant time).
UMB_NOINLINE void umb_sc_mul_add(umb_u32 r[8], const umb_u32 a[8], const umb_u32 b[8],
                                 const umb_u32 c[8]) {
    umb_u32 w[16], s[8];
    umb_mul_wide(w, a, b);
    umb_sc_reduce_wide(s, w);
    umb_cc cc = UMB_CC_INIT;
    s[0] = umb_add_cc(cc, s[0], c[0]);
UMB_UNROLL
    for (int i = 1; i < 8; i++) s[i] = umb_addc_cc(cc, s[i], c[i]);
    umb_u32 hi = umb_addc(cc, 0, 0);
    umb_sc_reduce_once(r, s, hi);  // s + hi 2^256 < 2n
}

// h = d mod (n - 1) + 1 for a 256-bit digest d (as limbs), umbral-pre's hash-to-scalar (k256's
// ReduceNonZero): d < 2^256 < 2 (n - 1), so one masked subtraction of n - 1; the result is at
// most n - 2 and the + 1 cannot carry out. Public data, masks anyway.
UMB_DEVICE void umb_sc_from_digest(umb_u32 h[8], const umb_u32 d[8]) {
    // n - 1, little-endian limbs.
    const umb_u32 nm1[8] = {0xD0364140u, 0xBFD25E8Cu, 0xAF48A03Bu, 0xBAAEDCE6u,
                            0xFFFFFFFEu, 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu};
    umb_cc c = UMB_CC_INIT;
    umb_u32 u[8];
    u[0] = umb_sub_cc(c, d[0], nm1[0]);
UMB_UNROLL
    for (int i = 1; i < 8; i++) u[i] = umb_subc_cc(c, d[i], nm1[i]);
    umb_u32 borrow = umb_subc(c, 0, 0) & 1u;  // d < n - 1
    umb_u32 keep_d = umb_mask_from_bit(borrow);
UMB_UNROLL
    for (int i = 0; i < 8; i++) u[i] = umb_select(keep_d, d[i], u[i]);
    h[0] = umb_add_cc(c, u[0], 1u);
UMB_UNROLL
    for (int i = 1; i < 7; i++) h[i] = umb_addc_cc(c, u[i], 0);
    h[7] = umb_addc(c, u[7], 0);
}

// ------------------------------------------------------------------ points

// all-ones if (x, y) (reduced) is on y^2 = x^3 + 7.
UMB_NOINLINE umb_u32 umb_on_curve(const umb_fe &x, const umb_fe &y) {
    umb_fe lhs, rhs, seven;
    umb_fe_sqr(lhs, y);
    umb_fe_sqr(rhs, x);
    umb_fe_mul(rhs, rhs, x);
    umb_fe_set_zero(seven);
    seven.v[0] = 7;
    umb_fe_add(rhs, rhs, seven);
    return umb_fe_eq(lhs, rhs);
}

// The 33-byte SEC1 compressed form of (x, y): 02 | (y odd), then x big-endian.
UMB_DEVICE void umb_put_compressed(umb_u8 out[33], const umb_fe &x, const umb_fe &y) {
    out[0] = (umb_u8)(2u | (y.v[0] & 1u));
    umb_fe_to_be(out + 1, x);
}

// A point from 16 rows (x limbs, y limbs) at item i of an n-item array, each coordinate reduced
// mod p (the kernels store reduced values; this makes any 256-bit input well defined).
UMB_DEVICE void umb_load_xy_col(umb_fe &x, umb_fe &y, const umb_u32 *base, umb_u32 n,
                                umb_u32 i) {
    umb_u32 s[8];
    umb_load_words_col(s, base, n, i);
    umb_fe_reduce_once(x, s, 0);
    umb_load_words_col(s, base + (umb_u64)8 * n, n, i);
    umb_fe_reduce_once(y, s, 0);
}

// One 17-row product slot (x, y, identity flag) at item i: its compressed form into out, and
// its status bits: 1 if the flag is set, 2 if (x, y) is not on the curve. Called, not inlined:
// inlined, ptxas hoists the loads of all five products at once (126 registers, against 62).
UMB_NOINLINE umb_u32 umb_put_product(umb_u8 out[33], const umb_u32 *slot, umb_u32 n, umb_u32 i) {
    umb_fe x, y;
    umb_load_xy_col(x, y, slot, n, i);
    umb_put_compressed(out, x, y);
    umb_u32 flag = slot[(umb_u64)16 * n + i];
    return (umb_is_zero_bit(flag) ^ 1u) | ((~umb_on_curve(x, y) & 1u) << 1);
}

// ------------------------------------------------------------------ the kernel's thread body

// Offsets of the points in the challenge's message (after the 22-byte tag).
#define UMB_MSG_E 22
#define UMB_MSG_E1 (UMB_MSG_E + 33)
#define UMB_MSG_E2 (UMB_MSG_E + 66)
#define UMB_MSG_V (UMB_MSG_E + 99)
#define UMB_MSG_V1 (UMB_MSG_E + 132)
#define UMB_MSG_V2 (UMB_MSG_E + 165)
#define UMB_MSG_U (UMB_MSG_E + 198)
#define UMB_MSG_U1 (UMB_MSG_E + 231)
#define UMB_MSG_U2 (UMB_MSG_E + 264)

// Capsule i of c (layout at the top of this file). status_in: bits the caller ORs into the
// status word (umb_reenc_finish in reenc.cuh passes its capsule check's and decompression's
// bits; the host harness's umbh_finish_parts 0).
UMB_NOINLINE void umb_cfrag_parts_item(const umb_u32 *pair_in, const umb_u32 *pair_out,
                                       const umb_u32 *fixed_out, const umb_u32 *u1_in,
                                       umb_u32 *out, umb_u32 c, umb_u32 i, umb_u32 status_in) {
    // Umbral's U, compressed (crates/umbrald-core/src/curve/params.rs, U_COMPRESSED).
    const umb_u8 u_point[33] = {0x03, 0x07, 0x93, 0x90, 0xd0, 0xfb, 0xe2, 0x20, 0xfc,
                                0x34, 0xaa, 0xb8, 0xec, 0xbf, 0x49, 0x09, 0x80, 0x98,
                                0x03, 0x68, 0x20, 0xfa, 0xdb, 0x98, 0xc0, 0x31, 0x43,
                                0xe5, 0x5d, 0xb8, 0xec, 0x73, 0xcd};
    const umb_u8 tag[22] = {0, 0, 0, 18, 'C', 'F', 'R', 'A', 'G', '_', 'V',
                            'E', 'R', 'I', 'F', 'I', 'C', 'A', 'T', 'I', 'O', 'N'};
    umb_u32 n2 = 2 * c, ie = 2 * i, iv = 2 * i + 1;
    const umb_u32 *slot1 = pair_out + (umb_u64)17 * n2;

    // The message: tag || E || E1 || E2 || V || V1 || V2 || U || U1 || U2.
    umb_u8 msg[UMB_CFRAG_MSG_BYTES];
UMB_UNROLL
    for (int b = 0; b < 22; b++) msg[b] = tag[b];
    umb_fe x, y;
    umb_load_xy_col(x, y, pair_in, n2, ie);
    umb_put_compressed(msg + UMB_MSG_E, x, y);
    umb_load_xy_col(x, y, pair_in, n2, iv);
    umb_put_compressed(msg + UMB_MSG_V, x, y);
    umb_u32 status = status_in | umb_put_product(msg + UMB_MSG_E1, pair_out, n2, ie);
    status |= umb_put_product(msg + UMB_MSG_E2, slot1, n2, ie);
    status |= umb_put_product(msg + UMB_MSG_V1, pair_out, n2, iv);
    status |= umb_put_product(msg + UMB_MSG_V2, slot1, n2, iv);
    status |= umb_put_product(msg + UMB_MSG_U2, fixed_out, c, i);
UMB_UNROLL
    for (int b = 0; b < 33; b++) {
        msg[UMB_MSG_U + b] = u_point[b];
        umb_u32 word = u1_in[(umb_u64)(b / 4) * c + i];
        msg[UMB_MSG_U1 + b] = (umb_u8)(word >> (8 * (b % 4)));
    }

    // h = H(message), z = rk h + t mod n.
    umb_u8 digest[32];
    umb_sha256(digest, msg, UMB_CFRAG_MSG_BYTES);
    umb_u32 d[8], h[8], rk[8], t[8], z[8];
    umb_words_from_be(d, digest);
    umb_sc_from_digest(h, d);
    const umb_u32 *scalars = pair_in + (umb_u64)UMB_PAIR_IN_ROWS * n2;
    umb_load_words_col(rk, scalars, n2, ie);
    umb_load_words_col(t, scalars + (umb_u64)8 * n2, n2, ie);
    umb_sc_mul_add(z, rk, h, t);

    // E1 || V1 || E2 || V2 || U2 || z, packed little-endian into 50 words, then the status.
    // Each byte is read where it lies (the message, z's limbs) at an offset fixed at compile
    // time, without a 200-byte staging array (which ptxas keeps in registers: 72 against 62).
    const int parts[5] = {UMB_MSG_E1, UMB_MSG_V1, UMB_MSG_E2, UMB_MSG_V2, UMB_MSG_U2};
UMB_UNROLL
    for (int w = 0; w < 50; w++) {
        umb_u32 word = 0;
UMB_UNROLL
        for (int k = 0; k < 4; k++) {
            int b = 4 * w + k;  // public, a constant once unrolled
            umb_u32 byte;
            if (b < 165) {
                byte = msg[parts[b / 33] + b % 33];
            } else if (b < UMB_CFRAG_PART_BYTES) {
                int zb = b - 165;  // big-endian byte zb of z
                byte = (z[7 - zb / 4] >> (24 - 8 * (zb % 4))) & 0xffu;
            } else {
                byte = 0;
            }
            word |= byte << (8 * k);
        }
        out[(umb_u64)w * c + i] = word;
    }
    out[(umb_u64)50 * c + i] = status;
}

#endif // UMB_FINISH_CUH
