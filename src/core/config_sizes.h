/* The first-release size of every size-first struct of the public API
 * (STYLE.md 5): the smallest struct_size the library accepts, forever. A
 * struct only grows by fields appended past this size, so a caller built
 * against the release that introduced it passes exactly this size and gets
 * the defaults for every later field.
 *
 * Each size is the end of the struct's last field in that release, rounded
 * up to the struct's alignment (what sizeof gave then), so it stays right
 * when fields are appended. The static assertions pin the LP64 numbers
 * measured at that release: moving, removing or resizing an old field, or
 * appending one that raises the alignment, fails the build. Never
 * installed.
 *
 * This file holds the mechanism and the rows of the primitives' structs; a
 * system (em3/, alignrec/, iisan/, twotower/) declares the rows of its own
 * structs in its internal header with MMREC__SIZED_STRUCT, so core never
 * includes a system's header. */
#ifndef MMREC_CONFIG_SIZES_H
#define MMREC_CONFIG_SIZES_H

#include "mmrec/cache.h"
#include "mmrec/core.h"
#include "mmrec/data.h"
#include "mmrec/graph.h"
#include "mmrec/losses.h"
#include "mmrec/metrics.h"
#include "mmrec/modules.h"
#include "mmrec/optim.h"

#include <stddef.h>
#include <stdint.h>

#define MMREC__FIELD_END(type, field) (offsetof(type, field) + sizeof(((type *)0)->field))
#define MMREC__FIRST_SIZE(type, last) \
    ((MMREC__FIELD_END(type, last) + _Alignof(type) - 1) / _Alignof(type) * _Alignof(type))

/* X(struct, last field of its first release, first release, size there on LP64) */
#define MMREC__SIZED_STRUCTS(X)                                       \
    X(mmrec_allocator, user, 0.1, 32)                                 \
    X(mmrec_linear_config, init_std, 0.1, 40)                         \
    X(mmrec_lora_config, alpha, 0.1, 16)                              \
    X(mmrec_mlp_config, init_std, 0.1, 48)                            \
    X(mmrec_embedding_config, init_std, 0.1, 32)                      \
    X(mmrec_layernorm_config, affine, 0.1, 24)                        \
    X(mmrec_mha_config, causal, 0.1, 32)                              \
    X(mmrec_transformer_config, causal, 0.1, 56)                      \
    X(mmrec_optimizer_config, clip_norm, 0.1, 56)                     \
    X(mmrec_knn_config, binary, 0.1, 16)                              \
    X(mmrec_rank_metrics, mrr, 0.1, 64)                               \
    X(mmrec_batch_softmax_config, row_weights, 0.2, 64)               \
    X(mmrec_cache_gather_config, n_keep, 0.2, 32)                     \
    X(mmrec_sequences_config, max_length, 0.2, 24)                    \
    X(mmrec_adapter_config, init_std, 0.2, 32)                        \
    X(mmrec_sequence_softmax_config, num_items, 0.2, 32)              \
    X(mmrec_sequence_encoder_config, attn_bias, 0.2, 56)              \
    X(mmrec_item_sampler_config, seed, 0.2, 32)

/* MMREC__MIN_SIZE(mmrec_linear_config): the first-release size. */
#define MMREC__MIN_SIZE(type) MMREC__MIN_SIZE_##type

/* On LP64, pins the first-release size measured at that release. */
#if UINTPTR_MAX == UINT64_MAX && SIZE_MAX == UINT64_MAX
#define MMREC__PIN_SIZE(type, last, since, lp64)               \
    _Static_assert(MMREC__FIRST_SIZE(type, last) == (lp64), \
                   #type ": a field of release " #since " moved or changed size");
#else
#define MMREC__PIN_SIZE(type, last, since, lp64)
#endif

/* One row (struct, last field of its first release, first release, size
 * there on LP64): defines MMREC__MIN_SIZE(type) and pins it. Used at file
 * scope, without a trailing semicolon. */
#define MMREC__SIZED_STRUCT(type, last, since, lp64)                         \
    enum { MMREC__MIN_SIZE_##type = (int)MMREC__FIRST_SIZE(type, last) }; \
    MMREC__PIN_SIZE(type, last, since, lp64)
MMREC__SIZED_STRUCTS(MMREC__SIZED_STRUCT)

/* Fills a caller's config of `size` bytes with `defaults` (a `type`), and
 * copies a caller's config over the library's defaults (`ours`), with the
 * first-release size as the minimum (core_internal.h). */
#define MMREC__CONFIG_INIT(type, cfg, size, defaults) \
    mmrec__config_init((cfg), (size), &(defaults), sizeof(type), MMREC__MIN_SIZE(type), __func__)
#define MMREC__CONFIG_MERGE(type, ours, theirs) \
    mmrec__config_merge((ours), sizeof(type), MMREC__MIN_SIZE(type), (theirs), __func__)

#endif
