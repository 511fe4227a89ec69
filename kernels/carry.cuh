// SPDX-License-Identifier: GPL-3.0-only
//
// carry.cuh: 32-bit add/sub/multiply-add with an explicit carry chain.
//
// On the device each primitive is one PTX instruction (add.cc, addc.cc, mad.lo.cc, madc.hi.cc,
// ...) and the carry lives in the condition-code register CC.CF, which ptxas maps onto predicate
// carries (IADD3/IMAD.X) instead of spending extra IMADs on carry recovery (the gECC trick).
//
// On the host the same calls emulate PTX semantics exactly, with the carry held in a small
// struct. Field code is written once against these primitives, so the host test harness runs
// the very same sequence of carry operations the GPU runs; only the eleven one-line primitives
// below differ, and each mirrors one PTX ISA instruction definition.
//
// Chain discipline (checked on the host with assert): a chain starts with an instruction that
// does not read the carry (add.cc, sub.cc, mad.lo.cc, mad.hi.cc); instructions that read the
// carry (addc*, subc*, madc*) only follow one that wrote it.
#ifndef UMB_CARRY_CUH
#define UMB_CARRY_CUH

#include "umb_types.cuh"

#if defined(__CUDA_ARCH__)

// The carry is implicit in CC.CF; the struct only keeps host and device signatures identical.
struct umb_cc {};
#define UMB_CC_INIT {}

UMB_DEVICE umb_u32 umb_add_cc(umb_cc &, umb_u32 a, umb_u32 b) {
    umb_u32 r;
    asm volatile("add.cc.u32 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
    return r;
}
UMB_DEVICE umb_u32 umb_addc_cc(umb_cc &, umb_u32 a, umb_u32 b) {
    umb_u32 r;
    asm volatile("addc.cc.u32 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
    return r;
}
UMB_DEVICE umb_u32 umb_addc(umb_cc &, umb_u32 a, umb_u32 b) {
    umb_u32 r;
    asm volatile("addc.u32 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
    return r;
}
UMB_DEVICE umb_u32 umb_sub_cc(umb_cc &, umb_u32 a, umb_u32 b) {
    umb_u32 r;
    asm volatile("sub.cc.u32 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
    return r;
}
UMB_DEVICE umb_u32 umb_subc_cc(umb_cc &, umb_u32 a, umb_u32 b) {
    umb_u32 r;
    asm volatile("subc.cc.u32 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
    return r;
}
UMB_DEVICE umb_u32 umb_subc(umb_cc &, umb_u32 a, umb_u32 b) {
    umb_u32 r;
    asm volatile("subc.u32 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
    return r;
}
UMB_DEVICE umb_u32 umb_mad_lo_cc(umb_cc &, umb_u32 a, umb_u32 b, umb_u32 c) {
    umb_u32 r;
    asm volatile("mad.lo.cc.u32 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(c));
    return r;
}
UMB_DEVICE umb_u32 umb_madc_lo_cc(umb_cc &, umb_u32 a, umb_u32 b, umb_u32 c) {
    umb_u32 r;
    asm volatile("madc.lo.cc.u32 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(c));
    return r;
}
UMB_DEVICE umb_u32 umb_mad_hi_cc(umb_cc &, umb_u32 a, umb_u32 b, umb_u32 c) {
    umb_u32 r;
    asm volatile("mad.hi.cc.u32 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(c));
    return r;
}
UMB_DEVICE umb_u32 umb_madc_hi_cc(umb_cc &, umb_u32 a, umb_u32 b, umb_u32 c) {
    umb_u32 r;
    asm volatile("madc.hi.cc.u32 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(c));
    return r;
}
UMB_DEVICE umb_u32 umb_madc_hi(umb_cc &, umb_u32 a, umb_u32 b, umb_u32 c) {
    umb_u32 r;
    asm volatile("madc.hi.u32 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(c));
    return r;
}

#else // host emulation of the PTX carry semantics

#include <assert.h>

// cf is 0 or 1 once written; UMB_CC_POISON marks "never written" so that a chain that reads
// the carry before any instruction set it trips the assert (on the GPU it would read garbage).
#define UMB_CC_POISON 0xDEADu
struct umb_cc {
    umb_u32 cf;
};
#define UMB_CC_INIT {UMB_CC_POISON}

UMB_DEVICE umb_u32 umb_cc_in(const umb_cc &c) {
    assert(c.cf <= 1u && "carry read before any instruction wrote it");
    return c.cf;
}

// add.cc.u32: d = a + b, CF = carry-out.
UMB_DEVICE umb_u32 umb_add_cc(umb_cc &c, umb_u32 a, umb_u32 b) {
    umb_u64 s = (umb_u64)a + b;
    c.cf = (umb_u32)(s >> 32);
    return (umb_u32)s;
}
// addc.cc.u32: d = a + b + CF, CF = carry-out.
UMB_DEVICE umb_u32 umb_addc_cc(umb_cc &c, umb_u32 a, umb_u32 b) {
    umb_u64 s = (umb_u64)a + b + umb_cc_in(c);
    c.cf = (umb_u32)(s >> 32);
    return (umb_u32)s;
}
// addc.u32: d = a + b + CF, CF unchanged.
UMB_DEVICE umb_u32 umb_addc(umb_cc &c, umb_u32 a, umb_u32 b) {
    return (umb_u32)((umb_u64)a + b + umb_cc_in(c));
}
// sub.cc.u32: d = a - b, CF = borrow-out.
UMB_DEVICE umb_u32 umb_sub_cc(umb_cc &c, umb_u32 a, umb_u32 b) {
    umb_u64 d = (umb_u64)a - b;
    c.cf = (umb_u32)(d >> 63);
    return (umb_u32)d;
}
// subc.cc.u32: d = a - (b + CF), CF = borrow-out.
UMB_DEVICE umb_u32 umb_subc_cc(umb_cc &c, umb_u32 a, umb_u32 b) {
    umb_u64 d = (umb_u64)a - b - umb_cc_in(c);
    c.cf = (umb_u32)(d >> 63);
    return (umb_u32)d;
}
// subc.u32: d = a - (b + CF), CF unchanged.
UMB_DEVICE umb_u32 umb_subc(umb_cc &c, umb_u32 a, umb_u32 b) {
    return (umb_u32)((umb_u64)a - b - umb_cc_in(c));
}
// mad.lo.cc.u32: d = lo32(a*b) + c, CF = carry-out.
UMB_DEVICE umb_u32 umb_mad_lo_cc(umb_cc &c, umb_u32 a, umb_u32 b, umb_u32 x) {
    umb_u64 s = (umb_u64)(umb_u32)((umb_u64)a * b) + x;
    c.cf = (umb_u32)(s >> 32);
    return (umb_u32)s;
}
// madc.lo.cc.u32: d = lo32(a*b) + c + CF, CF = carry-out.
UMB_DEVICE umb_u32 umb_madc_lo_cc(umb_cc &c, umb_u32 a, umb_u32 b, umb_u32 x) {
    umb_u64 s = (umb_u64)(umb_u32)((umb_u64)a * b) + x + umb_cc_in(c);
    c.cf = (umb_u32)(s >> 32);
    return (umb_u32)s;
}
// mad.hi.cc.u32: d = hi32(a*b) + c, CF = carry-out.
UMB_DEVICE umb_u32 umb_mad_hi_cc(umb_cc &c, umb_u32 a, umb_u32 b, umb_u32 x) {
    umb_u64 s = (((umb_u64)a * b) >> 32) + x;
    c.cf = (umb_u32)(s >> 32);
    return (umb_u32)s;
}
// madc.hi.cc.u32: d = hi32(a*b) + c + CF, CF = carry-out.
UMB_DEVICE umb_u32 umb_madc_hi_cc(umb_cc &c, umb_u32 a, umb_u32 b, umb_u32 x) {
    umb_u64 s = (((umb_u64)a * b) >> 32) + x + umb_cc_in(c);
    c.cf = (umb_u32)(s >> 32);
    return (umb_u32)s;
}
// madc.hi.u32: d = hi32(a*b) + c + CF, CF unchanged.
UMB_DEVICE umb_u32 umb_madc_hi(umb_cc &c, umb_u32 a, umb_u32 b, umb_u32 x) {
    return (umb_u32)((((umb_u64)a * b) >> 32) + x + umb_cc_in(c));
}

#endif // __CUDA_ARCH__

#endif // UMB_CARRY_CUH
