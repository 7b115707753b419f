/* tests/common/stats.h — chi-square goodness of fit for the sampling tests
 * (docs/TESTING.md): bins with expected count < 5 are pooled; and the
 * two-sample homogeneity test of two histograms. */
#ifndef DECO_TESTS_STATS_H
#define DECO_TESTS_STATS_H

/* p-value of observed counts[k] (sum n) against probabilities expect[k]
 * (which sum to 1). Bins whose expected count n*expect < 5 are pooled into
 * one bin (dropped if the pool itself is < 5 and nothing was observed in it
 * — an observation in a zero-probability bin gives p = 0). *df gets the
 * degrees of freedom. */
double deco_test_chi2_pvalue(const long *counts, const double *expect, int k, long n, int *df);

/* Homogeneity chi-square of two histograms a[k] and b[k] (the two-sample
 * test of the speculative sampling suites): categories with fewer than 10
 * observations in the two together are pooled into one cell, an empty
 * cell is dropped. Returns the p-value; *df gets the degrees of freedom
 * and *stat the statistic where they are not NULL. */
double deco_test_homogeneity_pvalue(const long *a, const long *b, int k, int *df, double *stat);

/* Upper tail of the chi-square distribution with df degrees of freedom. */
double deco_test_chi2_sf(double x, int df);

#endif
