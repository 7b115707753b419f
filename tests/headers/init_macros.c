/* tests/headers/init_macros.c — compiled only (never run) by the
 * header_init_macros test: every DECO_*_INIT macro of the public headers
 * initialises its struct without a warning under -Wall -Wextra -Werror, as
 * C11 and, where a C++ compiler is found, as C++20 (the first C++ standard
 * with designated initialisers). check_init_macros.cmake fails when a
 * header defines a DECO_*_INIT macro this file does not use.
 */
#include <deco/deco.h>

#include <deco/kv.h>
#include <deco/recycle.h>
#include <deco/select.h>
#include <deco/superpose_ops.h>

#define USE(type, macro)      \
  do {                        \
    type v_ = macro;          \
    sink(&v_, sizeof v_);     \
  } while (0)

static void sink(const void *p, size_t n) {
  (void)p;
  (void)n;
}

int main(void) {
  USE(deco_attention_args_t, DECO_ATTENTION_ARGS_INIT);
  USE(deco_comm_nccl_config_t, DECO_COMM_NCCL_CONFIG_INIT);
  USE(uint64_t, DECO_COMM_HASH_INIT);
  USE(deco_kv_gram_args_t, DECO_KV_GRAM_ARGS_INIT);
  USE(deco_compress_config_t, DECO_COMPRESS_CONFIG_INIT);
  USE(deco_ctx_config_t, DECO_CTX_CONFIG_INIT);
  USE(deco_eval_stats_t, DECO_EVAL_STATS_INIT);
  USE(deco_eval_config_t, DECO_EVAL_CONFIG_INIT);
  USE(deco_paged_kv_t, DECO_PAGED_KV_INIT);
  USE(deco_ragged_batch_t, DECO_RAGGED_BATCH_INIT);
  USE(deco_kv_append_args_t, DECO_KV_APPEND_ARGS_INIT);
  USE(deco_kv_compact_args_t, DECO_KV_COMPACT_ARGS_INIT);
  USE(deco_embedding_args_t, DECO_EMBEDDING_ARGS_INIT);
  USE(deco_rmsnorm_args_t, DECO_RMSNORM_ARGS_INIT);
  USE(deco_rope_args_t, DECO_ROPE_ARGS_INIT);
  USE(deco_matmul_args_t, DECO_MATMUL_ARGS_INIT);
  USE(deco_matmul_batched_args_t, DECO_MATMUL_BATCHED_ARGS_INIT);
  USE(deco_swiglu_args_t, DECO_SWIGLU_ARGS_INIT);
  USE(deco_fill_random_args_t, DECO_FILL_RANDOM_ARGS_INIT);
  USE(deco_convert_args_t, DECO_CONVERT_ARGS_INIT);
  USE(deco_layer_schedule_t, DECO_LAYER_SCHEDULE_INIT);
  USE(deco_model_config_t, DECO_MODEL_CONFIG_INIT);
  USE(deco_forward_args_t, DECO_FORWARD_ARGS_INIT);
  USE(deco_kv_cache_compact_args_t, DECO_KV_CACHE_COMPACT_ARGS_INIT);
  USE(deco_forward_device_args_t, DECO_FORWARD_DEVICE_ARGS_INIT);
  USE(deco_forward_plan_t, DECO_FORWARD_PLAN_INIT);
  USE(deco_forward_sizes_t, DECO_FORWARD_SIZES_INIT);
  USE(deco_sampler_config_t, DECO_SAMPLER_CONFIG_INIT);
  USE(deco_dequant_args_t, DECO_DEQUANT_ARGS_INIT);
  USE(deco_recycle_draft_args_t, DECO_RECYCLE_DRAFT_ARGS_INIT);
  USE(deco_recycle_update_args_t, DECO_RECYCLE_UPDATE_ARGS_INIT);
  USE(deco_topk_rows_args_t, DECO_TOPK_ROWS_ARGS_INIT);
  USE(deco_lookup_config_t, DECO_LOOKUP_CONFIG_INIT);
  USE(deco_model_draft_config_t, DECO_MODEL_DRAFT_CONFIG_INIT);
  USE(deco_spec_sampling_t, DECO_SPEC_SAMPLING_INIT);
  USE(deco_generate_config_t, DECO_GENERATE_CONFIG_INIT);
  USE(deco_generate_stats_t, DECO_GENERATE_STATS_INIT);
  USE(deco_spec_state_t, DECO_SPEC_STATE_INIT);
  USE(deco_spec_prepare_args_t, DECO_SPEC_PREPARE_ARGS_INIT);
  USE(deco_spec_commit_args_t, DECO_SPEC_COMMIT_ARGS_INIT);
  USE(deco_draft_chain_args_t, DECO_DRAFT_CHAIN_ARGS_INIT);
  USE(deco_superpose_config_t, DECO_SUPERPOSE_CONFIG_INIT);
  USE(deco_superpose_result_t, DECO_SUPERPOSE_RESULT_INIT);
  USE(deco_ngram_lookup_args_t, DECO_NGRAM_LOOKUP_ARGS_INIT);
  USE(deco_superpose_embed_args_t, DECO_SUPERPOSE_EMBED_ARGS_INIT);
  USE(deco_superpose_select_args_t, DECO_SUPERPOSE_SELECT_ARGS_INIT);
  USE(deco_tree_batch_t, DECO_TREE_BATCH_INIT);
  USE(deco_tree_attention_args_t, DECO_TREE_ATTENTION_ARGS_INIT);
  USE(deco_tree_verify_out_t, DECO_TREE_VERIFY_OUT_INIT);
  USE(deco_tree_accept_greedy_args_t, DECO_TREE_ACCEPT_GREEDY_ARGS_INIT);
  USE(deco_tree_accept_sample_args_t, DECO_TREE_ACCEPT_SAMPLE_ARGS_INIT);
  return 0;
}
