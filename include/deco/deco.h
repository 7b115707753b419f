/* deco/deco.h — umbrella header of the deco library: kernels for fast LLM
 * decoding (draft-tree verification: tree attention over a paged KV cache,
 * greedy and lossless stochastic acceptance, KV compaction; causal GQA
 * attention of any ratio; Token Recycling and prompt lookup drafts) and the
 * Llama host layer that runs them (llama2.c checkpoints, the forward, the
 * speculative loop, the CUDA-graph step).
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
