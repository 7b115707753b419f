/* kernels/compress/kv_gram_ref.c — reference calibration Grams of KV-head
 * compression (deco/compress.h): per group of g KV heads, the f64 second
 * moment of the concatenated value vectors and, per rotary frequency, the
 * Hermitian g x g moment of the complex key components. f32 input (the CPU
 * backend's dtype); every product and sum in f64, rows in order.
 */
#include "common/op_impl.h"

/* Group G's value moment: out[i][j] += x[i] * x[j] over the rows, x the
 * concatenation of the group's g value vectors (g*d of them). */
static void add_value_gram(const deco_kv_gram_args_t *a, int G) {
  const int g = a->group, d = a->head_dim, gd = g * d;
  const size_t row = (size_t)a->n_kv_heads * d;
  double *out = a->v_gram + (size_t)G * gd * gd;
  for (int t = 0; t < a->n_rows; ++t) {
    const float *x = (const float *)a->v + (size_t)t * row + (size_t)G * gd;
    for (int i = 0; i < gd; ++i) {
      const double xi = x[i];
      for (int j = 0; j < gd; ++j) out[(size_t)i * gd + j] += xi * (double)x[j];
    }
  }
}

/* Group G's key moment at rotary frequency f: out[p][q] += k_p * conj(k_q)
 * over the rows, k_p = x[p][i0] + i x[p][i1] for head p of the group. */
static void add_key_gram(const deco_kv_gram_args_t *a, int G, int f) {
  const int g = a->group, d = a->head_dim, half = d / 2, gd = g * d;
  const size_t row = (size_t)a->n_kv_heads * d;
  const int i0 = a->style == DECO_ROPE_INTERLEAVED ? 2 * f : f;
  const int i1 = a->style == DECO_ROPE_INTERLEAVED ? 2 * f + 1 : f + half;
  double *out = a->k_gram + ((size_t)G * half + f) * g * g * 2;
  for (int t = 0; t < a->n_rows; ++t) {
    const float *x = (const float *)a->k + (size_t)t * row + (size_t)G * gd;
    for (int p = 0; p < g; ++p) {
      const double pr = x[p * d + i0], pi = x[p * d + i1];
      for (int q = 0; q < g; ++q) {
        const double qr = x[q * d + i0], qi = x[q * d + i1];
        /* k_p * conj(k_q) */
        out[((size_t)p * g + q) * 2 + 0] += pr * qr + pi * qi;
        out[((size_t)p * g + q) * 2 + 1] += pi * qr - pr * qi;
      }
    }
  }
}

deco_status_t deco_kv_gram_ref(const deco_exec_t *exec, const deco_kv_gram_args_t *a) {
  (void)exec;
  const int half = a->head_dim / 2, n_groups = a->n_kv_heads / a->group;
  for (int G = 0; G < n_groups; ++G) {
    if (a->v) add_value_gram(a, G);
    if (a->k)
      for (int f = 0; f < half; ++f) add_key_gram(a, G, f);
  }
  return DECO_STATUS_SUCCESS;
}
