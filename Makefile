# libmmrec build. `make` builds lib/libmmrec.so.X.Y.Z and lib/libmmrec.a.
#   make BLAS=blis      build against BLIS instead of OpenBLAS
#   make test           Check suites (prints Check's summary line), then the
#                       C++ layer's test and quickstart-cpp (test-cpp)
#   make test-asan      the same suites under AddressSanitizer + UBSan
#   make test-tsan      the threaded suites under ThreadSanitizer
#   make test-valgrind  the suites under valgrind memcheck (VALGRIND_SUITES=...)
#   make abi-check      abidiff against tests/abi/libmmrec.abi
#   make check-symbols  exports vs version script, headers and frozen lists;
#                       every exported function has its own doc block
#   make check-api-params  tests/api_params.h vs the headers, parameter names
#                       of src/ vs the headers, a bad-input test for every
#                       fallible function (also run by test, check-symbols)
#   make api-params     regenerate tests/api_params.h (tools/api-params.sh)
#   make map            regenerate src/libmmrec.map (tools/gen-map.sh)
#   make install PREFIX=/usr/local   (DESTDIR supported); make uninstall
#   make example        build and run examples/quickstart
#   make example-cpp    the same in C++ (examples/quickstart.cpp, mmrec.hpp)
#   make bench          run every benchmark (C and its PyTorch counterpart)
#   make docs           API reference from the headers (build/docs/html;
#                       tools/docs.sh: fails on an undocumented function)
#   make mpi            lib/libmmrec_mpi.so and the MPI example (needs mpicc)
#   make mpi-test       the data-parallel test on 2 ranks (mpirun -np 2)
#   make V=1            show the commands

VERSION := $(shell sed -n 's/^\#define MMREC_VERSION_STRING "\(.*\)"/\1/p' include/mmrec/core.h)
MAJOR := $(word 1,$(subst ., ,$(VERSION)))

PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig

CC ?= cc
MARCH ?=
OPT ?= -O3
MULTIARCH := $(shell $(CC) -print-multiarch 2>/dev/null)

BLAS ?= openblas
ifeq ($(BLAS),blis)
  BLIS_HEADER := $(realpath /usr/include/$(MULTIARCH)/blis.h)
  BLAS_CFLAGS ?= -DMMREC_BLAS_BLIS $(if $(BLIS_HEADER),-isystem $(dir $(BLIS_HEADER)))
  BLAS_LIBS ?= -lblis
  PC_REQUIRES :=
  PC_LIBS_PRIVATE := -lblis -lm -lpthread
else ifeq ($(BLAS),openblas)
  BLAS_CFLAGS ?= -DMMREC_BLAS_OPENBLAS $(shell pkg-config --cflags openblas)
  BLAS_LIBS ?= $(shell pkg-config --libs openblas)
  PC_REQUIRES := openblas
  PC_LIBS_PRIVATE := -lm -lpthread
else
  $(error BLAS must be openblas or blis)
endif

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-unused-parameter
CFLAGS ?= $(OPT) -g $(MARCH)
# IEEE results are kept (no -ffast-math); not modelling FP traps lets the
# compiler vectorize branch-free element-wise loops with selects.
FPFLAGS := -fno-trapping-math
ALL_CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L $(WARN) $(FPFLAGS) -Iinclude $(BLAS_CFLAGS) $(CFLAGS)
LIB_CFLAGS := $(ALL_CFLAGS) -fPIC -fvisibility=hidden -DMMREC_BUILDING
LDLIBS := $(BLAS_LIBS) -lm -lpthread

Q := $(if $(V),,@)
BUILD := build/$(BLAS)

SRCS := $(sort $(wildcard src/*/*.c))
OBJS := $(SRCS:src/%.c=$(BUILD)/%.o)
HEADERS := $(wildcard include/mmrec/*.h)

SONAME := libmmrec.so.$(MAJOR)
SHARED := lib/libmmrec.so.$(VERSION)
STATIC := lib/libmmrec.a
MAP := src/libmmrec.map

TEST_SRCS := $(sort $(wildcard tests/*.c))
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null || echo -lcheck -lsubunit -lrt -lm -lpthread)
EXAMPLES := $(patsubst examples/%.c,build/examples/%,$(wildcard examples/*.c))

.PHONY: all clean test test-asan test-tsan test-valgrind test-valgrind-ci example-em3 example-lightgcn example-alignrec example-iisan example-twotower example-serve example-inttower example-cascade example-distill abi-check abi-baseline check-symbols map install uninstall \
        example bench examples api-params check-api-params
all: $(SHARED) $(STATIC) lib/libmmrec.so examples

$(BUILD)/%.o: src/%.c $(HEADERS) $(wildcard src/*/*.h) Makefile
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC  $<")
	$(Q)$(CC) $(LIB_CFLAGS) -c $< -o $@

# lib/ holds one BLAS variant at a time: relink when it changes.
BLAS_STAMP := lib/.blas-$(BLAS)
$(BLAS_STAMP):
	@mkdir -p lib
	$(Q)rm -f lib/.blas-* && touch $@

$(SHARED): $(OBJS) $(MAP) $(BLAS_STAMP)
	@mkdir -p lib
	@$(if $(Q),echo "  LD  $@")
	$(Q)$(CC) -shared -Wl,-soname,$(SONAME) -Wl,--version-script,$(MAP) -Wl,--no-undefined \
	    -Wl,-z,nodelete \
	    -o $@ $(OBJS) $(LDLIBS)

lib/libmmrec.so: $(SHARED)
	$(Q)ln -sf libmmrec.so.$(VERSION) lib/$(SONAME)
	$(Q)ln -sf $(SONAME) lib/libmmrec.so

$(STATIC): $(OBJS) $(BLAS_STAMP)
	@mkdir -p lib
	@$(if $(Q),echo "  AR  $@")
	$(Q)rm -f $@ && ar rcs $@ $(OBJS)

# ---- tests ----
TEST_BIN := build/tests/$(BLAS)/mmrec_tests
$(TEST_BIN): $(TEST_SRCS) $(wildcard tests/*.h tests/*/*.h) $(STATIC)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC  $@")
	$(Q)$(CC) $(ALL_CFLAGS) -Isrc -DMMREC_TEST_DIR='"$(CURDIR)/tests"' \
	    -o $@ $(TEST_SRCS) $(STATIC) $(CHECK_LIBS) $(LDLIBS)

test: check-api-params $(TEST_BIN) lib/libmmrec.so examples
	$(Q)MMREC_ROOT=$(CURDIR) BLAS=$(BLAS) $(TEST_BIN)
	$(Q)$(MAKE) --no-print-directory test-cpp

ASAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
ASAN_BIN := build/tests/asan/mmrec_tests
$(ASAN_BIN): $(SRCS) $(TEST_SRCS) $(HEADERS) $(wildcard src/*/*.h) $(wildcard tests/*.h tests/*/*.h)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC  $@ (asan+ubsan)")
	$(Q)$(CC) -std=c11 -D_POSIX_C_SOURCE=200809L $(WARN) $(FPFLAGS) -Iinclude -Isrc $(BLAS_CFLAGS) \
	    $(ASAN_FLAGS) -DMMREC_TEST_DIR='"$(CURDIR)/tests"' -o $@ $(SRCS) $(TEST_SRCS) \
	    $(CHECK_LIBS) $(LDLIBS)

# The probe writes 4 bytes past a 12-byte tensor: the sanitizer build must
# report it (it allocates exactly what is asked, no 64-byte rounding).
ASAN_PROBE := build/tests/asan/asan_overflow
$(ASAN_PROBE): tests/probe/asan_overflow.c $(SRCS) $(HEADERS) $(wildcard src/*/*.h)
	@mkdir -p $(dir $@)
	$(Q)$(CC) -std=c11 -D_POSIX_C_SOURCE=200809L $(WARN) $(FPFLAGS) -Iinclude $(BLAS_CFLAGS) \
	    $(ASAN_FLAGS) -o $@ $< $(SRCS) $(LDLIBS)

# The second probe reads 1 byte past a 10-byte file served by the readers'
# file mapping: a sanitizer build reads files into exact-size heap blocks,
# so that read must be reported too (a mapping would hide it in the page).
ASAN_MAP_PROBE := build/tests/asan/asan_map_overflow
$(ASAN_MAP_PROBE): tests/probe/asan_map_overflow.c $(SRCS) $(HEADERS) $(wildcard src/*/*.h)
	@mkdir -p $(dir $@)
	$(Q)$(CC) -std=c11 -D_POSIX_C_SOURCE=200809L $(WARN) $(FPFLAGS) -Iinclude -Isrc $(BLAS_CFLAGS) \
	    $(ASAN_FLAGS) -o $@ $< $(SRCS) $(LDLIBS)

test-asan: $(ASAN_BIN) $(ASAN_PROBE) $(ASAN_MAP_PROBE) lib/libmmrec.so
	$(Q)CK_FORK=no MMREC_ROOT=$(CURDIR) MMREC_SKIP_INSTALL_TEST=1 \
	    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 $(ASAN_BIN)
	$(Q)if ASAN_OPTIONS=detect_leaks=0 $(ASAN_PROBE) > build/tests/asan/probe.log 2>&1; then \
	    cat build/tests/asan/probe.log; exit 1; fi; \
	    grep -q "heap-buffer-overflow" build/tests/asan/probe.log && \
	    echo "asan probe: a 4-byte overflow past a 12-byte tensor is reported"
	$(Q)if ASAN_OPTIONS=detect_leaks=0 $(ASAN_MAP_PROBE) > build/tests/asan/map-probe.log 2>&1; \
	    then cat build/tests/asan/map-probe.log; exit 1; fi; \
	    grep -q "heap-buffer-overflow" build/tests/asan/map-probe.log && \
	    echo "asan probe: a 1-byte read past a 10-byte mapped file is reported"
	$(Q)$(MAKE) --no-print-directory test-cpp-asan

# ThreadSanitizer: the suites that run threads (serving from 8 threads,
# the worker pool from several host threads and under a changing thread
# count, cache and index refresh under concurrent readers). Built without
# the ifunc clones (their resolvers run before the sanitizer's runtime).
TSAN_SUITES ?= threads cache index
TSAN_BIN := build/tests/tsan/mmrec_tests
$(TSAN_BIN): $(SRCS) $(TEST_SRCS) $(HEADERS) $(wildcard src/*/*.h) $(wildcard tests/*.h tests/*/*.h)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC  $@ (tsan)")
	$(Q)$(CC) -std=c11 -D_POSIX_C_SOURCE=200809L $(WARN) $(FPFLAGS) -Iinclude -Isrc $(BLAS_CFLAGS) \
	    -DMMREC_NO_CLONES -O1 -g -fsanitize=thread -DMMREC_TEST_DIR='"$(CURDIR)/tests"' \
	    -o $@ $(SRCS) $(TEST_SRCS) $(CHECK_LIBS) $(LDLIBS)

test-tsan: $(TSAN_BIN) lib/libmmrec.so
	$(Q)for s in $(TSAN_SUITES); do \
	    CK_FORK=no CK_RUN_SUITE=$$s MMREC_ROOT=$(CURDIR) TSAN_OPTIONS=halt_on_error=1 \
	    $(TSAN_BIN) || exit 1; done

# Valgrind memcheck over the Check suites (CK_FORK=no): no error and no
# definite leak (the worker pool's threads live until exit: their stacks
# are "possibly lost", not errors). VALGRIND_SUITES picks suites (default:
# all of them, about 15 minutes here); CI runs the quick ones.
VALGRIND_SUITES ?= $(shell sed -n 's/.*suite_create("\([a-z0-9_]*\)").*/\1/p' $(TEST_SRCS))
# The allocation-failure loops fail every 50th allocation only under
# memcheck (the sanitizer runs fail every one).
VALGRIND_OOM_STRIDE ?= 50
VALGRIND_CI_SUITES := alignrec batch_softmax_logits cache compat config core distill \
    distill_attn golden lora losses model numerics ops_elementwise ops_shape reliability \
    sequence_softmax sequences twotower_scorer
test-valgrind: $(TEST_BIN) lib/libmmrec.so
	$(Q)for s in $(VALGRIND_SUITES); do \
	    echo "valgrind: $$s"; \
	    CK_FORK=no CK_RUN_SUITE=$$s MMREC_ROOT=$(CURDIR) MMREC_SKIP_INSTALL_TEST=1 \
	    MMREC_TEST_OOM_STRIDE=$(VALGRIND_OOM_STRIDE) valgrind -q --error-exitcode=9 --leak-check=full --errors-for-leak-kinds=definite \
	    --show-leak-kinds=definite $(TEST_BIN) > build/valgrind-$$s.log 2>&1 || \
	    { cat build/valgrind-$$s.log; exit 1; }; done; echo "valgrind: clean"

test-valgrind-ci:
	$(Q)$(MAKE) --no-print-directory test-valgrind VALGRIND_SUITES="$(VALGRIND_CI_SUITES)"

# ---- ABI ----
ABI_BASELINE := tests/abi/libmmrec.abi
ABI_SUPPRESS := tests/abi/suppressions.txt
abi-check: $(SHARED)
	$(Q)tools/abi-check.sh $(SHARED) $(ABI_BASELINE) $(ABI_SUPPRESS)

abi-baseline: $(SHARED)
	$(Q)abidw --headers-dir include/mmrec --exported-interfaces-only --out-file $(ABI_BASELINE) $(SHARED)
	@echo "wrote $(ABI_BASELINE): say why in the commit message"

check-symbols: $(SHARED)
	$(Q)tools/check-symbols.sh $(SHARED) $(MAP) $(ABI_BASELINE)
	$(Q)$(MAKE) --no-print-directory check-api-params

# The table of public functions and their parameters that
# tests/test_api_names.c walks, generated from the headers.
api-params:
	$(Q)tools/api-params.sh

# tests/api_params.h against the headers; every fallible public function
# has a bad-input test naming the argument (tools/api-badinput.sh).
check-api-params:
	$(Q)tools/api-params.sh --check
	$(Q)tools/api-badinput.sh

# The version script: one node per release, generated from the headers and
# the frozen lists tools/abi/MMREC_*.syms (release procedure: tools/gen-map.sh).
map:
	$(Q)tools/gen-map.sh $(MAP)

# ---- install ----
# Rendered at install time, so it always carries the PREFIX of this install.
# mmrec.pc links the shared library; mmrec-static.pc the archive (with only
# -lmmrec, the linker would take the .so installed beside the .a).
define render_pc
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' \
	    -e 's|@REQUIRES_PRIVATE@|$(PC_REQUIRES)|' -e 's|@LIBS_PRIVATE@|$(PC_LIBS_PRIVATE)|' \
	    $(1).in > $(2)
endef

install: $(SHARED) lib/libmmrec.so $(STATIC)
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR)/mmrec $(DESTDIR)$(PKGCONFIGDIR)
	$(call render_pc,mmrec.pc,$(DESTDIR)$(PKGCONFIGDIR)/mmrec.pc)
	$(call render_pc,mmrec-static.pc,$(DESTDIR)$(PKGCONFIGDIR)/mmrec-static.pc)
	install -m 644 $(HEADERS) $(DESTDIR)$(INCLUDEDIR)/mmrec/
	install -m 644 $(CXX_HEADERS) $(DESTDIR)$(INCLUDEDIR)/mmrec/
	install -m 755 $(SHARED) $(DESTDIR)$(LIBDIR)/
	ln -sf libmmrec.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libmmrec.so
	install -m 644 $(STATIC) $(DESTDIR)$(LIBDIR)/

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libmmrec.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME) \
	      $(DESTDIR)$(LIBDIR)/libmmrec.so $(DESTDIR)$(LIBDIR)/libmmrec.a \
	      $(DESTDIR)$(PKGCONFIGDIR)/mmrec.pc $(DESTDIR)$(PKGCONFIGDIR)/mmrec-static.pc
	rm -f $(addprefix $(DESTDIR)$(INCLUDEDIR)/mmrec/,$(notdir $(HEADERS)))
	rm -f $(addprefix $(DESTDIR)$(INCLUDEDIR)/mmrec/,$(notdir $(CXX_HEADERS)))
	-rmdir $(DESTDIR)$(INCLUDEDIR)/mmrec

# ---- C++ layer (include/mmrec/mmrec.hpp, header-only) ----
# Its test and the C++ quickstart build against the static library with
# the C++17 flags below; the quickstart is build/examples/quickstart-cpp
# (build/examples/quickstart is the C one). test-cpp runs the test, then
# both quickstarts for 2 epochs, and fails unless they print the same
# figures. test-cpp-asan builds the test with ASan + UBSan (the
# library linked as built: the sanitizers still see every allocation and
# free the library makes, and LeakSanitizer any handle left undestroyed).
CXX ?= g++
CXX_HEADERS := include/mmrec/mmrec.hpp
CXX_WARN := -std=c++17 -Wall -Wextra -Werror -pedantic
CPP_TEST_BIN := build/tests/$(BLAS)/test_mmrec_hpp
CPP_ASAN_BIN := build/tests/asan/test_mmrec_hpp
.PHONY: test-cpp test-cpp-asan example-cpp
$(CPP_TEST_BIN): tests/cpp/test_mmrec_hpp.cpp $(CXX_HEADERS) $(HEADERS) $(STATIC)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CXX $@")
	$(Q)$(CXX) $(CXX_WARN) $(OPT) -g -Iinclude -o $@ $< $(STATIC) $(LDLIBS)

build/examples/quickstart-cpp: examples/quickstart.cpp $(CXX_HEADERS) $(HEADERS) $(STATIC)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CXX $@")
	$(Q)$(CXX) $(CXX_WARN) $(OPT) -g $(MARCH) -Iinclude -o $@ $< $(STATIC) $(LDLIBS)

$(CPP_ASAN_BIN): tests/cpp/test_mmrec_hpp.cpp $(CXX_HEADERS) $(HEADERS) $(STATIC)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CXX $@ (asan+ubsan)")
	$(Q)$(CXX) $(CXX_WARN) $(ASAN_FLAGS) -Iinclude -o $@ $< $(STATIC) $(LDLIBS)

test-cpp: $(CPP_TEST_BIN) build/examples/quickstart build/examples/quickstart-cpp
	$(Q)$(CPP_TEST_BIN) build
	$(Q)build/examples/quickstart 2 build/quickstart-c.mmrc > build/quickstart-c.out
	$(Q)build/examples/quickstart-cpp 2 build/quickstart-cpp.mmrc > build/quickstart-cpp.out
	$(Q)if [ "$$(grep -v '^saved' build/quickstart-c.out)" != \
	         "$$(grep -v '^saved' build/quickstart-cpp.out)" ]; then \
	    echo "quickstart-cpp: figures differ from quickstart" \
	         "(build/quickstart-c.out, build/quickstart-cpp.out)"; exit 1; fi
	$(Q)echo "quickstart-cpp: same figures as quickstart: $$(grep '^RESULT' build/quickstart-cpp.out)"

test-cpp-asan: $(CPP_ASAN_BIN)
	$(Q)ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	    $(CPP_ASAN_BIN) build

# ---- API reference ----
# Doxygen over include/mmrec/ (docs/Doxyfile, tools/doxygen-filter.sh) into
# build/docs/html; fails when a public function or C++ class is undocumented.
.PHONY: docs
docs:
	$(Q)tools/docs.sh

# ---- examples and benchmarks ----
examples: $(EXAMPLES)
build/examples/%: examples/%.c $(wildcard examples/*.h) $(STATIC)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC  $@")
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $< $(STATIC) $(LDLIBS)

example: build/examples/quickstart
	$(Q)build/examples/quickstart 8 build/quickstart.mmrc

example-cpp: build/examples/quickstart-cpp
	$(Q)build/examples/quickstart-cpp 8 build/quickstart-cpp.mmrc

# EM3_EPOCHS=2 is a short run (the default is 6).
EM3_EPOCHS ?= 6
example-em3: build/examples/em3_ranking
	$(Q)build/examples/em3_ranking build/em3_items.mmfc 1 $(EM3_EPOCHS)

# LightGCN on the Gowalla split (LightGCN's train.txt / test.txt layout).
GOWALLA ?= ../shared/data/gowalla
LIGHTGCN_ARGS ?=
example-lightgcn: build/examples/lightgcn
	$(Q)build/examples/lightgcn $(GOWALLA) $(LIGHTGCN_ARGS)

# AlignRec, BPR alone vs with the alignment losses, on Amazon Industrial and
# Scientific (IISAN's item titles and user sequences); ALIGNREC_ARGS="--epochs 2" is a smoke run.
IISAN_SCIENTIFIC ?= ../shared/data/iisan-scientific
ALIGNREC_ARGS ?=
example-alignrec: build/examples/alignrec
	$(Q)build/examples/alignrec $(IISAN_SCIENTIFIC) $(ALIGNREC_ARGS)

# IISAN (text-only) against ID-only SASRec and a frozen last layer on the same
# data; IISAN_ARGS="--epochs 2" is a smoke run, IISAN_ARGS="--synthetic" the
# two-modality run (intra+inter against intra and text-only; no data needed).
IISAN_ARGS ?=
example-iisan: build/examples/iisan
	$(Q)build/examples/iisan $(IISAN_SCIENTIFIC) --cache build/iisan_text.mmfc $(IISAN_ARGS)

# Two-tower retrieval on the same data: plain in-batch softmax, logQ
# correction, mixed negatives, ColBERT MaxSim and IntTower, the same budget each
# (title features from the IISAN example's cache); TWOTOWER_ARGS="--epochs 2"
# is a short run, TWOTOWER_ARGS="--synthetic" needs no data.
TWOTOWER_ARGS ?=
example-twotower: build/examples/twotower
	$(Q)build/examples/twotower $(IISAN_SCIENTIFIC) --cache build/iisan_text.mmfc $(TWOTOWER_ARGS)

# The serving side of the logq two-tower model on the same data: serving
# vectors, an index saved and served from its file (build/serve.mmix),
# top-20 requests with exclude lists checked against full ranking, request
# times, a hot swap under a searching thread; SERVE_ARGS="--synthetic" needs
# no data.
SERVE_ARGS ?=
example-serve: build/examples/serve
	$(Q)build/examples/serve $(IISAN_SCIENTIFIC) --cache build/iisan_text.mmfc \
	    --index build/serve.mmix $(SERVE_ARGS)

# IntTower pre-ranking on generated clicks: BCE on the paired FE score plus
# the CIR term, held-out AUC against the true click probabilities.
INTTOWER_EPOCHS ?= 6
example-inttower: build/examples/inttower_ctr
	$(Q)build/examples/inttower_ctr $(INTTOWER_EPOCHS)

# On-the-fly cascade distillation (teacher -> ColBERT -> two-tower student)
# on generated clicks, against the student trained alone.
CASCADE_EPOCHS ?= 6
example-cascade: build/examples/cascade
	$(Q)build/examples/cascade $(CASCADE_EPOCHS)

example-distill: build/examples/distill
	$(Q)build/examples/distill $(IISAN_SCIENTIFIC) --cache build/iisan_text.mmfc $(DISTILL_ARGS)

BENCH_BINS := $(patsubst bench/%.c,build/bench/%,$(wildcard bench/*.c))
build/bench/%: bench/%.c bench/bench_util.h $(STATIC)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(ALL_CFLAGS) -DMMREC_BENCH_DIR='"$(CURDIR)/bench"' -o $@ $< $(STATIC) $(LDLIBS)

bench: $(BENCH_BINS)
	$(Q)for b in $(BENCH_BINS); do $$b || exit 1; done

# ---- data-parallel training over MPI (optional: only these targets need
# mpicc; libmmrec itself has no MPI dependency) ----
MPICC ?= mpicc
MPIRUN ?= mpirun
# root may run Open MPI only when told so; ranks talk over shared memory;
# the ranks are not pinned to cores, which other jobs may be using (pinned,
# 2 ranks of mpi_lightgcn took twice as long a step on this 2-core VM)
MPIRUN_FLAGS ?= --allow-run-as-root --oversubscribe --mca btl self,vader --bind-to none
MPI_VERSION := 0
MPI_SONAME := libmmrec_mpi.so.$(MPI_VERSION)
MPI_SHARED := lib/$(MPI_SONAME)
MPI_SRCS := $(sort $(wildcard mpi/src/*.c))
MPI_CFLAGS := $(ALL_CFLAGS) -Impi/include
MPI_LINK := -Llib -lmmrec_mpi -lmmrec -Wl,-rpath,$(CURDIR)/lib

.PHONY: mpi mpi-test example-mpi-lightgcn
mpi: $(MPI_SHARED) lib/libmmrec_mpi.so build/mpi/mpi_lightgcn build/mpi/test_mpi

$(MPI_SHARED): $(MPI_SRCS) $(wildcard mpi/src/*.h) mpi/include/mmrec_mpi.h $(HEADERS) lib/libmmrec.so
	@mkdir -p lib
	@$(if $(Q),echo "  LD  $@")
	$(Q)$(MPICC) $(MPI_CFLAGS) -fPIC -fvisibility=hidden -shared -Wl,-soname,$(MPI_SONAME) \
	    -Wl,--no-undefined -o $@ $(MPI_SRCS) -Llib -lmmrec -lm

lib/libmmrec_mpi.so: $(MPI_SHARED)
	$(Q)ln -sf $(MPI_SONAME) $@

build/mpi/mpi_lightgcn: mpi/examples/mpi_lightgcn.c
build/mpi/test_mpi: mpi/tests/test_mpi.c
build/mpi/mpi_lightgcn build/mpi/test_mpi: mpi/include/mmrec_mpi.h $(wildcard examples/*.h) \
    lib/libmmrec_mpi.so
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC  $@")
	$(Q)$(MPICC) $(MPI_CFLAGS) -o $@ $(filter %.c,$^) $(MPI_LINK) -lm

mpi-test: build/mpi/test_mpi
	$(Q)$(MPIRUN) $(MPIRUN_FLAGS) -np 2 build/mpi/test_mpi

# LightGCN trained data-parallel; MPI_NP ranks, MPI_LIGHTGCN_ARGS="--epochs 2"
MPI_NP ?= 2
MPI_LIGHTGCN_ARGS ?=
example-mpi-lightgcn: build/mpi/mpi_lightgcn
	$(Q)$(MPIRUN) $(MPIRUN_FLAGS) -np $(MPI_NP) build/mpi/mpi_lightgcn $(GOWALLA) $(MPI_LIGHTGCN_ARGS)

clean:
	rm -rf build lib

# ---- Python bindings (bindings/python: the mmrec package, cffi ABI mode) ----
#   make python-test   the declarations against the headers, then pytest
#   make python-cdef   regenerate bindings/python/mmrec/_cdef.py
#   make install also installs the package into $(PYTHONDIR)
PYTHON ?= /usr/bin/python3
PYTHONDIR ?= $(PREFIX)/lib/python3/dist-packages
PY_DIR := bindings/python
.PHONY: python-test python-cdef install-python uninstall-python
python-cdef:
	$(Q)$(PYTHON) $(PY_DIR)/gen_cdef.py

python-test: lib/libmmrec.so build/examples/quickstart build/examples/lightgcn
	$(Q)$(PYTHON) $(PY_DIR)/gen_cdef.py --check
	$(Q)cd $(PY_DIR) && MMREC_ROOT=$(CURDIR) CC="$(CC)" $(PYTHON) -m pytest -q -p no:cacheprovider tests

install: install-python
install-python:
	install -d $(DESTDIR)$(PYTHONDIR)/mmrec
	install -m 644 $(PY_DIR)/mmrec/*.py $(DESTDIR)$(PYTHONDIR)/mmrec/

uninstall: uninstall-python
uninstall-python:
	rm -f $(addprefix $(DESTDIR)$(PYTHONDIR)/mmrec/,$(notdir $(wildcard $(PY_DIR)/mmrec/*.py)))
	-rmdir $(DESTDIR)$(PYTHONDIR)/mmrec

# ---- fuzzing (tests/fuzz: one libFuzzer harness per file parser) ----
#   make fuzz FUZZ_SECONDS=60   build every harness and run each for N seconds
#                               from a copy of its corpus (build/fuzz/corpus-<name>);
#                               fails on a crash, a leak or a sanitizer report
#   make fuzz-build             only build them (build/fuzz/fuzz_<name>)
#   make fuzz-corpus            rewrite the writer-made seeds in tests/fuzz/corpus
# The library is compiled in with clang's fuzzer instrumentation, ASan and
# UBSan, without the ifunc clones (their resolvers run before the sanitizer
# runtime), and as a fuzzing build (stored checksums not enforced, see
# src/io/io_internal.h). A crash input lands in build/fuzz/<name>-crash-*.
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_NAMES := checkpoint cache index npy lightgcn inter sequences
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L $(WARN) $(FPFLAGS) -Iinclude $(BLAS_CFLAGS) \
    -O1 -g -fno-omit-frame-pointer -DMMREC_NO_CLONES -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
FUZZ_OBJS := $(SRCS:src/%.c=build/fuzz/obj/%.o)
FUZZ_BINS := $(FUZZ_NAMES:%=build/fuzz/fuzz_%)
.PHONY: fuzz fuzz-build fuzz-corpus
build/fuzz/obj/%.o: src/%.c $(HEADERS) $(wildcard src/*/*.h) Makefile
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC  $< (fuzz)")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link $(FUZZ_SAN) -c $< -o $@

FUZZ_LIB := build/fuzz/libmmrec-fuzz.a
$(FUZZ_LIB): $(FUZZ_OBJS)
	$(Q)rm -f $@ && ar rcs $@ $(FUZZ_OBJS)

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(wildcard tests/fuzz/*.h) $(FUZZ_LIB)
	@$(if $(Q),echo "  LD  $@")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $(FUZZ_SAN) -o $@ $< $(FUZZ_LIB) $(LDLIBS)

fuzz-build: $(FUZZ_BINS)

fuzz: $(FUZZ_BINS)
	$(Q)for n in $(FUZZ_NAMES); do \
	    rm -rf build/fuzz/corpus-$$n && cp -r tests/fuzz/corpus/$$n build/fuzz/corpus-$$n && \
	    echo "  FUZZ $$n ($(FUZZ_SECONDS) s)" && \
	    if ! ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	        build/fuzz/fuzz_$$n -max_total_time=$(FUZZ_SECONDS) -timeout=20 \
	        -print_final_stats=1 -artifact_prefix=build/fuzz/$$n- build/fuzz/corpus-$$n \
	        > build/fuzz/$$n.log 2>&1; then \
	        tail -n 60 build/fuzz/$$n.log; echo "fuzz $$n: failed (build/fuzz/$$n.log)"; \
	        exit 1; fi; \
	    grep -h '^#[0-9].*\(DONE\|pulse\|NEW\|REDUCE\)' build/fuzz/$$n.log | tail -n 1; \
	done

build/fuzz/fuzz_corpus: tests/fuzz/fuzz_corpus.c tests/fuzz/fuzz_model.h $(STATIC)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $< $(STATIC) $(LDLIBS)

fuzz-corpus: build/fuzz/fuzz_corpus
	$(Q)build/fuzz/fuzz_corpus tests/fuzz/corpus
