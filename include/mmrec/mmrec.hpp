/* libmmrec for C++17: a header-only layer over the C API of mmrec.h.
 *
 * What it adds, and nothing more (every C function stays reachable through
 * the handles' get()):
 *   - RAII owners, move-only, for every handle the caller owns: Tensor,
 *     Tape, Model, Optimizer, Rng, Cache, CacheWriter, Interactions,
 *     Sequences, ItemSampler, Graph, Index. Each destructor calls the C
 *     destroy (or close) function; get() borrows the C handle, release()
 *     hands it over to the caller (who then destroys it with the C call).
 *     A moved-from owner holds nothing (get() == nullptr) and may only be
 *     destroyed or assigned to.
 *   - Non-owning references for what the library owns: TensorRef (a tape
 *     tensor, valid until the tape's reset; a parameter, valid while its
 *     model lives) and the module classes (Linear, Mlp, ..., owned by their
 *     model).
 *   - mmrec::Error, thrown by every wrapper whose C call fails: status()
 *     is the mmrec_status, name() its name ("MMREC_ESHAPE") and what() the
 *     sentence of mmrec_last_error(). check(status) throws it.
 *   - Views of tensor memory without copies: Span<T> (a minimal std::span)
 *     and TensorView (data pointer + Shape).
 *   - init(cfg) overloads and config<T>() for every config struct.
 *   - Free functions for the ops and losses of ops.h and losses.h, taking
 *     the tape first as the C calls do.
 *
 * A training step:
 *
 *     auto mc = mmrec::config<mmrec_mlp_config>();
 *     int64_t sizes[] = {16, 32, 1};
 *     mc.sizes = sizes;  mc.num_sizes = 3;
 *     mmrec::Model model;
 *     mmrec::Mlp mlp = model.mlp("mlp", mc);
 *     auto oc = mmrec::config<mmrec_optimizer_config>();
 *     mmrec::Optimizer opt(model, oc);
 *     mmrec::Tape tape;
 *     mmrec::TensorRef x = tape.wrap_readonly(x_data, {64, 16});  // no copy
 *     mmrec::TensorRef y = tape.wrap_readonly(y_data, {64, 1});
 *     mmrec::TensorRef loss = mmrec::loss_bce_logits(tape, mlp.forward(tape, x), y);
 *     float value = loss.item();
 *     tape.backward(loss);
 *     opt.step();
 *     tape.reset();   // x, y and loss are stale from here on
 *
 * Errors: a method documented "throws mmrec::Error" throws when the C call
 * it wraps returns a status other than MMREC_OK; the call then did nothing
 * (the C API's rule). Checks made here before calling C (a span of the
 * wrong length) throw mmrec::Error with MMREC_EINVAL and a message naming
 * the method and the argument. Destructors, get(), release() and reset()
 * never throw.
 *
 * Thread safety: as the C handle each class wraps (per-handle unless the C
 * header says more); the wrapper adds no state and no locking of its own.
 * Since 0.2. */
#ifndef MMREC_MMREC_HPP
#define MMREC_MMREC_HPP

#if !defined(__cplusplus) || __cplusplus < 201703L
#error "mmrec/mmrec.hpp needs C++17 (use mmrec/mmrec.h from C)"
#endif

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "mmrec/mmrec.h"

namespace mmrec {

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */

/* The exception every wrapper throws when a C call fails.
 * status() is the call's mmrec_status, name() its name ("MMREC_ESHAPE"),
 * what() the message of mmrec_last_error() taken right after the failed
 * call (one sentence naming the function, the argument, expected vs
 * actual). Callers branch on status(), never on the text.
 * Thread safety: an Error is a value; copies are independent. */
class Error : public std::runtime_error {
  public:
    /* Makes an error of `status` with the message `message` (copied). */
    Error(mmrec_status status, const std::string &message)
        : std::runtime_error(message), status_(status) {}

    /* The status of the failed call (never MMREC_OK). */
    mmrec_status status() const noexcept { return status_; }

    /* The status's name, e.g. "MMREC_ESHAPE"; static storage. */
    const char *name() const noexcept { return mmrec_status_name(status_); }

  private:
    mmrec_status status_;
};

/* Throws mmrec::Error(status, mmrec_last_error()) when status is not
 * MMREC_OK; does nothing otherwise. Call it right after the C call whose
 * status it is (the message is thread-local and overwritten by the next
 * failure). Throws mmrec::Error. Thread-safe. */
inline void check(mmrec_status status) {
    if (status != MMREC_OK) throw Error(status, mmrec_last_error());
}

namespace detail {
/* Throws the C++-side argument error of a wrapper: MMREC_EINVAL and
 * "<where>: <what>". */
[[noreturn]] inline void fail_arg(const char *where, const std::string &what) {
    throw Error(MMREC_EINVAL, std::string(where) + ": " + what);
}
} // namespace detail

/* ------------------------------------------------------------------------ */
/* Views                                                                    */
/* ------------------------------------------------------------------------ */

/* A minimal std::span: `size` elements of type T at `data`, not owned.
 * Made from a pointer and a length, a C array, a std::array or a
 * std::vector (whose storage must outlive the span); a Span<T> converts to
 * a Span<const T>. Thread safety: as the memory it views. */
template <class T> class Span {
  public:
    /* An empty span (data() == nullptr, size() == 0). */
    constexpr Span() noexcept = default;

    /* The `size` elements at `data`. */
    constexpr Span(T *data, std::size_t size) noexcept : data_(data), size_(size) {}

    /* The elements of a C array. */
    template <std::size_t N> constexpr Span(T (&array)[N]) noexcept : data_(array), size_(N) {}

    /* The elements of a std::vector (of T, or of the non-const T of a
     * Span<const T>); valid until the vector reallocates. */
    template <class U, class A,
              class = std::enable_if_t<std::is_convertible<U (*)[], T (*)[]>::value>>
    Span(std::vector<U, A> &vector) noexcept : data_(vector.data()), size_(vector.size()) {}

    /* The elements of a const std::vector, for a Span<const T>. */
    template <class U, class A,
              class = std::enable_if_t<std::is_convertible<const U (*)[], T (*)[]>::value>>
    Span(const std::vector<U, A> &vector) noexcept : data_(vector.data()), size_(vector.size()) {}

    /* The elements of a std::array. */
    template <class U, std::size_t N,
              class = std::enable_if_t<std::is_convertible<U (*)[], T (*)[]>::value>>
    constexpr Span(std::array<U, N> &array) noexcept : data_(array.data()), size_(N) {}

    /* The elements of a const std::array, for a Span<const T>. */
    template <class U, std::size_t N,
              class = std::enable_if_t<std::is_convertible<const U (*)[], T (*)[]>::value>>
    constexpr Span(const std::array<U, N> &array) noexcept : data_(array.data()), size_(N) {}

    /* A Span<T> viewed as a Span<const T>. */
    template <class U, class = std::enable_if_t<std::is_convertible<U (*)[], T (*)[]>::value>>
    constexpr Span(const Span<U> &other) noexcept : data_(other.data()), size_(other.size()) {}

    /* The first element's address (nullptr for an empty default span). */
    constexpr T *data() const noexcept { return data_; }

    /* The number of elements. */
    constexpr std::size_t size() const noexcept { return size_; }

    /* Whether size() is 0. */
    constexpr bool empty() const noexcept { return size_ == 0; }

    /* Element i, unchecked (i < size()). */
    constexpr T &operator[](std::size_t i) const noexcept { return data_[i]; }

    /* Iterator to the first element. */
    constexpr T *begin() const noexcept { return data_; }

    /* Iterator past the last element. */
    constexpr T *end() const noexcept { return data_ + size_; }

  private:
    T *data_ = nullptr;
    std::size_t size_ = 0;
};

/* A tensor shape: 1 .. MMREC_MAX_DIMS sizes, outermost first, held by
 * value (no allocation). Written as a braced list: {batch, dim}.
 * Thread safety: a value. */
class Shape {
  public:
    /* The empty shape (ndim() == 0), e.g. of an empty Tensor. */
    Shape() noexcept = default;

    /* The given sizes, outermost first.
     * Throws mmrec::Error (MMREC_EINVAL) for more than MMREC_MAX_DIMS. */
    Shape(std::initializer_list<int64_t> dims) { assign(dims.begin(), dims.size()); }

    /* `ndim` sizes read from `dims`, outermost first.
     * Throws mmrec::Error (MMREC_EINVAL) for ndim < 0 or > MMREC_MAX_DIMS. */
    Shape(const int64_t *dims, int ndim) {
        if (ndim < 0) detail::fail_arg("mmrec::Shape", "ndim is negative");
        assign(dims, static_cast<std::size_t>(ndim));
    }

    /* The rank. */
    int ndim() const noexcept { return ndim_; }

    /* The sizes, ndim() of them (for the C calls' shape arguments). */
    const int64_t *data() const noexcept { return dims_.data(); }

    /* Size of dimension i, unchecked (0 <= i < ndim()). */
    int64_t operator[](int i) const noexcept { return dims_[static_cast<std::size_t>(i)]; }

    /* The element count: the product of the sizes (0 for the empty shape). */
    std::size_t numel() const noexcept {
        if (ndim_ == 0) return 0;
        std::size_t n = 1;
        for (int i = 0; i < ndim_; i++) n *= static_cast<std::size_t>(dims_[static_cast<std::size_t>(i)]);
        return n;
    }

    /* Iterator to the outermost size. */
    const int64_t *begin() const noexcept { return dims_.data(); }

    /* Iterator past the innermost size. */
    const int64_t *end() const noexcept { return dims_.data() + ndim_; }

    /* Same rank and sizes. */
    friend bool operator==(const Shape &a, const Shape &b) noexcept {
        if (a.ndim_ != b.ndim_) return false;
        for (int i = 0; i < a.ndim_; i++)
            if (a[i] != b[i]) return false;
        return true;
    }

    /* Not operator==. */
    friend bool operator!=(const Shape &a, const Shape &b) noexcept { return !(a == b); }

  private:
    void assign(const int64_t *dims, std::size_t n) {
        if (n > static_cast<std::size_t>(MMREC_MAX_DIMS))
            detail::fail_arg("mmrec::Shape", std::to_string(n) + " dims, at most " +
                                                 std::to_string(MMREC_MAX_DIMS));
        for (std::size_t i = 0; i < n; i++) dims_[i] = dims[i];
        ndim_ = static_cast<int>(n);
    }

    int ndim_ = 0;
    std::array<int64_t, MMREC_MAX_DIMS> dims_{};
};

/* A view of a tensor's memory: `data` (row-major, numel floats, not owned)
 * and its `shape`. It sees the library's memory, so writes through a
 * TensorView change the tensor and later reads see the library's updates.
 * Valid as long as the pointer the C API lent: a tape tensor until the
 * tape's reset, a parameter while its model lives, a wrap while the
 * caller's buffer does. T is float (TensorView) or const float
 * (ConstTensorView). Thread safety: as the tensor it views. */
template <class T> struct BasicTensorView {
    T *data = nullptr; /* first element, or nullptr for an empty view */
    Shape shape;       /* the tensor's shape */

    /* The element count, shape.numel(). */
    std::size_t size() const noexcept { return shape.numel(); }

    /* Whether the view has no data (a tensor without a gradient, say). */
    bool empty() const noexcept { return data == nullptr; }

    /* Element i of the flat row-major data, unchecked (i < size()). */
    T &operator[](std::size_t i) const noexcept { return data[i]; }

    /* Element (row, col) of a 2-D tensor, unchecked. */
    T &operator()(int64_t row, int64_t col) const noexcept {
        return data[static_cast<std::size_t>(row * shape[1] + col)];
    }

    /* Iterator to the first element. */
    T *begin() const noexcept { return data; }

    /* Iterator past the last element. */
    T *end() const noexcept { return data + size(); }

    /* The flat data as a span. */
    Span<T> span() const noexcept { return Span<T>(data, data ? size() : 0); }
};

/* A writable view of a tensor's memory. */
using TensorView = BasicTensorView<float>;
/* A read-only view of a tensor's memory. */
using ConstTensorView = BasicTensorView<const float>;

/* ------------------------------------------------------------------------ */
/* Tensors                                                                  */
/* ------------------------------------------------------------------------ */

namespace detail {
/* The calls every tensor handle shares, for TensorRef and Tensor (CRTP:
 * D has get()). */
template <class D> class TensorMethods {
  public:
    /* The rank and sizes. Throws mmrec::Error (MMREC_EINVAL for an empty
     * handle, MMREC_ESTALE after the tape's reset). */
    Shape shape() const {
        int ndim = 0;
        int64_t dims[MMREC_MAX_DIMS];
        check(mmrec_tensor_shape(handle(), &ndim, dims));
        return Shape(dims, ndim);
    }

    /* The element count. Throws mmrec::Error (as shape()). */
    std::size_t numel() const {
        std::size_t n = 0;
        check(mmrec_tensor_numel(handle(), &n));
        return n;
    }

    /* A writable view of the data (mmrec_tensor_data).
     * Throws mmrec::Error (MMREC_ESTATE for a read-only wrap: use cview();
     * MMREC_ESTALE; MMREC_EINVAL). */
    TensorView view() const {
        float *data = nullptr;
        check(mmrec_tensor_data(handle(), &data));
        return TensorView{data, shape()};
    }

    /* A read-only view of the data, for any tensor (mmrec_tensor_data_const).
     * Throws mmrec::Error (MMREC_ESTALE, MMREC_EINVAL). */
    ConstTensorView cview() const {
        const float *data = nullptr;
        check(mmrec_tensor_data_const(handle(), &data));
        return ConstTensorView{data, shape()};
    }

    /* A read-only view of the gradient backward accumulated
     * (mmrec_tensor_grad); empty() when none was computed.
     * Throws mmrec::Error (MMREC_ESTALE, MMREC_EINVAL). */
    ConstTensorView grad() const {
        const float *data = nullptr;
        check(mmrec_tensor_grad(handle(), &data));
        return ConstTensorView{data, shape()};
    }

    /* A copy of the elements, row-major. Throws mmrec::Error (as shape()). */
    std::vector<float> to_vector() const {
        std::vector<float> values(numel());
        check(mmrec_tensor_copy_to(handle(), values.data(), values.size()));
        return values;
    }

    /* The one element of a 1-element tensor (a loss, say).
     * Throws mmrec::Error (MMREC_EINVAL when numel is not 1; as shape()). */
    float item() const {
        float value = 0;
        check(mmrec_tensor_copy_to(handle(), &value, 1));
        return value;
    }

    /* Copies the elements into `dst`, whose size must be numel.
     * Throws mmrec::Error (MMREC_EINVAL for another size; as shape()). */
    void copy_to(Span<float> dst) const {
        check(mmrec_tensor_copy_to(handle(), dst.data(), dst.size()));
    }

    /* Overwrites the elements with `src`, whose size must be numel.
     * Throws mmrec::Error (MMREC_EINVAL for another size, MMREC_ESTATE for a
     * read-only wrap; as shape()); nothing is written then. */
    void copy_from(Span<const float> src) const {
        check(mmrec_tensor_copy_from(handle(), src.data(), src.size()));
    }

  private:
    mmrec_tensor *handle() const noexcept { return static_cast<const D *>(this)->get(); }
};
} // namespace detail

/* A borrowed tensor: one the library owns (a tape's intermediate, valid
 * until mmrec_tape_reset; a model's parameter, valid while the model
 * lives) or any tensor viewed without taking it over. Copyable; never
 * destroys anything. A default TensorRef is null, which the optional
 * tensor arguments (masks) read as "none".
 * Thread safety: as the tensor (per-handle). */
class TensorRef : public detail::TensorMethods<TensorRef> {
  public:
    /* The null reference. */
    TensorRef() noexcept = default;

    /* Refers to `tensor` (not taken over; may be nullptr). */
    explicit TensorRef(mmrec_tensor *tensor) noexcept : tensor_(tensor) {}

    /* The C handle; borrowed. */
    mmrec_tensor *get() const noexcept { return tensor_; }

    /* Whether it refers to a tensor. */
    explicit operator bool() const noexcept { return tensor_ != nullptr; }

  private:
    mmrec_tensor *tensor_ = nullptr;
};

namespace detail {
/* The owner every RAII class derives from: holds one T*, calls Destroy on
 * it at destruction (Destroy accepts nullptr, as every C destroy does),
 * deleted copy, noexcept move that leaves the source empty. */
template <class T, void (*Destroy)(T *)> class Owner {
  public:
    /* Holds nothing. */
    Owner() noexcept = default;

    /* Takes over `handle` (may be nullptr). */
    explicit Owner(T *handle) noexcept : handle_(handle) {}

    /* Calls the C destroy function on the handle. */
    ~Owner() { Destroy(handle_); }

    /* Not copyable: one owner per handle. */
    Owner(const Owner &) = delete;

    /* Not copyable: one owner per handle. */
    Owner &operator=(const Owner &) = delete;

    /* Takes the other's handle; the other holds nothing afterwards. */
    Owner(Owner &&other) noexcept : handle_(other.handle_) { other.handle_ = nullptr; }

    /* Destroys the held handle, then takes the other's. */
    Owner &operator=(Owner &&other) noexcept {
        if (this != &other) {
            Destroy(handle_);
            handle_ = other.handle_;
            other.handle_ = nullptr;
        }
        return *this;
    }

    /* The C handle; borrowed (nullptr when empty). */
    T *get() const noexcept { return handle_; }

    /* Gives the handle to the caller, who must destroy it with the C call;
     * this object then holds nothing. */
    T *release() noexcept {
        T *handle = handle_;
        handle_ = nullptr;
        return handle;
    }

    /* Destroys the held handle and takes over `handle` (default: nothing). */
    void reset(T *handle = nullptr) noexcept {
        if (handle == handle_) return;
        Destroy(handle_);
        handle_ = handle;
    }

    /* Whether a handle is held. */
    explicit operator bool() const noexcept { return handle_ != nullptr; }

  private:
    T *handle_ = nullptr;
};
} // namespace detail

/* A caller-owned tensor: library-allocated data (Tensor::zeros) or a wrap
 * of caller memory (Tensor::wrap, never copied, never freed by the
 * library). The destructor calls mmrec_tensor_destroy (a wrap loses its
 * header only). Tape tensors and parameters are not Tensors: their owner
 * frees them; use TensorRef. Converts to a TensorRef for the ops.
 * Thread safety: per-handle (mmrec_tensor). */
class Tensor : public detail::Owner<mmrec_tensor, &mmrec_tensor_destroy>,
               public detail::TensorMethods<Tensor> {
  public:
    using Owner::get;

    /* An empty owner. */
    Tensor() noexcept = default;

    /* Takes over a caller-owned C tensor (from mmrec_tensor_create or
     * mmrec_tensor_wrap). */
    explicit Tensor(mmrec_tensor *tensor) noexcept : Owner(tensor) {}

    /* A zero-filled tensor of `shape` (mmrec_tensor_create).
     * Throws mmrec::Error (MMREC_EINVAL for a bad shape, MMREC_ENOMEM). */
    static Tensor zeros(const Shape &shape) {
        mmrec_tensor *t = nullptr;
        check(mmrec_tensor_create(shape.ndim(), shape.data(), &t));
        return Tensor(t);
    }

    /* Wraps `data` (borrowed: it must outlive the tensor) as a tensor of
     * `shape` without copying (mmrec_tensor_wrap).
     *   flags (in) 0 or MMREC_TENSOR_READONLY.
     * Throws mmrec::Error (MMREC_EINVAL for a bad shape or flags; also when
     * data.size() is not shape.numel(), checked here; MMREC_ENOMEM). */
    static Tensor wrap(Span<float> data, const Shape &shape, uint32_t flags = 0) {
        if (data.size() != shape.numel())
            detail::fail_arg("mmrec::Tensor::wrap", "data has " + std::to_string(data.size()) +
                                                        " floats, shape needs " +
                                                        std::to_string(shape.numel()));
        mmrec_tensor *t = nullptr;
        check(mmrec_tensor_wrap(data.data(), shape.ndim(), shape.data(), flags, &t));
        return Tensor(t);
    }

    /* Wraps read-only memory: as wrap() with MMREC_TENSOR_READONLY (the
     * library never writes it; view() throws MMREC_ESTATE, cview() works).
     * Throws mmrec::Error (as wrap()). */
    static Tensor wrap_readonly(Span<const float> data, const Shape &shape) {
        return wrap(Span<float>(const_cast<float *>(data.data()), data.size()), shape,
                    MMREC_TENSOR_READONLY);
    }

    /* Re-points a wrap at another buffer of the same shape
     * (mmrec_tensor_set_data). Throws mmrec::Error (MMREC_EINVAL: not a
     * wrap; the span's size is not numel, checked here). */
    void set_data(Span<float> data) {
        if (data.size() != numel())
            detail::fail_arg("mmrec::Tensor::set_data",
                             "data has " + std::to_string(data.size()) + " floats, the tensor " +
                                 std::to_string(numel()));
        check(mmrec_tensor_set_data(get(), data.data()));
    }

    /* A borrowed reference, for the ops; valid while this Tensor lives. */
    TensorRef ref() const noexcept { return TensorRef(get()); }

    /* As ref(). */
    operator TensorRef() const noexcept { return ref(); }
};

/* ------------------------------------------------------------------------ */
/* Tape                                                                     */
/* ------------------------------------------------------------------------ */

/* Bytes reserved by a tape's arena and the most any step used. */
struct TapeMemory {
    std::size_t capacity;   /* bytes reserved */
    std::size_t high_water; /* most bytes used by one step */
};

/* A tape (tape.h): the arena and record of one step; one per thread.
 * Tensors it makes are TensorRefs owned by it, valid until reset(). The
 * destructor calls mmrec_tape_destroy (every tensor of the tape dies).
 * Thread safety: per-handle. */
class Tape : public detail::Owner<mmrec_tape, &mmrec_tape_destroy> {
  public:
    /* A new tape in `mode` (mmrec_tape_create, then mmrec_tape_set_mode).
     * Throws mmrec::Error (MMREC_ENOMEM, MMREC_EINVAL for a bad mode). */
    explicit Tape(mmrec_tape_mode mode = MMREC_TAPE_TRAIN) {
        mmrec_tape *t = nullptr;
        check(mmrec_tape_create(&t));
        reset(t);
        if (mode != MMREC_TAPE_TRAIN) set_mode(mode);
    }

    /* Takes over a C tape (nullptr: an empty owner). */
    explicit Tape(mmrec_tape *tape) noexcept : Owner(tape) {}

    /* Sets the mode (mmrec_tape_set_mode). Throws mmrec::Error
     * (MMREC_ESTATE when operations are recorded: reset() first). */
    void set_mode(mmrec_tape_mode mode) { check(mmrec_tape_set_mode(get(), mode)); }

    /* The current mode. Throws mmrec::Error (MMREC_EINVAL when empty). */
    mmrec_tape_mode mode() const {
        mmrec_tape_mode m = MMREC_TAPE_TRAIN;
        check(mmrec_tape_get_mode(get(), &m));
        return m;
    }

    /* Reseeds the dropout generator. Throws mmrec::Error. */
    void seed(uint64_t seed) { check(mmrec_tape_seed(get(), seed)); }

    /* Backward from a 1-element loss of this tape (mmrec_tape_backward):
     * gradients accumulate into the parameters. Throws mmrec::Error
     * (MMREC_EINVAL, MMREC_ESTALE, MMREC_ESTATE, MMREC_ENOMEM). */
    void backward(TensorRef loss) { check(mmrec_tape_backward(get(), loss.get())); }

    /* Backward seeded with the upstream gradient `d_out` of `out`
     * (mmrec_tape_backward_from). Throws mmrec::Error (MMREC_EINVAL also
     * when d_out.size() is not out's numel, checked here; MMREC_ENUMERIC;
     * as backward()). */
    void backward_from(TensorRef out, Span<const float> d_out) {
        if (d_out.size() != out.numel())
            detail::fail_arg("mmrec::Tape::backward_from",
                             "d_out has " + std::to_string(d_out.size()) + " floats, out " +
                                 std::to_string(out.numel()));
        check(mmrec_tape_backward_from(get(), out.get(), d_out.data()));
    }

    /* Forgets every tensor and record of the step in O(1), keeping the
     * memory (mmrec_tape_reset); TensorRefs of the step become stale
     * (using one throws MMREC_ESTALE). Never throws. */
    void reset() noexcept { mmrec_tape_reset(get()); }

    /* Takes over another C tape, destroying the held one (Owner::reset;
     * reset() without an argument rewinds the tape instead). */
    void reset(mmrec_tape *tape) noexcept { Owner::reset(tape); }

    /* The arena's capacity and high-water mark. Throws mmrec::Error. */
    TapeMemory memory() const {
        TapeMemory m{0, 0};
        check(mmrec_tape_memory(get(), &m.capacity, &m.high_water));
        return m;
    }

    /* A zero-filled tensor owned by the tape (mmrec_tape_tensor).
     *   flags (in) 0 or MMREC_TENSOR_REQUIRES_GRAD.
     * Throws mmrec::Error (MMREC_EINVAL, MMREC_ENOMEM). */
    TensorRef tensor(const Shape &shape, uint32_t flags = 0) {
        mmrec_tensor *t = nullptr;
        check(mmrec_tape_tensor(get(), shape.ndim(), shape.data(), flags, &t));
        return TensorRef(t);
    }

    /* Wraps caller memory for this step (mmrec_tape_wrap): no copy, the
     * header dies at reset, the data is borrowed.
     *   flags (in) MMREC_TENSOR_READONLY and/or MMREC_TENSOR_REQUIRES_GRAD.
     * Throws mmrec::Error (MMREC_EINVAL also when data.size() is not
     * shape.numel(), checked here; MMREC_ENOMEM). */
    TensorRef wrap(Span<float> data, const Shape &shape, uint32_t flags = 0) {
        if (data.size() != shape.numel())
            detail::fail_arg("mmrec::Tape::wrap", "data has " + std::to_string(data.size()) +
                                                      " floats, shape needs " +
                                                      std::to_string(shape.numel()));
        mmrec_tensor *t = nullptr;
        check(mmrec_tape_wrap(get(), data.data(), shape.ndim(), shape.data(), flags, &t));
        return TensorRef(t);
    }

    /* Wraps read-only caller memory for this step: as wrap() with
     * MMREC_TENSOR_READONLY added (the library never writes it; view()
     * throws MMREC_ESTATE, cview() works). A const buffer can only be
     * wrapped this way. Throws mmrec::Error (as wrap()). */
    TensorRef wrap_readonly(Span<const float> data, const Shape &shape, uint32_t flags = 0) {
        return wrap(Span<float>(const_cast<float *>(data.data()), data.size()), shape,
                    flags | MMREC_TENSOR_READONLY);
    }
};

/* ------------------------------------------------------------------------ */
/* Modules (owned by their model)                                           */
/* ------------------------------------------------------------------------ */

/* A module: borrowed from the model that created it, valid while the model
 * lives (copyable, never destroys anything). The typed classes below add
 * the forward calls of modules.h; a module of a system header (em3.h,
 * twotower.h, ...) is used through get() and its C functions.
 * Thread safety: as the C module (forward calls may share a module that is
 * not being trained, one tape per thread). */
class Module {
  public:
    /* The null module. */
    Module() noexcept = default;

    /* Refers to `module` (not taken over). */
    explicit Module(mmrec_module *module) noexcept : module_(module) {}

    /* The C handle; borrowed. */
    mmrec_module *get() const noexcept { return module_; }

    /* Whether it refers to a module. */
    explicit operator bool() const noexcept { return module_ != nullptr; }

  private:
    mmrec_module *module_ = nullptr;
};

/* A Linear layer (mmrec_linear_create), with LoRA. */
class Linear : public Module {
  public:
    using Module::Module;

    /* y = x W^T + b (mmrec_linear_forward); the output is owned by the tape.
     * Throws mmrec::Error (MMREC_ESHAPE, MMREC_ESTALE, MMREC_EINVAL, ...). */
    TensorRef forward(Tape &tape, TensorRef x) const {
        mmrec_tensor *out = nullptr;
        check(mmrec_linear_forward(get(), tape.get(), x.get(), &out));
        return TensorRef(out);
    }

    /* Attaches a LoRA adapter (mmrec_lora_attach). Throws mmrec::Error. */
    void lora_attach(const mmrec_lora_config &cfg) { check(mmrec_lora_attach(get(), &cfg)); }

    /* Folds the LoRA update into the weight (mmrec_lora_merge).
     * Throws mmrec::Error. */
    void lora_merge() { check(mmrec_lora_merge(get())); }

    /* Undoes lora_merge (mmrec_lora_unmerge). Throws mmrec::Error. */
    void lora_unmerge() { check(mmrec_lora_unmerge(get())); }
};

/* A bottleneck adapter (mmrec_adapter_create). */
class Adapter : public Module {
  public:
    using Module::Module;

    /* The adapter's output (mmrec_adapter_forward), owned by the tape.
     * Throws mmrec::Error. */
    TensorRef forward(Tape &tape, TensorRef x) const {
        mmrec_tensor *out = nullptr;
        check(mmrec_adapter_forward(get(), tape.get(), x.get(), &out));
        return TensorRef(out);
    }
};

/* A multi-layer perceptron (mmrec_mlp_create). */
class Mlp : public Module {
  public:
    using Module::Module;

    /* The MLP's output (mmrec_mlp_forward), owned by the tape.
     * Throws mmrec::Error. */
    TensorRef forward(Tape &tape, TensorRef x) const {
        mmrec_tensor *out = nullptr;
        check(mmrec_mlp_forward(get(), tape.get(), x.get(), &out));
        return TensorRef(out);
    }
};

/* An embedding table (mmrec_embedding_create). */
class Embedding : public Module {
  public:
    using Module::Module;

    /* The rows of `ids`, [ids.size(), dim] (mmrec_embedding_forward), owned
     * by the tape. Throws mmrec::Error (MMREC_ERANGE for an id out of
     * range, ...). */
    TensorRef forward(Tape &tape, Span<const int64_t> ids) const {
        mmrec_tensor *out = nullptr;
        check(mmrec_embedding_forward(get(), tape.get(), ids.data(), ids.size(), &out));
        return TensorRef(out);
    }
};

/* A LayerNorm (mmrec_layernorm_create). */
class LayerNorm : public Module {
  public:
    using Module::Module;

    /* The normalized x (mmrec_layernorm_forward), owned by the tape.
     * Throws mmrec::Error. */
    TensorRef forward(Tape &tape, TensorRef x) const {
        mmrec_tensor *out = nullptr;
        check(mmrec_layernorm_forward(get(), tape.get(), x.get(), &out));
        return TensorRef(out);
    }
};

/* An attention output and its attention probabilities. */
struct Attention {
    TensorRef out;   /* the layer's output, owned by the tape */
    TensorRef probs; /* [batch, heads, seq, seq], or [batch, seq, seq] averaged */
};

/* Multi-head self-attention (mmrec_mha_create). */
class Mha : public Module {
  public:
    using Module::Module;

    /* Self-attention over x [batch, seq, dim] (mmrec_mha_forward);
     * key_mask [batch, seq] or null. Throws mmrec::Error. */
    TensorRef forward(Tape &tape, TensorRef x, TensorRef key_mask = TensorRef()) const {
        mmrec_tensor *out = nullptr;
        check(mmrec_mha_forward(get(), tape.get(), x.get(), key_mask.get(), &out));
        return TensorRef(out);
    }

    /* forward() that also returns the attention probabilities
     * (mmrec_mha_forward_probs); flags MMREC_ATTN_PROBS_PER_HEAD or
     * MMREC_ATTN_PROBS_AVERAGE. Throws mmrec::Error. */
    Attention forward_probs(Tape &tape, TensorRef x, TensorRef key_mask = TensorRef(),
                            uint32_t flags = MMREC_ATTN_PROBS_PER_HEAD) const {
        mmrec_tensor *out = nullptr, *probs = nullptr;
        check(mmrec_mha_forward_probs(get(), tape.get(), x.get(), key_mask.get(), flags, &out,
                                      &probs));
        return Attention{TensorRef(out), TensorRef(probs)};
    }
};

/* A Transformer encoder layer (mmrec_transformer_create). */
class Transformer : public Module {
  public:
    using Module::Module;

    /* The layer's output (mmrec_transformer_forward); key_mask or null.
     * Throws mmrec::Error. */
    TensorRef forward(Tape &tape, TensorRef x, TensorRef key_mask = TensorRef()) const {
        mmrec_tensor *out = nullptr;
        check(mmrec_transformer_forward(get(), tape.get(), x.get(), key_mask.get(), &out));
        return TensorRef(out);
    }

    /* The output at the first num_rows positions only
     * (mmrec_transformer_forward_rows). Throws mmrec::Error. */
    TensorRef forward_rows(Tape &tape, TensorRef x, TensorRef key_mask, int64_t num_rows) const {
        mmrec_tensor *out = nullptr;
        check(mmrec_transformer_forward_rows(get(), tape.get(), x.get(), key_mask.get(), num_rows,
                                             &out));
        return TensorRef(out);
    }
};

/* The outputs of SequenceEncoder::forward. */
struct SequenceStates {
    TensorRef states; /* [batch, T, dim], every position */
    TensorRef last;   /* [batch, dim], the last real position */
};

/* A SASRec-style sequence encoder (mmrec_sequence_encoder_create). */
class SequenceEncoder : public Module {
  public:
    using Module::Module;

    /* Encodes items [batch, T, dim] (mmrec_sequence_encoder_forward); mask
     * [batch, T] or null. Both outputs are owned by the tape.
     * Throws mmrec::Error. */
    SequenceStates forward(Tape &tape, TensorRef items, TensorRef mask = TensorRef()) const {
        mmrec_tensor *states = nullptr, *last = nullptr;
        check(mmrec_sequence_encoder_forward(get(), tape.get(), items.get(), mask.get(), &states,
                                             &last));
        return SequenceStates{TensorRef(states), TensorRef(last)};
    }
};

/* ------------------------------------------------------------------------ */
/* Model                                                                    */
/* ------------------------------------------------------------------------ */

/* Element counts of a model's parameters. */
struct ParamCount {
    std::size_t trainable; /* elements of the trainable parameters */
    std::size_t total;     /* elements of all parameters */
};

/* A named parameter, as Model::param_at gives it. */
struct NamedParam {
    const char *name; /* borrowed from the model */
    TensorRef tensor; /* borrowed from the model */
};

/* A model (model.h): parameters and the modules that own them. The
 * destructor calls mmrec_model_destroy (an optimizer or tape still
 * referring to the model keeps it alive until it lets go).
 * Thread safety: per-handle; a model nobody changes may serve inference
 * from several threads, one tape each. */
class Model : public detail::Owner<mmrec_model, &mmrec_model_destroy> {
  public:
    /* A new empty model (mmrec_model_create).
     * Throws mmrec::Error (MMREC_ENOMEM). */
    Model() {
        mmrec_model *m = nullptr;
        check(mmrec_model_create(&m));
        reset(m);
    }

    /* Takes over a C model (nullptr: an empty owner). */
    explicit Model(mmrec_model *model) noexcept : Owner(model) {}

    /* Reseeds the initialization generator. Throws mmrec::Error. */
    void seed(uint64_t seed) { check(mmrec_model_seed(get(), seed)); }

    /* Adds a zero-filled trainable parameter (mmrec_model_add_param).
     * Throws mmrec::Error (MMREC_ESTATE for a used name, ...). */
    TensorRef add_param(const char *name, const Shape &shape) {
        mmrec_tensor *t = nullptr;
        check(mmrec_model_add_param(get(), name, shape.ndim(), shape.data(), &t));
        return TensorRef(t);
    }

    /* The parameter called `name` (mmrec_model_param).
     * Throws mmrec::Error (MMREC_ENOTFOUND). */
    TensorRef param(const char *name) const {
        mmrec_tensor *t = nullptr;
        check(mmrec_model_param(get(), name, &t));
        return TensorRef(t);
    }

    /* The number of parameters. Throws mmrec::Error. */
    std::size_t num_params() const {
        std::size_t n = 0;
        check(mmrec_model_num_params(get(), &n));
        return n;
    }

    /* Parameter `index` in creation order (mmrec_model_param_at).
     * Throws mmrec::Error (MMREC_ERANGE). */
    NamedParam param_at(std::size_t index) const {
        const char *name = nullptr;
        mmrec_tensor *t = nullptr;
        check(mmrec_model_param_at(get(), index, &name, &t));
        return NamedParam{name, TensorRef(t)};
    }

    /* Freezes the parameters under `prefix` and returns how many
     * (mmrec_model_freeze). Throws mmrec::Error (MMREC_ENOTFOUND, ...). */
    std::size_t freeze(const char *prefix) {
        std::size_t n = 0;
        check(mmrec_model_freeze(get(), prefix, &n));
        return n;
    }

    /* Unfreezes the parameters under `prefix` and returns how many
     * (mmrec_model_unfreeze). Throws mmrec::Error. */
    std::size_t unfreeze(const char *prefix) {
        std::size_t n = 0;
        check(mmrec_model_unfreeze(get(), prefix, &n));
        return n;
    }

    /* Element counts (mmrec_model_param_count). Throws mmrec::Error. */
    ParamCount param_count() const {
        ParamCount c{0, 0};
        check(mmrec_model_param_count(get(), &c.trainable, &c.total));
        return c;
    }

    /* Zeroes every trainable gradient (mmrec_model_zero_grad).
     * Throws mmrec::Error. */
    void zero_grad() { check(mmrec_model_zero_grad(get())); }

    /* The trainable parameters' values, flat (mmrec_model_export_params).
     * Throws mmrec::Error. */
    std::vector<float> export_params() const {
        std::vector<float> v(param_count().trainable);
        check(mmrec_model_export_params(get(), v.data(), v.size()));
        return v;
    }

    /* Overwrites the trainable parameters from a flat buffer
     * (mmrec_model_import_params). Throws mmrec::Error (MMREC_EINVAL for
     * another length, MMREC_ENUMERIC). */
    void import_params(Span<const float> src) {
        check(mmrec_model_import_params(get(), src.data(), src.size()));
    }

    /* The trainable parameters' gradients, flat (mmrec_model_export_grads).
     * Throws mmrec::Error. */
    std::vector<float> export_grads() const {
        std::vector<float> v(param_count().trainable);
        check(mmrec_model_export_grads(get(), v.data(), v.size()));
        return v;
    }

    /* Overwrites the trainable gradients from a flat buffer
     * (mmrec_model_import_grads). Throws mmrec::Error. */
    void import_grads(Span<const float> src) {
        check(mmrec_model_import_grads(get(), src.data(), src.size()));
    }

    /* Saves every parameter to `path`, crash-safely (mmrec_model_save).
     * Throws mmrec::Error (MMREC_EIO, ...). */
    void save(const char *path) const { check(mmrec_model_save(get(), path)); }

    /* Loads parameters saved by save() (mmrec_model_load); on error the
     * model is unchanged. Throws mmrec::Error (MMREC_EFORMAT, MMREC_EIO). */
    void load(const char *path) { check(mmrec_model_load(get(), path)); }

    /* Creates a Linear layer named `name` (mmrec_linear_create).
     * Throws mmrec::Error (MMREC_EINVAL for a bad config or name, ...). */
    Linear linear(const char *name, const mmrec_linear_config &cfg) {
        mmrec_module *m = nullptr;
        check(mmrec_linear_create(get(), name, &cfg, &m));
        return Linear(m);
    }

    /* Creates an adapter (mmrec_adapter_create). Throws mmrec::Error. */
    Adapter adapter(const char *name, const mmrec_adapter_config &cfg) {
        mmrec_module *m = nullptr;
        check(mmrec_adapter_create(get(), name, &cfg, &m));
        return Adapter(m);
    }

    /* Creates an MLP (mmrec_mlp_create). Throws mmrec::Error. */
    Mlp mlp(const char *name, const mmrec_mlp_config &cfg) {
        mmrec_module *m = nullptr;
        check(mmrec_mlp_create(get(), name, &cfg, &m));
        return Mlp(m);
    }

    /* Creates an embedding table (mmrec_embedding_create).
     * Throws mmrec::Error. */
    Embedding embedding(const char *name, const mmrec_embedding_config &cfg) {
        mmrec_module *m = nullptr;
        check(mmrec_embedding_create(get(), name, &cfg, &m));
        return Embedding(m);
    }

    /* Creates a LayerNorm (mmrec_layernorm_create). Throws mmrec::Error. */
    LayerNorm layernorm(const char *name, const mmrec_layernorm_config &cfg) {
        mmrec_module *m = nullptr;
        check(mmrec_layernorm_create(get(), name, &cfg, &m));
        return LayerNorm(m);
    }

    /* Creates multi-head attention (mmrec_mha_create). Throws mmrec::Error. */
    Mha mha(const char *name, const mmrec_mha_config &cfg) {
        mmrec_module *m = nullptr;
        check(mmrec_mha_create(get(), name, &cfg, &m));
        return Mha(m);
    }

    /* Creates a Transformer encoder layer (mmrec_transformer_create).
     * Throws mmrec::Error. */
    Transformer transformer(const char *name, const mmrec_transformer_config &cfg) {
        mmrec_module *m = nullptr;
        check(mmrec_transformer_create(get(), name, &cfg, &m));
        return Transformer(m);
    }

    /* Creates a sequence encoder (mmrec_sequence_encoder_create).
     * Throws mmrec::Error. */
    SequenceEncoder sequence_encoder(const char *name, const mmrec_sequence_encoder_config &cfg) {
        mmrec_module *m = nullptr;
        check(mmrec_sequence_encoder_create(get(), name, &cfg, &m));
        return SequenceEncoder(m);
    }
};

/* ------------------------------------------------------------------------ */
/* Optimizer and checkpoints                                                */
/* ------------------------------------------------------------------------ */

/* An optimizer over a model's trainable parameters (optim.h). It keeps its
 * model alive. The destructor calls mmrec_optimizer_destroy.
 * Thread safety: per-handle; the model must not be used meanwhile. */
class Optimizer : public detail::Owner<mmrec_optimizer, &mmrec_optimizer_destroy> {
  public:
    /* An optimizer over `model` (mmrec_optimizer_create).
     * Throws mmrec::Error (MMREC_EINVAL for a config value out of range,
     * MMREC_ENOMEM). */
    Optimizer(Model &model, const mmrec_optimizer_config &cfg) {
        mmrec_optimizer *o = nullptr;
        check(mmrec_optimizer_create(model.get(), &cfg, &o));
        reset(o);
    }

    /* An empty owner (get() == nullptr), e.g. to move one into later. */
    Optimizer() noexcept = default;

    /* Takes over a C optimizer (nullptr: an empty owner). */
    explicit Optimizer(mmrec_optimizer *opt) noexcept : Owner(opt) {}

    /* One update, then clears the gradients (mmrec_optimizer_step).
     * Throws mmrec::Error (MMREC_ENUMERIC: nothing updated, ...). */
    void step() { check(mmrec_optimizer_step(get())); }

    /* Moves the parameters under `prefix` into a new group and returns its
     * id (mmrec_optimizer_add_group). Throws mmrec::Error. */
    int add_group(const char *prefix, float lr, float weight_decay) {
        int group = 0;
        check(mmrec_optimizer_add_group(get(), prefix, lr, weight_decay, &group));
        return group;
    }

    /* Sets a group's learning rate (mmrec_optimizer_set_lr).
     * Throws mmrec::Error (MMREC_ERANGE: no such group, ...). */
    void set_lr(int group, float lr) { check(mmrec_optimizer_set_lr(get(), group, lr)); }

    /* A group's learning rate (mmrec_optimizer_get_lr).
     * Throws mmrec::Error (MMREC_ERANGE). */
    float lr(int group = 0) const {
        float v = 0;
        check(mmrec_optimizer_get_lr(get(), group, &v));
        return v;
    }

    /* Number of successful steps. Throws mmrec::Error. */
    uint64_t step_count() const {
        uint64_t n = 0;
        check(mmrec_optimizer_step_count(get(), &n));
        return n;
    }

    /* The gradient norm the last step saw, before clipping.
     * Throws mmrec::Error. */
    float last_grad_norm() const {
        float v = 0;
        check(mmrec_optimizer_last_grad_norm(get(), &v));
        return v;
    }
};

/* Saves `model` and the state of `opt` into one checkpoint, crash-safely
 * (mmrec_checkpoint_save). Throws mmrec::Error (MMREC_EIO, ...). */
inline void checkpoint_save(const Model &model, const Optimizer &opt, const char *path) {
    check(mmrec_checkpoint_save(model.get(), opt.get(), path));
}

/* Loads a checkpoint into `model` and `opt` (mmrec_checkpoint_load); on
 * error nothing changed. Throws mmrec::Error (MMREC_EFORMAT, MMREC_EIO). */
inline void checkpoint_load(Model &model, Optimizer &opt, const char *path) {
    check(mmrec_checkpoint_load(model.get(), opt.get(), path));
}

/* ------------------------------------------------------------------------ */
/* Random generator                                                         */
/* ------------------------------------------------------------------------ */

/* The library's seeded generator (core.h). The destructor calls
 * mmrec_rng_destroy. Thread safety: per-handle. */
class Rng : public detail::Owner<mmrec_rng, &mmrec_rng_destroy> {
  public:
    /* A generator seeded with `seed`, any integer converted to uint64_t as
     * the C call does (mmrec_rng_create); a template so that Rng(0) is a
     * seed, not a null handle. Throws mmrec::Error (MMREC_ENOMEM). */
    template <class I, std::enable_if_t<std::is_integral<I>::value, int> = 0>
    explicit Rng(I seed) {
        mmrec_rng *r = nullptr;
        check(mmrec_rng_create(static_cast<uint64_t>(seed), &r));
        reset(r);
    }

    /* An empty owner (get() == nullptr), e.g. to move one into later. */
    Rng() noexcept = default;

    /* Takes over a C generator (nullptr: an empty owner). */
    explicit Rng(mmrec_rng *rng) noexcept : Owner(rng) {}

    /* Restarts the stream from `seed`. Throws mmrec::Error. */
    void seed(uint64_t seed) { check(mmrec_rng_seed(get(), seed)); }

    /* The next 64 random bits. Throws mmrec::Error. */
    uint64_t next_u64() {
        uint64_t v = 0;
        check(mmrec_rng_next_u64(get(), &v));
        return v;
    }

    /* Fills `values` uniformly in [low, high) (mmrec_rng_uniform).
     * Throws mmrec::Error (MMREC_EINVAL for bad bounds). */
    void uniform(Span<float> values, float low, float high) {
        check(mmrec_rng_uniform(get(), low, high, values.data(), values.size()));
    }

    /* Fills `values` with normal draws (mmrec_rng_normal).
     * Throws mmrec::Error (MMREC_EINVAL for a bad mean or std). */
    void normal(Span<float> values, float mean, float std) {
        check(mmrec_rng_normal(get(), mean, std, values.data(), values.size()));
    }

    /* A uniform integer in [0, bound) (mmrec_rng_below).
     * Throws mmrec::Error (MMREC_EINVAL for bound 0). */
    uint64_t below(uint64_t bound) {
        uint64_t v = 0;
        check(mmrec_rng_below(get(), bound, &v));
        return v;
    }
};

/* ------------------------------------------------------------------------ */
/* Feature cache                                                            */
/* ------------------------------------------------------------------------ */

/* A field of a cache, as Cache::field_info gives it. */
struct CacheField {
    const char *name;        /* borrowed from the cache, valid until it closes */
    int64_t dim;             /* record length */
    mmrec_cache_dtype dtype; /* storage type */
};

/* A gathered batch and its presence flags. */
struct Gathered {
    TensorRef values;   /* [n, dim] (or [n, layers, width]), owned by the tape */
    TensorRef presence; /* [n], 1 where the id was found, 0 where not */
};

/* Writes a cache file (cache.h). Nothing at the path changes before
 * commit(); the destructor calls mmrec_cache_writer_destroy, which removes
 * the temporary file of an uncommitted writer (so an exception thrown
 * before commit() leaves the old file in place). abort() does the same
 * at once. Thread safety: per-handle. */
class CacheWriter : public detail::Owner<mmrec_cache_writer, &mmrec_cache_writer_destroy> {
  public:
    /* Starts a cache file at `path` for `ids` (mmrec_cache_writer_create).
     * Throws mmrec::Error (MMREC_EINVAL for a negative or repeated id,
     * MMREC_EIO, MMREC_ENOMEM). */
    CacheWriter(const char *path, Span<const int64_t> ids) {
        mmrec_cache_writer *w = nullptr;
        check(mmrec_cache_writer_create(path, ids.data(), ids.size(), &w));
        reset(w);
    }

    /* An empty owner (get() == nullptr), e.g. to move one into later. */
    CacheWriter() noexcept = default;

    /* Takes over a C writer (nullptr: an empty owner). */
    explicit CacheWriter(mmrec_cache_writer *writer) noexcept : Owner(writer) {}

    /* Adds a field of `dim`-element records, row i for ids[i]
     * (mmrec_cache_writer_add). Throws mmrec::Error (MMREC_ENUMERIC,
     * MMREC_ERANGE, MMREC_ESTATE, MMREC_EIO, ...). */
    void add(const char *field, mmrec_cache_dtype dtype, Span<const float> data, int64_t dim) {
        check(mmrec_cache_writer_add(get(), field, dtype, data.data(), dim));
    }

    /* Adds a field of [layers, width] records
     * (mmrec_cache_writer_add_layers). Throws mmrec::Error (as add()). */
    void add_layers(const char *field, mmrec_cache_dtype dtype, Span<const float> data,
                    int64_t layers, int64_t width) {
        check(mmrec_cache_writer_add_layers(get(), field, dtype, data.data(), layers, width));
    }

    /* Adds a field from a .npy file (mmrec_cache_writer_add_npy).
     * Throws mmrec::Error (MMREC_EFORMAT, MMREC_ESHAPE, MMREC_EIO, ...). */
    void add_npy(const char *field, mmrec_cache_dtype dtype, const char *npy_path) {
        check(mmrec_cache_writer_add_npy(get(), field, dtype, npy_path));
    }

    /* Makes the file the cache at the path, crash-safely
     * (mmrec_cache_writer_commit); the writer is finished afterwards,
     * whether it succeeds or not. Throws mmrec::Error (MMREC_ESTATE,
     * MMREC_EIO, MMREC_ENOMEM). */
    void commit() { check(mmrec_cache_writer_commit(get())); }

    /* Destroys the writer now: an uncommitted file is removed, nothing at
     * the path changes. Never throws. */
    void abort() noexcept { reset(); }
};

/* An open cache file (cache.h), mapped read-only. The destructor calls
 * mmrec_cache_close. Thread safety: any number of threads may gather and
 * query at once, also during refresh(); destruction must not overlap any
 * other call. */
class Cache : public detail::Owner<mmrec_cache, &mmrec_cache_close> {
  public:
    /* Opens and validates the cache file at `path` (mmrec_cache_open).
     * Throws mmrec::Error (MMREC_EIO, MMREC_EFORMAT, MMREC_ENOMEM). */
    explicit Cache(const char *path) {
        mmrec_cache *c = nullptr;
        check(mmrec_cache_open(path, &c));
        reset(c);
    }

    /* An empty owner (get() == nullptr), e.g. to move one into later. */
    Cache() noexcept = default;

    /* Takes over a C cache (nullptr: an empty owner). */
    explicit Cache(mmrec_cache *cache) noexcept : Owner(cache) {}

    /* Number of items. Throws mmrec::Error. */
    int64_t num_items() const {
        int64_t n = 0;
        check(mmrec_cache_num_items(get(), &n));
        return n;
    }

    /* Number of fields. Throws mmrec::Error. */
    int num_fields() const {
        int n = 0;
        check(mmrec_cache_num_fields(get(), &n));
        return n;
    }

    /* Field `index` (mmrec_cache_field_info). Throws mmrec::Error
     * (MMREC_ERANGE). */
    CacheField field_info(int index) const {
        CacheField f{nullptr, 0, MMREC_CACHE_F32};
        check(mmrec_cache_field_info(get(), index, &f.name, &f.dim, &f.dtype));
        return f;
    }

    /* The record length of `field` (mmrec_cache_field_dim).
     * Throws mmrec::Error (MMREC_ENOTFOUND). */
    int64_t field_dim(const char *field) const {
        int64_t dim = 0;
        check(mmrec_cache_field_dim(get(), field, &dim));
        return dim;
    }

    /* The [layers, width] shape of `field`'s records
     * (mmrec_cache_field_shape); a vector field is [1, dim].
     * Throws mmrec::Error (MMREC_ENOTFOUND). */
    std::pair<int64_t, int64_t> field_shape(const char *field) const {
        int64_t layers = 0, width = 0;
        check(mmrec_cache_field_shape(get(), field, &layers, &width));
        return {layers, width};
    }

    /* Gathers `field` for `ids` into a [n, dim] tape tensor
     * (mmrec_cache_gather). Throws mmrec::Error (MMREC_ENOTFOUND,
     * MMREC_ERANGE for an id not in the cache, ...). */
    TensorRef gather(Tape &tape, const char *field, Span<const int64_t> ids) const {
        mmrec_tensor *out = nullptr;
        check(mmrec_cache_gather(get(), tape.get(), field, ids.data(), ids.size(), &out));
        return TensorRef(out);
    }

    /* mmrec_cache_gather_ex: with flags (MMREC_CACHE_MISSING_ZERO) and the
     * presence flags. Throws mmrec::Error (as gather()). */
    Gathered gather_ex(Tape &tape, const char *field, Span<const int64_t> ids,
                       uint32_t flags) const {
        mmrec_tensor *out = nullptr, *presence = nullptr;
        check(mmrec_cache_gather_ex(get(), tape.get(), field, ids.data(), ids.size(), flags, &out,
                                    &presence));
        return Gathered{TensorRef(out), TensorRef(presence)};
    }

    /* Gathers into caller memory (mmrec_cache_gather_into): dst holds
     * ids.size() * dim floats; presence, when not empty, ids.size().
     * Throws mmrec::Error (MMREC_EINVAL also for a dst or presence of
     * another size, checked here; as gather()). */
    void gather_into(const char *field, Span<const int64_t> ids, Span<float> dst,
                     uint32_t flags = 0, Span<float> presence = Span<float>()) const {
        const std::size_t want = ids.size() * static_cast<std::size_t>(field_dim(field));
        if (dst.size() != want)
            detail::fail_arg("mmrec::Cache::gather_into", "dst has " +
                                                              std::to_string(dst.size()) +
                                                              " floats, expected " +
                                                              std::to_string(want));
        if (!presence.empty() && presence.size() != ids.size())
            detail::fail_arg("mmrec::Cache::gather_into",
                             "presence has " + std::to_string(presence.size()) +
                                 " floats, expected " + std::to_string(ids.size()));
        check(mmrec_cache_gather_into(get(), field, ids.data(), ids.size(), flags, dst.data(),
                                      presence.empty() ? nullptr : presence.data()));
    }

    /* Swaps in a new version of the file (mmrec_cache_refresh); nullptr
     * reopens the path it was opened with. Throws mmrec::Error. */
    void refresh(const char *path = nullptr) { check(mmrec_cache_refresh(get(), path)); }
};

/* ------------------------------------------------------------------------ */
/* Data                                                                     */
/* ------------------------------------------------------------------------ */

/* Sizes of an Interactions or Sequences object. */
struct DataInfo {
    int64_t num_users; /* users (largest id + 1, or users kept) */
    int64_t num_items; /* items (largest id + 1, or items kept) */
    std::size_t count; /* pairs, or items in all sequences */
};

/* The (user, item) pairs of an Interactions object, borrowed from it. */
struct Pairs {
    Span<const int64_t> users; /* count user ids */
    Span<const int64_t> items; /* count item ids */
};

/* (user, item) interaction pairs (data.h). The destructor calls
 * mmrec_interactions_destroy. Thread safety: read-only after creation;
 * any number of threads may read it. */
class Interactions : public detail::Owner<mmrec_interactions, &mmrec_interactions_destroy> {
  public:
    /* Copies the pairs (users[k], items[k]) (mmrec_interactions_create).
     * Throws mmrec::Error (MMREC_EINVAL also when the spans differ in
     * length, checked here; MMREC_ENOMEM). */
    Interactions(Span<const int64_t> users, Span<const int64_t> items) {
        if (users.size() != items.size())
            detail::fail_arg("mmrec::Interactions", "users has " + std::to_string(users.size()) +
                                                        " ids, items " +
                                                        std::to_string(items.size()));
        mmrec_interactions *x = nullptr;
        check(mmrec_interactions_create(users.data(), items.data(), users.size(), &x));
        reset(x);
    }

    /* An empty owner (get() == nullptr), e.g. to move one into later. */
    Interactions() noexcept = default;

    /* Takes over a C object (nullptr: an empty owner). */
    explicit Interactions(mmrec_interactions *x) noexcept : Owner(x) {}

    /* Reads a LightGCN train.txt/test.txt file
     * (mmrec_interactions_read_lightgcn). Throws mmrec::Error (MMREC_EIO,
     * MMREC_EFORMAT, ...). */
    static Interactions read_lightgcn(const char *path) {
        mmrec_interactions *x = nullptr;
        check(mmrec_interactions_read_lightgcn(path, &x));
        return Interactions(x);
    }

    /* Reads one split of a RecBole .inter file
     * (mmrec_interactions_read_inter). Throws mmrec::Error. */
    static Interactions read_inter(const char *path, int split) {
        mmrec_interactions *x = nullptr;
        check(mmrec_interactions_read_inter(path, split, &x));
        return Interactions(x);
    }

    /* User and item counts and the number of pairs. Throws mmrec::Error. */
    DataInfo info() const {
        DataInfo i{0, 0, 0};
        check(mmrec_interactions_info(get(), &i.num_users, &i.num_items, &i.count));
        return i;
    }

    /* The pairs, borrowed from this object. Throws mmrec::Error. */
    Pairs pairs() const {
        const int64_t *users = nullptr, *items = nullptr;
        check(mmrec_interactions_pairs(get(), &users, &items));
        const std::size_t n = info().count;
        return Pairs{Span<const int64_t>(users, n), Span<const int64_t>(items, n)};
    }
};

/* Per-user item sequences read from TSV files (data.h). The destructor
 * calls mmrec_sequences_destroy. Thread safety: read-only after
 * creation. */
class Sequences : public detail::Owner<mmrec_sequences, &mmrec_sequences_destroy> {
  public:
    /* An empty owner (get() == nullptr), e.g. to move one into later. */
    Sequences() noexcept = default;

    /* Takes over a C object (nullptr: an empty owner). */
    explicit Sequences(mmrec_sequences *seqs) noexcept : Owner(seqs) {}

    /* Reads the items and users files (mmrec_sequences_read_tsv); cfg may
     * be nullptr for the default lengths. Throws mmrec::Error (MMREC_EIO,
     * MMREC_EFORMAT, ...). */
    static Sequences read_tsv(const char *items_path, const char *users_path,
                              const mmrec_sequences_config *cfg = nullptr) {
        mmrec_sequences *s = nullptr;
        check(mmrec_sequences_read_tsv(items_path, users_path, cfg, &s));
        return Sequences(s);
    }

    /* Users kept, items kept and items in all sequences.
     * Throws mmrec::Error. */
    DataInfo info() const {
        DataInfo i{0, 0, 0};
        check(mmrec_sequences_info(get(), &i.num_users, &i.num_items, &i.count));
        return i;
    }

    /* The item ids of `user`'s sequence, borrowed (mmrec_sequences_user).
     * Throws mmrec::Error (MMREC_ERANGE). */
    Span<const int64_t> user(int64_t user) const {
        const int64_t *items = nullptr;
        std::size_t length = 0;
        check(mmrec_sequences_user(get(), user, &items, &length));
        return Span<const int64_t>(items, length);
    }

    /* The name of `user` in the users file (mmrec_sequences_user_name);
     * borrowed from this object. Throws mmrec::Error (MMREC_ERANGE). */
    const char *user_name(int64_t user) const {
        const char *name = nullptr;
        check(mmrec_sequences_user_name(get(), user, &name));
        return name;
    }

    /* The title of `item` (mmrec_sequences_item); borrowed from this
     * object. Throws mmrec::Error (MMREC_ERANGE). */
    const char *item_title(int64_t item) const {
        const char *title = nullptr;
        check(mmrec_sequences_item(get(), item, nullptr, &title));
        return title;
    }

    /* `parts` of every sequence as pairs (mmrec_sequences_interactions).
     * Throws mmrec::Error. */
    Interactions interactions(uint32_t parts) const {
        mmrec_interactions *x = nullptr;
        check(mmrec_sequences_interactions(get(), parts, &x));
        return Interactions(x);
    }
};

/* Samples negative item ids (data.h). The destructor calls
 * mmrec_item_sampler_destroy. Thread safety: per-handle (draws advance
 * its generator). */
class ItemSampler : public detail::Owner<mmrec_item_sampler, &mmrec_item_sampler_destroy> {
  public:
    /* A sampler configured by `cfg` (mmrec_item_sampler_create).
     * Throws mmrec::Error (MMREC_EINVAL, MMREC_ENOMEM). */
    explicit ItemSampler(const mmrec_item_sampler_config &cfg) {
        mmrec_item_sampler *s = nullptr;
        check(mmrec_item_sampler_create(&cfg, &s));
        reset(s);
    }

    /* An empty owner (get() == nullptr), e.g. to move one into later. */
    ItemSampler() noexcept = default;

    /* Takes over a C sampler (nullptr: an empty owner). */
    explicit ItemSampler(mmrec_item_sampler *sampler) noexcept : Owner(sampler) {}

    /* Fills `ids` with draws (mmrec_item_sampler_draw).
     * Throws mmrec::Error. */
    void draw(Span<int64_t> ids) { check(mmrec_item_sampler_draw(get(), ids.data(), ids.size())); }

    /* The probability of drawing each of `ids` into `out` (same size)
     * (mmrec_item_sampler_probability). Throws mmrec::Error (MMREC_EINVAL
     * also for sizes that differ, checked here). */
    void probability(Span<const int64_t> ids, Span<float> out) const {
        if (ids.size() != out.size())
            detail::fail_arg("mmrec::ItemSampler::probability",
                             "out has " + std::to_string(out.size()) + " floats, ids " +
                                 std::to_string(ids.size()));
        check(mmrec_item_sampler_probability(get(), ids.data(), ids.size(), out.data()));
    }
};

/* ------------------------------------------------------------------------ */
/* Graphs                                                                   */
/* ------------------------------------------------------------------------ */

/* Sizes of a graph. */
struct GraphInfo {
    int64_t num_nodes; /* nodes (users then items for a bipartite graph) */
    int64_t num_users; /* users (0 for a kNN item graph) */
    int64_t nnz;       /* stored edges */
};

/* A normalized adjacency (graph.h): user-item bipartite or kNN item graph.
 * The destructor calls mmrec_graph_destroy. Thread safety: read-only after
 * creation. */
class Graph : public detail::Owner<mmrec_graph, &mmrec_graph_destroy> {
  public:
    /* An empty owner (get() == nullptr), e.g. to move one into later. */
    Graph() noexcept = default;

    /* Takes over a C graph (nullptr: an empty owner). */
    explicit Graph(mmrec_graph *graph) noexcept : Owner(graph) {}

    /* The bipartite graph of the pairs (users[k], items[k])
     * (mmrec_graph_create_bipartite). Throws mmrec::Error (MMREC_EINVAL
     * also for spans of different lengths, checked here; MMREC_ERANGE). */
    static Graph bipartite(Span<const int64_t> users, Span<const int64_t> items,
                           int64_t num_users, int64_t num_items) {
        if (users.size() != items.size())
            detail::fail_arg("mmrec::Graph::bipartite", "users has " +
                                                            std::to_string(users.size()) +
                                                            " ids, items " +
                                                            std::to_string(items.size()));
        mmrec_graph *g = nullptr;
        check(mmrec_graph_create_bipartite(users.data(), items.data(), users.size(), num_users,
                                           num_items, &g));
        return Graph(g);
    }

    /* The kNN item graph of `features` [num_items, dim]
     * (mmrec_graph_create_knn); cfg nullptr: the defaults.
     * Throws mmrec::Error. */
    static Graph knn(Span<const float> features, int64_t num_items, int64_t dim,
                     const mmrec_knn_config *cfg = nullptr) {
        mmrec_graph *g = nullptr;
        check(mmrec_graph_create_knn(features.data(), num_items, dim, cfg, &g));
        return Graph(g);
    }

    /* Node, user and edge counts. Throws mmrec::Error. */
    GraphInfo info() const {
        GraphInfo i{0, 0, 0};
        check(mmrec_graph_info(get(), &i.num_nodes, &i.num_users, &i.nnz));
        return i;
    }

    /* One propagation A x (mmrec_graph_propagate), owned by the tape.
     * Throws mmrec::Error. */
    TensorRef propagate(Tape &tape, TensorRef x) const {
        mmrec_tensor *out = nullptr;
        check(mmrec_graph_propagate(tape.get(), get(), x.get(), &out));
        return TensorRef(out);
    }

    /* Each user's normalized sum of its items' rows, the user-item block
     * of the graph times `items` (mmrec_graph_aggregate_users), owned by
     * the tape. Throws mmrec::Error (MMREC_EINVAL: not bipartite, ...). */
    TensorRef aggregate_users(Tape &tape, TensorRef items) const {
        mmrec_tensor *out = nullptr;
        check(mmrec_graph_aggregate_users(tape.get(), get(), items.get(), &out));
        return TensorRef(out);
    }

    /* LightGCN over weights.size() - 1 layers, the layer weights given
     * (mmrec_lightgcn). Throws mmrec::Error (MMREC_EINVAL also for empty
     * weights, checked here). */
    TensorRef lightgcn(Tape &tape, TensorRef ego, Span<const float> weights) const {
        if (weights.empty()) detail::fail_arg("mmrec::Graph::lightgcn", "weights is empty");
        mmrec_tensor *out = nullptr;
        check(mmrec_lightgcn(tape.get(), get(), ego.get(), static_cast<int>(weights.size() - 1),
                             weights.data(), &out));
        return TensorRef(out);
    }
};

/* ------------------------------------------------------------------------ */
/* Index                                                                    */
/* ------------------------------------------------------------------------ */

/* What an index holds. */
struct IndexInfo {
    int64_t num_items;           /* items */
    int64_t dim;                 /* elements per vector */
    int64_t vectors;             /* vectors per item */
    mmrec_index_metric metric;   /* the metric */
    mmrec_index_storage storage; /* the storage type */
};

/* A top-k retrieval index (index.h). The destructor calls
 * mmrec_index_destroy. Thread safety: any number of threads may search
 * at once, also during refresh(). */
class Index : public detail::Owner<mmrec_index, &mmrec_index_destroy> {
  public:
    /* An index of num_items items (mmrec_index_create): `vectors` holds
     * [num_items, vectors_per_item, dim] floats; `ids` num_items ids or is
     * empty (ids 0 .. num_items - 1); cfg nullptr: the defaults.
     * Throws mmrec::Error (MMREC_EINVAL also when vectors is not a multiple
     * of num_items * dim or ids has another length, checked here;
     * MMREC_ENUMERIC, MMREC_ENOMEM). */
    Index(Span<const float> vectors, Span<const int64_t> ids, std::size_t num_items, int64_t dim,
          const mmrec_index_config *cfg = nullptr) {
        if (dim < 1 || num_items == 0 || vectors.size() % (num_items * static_cast<std::size_t>(dim)))
            detail::fail_arg("mmrec::Index", "vectors has " + std::to_string(vectors.size()) +
                                                 " floats, not a multiple of num_items * dim");
        if (!ids.empty() && ids.size() != num_items)
            detail::fail_arg("mmrec::Index", "ids has " + std::to_string(ids.size()) +
                                                 " ids, num_items is " +
                                                 std::to_string(num_items));
        mmrec_index *ix = nullptr;
        check(mmrec_index_create(vectors.data(), ids.empty() ? nullptr : ids.data(), num_items,
                                 dim, cfg, &ix));
        reset(ix);
    }

    /* An empty owner (get() == nullptr), e.g. to move one into later. */
    Index() noexcept = default;

    /* Takes over a C index (nullptr: an empty owner). */
    explicit Index(mmrec_index *index) noexcept : Owner(index) {}

    /* Opens an index file written by save() (mmrec_index_open).
     * Throws mmrec::Error (MMREC_EIO, MMREC_EFORMAT, ...). */
    static Index open(const char *path) {
        mmrec_index *ix = nullptr;
        check(mmrec_index_open(path, &ix));
        return Index(ix);
    }

    /* An index of a cache field (mmrec_index_create_from_cache).
     * Throws mmrec::Error (MMREC_ENOTFOUND, ...). */
    static Index from_cache(const Cache &cache, const char *field,
                            const mmrec_index_config *cfg = nullptr) {
        mmrec_index *ix = nullptr;
        check(mmrec_index_create_from_cache(cache.get(), field, cfg, &ix));
        return Index(ix);
    }

    /* Writes the index to `path` (mmrec_index_save). Throws mmrec::Error. */
    void save(const char *path) const { check(mmrec_index_save(get(), path)); }

    /* Swaps in the items of `source` while searches go on
     * (mmrec_index_refresh). Throws mmrec::Error. */
    void refresh(const Index &source) { check(mmrec_index_refresh(get(), source.get())); }

    /* What the index holds. Throws mmrec::Error. */
    IndexInfo info() const {
        IndexInfo i{0, 0, 0, MMREC_INDEX_INNER_PRODUCT, MMREC_INDEX_F32};
        check(mmrec_index_info(get(), &i.num_items, &i.dim, &i.vectors, &i.metric, &i.storage));
        return i;
    }

    /* The k best items of each query (mmrec_index_search): queries holds
     * num_queries * dim floats; ids_out and scores_out num_queries * k;
     * counts_out num_queries or is empty; filters nullptr or num_queries
     * filters. Throws mmrec::Error (MMREC_EINVAL also for spans of other
     * sizes, checked here; MMREC_ESHAPE, MMREC_ENUMERIC, ...). */
    void search(Span<const float> queries, int64_t dim, int64_t k, Span<int64_t> ids_out,
                Span<float> scores_out, Span<std::size_t> counts_out = Span<std::size_t>(),
                const mmrec_index_filter *filters = nullptr) const {
        if (dim < 1 || k < 1 || queries.empty() || queries.size() % static_cast<std::size_t>(dim))
            detail::fail_arg("mmrec::Index::search",
                             "queries has " + std::to_string(queries.size()) +
                                 " floats, not a positive multiple of dim");
        const std::size_t nq = queries.size() / static_cast<std::size_t>(dim);
        const std::size_t want = nq * static_cast<std::size_t>(k);
        if (ids_out.size() != want || scores_out.size() != want ||
            (!counts_out.empty() && counts_out.size() != nq))
            detail::fail_arg("mmrec::Index::search",
                             "ids_out and scores_out need " + std::to_string(want) +
                                 " slots, counts_out " + std::to_string(nq) + " or none");
        check(mmrec_index_search(get(), queries.data(), nq, dim, k, filters, ids_out.data(),
                                 scores_out.data(),
                                 counts_out.empty() ? nullptr : counts_out.data()));
    }
};

/* ------------------------------------------------------------------------ */
/* Ops and losses (ops.h, losses.h): outputs owned by the tape              */
/* ------------------------------------------------------------------------ */

/* a b with flags MMREC_TRANS_A / MMREC_TRANS_B (mmrec_matmul).
 * Throws mmrec::Error (MMREC_ESHAPE, MMREC_ESTALE, ...). */
inline TensorRef matmul(Tape &tape, TensorRef a, TensorRef b, uint32_t flags = 0) {
    mmrec_tensor *out = nullptr;
    check(mmrec_matmul(tape.get(), a.get(), b.get(), flags, &out));
    return TensorRef(out);
}

/* a + b (mmrec_add). Throws mmrec::Error. */
inline TensorRef add(Tape &tape, TensorRef a, TensorRef b) {
    mmrec_tensor *out = nullptr;
    check(mmrec_add(tape.get(), a.get(), b.get(), &out));
    return TensorRef(out);
}

/* a - b (mmrec_sub). Throws mmrec::Error. */
inline TensorRef sub(Tape &tape, TensorRef a, TensorRef b) {
    mmrec_tensor *out = nullptr;
    check(mmrec_sub(tape.get(), a.get(), b.get(), &out));
    return TensorRef(out);
}

/* a * b element-wise (mmrec_mul). Throws mmrec::Error. */
inline TensorRef mul(Tape &tape, TensorRef a, TensorRef b) {
    mmrec_tensor *out = nullptr;
    check(mmrec_mul(tape.get(), a.get(), b.get(), &out));
    return TensorRef(out);
}

/* alpha x (mmrec_scale). Throws mmrec::Error. */
inline TensorRef scale(Tape &tape, TensorRef x, float alpha) {
    mmrec_tensor *out = nullptr;
    check(mmrec_scale(tape.get(), x.get(), alpha, &out));
    return TensorRef(out);
}

/* x + bias over the last dim (mmrec_bias_add). Throws mmrec::Error. */
inline TensorRef bias_add(Tape &tape, TensorRef x, TensorRef bias) {
    mmrec_tensor *out = nullptr;
    check(mmrec_bias_add(tape.get(), x.get(), bias.get(), &out));
    return TensorRef(out);
}

/* max(x, 0) (mmrec_relu). Throws mmrec::Error. */
inline TensorRef relu(Tape &tape, TensorRef x) {
    mmrec_tensor *out = nullptr;
    check(mmrec_relu(tape.get(), x.get(), &out));
    return TensorRef(out);
}

/* GELU of x in `form` (mmrec_gelu). Throws mmrec::Error. */
inline TensorRef gelu(Tape &tape, TensorRef x, mmrec_gelu_form form = MMREC_GELU_ERF) {
    mmrec_tensor *out = nullptr;
    check(mmrec_gelu(tape.get(), x.get(), form, &out));
    return TensorRef(out);
}

/* The logistic sigmoid of x (mmrec_sigmoid). Throws mmrec::Error. */
inline TensorRef sigmoid(Tape &tape, TensorRef x) {
    mmrec_tensor *out = nullptr;
    check(mmrec_sigmoid(tape.get(), x.get(), &out));
    return TensorRef(out);
}

/* tanh of x (mmrec_tanh). Throws mmrec::Error. */
inline TensorRef tanh(Tape &tape, TensorRef x) {
    mmrec_tensor *out = nullptr;
    check(mmrec_tanh(tape.get(), x.get(), &out));
    return TensorRef(out);
}

/* Softmax over the last dim, mask or null (mmrec_softmax).
 * Throws mmrec::Error. */
inline TensorRef softmax(Tape &tape, TensorRef x, TensorRef mask = TensorRef()) {
    mmrec_tensor *out = nullptr;
    check(mmrec_softmax(tape.get(), x.get(), mask.get(), &out));
    return TensorRef(out);
}

/* Log-softmax over the last dim, mask or null (mmrec_log_softmax).
 * Throws mmrec::Error. */
inline TensorRef log_softmax(Tape &tape, TensorRef x, TensorRef mask = TensorRef()) {
    mmrec_tensor *out = nullptr;
    check(mmrec_log_softmax(tape.get(), x.get(), mask.get(), &out));
    return TensorRef(out);
}

/* Layer normalization with weight and bias (mmrec_layer_norm).
 * Throws mmrec::Error. */
inline TensorRef layer_norm(Tape &tape, TensorRef x, TensorRef weight, TensorRef bias,
                            float eps = 1e-5f) {
    mmrec_tensor *out = nullptr;
    check(mmrec_layer_norm(tape.get(), x.get(), weight.get(), bias.get(), eps, &out));
    return TensorRef(out);
}

/* Dropout with probability p on a training tape (mmrec_dropout).
 * Throws mmrec::Error. */
inline TensorRef dropout(Tape &tape, TensorRef x, float p) {
    mmrec_tensor *out = nullptr;
    check(mmrec_dropout(tape.get(), x.get(), p, &out));
    return TensorRef(out);
}

/* Concatenation along `axis` (mmrec_concat). Throws mmrec::Error. */
inline TensorRef concat(Tape &tape, std::initializer_list<TensorRef> xs, int axis) {
    std::vector<mmrec_tensor *> handles;
    handles.reserve(xs.size());
    for (const TensorRef &x : xs) handles.push_back(x.get());
    mmrec_tensor *out = nullptr;
    check(mmrec_concat(tape.get(), handles.data(), handles.size(), axis, &out));
    return TensorRef(out);
}

/* `length` entries of `axis` from `start` (mmrec_slice).
 * Throws mmrec::Error. */
inline TensorRef slice(Tape &tape, TensorRef x, int axis, int64_t start, int64_t length) {
    mmrec_tensor *out = nullptr;
    check(mmrec_slice(tape.get(), x.get(), axis, start, length, &out));
    return TensorRef(out);
}

/* x with another shape of the same numel (mmrec_reshape).
 * Throws mmrec::Error. */
inline TensorRef reshape(Tape &tape, TensorRef x, const Shape &shape) {
    mmrec_tensor *out = nullptr;
    check(mmrec_reshape(tape.get(), x.get(), shape.ndim(), shape.data(), &out));
    return TensorRef(out);
}

/* x with its last two dims swapped (mmrec_transpose). Throws mmrec::Error. */
inline TensorRef transpose(Tape &tape, TensorRef x) {
    mmrec_tensor *out = nullptr;
    check(mmrec_transpose(tape.get(), x.get(), &out));
    return TensorRef(out);
}

/* Sum over `axis` (mmrec_sum). Throws mmrec::Error. */
inline TensorRef sum(Tape &tape, TensorRef x, int axis) {
    mmrec_tensor *out = nullptr;
    check(mmrec_sum(tape.get(), x.get(), axis, &out));
    return TensorRef(out);
}

/* Mean over `axis` (mmrec_mean). Throws mmrec::Error. */
inline TensorRef mean(Tape &tape, TensorRef x, int axis) {
    mmrec_tensor *out = nullptr;
    check(mmrec_mean(tape.get(), x.get(), axis, &out));
    return TensorRef(out);
}

/* Rows scaled to unit L2 norm (mmrec_l2_normalize). Throws mmrec::Error. */
inline TensorRef l2_normalize(Tape &tape, TensorRef x, float eps = 1e-12f) {
    mmrec_tensor *out = nullptr;
    check(mmrec_l2_normalize(tape.get(), x.get(), eps, &out));
    return TensorRef(out);
}

/* Row-wise cosine of a and b (mmrec_cosine_similarity).
 * Throws mmrec::Error. */
inline TensorRef cosine_similarity(Tape &tape, TensorRef a, TensorRef b, float eps = 1e-8f) {
    mmrec_tensor *out = nullptr;
    check(mmrec_cosine_similarity(tape.get(), a.get(), b.get(), eps, &out));
    return TensorRef(out);
}

/* Rows `ids` of `table` (mmrec_gather_rows). Throws mmrec::Error
 * (MMREC_ERANGE for an id out of range, ...). */
inline TensorRef gather_rows(Tape &tape, TensorRef table, Span<const int64_t> ids) {
    mmrec_tensor *out = nullptr;
    check(mmrec_gather_rows(tape.get(), table.get(), ids.data(), ids.size(), &out));
    return TensorRef(out);
}

/* MaxSim of every query against every item (mmrec_maxsim); masks or null.
 * Throws mmrec::Error. */
inline TensorRef maxsim(Tape &tape, TensorRef queries, TensorRef query_mask, TensorRef items,
                        TensorRef item_mask) {
    mmrec_tensor *out = nullptr;
    check(mmrec_maxsim(tape.get(), queries.get(), query_mask.get(), items.get(), item_mask.get(),
                       &out));
    return TensorRef(out);
}

/* Mean binary cross-entropy on logits (mmrec_loss_bce_logits).
 * Throws mmrec::Error. */
inline TensorRef loss_bce_logits(Tape &tape, TensorRef logits, TensorRef targets) {
    mmrec_tensor *out = nullptr;
    check(mmrec_loss_bce_logits(tape.get(), logits.get(), targets.get(), &out));
    return TensorRef(out);
}

/* Mean softmax cross-entropy of logits [n, classes] against `labels`
 * (mmrec_loss_softmax_ce). Throws mmrec::Error (MMREC_ESHAPE when labels
 * is not one per row, MMREC_ERANGE for a label out of range, ...). */
inline TensorRef loss_softmax_ce(Tape &tape, TensorRef logits, Span<const int64_t> labels) {
    mmrec_tensor *out = nullptr;
    check(mmrec_loss_softmax_ce(tape.get(), logits.get(), labels.data(), labels.size(), &out));
    return TensorRef(out);
}

/* Mean BPR loss of positive and negative scores (mmrec_loss_bpr).
 * Throws mmrec::Error. */
inline TensorRef loss_bpr(Tape &tape, TensorRef pos, TensorRef neg) {
    mmrec_tensor *out = nullptr;
    check(mmrec_loss_bpr(tape.get(), pos.get(), neg.get(), &out));
    return TensorRef(out);
}

/* Mean squared error (mmrec_loss_mse). Throws mmrec::Error. */
inline TensorRef loss_mse(Tape &tape, TensorRef pred, TensorRef target) {
    mmrec_tensor *out = nullptr;
    check(mmrec_loss_mse(tape.get(), pred.get(), target.get(), &out));
    return TensorRef(out);
}

/* The fused in-batch softmax of queries against candidates
 * (mmrec_loss_batch_softmax); cfg nullptr: the defaults.
 * Throws mmrec::Error. */
inline TensorRef loss_batch_softmax(Tape &tape, TensorRef queries, TensorRef candidates,
                                    const mmrec_batch_softmax_config *cfg = nullptr) {
    mmrec_tensor *out = nullptr;
    check(mmrec_loss_batch_softmax(tape.get(), queries.get(), candidates.get(), cfg, &out));
    return TensorRef(out);
}

/* The AUC of `scores` against 0/1 `labels` of the same size
 * (mmrec_metric_auc). Throws mmrec::Error (MMREC_EINVAL also for sizes
 * that differ, checked here; no positive or no negative label; MMREC_ENUMERIC).
 * Thread-safe. */
inline double metric_auc(Span<const float> scores, Span<const float> labels) {
    if (scores.size() != labels.size())
        detail::fail_arg("mmrec::metric_auc", "scores has " + std::to_string(scores.size()) +
                                                  " values, labels " +
                                                  std::to_string(labels.size()));
    double auc = 0;
    check(mmrec_metric_auc(scores.data(), labels.data(), scores.size(), &auc));
    return auc;
}

/* ------------------------------------------------------------------------ */
/* Config structs                                                           */
/* ------------------------------------------------------------------------ */

/* Fills a mmrec_linear_config with its defaults (mmrec_linear_config_init,
 * the caller's sizeof). Every init() below does the same for its struct.
 * Throws mmrec::Error (never for a struct of this header's size). */
inline void init(mmrec_linear_config &cfg) { check(mmrec_linear_config_init(&cfg)); }
/* Fills a mmrec_lora_config with its defaults. Throws mmrec::Error. */
inline void init(mmrec_lora_config &cfg) { check(mmrec_lora_config_init(&cfg)); }
/* Fills a mmrec_adapter_config with its defaults. Throws mmrec::Error. */
inline void init(mmrec_adapter_config &cfg) { check(mmrec_adapter_config_init(&cfg)); }
/* Fills a mmrec_mlp_config with its defaults. Throws mmrec::Error. */
inline void init(mmrec_mlp_config &cfg) { check(mmrec_mlp_config_init(&cfg)); }
/* Fills a mmrec_embedding_config with its defaults. Throws mmrec::Error. */
inline void init(mmrec_embedding_config &cfg) { check(mmrec_embedding_config_init(&cfg)); }
/* Fills a mmrec_layernorm_config with its defaults. Throws mmrec::Error. */
inline void init(mmrec_layernorm_config &cfg) { check(mmrec_layernorm_config_init(&cfg)); }
/* Fills a mmrec_mha_config with its defaults. Throws mmrec::Error. */
inline void init(mmrec_mha_config &cfg) { check(mmrec_mha_config_init(&cfg)); }
/* Fills a mmrec_transformer_config with its defaults. Throws mmrec::Error. */
inline void init(mmrec_transformer_config &cfg) { check(mmrec_transformer_config_init(&cfg)); }
/* Fills a mmrec_sequence_encoder_config with its defaults.
 * Throws mmrec::Error. */
inline void init(mmrec_sequence_encoder_config &cfg) {
    check(mmrec_sequence_encoder_config_init(&cfg));
}
/* Fills a mmrec_optimizer_config with its defaults. Throws mmrec::Error. */
inline void init(mmrec_optimizer_config &cfg) { check(mmrec_optimizer_config_init(&cfg)); }
/* Fills a mmrec_batch_softmax_config with its defaults.
 * Throws mmrec::Error. */
inline void init(mmrec_batch_softmax_config &cfg) {
    check(mmrec_batch_softmax_config_init(&cfg));
}
/* Fills a mmrec_sequence_softmax_config with its defaults.
 * Throws mmrec::Error. */
inline void init(mmrec_sequence_softmax_config &cfg) {
    check(mmrec_sequence_softmax_config_init(&cfg));
}
/* Fills a mmrec_cache_gather_config with its defaults. Throws mmrec::Error. */
inline void init(mmrec_cache_gather_config &cfg) { check(mmrec_cache_gather_config_init(&cfg)); }
/* Fills a mmrec_sequences_config with its defaults. Throws mmrec::Error. */
inline void init(mmrec_sequences_config &cfg) { check(mmrec_sequences_config_init(&cfg)); }
/* Fills a mmrec_item_sampler_config with its defaults. Throws mmrec::Error. */
inline void init(mmrec_item_sampler_config &cfg) { check(mmrec_item_sampler_config_init(&cfg)); }
/* Fills a mmrec_knn_config with its defaults. Throws mmrec::Error. */
inline void init(mmrec_knn_config &cfg) { check(mmrec_knn_config_init(&cfg)); }
/* Fills a mmrec_index_config with its defaults. Throws mmrec::Error. */
inline void init(mmrec_index_config &cfg) { check(mmrec_index_config_init(&cfg)); }
/* Fills a mmrec_index_filter with its defaults (no filtering).
 * Throws mmrec::Error. */
inline void init(mmrec_index_filter &cfg) { check(mmrec_index_filter_init(&cfg)); }
/* Fills a mmrec_fqformer_config with its defaults. Throws mmrec::Error. */
inline void init(mmrec_fqformer_config &cfg) { check(mmrec_fqformer_config_init(&cfg)); }
/* Fills a mmrec_target_attention_config with its defaults.
 * Throws mmrec::Error. */
inline void init(mmrec_target_attention_config &cfg) {
    check(mmrec_target_attention_config_init(&cfg));
}
/* Fills a mmrec_cic_config with its defaults. Throws mmrec::Error. */
inline void init(mmrec_cic_config &cfg) { check(mmrec_cic_config_init(&cfg)); }
/* Fills a mmrec_alignrec_config with its defaults. Throws mmrec::Error. */
inline void init(mmrec_alignrec_config &cfg) { check(mmrec_alignrec_config_init(&cfg)); }
/* Fills a mmrec_alignrec_views with its defaults. Throws mmrec::Error. */
inline void init(mmrec_alignrec_views &cfg) { check(mmrec_alignrec_views_init(&cfg)); }
/* Fills a mmrec_iisan_item_encoder_config with its defaults.
 * Throws mmrec::Error. */
inline void init(mmrec_iisan_item_encoder_config &cfg) {
    check(mmrec_iisan_item_encoder_config_init(&cfg));
}
/* Fills a mmrec_twotower_config with its defaults. Throws mmrec::Error. */
inline void init(mmrec_twotower_config &cfg) { check(mmrec_twotower_config_init(&cfg)); }
/* Fills a mmrec_freq_estimator_config with its defaults.
 * Throws mmrec::Error. */
inline void init(mmrec_freq_estimator_config &cfg) {
    check(mmrec_freq_estimator_config_init(&cfg));
}
/* Fills a mmrec_mvke_config with its defaults. Throws mmrec::Error. */
inline void init(mmrec_mvke_config &cfg) { check(mmrec_mvke_config_init(&cfg)); }
/* Fills a mmrec_inttower_config with its defaults. Throws mmrec::Error. */
inline void init(mmrec_inttower_config &cfg) { check(mmrec_inttower_config_init(&cfg)); }
/* Fills a mmrec_inttower_cir_config with its defaults. Throws mmrec::Error. */
inline void init(mmrec_inttower_cir_config &cfg) { check(mmrec_inttower_cir_config_init(&cfg)); }
/* Fills a mmrec_distill_logits_config with its defaults.
 * Throws mmrec::Error. */
inline void init(mmrec_distill_logits_config &cfg) {
    check(mmrec_distill_logits_config_init(&cfg));
}
/* Fills a mmrec_distill_kl_config with its defaults. Throws mmrec::Error. */
inline void init(mmrec_distill_kl_config &cfg) { check(mmrec_distill_kl_config_init(&cfg)); }
/* Fills a mmrec_distill_gam_config with its defaults. Throws mmrec::Error. */
inline void init(mmrec_distill_gam_config &cfg) { check(mmrec_distill_gam_config_init(&cfg)); }
/* Fills a mmrec_distill_attn_config with its defaults. Throws mmrec::Error. */
inline void init(mmrec_distill_attn_config &cfg) { check(mmrec_distill_attn_config_init(&cfg)); }

/* A config struct of type C filled with its defaults by init(), e.g.
 * auto cfg = mmrec::config<mmrec_mlp_config>(). Throws mmrec::Error. */
template <class C> C config() {
    C cfg{};
    init(cfg);
    return cfg;
}

} // namespace mmrec

#endif /* MMREC_MMREC_HPP */
