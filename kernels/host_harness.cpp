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

#include <vector>

namespace {

void scalar_from_be(umb_u32 k[8], const umb_u8 b[32]) {
    for (int i = 0; i < 8; i++) {
        const umb_u8 *q = b + 28 - 4 * i;
        k[i] = ((umb_u32)q[0] << 24) | ((umb_u32)q[1] << 16) | ((umb_u32)q[2] << 8) | q[3];
    }
}

// (x, y) scaled by z into Jacobian (x z^2, y z^3, z); inf forces Z = 0 but keeps the scaled
// coordinates, so identity handling is exercised with arbitrary X and Y.
void jac_from_bytes(umb_jac &r, const umb_u8 xy[64], int inf, const umb_u8 z[32]) {
    umb_fe x, y, zz, z2, z3;
    umb_fe_from_be(x, xy);
    umb_fe_from_be(y, xy + 32);
    umb_fe_from_be(zz, z);
    umb_fe_sqr(z2, zz);
    umb_fe_mul(z3, z2, zz);
    umb_fe_mul(r.x, x, z2);
    umb_fe_mul(r.y, y, z3);
    r.z = zz;
    umb_fe zero;
    umb_fe_set_zero(zero);
    umb_fe_cmov(r.z, zero, umb_mask_from_bit(inf ? 1u : 0u));
}

void aff_from_bytes(umb_aff &r, const umb_u8 xy[64], int inf) {
    umb_fe_from_be(r.x, xy);
    umb_fe_from_be(r.y, xy + 32);
    r.inf = umb_mask_from_bit(inf ? 1u : 0u);
}

int jac_to_bytes(umb_u8 out[64], const umb_jac &p) {
    umb_aff a;
    umb_jac_to_aff(a, p);
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
int umbh_jac_dbl(const umb_u8 *p, int p_inf, const umb_u8 *zp, umb_u8 *out) {
    umb_jac a, r;
    jac_from_bytes(a, p, p_inf, zp);
    umb_jac_dbl(r, a);
    return jac_to_bytes(out, r);
}

int umbh_jac_add(const umb_u8 *p, int p_inf, const umb_u8 *zp, const umb_u8 *q, int q_inf,
                 const umb_u8 *zq, umb_u8 *out) {
    umb_jac a, b, r;
    jac_from_bytes(a, p, p_inf, zp);
    jac_from_bytes(b, q, q_inf, zq);
    umb_jac_add(r, a, b);
    return jac_to_bytes(out, r);
}

int umbh_jac_add_affine(const umb_u8 *p, int p_inf, const umb_u8 *zp, const umb_u8 *q,
                        int q_inf, umb_u8 *out) {
    umb_jac a, r;
    umb_aff b;
    jac_from_bytes(a, p, p_inf, zp);
    aff_from_bytes(b, q, q_inf);
    umb_jac_add_affine(r, a, b);
    return jac_to_bytes(out, r);
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

int umbh_mul_var(const umb_u8 *p, const umb_u8 *k, umb_u8 *out) {
    umb_aff a;
    aff_from_bytes(a, p, 0);
    umb_jac table[9];
    umb_build_table(table, a);
    umb_u32 limbs[8];
    scalar_from_be(limbs, k);
    umb_jac r;
    umb_mul_var(r, table, limbs);
    return jac_to_bytes(out, r);
}

int umbh_mul_fixed(const umb_u32 *table, const umb_u8 *k, umb_u8 *out) {
    umb_u32 limbs[8];
    scalar_from_be(limbs, k);
    umb_jac r;
    umb_mul_fixed(r, table, limbs);
    return jac_to_bytes(out, r);
}

// ------------------------------------------------------------------------------ launches
// Same arguments and layouts as the umb_mul_pairs kernel.
void umbh_launch_pairs(const umb_u32 *bases, const umb_u32 *scalars, umb_u32 *out, umb_u32 n) {
    std::vector<umb_pair_state> st(UMB_BLOCK);
    std::vector<umb_fe> z(UMB_BLOCK), zinv(UMB_BLOCK);
    std::vector<umb_u32> tree(8 * 2 * UMB_BLOCK);
    for (umb_u32 block = 0; (umb_u64)block * UMB_BLOCK < n; block++) {
        for (int t = 0; t < UMB_BLOCK; t++) {
            umb_u32 i = block * UMB_BLOCK + t;
            umb_pairs_phase1(st[t], z[t], bases, scalars, n, i, i < n);
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
    std::vector<umb_jac> r(UMB_BLOCK);
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

}  // extern "C"
