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
CPPFLAGS += -D_GNU_SOURCE -Iruntime -Ilib -I$(BUILD)/proto
LDLIBS  += -lXNNPACK -lpthreadpool -lcpuinfo -lprotobuf-c -lopenblas -lz -lm -lpthread

DEB_PACKAGES := build-essential libprotobuf-c-dev protobuf-c-compiler libonnx-dev libxnnpack-dev \
	libpthreadpool-dev libcpuinfo-dev zlib1g-dev libopenblas-dev dataset-fashion-mnist \
	libonnx-testdata python3-onnx python3-torch python3-torchvision clang libclang-rt-14-dev chromium time

RUNTIME_SRC := $(wildcard runtime/*.c runtime/ops/*.c)
LIB_SRC     := $(wildcard lib/*.c)
TOOLS_SRC   := $(wildcard tools/*.c)
PROTO_C     := $(BUILD)/proto/onnx.pb-c.c
OBJ         := $(patsubst %.c,$(BUILD)/%.o,$(RUNTIME_SRC) $(LIB_SRC)) $(BUILD)/proto/onnx.pb-c.o
TOOLS_OBJ   := $(patsubst %.c,$(BUILD)/%.o,$(TOOLS_SRC))
TEST_SRC    := $(wildcard tests/test_*.c tests/bench_*.c)
TEST_BIN    := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))

.PHONY: all deps test demo asan bench paper clean format fuzz fuzz-bin
all: $(BUILD)/onnx-distill $(BUILD)/libonnxdistill.a $(TEST_BIN)

# Installs what is missing (as root, through apt-get); does nothing when all is there.
deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	command -v npm >/dev/null || missing="$$missing nodejs npm"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi
	@test -d tests/node_modules/onnxruntime-node || \
	  (cd tests && npm install --ignore-scripts --no-audit --no-fund onnxruntime-node >/dev/null)

$(PROTO_C): /usr/include/onnx/onnx.proto
	@mkdir -p $(dir $@)
	protoc-c --c_out=$(BUILD)/proto --proto_path=/usr/include/onnx /usr/include/onnx/onnx.proto

$(BUILD)/proto/onnx.pb-c.o: $(PROTO_C)
	$(CC) $(CPPFLAGS) $(BASE_CFLAGS) $(CFLAGS) -w -c $< -o $@

# Every object waits for the generated header.
$(BUILD)/%.o: %.c $(PROTO_C)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(BASE_CFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libonnxdistill.a: $(OBJ)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/onnx-distill: $(TOOLS_OBJ) $(BUILD)/libonnxdistill.a
	$(CC) $(BASE_CFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $(TOOLS_OBJ) $(BUILD)/libonnxdistill.a $(LDLIBS)

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

bench: deps
	$(MAKE) all
	tests/bench.sh

asan:
	$(MAKE) BUILD=build-asan CC=clang OPT=-O1 \
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
	clang -D_GNU_SOURCE -Iruntime -Ilib -Ibuild-fuzz/proto $(FUZZ_FLAGS) -fsanitize=fuzzer $< \
	  build-fuzz/libonnxdistill.a $(LDLIBS) -o $@

format:
	clang-format -i runtime/*.[ch] runtime/ops/*.[ch] lib/*.[ch] tools/*.[ch] tests/*.[ch]

clean:
	rm -rf build build-asan build-fuzz

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
