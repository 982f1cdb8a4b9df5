# The README's two commands are `make run` and `make test`; everything else is for developers.
SHELL := /bin/bash
JOBS ?= $(shell nproc)
RELEASE := build/release
ASAN := build/asan
PORT_LISTEN ?= 127.0.0.1:8080

.PHONY: run test deps deps-test build build-asan web unit unit-asan integration integration-pg integration-asan \
	web-unit web-e2e cluster-test bench bench-smoke \
	format format-check clean

run: deps build web
	$(RELEASE)/chatd --listen $(PORT_LISTEN) --data-dir ./data --web-root web/dist

test: deps-test build unit integration integration-pg build-asan unit-asan integration-asan web web-unit web-e2e \
	bench-smoke cluster-test
	@echo "all test suites passed"

deps:
	scripts/install-deps.sh

deps-test:
	scripts/install-deps.sh --test

$(RELEASE)/build.ninja:
	cmake -S . -B $(RELEASE) -G Ninja -DCMAKE_BUILD_TYPE=Release -DCHATD_WERROR=$${CHATD_WERROR:-ON}

$(ASAN)/build.ninja:
	cmake -S . -B $(ASAN) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCHATD_SANITIZE=ON -DCHATD_WERROR=$${CHATD_WERROR:-ON}

build: $(RELEASE)/build.ninja
	cmake --build $(RELEASE) -j $(JOBS)

build-asan: $(ASAN)/build.ninja
	cmake --build $(ASAN) -j $(JOBS)

# The store conformance suite runs every backend: SQLite in a temp dir and PostgreSQL on a
# throwaway local cluster (scripts/pg-test-server.sh); the cluster-state suite (presence, rate
# limits, token revocation) runs in process and on a throwaway redis-server (scripts/redis-test-server.sh).
unit: build
	dsn=$$(scripts/pg-test-server.sh start) && redis=$$(scripts/redis-test-server.sh start) && \
	  CHATD_TEST_PG_DSN=$$dsn CHATD_TEST_REDIS_URL=$$redis \
	  ctest --test-dir $(RELEASE) --output-on-failure -j $(JOBS)

unit-asan: build-asan
	dsn=$$(scripts/pg-test-server.sh start) && redis=$$(scripts/redis-test-server.sh start) && \
	  CHATD_TEST_PG_DSN=$$dsn CHATD_TEST_REDIS_URL=$$redis \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --test-dir $(ASAN) --output-on-failure -j $(JOBS) -E clang_format_check

server/tests/integration/node_modules: server/tests/integration/package-lock.json
	cd server/tests/integration && npm ci --no-audit --no-fund
	touch $@

integration: build server/tests/integration/node_modules
	cd server/tests/integration && CHATD_BIN=$(CURDIR)/$(RELEASE)/chatd npm test

# The same suite with chatd on PostgreSQL (--store postgres://...), one fresh database per server.
integration-pg: build server/tests/integration/node_modules
	dsn=$$(scripts/pg-test-server.sh start) && cd server/tests/integration && \
	  CHATD_TEST_PG_ADMIN_DSN=$$dsn CHATD_BIN=$(CURDIR)/$(RELEASE)/chatd npm test

integration-asan: build-asan server/tests/integration/node_modules
	cd server/tests/integration && CHATD_SANITIZED=1 CHATD_BIN=$(CURDIR)/$(ASAN)/chatd \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 npm test

# Cluster mode: PostgreSQL + Redis + three chatd nodes + nginx on loopback (scripts/cluster.sh), then the
# cross-node and failure tests (kill -9 of a node, PostgreSQL and Redis restarts). CLUSTER_PORT_BASE
# (default 18080) moves nginx and the nodes (base+1..base+3) off ports that are taken.
cluster-test: build server/tests/integration/node_modules
	scripts/cluster.sh start
	cd server/tests/cluster && node --test --test-concurrency=1 *.test.mjs; rc=$$?; \
	  cd $(CURDIR) && scripts/cluster.sh stop; exit $$rc

# `npm install` with the committed lock, not `npm ci`: npm 11 leaves Vite's Windows-only optional
# dependency out of a lock written on Linux, and `npm ci` then refuses the lock as out of sync.
web/node_modules: web/package-lock.json
	cd web && npm install --no-audit --no-fund
	touch $@

web: web/node_modules
	cd web && npm run build

web-unit: web/node_modules
	cd web && npm test

web-e2e: build web
	cd web && CHATD_BIN=$(CURDIR)/$(RELEASE)/chatd CHROMIUM=/usr/bin/chromium npm run e2e

# chat-bench: a tiny run of every workload that fails on loss, duplicates or errors (timings are
# reported, never asserted), on one chatd and on a 3-node cluster (PostgreSQL, Redis, nginx on
# 19080..19087), then its NATS and Socket.IO protocol paths against a private nats-server and a
# Socket.IO 4 server; `make bench` is the measured run behind docs/benchmarks.md.
bench-smoke: build
	bench/run.sh --smoke
	TARGET=cluster PORT=19080 bench/run.sh --smoke
	bench/nats-smoke.sh
	bench/socketio-smoke.sh

bench: build
	bench/run.sh

format:
	clang-format -i $$(git ls-files 'server/*.cpp' 'server/*.hpp' 'bench/*.cpp' 'bench/*.hpp')

format-check:
	clang-format --dry-run -Werror $$(git ls-files 'server/*.cpp' 'server/*.hpp' 'bench/*.cpp' 'bench/*.hpp')

clean:
	rm -rf build
