# Thin wrapper around CMake. `make run` and `make test` install what is missing first.
BUILD ?= build
JOBS ?= $(shell nproc)
LISTEN ?= 127.0.0.1:8080
CMAKE_FLAGS ?=

.PHONY: all deps test-deps build run test test-fast test-asan clean cluster bench format

all: build

deps:
	@scripts/deps.sh build

test-deps:
	@scripts/deps.sh test

build: deps
	@cmake -S . -B $(BUILD) $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# Starts the service with the embedded store and a demo sale, serving the buyer's page;
# the demo's reservations can be paid with the page's Pay button (--demo-payments: a demo
# switch, never for a server where money is involved).
run: build
	$(BUILD)/seckill serve --listen $(LISTEN) --demo --demo-payments

# Every test: a -Werror build, then the whole suite again under ASan+UBSan with the
# fuzzers (the parsers and the connection layer, clang), then the threaded tests under TSan.
test: test-deps
	@scripts/test.sh

# A local cluster on loopback ports: Redis (AOF always), PostgreSQL (`make cluster
# CLUSTER_DB=mysql`: MariaDB), three nodes behind nginx, the drain. Prints the URL;
# `scripts/cluster status|down` afterwards.
CLUSTER_DB ?= postgres
cluster: build
	@scripts/cluster up --db $(CLUSTER_DB)

# Formats every C file with .clang-format (make test checks it).
format:
	@git ls-files '*.c' '*.h' | xargs clang-format -i

clean:
	rm -rf build build-asan build-tsan
