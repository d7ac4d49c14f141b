/* libmmrec: trainable building blocks of multimodal recommenders behind a
 * small, stable C ABI. Include this one header.
 *
 * A training step, as a host writes it (error checks left out):
 *
 *     mmrec_model *m;      mmrec_model_create(&m);
 *     mmrec_module *tower; mmrec_mlp_create(m, "tower", &mlp_cfg, &tower);
 *     mmrec_optimizer *o;  mmrec_optimizer_create(m, &adamw_cfg, &o);
 *     mmrec_tape *t;       mmrec_tape_create(&t);
 *     for (step = 0; step < n_steps; step++) {
 *         mmrec_tensor *x, *y, *logits, *loss;
 *         mmrec_tape_wrap(t, batch_features, 2, shape, MMREC_TENSOR_READONLY, &x);
 *         mmrec_tape_wrap(t, batch_labels, 1, label_shape, MMREC_TENSOR_READONLY, &y);
 *         mmrec_mlp_forward(tower, t, x, &logits);
 *         mmrec_loss_bce_logits(t, logits, y, &loss);
 *         mmrec_tape_backward(t, loss);   // gradients into the model
 *         mmrec_optimizer_step(o);        // update, then clear gradients
 *         mmrec_tape_reset(t);            // O(1); no malloc after warm-up
 *     }
 *     mmrec_model_save(m, "model.mmrc");
 *     mmrec_tape_destroy(t); mmrec_optimizer_destroy(o); mmrec_model_destroy(m);
 *
 * Every call returns an mmrec_status; on failure mmrec_last_error() names
 * the argument and what was wrong. Whatever is not declared in these headers
 * is not public API. */
#ifndef MMREC_MMREC_H
#define MMREC_MMREC_H

#include "mmrec/core.h"
#include "mmrec/tensor.h"
#include "mmrec/tape.h"
#include "mmrec/ops.h"
#include "mmrec/model.h"
#include "mmrec/modules.h"
#include "mmrec/losses.h"
#include "mmrec/optim.h"
#include "mmrec/em3.h"
#include "mmrec/alignrec.h"
#include "mmrec/cache.h"
#include "mmrec/data.h"
#include "mmrec/graph.h"
#include "mmrec/metrics.h"

#endif /* MMREC_MMREC_H */
