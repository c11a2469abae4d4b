/*
 * math.c -- the element-wise pieces of the forward pass: RMSNorm, rotary
 * position embedding, softmax and the exit distribution of the loop.
 *
 * Everything is f32 as the reference computes it in float32; where a sum over
 * a whole vector is taken, it is accumulated in double so that the result is
 * the correctly rounded f32 value the reference's pairwise sums approach.
 */
#include <math.h>
#include "internal.h"

/* ------------------------------------------------------------------------
 * RMSNorm: out = weight * x / sqrt(mean(x^2) + eps)
 * ------------------------------------------------------------------------ */

void ouro_rmsnorm(float *out, const float *x, const void *weight, ouro_dtype dt, int d, float eps)
{
    double ss = 0.0;
    for (int i = 0; i < d; i++)
        ss += (double)x[i] * x[i];
    float var = (float)(ss / d);
    float r = 1.0f / sqrtf(var + eps);
    for (int i = 0; i < d; i++) {
        float w;
        if (dt == OURO_F32)
            w = ((const float *)weight)[i];
        else if (dt == OURO_F16)
            w = ouro_f16_to_f32(((const uint16_t *)weight)[i]);
        else
            w = ouro_bf16_to_f32(((const uint16_t *)weight)[i]);
        out[i] = w * (x[i] * r);
    }
}

/* ------------------------------------------------------------------------
 * RoPE, rotate-half form
 *
 * inv_freq[i] = 1 / theta^(2i / head_dim) (f32); the angle of pair i at
 * position p is inv_freq[i] * p (f32).  With c = cos, s = sin of that angle,
 * element i and element i + head_dim/2 of each head rotate together:
 *   out[i]        = x[i] * c - x[i + half] * s
 *   out[i + half] = x[i + half] * c + x[i] * s
 * ------------------------------------------------------------------------ */

void ouro_rope_inv_freq(float *inv_freq, int head_dim, double theta)
{
    for (int i = 0; i < head_dim / 2; i++) {
        float e = (float)(2 * i) / (float)head_dim;
        inv_freq[i] = 1.0f / powf((float)theta, e);
    }
}

void ouro_rope(float *v, int n_heads, int head_dim, const float *inv_freq, int pos)
{
    int half = head_dim / 2;
    for (int i = 0; i < half; i++) {
        float angle = inv_freq[i] * (float)pos;
        float c = cosf(angle), s = sinf(angle);
        for (int h = 0; h < n_heads; h++) {
            float *x = v + (size_t)h * head_dim;
            float x1 = x[i], x2 = x[i + half];
            x[i] = x1 * c - x2 * s;
            x[i + half] = x2 * c + x1 * s;
        }
    }
}

/* ------------------------------------------------------------------------
 * Softmax
 * ------------------------------------------------------------------------ */

void ouro_softmax(float *x, int n)
{
    float m = x[0];
    for (int i = 1; i < n; i++)
        if (x[i] > m)
            m = x[i];
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - m);
        sum += x[i];
    }
    float inv = (float)(1.0 / sum);
    for (int i = 0; i < n; i++)
        x[i] *= inv;
}

double ouro_logsumexp(const float *x, int n)
{
    float m = x[0];
    for (int i = 1; i < n; i++)
        if (x[i] > m)
            m = x[i];
    double sum = 0.0;
    for (int i = 0; i < n; i++)
        sum += exp((double)x[i] - m);
    return m + log(sum);
}

/* ------------------------------------------------------------------------
 * Exit distribution of the loop
 * ------------------------------------------------------------------------ */

void ouro_exit_pdf(float *pdf, const float *gate, int L)
{
    float remaining = 1.0f;
    for (int t = 0; t < L; t++) {
        float lambda = 1.0f / (1.0f + expf(-gate[t]));
        if (t < L - 1) {
            pdf[t] = lambda * remaining;
            remaining = remaining * (1.0f - lambda);
        } else {
            pdf[t] = remaining;
        }
    }
}

int ouro_exit_qstep(const float *pdf, int L, float q)
{
    float cdf = 0.0f;
    for (int t = 0; t < L; t++) {
        cdf += pdf[t];
        if (cdf >= q)
            return t + 1;
    }
    return L;
}
