// SPDX-License-Identifier: GPL-3.0-only
//
// scalar_mul.cuh: per-thread bodies of the batch kernels in scalar_mul.cu, written so that the
// host harness can run them too.
//
// A kernel is three phases: (1) each thread computes its projective results and the product z of
// their Z coordinates, (2) the block inverts all z at once with a product tree in shared memory
// (Montgomery's trick: one field inversion per block instead of one per thread), (3) each thread
// turns its results into affine coordinates and stores them. Phases 1 and 3 and every step of
// the tree are functions here; scalar_mul.cu adds only the __syncthreads() between them, and
// host_harness.cpp replays the same steps thread by thread.
//
// Memory layout (all arrays of 32-bit words, limb-major "column" layout for coalescing: word w of
// item i is at [w * n + i], so a warp reading word w touches 32 consecutive words):
//   pairs:  bases   16 rows: x limbs 0..7, y limbs 8..15 (little-endian limbs, affine, reduced)
//           scalars 16 rows: a limbs 0..7, b limbs 8..15 (each below n: the kernel splits
//                            them for the endomorphism, umb_glv_split)
//           out     34 rows: for s in {0, 1} (a.P, b.P): rows 17 s + 0..7 x, + 8..15 y,
//                            + 16 identity flag (1 when the product is the point at infinity)
//           second  1: both products; 0: every b is zero and b.P is stored as the identity
//                   without its ladder (the capsule check's h.E)
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

// beta, the cube root of unity mod p with lambda * (x, y) = (beta * x, y), as 8 limbs.
UMB_DEVICE void umb_fe_set_beta(umb_fe &r) {
    const umb_u32 beta[8] = {0x719501eeu, 0xc1396c28u, 0x12f58995u, 0x9cf04975u,
                             0xac3434e9u, 0x6e64479eu, 0x657c0710u, 0x7ae96a2bu};
UMB_UNROLL
    for (int w = 0; w < 8; w++) r.v[w] = beta[w];
}

// The variable-base table of a point P: entry d - 1 holds d * P for d = 1..8. It is built in
// projective coordinates (umb_build_table), the block inverts the product of the Z coordinates
// of entries 2..8 of every thread at once (umb_table_z), and umb_table_to_affine then rewrites
// each entry in place as affine x, y (its z is no longer read). Affine entries make every
// addition of the ladder a mixed one (11M instead of 12M) and the constant-time scan reads 16
// words per entry instead of 24. No entry is the identity: P is finite and of prime order.
#define UMB_TABLE 8

UMB_NOINLINE void umb_build_table(umb_prj table[UMB_TABLE], const umb_aff &p) {
    umb_prj_from_aff(table[0], p);
    umb_prj_dbl(table[1], table[0]);
    for (int d = 2; d < UMB_TABLE; d++) umb_prj_add_affine(table[d], table[d - 1], p);
}

// z = the product of the Z coordinates of entries 2..8 (entry 1 is P, with Z = 1).
UMB_NOINLINE void umb_table_z(umb_fe &z, const umb_prj table[UMB_TABLE]) {
    z = table[1].z;
    for (int d = 2; d < UMB_TABLE; d++) umb_fe_mul(z, z, table[d].z);
}

// Where a thread's affine table lives: limb w of entry d's x is at x(d)[w * word], of its y at
// x(d)[(8 + w) * word], with x(d) = base + d * entry. Two placements (scalar_mul.cu):
//  - in place of the thread's projective table (local memory): entry = 24, word = 1
//    (umb_table_in_place);
//  - in shared memory, one column per thread of the block (umb_table_in_shared): entry =
//    16 * UMB_BLOCK, word = UMB_BLOCK, so a warp reads 32 consecutive banks.
struct umb_table_view {
    umb_u32 *base;
    umb_u32 entry, word;
};

// The view that keeps the affine table in place of the projective one.
UMB_DEVICE umb_table_view umb_table_in_place(umb_prj table[UMB_TABLE]) {
    umb_table_view v;
    v.base = table[0].x.v;
    v.entry = 24;
    v.word = 1;
    return v;
}

// Bytes of shared memory for the tables of one block (UMB_TABLE_SHARED builds).
#define UMB_TABLE_SMEM_BYTES (UMB_TABLE * 16 * UMB_BLOCK * 4)

// Thread t's table in a block's shared memory of UMB_TABLE_SMEM_BYTES.
UMB_DEVICE umb_table_view umb_table_in_shared(umb_u32 *smem, int t) {
    umb_table_view v;
    v.base = smem + t;
    v.entry = 16 * UMB_BLOCK;
    v.word = UMB_BLOCK;
    return v;
}

UMB_DEVICE void umb_table_put(const umb_table_view &v, int d, const umb_fe &x, const umb_fe &y) {
    umb_u32 *e = v.base + d * v.entry;
UMB_UNROLL
    for (int w = 0; w < 8; w++) {
        e[w * v.word] = x.v[w];
        e[(8 + w) * v.word] = y.v[w];
    }
}

// Rewrites entries 2..8 as affine points into `view` given zinv = 1/umb_table_z, and copies
// entry 1 (P, already affine): Montgomery's trick within the thread (6 + 12 + 14
// multiplications). `view` may be umb_table_in_place(table).
UMB_NOINLINE void umb_table_to_affine(const umb_table_view &view, umb_prj table[UMB_TABLE],
                                      const umb_fe &zinv) {
    // prefix[d] = Z_1 ... Z_d over the entries d = 1..7 (the points 2P..8P).
    umb_fe prefix[UMB_TABLE];
    prefix[1] = table[1].z;
    for (int d = 2; d < UMB_TABLE; d++) umb_fe_mul(prefix[d], prefix[d - 1], table[d].z);
    umb_fe inv = zinv;  // 1 / prefix[7]
    for (int d = UMB_TABLE - 1; d >= 1; d--) {
        umb_fe zi;
        if (d > 1) {  // d is public
            umb_fe_mul(zi, inv, prefix[d - 1]);  // 1 / Z_d
            umb_fe_mul(inv, inv, table[d].z);    // 1 / (Z_1 ... Z_{d-1})
        } else {
            zi = inv;
        }
        umb_fe x, y;
        umb_fe_mul(x, table[d].x, zi);
        umb_fe_mul(y, table[d].y, zi);
        umb_table_put(view, d, x, y);
    }
    umb_fe x = table[0].x, y = table[0].y;
    umb_table_put(view, 0, x, y);
}

// r = entry mag - 1 of the affine table (the identity for mag = 0), reading every word of
// every entry.
UMB_NOINLINE void umb_table_select(umb_aff &r, const umb_table_view &view, umb_u32 mag) {
    umb_fe_set_zero(r.x);
    umb_fe_set_zero(r.y);
    for (umb_u32 d = 0; d < UMB_TABLE; d++) {
        umb_u32 m = umb_eq_mask(d + 1, mag);
        const umb_u32 *e = view.base + d * view.entry;
UMB_UNROLL
        for (int w = 0; w < 8; w++) {
            r.x.v[w] = umb_select(m, e[w * view.word], r.x.v[w]);
            r.y.v[w] = umb_select(m, e[(8 + w) * view.word], r.y.v[w]);
        }
    }
    r.inf = umb_is_zero_mask(mag);
}

// A scalar split for the endomorphism: both recoded half-scalars and their signs.
struct umb_glv {
    umb_recoded128 h1, h2;
    umb_u32 neg1, neg2;  // masks: the half is negative
};

// r = low 256 bits of a * b.
UMB_DEVICE void umb_mul_lo256(umb_u32 r[8], const umb_u32 a[8], const umb_u32 b[8]) {
    umb_u32 w[16];
    umb_mul_wide(w, a, b);
UMB_UNROLL
    for (int i = 0; i < 8; i++) r[i] = w[i];
}

// r = (a - b) mod 2^256.
UMB_DEVICE void umb_sub256(umb_u32 r[8], const umb_u32 a[8], const umb_u32 b[8]) {
    umb_cc c = UMB_CC_INIT;
    r[0] = umb_sub_cc(c, a[0], b[0]);
UMB_UNROLL
    for (int i = 1; i < 7; i++) r[i] = umb_subc_cc(c, a[i], b[i]);
    r[7] = umb_subc(c, a[7], b[7]);
}

// c = round(k * g / 2^384) (c < 2^128 + 1).
UMB_DEVICE void umb_mul_shift384(umb_u32 c[8], const umb_u32 k[8], const umb_u32 g[8]) {
    umb_u32 w[16];
    umb_mul_wide(w, k, g);
    umb_cc cc = UMB_CC_INIT;
    c[0] = umb_add_cc(cc, w[12], w[11] >> 31);  // + the rounding bit 383
    c[1] = umb_addc_cc(cc, w[13], 0);
    c[2] = umb_addc_cc(cc, w[14], 0);
    c[3] = umb_addc_cc(cc, w[15], 0);
    c[4] = umb_addc(cc, 0, 0);
    c[5] = c[6] = c[7] = 0;
}

// A small signed value held mod 2^256 -> its sign mask and its magnitude's low 128 bits.
UMB_DEVICE void umb_signed_half(umb_u32 mag[4], umb_u32 &neg, const umb_u32 v[8]) {
    umb_u32 zero[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    umb_u32 minus[8];
    umb_sub256(minus, zero, v);
    neg = umb_mask_from_bit(v[7] >> 31);
UMB_UNROLL
    for (int i = 0; i < 4; i++) mag[i] = umb_select(neg, minus[i], v[i]);
}

// Splits k (below n) as k = k1 + k2 lambda (mod n) with |k1|, |k2| < 2^128, the method of
// libsecp256k1 and k256 (Gouvea-Oliveira-Lopez rounding with 384-bit constants), here in exact
// integer arithmetic mod 2^256 on the short lattice basis (a1, b1), (a2, b2 = a1):
//   c1 = round(k g1 / 2^384), c2 = round(k g2 / 2^384),
//   k1 = k - c1 a1 - c2 a2,  k2 = c1 (-b1) - c2 a1,
// whose true values are small, so their two's-complement sign and magnitude are exact. A fixed
// sequence of multiplications and masks: no branch or index depends on k.
UMB_DEVICE void umb_glv_split(umb_glv &g, const umb_u32 k[8]) {
    const umb_u32 g1[8] = {0x45dbb031u, 0xe893209au, 0x71e8ca7fu, 0x3daa8a14u,
                           0x9284eb15u, 0xe86c90e4u, 0xa7d46bcdu, 0x3086d221u};
    const umb_u32 g2[8] = {0x8ac47f71u, 0x1571b4aeu, 0x9df506c6u, 0x221208acu,
                           0x0abfe4c4u, 0x6f547fa9u, 0x010e8828u, 0xe4437ed6u};
    const umb_u32 a1[8] = {0x9284eb15u, 0xe86c90e4u, 0xa7d46bcdu, 0x3086d221u, 0, 0, 0, 0};
    const umb_u32 mb1[8] = {0x0abfe4c3u, 0x6f547fa9u, 0x010e8828u, 0xe4437ed6u, 0, 0, 0, 0};
    const umb_u32 a2[8] = {0x9d44cfd8u, 0x57c1108du, 0xa8e2f3f6u, 0x14ca50f7u, 1u, 0, 0, 0};
    umb_u32 c1[8], c2[8], t[8], k1[8], k2[8], m[4];
    umb_mul_shift384(c1, k, g1);
    umb_mul_shift384(c2, k, g2);
    umb_mul_lo256(t, c1, a1);
    umb_sub256(k1, k, t);
    umb_mul_lo256(t, c2, a2);
    umb_sub256(k1, k1, t);
    umb_mul_lo256(k2, c1, mb1);
    umb_mul_lo256(t, c2, a1);
    umb_sub256(k2, k2, t);
    umb_signed_half(m, g.neg1, k1);
    umb_recode128(g.h1, m);
    umb_signed_half(m, g.neg2, k2);
    umb_recode128(g.h2, m);
}

// r += (+-)|d| P' for one digit: the entry is read with umb_table_select, mapped through the
// endomorphism (x -> beta x) for the second half (`endo`: which half, public), and negated
// when the digit's sign and the half's sign differ (a mask: no branch on the digit).
UMB_NOINLINE void umb_add_digit(umb_prj &r, const umb_table_view &table, umb_u32 mag,
                                umb_u32 neg, bool endo) {
    umb_aff s;
    umb_table_select(s, table, mag);
    if (endo) {  // public: the same for every scalar
        umb_fe beta;
        umb_fe_set_beta(beta);
        umb_fe_mul(s.x, s.x, beta);
    }
    umb_fe_cneg(s.y, neg);
    umb_prj_add_affine(r, r, s);
}

// r = k * P from P's affine table, k given as r1 + r2 lambda: 128 doublings and 66 complete
// mixed additions for every k (two per 4-bit window, one for each half), digits from
// umb_recode128.
UMB_NOINLINE void umb_mul_glv(umb_prj &r, const umb_table_view &table, const umb_glv &k) {
    umb_prj_set_identity(r);
    umb_add_digit(r, table, k.h1.top, k.neg1, false);
    umb_add_digit(r, table, k.h2.top, k.neg2, true);
    for (int i = UMB_HALF_WINDOWS - 1; i >= 0; i--) {
        umb_prj_dbl(r, r);
        umb_prj_dbl(r, r);
        umb_prj_dbl(r, r);
        umb_prj_dbl(r, r);
        umb_u32 mag, neg;
        umb_digit128(k.h1, i, mag, neg);
        umb_add_digit(r, table, mag, neg ^ k.neg1, false);
        umb_digit128(k.h2, i, mag, neg);
        umb_add_digit(r, table, mag, neg ^ k.neg2, true);
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
UMB_NOINLINE void umb_mul_fixed(umb_prj &r, const umb_u32 *table, const umb_u32 k[8]) {
    umb_recoded rc;
    umb_recode(rc, k);
    umb_prj_set_identity(r);
    umb_aff a;
    for (int j = 0; j < 64; j++) {
        umb_u32 mag, neg;
        umb_digit(rc, j, mag, neg);
        umb_fixed_select(a, table + (umb_u64)j * UMB_ROW * UMB_ENTRY_WORDS, mag);
        umb_fe_cneg(a.y, neg);
        umb_prj_add_affine(r, r, a);
    }
    umb_fixed_select(a, table + (umb_u64)64 * UMB_ROW * UMB_ENTRY_WORDS, rc.top);
    umb_prj_add_affine(r, r, a);
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
UMB_DEVICE void umb_z_or_one(umb_fe &r, const umb_prj &p) {
    umb_fe one;
    umb_fe_set_one(one);
    r = p.z;
    umb_fe_cmov(r, one, umb_prj_is_identity(p));
}

// ------------------------------------------------------------------ kernel phases: pairs

struct umb_pair_state {
    umb_prj table[UMB_TABLE];
    umb_prj r0, r1;
};

// Phase 1 of umb_mul_pairs: P_i's projective table and z, the product of its Z coordinates (1
// for threads past the end: live is false, public, and they do no work).
UMB_DEVICE void umb_pairs_phase1(umb_pair_state &st, umb_fe &z, const umb_u32 *bases,
                                 umb_u32 n, umb_u32 i, bool live) {
    umb_fe_set_one(z);
    if (live) {
        umb_aff p;
        umb_load_fe_col(p.x, bases, n, i);
        umb_load_fe_col(p.y, bases + (umb_u64)8 * n, n, i);
        p.inf = 0;
        umb_build_table(st.table, p);
        umb_table_z(z, st.table);
    }
}

// Phase 2 of umb_mul_pairs: zinv = 1/z from the block's tree makes the table affine, in
// `view` (umb_table_in_place(st.table) or shared memory); then r0 = a_i * P_i,
// r1 = b_i * P_i and z, the product of their Z coordinates. With `second` false (one value
// for the whole launch, chosen by the host for a call whose second scalars are all zero: the
// capsule check's h * E) r1 stays the identity, b_i * P_i for b_i = 0, without its ladder.
UMB_DEVICE void umb_pairs_phase2(umb_pair_state &st, umb_fe &z, const umb_fe &zinv,
                                 const umb_table_view &view, const umb_u32 *scalars, umb_u32 n,
                                 umb_u32 i, bool live, bool second) {
    umb_prj_set_identity(st.r0);
    umb_prj_set_identity(st.r1);
    if (live) {
        umb_table_to_affine(view, st.table, zinv);
        umb_u32 k[8];
        umb_glv g;
        umb_load_words_col(k, scalars, n, i);
        umb_glv_split(g, k);
        umb_mul_glv(st.r0, view, g);
        if (second) {  // public: the same for every thread of the launch
            umb_load_words_col(k, scalars + (umb_u64)8 * n, n, i);
            umb_glv_split(g, k);
            umb_mul_glv(st.r1, view, g);
        }
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
    umb_prj_to_aff_with(a, st.r0, inv0);
    umb_store_aff_col(out, n, i, a);
    umb_prj_to_aff_with(a, st.r1, inv1);
    umb_store_aff_col(out + (umb_u64)17 * n, n, i, a);
}

// ------------------------------------------------------------------ point decompression

#define UMB_DECOMPRESS_IN_ROWS 9
#define UMB_DECOMPRESS_OUT_ROWS 9

// y for x (reduced) and the wanted parity `odd` (0 or 1): y^2 = x^3 + 7 with y of that parity;
// ok is 1 when such a y exists (x is on the curve), else 0 and y is meaningless. Public data,
// but the sequence is fixed anyway.
UMB_DEVICE void umb_decompress_one(umb_fe &y, umb_u32 &ok, const umb_fe &x, umb_u32 odd) {
    umb_fe rhs, seven, check;
    umb_fe_sqr(rhs, x);
    umb_fe_mul(rhs, rhs, x);
    umb_fe_set_zero(seven);
    seven.v[0] = 7;
    umb_fe_add(rhs, rhs, seven);
    umb_fe_sqrt_candidate(y, rhs);
    umb_fe_sqr(check, y);
    ok = umb_fe_eq(check, rhs) & 1u;
    umb_fe_cneg(y, umb_mask_from_bit((y.v[0] ^ odd) & 1u));
}

// One thread of umb_decompress: item i's x (rows 0..7) and parity (row 8) in, y (rows 0..7)
// and the on-curve flag (row 8) out.
UMB_DEVICE void umb_decompress_item(const umb_u32 *in, umb_u32 *out, umb_u32 n, umb_u32 i) {
    umb_fe x, y;
    umb_load_fe_col(x, in, n, i);
    umb_u32 odd = in[(umb_u64)8 * n + i] & 1u;
    umb_u32 ok;
    umb_decompress_one(y, ok, x, odd);
    umb_store_fe_col(out, n, i, y);
    out[(umb_u64)8 * n + i] = ok;
}

// ------------------------------------------------------------------ kernel phases: fixed base

// Phase 1 of umb_mul_fixed: r = k_i * Q and z = its Z coordinate (1 for the identity).
UMB_DEVICE void umb_fixed_phase1(umb_prj &r, umb_fe &z, const umb_u32 *table,
                                 const umb_u32 *scalars, umb_u32 n, umb_u32 i, bool live) {
    umb_prj_set_identity(r);
    if (live) {
        umb_u32 k[8];
        umb_load_words_col(k, scalars, n, i);
        umb_mul_fixed(r, table, k);
    }
    umb_z_or_one(z, r);
}

// Phase 3 of umb_mul_fixed: store r in affine form.
UMB_DEVICE void umb_fixed_phase3(const umb_prj &r, const umb_fe &zinv, umb_u32 *out, umb_u32 n,
                                 umb_u32 i, bool live) {
    if (!live) return;
    umb_aff a;
    umb_prj_to_aff_with(a, r, zinv);
    umb_store_aff_col(out, n, i, a);
}

#endif // UMB_SCALAR_MUL_CUH
