/* tests/common/stats.c — chi-square statistics (see stats.h). The upper
 * tail uses the regularised incomplete gamma function Q(df/2, x/2), by its
 * series or continued fraction (Numerical Recipes' split at a + 1). */
#include "common/stats.h"

#include <math.h>

static double gamma_q(double a, double x) {
  if (x <= 0.0) return 1.0;
  double gln = lgamma(a);
  if (x < a + 1.0) {
    double ap = a, sum = 1.0 / a, del = sum;
    for (int n = 0; n < 10000; ++n) {
      ap += 1.0;
      del *= x / ap;
      sum += del;
      if (fabs(del) < fabs(sum) * 1e-15) break;
    }
    return 1.0 - sum * exp(-x + a * log(x) - gln);
  }
  double b = x + 1.0 - a, c = 1.0 / 1e-300, d = 1.0 / b, h = d;
  for (int i = 1; i < 10000; ++i) {
    double an = -i * (i - a);
    b += 2.0;
    d = an * d + b;
    if (fabs(d) < 1e-300) d = 1e-300;
    c = b + an / c;
    if (fabs(c) < 1e-300) c = 1e-300;
    d = 1.0 / d;
    double del = d * c;
    h *= del;
    if (fabs(del - 1.0) < 1e-15) break;
  }
  return exp(-x + a * log(x) - gln) * h;
}

double deco_test_chi2_sf(double x, int df) { return gamma_q(0.5 * df, 0.5 * x); }

double deco_test_chi2_pvalue(const long *counts, const double *expect, int k, long n, int *df) {
  /* Bins: every category with expected count >= 5 stands alone; the others
   * are pooled; a pool still below 5 joins the smallest standing bin. */
  double pool_e = 0.0, min_e = INFINITY;
  long pool_o = 0;
  int bins = 0, min_i = -1;
  for (int i = 0; i < k; ++i) {
    double e = expect[i] * (double)n;
    if (expect[i] <= 0.0) {
      if (counts[i] > 0) { /* a draw outside the support */
        *df = 0;
        return 0.0;
      }
    } else if (e < 5.0) {
      pool_e += e;
      pool_o += counts[i];
    } else {
      bins++;
      if (e < min_e) {
        min_e = e;
        min_i = i;
      }
    }
  }
  double stat = 0.0;
  int merge_pool = pool_e > 0.0 && pool_e < 5.0 && min_i >= 0;
  for (int i = 0; i < k; ++i) {
    double e = expect[i] * (double)n;
    if (expect[i] <= 0.0 || e < 5.0) continue;
    double o = (double)counts[i];
    if (merge_pool && i == min_i) {
      e += pool_e;
      o += (double)pool_o;
    }
    stat += (o - e) * (o - e) / e;
  }
  if (pool_e > 0.0 && !merge_pool) {
    stat += ((double)pool_o - pool_e) * ((double)pool_o - pool_e) / pool_e;
    bins++;
  }
  *df = bins > 1 ? bins - 1 : 1;
  return deco_test_chi2_sf(stat, *df);
}

double deco_test_homogeneity_pvalue(const long *a, const long *b, int k, int *df, double *stat) {
  long na = 0, nb = 0, pa = 0, pb = 0;
  for (int i = 0; i < k; ++i) na += a[i], nb += b[i];
  double s = 0;
  int cells = 0;
  for (int i = 0; i <= k; ++i) {
    const long x = i < k ? a[i] : pa, y = i < k ? b[i] : pb;
    if (i < k && x + y < 10) {
      pa += x;
      pb += y;
      continue;
    }
    if (x + y == 0) continue;
    const double t = (double)(x + y), ea = t * na / (double)(na + nb), eb = t * nb / (double)(na + nb);
    s += (x - ea) * (x - ea) / ea + (y - eb) * (y - eb) / eb;
    cells++;
  }
  const int d = cells > 1 ? cells - 1 : 1;
  if (df) *df = d;
  if (stat) *stat = s;
  return deco_test_chi2_sf(s, d);
}
