// SPDX-License-Identifier: GPL-3.0-only
//
// point.cuh: secp256k1 points (y^2 = x^3 + 7, a = 0) in homogeneous projective and affine
// coordinates.
//
// Projective (X : Y : Z) stands for (X/Z, Y/Z); any (0 : Y : 0) is the point at infinity.
// Affine points carry an explicit infinity mask because (0, 0) is not on the curve.
//
// The formulas are the complete ones of Renes, Costello and Batina (eprint 2015/1060,
// Algorithms 7, 8 and 9 for a = 0), as k256 uses them: one straight-line sequence that is right
// for every pair of inputs -- P + P, P + (-P), the identity on either side -- so there are no
// exceptional cases to mask and nothing to compute twice. Costs: addition 12M, mixed addition
// 11M, doubling 6M + 2S, each plus a few multiplications by 3b = 21 (umb_fe_mul_small).
#ifndef UMB_POINT_CUH
#define UMB_POINT_CUH

#include "field.cuh"

// 3b for b = 7.
#define UMB_B3 21u

// Qualifier of the point formulas. Called (not inlined) by default: inlining every formula into
// the ladders multiplies the PTX and the start-up compile time. A build may define it as
// UMB_DEVICE (`GpuOptions::nvrtc_options`) to measure the other trade-off.
#ifndef UMB_POINT_FN
#define UMB_POINT_FN UMB_NOINLINE
#endif

// A point in projective coordinates; Z = 0 is the identity.
struct umb_prj {
    umb_fe x, y, z;
};

// An affine point; inf is all-ones for the identity (x and y are then meaningless).
struct umb_aff {
    umb_fe x, y;
    umb_u32 inf;
};

UMB_DEVICE void umb_prj_set_identity(umb_prj &r) {
    umb_fe_set_zero(r.x);
    umb_fe_set_one(r.y);
    umb_fe_set_zero(r.z);
}

// r = a as a projective point (the identity if a.inf).
UMB_DEVICE void umb_prj_from_aff(umb_prj &r, const umb_aff &a) {
    r.x = a.x;
    r.y = a.y;
    umb_fe_set_one(r.z);
    umb_fe zero, one;
    umb_fe_set_zero(zero);
    umb_fe_set_one(one);
    umb_fe_cmov(r.x, zero, a.inf);
    umb_fe_cmov(r.y, one, a.inf);
    umb_fe_cmov(r.z, zero, a.inf);
}

// r = mask ? a : r.
UMB_DEVICE void umb_prj_cmov(umb_prj &r, const umb_prj &a, umb_u32 mask) {
    umb_fe_cmov(r.x, a.x, mask);
    umb_fe_cmov(r.y, a.y, mask);
    umb_fe_cmov(r.z, a.z, mask);
}

// all-ones if p is the identity.
UMB_DEVICE umb_u32 umb_prj_is_identity(const umb_prj &p) { return umb_fe_is_zero(p.z); }

// The tail shared by both additions (RCB's order, which keeps at most six field elements live
// at once: fewer registers to spill around the called multiplications). In: XX, YY, 3b ZZ and
// the three cross terms xy = X1 Y2 + X2 Y1, yz = Y1 Z2 + Y2 Z1, xz = X1 Z2 + X2 Z1; all are
// consumed (overwritten). Out: the sum in projective form.
UMB_DEVICE void umb_prj_add_tail(umb_prj &r, umb_fe &xx, umb_fe &yy, const umb_fe &bzz3,
                                 const umb_fe &xy, const umb_fe &yz, umb_fe &xz) {
    umb_fe yy_p, s, t;
    umb_fe_add(s, xx, xx);
    umb_fe_add(xx, s, xx);             // 3 XX
    umb_fe_add(yy_p, yy, bzz3);        // YY + 3b ZZ
    umb_fe_sub(yy, yy, bzz3);          // YY - 3b ZZ
    umb_fe_mul_small(xz, xz, UMB_B3);  // 3b xz
    umb_fe_mul(s, yz, xz);
    umb_fe_mul(t, xy, yy);
    umb_fe_sub(r.x, t, s);             // X3 = xy (YY - 3b ZZ) - 3b yz xz
    umb_fe_mul(s, xz, xx);
    umb_fe_mul(t, yy, yy_p);
    umb_fe_add(r.y, t, s);             // Y3 = (YY + 3b ZZ)(YY - 3b ZZ) + 9b XX xz
    umb_fe_mul(s, xx, xy);
    umb_fe_mul(t, yy_p, yz);
    umb_fe_add(r.z, t, s);             // Z3 = yz (YY + 3b ZZ) + 3 XX xy
}

// r = a1 b2 + a2 b1 given aa = a1 a2 and bb = b1 b2, with one multiplication:
// (a1 + b1)(a2 + b2) - (aa + bb). r may not alias the inputs.
UMB_DEVICE void umb_cross_sum(umb_fe &r, const umb_fe &a1, const umb_fe &b1, const umb_fe &a2,
                              const umb_fe &b2, const umb_fe &aa, const umb_fe &bb) {
    umb_fe s, t;
    umb_fe_add(s, a1, b1);
    umb_fe_add(t, a2, b2);
    umb_fe_mul(r, s, t);
    umb_fe_add(t, aa, bb);
    umb_fe_sub(r, r, t);
}

// r = p + q for any p, q (RCB Algorithm 7). r may alias p or q.
UMB_POINT_FN void umb_prj_add(umb_prj &r, const umb_prj &p, const umb_prj &q) {
    umb_fe xx, yy, zz, xy, yz, xz;
    umb_fe_mul(xx, p.x, q.x);
    umb_fe_mul(yy, p.y, q.y);
    umb_fe_mul(zz, p.z, q.z);
    umb_cross_sum(xy, p.x, p.y, q.x, q.y, xx, yy);  // X1 Y2 + X2 Y1
    umb_cross_sum(yz, p.y, p.z, q.y, q.z, yy, zz);  // Y1 Z2 + Y2 Z1
    umb_cross_sum(xz, p.x, p.z, q.x, q.z, xx, zz);  // X1 Z2 + X2 Z1
    umb_fe_mul_small(zz, zz, UMB_B3);               // 3b ZZ
    umb_prj_add_tail(r, xx, yy, zz, xy, yz, xz);
}

// r = p + q with q affine, for any p and q (RCB Algorithm 8; q = identity handled by a mask).
// r may alias p.
UMB_POINT_FN void umb_prj_add_affine(umb_prj &r, const umb_prj &p, const umb_aff &q) {
    umb_fe xx, yy, xy, yz, xz, t;
    umb_fe_mul(xx, p.x, q.x);
    umb_fe_mul(yy, p.y, q.y);
    umb_cross_sum(xy, p.x, p.y, q.x, q.y, xx, yy);  // X1 y2 + x2 Y1
    umb_fe_mul(yz, q.y, p.z);
    umb_fe_add(yz, yz, p.y);           // Y1 + y2 Z1
    umb_fe_mul(xz, q.x, p.z);
    umb_fe_add(xz, xz, p.x);           // X1 + x2 Z1
    umb_fe_mul_small(t, p.z, UMB_B3);  // 3b Z1
    umb_prj sum;
    umb_prj_add_tail(sum, xx, yy, t, xy, yz, xz);
    umb_prj_cmov(sum, p, q.inf);
    r = sum;
}

// r = 2p for any p (RCB Algorithm 9). r may alias p.
UMB_POINT_FN void umb_prj_dbl(umb_prj &r, const umb_prj &p) {
    umb_fe yy, zz, xy2, bzz3, bzz9, yy_m, yy_p, t, x3, y3, z3;
    umb_fe_sqr(yy, p.y);
    umb_fe_sqr(zz, p.z);
    umb_fe_mul(xy2, p.x, p.y);
    umb_fe_add(xy2, xy2, xy2);       // 2 X Y
    umb_fe_mul_small(bzz3, zz, UMB_B3);
    umb_fe_add(bzz9, bzz3, bzz3);
    umb_fe_add(bzz9, bzz9, bzz3);    // 9b Z^2
    umb_fe_sub(yy_m, yy, bzz9);
    umb_fe_add(yy_p, yy, bzz3);
    umb_fe_mul(t, yy, zz);
    umb_fe_mul_small(t, t, 8u * UMB_B3);  // 24b Y^2 Z^2
    umb_fe_mul(x3, xy2, yy_m);       // X3 = 2XY (Y^2 - 9b Z^2)
    umb_fe_mul(y3, yy_m, yy_p);
    umb_fe_add(y3, y3, t);           // Y3 = (Y^2 - 9b Z^2)(Y^2 + 3b Z^2) + 24b Y^2 Z^2
    umb_fe_mul(z3, yy, p.y);
    umb_fe_mul(z3, z3, p.z);
    umb_fe_add(z3, z3, z3);
    umb_fe_add(z3, z3, z3);
    umb_fe_add(z3, z3, z3);          // Z3 = 8 Y^3 Z
    r.x = x3;
    r.y = y3;
    r.z = z3;
}

// r = p in affine coordinates, given zinv = 1/Z (any value when p is the identity).
UMB_DEVICE void umb_prj_to_aff_with(umb_aff &r, const umb_prj &p, const umb_fe &zinv) {
    umb_fe_mul(r.x, p.x, zinv);
    umb_fe_mul(r.y, p.y, zinv);
    r.inf = umb_prj_is_identity(p);
    umb_fe zero;
    umb_fe_set_zero(zero);
    umb_fe_cmov(r.x, zero, r.inf);
    umb_fe_cmov(r.y, zero, r.inf);
}

// r = p in affine coordinates with its own inversion (use the batch path in kernels).
UMB_DEVICE void umb_prj_to_aff(umb_aff &r, const umb_prj &p) {
    umb_fe zinv;
    umb_fe_inv(zinv, p.z);
    umb_prj_to_aff_with(r, p, zinv);
}

#endif // UMB_POINT_CUH
