/* deco/deco.h — umbrella header of the deco library: kernels for fast LLM
 * decoding (draft-tree verification: tree attention over a paged KV cache,
 * greedy and lossless stochastic acceptance, KV compaction; causal GQA
 * attention of any ratio; Token Recycling and prompt lookup drafts, model
 * drafts inside the device-resident step; superposed decoding; KV-head
 * compression) and the Llama host layer that runs them (llama2.c
 * checkpoints, GGUF files and their tokenizers, the forward, the speculative
 * loop, the CUDA-graph step, tensor parallelism, evaluation). kv.h, select.h
 * and superpose_ops.h come in through attention.h, recycle.h and
 * superpose.h.
 */
#ifndef DECO_DECO_H
#define DECO_DECO_H

#include "deco/core.h"
#include "deco/philox.h"
#include "deco/layers.h"
#include "deco/quant.h"
#include "deco/attention.h"
#include "deco/model.h"
#include "deco/comm.h"
#include "deco/tokenizer.h"
#include "deco/tree.h"
#include "deco/spec_step.h"
#include "deco/spec.h"
#include "deco/recycle.h"
#include "deco/superpose.h"
#include "deco/eval.h"
#include "deco/compress.h"

#endif /* DECO_DECO_H */
