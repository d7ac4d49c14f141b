/* The golden graph and its cases (see mt.h). */
#include "mt.h"

#include <stdio.h>

mmrec_graph *mt_golden_graph(mt_golden *gold) {
    mt_golden_load(gold, "graph.bin");
    const mt_array *gu = mt_golden_get(gold, "graph.users");
    const mt_array *gi = mt_golden_get(gold, "graph.items");
    const mt_array *sizes = mt_golden_get(gold, "graph.sizes");
    int64_t users[64], items[64];
    ck_assert_uint_le(gu->numel, 64);
    for (size_t k = 0; k < gu->numel; k++) {
        users[k] = (int64_t)gu->data[k];
        items[k] = (int64_t)gi->data[k];
    }
    int64_t U = (int64_t)sizes->data[0], I = (int64_t)sizes->data[1];
    mmrec_graph *g;
    MT_OK(mmrec_graph_create_bipartite(users, items, gu->numel, U, I, &g));
    return g;
}

static const mt_array *mt_case_array(const mt_golden *gold, const char *kase, const char *what) {
    char name[64];
    snprintf(name, sizeof name, "%s.%s", kase, what);
    return mt_golden_get(gold, name);
}

void mt_golden_graph_case(const mt_golden *gold, const char *name, mt_graph_case *c) {
    c->layers = (int)mt_case_array(gold, name, "layers")->data[0];
    const mt_array *wts = mt_case_array(gold, name, "weights");
    c->weights = wts->numel > 1 ? wts->data : NULL;
    c->x = mt_case_array(gold, name, "x");
    c->r = mt_case_array(gold, name, "r");
    c->y = mt_case_array(gold, name, "y");
    c->dx = mt_case_array(gold, name, "dx");
}

void mt_golden_graph_check(const char *name, const mt_graph_case *c, mmrec_tape *tape,
                           mmrec_tensor *ego, mmrec_tensor *out, const float *want,
                           const float *r, size_t n) {
    float got[256];
    const float *grad;
    ck_assert_uint_le(n, 256);
    MT_OK(mmrec_tensor_copy_to(out, got, n));
    mt_assert_close(name, got, want, n, 0, 0);
    MT_OK(mmrec_tape_backward_from(tape, out, r));
    MT_OK(mmrec_tensor_grad(ego, &grad));
    mt_assert_close(name, grad, c->dx->data, c->dx->numel, 0, 0);
}
