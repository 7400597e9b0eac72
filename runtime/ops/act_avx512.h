/* Activations of 16 floats on AVX-512, for fused.c's SiLU step and for the convolutions that
 * apply an activation in their epilogue (conv_wide.c, conv_depthwise.c; od_step.act). Include
 * it from x86-64 code only. */
#ifndef OD_ACT_AVX512_H
#define OD_ACT_AVX512_H

#include <immintrin.h>

/* SiLU, x / (1 + e^-x) within 4 ulp. e^-x by Cephes' expf: k = round(z log2 e), r = z - k ln 2 (ln 2 in two parts), e^r by a
 * degree-6 polynomial, times 2^k (scalef); z = -x clamped to [-87, 88]: below, x / (1 + e^-x) is
 * x to float precision; above (x < -88), 0. 1 / (1 + e^-x) by a reciprocal estimate and one
 * Newton step. */
__attribute__((target("avx512f"), always_inline)) static inline __m512 od_silu_ps(__m512 v) {
    const __m512 one = _mm512_set1_ps(1.0f);
    __m512 nv = _mm512_sub_ps(_mm512_setzero_ps(), v);
    __mmask16 kept = _mm512_cmp_ps_mask(nv, _mm512_set1_ps(88.0f), _CMP_NGT_UQ);
    __m512 z = _mm512_min_ps(_mm512_max_ps(nv, _mm512_set1_ps(-87.0f)), _mm512_set1_ps(88.0f));
    __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(z, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(-2.12194440e-4f), _mm512_fnmadd_ps(k, _mm512_set1_ps(0.693359375f), z));
    __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(1.9875691500e-4f), r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, one));
    __m512 d = _mm512_add_ps(one, _mm512_scalef_ps(p, k));
    __m512 q = _mm512_rcp14_ps(d);
    q = _mm512_mul_ps(q, _mm512_fnmadd_ps(d, q, _mm512_set1_ps(2.0f)));
    return _mm512_maskz_mul_ps(kept, v, q);
}

/* HardSwish, x * min(max(x / 6 + 1/2, 0), 1), as ONNX defines it. */
__attribute__((target("avx512f"), always_inline)) static inline __m512 od_hardswish_ps(__m512 v) {
    __m512 g = _mm512_fmadd_ps(v, _mm512_set1_ps(1.0f / 6.0f), _mm512_set1_ps(0.5f));
    return _mm512_mul_ps(v, _mm512_min_ps(_mm512_max_ps(g, _mm512_setzero_ps()), _mm512_set1_ps(1.0f)));
}

/* The activation a of od_step.act (OD_ACT_NONE: v). */
__attribute__((target("avx512f"), always_inline)) static inline __m512 od_act_ps(int a, __m512 v) {
    return a == 1 ? od_silu_ps(v) : a == 2 ? od_hardswish_ps(v) : v;
}

#endif
