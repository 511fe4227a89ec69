// SPDX-License-Identifier: GPL-3.0-only
//
// reenc.cuh: a whole batch part of re-encryption in one device call, from the capsules'
// compressed bytes to the cfrag parts. Two kernels (scalar_mul.cu) frame the existing ones on
// one stream:
//   1. umb_reenc_prep(in, pair_in, firsts_in, prep, c)       decompress E, V; h = H(E, V)
//   2. umb_mul_pairs(pair_in, ..., pair_out, 2c, second = 1)  rk E, t E, rk V, t V
//   3. umb_mul_pairs(firsts_in, ..., firsts_out, c, 0)       h E
//   4. umb_mul_fixed(G table, in + 18c, g_out, c)             s G
//   5. umb_mul_fixed(U table, in + 34c, u_out, c)             t U
//   6. umb_reenc_finish(in, pair_in, pair_out, firsts_out, g_out, u_out, prep, out, c)
//                                                             s G == V + h E; the cfrag parts
// Both new kernels: one thread per capsule, no barrier.
//
// Layout (column layout as in scalar_mul.cuh: word w of item i at [w * n + i]), c capsules:
//   in         51 rows, n = c, written by the host: rows 0..7 E's x (little-endian limbs),
//              row 8 E's y parity (0 or 1); rows 9..16 V's x, row 17 V's parity; rows 18..25 s
//              (the capsule's scalar; these rows are the fixed kernel's input for n = c);
//              rows 26..33 rk; rows 34..41 t; rows 42..50 U1's 33 compressed bytes packed as
//              finish.cuh's u1_in
//   pair_in    the umb_mul_pairs input for n = 2c (32 rows), written by umb_reenc_prep: item
//              2j = E_j, 2j + 1 = V_j, both with the scalars [rk_j, t_j]
//   firsts_in  the umb_mul_pairs input for n = c, second = 0: bases E_j (16 rows), then the
//              scalars' rows 0..7 = h_j; rows 8..15 of the scalars are neither written nor
//              read (the buffer may end after row 7)
//   prep       1 row, n = c: umb_reenc_prep's status bits for capsule j (8 or 0)
//   pair_out   34 rows, n = 2c; firsts_out 34 rows, n = c (slot 0: h E); g_out (s G) and
//              u_out (t U) 17 rows, n = c
//   out        51 rows, n = c: as umb_cfrag_parts_item writes them (finish.cuh), the status in row
//              50 with two more bits: 4 the capsule's equation s G = V + h E does not hold,
//              8 E or V does not decompress (x >= p, or no point with that x)
//
// A point that does not decompress is replaced by the generator G for every later step, so
// that each ladder runs on a curve point; that capsule's outputs mean nothing (a status with
// bit 8 almost always has bit 4 too: the check then runs on G, with h from the original bytes).
//
// rk and t are secrets: umb_reenc_prep only copies them (the same loads and stores for every
// value). Everything else here (E, V, h, s, the products, the check) is public.
#ifndef UMB_REENC_CUH
#define UMB_REENC_CUH

#include "finish.cuh"

#define UMB_REENC_IN_ROWS 51
#define UMB_REENC_OUT_ROWS UMB_CFRAG_OUT_ROWS
// Rows of `in`.
#define UMB_REENC_E 0
#define UMB_REENC_V 9
#define UMB_REENC_S 18
#define UMB_REENC_RK 26
#define UMB_REENC_T 34
#define UMB_REENC_U1 42
// Status bits added to finish.cuh's 1 (identity product) and 2 (product off the curve).
#define UMB_STATUS_CAPSULE 4u
#define UMB_STATUS_DECOMPRESS 8u
// The capsule challenge's message: 4 + 14 bytes of domain tag, E and V compressed.
#define UMB_CAPSULE_MSG_BYTES 84

// r = the generator G (affine coordinates, little-endian limbs).
UMB_DEVICE void umb_set_generator(umb_fe &x, umb_fe &y) {
    const umb_u32 gx[8] = {0x16F81798u, 0x59F2815Bu, 0x2DCE28D9u, 0x029BFCDBu,
                           0xCE870B07u, 0x55A06295u, 0xF9DCBBACu, 0x79BE667Eu};
    const umb_u32 gy[8] = {0xFB10D4B8u, 0x9C47D08Fu, 0xA6855419u, 0xFD17B448u,
                           0x0E1108A8u, 0x5DA4FBFCu, 0x26A3C465u, 0x483ADA77u};
UMB_UNROLL
    for (int w = 0; w < 8; w++) {
        x.v[w] = gx[w];
        y.v[w] = gy[w];
    }
}

// One of capsule i's points from 9 rows of `in` (x, parity): its 33-byte compressed form as
// given (02 | parity, x big-endian) into msg, the point into (x, y), and 1 when it decompresses
// (x < p and x^3 + 7 a square), else 0 with (x, y) = G.
UMB_NOINLINE umb_u32 umb_reenc_point(umb_fe &x, umb_fe &y, umb_u8 msg[33], const umb_u32 *rows,
                                     umb_u32 c, umb_u32 i) {
    umb_u32 raw[8];
    umb_load_words_col(raw, rows, c, i);
    umb_u32 odd = rows[(umb_u64)8 * c + i] & 1u;
    msg[0] = (umb_u8)(2u | odd);
    umb_words_to_be(msg + 1, raw);
    umb_fe_reduce_once(x, raw, 0);
    umb_u32 diff = 0;
UMB_UNROLL
    for (int w = 0; w < 8; w++) diff |= x.v[w] ^ raw[w];  // non-zero: x >= p
    umb_u32 ok;
    umb_decompress_one(y, ok, x, odd);
    umb_u32 good = umb_is_zero_mask(diff) & umb_mask_from_bit(ok);
    umb_fe gx, gy;
    umb_set_generator(gx, gy);
    umb_fe_cmov(x, gx, ~good);
    umb_fe_cmov(y, gy, ~good);
    return good & 1u;
}

// Copies 8 rows of item i (n = c) to item j of an n2-item array.
UMB_DEVICE void umb_copy_words_col(umb_u32 *dst, umb_u32 n2, umb_u32 j, const umb_u32 *src,
                                   umb_u32 c, umb_u32 i) {
UMB_UNROLL
    for (int w = 0; w < 8; w++) dst[(umb_u64)w * n2 + j] = src[(umb_u64)w * c + i];
}

// One thread of umb_reenc_prep: capsule i of c (layout at the top of this file).
UMB_NOINLINE void umb_reenc_prep_item(const umb_u32 *in, umb_u32 *pair_in, umb_u32 *firsts_in,
                                      umb_u32 *prep, umb_u32 c, umb_u32 i) {
    const umb_u8 tag[18] = {0,   0,   0,   14,  'C', 'A', 'P', 'S', 'U',
                            'L', 'E', '_', 'P', 'O', 'I', 'N', 'T', 'S'};
    umb_u32 n2 = 2 * c, ie = 2 * i, iv = 2 * i + 1;
    umb_u8 msg[UMB_CAPSULE_MSG_BYTES];
UMB_UNROLL
    for (int b = 0; b < 18; b++) msg[b] = tag[b];

    // E and V: the pair kernel's bases, E also the first kernel's.
    umb_fe x, y;
    umb_u32 ok = umb_reenc_point(x, y, msg + 18, in + (umb_u64)UMB_REENC_E * c, c, i);
    umb_store_fe_col(pair_in, n2, ie, x);
    umb_store_fe_col(pair_in + (umb_u64)8 * n2, n2, ie, y);
    umb_store_fe_col(firsts_in, c, i, x);
    umb_store_fe_col(firsts_in + (umb_u64)8 * c, c, i, y);
    ok &= umb_reenc_point(x, y, msg + 51, in + (umb_u64)UMB_REENC_V * c, c, i);
    umb_store_fe_col(pair_in, n2, iv, x);
    umb_store_fe_col(pair_in + (umb_u64)8 * n2, n2, iv, y);

    // The secrets [rk, t] for both items: copied, nothing else.
    umb_u32 *scalars = pair_in + (umb_u64)UMB_PAIR_IN_ROWS * n2;
    const umb_u32 *rk = in + (umb_u64)UMB_REENC_RK * c, *t = in + (umb_u64)UMB_REENC_T * c;
    umb_copy_words_col(scalars, n2, ie, rk, c, i);
    umb_copy_words_col(scalars, n2, iv, rk, c, i);
    umb_copy_words_col(scalars + (umb_u64)8 * n2, n2, ie, t, c, i);
    umb_copy_words_col(scalars + (umb_u64)8 * n2, n2, iv, t, c, i);

    // h = H("CAPSULE_POINTS", E, V) as umbral-pre: SHA-256, then mod (n - 1) + 1.
    umb_u8 digest[32];
    umb_sha256(digest, msg, UMB_CAPSULE_MSG_BYTES);
    umb_u32 d[8], h[8];
    umb_words_from_be(d, digest);
    umb_sc_from_digest(h, d);
UMB_UNROLL
    for (int w = 0; w < 8; w++) firsts_in[(umb_u64)(UMB_PAIR_IN_ROWS + w) * c + i] = h[w];
    prep[i] = (ok ^ 1u) * UMB_STATUS_DECOMPRESS;
}

// UMB_STATUS_CAPSULE unless s G = V + h E for capsule i: R = V + h E by the complete mixed
// addition (h E may be the identity), compared projectively with s G (X = x Z, Y = y Z); R or
// s G the identity counts as a mismatch (the kernels' products of a valid capsule never are).
UMB_NOINLINE umb_u32 umb_capsule_check(const umb_u32 *pair_in, const umb_u32 *firsts_out,
                                       const umb_u32 *g_out, umb_u32 c, umb_u32 i) {
    umb_aff a;
    umb_load_xy_col(a.x, a.y, pair_in, 2 * c, 2 * i + 1);  // V
    a.inf = 0;
    umb_prj r;
    umb_prj_from_aff(r, a);
    umb_load_xy_col(a.x, a.y, firsts_out, c, i);  // h E
    a.inf = ~umb_is_zero_mask(firsts_out[(umb_u64)16 * c + i]);
    umb_prj_add_affine(r, r, a);
    umb_load_xy_col(a.x, a.y, g_out, c, i);  // s G
    a.inf = ~umb_is_zero_mask(g_out[(umb_u64)16 * c + i]);
    umb_fe t;
    umb_fe_mul(t, a.x, r.z);
    umb_u32 same = umb_fe_eq(r.x, t);
    umb_fe_mul(t, a.y, r.z);
    same &= umb_fe_eq(r.y, t) & ~umb_prj_is_identity(r) & ~a.inf;
    return (~same & 1u) * UMB_STATUS_CAPSULE;
}

// One thread of umb_reenc_finish: capsule i of c. The cfrag parts as umb_cfrag_parts_item
// computes them from the same buffers (U1 from rows 42..50 of `in`, which have its u1_in
// layout), the status with prep's and the check's bits.
UMB_DEVICE void umb_reenc_finish_item(const umb_u32 *in, const umb_u32 *pair_in,
                                      const umb_u32 *pair_out, const umb_u32 *firsts_out,
                                      const umb_u32 *g_out, const umb_u32 *u_out,
                                      const umb_u32 *prep, umb_u32 *out, umb_u32 c, umb_u32 i) {
    umb_u32 status = prep[i] | umb_capsule_check(pair_in, firsts_out, g_out, c, i);
    umb_cfrag_parts_item(pair_in, pair_out, u_out, in + (umb_u64)UMB_REENC_U1 * c, out, c, i,
                         status);
}

#endif // UMB_REENC_CUH
