// SPDX-License-Identifier: GPL-3.0-only
//
// host_harness.cpp: the kernel headers compiled as plain host C++ (the portable carry-chain
// emulation from carry.cuh replaces the PTX), behind a small extern "C" API over byte and word
// arrays. crates/umbrald-gpu builds it with `cc` and tests it against k256; it also replays whole
// kernel launches (block by block, thread by thread, step by step through the batch-inversion
// tree) so the device code path minus the barriers runs in `cargo test` on machines without a
// GPU.
//
// Byte conventions match k256: field elements and scalars are 32 bytes big-endian; an affine
// point is 64 bytes x || y; functions returning int return 1 for the point at infinity.
#include "scalar_mul.cuh"
#include "finish.cuh"
#include "reenc.cuh"

#include <vector>

namespace {

void scalar_from_be(umb_u32 k[8], const umb_u8 b[32]) {
    for (int i = 0; i < 8; i++) {
        const umb_u8 *q = b + 28 - 4 * i;
        k[i] = ((umb_u32)q[0] << 24) | ((umb_u32)q[1] << 16) | ((umb_u32)q[2] << 8) | q[3];
    }
}

// (x, y) scaled by z into projective (x z, y z, z). With inf the point is the identity
// (0 : y z : 0), so identity handling is exercised with an arbitrary non-zero Y.
void prj_from_bytes(umb_prj &r, const umb_u8 xy[64], int inf, const umb_u8 z[32]) {
    umb_fe x, y, zz;
    umb_fe_from_be(x, xy);
    umb_fe_from_be(y, xy + 32);
    umb_fe_from_be(zz, z);
    umb_fe_mul(r.x, x, zz);
    umb_fe_mul(r.y, y, zz);
    r.z = zz;
    umb_fe zero;
    umb_fe_set_zero(zero);
    umb_u32 m = umb_mask_from_bit(inf ? 1u : 0u);
    umb_fe_cmov(r.x, zero, m);
    umb_fe_cmov(r.z, zero, m);
}

void aff_from_bytes(umb_aff &r, const umb_u8 xy[64], int inf) {
    umb_fe_from_be(r.x, xy);
    umb_fe_from_be(r.y, xy + 32);
    r.inf = umb_mask_from_bit(inf ? 1u : 0u);
}

int prj_to_bytes(umb_u8 out[64], const umb_prj &p) {
    umb_aff a;
    umb_prj_to_aff(a, p);
    umb_fe_to_be(out, a.x);
    umb_fe_to_be(out + 32, a.y);
    return (int)(a.inf & 1u);
}

// Replays the batch-inversion tree of one block exactly as the barriers order it on the GPU.
void emulate_block_invert(std::vector<umb_u32> &tree, const umb_fe *z, umb_fe *zinv) {
    for (int t = 0; t < UMB_BLOCK; t++) umb_tree_leaf(tree.data(), t, z[t]);
    for (int s = UMB_BLOCK / 2; s >= 1; s >>= 1)
        for (int t = 0; t < UMB_BLOCK; t++) umb_tree_up(tree.data(), s, t);
    for (int t = 0; t < UMB_BLOCK; t++) umb_tree_root(tree.data(), t);
    for (int s = 1; s < UMB_BLOCK; s <<= 1)
        for (int t = 0; t < UMB_BLOCK; t++) umb_tree_down(tree.data(), s, t);
    for (int t = 0; t < UMB_BLOCK; t++) umb_tree_result(zinv[t], tree.data(), t);
}

}  // namespace

extern "C" {

umb_u32 umbh_block_size(void) { return UMB_BLOCK; }

// ------------------------------------------------------------------------------ field
void umbh_fe_mul(const umb_u8 *a, const umb_u8 *b, umb_u8 *out) {
    umb_fe x, y, r;
    umb_fe_from_be(x, a);
    umb_fe_from_be(y, b);
    umb_fe_mul(r, x, y);
    umb_fe_to_be(out, r);
}

void umbh_fe_sqr(const umb_u8 *a, umb_u8 *out) {
    umb_fe x, r;
    umb_fe_from_be(x, a);
    umb_fe_sqr(r, x);
    umb_fe_to_be(out, r);
}

void umbh_fe_add(const umb_u8 *a, const umb_u8 *b, umb_u8 *out) {
    umb_fe x, y, r;
    umb_fe_from_be(x, a);
    umb_fe_from_be(y, b);
    umb_fe_add(r, x, y);
    umb_fe_to_be(out, r);
}

void umbh_fe_sub(const umb_u8 *a, const umb_u8 *b, umb_u8 *out) {
    umb_fe x, y, r;
    umb_fe_from_be(x, a);
    umb_fe_from_be(y, b);
    umb_fe_sub(r, x, y);
    umb_fe_to_be(out, r);
}

void umbh_fe_neg(const umb_u8 *a, umb_u8 *out) {
    umb_fe x, r;
    umb_fe_from_be(x, a);
    umb_fe_neg(r, x);
    umb_fe_to_be(out, r);
}

void umbh_fe_inv(const umb_u8 *a, umb_u8 *out) {
    umb_fe x, r;
    umb_fe_from_be(x, a);
    umb_fe_inv(r, x);
    umb_fe_to_be(out, r);
}

// Reduces any 256-bit big-endian value mod p (the load path of every other function).
void umbh_fe_reduce(const umb_u8 *a, umb_u8 *out) {
    umb_fe x;
    umb_fe_from_be(x, a);
    umb_fe_to_be(out, x);
}

// ------------------------------------------------------------------------------ points
int umbh_prj_dbl(const umb_u8 *p, int p_inf, const umb_u8 *zp, umb_u8 *out) {
    umb_prj a, r;
    prj_from_bytes(a, p, p_inf, zp);
    umb_prj_dbl(r, a);
    return prj_to_bytes(out, r);
}

int umbh_prj_add(const umb_u8 *p, int p_inf, const umb_u8 *zp, const umb_u8 *q, int q_inf,
                 const umb_u8 *zq, umb_u8 *out) {
    umb_prj a, b, r;
    prj_from_bytes(a, p, p_inf, zp);
    prj_from_bytes(b, q, q_inf, zq);
    umb_prj_add(r, a, b);
    return prj_to_bytes(out, r);
}

int umbh_prj_add_affine(const umb_u8 *p, int p_inf, const umb_u8 *zp, const umb_u8 *q,
                        int q_inf, umb_u8 *out) {
    umb_prj a, r;
    umb_aff b;
    prj_from_bytes(a, p, p_inf, zp);
    aff_from_bytes(b, q, q_inf);
    umb_prj_add_affine(r, a, b);
    return prj_to_bytes(out, r);
}

void umbh_fe_mul_small(const umb_u8 *a, umb_u32 c, umb_u8 *out) {
    umb_fe x, r;
    umb_fe_from_be(x, a);
    umb_fe_mul_small(r, x, c);
    umb_fe_to_be(out, r);
}

// ------------------------------------------------------------------------------ scalars
// The 65 signed digits of k's recoding, least significant first.
void umbh_digits(const umb_u8 *k, umb_i32 *digits) {
    umb_u32 limbs[8];
    scalar_from_be(limbs, k);
    umb_recoded rc;
    umb_recode(rc, limbs);
    for (int i = 0; i < 64; i++) {
        umb_u32 mag, neg;
        umb_digit(rc, i, mag, neg);
        digits[i] = neg ? -(umb_i32)mag : (umb_i32)mag;
    }
    digits[64] = (umb_i32)rc.top;
}

// k * P by the variable-base path: table, GLV split of k (k below n), ladder.
int umbh_mul_var(const umb_u8 *p, const umb_u8 *k, umb_u8 *out) {
    umb_aff a;
    aff_from_bytes(a, p, 0);
    umb_prj table[UMB_TABLE];
    umb_build_table(table, a);
    umb_fe z;
    umb_table_z(z, table);
    umb_fe_inv(z, z);  // the kernel shares this inversion over its block
    umb_table_view view = umb_table_in_place(table);
    umb_table_to_affine(view, table, z);
    umb_u32 limbs[8];
    scalar_from_be(limbs, k);
    umb_glv g;
    umb_glv_split(g, limbs);
    umb_prj r;
    umb_mul_glv(r, view, g);
    return prj_to_bytes(out, r);
}

// The GLV split of k (below n): |k1| and |k2| as 16 big-endian bytes each, and the signs.
void umbh_glv_split(const umb_u8 *k, umb_u8 *mag1, umb_u8 *mag2, int *neg1, int *neg2) {
    umb_u32 limbs[8];
    scalar_from_be(limbs, k);
    umb_glv g;
    umb_glv_split(g, limbs);
    // Undo the recoding offset: |k_i| = v - 0x8888...88 (mod 2^128), top carry dropped.
    const umb_recoded128 *h[2] = {&g.h1, &g.h2};
    umb_u8 *mag[2] = {mag1, mag2};
    for (int j = 0; j < 2; j++) {
        umb_cc c = UMB_CC_INIT;
        umb_u32 m[4];
        m[0] = umb_sub_cc(c, h[j]->v[0], 0x88888888u);
        m[1] = umb_subc_cc(c, h[j]->v[1], 0x88888888u);
        m[2] = umb_subc_cc(c, h[j]->v[2], 0x88888888u);
        m[3] = umb_subc(c, h[j]->v[3], 0x88888888u);
        for (int i = 0; i < 4; i++) {
            umb_u8 *q = mag[j] + 12 - 4 * i;
            q[0] = (umb_u8)(m[i] >> 24);
            q[1] = (umb_u8)(m[i] >> 16);
            q[2] = (umb_u8)(m[i] >> 8);
            q[3] = (umb_u8)m[i];
        }
    }
    *neg1 = (int)(g.neg1 & 1u);
    *neg2 = (int)(g.neg2 & 1u);
}

int umbh_mul_fixed(const umb_u32 *table, const umb_u8 *k, umb_u8 *out) {
    umb_u32 limbs[8];
    scalar_from_be(limbs, k);
    umb_prj r;
    umb_mul_fixed(r, table, limbs);
    return prj_to_bytes(out, r);
}

// y of the point with x coordinate `x` (reduced first) and parity `odd`; returns 1 when x is
// on the curve.
int umbh_decompress(const umb_u8 *x, int odd, umb_u8 *y_out) {
    umb_fe x_fe, y;
    umb_fe_from_be(x_fe, x);
    umb_u32 ok;
    umb_decompress_one(y, ok, x_fe, odd ? 1u : 0u);
    umb_fe_to_be(y_out, y);
    return (int)ok;
}

// Same arguments and layouts as the umb_decompress kernel.
void umbh_launch_decompress(const umb_u32 *in, umb_u32 *out, umb_u32 n) {
    for (umb_u32 i = 0; i < n; i++) umb_decompress_item(in, out, n, i);
}

// ------------------------------------------------------------------------------ launches
// Same arguments and layouts as the umb_mul_pairs kernel; with shared_table the affine tables
// live in one array laid out as the UMB_TABLE_SHARED build's shared memory, else in place.
void umbh_launch_pairs(const umb_u32 *bases, const umb_u32 *scalars, umb_u32 *out, umb_u32 n,
                       int shared_table, int second) {
    std::vector<umb_u32> smem(UMB_TABLE_SMEM_BYTES / 4);
    std::vector<umb_pair_state> st(UMB_BLOCK);
    std::vector<umb_fe> z(UMB_BLOCK), zinv(UMB_BLOCK);
    std::vector<umb_u32> tree(8 * 2 * UMB_BLOCK);
    for (umb_u32 block = 0; (umb_u64)block * UMB_BLOCK < n; block++) {
        for (int t = 0; t < UMB_BLOCK; t++) {
            umb_u32 i = block * UMB_BLOCK + t;
            umb_pairs_phase1(st[t], z[t], bases, n, i, i < n);
        }
        emulate_block_invert(tree, z.data(), zinv.data());
        for (int t = 0; t < UMB_BLOCK; t++) {
            umb_u32 i = block * UMB_BLOCK + t;
            umb_table_view view = shared_table ? umb_table_in_shared(smem.data(), t)
                                               : umb_table_in_place(st[t].table);
            umb_pairs_phase2(st[t], z[t], zinv[t], view, scalars, n, i, i < n, second != 0);
        }
        emulate_block_invert(tree, z.data(), zinv.data());
        for (int t = 0; t < UMB_BLOCK; t++) {
            umb_u32 i = block * UMB_BLOCK + t;
            umb_pairs_phase3(st[t], zinv[t], out, n, i, i < n);
        }
    }
}

// Same arguments and layouts as the umb_mul_fixed kernel.
void umbh_launch_fixed(const umb_u32 *table, const umb_u32 *scalars, umb_u32 *out, umb_u32 n) {
    std::vector<umb_prj> r(UMB_BLOCK);
    std::vector<umb_fe> z(UMB_BLOCK), zinv(UMB_BLOCK);
    std::vector<umb_u32> tree(8 * 2 * UMB_BLOCK);
    for (umb_u32 block = 0; (umb_u64)block * UMB_BLOCK < n; block++) {
        for (int t = 0; t < UMB_BLOCK; t++) {
            umb_u32 i = block * UMB_BLOCK + t;
            umb_fixed_phase1(r[t], z[t], table, scalars, n, i, i < n);
        }
        emulate_block_invert(tree, z.data(), zinv.data());
        for (int t = 0; t < UMB_BLOCK; t++) {
            umb_u32 i = block * UMB_BLOCK + t;
            umb_fixed_phase3(r[t], zinv[t], out, n, i, i < n);
        }
    }
}

// ------------------------------------------------------------------------------ cfrag parts
// SHA-256 of msg[0..len) (the kernel's implementation, any length).
void umbh_sha256(const umb_u8 *msg, umb_u32 len, umb_u8 *out) { umb_sha256(out, msg, len); }

// out = a * b + c mod n, all big-endian 32 bytes; a and b any 256-bit values, c below n.
void umbh_scalar_mul_add(const umb_u8 *a, const umb_u8 *b, const umb_u8 *c, umb_u8 *out) {
    umb_u32 x[8], y[8], z[8], r[8];
    umb_words_from_be(x, a);
    umb_words_from_be(y, b);
    umb_words_from_be(z, c);
    umb_sc_mul_add(r, x, y, z);
    umb_words_to_be(out, r);
}

// out = digest mod (n - 1) + 1 (big-endian 32 bytes each), umbral-pre's hash-to-scalar.
void umbh_hash_to_scalar(const umb_u8 *digest, umb_u8 *out) {
    umb_u32 d[8], h[8];
    umb_words_from_be(d, digest);
    umb_sc_from_digest(h, d);
    umb_words_to_be(out, h);
}

// umb_cfrag_parts_item for c capsules (layouts: finish.cuh), the last step of
// umb_reenc_finish on its own.
void umbh_finish_parts(const umb_u32 *pair_in, const umb_u32 *pair_out, const umb_u32 *fixed_out,
                       const umb_u32 *u1_in, umb_u32 *out, umb_u32 c) {
    for (umb_u32 i = 0; i < c; i++)
        umb_cfrag_parts_item(pair_in, pair_out, fixed_out, u1_in, out, c, i, 0);
}

// ------------------------------------------------------------------------------ re-encryption
// Same arguments and layouts as the umb_reenc_prep kernel (reenc.cuh).
void umbh_launch_reenc_prep(const umb_u32 *in, umb_u32 *pair_in, umb_u32 *firsts_in,
                            umb_u32 *prep, umb_u32 c) {
    for (umb_u32 i = 0; i < c; i++) umb_reenc_prep_item(in, pair_in, firsts_in, prep, c, i);
}

// Same arguments and layouts as the umb_reenc_finish kernel (reenc.cuh).
void umbh_launch_reenc_finish(const umb_u32 *in, const umb_u32 *pair_in, const umb_u32 *pair_out,
                              const umb_u32 *firsts_out, const umb_u32 *g_out,
                              const umb_u32 *u_out, const umb_u32 *prep, umb_u32 *out,
                              umb_u32 c) {
    for (umb_u32 i = 0; i < c; i++)
        umb_reenc_finish_item(in, pair_in, pair_out, firsts_out, g_out, u_out, prep, out, c, i);
}

}  // extern "C"
