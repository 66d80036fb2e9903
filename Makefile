# Two entry points (README): `make demo` runs the main job, `make test` runs the tests.
# Each creates .venv, installs the project with what it needs, and installs the Debian package
# with Fashion-MNIST when apt-get is there.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
MODELS ?= models

.PHONY: setup data-deps test-deps image-deps image demo test clean

# The server (.) depends on the client distribution (./client), which holds the wire package: both
# are named here so pip takes knnserve-client from this checkout. Every package, the installers
# included, comes at the version requirements/dev.lock pins, so a registry release cannot change what
# the tests run on. What builds from source (the two editable distributions; hnswlib and annoy of the
# peers extra) builds with the locked build tools installed first (no build isolation).
# UNLOCKED=1 resolves afresh instead: how the lock is refreshed (README, *Dependencies*).
DEV_LOCK := requirements/dev.lock
LOCK_ARGS = $(if $(UNLOCKED),,-c $(DEV_LOCK))
BUILD_TOOLS = pip setuptools wheel pybind11 numpy
$(STAMP): pyproject.toml client/pyproject.toml $(DEV_LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade $(LOCK_ARGS) $(BUILD_TOOLS)
	$(BIN)/python -m pip install --quiet --no-build-isolation $(LOCK_ARGS) -e ./client -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP) data-deps

# Debian packages, only the missing ones. Both commands: dataset-fashion-mnist (the default dataset).
# `make test` also: curl (the REST tests run docs/service.md's curl lines as written),
# docker-compose (the test of deploy/compose.yaml runs `docker-compose config`),
# and chromium with chromium-driver (the inspection page's browser
# tests drive headless Chromium through Selenium). Without apt-get or root, a note: Fashion-MNIST is
# then downloaded on first use into ~/.cache/knnserve, while the compose check and the browser tests
# fail under `make test` (KNNSERVE_REQUIRE_TOOLS=1).
# The image (`make image`, and `make test` before its tests): docker.io (dockerd) and mmdebstrap (a
# stand-in base from Debian packages where the public base image cannot be pulled).
DATA_PACKAGES = $(if $(wildcard $(FASHION_MNIST)),,dataset-fashion-mnist)
IMAGE_PACKAGES = $(if $(shell command -v dockerd)$(wildcard /usr/sbin/dockerd /usr/bin/dockerd),,docker.io) $(if $(shell command -v mmdebstrap),,mmdebstrap)
TEST_PACKAGES = $(DATA_PACKAGES) $(IMAGE_PACKAGES) \
	$(if $(shell command -v curl),,curl) \
	$(if $(shell command -v docker-compose),,docker-compose) \
	$(if $(shell command -v chromium),,chromium) \
	$(if $(shell command -v chromedriver),,chromium-driver)

define apt_install
	@packages="$(strip $(1))"; \
	if [ -z "$$packages" ]; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		apt-get -o DPkg::Lock::Timeout=600 update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq $$packages; \
	elif command -v sudo >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then \
		sudo apt-get -o DPkg::Lock::Timeout=600 update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq $$packages; \
	else \
		echo "note: apt-get unavailable; not installed: $$packages"; \
	fi
endef

data-deps:
	$(call apt_install,$(DATA_PACKAGES))

test-deps:
	$(call apt_install,$(TEST_PACKAGES))

image-deps:
	$(call apt_install,$(IMAGE_PACKAGES))

# knnserve:dev from deploy/Dockerfile (scripts/build_image.sh: the public base, or a stand-in built
# from Debian packages where no image registry answers; docker's cache skips what did not change).
# dockerd is started for it when none runs (as root), and stopped after.
image: image-deps
	scripts/with_dockerd.sh scripts/build_image.sh

# Trains models/fashion-mnist-cnn/1 on first run (a ConvNet on the training split, its ONNX export
# checked against torch; k, metric and the softmax head chosen on the validation rows' embeddings),
# serves it on 127.0.0.1, sends the raw test images through the client, reports, stops.
# DEMO_FEATURES=pixels runs the pixel demo instead (no network to train: about a minute).
DEMO_FEATURES ?= cnn
demo: setup
	$(BIN)/knnserve demo --models $(MODELS) --features $(DEMO_FEATURES)

# KNNSERVE_REQUIRE_DATA=1: end-to-end tests fail instead of skipping when the dataset is missing;
# KNNSERVE_REQUIRE_TOOLS=1: so do the deploy/ checks when a checker (docker-compose, ...) is missing,
# and the browser tests of the inspection page when chromium or chromedriver is missing, and the
# image tests (tests/image) when docker is. The image is built first, inside one dockerd session.
test: $(STAMP) test-deps
	KNNSERVE_REQUIRE_DATA=1 KNNSERVE_REQUIRE_TOOLS=1 scripts/with_dockerd.sh \
		sh -c 'scripts/build_image.sh --optional && $(BIN)/python -m pytest'

clean:
	rm -rf $(VENV) .pytest_cache
