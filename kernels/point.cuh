// SPDX-License-Identifier: GPL-3.0-only
//
// point.cuh: secp256k1 points (y^2 = x^3 + 7, a = 0) in Jacobian and affine coordinates.
//
// Jacobian (X, Y, Z) stands for (X/Z^2, Y/Z^3); Z = 0 is the point at infinity. Affine points
// carry an explicit infinity mask because (0, 0) is not on the curve.
//
// The raw formulas (dbl-2009-l, add-2007-bl, madd-2007-bl from the Explicit-Formulas Database)
// are incomplete: they give a wrong answer for P + P and for the point at infinity as an input.
// The umb_jac_add / umb_jac_add_affine wrappers make them complete in constant time: they always
// compute the doubling as well and pick the right answer with masks, never with a branch. That
// costs one doubling per addition (about 7 field operations on top of 16 or 11) and buys a
// scalar multiplication with no exceptional cases to reason about for any scalar in [0, 2^256).
#ifndef UMB_POINT_CUH
#define UMB_POINT_CUH

#include "field.cuh"

// A point in Jacobian coordinates; Z = 0 is the identity.
struct umb_jac {
    umb_fe x, y, z;
};

// An affine point; inf is all-ones for the identity (x and y are then meaningless).
struct umb_aff {
    umb_fe x, y;
    umb_u32 inf;
};

UMB_DEVICE void umb_jac_set_identity(umb_jac &r) {
    umb_fe_set_one(r.x);
    umb_fe_set_one(r.y);
    umb_fe_set_zero(r.z);
}

// r = a as a Jacobian point (identity if a.inf).
UMB_DEVICE void umb_jac_from_aff(umb_jac &r, const umb_aff &a) {
    r.x = a.x;
    r.y = a.y;
    umb_fe_set_one(r.z);
    umb_fe zero;
    umb_fe_set_zero(zero);
    umb_fe_cmov(r.z, zero, a.inf);
}

// r = mask ? a : r.
UMB_DEVICE void umb_jac_cmov(umb_jac &r, const umb_jac &a, umb_u32 mask) {
    umb_fe_cmov(r.x, a.x, mask);
    umb_fe_cmov(r.y, a.y, mask);
    umb_fe_cmov(r.z, a.z, mask);
}

// all-ones if p is the identity.
UMB_DEVICE umb_u32 umb_jac_is_identity(const umb_jac &p) { return umb_fe_is_zero(p.z); }

// r = 2p (dbl-2009-l, 2M + 5S). Complete on secp256k1: there is no point of order 2, and Z = 0
// gives Z3 = 0.
UMB_NOINLINE void umb_jac_dbl(umb_jac &r, const umb_jac &p) {
    umb_fe a, b, c, d, e, f, t;
    umb_fe_sqr(a, p.x);       // A = X1^2
    umb_fe_sqr(b, p.y);       // B = Y1^2
    umb_fe_sqr(c, b);         // C = B^2
    umb_fe_add(t, p.x, b);    // X1 + B
    umb_fe_sqr(t, t);         // (X1 + B)^2
    umb_fe_sub(t, t, a);
    umb_fe_sub(t, t, c);
    umb_fe_add(d, t, t);      // D = 2((X1 + B)^2 - A - C)
    umb_fe_add(e, a, a);
    umb_fe_add(e, e, a);      // E = 3A
    umb_fe_sqr(f, e);         // F = E^2
    umb_fe z3;
    umb_fe_mul(z3, p.y, p.z);
    umb_fe_add(r.z, z3, z3);  // Z3 = 2 Y1 Z1 (before r.x/r.y may alias p)
    umb_fe x3;
    umb_fe_add(t, d, d);
    umb_fe_sub(x3, f, t);     // X3 = F - 2D
    umb_fe_sub(t, d, x3);
    umb_fe_mul(t, e, t);      // E (D - X3)
    umb_fe_add(c, c, c);
    umb_fe_add(c, c, c);
    umb_fe_add(c, c, c);      // 8C
    umb_fe_sub(r.y, t, c);    // Y3 = E (D - X3) - 8C
    r.x = x3;
}

// r = p + q (add-2007-bl, 11M + 5S), with h = U2 - U1 and rr = 2(S2 - S1) returned for the
// exceptional-case masks. Wrong when p == q or when either input is the identity; gives the
// identity (Z3 = 0) when p == -q.
UMB_NOINLINE void umb_jac_add_raw(umb_jac &r, umb_fe &h, umb_fe &rr, const umb_jac &p,
                                const umb_jac &q) {
    umb_fe z1z1, z2z2, u1, u2, s1, s2, i, j, v, t;
    umb_fe_sqr(z1z1, p.z);
    umb_fe_sqr(z2z2, q.z);
    umb_fe_mul(u1, p.x, z2z2);
    umb_fe_mul(u2, q.x, z1z1);
    umb_fe_mul(s1, p.y, q.z);
    umb_fe_mul(s1, s1, z2z2);
    umb_fe_mul(s2, q.y, p.z);
    umb_fe_mul(s2, s2, z1z1);
    umb_fe_sub(h, u2, u1);       // H = U2 - U1
    umb_fe_add(i, h, h);
    umb_fe_sqr(i, i);            // I = (2H)^2
    umb_fe_mul(j, h, i);         // J = H I
    umb_fe_sub(rr, s2, s1);
    umb_fe_add(rr, rr, rr);      // r = 2 (S2 - S1)
    umb_fe_mul(v, u1, i);        // V = U1 I
    umb_fe z3;
    umb_fe_add(t, p.z, q.z);
    umb_fe_sqr(t, t);
    umb_fe_sub(t, t, z1z1);
    umb_fe_sub(t, t, z2z2);
    umb_fe_mul(z3, t, h);        // Z3 = ((Z1 + Z2)^2 - Z1Z1 - Z2Z2) H
    umb_fe x3, y3;
    umb_fe_sqr(x3, rr);
    umb_fe_sub(x3, x3, j);
    umb_fe_sub(x3, x3, v);
    umb_fe_sub(x3, x3, v);       // X3 = r^2 - J - 2V
    umb_fe_sub(t, v, x3);
    umb_fe_mul(y3, rr, t);
    umb_fe_mul(t, s1, j);
    umb_fe_add(t, t, t);
    umb_fe_sub(y3, y3, t);       // Y3 = r (V - X3) - 2 S1 J
    r.x = x3;
    r.y = y3;
    r.z = z3;
}

// r = p + q for any p, q (complete, constant time).
UMB_NOINLINE void umb_jac_add(umb_jac &r, const umb_jac &p, const umb_jac &q) {
    umb_jac sum, dbl;
    umb_fe h, rr;
    umb_jac_add_raw(sum, h, rr, p, q);
    umb_jac_dbl(dbl, p);
    umb_u32 p_inf = umb_jac_is_identity(p);
    umb_u32 q_inf = umb_jac_is_identity(q);
    // Same x and same y (both finite): the raw formula degenerates, take the doubling.
    umb_u32 same = umb_fe_is_zero(h) & umb_fe_is_zero(rr) & ~p_inf & ~q_inf;
    umb_jac_cmov(sum, dbl, same);
    umb_jac_cmov(sum, q, p_inf);
    umb_jac_cmov(sum, p, q_inf & ~p_inf);
    r = sum;
}

// r = p + q with q affine (madd-2007-bl, 7M + 4S), h and rr as in umb_jac_add_raw. Wrong when
// p == q or either input is the identity.
UMB_NOINLINE void umb_jac_add_affine_raw(umb_jac &r, umb_fe &h, umb_fe &rr, const umb_jac &p,
                                       const umb_aff &q) {
    umb_fe z1z1, u2, s2, hh, i, j, v, t;
    umb_fe_sqr(z1z1, p.z);
    umb_fe_mul(u2, q.x, z1z1);   // U2 = X2 Z1Z1
    umb_fe_mul(s2, q.y, p.z);
    umb_fe_mul(s2, s2, z1z1);    // S2 = Y2 Z1 Z1Z1
    umb_fe_sub(h, u2, p.x);      // H = U2 - X1
    umb_fe_sqr(hh, h);           // HH = H^2
    umb_fe_add(i, hh, hh);
    umb_fe_add(i, i, i);         // I = 4 HH
    umb_fe_mul(j, h, i);         // J = H I
    umb_fe_sub(rr, s2, p.y);
    umb_fe_add(rr, rr, rr);      // r = 2 (S2 - Y1)
    umb_fe_mul(v, p.x, i);       // V = X1 I
    umb_fe x3, y3, z3;
    umb_fe_add(t, p.z, h);
    umb_fe_sqr(t, t);
    umb_fe_sub(t, t, z1z1);
    umb_fe_sub(z3, t, hh);       // Z3 = (Z1 + H)^2 - Z1Z1 - HH
    umb_fe_sqr(x3, rr);
    umb_fe_sub(x3, x3, j);
    umb_fe_sub(x3, x3, v);
    umb_fe_sub(x3, x3, v);       // X3 = r^2 - J - 2V
    umb_fe_sub(t, v, x3);
    umb_fe_mul(y3, rr, t);
    umb_fe_mul(t, p.y, j);
    umb_fe_add(t, t, t);
    umb_fe_sub(y3, y3, t);       // Y3 = r (V - X3) - 2 Y1 J
    r.x = x3;
    r.y = y3;
    r.z = z3;
}

// r = p + q with q affine, for any p, q (complete, constant time).
UMB_NOINLINE void umb_jac_add_affine(umb_jac &r, const umb_jac &p, const umb_aff &q) {
    umb_jac sum, dbl, qj;
    umb_fe h, rr;
    umb_jac_add_affine_raw(sum, h, rr, p, q);
    umb_jac_dbl(dbl, p);
    umb_jac_from_aff(qj, q);
    umb_u32 p_inf = umb_jac_is_identity(p);
    umb_u32 same = umb_fe_is_zero(h) & umb_fe_is_zero(rr) & ~p_inf & ~q.inf;
    umb_jac_cmov(sum, dbl, same);
    umb_jac_cmov(sum, qj, p_inf);
    umb_jac_cmov(sum, p, q.inf & ~p_inf);
    r = sum;
}

// r = p in affine coordinates, given zinv = 1/Z (any value when p is the identity).
UMB_DEVICE void umb_jac_to_aff_with(umb_aff &r, const umb_jac &p, const umb_fe &zinv) {
    umb_fe zi2, zi3;
    umb_fe_sqr(zi2, zinv);
    umb_fe_mul(zi3, zi2, zinv);
    umb_fe_mul(r.x, p.x, zi2);
    umb_fe_mul(r.y, p.y, zi3);
    r.inf = umb_jac_is_identity(p);
    umb_fe zero;
    umb_fe_set_zero(zero);
    umb_fe_cmov(r.x, zero, r.inf);
    umb_fe_cmov(r.y, zero, r.inf);
}

// r = p in affine coordinates with its own inversion (use the batch path in kernels).
UMB_DEVICE void umb_jac_to_aff(umb_aff &r, const umb_jac &p) {
    umb_fe zinv;
    umb_fe_inv(zinv, p.z);
    umb_jac_to_aff_with(r, p, zinv);
}

#endif // UMB_POINT_CUH
