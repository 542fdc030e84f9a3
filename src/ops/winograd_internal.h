/* Shared by the Winograd F(4x4, 3x3) kernels (conv2d_winograd.c, and the
 * 8-channel-group kernels of conv2d_gwino.c): the one-dimensional
 * transforms, the 16-float vector type and the tile window. Internal; the
 * matrices are listed in conv2d_winograd.c. */
#ifndef CN_OPS_WINOGRAD_INTERNAL_H
#define CN_OPS_WINOGRAD_INTERNAL_H

#include <stdint.h>

typedef float v16 __attribute__((vector_size(64), aligned(4), may_alias));
#define LD16(p) (*(const v16 *)(p))
#define ST16(p, v) (*(v16 *)(p) = (v))

static inline int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* The one-dimensional transforms, in place on variables of any arithmetic
 * type (float or v8). */
#define TYPE(a) __typeof__(a)
/* (G g) for g = (a0, a1, a2), into u[0..5 step s], F(4x4). */
#define G6(u, s, a0, a1, a2)                                                                       \
    do {                                                                                           \
        const int64_t s_ = (s);                                                                    \
        const TYPE(a0) e = (a0) + (a2), q = (1.0f / 6) * (a1),                                     \
                       h = (1.0f / 24) * (a0) + (1.0f / 6) * (a2);                                 \
        (u)[0] = 0.25f * (a0);                                                                     \
        (u)[s_] = (-1.0f / 6) * e - q;                                                             \
        (u)[2 * s_] = (-1.0f / 6) * e + q;                                                         \
        (u)[3 * s_] = h + 0.5f * q;                                                                \
        (u)[4 * s_] = h - 0.5f * q;                                                                \
        (u)[5 * s_] = (a2);                                                                        \
    } while (0)
/* B^T d for d = (a0..a5), F(4x4). */
#define BT6(a0, a1, a2, a3, a4, a5)                                                                \
    do {                                                                                           \
        const TYPE(a0) t1 = (a4)-4.0f * (a2), t2 = (a3)-4.0f * (a1), t3 = (a4) - (a2),             \
                       t4 = 2.0f * ((a3) - (a1)), r0 = 4.0f * (a0)-5.0f * (a2) + (a4),             \
                       r5 = 4.0f * (a1)-5.0f * (a3) + (a5);                                        \
        (a0) = r0, (a1) = t1 + t2, (a2) = t1 - t2, (a3) = t3 + t4, (a4) = t3 - t4, (a5) = r5;      \
    } while (0)
/* A^T m for m = (m0..m5) into y0..y3, F(4x4). */
#define AT6(m0, m1, m2, m3, m4, m5, y0, y1, y2, y3)                                                \
    do {                                                                                           \
        const TYPE(m0) s12 = (m1) + (m2), d12 = (m1) - (m2), s34 = (m3) + (m4), d34 = (m3) - (m4); \
        (y0) = (m0) + s12 + s34, (y1) = d12 + 2.0f * d34, (y2) = s12 + 4.0f * s34;                 \
        (y3) = d12 + 8.0f * d34 + (m5);                                                            \
    } while (0)
/* A g for g = (g0..g3) into r0..r5 (the gradient of A^T m), F(4x4). */
#define A6(g0, g1, g2, g3, r0, r1, r2, r3, r4, r5)                                                 \
    do {                                                                                           \
        const TYPE(g0) e = (g0) + (g2), o = (g1) + (g3), e4 = (g0) + 4.0f * (g2),                  \
                       o4 = 2.0f * (g1) + 8.0f * (g3);                                             \
        (r0) = (g0), (r1) = e + o, (r2) = e - o, (r3) = e4 + o4, (r4) = e4 - o4, (r5) = (g3);      \
    } while (0)
/* G^T u for u = (u0..u5) into g[0..2 step s] (the gradient of G g), F(4x4). */
#define GT6(g, s, u0, u1, u2, u3, u4, u5)                                                          \
    do {                                                                                           \
        const TYPE(u0) e = (u1) + (u2), o = (u1) - (u2), e3 = (u3) + (u4), o3 = (u3) - (u4);       \
        (g)[0] = 0.25f * (u0) - (1.0f / 6) * e + (1.0f / 24) * e3;                                 \
        (g)[(int64_t)(s)] = (-1.0f / 6) * o + (1.0f / 12) * o3;                                    \
        (g)[2 * (int64_t)(s)] = (-1.0f / 6) * e + (1.0f / 6) * e3 + (u5);                          \
    } while (0)

/* Offsets (in floats) of the side x side pixels from (h0, w0) on in image n
 * of an [N, H, W, C] tensor; -1 for those outside it. */
static inline void window(int64_t n, int64_t h0, int64_t w0, int side, int64_t H, int64_t W, int64_t C,
                   int64_t *off)
{
    for (int a = 0; a < side; a++)
        for (int b = 0; b < side; b++) {
            const int64_t h = h0 + a, w = w0 + b;
            off[a * side + b] = h >= 0 && h < H && w >= 0 && w < W ? ((n * H + h) * W + w) * C : -1;
        }
}

#endif
