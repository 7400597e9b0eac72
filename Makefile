# onnx-distill. `make` builds build/onnx-distill and build/libonnxdistill.a; `make test` runs
# every test; `make demo` runs the main job on the bundled teacher; `make asan` builds with
# sanitizers into build-asan/; `make fuzz SECONDS=N` runs the libFuzzer targets (build-fuzz/) N
# seconds each. Each target installs its Debian packages first when missing.

CC      ?= gcc
BUILD   ?= build
OPT     ?= -O3
CFLAGS  ?= $(OPT) -g
# Kept by the builds that replace CFLAGS on the command line (asan, fuzz).
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -fno-math-errno -fopenmp-simd
# The library's objects go into both the .a and the .so. -fno-semantic-interposition keeps
# GCC inlining and specialising calls between exported functions as it does without -fPIC.
PIC_CFLAGS := -fPIC -fno-semantic-interposition
LDLIBS  += -ljpeg -lpng -lXNNPACK -lcpuinfo -lprotobuf-c -lopenblas -lz -lm -lpthread
VERSION := $(shell sed -n 's/^\#define OD_VERSION "\(.*\)"/\1/p' lib/onnx_distill.h)
SOMAJOR := $(firstword $(subst ., ,$(VERSION)))

DEB_PACKAGES := build-essential libprotobuf-c-dev protobuf-c-compiler libonnx-dev libxnnpack-dev \
	libpthreadpool-dev libcpuinfo-dev zlib1g-dev libopenblas-dev libjpeg62-turbo-dev libpng-dev dataset-fashion-mnist \
	libonnx-testdata python3-onnx python3-torch python3-torchvision clang libclang-rt-14-dev chromium time \
	pkg-config man-db groff-base libopenmpi-dev openmpi-bin

include proto/proto.mk

# The public headers: what `make install` installs and all that tools/ may include. They are
# staged into $(BUILD)/include, the only library include path tools/ gets, so a tool that
# reaches for an internal header (op.h, *_internal.h) fails to compile.
PUBLIC_HEADERS := lib/onnx_distill.h lib/od_onnx.h lib/od_dataset.h lib/od_shrink.h \
	lib/od_distill.h lib/od_passes.h lib/od_report.h lib/od_comm.h runtime/od_runtime.h runtime/od_train.h
STAGED_HEADERS := $(addprefix $(BUILD)/include/,$(notdir $(PUBLIC_HEADERS)))
LIB_CPPFLAGS   := -D_GNU_SOURCE -Iruntime -Ilib $(PROTO_INCLUDE)
TOOLS_CPPFLAGS := -D_GNU_SOURCE -I$(BUILD)/include

RUNTIME_SRC := $(wildcard runtime/*.c runtime/ops/*.c)
LIB_SRC     := $(wildcard lib/*.c)
TOOLS_SRC   := $(wildcard tools/*.c)
# Open MPI when installed (mpicc says how to compile and link against it): lib/comm_mpi.c and
# -DOD_HAVE_MPI; without it the single-process communicator alone (lib/comm.c).
MPI_LINK    := $(shell mpicc --showme:link 2>/dev/null)
ifneq ($(MPI_LINK),)
LIB_CPPFLAGS += -DOD_HAVE_MPI $(shell mpicc --showme:compile 2>/dev/null)
LDLIBS      += $(MPI_LINK)
else
LIB_SRC     := $(filter-out lib/comm_mpi.c,$(LIB_SRC))
endif
OBJ         := $(patsubst %.c,$(BUILD)/%.o,$(RUNTIME_SRC) $(LIB_SRC)) $(PROTO_OBJ)
TOOLS_OBJ   := $(patsubst %.c,$(BUILD)/%.o,$(TOOLS_SRC))
TEST_SRC    := $(wildcard tests/test_*.c tests/bench_*.c)
TEST_BIN    := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))
LIBS        := $(BUILD)/libonnxdistill.a $(BUILD)/libonnxdistill.so

.PHONY: all deps test demo asan bench paper vit clean format fuzz fuzz-bin install
all: $(BUILD)/onnx-distill $(LIBS) $(BUILD)/onnx-distill.1 $(TEST_BIN)

# Installs what is missing (as root, through apt-get); does nothing when all is there. ONNX Runtime
# for Node is pinned to the version the benchmarks and the mission compare against (npm's latest
# would otherwise change the peer under the numbers).
ORT_VERSION := 1.30.0
deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	command -v npm >/dev/null || missing="$$missing nodejs npm"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi
	@v=$$(sed -n 's/^  "version": "\(.*\)",$$/\1/p' tests/node_modules/onnxruntime-node/package.json 2>/dev/null); \
	[ "$$v" = "$(ORT_VERSION)" ] || (cd tests && echo "installing onnxruntime-node $(ORT_VERSION)" && \
	  npm install --ignore-scripts --no-audit --no-fund --no-save onnxruntime-node@$(ORT_VERSION) >/dev/null)

# Every object waits for the generated header.
$(BUILD)/%.o: %.c $(PROTO_C)
	@mkdir -p $(dir $@)
	$(CC) $(LIB_CPPFLAGS) $(BASE_CFLAGS) $(PIC_CFLAGS) $(CFLAGS) $(KERNEL_CFLAGS) -MMD -MP -c $< -o $@

# The direct convolution kernels, where the sanitizer build spends most of its time (their
# innermost loops are OD_UNSANITIZED): KERNEL_OPT, when set, is their optimisation level there.
HOT_KERNELS := runtime/ops/conv_wide.c runtime/ops/conv_pairs.c runtime/ops/conv8.c runtime/ops/conv_dw_direct.c runtime/ops/conv_depthwise.c runtime/ops/conv_winograd.c
$(patsubst %.c,$(BUILD)/%.o,$(HOT_KERNELS)): KERNEL_CFLAGS := $(KERNEL_OPT)

define stage_header
$(BUILD)/include/$(notdir $(1)): $(1)
	@mkdir -p $$(dir $$@)
	cp $$< $$@
endef
$(foreach h,$(PUBLIC_HEADERS),$(eval $(call stage_header,$(h))))

# tools/ sees the staged public headers and its own, nothing else.
$(TOOLS_OBJ): $(BUILD)/%.o: %.c $(STAGED_HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(TOOLS_CPPFLAGS) $(BASE_CFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libonnxdistill.a: $(OBJ)
	rm -f $@ && ar rcs $@ $^

# The shared library exports what the public headers declare and nothing else: the version
# script lists every defined symbol named in a public header; the rest (the internals and
# protobuf-c's generated onnx__* code) stay local. Except the pthreadpool_* functions of
# runtime/pthreadpool.c: libXNNPACK must find them before libpthreadpool's.
$(BUILD)/libonnxdistill.map: $(BUILD)/libonnxdistill.a $(PUBLIC_HEADERS)
	grep -ho '\bod_[a-z0-9_]*' $(PUBLIC_HEADERS) | sort -u > $@.names
	nm -g --defined-only $(BUILD)/libonnxdistill.a | awk '$$2 ~ /[TDRB]/ {print $$3}' | sort -u > $@.all
	{ comm -12 $@.all $@.names; grep '^pthreadpool_' $@.all; } | { echo 'ONNXDISTILL_$(SOMAJOR) { global:'; sed 's/.*/  &;/'; \
	  echo 'local: *; };'; } > $@
	rm -f $@.names $@.all

$(BUILD)/libonnxdistill.so: $(OBJ) $(BUILD)/libonnxdistill.map
	$(CC) -shared $(LDFLAGS) -Wl,-soname,libonnxdistill.so.$(SOMAJOR) \
	  -Wl,--version-script,$(BUILD)/libonnxdistill.map -o $@ $(OBJ) $(LDLIBS)

$(BUILD)/onnx-distill: $(TOOLS_OBJ) $(BUILD)/libonnxdistill.a
	$(CC) $(BASE_CFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $(TOOLS_OBJ) $(BUILD)/libonnxdistill.a $(LDLIBS)

# The man page, printed from the same option tables as --help.
$(BUILD)/onnx-distill.1: $(BUILD)/onnx-distill
	$< --man > $@.tmp && mv $@.tmp $@

# make install PREFIX=/usr/local DESTDIR=: the program, its man page, both libraries, the
# public headers (in include/onnx-distill/) and onnx-distill.pc for pkg-config.
PREFIX  ?= /usr/local
DESTDIR ?=
LIBDIR  ?= $(PREFIX)/lib
INCDIR  := $(PREFIX)/include/onnx-distill
install: $(BUILD)/onnx-distill $(LIBS) $(BUILD)/onnx-distill.1
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCDIR) \
	  $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 755 $(BUILD)/onnx-distill $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(BUILD)/onnx-distill.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 644 $(BUILD)/libonnxdistill.a $(DESTDIR)$(LIBDIR)/
	install -m 755 $(BUILD)/libonnxdistill.so $(DESTDIR)$(LIBDIR)/libonnxdistill.so.$(VERSION)
	ln -sf libonnxdistill.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libonnxdistill.so.$(SOMAJOR)
	ln -sf libonnxdistill.so.$(SOMAJOR) $(DESTDIR)$(LIBDIR)/libonnxdistill.so
	install -m 644 $(PUBLIC_HEADERS) $(DESTDIR)$(INCDIR)/
	printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$(LIBDIR)' 'includedir=$${prefix}/include' '' \
	  'Name: onnx-distill' 'Description: ONNX teacher to small student: shrink, distil, optimize, run' \
	  'Version: $(VERSION)' 'Cflags: -I$${includedir}/onnx-distill' 'Libs: -L$${libdir} -lonnxdistill' \
	  'Libs.private: $(LDLIBS)' > $(DESTDIR)$(LIBDIR)/pkgconfig/onnx-distill.pc

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(BUILD)/libonnxdistill.a
	$(CC) $(BASE_CFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libonnxdistill.a $(LDLIBS)

# Every suite against the normal build, again against the ASan/UBSan build (with less data:
# OD_TEST_QUICK=1), and each fuzz target for SECONDS (default 10); suites run side by side, one
# per CPU (tests/run_all.sh).
NPROC := $(shell nproc 2>/dev/null || echo 2)
test: deps
	$(MAKE) -j$(NPROC) all
	$(MAKE) -j$(NPROC) asan
	$(MAKE) -j$(NPROC) fuzz-bin
	BUILD=$(BUILD) ASAN_BUILD=build-asan FUZZ_SECONDS=$(SECONDS) tests/run_all.sh

demo: deps
	$(MAKE) all
	tests/demo.sh

paper: deps
	$(MAKE) all
	tests/paper.sh

# issue 14's ViT bar: a ViT teacher trained on Fashion-MNIST, its width/depth 0.5 student
vit: deps
	$(MAKE) all
	BUILD=$(BUILD) tests/vit.sh

bench: deps
	$(MAKE) all
	tests/bench.sh
	BUILD=$(BUILD) tests/bench_budget.sh

asan:
	$(MAKE) BUILD=build-asan CC=clang OPT=-O1 KERNEL_OPT=-O2 \
	  CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	  LDFLAGS="-fsanitize=address,undefined" all

# libFuzzer targets (tests/fuzz/fuzz_*.c) over the library built with coverage, ASan and UBSan.
SECONDS    ?= 10
FUZZ_FLAGS := -O1 -g -std=c11 -D_GNU_SOURCE -fno-omit-frame-pointer -fsanitize=address,undefined \
	-fno-sanitize-recover=undefined
FUZZ_BIN   := $(patsubst tests/fuzz/%.c,build-fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))

fuzz: deps
	$(MAKE) fuzz-bin
	tests/fuzz/run.sh $(SECONDS)

fuzz-bin:
	$(MAKE) BUILD=build-fuzz CC=clang CFLAGS="$(FUZZ_FLAGS) -fsanitize=fuzzer-no-link" \
	  build-fuzz/libonnxdistill.a
	$(MAKE) $(FUZZ_BIN)

build-fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_common.h build-fuzz/libonnxdistill.a
	clang -D_GNU_SOURCE -Iruntime -Ilib -Iproto -Ibuild-fuzz/proto $(FUZZ_FLAGS) -fsanitize=fuzzer $< \
	  build-fuzz/libonnxdistill.a $(LDLIBS) -o $@

format:
	clang-format -i runtime/*.[ch] runtime/ops/*.[ch] lib/*.[ch] tools/*.[ch] tests/*.[ch]

clean:
	rm -rf build build-asan build-fuzz

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
