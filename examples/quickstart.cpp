/* quickstart, in C++ (mmrec/mmrec.hpp): the computation of quickstart.c,
 * the same data, model, steps and figures, through the RAII layer.
 *
 * Generated data with a planted structure: users and items have hidden
 * 8-d tastes; their 32-d features are noisy linear views of the tastes; a
 * user clicks the items that match their taste best. Two MLP towers map
 * features to 32-d embeddings; in-batch softmax over user x item dot
 * products (temperature 0.1) with AdamW. Each epoch prints the loss and the
 * Recall@10 of held-out clicks over all items; then the model is saved,
 * reloaded into a fresh model and the scores compared. Every handle is an
 * RAII owner; a failed call throws mmrec::Error, caught in main.
 *
 * Usage: quickstart-cpp [epochs] [checkpoint path]
 *        (defaults: 8, quickstart.mmrc) */
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include <mmrec/mmrec.hpp>

namespace {

constexpr int N_USERS = 2000;
constexpr int N_ITEMS = 1000;
constexpr int FEAT = 32;
constexpr int TASTE = 8;
constexpr int EMB = 32;
constexpr int CLICKS_PER_USER = 6; /* 5 for training, 1 held out */
constexpr int BATCH = 256;
constexpr float TEMPERATURE = 0.1f;

struct Data {
    std::vector<float> user_feat = std::vector<float>(N_USERS * FEAT);
    std::vector<float> item_feat = std::vector<float>(N_ITEMS * FEAT);
    std::vector<int64_t> train_user, train_item;
    std::vector<int64_t> test_item = std::vector<int64_t>(N_USERS);
};

/* Noisy linear views of the tastes, as quickstart.c makes them. */
void features(mmrec::Rng &rng, const std::vector<float> &taste, const std::vector<float> &proj,
              int rows, std::vector<float> &out) {
    float noise[FEAT];
    for (int r = 0; r < rows; r++) {
        rng.normal(noise, 0, 0.3f);
        for (int f = 0; f < FEAT; f++) {
            float v = noise[f];
            for (int t = 0; t < TASTE; t++) v += taste[r * TASTE + t] * proj[t * FEAT + f];
            out[r * FEAT + f] = v / std::sqrt(static_cast<float>(TASTE));
        }
    }
}

/* Builds the data set from the library's seeded generator. */
Data make_data(mmrec::Rng &rng) {
    Data d;
    std::vector<float> user_taste(N_USERS * TASTE), item_taste(N_ITEMS * TASTE),
        proj(TASTE * FEAT);
    rng.normal(user_taste, 0, 1);
    rng.normal(item_taste, 0, 1);
    rng.normal(proj, 0, 1);
    features(rng, user_taste, proj, N_USERS, d.user_feat);
    features(rng, item_taste, proj, N_ITEMS, d.item_feat);
    /* Clicks: the best of 40 random candidates by taste match, repeated. */
    for (int u = 0; u < N_USERS; u++) {
        for (int c = 0; c < CLICKS_PER_USER; c++) {
            int64_t best = 0;
            float best_score = -std::numeric_limits<float>::infinity();
            for (int k = 0; k < 40; k++) {
                const uint64_t i = rng.below(N_ITEMS);
                float s = 0;
                for (int t = 0; t < TASTE; t++)
                    s += user_taste[u * TASTE + t] * item_taste[i * TASTE + t];
                if (s > best_score) best_score = s, best = static_cast<int64_t>(i);
            }
            if (c == CLICKS_PER_USER - 1) {
                d.test_item[u] = best;
            } else {
                d.train_user.push_back(u);
                d.train_item.push_back(best);
            }
        }
    }
    return d;
}

/* Embeds rows of a feature table through a tower; `staging` holds the
 * gathered rows for the step (the tape wraps it without copying). */
mmrec::TensorRef embed(const mmrec::Mlp &tower, mmrec::Tape &tape,
                       const std::vector<float> &feat, mmrec::Span<const int64_t> ids,
                       std::vector<float> &staging) {
    const std::size_t n = ids.size();
    staging.resize(n * FEAT);
    for (std::size_t r = 0; r < n; r++)
        std::memcpy(&staging[r * FEAT], &feat[ids[r] * FEAT], FEAT * sizeof(float));
    mmrec::TensorRef x = tape.wrap_readonly(staging, {int64_t(n), FEAT});
    return tower.forward(tape, x);
}

/* Scores of every item for every user, [N_USERS, N_ITEMS], into `scores`. */
void score_all(const mmrec::Mlp &user_tower, const mmrec::Mlp &item_tower, const Data &d,
               std::vector<float> &scores) {
    std::vector<int64_t> all_users(N_USERS), all_items(N_ITEMS);
    for (int i = 0; i < N_USERS; i++) all_users[i] = i;
    for (int i = 0; i < N_ITEMS; i++) all_items[i] = i;
    std::vector<float> staging_u, staging_i;
    mmrec::Tape tape(MMREC_TAPE_INFERENCE);
    mmrec::TensorRef u = embed(user_tower, tape, d.user_feat, all_users, staging_u);
    mmrec::TensorRef v = embed(item_tower, tape, d.item_feat, all_items, staging_i);
    scores.resize(static_cast<std::size_t>(N_USERS) * N_ITEMS);
    mmrec::matmul(tape, u, v, MMREC_TRANS_B).copy_to(scores);
}

/* Recall@10 of the held-out click, training clicks excluded from ranking. */
double recall_at_10(const Data &d, std::vector<float> &scores) {
    const float neg_inf = -std::numeric_limits<float>::infinity();
    for (std::size_t k = 0; k < d.train_user.size(); k++)
        scores[d.train_user[k] * N_ITEMS + d.train_item[k]] = neg_inf;
    int hits = 0;
    for (int u = 0; u < N_USERS; u++) {
        const float *row = &scores[static_cast<std::size_t>(u) * N_ITEMS];
        const float target = row[d.test_item[u]];
        int better = 0;
        for (int i = 0; i < N_ITEMS; i++) better += row[i] > target;
        hits += target > neg_inf && better < 10;
    }
    return static_cast<double>(hits) / N_USERS;
}

int run(int epochs, const char *path) {
    mmrec::Rng rng(7);
    const Data d = make_data(rng);
    const std::size_t n_train = d.train_user.size();

    mmrec::Model m;
    m.seed(1);
    int64_t sizes[3] = {FEAT, 64, EMB};
    auto cfg = mmrec::config<mmrec_mlp_config>();
    cfg.sizes = sizes;
    cfg.num_sizes = 3;
    mmrec::Mlp user_tower = m.mlp("user_tower", cfg);
    mmrec::Mlp item_tower = m.mlp("item_tower", cfg);
    const std::size_t trainable = m.param_count().trainable;

    auto ocfg = mmrec::config<mmrec_optimizer_config>();
    ocfg.type = MMREC_OPT_ADAMW;
    ocfg.lr = 3e-3f;
    mmrec::Optimizer opt(m, ocfg);
    mmrec::Tape tape;

    std::printf("quickstart: %d users, %d items, %zu training clicks, %zu parameters\n", N_USERS,
                N_ITEMS, n_train, trainable);
    std::vector<float> staging_u, staging_i, scores;
    std::vector<int64_t> order(n_train), bu(BATCH), bi(BATCH), labels(BATCH);
    for (int k = 0; k < BATCH; k++) labels[k] = k;
    for (std::size_t k = 0; k < n_train; k++) order[k] = static_cast<int64_t>(k);
    double first_loss = 0, last_loss = 0, recall = 0;
    const std::size_t steps = n_train / BATCH;
    for (int epoch = 1; epoch <= epochs; epoch++) {
        for (std::size_t k = n_train - 1; k > 0; k--) /* shuffle */
            std::swap(order[k], order[rng.below(k + 1)]);
        double epoch_loss = 0;
        for (std::size_t s = 0; s < steps; s++) {
            for (int k = 0; k < BATCH; k++) {
                bu[k] = d.train_user[order[s * BATCH + k]];
                bi[k] = d.train_item[order[s * BATCH + k]];
            }
            mmrec::TensorRef u = embed(user_tower, tape, d.user_feat, bu, staging_u);
            mmrec::TensorRef v = embed(item_tower, tape, d.item_feat, bi, staging_i);
            mmrec::TensorRef logits = mmrec::matmul(tape, u, v, MMREC_TRANS_B);
            mmrec::TensorRef scaled = mmrec::scale(tape, logits, 1.0f / TEMPERATURE);
            mmrec::TensorRef loss = mmrec::loss_softmax_ce(tape, scaled, labels);
            epoch_loss += loss.item();
            tape.backward(loss);
            opt.step();
            tape.reset();
        }
        epoch_loss /= static_cast<double>(steps);
        score_all(user_tower, item_tower, d, scores);
        recall = recall_at_10(d, scores);
        if (epoch == 1) first_loss = epoch_loss;
        last_loss = epoch_loss;
        std::printf("epoch %2d/%d  loss %.4f  recall@10 %.4f\n", epoch, epochs, epoch_loss,
                    recall);
        std::fflush(stdout);
    }

    /* Save, reload into a fresh model, compare every score. */
    mmrec::checkpoint_save(m, opt, path);
    mmrec::Model m2;
    mmrec::Mlp user2 = m2.mlp("user_tower", cfg);
    mmrec::Mlp item2 = m2.mlp("item_tower", cfg);
    m2.load(path);
    std::vector<float> scores2;
    score_all(user_tower, item_tower, d, scores);
    score_all(user2, item2, d, scores2);
    const int match =
        std::memcmp(scores.data(), scores2.data(), scores.size() * sizeof(float)) == 0;
    std::printf("saved %s; reloaded model scores %s\n", path, match ? "match" : "DIFFER");
    std::printf("RESULT quickstart loss_first=%.4f loss_last=%.4f recall@10=%.4f reload_match=%d\n",
                first_loss, last_loss, recall, match);
    return match && last_loss < first_loss ? 0 : 1;
}

} // namespace

int main(int argc, char **argv) {
    /* Results go to stdout, progress to stderr: line-buffer stdout so the
     * two keep their order when both go to one file. */
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    int epochs = argc > 1 ? std::atoi(argv[1]) : 8;
    const char *path = argc > 2 ? argv[2] : "quickstart.mmrc";
    if (epochs < 1) epochs = 1;
    try {
        return run(epochs, path);
    } catch (const mmrec::Error &e) {
        std::fprintf(stderr, "quickstart-cpp: %s (%s)\n", e.name(), e.what());
        return 1;
    }
}
