/* kernels/attention/tree_attention_mma_h64_f16.cu — the tensor-core tree
 * attention kernel (tree_attention_mma.cuh) for head dim 64 in f16; one
 * instantiation per file keeps each compile small.
 */
#include "attention/tree_attention_mma.cuh"

namespace deco_tree {

cudaError_t tree_attention_mma_launch_h64_f16(const Params &p, const Plan &plan, cudaStream_t stream) {
  return tree_attention_mma_launch<64, __half>(p, plan, stream);
}

}  // namespace deco_tree
