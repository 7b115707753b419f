/* deco/deco.h — umbrella header of the deco library: fast LLM decoding
 * kernels (draft-tree verification, GQA, superposed and layer-parallel
 * drafting) and the Llama host layer that runs them.
 */
#ifndef DECO_DECO_H
#define DECO_DECO_H

#include "deco/core.h"
#include "deco/philox.h"
#include "deco/layers.h"
#include "deco/attention.h"
#include "deco/model.h"
#include "deco/tokenizer.h"
#include "deco/tree.h"
#include "deco/spec.h"
#include "deco/recycle.h"

#endif /* DECO_DECO_H */
