/* libmmrec: trainable building blocks of multimodal recommenders behind a
 * small, stable C ABI. Include this one header.
 *
 * A small MLP learns a toy task, as a host writes it (error checks left out;
 * every call returns an mmrec_status that real code checks):
 *
 *     #include <mmrec/mmrec.h>
 *     #include <stdio.h>
 *
 *     int main(void) {
 *         static float x_data[64 * 16], y_data[64];  // y = [first feature > 0]
 *         for (int i = 0; i < 64 * 16; i++) x_data[i] = (float)((i * 37) % 17) / 8 - 1;
 *         for (int b = 0; b < 64; b++) y_data[b] = x_data[b * 16] > 0;
 *         int64_t sizes[] = {16, 32, 1}, xs[] = {64, 16}, ys[] = {64, 1};
 *         mmrec_mlp_config mc;        mmrec_mlp_config_init(&mc);
 *         mc.sizes = sizes;           mc.num_sizes = 3;
 *         mmrec_optimizer_config oc;  mmrec_optimizer_config_init(&oc);
 *         oc.type = MMREC_OPT_ADAMW;  oc.lr = 1e-2f;
 *         mmrec_model *m;      mmrec_model_create(&m);
 *         mmrec_module *mlp;   mmrec_mlp_create(m, "mlp", &mc, &mlp);
 *         mmrec_optimizer *o;  mmrec_optimizer_create(m, &oc, &o);
 *         mmrec_tape *t;       mmrec_tape_create(&t);
 *         for (int step = 0; step < 200; step++) {
 *             mmrec_tensor *x, *y, *logits, *loss;
 *             mmrec_tape_wrap(t, x_data, 2, xs, MMREC_TENSOR_READONLY, &x);  // no copy
 *             mmrec_tape_wrap(t, y_data, 2, ys, MMREC_TENSOR_READONLY, &y);
 *             mmrec_mlp_forward(mlp, t, x, &logits);
 *             mmrec_loss_bce_logits(t, logits, y, &loss);
 *             mmrec_tape_backward(t, loss);  // gradients into the model
 *             mmrec_optimizer_step(o);       // update, then clear gradients
 *             const float *v;
 *             mmrec_tensor_data_const(loss, &v);
 *             if (step % 50 == 0 || step == 199) printf("step %d loss %.4f\n", step, v[0]);
 *             mmrec_tape_reset(t);           // O(1); no malloc after warm-up
 *         }
 *         mmrec_checkpoint_save(m, o, "model.mmrc");  // crash-safe; resumable
 *         mmrec_tape_destroy(t); mmrec_optimizer_destroy(o); mmrec_model_destroy(m);
 *         return 0;
 *     }
 *
 * On failure mmrec_last_error() names the argument and what was wrong.
 * Whatever is not declared in these headers is not public API. */
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
#include "mmrec/iisan.h"
#include "mmrec/twotower.h"
#include "mmrec/mvke.h"
#include "mmrec/inttower.h"
#include "mmrec/distill.h"
#include "mmrec/cache.h"
#include "mmrec/data.h"
#include "mmrec/graph.h"
#include "mmrec/metrics.h"
#include "mmrec/index.h"

#endif /* MMREC_MMREC_H */
