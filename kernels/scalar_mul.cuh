// SPDX-License-Identifier: GPL-3.0-only
//
// scalar_mul.cuh: per-thread bodies of the batch kernels in scalar_mul.cu, written so that the
// host harness can run them too.
//
// A kernel is three phases: (1) each thread computes its Jacobian results and the product z of
// their Z coordinates, (2) the block inverts all z at once with a product tree in shared memory
// (Montgomery's trick: one field inversion per block instead of one per thread), (3) each thread
// turns its results into affine coordinates and stores them. Phases 1 and 3 and every step of
// the tree are functions here; scalar_mul.cu adds only the __syncthreads() between them, and
// host_harness.cpp replays the same steps thread by thread.
//
// Memory layout (all arrays of 32-bit words, limb-major "column" layout for coalescing: word w of
// item i is at [w * n + i], so a warp reading word w touches 32 consecutive words):
//   pairs:  bases   16 rows: x limbs 0..7, y limbs 8..15 (little-endian limbs, affine, reduced)
//           scalars 16 rows: a limbs 0..7, b limbs 8..15
//           out     34 rows: for s in {0, 1} (a.P, b.P): rows 17 s + 0..7 x, + 8..15 y,
//                            + 16 identity flag (1 when the product is the point at infinity)
//   fixed:  scalars 8 rows; out 17 rows as one output slot above
//           table   UMB_WINDOWS * UMB_ROW entries of 16 words (x limbs, y limbs), entry e of row j
//                   = (e + 1) * 16^j * Q, at word offset (j * UMB_ROW + e) * 16
#ifndef UMB_SCALAR_MUL_CUH
#define UMB_SCALAR_MUL_CUH

#include "scalar.cuh"

#define UMB_PAIR_IN_ROWS 16
#define UMB_PAIR_OUT_ROWS 34
#define UMB_FIXED_IN_ROWS 8
#define UMB_FIXED_OUT_ROWS 17
#define UMB_ENTRY_WORDS 16

// ------------------------------------------------------------------ strided loads and stores

UMB_DEVICE void umb_load_words_col(umb_u32 a[8], const umb_u32 *base, umb_u32 n, umb_u32 i) {
UMB_UNROLL
    for (int w = 0; w < 8; w++) a[w] = base[(umb_u64)w * n + i];
}

UMB_DEVICE void umb_load_fe_col(umb_fe &a, const umb_u32 *base, umb_u32 n, umb_u32 i) {
    umb_load_words_col(a.v, base, n, i);
}

UMB_DEVICE void umb_store_fe_col(umb_u32 *base, umb_u32 n, umb_u32 i, const umb_fe &a) {
UMB_UNROLL
    for (int w = 0; w < 8; w++) base[(umb_u64)w * n + i] = a.v[w];
}

// Stores an affine result into one 17-row output slot.
UMB_DEVICE void umb_store_aff_col(umb_u32 *slot, umb_u32 n, umb_u32 i, const umb_aff &a) {
    umb_store_fe_col(slot, n, i, a.x);
    umb_store_fe_col(slot + (umb_u64)8 * n, n, i, a.y);
    slot[(umb_u64)16 * n + i] = a.inf & 1u;
}

// --------------------------------------------------------------- variable-base multiplication

// table[d] = d * P for d = 0..8 (table[0] is the identity). P is public.
UMB_NOINLINE void umb_build_table(umb_jac table[9], const umb_aff &p) {
    umb_jac_set_identity(table[0]);
    umb_jac_from_aff(table[1], p);
    umb_jac_dbl(table[2], table[1]);
    for (int d = 3; d < 9; d++) umb_jac_add_affine(table[d], table[d - 1], p);
}

// r = k * P from P's table: 256 doublings and 64 complete additions for every k, digits from
// umb_recode, entries chosen with umb_jac_select9.
UMB_NOINLINE void umb_mul_var(umb_jac &r, const umb_jac table[9], const umb_u32 k[8]) {
    umb_recoded rc;
    umb_recode(rc, k);
    umb_jac_select9(r, table, rc.top);
    for (int i = 63; i >= 0; i--) {
        umb_jac_dbl(r, r);
        umb_jac_dbl(r, r);
        umb_jac_dbl(r, r);
        umb_jac_dbl(r, r);
        umb_u32 mag, neg;
        umb_digit(rc, i, mag, neg);
        umb_jac s;
        umb_jac_select9(s, table, mag);
        umb_fe_cneg(s.y, neg);
        umb_jac_add(r, r, s);
    }
}

// ------------------------------------------------------------------ fixed-base multiplication

// r = |d| * 16^j * Q from row j of a fixed-base table (identity for mag = 0), reading all
// UMB_ROW entries.
UMB_NOINLINE void umb_fixed_select(umb_aff &r, const umb_u32 *row, umb_u32 mag) {
    umb_fe_set_zero(r.x);
    umb_fe_set_zero(r.y);
    for (umb_u32 e = 0; e < UMB_ROW; e++) {
        const umb_u32 *entry = row + e * UMB_ENTRY_WORDS;
        umb_u32 m = umb_eq_mask(e + 1, mag);
UMB_UNROLL
        for (int w = 0; w < 8; w++) {
            r.x.v[w] = umb_select(m, entry[w], r.x.v[w]);
            r.y.v[w] = umb_select(m, entry[8 + w], r.y.v[w]);
        }
    }
    r.inf = umb_is_zero_mask(mag);
}

// r = k * Q with Q's fixed-base table: 65 complete mixed additions, no doublings.
UMB_NOINLINE void umb_mul_fixed(umb_jac &r, const umb_u32 *table, const umb_u32 k[8]) {
    umb_recoded rc;
    umb_recode(rc, k);
    umb_jac_set_identity(r);
    umb_aff a;
    for (int j = 0; j < 64; j++) {
        umb_u32 mag, neg;
        umb_digit(rc, j, mag, neg);
        umb_fixed_select(a, table + (umb_u64)j * UMB_ROW * UMB_ENTRY_WORDS, mag);
        umb_fe_cneg(a.y, neg);
        umb_jac_add_affine(r, r, a);
    }
    umb_fixed_select(a, table + (umb_u64)64 * UMB_ROW * UMB_ENTRY_WORDS, rc.top);
    umb_jac_add_affine(r, r, a);
}

// ------------------------------------------------ batch inversion: product tree per block
//
// tree holds 2 * UMB_BLOCK field elements, limb-major (word w of node k at w * 2B + k) to keep
// shared-memory banks apart. Leaves are nodes B..2B-1, node k's children are 2k and 2k+1, the
// root is node 1. Every step reads only what the previous step wrote, so one barrier between
// steps is enough on the device, and running each step for all threads in turn is an exact
// replay on the host.

UMB_DEVICE void umb_tree_get(umb_fe &a, const umb_u32 *tree, int k) {
UMB_UNROLL
    for (int w = 0; w < 8; w++) a.v[w] = tree[w * (2 * UMB_BLOCK) + k];
}

UMB_DEVICE void umb_tree_put(umb_u32 *tree, int k, const umb_fe &a) {
UMB_UNROLL
    for (int w = 0; w < 8; w++) tree[w * (2 * UMB_BLOCK) + k] = a.v[w];
}

// Step 0: thread t places its (non-zero) value at leaf t.
UMB_DEVICE void umb_tree_leaf(umb_u32 *tree, int t, const umb_fe &z) {
    umb_tree_put(tree, UMB_BLOCK + t, z);
}

// Up-sweep level with s nodes (s = B/2, B/4, ..., 1): node s+t = product of its children.
UMB_DEVICE void umb_tree_up(umb_u32 *tree, int s, int t) {
    if (t < s) {  // thread index: public
        int k = s + t;
        umb_fe l, r;
        umb_tree_get(l, tree, 2 * k);
        umb_tree_get(r, tree, 2 * k + 1);
        umb_fe_mul(l, l, r);
        umb_tree_put(tree, k, l);
    }
}

// Root: thread 0 inverts the product of all leaves (the one inversion of the block).
UMB_DEVICE void umb_tree_root(umb_u32 *tree, int t) {
    if (t == 0) {
        umb_fe a;
        umb_tree_get(a, tree, 1);
        umb_fe_inv(a, a);
        umb_tree_put(tree, 1, a);
    }
}

// Down-sweep level with s nodes (s = 1, 2, ..., B/2): node k holds 1/(product under k); its
// children get 1/left = (1/k) * right and 1/right = (1/k) * left.
UMB_DEVICE void umb_tree_down(umb_u32 *tree, int s, int t) {
    if (t < s) {
        int k = s + t;
        umb_fe inv, l, r, il, ir;
        umb_tree_get(inv, tree, k);
        umb_tree_get(l, tree, 2 * k);
        umb_tree_get(r, tree, 2 * k + 1);
        umb_fe_mul(il, inv, r);
        umb_fe_mul(ir, inv, l);
        umb_tree_put(tree, 2 * k, il);
        umb_tree_put(tree, 2 * k + 1, ir);
    }
}

// Last step: thread t reads the inverse of its leaf.
UMB_DEVICE void umb_tree_result(umb_fe &zinv, const umb_u32 *tree, int t) {
    umb_tree_get(zinv, tree, UMB_BLOCK + t);
}

// z with 0 replaced by 1, so that the identity does not zero the whole block's product.
UMB_DEVICE void umb_z_or_one(umb_fe &r, const umb_jac &p) {
    umb_fe one;
    umb_fe_set_one(one);
    r = p.z;
    umb_fe_cmov(r, one, umb_jac_is_identity(p));
}

// ------------------------------------------------------------------ kernel phases: pairs

struct umb_pair_state {
    umb_jac r0, r1;
};

// Phase 1 of umb_mul_pairs: r0 = a_i * P_i, r1 = b_i * P_i (one table for both) and z, the
// product of their Z coordinates. Threads past the end (live is false: public) do no work.
UMB_DEVICE void umb_pairs_phase1(umb_pair_state &st, umb_fe &z, const umb_u32 *bases,
                                 const umb_u32 *scalars, umb_u32 n, umb_u32 i, bool live) {
    umb_jac_set_identity(st.r0);
    umb_jac_set_identity(st.r1);
    if (live) {
        umb_aff p;
        umb_load_fe_col(p.x, bases, n, i);
        umb_load_fe_col(p.y, bases + (umb_u64)8 * n, n, i);
        p.inf = 0;
        umb_jac table[9];
        umb_build_table(table, p);
        umb_u32 k[8];
        umb_load_words_col(k, scalars, n, i);
        umb_mul_var(st.r0, table, k);
        umb_load_words_col(k, scalars + (umb_u64)8 * n, n, i);
        umb_mul_var(st.r1, table, k);
    }
    umb_fe z0, z1;
    umb_z_or_one(z0, st.r0);
    umb_z_or_one(z1, st.r1);
    umb_fe_mul(z, z0, z1);
}

// Phase 3 of umb_mul_pairs: zinv = 1/z from the tree; store both results in affine form.
UMB_DEVICE void umb_pairs_phase3(const umb_pair_state &st, const umb_fe &zinv, umb_u32 *out,
                                 umb_u32 n, umb_u32 i, bool live) {
    if (!live) return;
    umb_fe z0, z1, inv0, inv1;
    umb_z_or_one(z0, st.r0);
    umb_z_or_one(z1, st.r1);
    umb_fe_mul(inv0, zinv, z1);  // 1/(z0 z1) * z1 = 1/z0
    umb_fe_mul(inv1, zinv, z0);
    umb_aff a;
    umb_jac_to_aff_with(a, st.r0, inv0);
    umb_store_aff_col(out, n, i, a);
    umb_jac_to_aff_with(a, st.r1, inv1);
    umb_store_aff_col(out + (umb_u64)17 * n, n, i, a);
}

// ------------------------------------------------------------------ kernel phases: fixed base

// Phase 1 of umb_mul_fixed: r = k_i * Q and z = its Z coordinate (1 for the identity).
UMB_DEVICE void umb_fixed_phase1(umb_jac &r, umb_fe &z, const umb_u32 *table,
                                 const umb_u32 *scalars, umb_u32 n, umb_u32 i, bool live) {
    umb_jac_set_identity(r);
    if (live) {
        umb_u32 k[8];
        umb_load_words_col(k, scalars, n, i);
        umb_mul_fixed(r, table, k);
    }
    umb_z_or_one(z, r);
}

// Phase 3 of umb_mul_fixed: store r in affine form.
UMB_DEVICE void umb_fixed_phase3(const umb_jac &r, const umb_fe &zinv, umb_u32 *out, umb_u32 n,
                                 umb_u32 i, bool live) {
    if (!live) return;
    umb_aff a;
    umb_jac_to_aff_with(a, r, zinv);
    umb_store_aff_col(out, n, i, a);
}

#endif // UMB_SCALAR_MUL_CUH
