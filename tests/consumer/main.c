/* A consumer of the installed library: version check plus one op on the CPU. */
#include <deco/deco.h>
#include <stdio.h>
#include <string.h>

int main(void) {
  if (deco_version() != DECO_VERSION) {
    fprintf(stderr, "header %d vs library %d\n", DECO_VERSION, deco_version());
    return 1;
  }
  deco_ctx_config_t cfg = DECO_CTX_CONFIG_INIT;
  deco_ctx_t *ctx;
  if (deco_ctx_create(&cfg, &ctx) != DECO_STATUS_SUCCESS) return 1;
  float gate[3] = {0.0f, 1.0f, -2.0f}, up[3] = {5.0f, 2.0f, 1.0f}, out[3];
  deco_swiglu_args_t a = {DECO_DTYPE_F32, 3, gate, up, out};
  deco_status_t st = deco_swiglu(ctx, &a);
  deco_ctx_destroy(ctx);
  if (st != DECO_STATUS_SUCCESS || out[0] != 0.0f || !(out[1] > 1.46f && out[1] < 1.47f)) return 1;
  printf("deco %s ok\n", deco_version_string());
  return 0;
}
