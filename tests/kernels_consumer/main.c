/* tests/kernels_consumer/main.c — an engine that takes the kernels without
 * deco's host layer: it fills a deco_exec_t (common/exec.h) with its own
 * error sink, runs RMSNorm and a per-row top-k through their kernel-level
 * entry points (deco_<op>_ref, common/op_impl.h) on the CPU, checks the
 * results, and checks that a kernel's failure reaches the sink with its
 * status and message. Built with include/ and kernels/ only; links only the
 * deco_kernels objects (tests/kernels_consumer/CMakeLists.txt).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/exec.h"
#include "common/op_impl.h"

typedef struct sink {
  int calls;
  deco_status_t status;
  char message[DECO_EXEC_MESSAGE_CAPACITY];
} sink_t;

static void on_error(void *user, deco_status_t status, const char *message) {
  sink_t *s = user;
  s->calls++;
  s->status = status;
  snprintf(s->message, sizeof s->message, "%s", message);
}

static int failures;
#define CHECK(cond, ...)                        \
  do {                                          \
    if (!(cond)) {                              \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
      fprintf(stderr, __VA_ARGS__);             \
      fputc('\n', stderr);                      \
      ++failures;                               \
    }                                           \
  } while (0)

int main(void) {
  sink_t sink = {0};
  const deco_exec_t exec = {.backend = DECO_BACKEND_CPU, .on_error = on_error, .error_user = &sink};

  /* RMSNorm with a residual add: residual += add, out = w * r / sqrt(mean(r^2) + eps). */
  enum { ROWS = 2, DIM = 4 };
  float residual[ROWS][DIM] = {{1, 2, 3, 4}, {-2, 0, 2, 0}};
  const float add[ROWS][DIM] = {{0, 0, 0, 1}, {1, 1, 1, 1}};
  const float weight[DIM] = {1.0f, 0.5f, 2.0f, -1.0f};
  float out[ROWS][DIM];
  const deco_rmsnorm_args_t norm = {.dtype = DECO_DTYPE_F32, .n_rows = ROWS, .dim = DIM, .eps = 1e-5f,
                                    .residual = &residual[0][0], .add = &add[0][0], .weight = weight,
                                    .out = &out[0][0]};
  CHECK(deco_rmsnorm_ref(&exec, &norm) == DECO_STATUS_SUCCESS, "deco_rmsnorm_ref failed");
  const float want_res[ROWS][DIM] = {{1, 2, 3, 5}, {-1, 1, 3, 1}};
  for (int r = 0; r < ROWS; ++r) {
    double ss = 0.0;
    for (int i = 0; i < DIM; ++i) ss += (double)want_res[r][i] * want_res[r][i];
    const double inv = 1.0 / sqrt(ss / DIM + 1e-5);
    for (int i = 0; i < DIM; ++i) {
      CHECK(residual[r][i] == want_res[r][i], "residual[%d][%d] = %g, want %g", r, i, residual[r][i],
            want_res[r][i]);
      const double want = weight[i] * want_res[r][i] * inv;
      CHECK(fabs(out[r][i] - want) <= 1e-5 + 1e-5 * fabs(want), "out[%d][%d] = %.9g, want %.9g", r, i, out[r][i],
            want);
    }
  }

  /* Top-2 of a row: equal values go to the lower id, NaN ranks lowest. */
  const float logits[6] = {0.5f, NAN, 3.0f, -1.0f, 3.0f, 2.0f};
  int32_t ids[2] = {-1, -1};
  float values[2] = {0.0f, 0.0f};
  const deco_topk_rows_args_t topk = {.n_rows = 1, .vocab = 6, .k = 2, .dtype = DECO_DTYPE_F32, .logits = logits,
                                      .ids = ids, .values = values};
  CHECK(deco_topk_rows_ref(&exec, &topk) == DECO_STATUS_SUCCESS, "deco_topk_rows_ref failed");
  CHECK(ids[0] == 2 && ids[1] == 4 && values[0] == 3.0f && values[1] == 3.0f, "top-2 = %d (%g), %d (%g)", ids[0],
        values[0], ids[1], values[1]);
  CHECK(sink.calls == 0, "the sink was called on success (%s)", sink.message);

  /* A malformed tree batch (tree_indptr[0] != 0): the reference refuses it,
   * and its message reaches the sink as it reaches deco_last_error in the
   * library. */
  const int32_t indptr[2] = {1, 2}, parent[2] = {-1, -1}, tokens[2] = {0, 0};
  int32_t path[DECO_TREE_MAX_NODES], accept_len[1], bonus[1];
  const deco_tree_accept_greedy_args_t greedy = {
      .tree = {.n_trees = 1, .n_nodes = 2, .tree_indptr = indptr, .parent = parent},
      .tokens = tokens,
      .logits_dtype = DECO_DTYPE_F32,
      .logits = logits,
      .vocab = 3,
      .out = {.path = path, .accept_len = accept_len, .bonus = bonus},
  };
  const deco_status_t st = deco_tree_accept_greedy_ref(&exec, &greedy);
  CHECK(st == DECO_STATUS_INVALID_ARGUMENT, "status %d", (int)st);
  CHECK(sink.calls == 1 && sink.status == DECO_STATUS_INVALID_ARGUMENT, "sink: %d calls, status %d", sink.calls,
        (int)sink.status);
  CHECK(strcmp(sink.message, "deco_tree_accept_greedy: tree_indptr[0] = 1, expected 0") == 0, "message \"%s\"",
        sink.message);

  /* Without a sink a failure still returns its status. */
  const deco_exec_t quiet = {.backend = DECO_BACKEND_CPU};
  CHECK(deco_tree_accept_greedy_ref(&quiet, &greedy) == DECO_STATUS_INVALID_ARGUMENT, "quiet status");
  CHECK(strcmp(deco_dtype_name(DECO_DTYPE_BF16), "bf16") == 0 && deco_dtype_size(DECO_DTYPE_F16) == 2, "dtypes");

  if (failures) return 1;
  printf("kernels alone: rmsnorm, topk_rows and an error through deco_exec_t ok\n");
  return 0;
}
