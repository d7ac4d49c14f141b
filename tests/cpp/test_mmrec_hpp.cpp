/* The C++ layer, mmrec/mmrec.hpp: every RAII owner destroys its handle
 * (a counting allocator installed with mmrec_set_allocator sees every
 * library allocation freed at scope exit; the sanitizer build also runs
 * it), moves hand the handle over and leave the source empty, a failed
 * call throws mmrec::Error with the status, its name and the library's
 * message, a short training loop lowers its loss, and views see the
 * library's memory (writes through a view are what the C calls read).
 *
 * Usage: test_mmrec_hpp [scratch dir]   (default: the current directory)
 * Prints one line per failed check and a summary; exits 1 on any failure. */
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <unistd.h>

#include <mmrec/mmrec.hpp>

namespace {

int failures = 0;
int checks = 0;

#define EXPECT(cond)                                                                        \
    do {                                                                                    \
        checks++;                                                                           \
        if (!(cond)) {                                                                      \
            failures++;                                                                     \
            std::fprintf(stderr, "%s:%d: %s: expected %s\n", __FILE__, __LINE__, __func__, \
                         #cond);                                                            \
        }                                                                                   \
    } while (0)

/* Runs `call`, expecting mmrec::Error with `status` and a message
 * containing `needle`. */
#define EXPECT_THROWS(call, status_, needle)                                                 \
    do {                                                                                     \
        checks++;                                                                            \
        bool thrown_ = false;                                                                \
        try {                                                                                \
            (void)(call);                                                                    \
        } catch (const mmrec::Error &e_) {                                                   \
            thrown_ = true;                                                                  \
            if (e_.status() != (status_) || std::strstr(e_.what(), (needle)) == nullptr ||   \
                std::strcmp(e_.name(), #status_) != 0) {                                     \
                failures++;                                                                  \
                std::fprintf(stderr, "%s:%d: %s: %s threw %s \"%s\", expected %s naming %s\n", \
                             __FILE__, __LINE__, __func__, #call, e_.name(), e_.what(),      \
                             #status_, needle);                                              \
            }                                                                                \
        }                                                                                    \
        if (!thrown_) {                                                                      \
            failures++;                                                                      \
            std::fprintf(stderr, "%s:%d: %s: %s did not throw\n", __FILE__, __LINE__,        \
                         __func__, #call);                                                   \
        }                                                                                    \
    } while (0)

/* ---- counting allocator ---- */

long live_allocations = 0;

void *count_alloc(void *, size_t size) {
    void *p = nullptr;
    if (posix_memalign(&p, 64, size ? size : 64) != 0) return nullptr;
    live_allocations++;
    return p;
}

void count_release(void *, void *p) {
    if (p) live_allocations--;
    std::free(p);
}

std::string scratch_dir = ".";

std::string scratch(const char *name) {
    return scratch_dir + "/cpp_" + std::to_string(static_cast<long>(getpid())) + "_" + name;
}

bool file_exists(const std::string &path) { return access(path.c_str(), F_OK) == 0; }

/* ---- the owners are move-only with a noexcept move ---- */

template <class T> constexpr bool move_only() {
    return !std::is_copy_constructible<T>::value && !std::is_copy_assignable<T>::value &&
           std::is_nothrow_move_constructible<T>::value &&
           std::is_nothrow_move_assignable<T>::value && std::is_nothrow_destructible<T>::value;
}
static_assert(move_only<mmrec::Tensor>(), "Tensor");
static_assert(move_only<mmrec::Tape>(), "Tape");
static_assert(move_only<mmrec::Model>(), "Model");
static_assert(move_only<mmrec::Optimizer>(), "Optimizer");
static_assert(move_only<mmrec::Rng>(), "Rng");
static_assert(move_only<mmrec::Cache>(), "Cache");
static_assert(move_only<mmrec::CacheWriter>(), "CacheWriter");
static_assert(move_only<mmrec::Interactions>(), "Interactions");
static_assert(move_only<mmrec::Sequences>(), "Sequences");
static_assert(move_only<mmrec::ItemSampler>(), "ItemSampler");
static_assert(move_only<mmrec::Graph>(), "Graph");
static_assert(move_only<mmrec::Index>(), "Index");
static_assert(std::is_trivially_copyable<mmrec::TensorRef>::value, "TensorRef is a reference");

/* ---- tests ---- */

/* Every owner frees what its C create allocated when it goes out of scope. */
void test_raii_destroys_every_handle() {
    const std::string cache_path = scratch("raii.mmfc");
    const std::string index_path = scratch("raii.mmix");
    {
        mmrec::Rng rng(3);
        mmrec::Tensor t = mmrec::Tensor::zeros({4, 3});
        std::vector<float> buffer(6, 1.0f);
        mmrec::Tensor w = mmrec::Tensor::wrap(buffer, {2, 3});
        mmrec::Tape tape;
        mmrec::Model model;
        int64_t sizes[] = {3, 4, 2};
        auto mc = mmrec::config<mmrec_mlp_config>();
        mc.sizes = sizes;
        mc.num_sizes = 3;
        mmrec::Mlp mlp = model.mlp("mlp", mc);
        mmrec::Optimizer opt(model, mmrec::config<mmrec_optimizer_config>());
        (void)mlp.forward(tape, t);
        std::vector<int64_t> users = {0, 0, 1, 2}, items = {0, 1, 1, 2};
        mmrec::Interactions x(users, items);
        mmrec::Graph g = mmrec::Graph::bipartite(users, items, 3, 3);
        auto sc = mmrec::config<mmrec_item_sampler_config>();
        sc.num_items = 5;
        mmrec::ItemSampler sampler(sc);
        std::vector<float> vectors(5 * 3);
        rng.normal(vectors, 0, 1);
        std::vector<int64_t> ids = {10, 11, 12, 13, 14};
        mmrec::Index index(vectors, ids, 5, 3);
        index.save(index_path.c_str());
        mmrec::Index reopened = mmrec::Index::open(index_path.c_str());
        {
            mmrec::CacheWriter writer(cache_path.c_str(), ids);
            writer.add("emb", MMREC_CACHE_F32, vectors, 3);
            writer.commit();
        }
        mmrec::Cache cache(cache_path.c_str());
        EXPECT(cache.num_items() == 5);
        EXPECT(cache.field_shape("emb") == std::make_pair(int64_t(1), int64_t(3)));
        std::vector<int64_t> some = {12, 10};
        std::vector<float> rows(2 * 3);
        cache.gather_into("emb", some, rows);
        EXPECT(rows[0] == vectors[2 * 3] && rows[5] == vectors[2]);
        EXPECT(live_allocations > 0);
    }
    EXPECT(live_allocations == 0);
    std::remove(cache_path.c_str());
    std::remove(index_path.c_str());

    /* release() hands the handle over: the C destroy frees it. */
    mmrec_tape *raw;
    {
        mmrec::Tape tape;
        raw = tape.release();
        EXPECT(tape.get() == nullptr);
    }
    EXPECT(live_allocations > 0);
    mmrec_tape_destroy(raw);
    EXPECT(live_allocations == 0);
}

/* A writer destroyed before commit() (by an exception, say) leaves no file. */
void test_cache_writer_uncommitted_leaves_nothing() {
    const std::string path = scratch("aborted.mmfc");
    std::vector<int64_t> ids = {1, 2};
    std::vector<float> data = {1, 2, 3, 4};
    try {
        mmrec::CacheWriter writer(path.c_str(), ids);
        writer.add("f", MMREC_CACHE_F32, data, 2);
        writer.add("f", MMREC_CACHE_F32, data, 2); /* the same field again */
        EXPECT(false);
    } catch (const mmrec::Error &e) {
        EXPECT(e.status() == MMREC_ESTATE);
    }
    EXPECT(!file_exists(path));
    EXPECT(live_allocations == 0);
}

/* A move hands the handle over; the source is empty; move-assignment
 * destroys what the target held. */
void test_move_transfers_ownership() {
    mmrec::Tape a;
    mmrec_tape *handle = a.get();
    EXPECT(handle != nullptr);
    mmrec::Tape b = std::move(a);
    EXPECT(a.get() == nullptr);
    EXPECT(!a);
    EXPECT(b.get() == handle);
    b.tensor({2, 2}); /* the moved-to tape works */

    mmrec::Model m1, m2;
    mmrec_model *h2 = m2.get();
    const long before = live_allocations;
    m1 = std::move(m2); /* m1's model is destroyed */
    EXPECT(live_allocations < before);
    EXPECT(m1.get() == h2);
    EXPECT(m2.get() == nullptr);
    m1 = std::move(m1); /* self-move keeps the handle */
    EXPECT(m1.get() == h2);

    mmrec::Tensor t = mmrec::Tensor::zeros({3});
    mmrec::Tensor u;
    EXPECT(!u);
    u = std::move(t);
    EXPECT(u.numel() == 3);
    EXPECT(!t);

    mmrec::Index later; /* an empty owner, moved into */
    EXPECT(!later);
    std::vector<float> vec = {1, 2};
    later = mmrec::Index(vec, mmrec::Span<const int64_t>(), 1, 2);
    EXPECT(later && later.info().num_items == 1);

    std::vector<mmrec::Rng> rngs; /* move-only types live in containers */
    for (int i = 0; i < 5; i++) rngs.emplace_back(static_cast<uint64_t>(i));
    mmrec::Rng same(2);
    EXPECT(rngs[2].next_u64() == same.next_u64());
    mmrec::Rng zero(0); /* a seed, not a null handle */
    mmrec::Rng zero_too(uint64_t(0));
    EXPECT(zero.get() != nullptr && zero.next_u64() == zero_too.next_u64());
}

/* A failed call throws mmrec::Error carrying the status, its name and
 * mmrec_last_error(); the call did nothing. */
void test_errors_carry_status_and_message() {
    mmrec::Tape tape;
    std::vector<float> a(6, 1.0f), b(6, 2.0f);
    mmrec::TensorRef x = tape.wrap_readonly(a, {2, 3});
    mmrec::TensorRef y = tape.wrap_readonly(b, {2, 3});
    const std::size_t used = tape.memory().high_water;
    /* [2,3] x [2,3] needs a transpose: a shape error from mmrec_matmul. */
    EXPECT_THROWS(mmrec::matmul(tape, x, y), MMREC_ESHAPE, "mmrec_matmul");
    try {
        mmrec::matmul(tape, x, y);
    } catch (const mmrec::Error &e) {
        EXPECT(std::string(e.what()) == mmrec_last_error());
        EXPECT(std::strcmp(e.name(), "MMREC_ESHAPE") == 0);
        const std::runtime_error &base = e; /* catchable as std::runtime_error */
        EXPECT(base.what() == e.what());
    }
    EXPECT(tape.memory().high_water == used);
    EXPECT(mmrec::matmul(tape, x, y, MMREC_TRANS_B).shape() == mmrec::Shape({2, 2}));

    mmrec::Model model;
    EXPECT_THROWS(model.param("nope"), MMREC_ENOTFOUND, "nope");
    EXPECT_THROWS(mmrec::Rng(1).below(0), MMREC_EINVAL, "bound");
    EXPECT_THROWS(mmrec::Cache(scratch("missing.mmfc").c_str()), MMREC_EIO, "missing.mmfc");
    EXPECT_THROWS(mmrec::check(MMREC_ENOMEM), MMREC_ENOMEM, "");
    mmrec::check(MMREC_OK); /* no throw */

    /* Checks made before the C call name the method and the argument. */
    std::vector<float> five(5);
    EXPECT_THROWS(tape.wrap(mmrec::Span<float>(five), {2, 3}), MMREC_EINVAL,
                  "mmrec::Tape::wrap: data has 5");
    EXPECT_THROWS(mmrec::Shape({1, 2, 3, 4, 5}), MMREC_EINVAL, "mmrec::Shape");
    std::vector<int64_t> three = {0, 1, 2}, two = {0, 1};
    EXPECT_THROWS(mmrec::Interactions(three, two), MMREC_EINVAL, "users has 3");

    /* A stale tape tensor throws MMREC_ESTALE. */
    mmrec::TensorRef z = tape.tensor({1});
    tape.reset();
    EXPECT_THROWS(z.item(), MMREC_ESTALE, "");
    /* A read-only wrap refuses a writable view. */
    mmrec::TensorRef ro = tape.wrap_readonly(a, {6});
    EXPECT_THROWS(ro.view(), MMREC_ESTATE, "");
    EXPECT(ro.cview()[5] == 1.0f);
}

/* A two-layer MLP fits a separable toy task: the loss falls. */
void test_training_loop_lowers_loss() {
    constexpr int B = 64, D = 8;
    std::vector<float> xd(B * D), yd(B);
    mmrec::Rng rng(5);
    rng.normal(xd, 0, 1);
    for (int b = 0; b < B; b++) yd[b] = xd[b * D] + 0.5f * xd[b * D + 1] > 0 ? 1.0f : 0.0f;

    mmrec::Model model;
    model.seed(2);
    int64_t sizes[] = {D, 16, 1};
    auto mc = mmrec::config<mmrec_mlp_config>();
    mc.sizes = sizes;
    mc.num_sizes = 3;
    mmrec::Mlp mlp = model.mlp("mlp", mc);
    auto oc = mmrec::config<mmrec_optimizer_config>();
    oc.type = MMREC_OPT_ADAMW;
    oc.lr = 1e-2f;
    mmrec::Optimizer opt(model, oc);
    mmrec::Tape tape;
    float first = 0, last = 0;
    for (int step = 0; step < 100; step++) {
        mmrec::TensorRef x = tape.wrap_readonly(xd, {B, D});
        mmrec::TensorRef y = tape.wrap_readonly(yd, {B, 1});
        mmrec::TensorRef loss = mmrec::loss_bce_logits(tape, mlp.forward(tape, x), y);
        (step == 0 ? first : last) = loss.item();
        tape.backward(loss);
        opt.step();
        tape.reset();
    }
    EXPECT(opt.step_count() == 100);
    EXPECT(std::isfinite(first) && std::isfinite(last));
    EXPECT(last < 0.5f * first);
}

/* Views point at the library's memory: writes through them are what the C
 * calls read, and the library's writes show through them. */
void test_views_see_library_memory() {
    /* A created tensor: view() writes, to_vector() reads them back. */
    mmrec::Tensor t = mmrec::Tensor::zeros({2, 3});
    mmrec::TensorView v = t.view();
    EXPECT(v.size() == 6 && v.shape == mmrec::Shape({2, 3}));
    for (std::size_t i = 0; i < v.size(); i++) v[i] = static_cast<float>(i);
    v(1, 2) = 42;
    std::vector<float> copy = t.to_vector();
    EXPECT(copy[2] == 2 && copy[5] == 42);
    std::vector<float> src = {9, 8, 7, 6, 5, 4};
    t.copy_from(src);
    EXPECT(v[0] == 9 && v(1, 0) == 6);
    float total = 0;
    for (float f : t.cview()) total += f;
    EXPECT(total == 39);

    /* A wrap views the caller's buffer itself. */
    std::vector<float> buffer(4, 0.0f);
    mmrec::Tensor w = mmrec::Tensor::wrap(buffer, {4});
    EXPECT(w.view().data == buffer.data());
    w.copy_from(std::vector<float>{1, 2, 3, 4});
    EXPECT(buffer[3] == 4);
    std::vector<float> other = {5, 6, 7, 8};
    w.set_data(other);
    EXPECT(w.cview().data == other.data());
    EXPECT(w.to_vector() == other);

    /* A parameter: writes through its view change the forward pass; after
     * backward its gradient view is filled, and the model's flat export
     * is the same memory's values. */
    mmrec::Model model;
    auto lc = mmrec::config<mmrec_linear_config>();
    lc.in_dim = 2;
    lc.out_dim = 1;
    mmrec::Linear lin = model.linear("lin", lc);
    mmrec::TensorRef weight = model.param("lin.weight");
    mmrec::TensorView wv = weight.view();
    EXPECT(wv.size() == 2);
    wv[0] = 2;
    wv[1] = -1;
    if (model.num_params() > 1) {
        mmrec::TensorRef bias = model.param_at(1).tensor;
        for (float &f : bias.view()) f = 0.5f;
    }
    mmrec::Tape tape;
    std::vector<float> xin = {3, 1};
    mmrec::TensorRef x = tape.wrap_readonly(xin, {1, 2});
    mmrec::TensorRef out = lin.forward(tape, x);
    const float bias_value = model.num_params() > 1 ? 0.5f : 0.0f;
    EXPECT(out.cview()[0] == 2 * 3 - 1 * 1 + bias_value);
    mmrec::ConstTensorView g0 = weight.grad(); /* none yet, or zeros */
    EXPECT(g0.empty() || (g0[0] == 0 && g0[1] == 0));
    tape.backward(mmrec::sum(tape, out, 1));
    mmrec::ConstTensorView g = weight.grad();
    EXPECT(!g.empty() && g[0] == 3 && g[1] == 1);
    std::vector<float> flat = model.export_params();
    EXPECT(flat.size() == model.param_count().trainable && flat[0] == 2 && flat[1] == -1);
    std::vector<float> grads = model.export_grads();
    EXPECT(grads[0] == 3 && grads[1] == 1);

    /* A writable tape wrap is the caller's buffer. */
    std::vector<float> staged = {1, 2};
    mmrec::TensorRef sw = tape.wrap(staged, {2});
    EXPECT(sw.view().data == staged.data());
    staged[1] = 7;
    EXPECT(sw.cview()[1] == 7);

    /* A tape tensor: the library's output is read in place. */
    mmrec::TensorRef twice = mmrec::scale(tape, x, 2);
    mmrec::ConstTensorView tv = twice.cview();
    EXPECT(tv.shape.ndim() == 2 && tv[0] == 6 && tv[1] == 2);

    /* Span over a std::array and a C array. */
    std::array<float, 3> arr = {1, 2, 3};
    mmrec::Span<const float> s1 = arr;
    float carr[2] = {4, 5};
    mmrec::Span<float> s2 = carr;
    EXPECT(s1.size() == 3 && s1[2] == 3 && s2.size() == 2 && s2.end()[-1] == 5);
}

/* The other handles' methods reach their C calls. */
void test_data_index_graph_methods() {
    std::vector<int64_t> users = {0, 0, 1, 2}, items = {0, 1, 1, 2};
    mmrec::Interactions x(users, items);
    mmrec::DataInfo info = x.info();
    EXPECT(info.num_users == 3 && info.num_items == 3 && info.count == 4);
    mmrec::Pairs p = x.pairs();
    EXPECT(p.users.size() == 4 && p.items[3] == 2);

    mmrec::Graph g = mmrec::Graph::bipartite(users, items, 3, 3);
    EXPECT(g.info().num_nodes == 6 && g.info().num_users == 3);
    mmrec::Tape tape;
    mmrec::TensorRef ego = tape.tensor({6, 2});
    for (float &f : ego.view()) f = 1;
    std::vector<float> weights = {0.5f, 0.5f};
    EXPECT(g.lightgcn(tape, ego, weights).shape() == mmrec::Shape({6, 2}));

    std::vector<float> vectors = {1, 0, 0, 1, 1, 1};
    mmrec::Index index(vectors, mmrec::Span<const int64_t>(), 3, 2);
    EXPECT(index.info().num_items == 3 && index.info().dim == 2);
    std::vector<float> q = {1, 0.1f};
    std::vector<int64_t> ids(2);
    std::vector<float> scores(2);
    std::vector<std::size_t> counts(1);
    index.search(q, 2, 2, ids, scores, counts);
    EXPECT(ids[0] == 2 && ids[1] == 0 && counts[0] == 2);
    EXPECT_THROWS(index.search(q, 2, 3, ids, scores), MMREC_EINVAL, "ids_out");

    mmrec::TensorRef item_rows = tape.tensor({3, 2});
    for (float &f : item_rows.view()) f = 1;
    mmrec::ConstTensorView agg = g.aggregate_users(tape, item_rows).cview();
    EXPECT(agg.shape == mmrec::Shape({3, 2}) && agg[0] > 0);

    std::vector<float> s = {0.9f, 0.1f, 0.8f, 0.3f}, l = {1, 0, 1, 0};
    EXPECT(mmrec::metric_auc(s, l) == 1.0);
    EXPECT_THROWS(mmrec::metric_auc(s, std::vector<float>{1, 1, 1, 1}), MMREC_EINVAL, "");

    mmrec::Model model;
    auto ac = mmrec::config<mmrec_mha_config>();
    ac.dim = 4;
    ac.num_heads = 2;
    mmrec::Mha mha = model.mha("mha", ac);
    mmrec::TensorRef seq = tape.tensor({1, 3, 4});
    for (float &f : seq.view()) f = 0.25f;
    mmrec::Attention att = mha.forward_probs(tape, seq, mmrec::TensorRef(),
                                             MMREC_ATTN_PROBS_AVERAGE);
    EXPECT(att.probs.shape() == mmrec::Shape({1, 3, 3}));
    float row = 0;
    for (int k = 0; k < 3; k++) row += att.probs.cview()[k];
    EXPECT(std::fabs(row - 1) < 1e-5f);

    auto sc = mmrec::config<mmrec_item_sampler_config>();
    sc.num_items = 4;
    mmrec::ItemSampler sampler(sc);
    std::vector<int64_t> drawn(8);
    sampler.draw(drawn);
    bool in_range = true;
    for (int64_t id : drawn) in_range = in_range && id >= 0 && id < 4;
    EXPECT(in_range);
    std::vector<float> prob(8);
    sampler.probability(drawn, prob);
    EXPECT(prob[0] == 0.25f);
}

} // namespace

int main(int argc, char **argv) {
    if (argc > 1) scratch_dir = argv[1];
    mmrec_allocator counting = {sizeof counting, count_alloc, count_release, nullptr};
    mmrec::check(mmrec_set_allocator(&counting));
    test_raii_destroys_every_handle();
    test_cache_writer_uncommitted_leaves_nothing();
    test_move_transfers_ownership();
    test_errors_carry_status_and_message();
    test_training_loop_lowers_loss();
    test_views_see_library_memory();
    test_data_index_graph_methods();
    EXPECT(live_allocations == 0); /* nothing leaked by any test */
    mmrec::check(mmrec_set_allocator(nullptr));
    std::printf("test_mmrec_hpp: %d checks, %d failures\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
