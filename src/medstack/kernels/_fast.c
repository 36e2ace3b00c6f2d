/* medstack's compiled kernels: plain C99, no Python API; loaded with ctypes by fast.py.

   Bit-identical to kernels/reference.py. Built by `pip install` (setup.py) with
   -ffp-contract=off and without fast-math: every float operation is the IEEE operation the
   reference does, in the reference's order (no fused multiply-adds, no reassociation). See
   fast.py's module docstring ("Exactness") for every place where bits could change.

   Planes are given as the address of their first float32 (int64) and whether they are
   big-endian (uint8): the kernels read the memory-mapped FITS rows where they lie and
   byte-swap each value as they load it. An array a kernel writes never overlaps another of
   its arguments (fast.py allocates each one), as the restrict qualifiers say. Functions return
   0, or -1 when scratch memory could not be allocated. ctypes releases the GIL around each
   call. */

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef int64_t i64;

/* One build, the best vector width at run time: on x86-64 Linux with GCC or Clang each
   exported kernel is compiled for AVX-512, AVX2 and baseline x86-64 and picked when the
   library is loaded (the same operations, so the same bits, at any width). */
#if defined(__x86_64__) && defined(__linux__) && defined(__GLIBC__) && !defined(MEDSTACK_NO_CLONES)
#define KERNEL __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define KERNEL
#endif

#define INF32 ((float)INFINITY)

/* The SHA-256 of this file's text, given by the build (kernels/_build.py): fast.py refuses a
   library built from another version of it, whose functions could take other arguments. */
#ifndef MEDSTACK_SOURCE_SHA256
#define MEDSTACK_SOURCE_SHA256 "unknown"
#endif

const char *medstack_source_sha256(void) { return MEDSTACK_SOURCE_SHA256; }

static inline float f32_of(uint32_t bits) {
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static inline uint32_t u32_at(const unsigned char *p) {
    uint32_t bits;
    memcpy(&bits, p, 4);
    return bits;
}

/* The bits of value x of a plane that starts at raw, byte-swapped where swap. */
static inline uint32_t bits_at(const unsigned char *raw, int swap, int x) {
    uint32_t bits = u32_at(raw + 4 * x);
    return swap ? __builtin_bswap32(bits) : bits;
}

static inline const unsigned char *plane(const i64 *ptrs, int i) {
    return (const unsigned char *)(intptr_t)ptrs[i];
}

/* Value p (flat) of plane i. */
static inline float value_at(const i64 *ptrs, const uint8_t *swaps, int i, i64 p) {
    uint32_t bits = u32_at(plane(ptrs, i) + 4 * p);
    return f32_of(swaps[i] ? __builtin_bswap32(bits) : bits);
}

static inline int finite32(float v) { return fabsf(v) < INF32; }

/* dst[:nb] = values [p0, p0 + nb) of plane i; returns whether one of them is -0.0. */
static inline int load_row(const i64 *ptrs, const uint8_t *swaps, int i, i64 p0,
                           float *restrict dst, int nb) {
    const unsigned char *src = plane(ptrs, i) + 4 * p0;
    int seen = 0;
    if (swaps[i]) {
        for (int x = 0; x < nb; x++) {
            uint32_t bits = __builtin_bswap32(u32_at(src + 4 * x));
            dst[x] = f32_of(bits);
            seen |= bits == 0x80000000u;
        }
    } else {
        for (int x = 0; x < nb; x++) {
            uint32_t bits = u32_at(src + 4 * x);
            dst[x] = f32_of(bits);
            seen |= bits == 0x80000000u;
        }
    }
    return seen;
}

/* A kernel's scratch arrays, carved from one allocation (freed at once): the (n, block)
   float32 block of values, up to `slots` arrays of block values of up to 8 bytes, and n
   float32 more. */
typedef struct {
    unsigned char *base;
    size_t used;
} scratch;

static int scratch_open(scratch *s, int n, int block, int slots) {
    size_t bytes = (size_t)n * block * 4 + (size_t)slots * block * 8 + (size_t)(n + 1) * 4 +
                   8 * (size_t)(slots + 2);
    s->base = malloc(bytes);
    s->used = 0;
    return s->base ? 0 : -1;
}

static void *carve(scratch *s, size_t bytes) {
    if (!s->base) return NULL; /* (the kernel returns -1 without touching it) */
    void *p = s->base + s->used;
    s->used += (bytes + 7) & ~(size_t)7;
    return p;
}

/* row, clamped to the rows [0, n) of a block */
static inline int clamp_row(int row, int n) { return row < 0 ? 0 : (row > n - 1 ? n - 1 : row); }

/* One comparator on two values: the lower to a, the higher to b. The + 0.0f turns -0.0 into
   +0.0 on the low wire: no result changes (a zero median of a pixel holding a -0.0 is redone
   exactly), as in the reference's order of operations. */
#define CMP(a, b)                                                                          \
    do {                                                                                   \
        float lt_a_ = (a), lt_b_ = (b);                                                    \
        int lt_ = lt_a_ < lt_b_;                                                           \
        (a) = (lt_ ? lt_a_ : lt_b_) + 0.0f;                                                \
        (b) = lt_ ? lt_b_ : lt_a_;                                                         \
    } while (0)

/* The comparator network on the first nb columns of buf (rows = wires, row stride block). */
static inline void sort_block(float *buf, i64 block, const int32_t *net, int ncomp, int nb) {
    for (int c = 0; c < ncomp; c++) {
        float *restrict ra = buf + net[2 * c] * block;
        float *restrict rb = buf + net[2 * c + 1] * block;
        for (int x = 0; x < nb; x++) {
            float a = ra[x], b = rb[x];
            CMP(a, b);
            ra[x] = a;
            rb[x] = b;
        }
    }
}

/* sort_block's pruned networks for the medians of 3 to 16 images, written out, each pixel's
   values in registers (see kernels/networks.py). */
#if defined(__GNUC__)
#define FIXED_INLINE __attribute__((always_inline))
#else
#define FIXED_INLINE
#endif
/* BEGIN fixed median networks: generated by python -m medstack.kernels.networks */
static inline FIXED_INLINE void fixed_3_1(float *restrict r0, float *restrict r1,
    float *restrict r2, int nb) {
    for (int x = 0; x < nb; x++) {
        float v0 = r0[x], v1 = r1[x], v2 = r2[x];
        CMP(v0, v1);
        CMP(v0, v2);
        CMP(v1, v2);
        r0[x] = v0; r1[x] = v1;
    }
}

static inline FIXED_INLINE void fixed_3_2(float *restrict r0, float *restrict r1,
    float *restrict r2, int nb) {
    for (int x = 0; x < nb; x++) {
        float v0 = r0[x], v1 = r1[x], v2 = r2[x];
        CMP(v0, v1);
        CMP(v0, v2);
        CMP(v1, v2);
        r1[x] = v1; r2[x] = v2;
    }
}

static inline FIXED_INLINE void fixed_4_2(float *restrict r0, float *restrict r1,
    float *restrict r2, float *restrict r3, int nb) {
    for (int x = 0; x < nb; x++) {
        float v0 = r0[x], v1 = r1[x], v2 = r2[x], v3 = r3[x];
        CMP(v0, v1);
        CMP(v2, v3);
        CMP(v0, v2);
        CMP(v1, v3);
        CMP(v1, v2);
        r1[x] = v1; r2[x] = v2;
    }
}

static inline FIXED_INLINE void fixed_5_2(float *restrict r0, float *restrict r1,
    float *restrict r2, float *restrict r3, float *restrict r4, int nb) {
    for (int x = 0; x < nb; x++) {
        float v0 = r0[x], v1 = r1[x], v2 = r2[x], v3 = r3[x], v4 = r4[x];
        CMP(v0, v1);
        CMP(v2, v3);
        CMP(v0, v2);
        CMP(v1, v3);
        CMP(v1, v2);
        CMP(v0, v4);
        CMP(v2, v4);
        CMP(v1, v2);
        r1[x] = v1; r2[x] = v2;
    }
}

static inline FIXED_INLINE void fixed_5_3(float *restrict r0, float *restrict r1,
    float *restrict r2, float *restrict r3, float *restrict r4, int nb) {
    for (int x = 0; x < nb; x++) {
        float v0 = r0[x], v1 = r1[x], v2 = r2[x], v3 = r3[x], v4 = r4[x];
        CMP(v0, v1);
        CMP(v2, v3);
        CMP(v0, v2);
        CMP(v1, v3);
        CMP(v1, v2);
        CMP(v0, v4);
        CMP(v2, v4);
        CMP(v1, v2);
        CMP(v3, v4);
        r2[x] = v2; r3[x] = v3;
    }
}

static inline FIXED_INLINE void fixed_6_3(float *restrict r0, float *restrict r1,
    float *restrict r2, float *restrict r3, float *restrict r4, float *restrict r5, int nb) {
    for (int x = 0; x < nb; x++) {
        float v0 = r0[x], v1 = r1[x], v2 = r2[x], v3 = r3[x], v4 = r4[x], v5 = r5[x];
        CMP(v0, v1);
        CMP(v2, v3);
        CMP(v4, v5);
        CMP(v0, v2);
        CMP(v1, v3);
        CMP(v1, v2);
        CMP(v0, v4);
        CMP(v1, v5);
        CMP(v2, v4);
        CMP(v3, v5);
        CMP(v1, v2);
        CMP(v3, v4);
        r2[x] = v2; r3[x] = v3;
    }
}

static inline FIXED_INLINE void fixed_7_3(float *restrict r0, float *restrict r1,
    float *restrict r2, float *restrict r3, float *restrict r4, float *restrict r5,
    float *restrict r6, int nb) {
    for (int x = 0; x < nb; x++) {
        float v0 = r0[x], v1 = r1[x], v2 = r2[x], v3 = r3[x], v4 = r4[x], v5 = r5[x], v6 = r6[x];
        CMP(v0, v1);
        CMP(v2, v3);
        CMP(v4, v5);
        CMP(v0, v2);
        CMP(v1, v3);
        CMP(v4, v6);
        CMP(v1, v2);
        CMP(v5, v6);
        CMP(v0, v4);
        CMP(v1, v5);
        CMP(v2, v6);
        CMP(v2, v4);
        CMP(v3, v5);
        CMP(v1, v2);
        CMP(v3, v4);
        r2[x] = v2; r3[x] = v3;
    }
}

static inline FIXED_INLINE void fixed_7_4(float *restrict r0, float *restrict r1,
    float *restrict r2, float *restrict r3, float *restrict r4, float *restrict r5,
    float *restrict r6, int nb) {
    for (int x = 0; x < nb; x++) {
        float v0 = r0[x], v1 = r1[x], v2 = r2[x], v3 = r3[x], v4 = r4[x], v5 = r5[x], v6 = r6[x];
        CMP(v0, v1);
        CMP(v2, v3);
        CMP(v4, v5);
        CMP(v0, v2);
        CMP(v1, v3);
        CMP(v4, v6);
        CMP(v1, v2);
        CMP(v5, v6);
        CMP(v0, v4);
        CMP(v1, v5);
        CMP(v2, v6);
        CMP(v2, v4);
        CMP(v3, v5);
        CMP(v3, v4);
        r3[x] = v3; r4[x] = v4;
    }
}

static inline FIXED_INLINE void fixed_8_4(float *restrict r0, float *restrict r1,
    float *restrict r2, float *restrict r3, float *restrict r4, float *restrict r5,
    float *restrict r6, float *restrict r7, int nb) {
    for (int x = 0; x < nb; x++) {
        float v0 = r0[x], v1 = r1[x], v2 = r2[x], v3 = r3[x], v4 = r4[x], v5 = r5[x], v6 = r6[x],
            v7 = r7[x];
        CMP(v0, v1);
        CMP(v2, v3);
        CMP(v4, v5);
        CMP(v6, v7);
        CMP(v0, v2);
        CMP(v1, v3);
        CMP(v4, v6);
        CMP(v5, v7);
        CMP(v1, v2);
        CMP(v5, v6);
        CMP(v0, v4);
        CMP(v1, v5);
        CMP(v2, v6);
        CMP(v3, v7);
        CMP(v2, v4);
        CMP(v3, v5);
        CMP(v3, v4);
        r3[x] = v3; r4[x] = v4;
    }
}

static inline FIXED_INLINE void fixed_9_4(float *restrict r0, float *restrict r1,
    float *restrict r2, float *restrict r3, float *restrict r4, float *restrict r5,
    float *restrict r6, float *restrict r7, float *restrict r8, int nb) {
    for (int x = 0; x < nb; x++) {
        float v0 = r0[x], v1 = r1[x], v2 = r2[x], v3 = r3[x], v4 = r4[x], v5 = r5[x], v6 = r6[x],
            v7 = r7[x], v8 = r8[x];
        CMP(v0, v1);
        CMP(v2, v3);
        CMP(v4, v5);
        CMP(v6, v7);
        CMP(v0, v2);
        CMP(v1, v3);
        CMP(v4, v6);
        CMP(v5, v7);
        CMP(v1, v2);
        CMP(v5, v6);
        CMP(v0, v4);
        CMP(v1, v5);
        CMP(v2, v6);
        CMP(v3, v7);
        CMP(v2, v4);
        CMP(v3, v5);
        CMP(v1, v2);
        CMP(v3, v4);
        CMP(v5, v6);
        CMP(v0, v8);
        CMP(v4, v8);
        CMP(v2, v4);
        CMP(v3, v5);
        CMP(v3, v4);
        r3[x] = v3; r4[x] = v4;
    }
}

static inline FIXED_INLINE void fixed_9_5(float *restrict r0, float *restrict r1,
    float *restrict r2, float *restrict r3, float *restrict r4, float *restrict r5,
    float *restrict r6, float *restrict r7, float *restrict r8, int nb) {
    for (int x = 0; x < nb; x++) {
        float v0 = r0[x], v1 = r1[x], v2 = r2[x], v3 = r3[x], v4 = r4[x], v5 = r5[x], v6 = r6[x],
            v7 = r7[x], v8 = r8[x];
        CMP(v0, v1);
        CMP(v2, v3);
        CMP(v4, v5);
        CMP(v6, v7);
        CMP(v0, v2);
        CMP(v1, v3);
        CMP(v4, v6);
        CMP(v5, v7);
        CMP(v1, v2);
        CMP(v5, v6);
        CMP(v0, v4);
        CMP(v1, v5);
        CMP(v2, v6);
        CMP(v3, v7);
        CMP(v2, v4);
        CMP(v3, v5);
        CMP(v1, v2);
        CMP(v3, v4);
        CMP(v5, v6);
        CMP(v0, v8);
        CMP(v4, v8);
        CMP(v2, v4);
        CMP(v3, v5);
        CMP(v6, v8);
        CMP(v3, v4);
        CMP(v5, v6);
        r4[x] = v4; r5[x] = v5;
    }
}

static inline FIXED_INLINE void fixed_10_5(float *restrict r0, float *restrict r1,
    float *restrict r2, float *restrict r3, float *restrict r4, float *restrict r5,
    float *restrict r6, float *restrict r7, float *restrict r8, float *restrict r9, int nb) {
    for (int x = 0; x < nb; x++) {
        float v0 = r0[x], v1 = r1[x], v2 = r2[x], v3 = r3[x], v4 = r4[x], v5 = r5[x], v6 = r6[x],
            v7 = r7[x], v8 = r8[x], v9 = r9[x];
        CMP(v0, v1);
        CMP(v2, v3);
        CMP(v4, v5);
        CMP(v6, v7);
        CMP(v8, v9);
        CMP(v0, v2);
        CMP(v1, v3);
        CMP(v4, v6);
        CMP(v5, v7);
        CMP(v1, v2);
        CMP(v5, v6);
        CMP(v0, v4);
        CMP(v1, v5);
        CMP(v2, v6);
        CMP(v3, v7);
        CMP(v2, v4);
        CMP(v3, v5);
        CMP(v1, v2);
        CMP(v3, v4);
        CMP(v5, v6);
        CMP(v0, v8);
        CMP(v1, v9);
        CMP(v4, v8);
        CMP(v5, v9);
        CMP(v2, v4);
        CMP(v3, v5);
        CMP(v6, v8);
        CMP(v3, v4);
        CMP(v5, v6);
        r4[x] = v4; r5[x] = v5;
    }
}

static inline FIXED_INLINE void fixed_11_5(float *restrict r0, float *restrict r1,
    float *restrict r2, float *restrict r3, float *restrict r4, float *restrict r5,
    float *restrict r6, float *restrict r7, float *restrict r8, float *restrict r9,
    float *restrict r10, int nb) {
    for (int x = 0; x < nb; x++) {
        float v0 = r0[x], v1 = r1[x], v2 = r2[x], v3 = r3[x], v4 = r4[x], v5 = r5[x], v6 = r6[x],
            v7 = r7[x], v8 = r8[x], v9 = r9[x], v10 = r10[x];
        CMP(v0, v1);
        CMP(v2, v3);
        CMP(v4, v5);
        CMP(v6, v7);
        CMP(v8, v9);
        CMP(v0, v2);
        CMP(v1, v3);
        CMP(v4, v6);
        CMP(v5, v7);
        CMP(v8, v10);
        CMP(v1, v2);
        CMP(v5, v6);
        CMP(v9, v10);
        CMP(v0, v4);
        CMP(v1, v5);
        CMP(v2, v6);
        CMP(v3, v7);
        CMP(v2, v4);
        CMP(v3, v5);
        CMP(v1, v2);
        CMP(v3, v4);
        CMP(v5, v6);
        CMP(v9, v10);
        CMP(v0, v8);
        CMP(v1, v9);
        CMP(v2, v10);
        CMP(v4, v8);
        CMP(v5, v9);
        CMP(v6, v10);
        CMP(v2, v4);
        CMP(v3, v5);
        CMP(v6, v8);
        CMP(v3, v4);
        CMP(v5, v6);
        r4[x] = v4; r5[x] = v5;
    }
}

static inline FIXED_INLINE void fixed_11_6(float *restrict r0, float *restrict r1,
    float *restrict r2, float *restrict r3, float *restrict r4, float *restrict r5,
    float *restrict r6, float *restrict r7, float *restrict r8, float *restrict r9,
    float *restrict r10, int nb) {
    for (int x = 0; x < nb; x++) {
        float v0 = r0[x], v1 = r1[x], v2 = r2[x], v3 = r3[x], v4 = r4[x], v5 = r5[x], v6 = r6[x],
            v7 = r7[x], v8 = r8[x], v9 = r9[x], v10 = r10[x];
        CMP(v0, v1);
        CMP(v2, v3);
        CMP(v4, v5);
        CMP(v6, v7);
        CMP(v8, v9);
        CMP(v0, v2);
        CMP(v1, v3);
        CMP(v4, v6);
        CMP(v5, v7);
        CMP(v8, v10);
        CMP(v1, v2);
        CMP(v5, v6);
        CMP(v9, v10);
        CMP(v0, v4);
        CMP(v1, v5);
        CMP(v2, v6);
        CMP(v3, v7);
        CMP(v2, v4);
        CMP(v3, v5);
        CMP(v1, v2);
        CMP(v3, v4);
        CMP(v5, v6);
        CMP(v9, v10);
        CMP(v0, v8);
        CMP(v1, v9);
        CMP(v2, v10);
        CMP(v4, v8);
        CMP(v5, v9);
        CMP(v6, v10);
        CMP(v3, v5);
        CMP(v6, v8);
        CMP(v5, v6);
        r5[x] = v5; r6[x] = v6;
    }
}

static inline FIXED_INLINE void fixed_12_6(float *restrict r0, float *restrict r1,
    float *restrict r2, float *restrict r3, float *restrict r4, float *restrict r5,
    float *restrict r6, float *restrict r7, float *restrict r8, float *restrict r9,
    float *restrict r10, float *restrict r11, int nb) {
    for (int x = 0; x < nb; x++) {
        float v0 = r0[x], v1 = r1[x], v2 = r2[x], v3 = r3[x], v4 = r4[x], v5 = r5[x], v6 = r6[x],
            v7 = r7[x], v8 = r8[x], v9 = r9[x], v10 = r10[x], v11 = r11[x];
        CMP(v0, v1);
        CMP(v2, v3);
        CMP(v4, v5);
        CMP(v6, v7);
        CMP(v8, v9);
        CMP(v10, v11);
        CMP(v0, v2);
        CMP(v1, v3);
        CMP(v4, v6);
        CMP(v5, v7);
        CMP(v8, v10);
        CMP(v9, v11);
        CMP(v1, v2);
        CMP(v5, v6);
        CMP(v9, v10);
        CMP(v0, v4);
        CMP(v1, v5);
        CMP(v2, v6);
        CMP(v3, v7);
        CMP(v2, v4);
        CMP(v3, v5);
        CMP(v1, v2);
        CMP(v3, v4);
        CMP(v5, v6);
        CMP(v9, v10);
        CMP(v0, v8);
        CMP(v1, v9);
        CMP(v2, v10);
        CMP(v3, v11);
        CMP(v4, v8);
        CMP(v5, v9);
        CMP(v6, v10);
        CMP(v3, v5);
        CMP(v6, v8);
        CMP(v5, v6);
        r5[x] = v5; r6[x] = v6;
    }
}

static inline FIXED_INLINE void fixed_13_6(float *restrict r0, float *restrict r1,
    float *restrict r2, float *restrict r3, float *restrict r4, float *restrict r5,
    float *restrict r6, float *restrict r7, float *restrict r8, float *restrict r9,
    float *restrict r10, float *restrict r11, float *restrict r12, int nb) {
    for (int x = 0; x < nb; x++) {
        float v0 = r0[x], v1 = r1[x], v2 = r2[x], v3 = r3[x], v4 = r4[x], v5 = r5[x], v6 = r6[x],
            v7 = r7[x], v8 = r8[x], v9 = r9[x], v10 = r10[x], v11 = r11[x], v12 = r12[x];
        CMP(v0, v1);
        CMP(v2, v3);
        CMP(v4, v5);
        CMP(v6, v7);
        CMP(v8, v9);
        CMP(v10, v11);
        CMP(v0, v2);
        CMP(v1, v3);
        CMP(v4, v6);
        CMP(v5, v7);
        CMP(v8, v10);
        CMP(v9, v11);
        CMP(v1, v2);
        CMP(v5, v6);
        CMP(v9, v10);
        CMP(v0, v4);
        CMP(v1, v5);
        CMP(v2, v6);
        CMP(v3, v7);
        CMP(v8, v12);
        CMP(v2, v4);
        CMP(v3, v5);
        CMP(v10, v12);
        CMP(v1, v2);
        CMP(v3, v4);
        CMP(v5, v6);
        CMP(v9, v10);
        CMP(v11, v12);
        CMP(v0, v8);
        CMP(v1, v9);
        CMP(v2, v10);
        CMP(v3, v11);
        CMP(v4, v12);
        CMP(v4, v8);
        CMP(v5, v9);
        CMP(v6, v10);
        CMP(v3, v5);
        CMP(v6, v8);
        CMP(v5, v6);
        r5[x] = v5; r6[x] = v6;
    }
}

static inline FIXED_INLINE void fixed_13_7(float *restrict r0, float *restrict r1,
    float *restrict r2, float *restrict r3, float *restrict r4, float *restrict r5,
    float *restrict r6, float *restrict r7, float *restrict r8, float *restrict r9,
    float *restrict r10, float *restrict r11, float *restrict r12, int nb) {
    for (int x = 0; x < nb; x++) {
        float v0 = r0[x], v1 = r1[x], v2 = r2[x], v3 = r3[x], v4 = r4[x], v5 = r5[x], v6 = r6[x],
            v7 = r7[x], v8 = r8[x], v9 = r9[x], v10 = r10[x], v11 = r11[x], v12 = r12[x];
        CMP(v0, v1);
        CMP(v2, v3);
        CMP(v4, v5);
        CMP(v6, v7);
        CMP(v8, v9);
        CMP(v10, v11);
        CMP(v0, v2);
        CMP(v1, v3);
        CMP(v4, v6);
        CMP(v5, v7);
        CMP(v8, v10);
        CMP(v9, v11);
        CMP(v1, v2);
        CMP(v5, v6);
        CMP(v9, v10);
        CMP(v0, v4);
        CMP(v1, v5);
        CMP(v2, v6);
        CMP(v3, v7);
        CMP(v8, v12);
        CMP(v2, v4);
        CMP(v3, v5);
        CMP(v10, v12);
        CMP(v1, v2);
        CMP(v3, v4);
        CMP(v5, v6);
        CMP(v9, v10);
        CMP(v11, v12);
        CMP(v0, v8);
        CMP(v1, v9);
        CMP(v2, v10);
        CMP(v3, v11);
        CMP(v4, v12);
        CMP(v4, v8);
        CMP(v5, v9);
        CMP(v6, v10);
        CMP(v7, v11);
        CMP(v3, v5);
        CMP(v6, v8);
        CMP(v7, v9);
        CMP(v5, v6);
        CMP(v7, v8);
        r6[x] = v6; r7[x] = v7;
    }
}

static inline FIXED_INLINE void fixed_14_7(float *restrict r0, float *restrict r1,
    float *restrict r2, float *restrict r3, float *restrict r4, float *restrict r5,
    float *restrict r6, float *restrict r7, float *restrict r8, float *restrict r9,
    float *restrict r10, float *restrict r11, float *restrict r12, float *restrict r13, int nb) {
    for (int x = 0; x < nb; x++) {
        float v0 = r0[x], v1 = r1[x], v2 = r2[x], v3 = r3[x], v4 = r4[x], v5 = r5[x], v6 = r6[x],
            v7 = r7[x], v8 = r8[x], v9 = r9[x], v10 = r10[x], v11 = r11[x], v12 = r12[x],
            v13 = r13[x];
        CMP(v0, v1);
        CMP(v2, v3);
        CMP(v4, v5);
        CMP(v6, v7);
        CMP(v8, v9);
        CMP(v10, v11);
        CMP(v12, v13);
        CMP(v0, v2);
        CMP(v1, v3);
        CMP(v4, v6);
        CMP(v5, v7);
        CMP(v8, v10);
        CMP(v9, v11);
        CMP(v1, v2);
        CMP(v5, v6);
        CMP(v9, v10);
        CMP(v0, v4);
        CMP(v1, v5);
        CMP(v2, v6);
        CMP(v3, v7);
        CMP(v8, v12);
        CMP(v9, v13);
        CMP(v2, v4);
        CMP(v3, v5);
        CMP(v10, v12);
        CMP(v11, v13);
        CMP(v1, v2);
        CMP(v3, v4);
        CMP(v5, v6);
        CMP(v9, v10);
        CMP(v11, v12);
        CMP(v0, v8);
        CMP(v1, v9);
        CMP(v2, v10);
        CMP(v3, v11);
        CMP(v4, v12);
        CMP(v5, v13);
        CMP(v4, v8);
        CMP(v5, v9);
        CMP(v6, v10);
        CMP(v7, v11);
        CMP(v3, v5);
        CMP(v6, v8);
        CMP(v7, v9);
        CMP(v5, v6);
        CMP(v7, v8);
        r6[x] = v6; r7[x] = v7;
    }
}

static inline FIXED_INLINE void fixed_15_7(float *restrict r0, float *restrict r1,
    float *restrict r2, float *restrict r3, float *restrict r4, float *restrict r5,
    float *restrict r6, float *restrict r7, float *restrict r8, float *restrict r9,
    float *restrict r10, float *restrict r11, float *restrict r12, float *restrict r13,
    float *restrict r14, int nb) {
    for (int x = 0; x < nb; x++) {
        float v0 = r0[x], v1 = r1[x], v2 = r2[x], v3 = r3[x], v4 = r4[x], v5 = r5[x], v6 = r6[x],
            v7 = r7[x], v8 = r8[x], v9 = r9[x], v10 = r10[x], v11 = r11[x], v12 = r12[x],
            v13 = r13[x], v14 = r14[x];
        CMP(v0, v1);
        CMP(v2, v3);
        CMP(v4, v5);
        CMP(v6, v7);
        CMP(v8, v9);
        CMP(v10, v11);
        CMP(v12, v13);
        CMP(v0, v2);
        CMP(v1, v3);
        CMP(v4, v6);
        CMP(v5, v7);
        CMP(v8, v10);
        CMP(v9, v11);
        CMP(v12, v14);
        CMP(v1, v2);
        CMP(v5, v6);
        CMP(v9, v10);
        CMP(v13, v14);
        CMP(v0, v4);
        CMP(v1, v5);
        CMP(v2, v6);
        CMP(v3, v7);
        CMP(v8, v12);
        CMP(v9, v13);
        CMP(v10, v14);
        CMP(v2, v4);
        CMP(v3, v5);
        CMP(v10, v12);
        CMP(v11, v13);
        CMP(v1, v2);
        CMP(v3, v4);
        CMP(v5, v6);
        CMP(v9, v10);
        CMP(v11, v12);
        CMP(v13, v14);
        CMP(v0, v8);
        CMP(v1, v9);
        CMP(v2, v10);
        CMP(v3, v11);
        CMP(v4, v12);
        CMP(v5, v13);
        CMP(v6, v14);
        CMP(v4, v8);
        CMP(v5, v9);
        CMP(v6, v10);
        CMP(v7, v11);
        CMP(v3, v5);
        CMP(v6, v8);
        CMP(v7, v9);
        CMP(v5, v6);
        CMP(v7, v8);
        r6[x] = v6; r7[x] = v7;
    }
}

static inline FIXED_INLINE void fixed_15_8(float *restrict r0, float *restrict r1,
    float *restrict r2, float *restrict r3, float *restrict r4, float *restrict r5,
    float *restrict r6, float *restrict r7, float *restrict r8, float *restrict r9,
    float *restrict r10, float *restrict r11, float *restrict r12, float *restrict r13,
    float *restrict r14, int nb) {
    for (int x = 0; x < nb; x++) {
        float v0 = r0[x], v1 = r1[x], v2 = r2[x], v3 = r3[x], v4 = r4[x], v5 = r5[x], v6 = r6[x],
            v7 = r7[x], v8 = r8[x], v9 = r9[x], v10 = r10[x], v11 = r11[x], v12 = r12[x],
            v13 = r13[x], v14 = r14[x];
        CMP(v0, v1);
        CMP(v2, v3);
        CMP(v4, v5);
        CMP(v6, v7);
        CMP(v8, v9);
        CMP(v10, v11);
        CMP(v12, v13);
        CMP(v0, v2);
        CMP(v1, v3);
        CMP(v4, v6);
        CMP(v5, v7);
        CMP(v8, v10);
        CMP(v9, v11);
        CMP(v12, v14);
        CMP(v1, v2);
        CMP(v5, v6);
        CMP(v9, v10);
        CMP(v13, v14);
        CMP(v0, v4);
        CMP(v1, v5);
        CMP(v2, v6);
        CMP(v3, v7);
        CMP(v8, v12);
        CMP(v9, v13);
        CMP(v10, v14);
        CMP(v2, v4);
        CMP(v3, v5);
        CMP(v10, v12);
        CMP(v11, v13);
        CMP(v1, v2);
        CMP(v3, v4);
        CMP(v5, v6);
        CMP(v9, v10);
        CMP(v11, v12);
        CMP(v13, v14);
        CMP(v0, v8);
        CMP(v1, v9);
        CMP(v2, v10);
        CMP(v3, v11);
        CMP(v4, v12);
        CMP(v5, v13);
        CMP(v6, v14);
        CMP(v4, v8);
        CMP(v5, v9);
        CMP(v6, v10);
        CMP(v7, v11);
        CMP(v6, v8);
        CMP(v7, v9);
        CMP(v7, v8);
        r7[x] = v7; r8[x] = v8;
    }
}

static inline FIXED_INLINE void fixed_16_8(float *restrict r0, float *restrict r1,
    float *restrict r2, float *restrict r3, float *restrict r4, float *restrict r5,
    float *restrict r6, float *restrict r7, float *restrict r8, float *restrict r9,
    float *restrict r10, float *restrict r11, float *restrict r12, float *restrict r13,
    float *restrict r14, float *restrict r15, int nb) {
    for (int x = 0; x < nb; x++) {
        float v0 = r0[x], v1 = r1[x], v2 = r2[x], v3 = r3[x], v4 = r4[x], v5 = r5[x], v6 = r6[x],
            v7 = r7[x], v8 = r8[x], v9 = r9[x], v10 = r10[x], v11 = r11[x], v12 = r12[x],
            v13 = r13[x], v14 = r14[x], v15 = r15[x];
        CMP(v0, v1);
        CMP(v2, v3);
        CMP(v4, v5);
        CMP(v6, v7);
        CMP(v8, v9);
        CMP(v10, v11);
        CMP(v12, v13);
        CMP(v14, v15);
        CMP(v0, v2);
        CMP(v1, v3);
        CMP(v4, v6);
        CMP(v5, v7);
        CMP(v8, v10);
        CMP(v9, v11);
        CMP(v12, v14);
        CMP(v13, v15);
        CMP(v1, v2);
        CMP(v5, v6);
        CMP(v9, v10);
        CMP(v13, v14);
        CMP(v0, v4);
        CMP(v1, v5);
        CMP(v2, v6);
        CMP(v3, v7);
        CMP(v8, v12);
        CMP(v9, v13);
        CMP(v10, v14);
        CMP(v11, v15);
        CMP(v2, v4);
        CMP(v3, v5);
        CMP(v10, v12);
        CMP(v11, v13);
        CMP(v1, v2);
        CMP(v3, v4);
        CMP(v5, v6);
        CMP(v9, v10);
        CMP(v11, v12);
        CMP(v13, v14);
        CMP(v0, v8);
        CMP(v1, v9);
        CMP(v2, v10);
        CMP(v3, v11);
        CMP(v4, v12);
        CMP(v5, v13);
        CMP(v6, v14);
        CMP(v7, v15);
        CMP(v4, v8);
        CMP(v5, v9);
        CMP(v6, v10);
        CMP(v7, v11);
        CMP(v6, v8);
        CMP(v7, v9);
        CMP(v7, v8);
        r7[x] = v7; r8[x] = v8;
    }
}

/* The rows mid - 1 and mid of the sorted block (the others left as they are),
   when a network for (n, mid) is written out above; returns 0 (nothing done)
   otherwise. */
KERNEL static int fixed_select(float *buf, i64 block, int n, int mid, int nb) {
    switch (n * 64 + mid) {
    case 193:
        fixed_3_1(buf + 0 * block, buf + 1 * block, buf + 2 * block, nb);
        return 1;
    case 194:
        fixed_3_2(buf + 0 * block, buf + 1 * block, buf + 2 * block, nb);
        return 1;
    case 258:
        fixed_4_2(buf + 0 * block, buf + 1 * block, buf + 2 * block, buf + 3 * block, nb);
        return 1;
    case 322:
        fixed_5_2(buf + 0 * block, buf + 1 * block, buf + 2 * block, buf + 3 * block,
            buf + 4 * block, nb);
        return 1;
    case 323:
        fixed_5_3(buf + 0 * block, buf + 1 * block, buf + 2 * block, buf + 3 * block,
            buf + 4 * block, nb);
        return 1;
    case 387:
        fixed_6_3(buf + 0 * block, buf + 1 * block, buf + 2 * block, buf + 3 * block,
            buf + 4 * block, buf + 5 * block, nb);
        return 1;
    case 451:
        fixed_7_3(buf + 0 * block, buf + 1 * block, buf + 2 * block, buf + 3 * block,
            buf + 4 * block, buf + 5 * block, buf + 6 * block, nb);
        return 1;
    case 452:
        fixed_7_4(buf + 0 * block, buf + 1 * block, buf + 2 * block, buf + 3 * block,
            buf + 4 * block, buf + 5 * block, buf + 6 * block, nb);
        return 1;
    case 516:
        fixed_8_4(buf + 0 * block, buf + 1 * block, buf + 2 * block, buf + 3 * block,
            buf + 4 * block, buf + 5 * block, buf + 6 * block, buf + 7 * block, nb);
        return 1;
    case 580:
        fixed_9_4(buf + 0 * block, buf + 1 * block, buf + 2 * block, buf + 3 * block,
            buf + 4 * block, buf + 5 * block, buf + 6 * block, buf + 7 * block, buf + 8 * block,
            nb);
        return 1;
    case 581:
        fixed_9_5(buf + 0 * block, buf + 1 * block, buf + 2 * block, buf + 3 * block,
            buf + 4 * block, buf + 5 * block, buf + 6 * block, buf + 7 * block, buf + 8 * block,
            nb);
        return 1;
    case 645:
        fixed_10_5(buf + 0 * block, buf + 1 * block, buf + 2 * block, buf + 3 * block,
            buf + 4 * block, buf + 5 * block, buf + 6 * block, buf + 7 * block, buf + 8 * block,
            buf + 9 * block, nb);
        return 1;
    case 709:
        fixed_11_5(buf + 0 * block, buf + 1 * block, buf + 2 * block, buf + 3 * block,
            buf + 4 * block, buf + 5 * block, buf + 6 * block, buf + 7 * block, buf + 8 * block,
            buf + 9 * block, buf + 10 * block, nb);
        return 1;
    case 710:
        fixed_11_6(buf + 0 * block, buf + 1 * block, buf + 2 * block, buf + 3 * block,
            buf + 4 * block, buf + 5 * block, buf + 6 * block, buf + 7 * block, buf + 8 * block,
            buf + 9 * block, buf + 10 * block, nb);
        return 1;
    case 774:
        fixed_12_6(buf + 0 * block, buf + 1 * block, buf + 2 * block, buf + 3 * block,
            buf + 4 * block, buf + 5 * block, buf + 6 * block, buf + 7 * block, buf + 8 * block,
            buf + 9 * block, buf + 10 * block, buf + 11 * block, nb);
        return 1;
    case 838:
        fixed_13_6(buf + 0 * block, buf + 1 * block, buf + 2 * block, buf + 3 * block,
            buf + 4 * block, buf + 5 * block, buf + 6 * block, buf + 7 * block, buf + 8 * block,
            buf + 9 * block, buf + 10 * block, buf + 11 * block, buf + 12 * block, nb);
        return 1;
    case 839:
        fixed_13_7(buf + 0 * block, buf + 1 * block, buf + 2 * block, buf + 3 * block,
            buf + 4 * block, buf + 5 * block, buf + 6 * block, buf + 7 * block, buf + 8 * block,
            buf + 9 * block, buf + 10 * block, buf + 11 * block, buf + 12 * block, nb);
        return 1;
    case 903:
        fixed_14_7(buf + 0 * block, buf + 1 * block, buf + 2 * block, buf + 3 * block,
            buf + 4 * block, buf + 5 * block, buf + 6 * block, buf + 7 * block, buf + 8 * block,
            buf + 9 * block, buf + 10 * block, buf + 11 * block, buf + 12 * block,
            buf + 13 * block, nb);
        return 1;
    case 967:
        fixed_15_7(buf + 0 * block, buf + 1 * block, buf + 2 * block, buf + 3 * block,
            buf + 4 * block, buf + 5 * block, buf + 6 * block, buf + 7 * block, buf + 8 * block,
            buf + 9 * block, buf + 10 * block, buf + 11 * block, buf + 12 * block,
            buf + 13 * block, buf + 14 * block, nb);
        return 1;
    case 968:
        fixed_15_8(buf + 0 * block, buf + 1 * block, buf + 2 * block, buf + 3 * block,
            buf + 4 * block, buf + 5 * block, buf + 6 * block, buf + 7 * block, buf + 8 * block,
            buf + 9 * block, buf + 10 * block, buf + 11 * block, buf + 12 * block,
            buf + 13 * block, buf + 14 * block, nb);
        return 1;
    case 1032:
        fixed_16_8(buf + 0 * block, buf + 1 * block, buf + 2 * block, buf + 3 * block,
            buf + 4 * block, buf + 5 * block, buf + 6 * block, buf + 7 * block, buf + 8 * block,
            buf + 9 * block, buf + 10 * block, buf + 11 * block, buf + 12 * block,
            buf + 13 * block, buf + 14 * block, buf + 15 * block, nb);
        return 1;
    default: return 0;
    }
}
/* END fixed median networks */

/* drizzlepac's exchange sort (if v[j] < v[i]: swap) of vals[:g] in stack order, then the
   median at k (even: the float64 average of k-1 and k). */
static float exchange_select(float *vals, int g, int k, int even) {
    for (int i = 0; i < g - 1; i++)
        for (int j = i + 1; j < g; j++)
            if (vals[j] < vals[i]) {
                float t = vals[i];
                vals[i] = vals[j];
                vals[j] = t;
            }
    if (even) return (float)(((double)vals[k] + (double)vals[k - 1]) / 2.0);
    return vals[k];
}

/* One pixel's median exactly as the reference makes it (its good values in stack order, the
   exchange sort), done `always` or when a good value is -0.0; else res stands. */
static float redo_median(const i64 *sp, const uint8_t *ss, const i64 *wp, const uint8_t *ws,
                         int n, int use_w, const float *wlim, float vlo, float vhi, i64 p, int k,
                         int even, float *tmp, float res, int always) {
    int m = 0, negative_zero = 0;
    for (int i = 0; i < n; i++) {
        float s = value_at(sp, ss, i, p);
        int ok = finite32(s) && s >= vlo && s < vhi;
        if (use_w) {
            float w = value_at(wp, ws, i, p);
            ok = ok && w >= wlim[i] && w != INF32;
        }
        if (ok) {
            tmp[m++] = s;
            if (s == 0 && signbit(s)) negative_zero = 1;
        }
    }
    if (!(always || negative_zero)) return res;
    return exchange_select(tmp, m, k, even);
}

/* A pixel's median from the two middle sorted values of its padded block (see
   medstack_numcombine): their float64 average when its kept count is even (ev), else the one
   the padding puts in the middle (lo when c_odd). *zeros: whether it is a median of zeros that
   a -0.0 among the block's values (negative_zero) could have signed differently. */
static inline float middle(float lo, float hi, int ev, int c_odd, int negative_zero,
                           int *zeros) {
    float avg = (float)(((double)hi + (double)lo) / 2.0);
    float one = c_odd ? lo : hi;
    *zeros = negative_zero & (ev ? ((hi == 0) & (lo == 0)) : (one == 0));
    return ev ? avg : one;
}

/* Redo one by one (redo_median) the pixels [p0, p0 + nb) that redo[] flags, into res[x]:
   with `reduced`, a pixel with no more good values than nlow + nhigh always (drizzlepac's
   reduction), else only where a -0.0 decides the sign of its zero median. */
static void redo_flagged(const uint8_t *redo, const int32_t *cnt, int nb, float *res,
                         const i64 *sp, const uint8_t *ss, const i64 *wp, const uint8_t *ws,
                         int n, int use_w, const float *wlim, float vlo, float vhi, i64 p0,
                         const int32_t *k_of, const uint8_t *even, int nlow, int nhigh,
                         int reduced, float *tmp) {
    for (int x = 0; x < nb; x++)
        if (redo[x]) {
            int32_t g = cnt[x];
            res[x] = redo_median(sp, ss, wp, ws, n, use_w, wlim, vlo, vhi, p0 + x, k_of[g],
                                 even[g], tmp, res[x], reduced && g - nlow - nhigh <= 0);
        }
}

/* counts[i] += the NaN/±inf among vals[:nb]. */
static void count_row(const float *vals, int nb, i64 *counts, int i) {
    i64 c = 0;
    for (int x = 0; x < nb; x++) c += !finite32(vals[x]);
    counts[i] += c;
}

/* The i-types' fill: the first non-zero finite value in stack order, per column. */
static inline void gather_fill(const float *restrict srow, int nb, float *restrict cand,
                               uint8_t *restrict hasc) {
    for (int x = 0; x < nb; x++) {
        float s = srow[x];
        int c = (hasc[x] == 0) & (s != 0) & finite32(s);
        cand[x] = (c ? s : cand[x]) + 0.0f; /* never a zero when used */
        hasc[x] |= c;
    }
}

/* counts[i] += the NaN/±inf values of image i in flat pixels [p_lo, p_hi). */
KERNEL int medstack_count_nonfinite(const i64 *sp, const uint8_t *ss, int n, i64 p_lo,
                                    i64 p_hi, i64 *counts) {
    for (int i = 0; i < n; i++) {
        i64 c = 0;
        for (i64 p = p_lo; p < p_hi; p++) c += !finite32(value_at(sp, ss, i, p));
        counts[i] += c;
    }
    return 0;
}

/* The first value of each plane. */
int medstack_gather_first(const i64 *ptrs, const uint8_t *swaps, int n, float *out) {
    for (int i = 0; i < n; i++) out[i] = value_at(ptrs, swaps, i, 0);
    return 0;
}

/* sum over flat pixels [p_lo, p_hi): float32, in stack order, from +0.0. */
KERNEL int medstack_sum(const i64 *sp, const uint8_t *ss, int n, i64 p_lo, i64 p_hi,
                        float fillval, int block, float *out, uint16_t *ngood, i64 *nonfinite) {
    scratch mem;
    int status = scratch_open(&mem, 0, block, 3);
    float *acc = carve(&mem, sizeof(float) * block);
    float *sval = carve(&mem, sizeof(float) * block);
    int32_t *cnt = carve(&mem, sizeof(int32_t) * block);
    for (i64 p0 = p_lo; status == 0 && p0 < p_hi; p0 += block) {
        int nb = (int)(p_hi - p0 < block ? p_hi - p0 : block);
        for (int x = 0; x < nb; x++) {
            acc[x] = 0.0f;
            cnt[x] = 0;
        }
        for (int i = 0; i < n; i++) {
            load_row(sp, ss, i, p0, sval, nb);
            int nonfin = 0;
            for (int x = 0; x < nb; x++) {
                float s = sval[x];
                int ok = finite32(s);
                /* acc is never -0.0 (it starts at +0.0): adding +0.0 leaves it unchanged */
                acc[x] = acc[x] + (ok ? s : 0.0f);
                cnt[x] += ok;
                nonfin |= !ok;
            }
            if (nonfin) count_row(sval, nb, nonfinite, i);
        }
        i64 o = p0 - p_lo;
        for (int x = 0; x < nb; x++) {
            int32_t c = cnt[x];
            out[o + x] = c > 0 ? acc[x] : fillval;
            ngood[o + x] = (uint16_t)(c < 65535 ? c : 65535);
        }
    }
    free(mem.base);
    return status;
}

/* One image's values [0, nb) of a block, read where they lie (sraw, wraw; byte-swapped where
   sswap, wswap), into its row of the block to sort (see medstack_numcombine) and the good
   counts; *negzero |= a science value is -0.0. Returns whether one was NaN/inf. */
static inline int numcombine_gather(const unsigned char *restrict sraw, int sswap,
                                    const unsigned char *restrict wraw, int wswap, int use_w,
                                    int *negzero, int nb, int i, float lim, float vlo,
                                    float vhi, int is_median, float *restrict brow,
                                    int32_t *restrict cnt) {
    int nonfin = 0, nz = 0;
    for (int x = 0; x < nb; x++) {
        uint32_t sb = bits_at(sraw, sswap, x), wb = bits_at(wraw, wswap, x);
        nz |= sb == 0x80000000u;
        float s = f32_of(sb), w = f32_of(wb);
        int finite = finite32(s);
        int ok = finite & (s >= vlo) & (s < vhi) & (((w >= lim) & (w != INF32)) | !use_w);
        int32_t c = cnt[x];
        float pad = (is_median && ((i - c) & 1) == 0) ? -INF32 : INF32;
        brow[x] = ok ? s : pad;
        cnt[x] = c + ok;
        nonfin |= !finite;
    }
    *negzero |= nz;
    return nonfin;
}

/* median / mean over flat pixels [p_lo, p_hi) (see fast.py, _numcombine). median: masked
   values padded -inf, +inf, -inf, ... in stack order put the median at sorted position mid - 1
   or mid whatever the good count; pixels with too few good values (drizzlepac's nlow/nhigh
   reduction) and zero medians of a pixel holding a -0.0 are redone one by one. mean: masked
   values are +inf; the kept sorted values summed in float64, ascending. */
KERNEL int medstack_numcombine(const i64 *sp, const uint8_t *ss, const i64 *wp,
                               const uint8_t *ws, int n, int use_w, const float *wlim, float vlo,
                               float vhi, int is_median, int fill, const int32_t *k_of,
                               const uint8_t *even, int mid, int nlow, int nhigh, float fillval,
                               const int32_t *net, int ncomp, i64 p_lo, i64 p_hi, int block,
                               float *out, uint16_t *ngood, i64 *nonfinite) {
    scratch mem;
    int status = scratch_open(&mem, n, block, 7);
    float *buf = carve(&mem, sizeof(float) * (size_t)n * block);
    int32_t *cnt = carve(&mem, sizeof(int32_t) * block);
    float *cand = carve(&mem, sizeof(float) * block);
    uint8_t *hasc = carve(&mem, block);
    double *acc = carve(&mem, sizeof(double) * block);
    uint8_t *redo = carve(&mem, block);
    float *srow = carve(&mem, sizeof(float) * block);
    float *tmp = carve(&mem, sizeof(float) * (n > 0 ? n : 1));
    const int c_odd = ((n - nlow - nhigh) & 1) == 1;
    /* the rows of the sorted block that hold the middle values, clamped to the block (mid is
       out of it when nlow + nhigh >= n: then every pixel is redone one by one) */
    const int lo_row = clamp_row(mid - 1, n), hi_row = clamp_row(mid, n);
    for (i64 p0 = p_lo; status == 0 && p0 < p_hi; p0 += block) {
        int nb = (int)(p_hi - p0 < block ? p_hi - p0 : block);
        /* (all-zero bits: +0.0f, 0) */
        memset(cnt, 0, sizeof(int32_t) * nb);
        memset(hasc, 0, nb);
        memset(cand, 0, sizeof(float) * nb);
        int negative_zero = 0; /* a -0.0 among the block's values: zero medians need a look */
        /* 1. gather: good values; the rest +inf (mean) or -inf, +inf, -inf... (median) */
        for (int i = 0; i < n; i++) {
            /* (without weights, the science plane stands in for them, unread) */
            const unsigned char *sraw = plane(sp, i) + 4 * p0;
            const unsigned char *wraw = use_w ? plane(wp, i) + 4 * p0 : sraw;
            int nonfin = numcombine_gather(sraw, ss[i] != 0, wraw, use_w && ws[i] != 0, use_w,
                                           &negative_zero, nb, i, wlim[i], vlo, vhi, is_median,
                                           buf + (i64)i * block, cnt);
            if (nonfin || fill) load_row(sp, ss, i, p0, srow, nb);
            if (nonfin) count_row(srow, nb, nonfinite, i);
            if (fill) gather_fill(srow, nb, cand, hasc);
        }
        /* 2. sort the block (its middle rows, for a median) */
        if (!(is_median && fixed_select(buf, block, n, mid, nb)))
            sort_block(buf, block, net, ncomp, nb);
        i64 o = p0 - p_lo;
        /* 3. select */
        if (is_median) {
            const float *r_lo = buf + (i64)lo_row * block;
            const float *r_hi = buf + (i64)hi_row * block;
            int n_redo = 0;
            /* (every value loaded first, then selected: a loop that compilers vectorise) */
            for (int x = 0; x < nb; x++) {
                int32_t g = cnt[x];
                int m = g - nlow - nhigh;
                float lo = r_lo[x], hi = r_hi[x], cx = cand[x];
                int hx = hasc[x] != 0;
                int zeros;
                float res = middle(lo, hi, (m & 1) == 0, c_odd, negative_zero, &zeros);
                float empty = (fill & hx) ? cx : fillval;
                out[o + x] = g > 0 ? res : empty;
                ngood[o + x] = (uint16_t)(g < 65535 ? g : 65535);
                int flag = (g > 0) & ((m <= 0) | zeros);
                redo[x] = (uint8_t)flag;
                n_redo += flag;
            }
            if (n_redo)
                redo_flagged(redo, cnt, nb, out + o, sp, ss, wp, ws, n, use_w, wlim, vlo, vhi,
                             p0, k_of, even, nlow, nhigh, 1, tmp);
        } else {
            for (int x = 0; x < nb; x++) acc[x] = 0.0;
            for (int j = nlow; j < n; j++) {
                const float *row = buf + (i64)j * block;
                for (int x = 0; x < nb; x++) {
                    int keep = j < cnt[x] - nhigh;
                    /* acc starts at +0.0 and so is never -0.0: adding +0.0 changes nothing */
                    acc[x] = acc[x] + (keep ? (double)row[x] : 0.0);
                }
            }
            for (int x = 0; x < nb; x++) {
                int32_t g = cnt[x];
                ngood[o + x] = (uint16_t)(g < 65535 ? g : 65535);
                if (g == 0) {
                    if (fill && hasc[x]) {
                        int m = 1 - nlow - nhigh;
                        out[o + x] = m > 0 ? (float)((0.0 + (double)cand[x]) / m) : 0.0f;
                    } else {
                        out[o + x] = fillval;
                    }
                    continue;
                }
                int m = g - nlow - nhigh;
                out[o + x] = m > 0 ? (float)(acc[x] / m) : 0.0f;
            }
        }
    }
    free(mem.base);
    return status;
}

/* One image's values [0, nb) of a block, read where they lie (sraw, wraw; byte-swapped where
   sswap, wswap), into minmed's running per-pixel state: its row of the block to sort (a masked value padded -inf, +inf, ... as in
   medstack_numcombine), the good count, the minimum (np.fmin as its SIMD loop does it: NaN
   ignored, a tie returns the 2nd operand), the float32 sums of the weights (NaN/inf count as 0)
   and of the good values, and the float64 sums of weight * sky / exptime and of the good
   values' readnoise^2; *negzero |= a science value is -0.0. Returns whether one was
   NaN/inf. */
static inline int minmed_gather(const unsigned char *restrict sraw, int sswap,
                                const unsigned char *restrict wraw, int wswap, int *negzero,
                                int nb, int i, float lim, int use_w, double s_i, double r_i,
                                float *restrict brow, int32_t *restrict cnt,
                                float *restrict mn, float *restrict wt, float *restrict gsum,
                                double *restrict bk, double *restrict rn) {
    int nonfin = 0, nz = 0;
    for (int x = 0; x < nb; x++) {
        uint32_t sb = bits_at(sraw, sswap, x), wb = bits_at(wraw, wswap, x);
        nz |= sb == 0x80000000u;
        float s = f32_of(sb), w = f32_of(wb);
        int finite = finite32(s);
        /* a NaN or +inf weight is bad; -inf is below every limit */
        int ok = finite & (((w >= lim) & (w != INF32)) | !use_w);
        int32_t c = cnt[x];
        brow[x] = ok ? s : ((((i - c) & 1) == 0) ? -INF32 : INF32);
        cnt[x] = c + ok;
        nonfin |= !finite;
        float a = mn[x];
        float smaller = a < s ? a : s;
        mn[x] = ok ? smaller : a;
        float wf = finite32(w) ? w : 0.0f;
        wt[x] = wt[x] + wf;
        gsum[x] = gsum[x] + (ok ? s : 0.0f);
        bk[x] = bk[x] + (double)wf * s_i;
        rn[x] = rn[x] + (ok ? 1.0 : 0.0) * r_i;
    }
    *negzero |= nz;
    return nonfin;
}

/* minmed's "median" of the pixels of a sorted block, into med[:nb] (see medstack_minmed);
   redo[x]: whether it must be redone one by one; returns how many. */
static inline int minmed_select(const float *restrict r_lo, const float *restrict r_hi,
                                const int32_t *restrict cnt, const float *restrict cand,
                                const uint8_t *restrict hasc, const float *restrict gsum,
                                int nb, int two, int c_odd, int negative_zero, int fill,
                                float *restrict med, uint8_t *restrict redo) {
    int n_redo = 0;
    for (int x = 0; x < nb; x++) {
        int32_t g = cnt[x];
        float lo = r_lo[x], hi = r_hi[x], cx = cand[x], gs = gsum[x];
        int hx = hasc[x] != 0;
        /* two images: the mean of both, summed in ascending order from +0.0 */
        float mean2 = (float)(((0.0 + (double)lo) + (double)hi) / 2);
        int zeros; /* (m = g - 1 even where g is odd) */
        float res = middle(lo, hi, (g & 1) == 1, c_odd, negative_zero, &zeros);
        res = two ? mean2 : res;
        zeros &= !two;
        float empty = (fill & hx) ? cx : 0.0f;
        /* one good value: the float32 sum of the good values from +0.0 */
        res = g == 1 ? gs : res;
        med[x] = g > 0 ? res : empty;
        int flag = (g >= 2) & zeros;
        redo[x] = (uint8_t)flag;
        n_redo += flag;
    }
    return n_redo;
}

/* minmed's per-pixel part over flat pixels [p_lo, p_hi): the minimum, the "median" (nlow 0,
   nhigh 1; the mean of both for two images; one good value: their float32 sum from +0.0), the
   good count and the two flags MinW < MedW - nsigma * sigma. */
KERNEL int medstack_minmed(const i64 *sp, const uint8_t *ss, const i64 *wp, const uint8_t *ws,
                           int n, int use_w, const float *wlim, const double *sps,
                           const double *rn2, int rn_masks, double rn_const, double n1,
                           double n2, int fill, const int32_t *k_of, const uint8_t *even, int mid,
                           const int32_t *net, int ncomp, const i64 *fw_pos, i64 n_fw,
                           const float *mn_fix, i64 n_fix, i64 p_lo, i64 p_hi, int block,
                           float *mn_out, float *med_out, uint8_t *f1, uint8_t *f2,
                           int32_t *gcount, i64 *nonfinite) {
    scratch mem;
    int status = scratch_open(&mem, n, block, 13);
    float *buf = carve(&mem, sizeof(float) * (size_t)n * block);
    int32_t *cnt = carve(&mem, sizeof(int32_t) * block);
    float *cand = carve(&mem, sizeof(float) * block);
    uint8_t *hasc = carve(&mem, block);
    float *mn = carve(&mem, sizeof(float) * block);
    float *gsum = carve(&mem, sizeof(float) * block);
    float *wt = carve(&mem, sizeof(float) * block);
    double *bk = carve(&mem, sizeof(double) * block);
    double *rn = carve(&mem, sizeof(double) * block);
    float *med = carve(&mem, sizeof(float) * block);
    uint8_t *redo = carve(&mem, block);
    float *srow = carve(&mem, sizeof(float) * block);
    float *tmp = carve(&mem, sizeof(float) * (n > 0 ? n : 1));
    const float nan32 = (float)NAN, no_lim = -INF32;
    const int c_odd = ((n - 1) & 1) == 1;
    /* the rows of the sorted block that hold the middle values, clamped to the block (mid is
       out of it when nlow + nhigh >= n: then every pixel is redone one by one) */
    const int lo_row = clamp_row(mid - 1, n), hi_row = clamp_row(mid, n);
    i64 fw = 0;
    while (fw < n_fw && fw_pos[fw] < p_lo) fw++;
    for (i64 p0 = p_lo; status == 0 && p0 < p_hi; p0 += block) {
        int nb = (int)(p_hi - p0 < block ? p_hi - p0 : block);
        /* (all-zero bits: +0.0f, +0.0, 0) */
        memset(cnt, 0, sizeof(int32_t) * nb);
        memset(hasc, 0, nb);
        memset(cand, 0, sizeof(float) * nb);
        memset(gsum, 0, sizeof(float) * nb);
        memset(wt, 0, sizeof(float) * nb);
        memset(bk, 0, sizeof(double) * nb);
        memset(rn, 0, sizeof(double) * nb);
        for (int x = 0; x < nb; x++) mn[x] = nan32;
        int negative_zero = 0;
        for (int i = 0; i < n; i++) {
            float *restrict brow = buf + (i64)i * block;
            const float lim = use_w ? wlim[i] : no_lim;
            const double s_i = sps[i], r_i = rn2[i];
            int nonfin = minmed_gather(plane(sp, i) + 4 * p0, ss[i] != 0, plane(wp, i) + 4 * p0,
                                       ws[i] != 0, &negative_zero, nb, i, lim, use_w, s_i, r_i,
                                       brow, cnt, mn, wt, gsum, bk, rn);
            if (nonfin || fill) load_row(sp, ss, i, p0, srow, nb);
            if (nonfin) count_row(srow, nb, nonfinite, i);
            if (fill) gather_fill(srow, nb, cand, hasc);
        }
        /* positions where NumPy's fmin takes its scalar path: the first operand wins a tie */
        while (fw < n_fw && fw_pos[fw] < p0 + nb) {
            i64 p = fw_pos[fw];
            float a = nan32;
            for (int i = 0; i < n; i++) {
                float s = value_at(sp, ss, i, p);
                int ok = finite32(s);
                if (use_w) {
                    float w = value_at(wp, ws, i, p);
                    ok = ok & (w >= wlim[i]) & (w != INF32);
                }
                float v = ok ? s : nan32;
                if (i == 0)
                    a = v;
                else if (!(a <= v || v != v))
                    a = v;
            }
            mn[p - p0] = a;
            fw++;
        }
        if (n_fix > 0 && p0 == 0 && nb == 1) mn[0] = mn_fix[0]; /* one pixel: NumPy's own */
        if (!fixed_select(buf, block, n, mid, nb)) sort_block(buf, block, net, ncomp, nb);
        const float *r_lo = buf + (i64)lo_row * block;
        const float *r_hi = buf + (i64)hi_row * block;
        int n_redo = minmed_select(r_lo, r_hi, cnt, cand, hasc, gsum, nb, n == 2, c_odd,
                                   negative_zero, fill, med, redo);
        if (n_redo)
            redo_flagged(redo, cnt, nb, med, sp, ss, wp, ws, n, use_w, wlim, no_lim, INF32, p0,
                         k_of, even, 0, 1, 0, tmp);
        i64 o = p0 - p_lo;
        for (int x = 0; x < nb; x++) {
            int32_t g = cnt[x];
            float minimum = g > 0 ? mn[x] : 0.0f;
            float w_sum = wt[x];
            float min_w = minimum * w_sum;
            float med_w = med[x] * w_sum;
            double var = ((double)med_w + bk[x]) + (rn_masks ? rn[x] : rn_const);
            var = var > 0.0 ? var : 0.0; /* np.fmax(var, 0): NaN -> 0 */
            double rms = sqrt(var);
            double mw = (double)min_w;
            f1[o + x] = mw < (double)med_w - rms * n1;
            f2[o + x] = mw < (double)med_w - rms * n2;
            mn_out[o + x] = minimum;
            med_out[o + x] = med[x];
            gcount[o + x] = g;
        }
    }
    free(mem.base);
    return status;
}

/* The grow dilation of the first flags (a (2 grow + 1)^2 box, zero outside the computed rows
   [y0c, y1c)), then minmed's decision, for output rows [lo, hi). The dilation is separable: a
   running count over each row, then a sliding window sum of those rows down the columns. */
KERNEL int medstack_minmed_decide(const float *restrict mn, const float *restrict med,
                                  const uint8_t *restrict f1, const uint8_t *restrict f2,
                                  const int32_t *restrict gcount, i64 nx, i64 y0c, i64 y1c,
                                  i64 lo, i64 hi, i64 grow, float fillval, float *restrict out,
                                  uint16_t *restrict ngood, uint8_t *restrict minchosen) {
    i64 rows = y1c - y0c;
    uint8_t *hflag = calloc((size_t)(rows > 1 ? rows : 1) * nx, 1);
    int32_t *colsum = calloc((size_t)nx, sizeof(int32_t));
    uint8_t *grown = calloc((size_t)nx, 1);
    int32_t *pre = malloc(sizeof(int32_t) * (size_t)(nx + 1));
    int status = (hflag && colsum && grown && pre) ? 0 : -1;
    if (status == 0 && grow > 0) {
        for (i64 r = 0; r < rows; r++) {
            const uint8_t *row = f1 + r * nx;
            uint8_t *h = hflag + r * nx;
            if (grow == 1) {
                for (i64 x = 0; x < nx; x++) h[x] = row[x];
                for (i64 x = 1; x < nx; x++) h[x] |= row[x - 1];
                for (i64 x = 0; x < nx - 1; x++) h[x] |= row[x + 1];
            } else {
                pre[0] = 0;
                for (i64 x = 0; x < nx; x++) pre[x + 1] = pre[x] + row[x];
                for (i64 x = 0; x < nx; x++) {
                    i64 a = x - grow > 0 ? x - grow : 0;
                    i64 b = x + grow + 1 < nx ? x + grow + 1 : nx;
                    h[x] = pre[b] > pre[a];
                }
            }
        }
        i64 w0 = lo - grow > y0c ? lo - grow : y0c;
        i64 w1 = lo + grow + 1 < y1c ? lo + grow + 1 : y1c;
        for (i64 yy = w0; yy < w1; yy++) {
            const uint8_t *h = hflag + (yy - y0c) * nx;
            for (i64 x = 0; x < nx; x++) colsum[x] += h[x];
        }
    }
    for (i64 y = lo; status == 0 && y < hi; y++) {
        i64 b0 = (y - y0c) * nx, o0 = (y - lo) * nx;
        if (grow > 0)
            for (i64 x = 0; x < nx; x++) grown[x] = colsum[x] > 0;
        for (i64 x = 0; x < nx; x++) {
            int32_t g = gcount[b0 + x];
            float a = mn[b0 + x], b = med[b0 + x];
            uint8_t chosen = (f2[b0 + x] & grown[x]) | (f1[b0 + x] & (grown[x] ^ 1));
            uint8_t good = g > 0;
            float pick = chosen != 0 ? a : b;
            out[o0 + x] = good ? pick : fillval;
            minchosen[o0 + x] = chosen & good;
            ngood[o0 + x] = (uint16_t)(g < 65535 ? g : 65535);
        }
        if (grow > 0) { /* slide the window: drop row y - grow, add row y + grow + 1 */
            i64 yd = y - grow, ya = y + grow + 1;
            if (yd >= y0c) {
                const uint8_t *h = hflag + (yd - y0c) * nx;
                for (i64 x = 0; x < nx; x++) colsum[x] -= h[x];
            }
            if (ya < y1c) {
                const uint8_t *h = hflag + (ya - y0c) * nx;
                for (i64 x = 0; x < nx; x++) colsum[x] += h[x];
            }
        }
    }
    free(hflag);
    free(colsum);
    free(grown);
    free(pre);
    return status;
}

/* values per plane converted at a time: the six planes' float64 chunks (3 KiB) stay in L1;
   64 took a third less time than 256 and 2048 (mapped 10 x 4096^2 weights, 5 planes) */
#define WEIGHT_CHUNK 64

/* vals[:m] = weights [x0, x0 + m) of a plane as float64, 0.0 for one left out (< min_weight,
   NaN or +inf); *nan_seen |= a NaN or ±inf was seen; returns how many were kept. */
static inline int32_t weights_to_f64(const unsigned char *src, int swap, int m, float min_weight,
                                     double *restrict vals, int *nan_seen) {
    int seen = 0;
    int32_t count = 0;
    if (swap) {
        for (int x = 0; x < m; x++) {
            float w = f32_of(__builtin_bswap32(u32_at(src + 4 * x)));
            int good = (w >= min_weight) & (w != INF32); /* false for NaN */
            double d = (double)w;
            vals[x] = good ? d : 0.0;
            seen |= !finite32(w);
            count += good;
        }
    } else {
        for (int x = 0; x < m; x++) {
            float w = f32_of(u32_at(src + 4 * x));
            int good = (w >= min_weight) & (w != INF32);
            double d = (double)w;
            vals[x] = good ? d : 0.0;
            seen |= !finite32(w);
            count += good;
        }
    }
    *nan_seen |= seen;
    return count;
}

/* For each of k <= 6 planes of m weights: the sequential float64 sum, from totals[j], of its
   finite weights >= min_weight (what np.cumsum from totals[j] gives), their count and the
   number of NaN/±inf weights. Chunk by chunk: the weights are converted to float64 (0.0 for
   one left out: adding 0.0 changes no bit, as a sum from +0.0 of values >= 0 is never -0.0),
   then the images' chains of dependent additions run side by side in one loop. */
KERNEL int medstack_weight_sums(const i64 *ptrs, const uint8_t *swaps, int k, i64 m,
                                float min_weight, double *totals, i64 *counts, i64 *nans) {
    if (k < 1 || k > 6) return -1;
    double *vals = calloc(6 * WEIGHT_CHUNK, sizeof(double));
    if (!vals) return -1;
    double s[6];
    for (int j = 0; j < 6; j++) s[j] = totals[j % k];
    for (i64 x0 = 0; x0 < m; x0 += WEIGHT_CHUNK) {
        int mm = (int)(m - x0 < WEIGHT_CHUNK ? m - x0 : WEIGHT_CHUNK);
        for (int j = 0; j < k; j++) {
            const unsigned char *src = plane(ptrs, j) + 4 * x0;
            int nan_seen = 0;
            counts[j] += weights_to_f64(src, swaps[j] != 0, mm, min_weight,
                                        vals + j * WEIGHT_CHUNK, &nan_seen);
            if (nan_seen) {
                i64 c = 0;
                for (int x = 0; x < mm; x++) {
                    uint32_t bits = u32_at(src + 4 * x);
                    c += !finite32(f32_of(swaps[j] ? __builtin_bswap32(bits) : bits));
                }
                nans[j] += c;
            }
        }
        const double *v0 = vals, *v1 = vals + WEIGHT_CHUNK, *v2 = vals + 2 * WEIGHT_CHUNK;
        const double *v3 = vals + 3 * WEIGHT_CHUNK, *v4 = vals + 4 * WEIGHT_CHUNK;
        const double *v5 = vals + 5 * WEIGHT_CHUNK;
        double s0 = s[0], s1 = s[1], s2 = s[2], s3 = s[3], s4 = s[4], s5 = s[5];
        if (k == 1) {
            for (int x = 0; x < mm; x++) s0 = s0 + v0[x];
        } else if (k == 2) {
            for (int x = 0; x < mm; x++) {
                s0 = s0 + v0[x];
                s1 = s1 + v1[x];
            }
        } else if (k <= 4) { /* a fourth plane of zeros costs little */
            for (int x = 0; x < mm; x++) {
                s0 = s0 + v0[x];
                s1 = s1 + v1[x];
                s2 = s2 + v2[x];
                s3 = s3 + v3[x];
            }
        } else {
            for (int x = 0; x < mm; x++) {
                s0 = s0 + v0[x];
                s1 = s1 + v1[x];
                s2 = s2 + v2[x];
                s3 = s3 + v3[x];
                s4 = s4 + v4[x];
                s5 = s5 + v5[x];
            }
        }
        s[0] = s0, s[1] = s1, s[2] = s2, s[3] = s3, s[4] = s4, s[5] = s5;
    }
    for (int j = 0; j < k; j++) totals[j] = s[j];
    free(vals);
    return 0;
}

/* ---------------------------------------------------------------------------------------------
   NumPy's nanmedian over frames (the frames door, kernels/framemedian.py; reference:
   reference.nanmedian), one row section at a time from the tiles that cover it. Tile t lies
   over the section-local rows [box[4t], box[4t+1]) and columns [box[4t+2], box[4t+3]); its
   value at (r, x) is ((T *)ptrs[t])[(r - box[4t]) * strides[t] + x - box[4t+2]]. Tiles come in
   frame order and no two tiles of one frame overlap. NaN is no data. Each row is cut into
   spans over which the same tiles hold data, and each span is combined from those alone.
   Per pixel, with c non-NaN values v sorted: c = 0 gives NaN (canonical, or with big and the
   last frame covering, that frame's own NaN, as NumPy's 600-frame path returns it); an even c
   gives ((0 + v[c/2-1]) + v[c/2]) / 2 in T; an odd c gives ((0 + v) + v) / 2 (under 600
   frames: NumPy's masked median sums the middle value with itself) or 0 + v (big). The
   leading +0 gives NumPy's +0.0 for every zero result; the order of equal values never
   matters.
   Up to NM_NET_MAX covering tiles, NMB pixels at a time: each pixel's NaNs padded -inf, +inf,
   -inf, ... in frame order (ceil(u/2) of its u NaNs at -inf, which puts its median at the
   sorted positions mid - 1 or mid, mid = ceil(k/2); a padding value and a frame's own infinity
   are the same bits), then the comparator network for k values (nets[2 * offs[k]] ...,
   offs[k + 1] - offs[k] pairs, sorting those positions: kernels/networks.py) run on whole
   rows of pixels, and each pixel's middle values read at their positions. Beyond, each
   pixel's middle values are selected one pixel at a time. */
#define NMB 64
#define NM_NET_MAX 64

static int nm_cmp_i64(const void *a, const void *b) {
    i64 x = *(const i64 *)a, y = *(const i64 *)b;
    return (x > y) - (x < y);
}

#define NANMEDIAN_KERNEL(T, SFX, CANON_BITS, UINT)                                              \
static inline FIXED_INLINE void nm_select_##SFX(T *v, int c, int k) {                           \
    int lo = 0, hi = c - 1;                                                                     \
    while (hi - lo > 16) {                                                                      \
        int mid = lo + (hi - lo) / 2;                                                           \
        T a = v[lo], b = v[mid], d = v[hi];                                                     \
        T pivot = a < b ? (b < d ? b : (a < d ? d : a)) : (a < d ? a : (b < d ? d : b));        \
        int i = lo, j = hi;                                                                     \
        while (i <= j) {                                                                        \
            while (v[i] < pivot) i++;                                                           \
            while (v[j] > pivot) j--;                                                           \
            if (i <= j) {                                                                       \
                T t = v[i];                                                                     \
                v[i] = v[j], v[j] = t;                                                          \
                i++, j--;                                                                       \
            }                                                                                   \
        }                                                                                       \
        if (k <= j) hi = j;                                                                     \
        else if (k >= i) lo = i;                                                                \
        else return;                                                                            \
    }                                                                                           \
    for (int i = lo + 1; i <= hi; i++) {                                                        \
        T x = v[i];                                                                             \
        int j = i - 1;                                                                          \
        while (j >= lo && v[j] > x) {                                                           \
            v[j + 1] = v[j];                                                                    \
            j--;                                                                                \
        }                                                                                       \
        v[j + 1] = x;                                                                           \
    }                                                                                           \
}                                                                                               \
static inline FIXED_INLINE T nm_middle_##SFX(T lo, T hi, int c, int big) {                      \
    const T zero = 0;                                                                           \
    if (c & 1) return big ? zero + hi : ((zero + hi) + hi) / (T)2;                              \
    return ((zero + lo) + hi) / (T)2;                                                           \
}                                                                                               \
/* One span of n pixels from k tiles (src[i]: tile i's first value in it), by selection. */     \
static FIXED_INLINE inline void nm_span_select_##SFX(const T **src, int k, i64 n,             \
                                                     T *restrict out, uint16_t *restrict ng,   \
                                                     int big, int nan_last, T canon, T *v) {   \
    for (i64 x = 0; x < n; x++) {                                                               \
        int c = 0;                                                                              \
        T last = canon;                                                                         \
        for (int i = 0; i < k; i++) {                                                           \
            T a = src[i][x];                                                                    \
            last = a;                                                                           \
            if (a == a) v[c++] = a;                                                             \
        }                                                                                       \
        T m = (big && nan_last) ? last : canon;                                                 \
        if (c > 0) {                                                                            \
            int h = c / 2;                                                                      \
            nm_select_##SFX(v, c, h);                                                           \
            T lo = v[0];                                                                        \
            for (int i = 1; i < h; i++) lo = v[i] > lo ? v[i] : lo;                             \
            m = nm_middle_##SFX(lo, v[h], c, big);                                              \
        }                                                                                       \
        out[x] = m;                                                                             \
        ng[x] = (uint16_t)(c > 65535 ? 65535 : c);                                              \
    }                                                                                           \
}                                                                                               \
/* The same, NMB pixels at a time through the comparator network net (ncomp pairs). */          \
static FIXED_INLINE inline void nm_span_network_##SFX(const T **src, int k, i64 n,            \
                                                      T *restrict out, uint16_t *restrict ng,  \
                                                      int big, int nan_last, T canon, T *buf,  \
                                                      const int32_t *net, int ncomp) {         \
    int32_t nan_seen[NMB];                                                                      \
    T last[NMB];                                                                                \
    const T pinf = (T)INFINITY, ninf = -(T)INFINITY;                                            \
    for (i64 x0 = 0; x0 < n; x0 += NMB) {                                                       \
        int nb = (int)(n - x0 < NMB ? n - x0 : NMB);                                            \
        for (int j = 0; j < nb; j++) nan_seen[j] = 0;                                           \
        for (int i = 0; i < k; i++) {                                                           \
            const T *restrict s = src[i] + x0;                                                  \
            T *restrict row = buf + (i64)i * NMB;                                               \
            for (int j = 0; j < nb; j++) {                                                      \
                T a = s[j];                                                                     \
                int bad = a != a;                                                               \
                row[j] = bad ? ((nan_seen[j] & 1) ? pinf : ninf) : a;                           \
                nan_seen[j] += bad;                                                             \
            }                                                                                   \
            if (i == k - 1)                                                                     \
                for (int j = 0; j < nb; j++) last[j] = s[j];                                    \
        }                                                                                       \
        for (int c = 0; c < ncomp; c++) {                                                       \
            T *restrict ra = buf + (i64)net[2 * c] * NMB;                                       \
            T *restrict rb = buf + (i64)net[2 * c + 1] * NMB;                                   \
            for (int j = 0; j < nb; j++) {                                                      \
                T a = ra[j], b = rb[j];                                                         \
                int lt = a < b;                                                                 \
                ra[j] = lt ? a : b;                                                             \
                rb[j] = lt ? b : a;                                                             \
            }                                                                                   \
        }                                                                                       \
        for (int j = 0; j < nb; j++) {                                                          \
            int c = k - nan_seen[j], pl = (nan_seen[j] + 1) / 2;                                \
            T m = (big && nan_last) ? last[j] : canon;                                          \
            if (c > 0)                                                                          \
                m = nm_middle_##SFX(buf[(i64)(pl + (c - 1) / 2) * NMB + j],                     \
                                    buf[(i64)(pl + c / 2) * NMB + j], c, big);                  \
            out[x0 + j] = m;                                                                    \
            ng[x0 + j] = (uint16_t)c;                                                           \
        }                                                                                       \
    }                                                                                           \
}                                                                                               \
KERNEL int medstack_nanmedian_tiles_##SFX(const i64 *ptrs, const i64 *strides, const i64 *box,  \
                                          const uint8_t *last_frame, int ntiles, i64 rows,      \
                                          i64 cols, T *restrict out, uint16_t *restrict ngood,  \
                                          int big, const int32_t *nets, const int32_t *offs) {  \
    int nt = ntiles > 0 ? ntiles : 1;                                                           \
    T *buf = malloc(sizeof(T) * (size_t)nt * NMB);                                              \
    int *active = malloc(sizeof(int) * (size_t)nt);                                             \
    i64 *edges = malloc(sizeof(i64) * (size_t)(2 * nt + 2));                                    \
    const T **src = malloc(sizeof(T *) * (size_t)nt);                                           \
    if (!buf || !active || !edges || !src) {                                                    \
        free(buf), free(active), free(edges), free(src);                                        \
        return -1;                                                                              \
    }                                                                                           \
    UINT canon_bits = CANON_BITS;                                                               \
    T canon;                                                                                    \
    memcpy(&canon, &canon_bits, sizeof canon);                                                  \
    for (i64 r = 0; r < rows; r++) {                                                            \
        T *orow = out + r * cols;                                                               \
        uint16_t *nrow = ngood + r * cols;                                                      \
        for (i64 x = 0; x < cols; x++) orow[x] = canon, nrow[x] = 0;                            \
        int na = 0, ne = 0;                                                                     \
        for (int t = 0; t < ntiles; t++)                                                        \
            if (box[4 * t] <= r && r < box[4 * t + 1]) {                                        \
                active[na++] = t;                                                               \
                edges[ne++] = box[4 * t + 2], edges[ne++] = box[4 * t + 3];                     \
            }                                                                                   \
        qsort(edges, (size_t)ne, sizeof(i64), nm_cmp_i64);                                      \
        for (int e = 0; e + 1 < ne; e++) {                                                      \
            i64 x0 = edges[e], x1 = edges[e + 1];                                               \
            if (x1 <= x0) continue;                                                             \
            int k = 0, nan_last = 0;                                                            \
            for (int a = 0; a < na; a++) {                                                      \
                int t = active[a];                                                              \
                if (box[4 * t + 2] <= x0 && box[4 * t + 3] >= x1) {                             \
                    src[k++] = (const T *)(intptr_t)ptrs[t] + (r - box[4 * t]) * strides[t]     \
                               + (x0 - box[4 * t + 2]);                                         \
                    nan_last = last_frame[t];                                                   \
                }                                                                               \
            }                                                                                   \
            if (k == 0) continue;                                                               \
            if (k <= NM_NET_MAX)                                                                \
                nm_span_network_##SFX(src, k, x1 - x0, orow + x0, nrow + x0, big, nan_last,     \
                                      canon, buf, nets + 2 * offs[k], offs[k + 1] - offs[k]);   \
            else                                                                                \
                nm_span_select_##SFX(src, k, x1 - x0, orow + x0, nrow + x0, big, nan_last,      \
                                     canon, buf);                                               \
        }                                                                                       \
    }                                                                                           \
    free(buf), free(active), free(edges), free(src);                                            \
    return 0;                                                                                   \
}

NANMEDIAN_KERNEL(float, f32, 0x7fc00000u, uint32_t)
NANMEDIAN_KERNEL(double, f64, 0x7ff8000000000000ull, uint64_t)

/* A frame's footprint for the frames door: the bounding box [y0, y1) x [x0, x1) of its
   non-NaN values (rows of nx values, row stride in values); box = {0, 0, 0, 0} when it has
   none. Chunks of 64 values are tested whole (vectorised), so NaN rows stream at memory speed. */
#define FOOTPRINT_KERNEL(T, SFX)                                                                \
static inline int fp_any_##SFX(const T *restrict p, i64 n) {                                    \
    int any = 0;                                                                                \
    for (i64 x = 0; x < n; x++) any |= p[x] == p[x];                                            \
    return any;                                                                                 \
}                                                                                               \
KERNEL int medstack_footprint_##SFX(const T *data, i64 ny, i64 nx, i64 stride, i64 *box) {      \
    i64 y0 = -1, y1 = 0, x0 = nx, x1 = 0;                                                       \
    for (i64 y = 0; y < ny; y++) {                                                              \
        const T *row = data + y * stride;                                                       \
        i64 lo = 0, hi = nx;                                                                    \
        while (lo < hi && !fp_any_##SFX(row + lo, hi - lo < 64 ? hi - lo : 64)) lo += 64;       \
        if (lo >= hi) continue;                                                                 \
        while (row[lo] != row[lo]) lo++;                                                        \
        while (hi - lo > 64 && !fp_any_##SFX(row + hi - 64, 64)) hi -= 64;                      \
        while (row[hi - 1] != row[hi - 1]) hi--;                                                \
        if (y0 < 0) y0 = y;                                                                     \
        y1 = y + 1;                                                                             \
        x0 = lo < x0 ? lo : x0;                                                                 \
        x1 = hi > x1 ? hi : x1;                                                                 \
    }                                                                                           \
    if (y0 < 0) y0 = 0, x0 = 0;                                                                 \
    box[0] = y0, box[1] = y1, box[2] = x0, box[3] = x1;                                         \
    return 0;                                                                                   \
}

FOOTPRINT_KERNEL(float, f32)
FOOTPRINT_KERNEL(double, f64)
