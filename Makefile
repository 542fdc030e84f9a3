# convnet: `make` builds, `make test` runs the suite, `make train` trains the
# default CNN on Fashion-MNIST, `make install` installs.
# Missing Debian packages are installed first (as root, or through sudo).

BUILD ?= build
JOBS ?= $(shell nproc)
PREFIX ?= /usr/local
# Debian packages the build and the tests need.
DEB_PACKAGES = gcc make cmake pkg-config libstb-dev libomp-dev zlib1g-dev dataset-fashion-mnist
# The CLI's figures (convnet viz, plot, eval --confusion, train --report) draw with
# cairo, text in DejaVu Sans.
DEB_PACKAGES += libcairo2-dev fonts-dejavu-core
# Only `make test` needs these: headless Chromium renders the training report
# (tests/test_viz.c skips that check when it is missing).
TEST_DEB_PACKAGES = chromium valgrind

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps build test test-sanitize install train clean test-deps

all: build

deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

$(BUILD)/Makefile: CMakeLists.txt | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=$(PREFIX)

build: deps $(BUILD)/Makefile
	cmake --build $(BUILD) -j $(JOBS)

test: build test-deps
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-sanitize: deps test-deps
	cmake -S . -B $(BUILD)-asan -DCMAKE_BUILD_TYPE=Debug -DCN_SANITIZE=ON
	cmake --build $(BUILD)-asan -j $(JOBS)
	cd $(BUILD)-asan && ctest --output-on-failure -j $(JOBS)

test-deps:
	@$(MAKE) --no-print-directory deps DEB_PACKAGES="$(TEST_DEB_PACKAGES)"

install: build
	cmake --install $(BUILD)

# Trains the default model (lenet) on Fashion-MNIST; the last line printed is
# the test accuracy. The checkpoint lands in $(BUILD)/lenet.safetensors.
train: build
	$(BUILD)/convnet train --save $(BUILD)/lenet.safetensors

# `make bench`: every pass of bench/conv_suite.txt on 1 and 2 threads against the
# measured FMA peak and against oneDNN (Debian's libdnnl-dev, installed when
# missing; the reconfigure picks it up). BENCH_ARGS adds options, e.g.
# BENCH_ARGS="--reps 5 --problem r50_3x3".
.PHONY: bench bench-train
bench: deps
	@dpkg-query -W -f='$${Status}' libdnnl-dev 2>/dev/null | grep -q "ok installed" || { \
	  echo "installing: libdnnl-dev"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq libdnnl-dev; }
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=$(PREFIX)
	cmake --build $(BUILD) -j $(JOBS)
	$(BUILD)/convnet bench --compare onednn $(BENCH_ARGS)

# `make bench-train`: seconds per epoch (training + test evaluation) of
# `convnet train` and of the same model, data and hyper-parameters in PyTorch
# (bench/train_torch.py, Debian's python3-torch, installed when missing), one
# epoch each on BENCH_TRAIN_THREADS threads, side by side; ratio = convnet's
# seconds / PyTorch's (below 1: convnet is faster). BENCH_TRAIN_ROUNDS > 1
# runs the pairs that many times, alternating, and compares the medians:
# on a shared machine one pair can straddle a change of speed.
BENCH_TRAIN_MODELS ?= lenet resnet
BENCH_TRAIN_THREADS ?= 2
BENCH_TRAIN_ROUNDS ?= 1
bench-train: build
	@dpkg-query -W -f='$${Status}' python3-torch 2>/dev/null | grep -q "ok installed" || { \
	  echo "installing: python3-torch"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq python3-torch; }
	@set -e; rows=""; for r in $$(seq $(BENCH_TRAIN_ROUNDS)); do for m in $(BENCH_TRAIN_MODELS); do \
	  echo "== $$m: convnet (round $$r)"; \
	  c=$$($(BUILD)/convnet train --model $$m --epochs 1 --threads $(BENCH_TRAIN_THREADS) --json | grep '^{' | tail -n 1); \
	  [ -n "$$c" ] || { echo "convnet train --model $$m failed"; exit 1; }; \
	  echo "$$c"; echo "== $$m: pytorch (round $$r)"; \
	  p=$$(/usr/bin/python3 bench/train_torch.py --model $$m --epochs 1 --threads $(BENCH_TRAIN_THREADS) --json | grep '^{' | tail -n 1); \
	  [ -n "$$p" ] || { echo "bench/train_torch.py --model $$m failed"; exit 1; }; \
	  echo "$$p"; rows="$$rows$$m|$$c|$$p\n"; \
	done; done; \
	printf "$$rows" | /usr/bin/python3 bench/train_table.py

clean:
	rm -rf $(BUILD) $(BUILD)-asan $(BUILD)-fuzz $(BUILD)-lint-gcc $(BUILD)-lint-clang

# `make lint`: static checks, any finding fails. The whole project (library,
# CLI, tests, examples) built with gcc and with clang under LINT_CFLAGS, then
# .ci/lint over the clang build's compile_commands.json: cppcheck over every
# compiled file and clang-tidy (.clang-tidy: bugprone, CERT, clang static
# analyzer) over src/ and tools/. Reviewed false positives, each with its
# reason: .ci/cppcheck.supp and .ci/clang-tidy.supp.
LINT_PACKAGES = cppcheck clang clang-tidy
LINT_CFLAGS = -Wall -Wextra -Wshadow -Werror
.PHONY: lint
lint: deps
	@$(MAKE) --no-print-directory deps DEB_PACKAGES="$(LINT_PACKAGES)"
	cmake -S . -B $(BUILD)-lint-gcc -DCMAKE_C_COMPILER=gcc "-DCMAKE_C_FLAGS=$(LINT_CFLAGS)"
	cmake --build $(BUILD)-lint-gcc -j $(JOBS)
	cmake -S . -B $(BUILD)-lint-clang -DCMAKE_C_COMPILER=clang "-DCMAKE_C_FLAGS=$(LINT_CFLAGS)" \
	  -DCMAKE_EXPORT_COMPILE_COMMANDS=ON
	cmake --build $(BUILD)-lint-clang -j $(JOBS)
	.ci/lint $(BUILD)-lint-clang $(JOBS)

# Fuzzing: every fuzz/fuzz_*.c as a libFuzzer target (clang with ASan and
# UBSan, asserts on), each run for FUZZ_SECONDS seconds on a copy of its
# corpus (fuzz/corpus/NAME plus fuzz/regressions/NAME), JOBS at a time; any
# crash, leak, timeout or sanitizer report fails (fuzz/run.sh saves the
# inputs in $(BUILD)-fuzz/artifacts/).
FUZZ_SECONDS ?= 60
FUZZ_PACKAGES = clang libclang-rt-dev
FUZZ_TARGETS = $(basename $(notdir $(wildcard fuzz/fuzz_*.c)))
# Images of at most 2^22 pixels (src/io/image.c allows 2^28), so that no
# input takes more than milliseconds.
FUZZ_CFLAGS = -DIMG_MAX_PIXELS=4194304
.PHONY: fuzz fuzz-build
fuzz-build: deps
	@$(MAKE) --no-print-directory deps DEB_PACKAGES="$(FUZZ_PACKAGES)"
	cmake -S . -B $(BUILD)-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DCN_SANITIZE=ON \
	  -DCN_FUZZ=ON "-DCMAKE_C_FLAGS=-O1 -fsanitize=fuzzer-no-link -Wno-pass-failed $(FUZZ_CFLAGS)"
	cmake --build $(BUILD)-fuzz -j $(JOBS) --target $(FUZZ_TARGETS)
fuzz: fuzz-build
	fuzz/run.sh $(BUILD)-fuzz $(FUZZ_SECONDS) $(JOBS)
