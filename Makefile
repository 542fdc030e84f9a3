# convnet: `make` builds, `make test` runs the suite, `make train` trains the
# default CNN on Fashion-MNIST, `make install` installs.
# Missing Debian packages are installed first (as root, or through sudo).

BUILD ?= build
JOBS ?= $(shell nproc)
PREFIX ?= /usr/local
# Debian packages the build and the tests need.
DEB_PACKAGES = gcc make cmake pkg-config libstb-dev libomp-dev zlib1g-dev dataset-fashion-mnist

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps build test test-sanitize install train clean

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

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-sanitize: deps
	cmake -S . -B $(BUILD)-asan -DCMAKE_BUILD_TYPE=Debug -DCN_SANITIZE=ON
	cmake --build $(BUILD)-asan -j $(JOBS)
	cd $(BUILD)-asan && ctest --output-on-failure -j $(JOBS)

install: build
	cmake --install $(BUILD)

# Trains the default model (lenet) on Fashion-MNIST; the last line printed is
# the test accuracy. The checkpoint lands in $(BUILD)/lenet.safetensors.
train: build
	$(BUILD)/convnet train --save $(BUILD)/lenet.safetensors

clean:
	rm -rf $(BUILD) $(BUILD)-asan
