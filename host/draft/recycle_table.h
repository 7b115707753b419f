/* host/draft/recycle_table.h — library-private: what the Token Recycling
 * drafter needs of a recycler beyond deco/recycle.h.
 */
#ifndef DECO_HOST_DRAFT_RECYCLE_TABLE_H
#define DECO_HOST_DRAFT_RECYCLE_TABLE_H

#include "deco/recycle.h"

/* The context whose memory holds the table. */
deco_ctx_t *deco_recycler_ctx(const deco_recycler_t *r);

#endif
