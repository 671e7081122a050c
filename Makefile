# TigerChat — the commands a newcomer and CI run. See README.md.
GO      ?= go
BIN     := bin
# The fast suite must stay under 5 minutes on 2 cores.
SWARM_FAST_COUNT    ?= 300
CHAT_FAST_COUNT     ?= 100
DELIVERY_FAST_COUNT    ?= 300
DELIVERY_NIGHTLY_COUNT ?= 30000
# The nightly run (docs/simulator.md): seeds [START, START+COUNT) of both
# subjects and mixed lengths on every core, stopped after NIGHTLY_MINUTES;
# summary.json and one file per failing seed go to NIGHTLY_OUT.
NIGHTLY_MINUTES ?= 60
NIGHTLY_START   ?= 0
NIGHTLY_COUNT   ?= 1000000
NIGHTLY_OUT     ?= sim-nightly

.PHONY: all build test test-go bench-smoke vet fmt-check run sim sim-swarm sim-nightly clean bench-failover bench bench-history history-nightly test-sdk test-sdk-go test-sdk-js test-sdk-rust chaos chaos-nightly chaos-broken generate

all: build

# The static tigerchat stays under 15 MB (docs/deploy.md): the build fails
# above it.
TIGERCHAT_BYTES_MAX := 15000000

build:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags="-s -w" -o $(BIN)/ ./cmd/...
	@size=$$(wc -c < $(BIN)/tigerchat); if [ "$$size" -gt $(TIGERCHAT_BYTES_MAX) ]; then \
		echo "build: $(BIN)/tigerchat is $$size bytes, above $(TIGERCHAT_BYTES_MAX) (docs/deploy.md)"; exit 1; fi

# The fast suite: formatting, vet, unit and property tests (fuzz seed corpora
# run as ordinary tests), a few hundred simulator swarm seeds, and the Go
# and JS SDKs' conformance runs. The Rust SDK's (test-sdk-rust) compiles its
# crates first, minutes on a fresh machine: .ci/run runs it after this.
test: fmt-check vet test-go bench-smoke sim-swarm test-sdk-go test-sdk-js

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

test-go:
	$(GO) test -count=1 -timeout 420s ./...

# Every Go benchmark once (about 15 s), so that none breaks unnoticed;
# the figures come from make bench, bench-compare and bench-history.
bench-smoke:
	$(GO) test -count=1 -run '^$$' -bench . -benchtime 1x -timeout 300s ./...

sim-swarm: build
	./$(BIN)/tigersim -swarm -count $(SWARM_FAST_COUNT)
	./$(BIN)/tigersim -subject chat -swarm -count $(CHAT_FAST_COUNT)
	./$(BIN)/tigersim -subject delivery -swarm -count $(DELIVERY_FAST_COUNT)

# The client SDKs (sdk/, each its own package root) and their conformance
# scenarios (sdk/conformance) against real servers the tests start from
# bin/tigerchat on free 127.0.0.1 ports.
test-sdk: test-sdk-go test-sdk-js test-sdk-rust

test-sdk-go: build
	cd sdk/go && $(GO) vet ./... && TIGERCHAT_BIN=$(CURDIR)/$(BIN)/tigerchat $(GO) test -count=1 -timeout 300s ./...

# Node >= 20 (20 needs --experimental-websocket for the global WebSocket).
test-sdk-js: build
	@command -v node >/dev/null 2>&1 || { echo "test-sdk-js: node not found (.ci/run installs it)"; exit 1; }
	cd sdk/js && flag=$$(node -e 'process.exit(typeof WebSocket === "function" ? 0 : 1)' && echo "" || echo --experimental-websocket); \
		TIGERCHAT_BIN=$(CURDIR)/$(BIN)/tigerchat node $$flag --test test/conformance.test.js

# The Rust crate builds into a target dir outside the work tree, so that
# repeated runs on one machine reuse the compiled dependencies.
SDK_RUST_TARGET ?= $(HOME)/.cache/tigerchat/sdk-rust-target
test-sdk-rust: build
	@command -v cargo >/dev/null 2>&1 || { echo "test-sdk-rust: cargo not found (.ci/run installs it)"; exit 1; }
	cd sdk/rust && CARGO_TARGET_DIR=$(SDK_RUST_TARGET) TIGERCHAT_BIN=$(CURDIR)/$(BIN)/tigerchat cargo test --locked -q

# Regenerate the gRPC API's Go code (api/tigerchat/v1) from its .proto.
# The generated code is committed: building and testing need no protoc.
# Needs protoc (Debian: protobuf-compiler); the Go plugins are built at the
# versions go.mod requires.
generate:
	@command -v protoc >/dev/null 2>&1 || { echo "generate: protoc not found (apt-get install protobuf-compiler)"; exit 1; }
	@mkdir -p $(BIN)/tools
	GOBIN=$(CURDIR)/$(BIN)/tools $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go connectrpc.com/connect/cmd/protoc-gen-connect-go
	PATH="$(CURDIR)/$(BIN)/tools:$$PATH" protoc -I api --go_out=. --go_opt=module=tigerchat \
		--connect-go_out=. --connect-go_opt=module=tigerchat api/tigerchat/v1/chat.proto

# The nightly simulation, not part of `make test`. Split across machines
# with NIGHTLY_START/NIGHTLY_COUNT, then: tigersim -merge A.json B.json.
sim-nightly: build
	@mkdir -p $(NIGHTLY_OUT)/failures
	./$(BIN)/tigersim -nightly -start $(NIGHTLY_START) -count $(NIGHTLY_COUNT) -minutes $(NIGHTLY_MINUTES) \
		-json $(NIGHTLY_OUT)/summary.json -failures $(NIGHTLY_OUT)/failures
	./$(BIN)/tigersim -subject delivery -swarm -count $(DELIVERY_NIGHTLY_COUNT)

# A complete local cluster: 3 replicas of every shard on 127.0.0.1, in one
# process, with a fresh data dir; it prints where to connect.
run: build
	./$(BIN)/tigerchat dev

sim: build
	./$(BIN)/tigersim -seed 1

clean:
	rm -rf $(BIN)

# Failover with real processes: kill -9 the primary 20 times (bounded; cleans up).
bench-failover:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags="-s -w" -o $(BIN)/ ./cmd/tigerchat ./cmd/tigerbench
	./$(BIN)/tigerbench failover -trials 20

# History at scale (docs/benchmarks.md): one shard filled with 10^7
# messages over 10^5 rooms and a room of 10^6, then disk, memory, pages
# cold and warm, a wiped replica's sync, and every room read back after
# kill -9 of every replica. HISTORY_FLAGS sizes it (tigerbench history -h).
bench-history:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags="-s -w" -o $(BIN)/ ./cmd/tigerchat ./cmd/tigerbench
	./$(BIN)/tigerbench history $(HISTORY_FLAGS)

# Nightly, real processes: 100,000 messages into one room and 10,000 rooms
# of 10, a wiped replica synced by blocks, then kill -9 of every replica and
# every room read back from seq 1 with its chain verified (about 2 minutes).
history-nightly:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags="-s -w" -o $(BIN)/ ./cmd/tigerchat ./cmd/tigerbench
	./$(BIN)/tigerbench history -rooms 10000 -messages-per-room 10 -big-room 100000 -pages 500 -minutes 20

# The benchmark scenarios against TigerChat alone, through the edge's public API
# (publish, pipelined one shard / all shards / batched, fan-out, failover;
# the latency-against-load curve only with -scenarios curve); bounded, cleans up.
# Extra flags: make bench BENCH_FLAGS='-seconds 5 -scenarios publish'.
BENCH_FLAGS ?=
bench:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags="-s -w" -o $(BIN)/ ./cmd/tigerchat ./cmd/tigerbench
	./$(BIN)/tigerbench run $(BENCH_FLAGS)

# TigerChat side by side with NATS JetStream and Centrifugo: the
# same workloads against each system in turn, on 127.0.0.1, bounded in time
# (about 5 minutes on 2 cores), every process stopped by PID and every temp
# dir removed, also on Ctrl-C. The peers are installed once into bench/.bin
# (a separate Go module, so the server never depends on them). Extra flags:
# make bench-compare COMPARE_FLAGS='-seconds 5 -pprof /tmp/prof'.
# The latency-against-load curve (p50/p99 at 1, 4, 16 and 64 publishers,
# TigerChat and NATS, about a minute) is not in the default run:
# make bench-compare COMPARE_FLAGS='-scenarios curve'.
BENCH_BIN      := $(CURDIR)/bench/.bin
NATS_VERSION   := v2.15.2
CENTRI_VERSION := v6.9.1
COMPARE_FLAGS  ?=
.PHONY: bench-compare
bench-compare:
	@mkdir -p $(BENCH_BIN) $(BIN)
	@$(GO) version -m $(BENCH_BIN)/nats-server 2>/dev/null | grep -q "nats-server/v2[[:space:]]*$(NATS_VERSION)" || \
		GOBIN=$(BENCH_BIN) $(GO) install github.com/nats-io/nats-server/v2@$(NATS_VERSION)
	@$(GO) version -m $(BENCH_BIN)/centrifugo 2>/dev/null | grep -q "centrifugo/v6[[:space:]]*$(CENTRI_VERSION)" || \
		GOBIN=$(BENCH_BIN) $(GO) install github.com/centrifugal/centrifugo/v6@$(CENTRI_VERSION)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags="-s -w" -o $(BIN)/ ./cmd/tigerchat
	cd bench && $(GO) build -o .bin/compare ./cmd/compare
	./bench/.bin/compare -bin $(BENCH_BIN) -tigerchat $(BIN)/tigerchat $(COMPARE_FLAGS)

# Chaos on real processes (docs/reliability.md): 3 nodes and 2 edges on
# 127.0.0.1 behind UDP fault proxies, a Redis bus when redis-server is
# installed, WebSocket clients recording a history, a nemesis from a
# printed seed, and the checks at the end. About 10 minutes; bounded;
# every process stopped by PID and every temp dir removed, also on Ctrl-C.
# Extra flags: make chaos CHAOS_FLAGS='-seed 42 -duration 2m'.
CHAOS_FLAGS ?=
chaos:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/ ./cmd/tigerchat ./cmd/tigerchaos
	./$(BIN)/tigerchaos -bin $(BIN)/tigerchat -duration 9m $(CHAOS_FLAGS)

# An hour of chaos in rounds of 10 minutes, each with the next seed.
chaos-nightly:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/ ./cmd/tigerchat ./cmd/tigerchaos
	./$(BIN)/tigerchaos -bin $(BIN)/tigerchat -rounds 0 -total 60m -duration 9m $(CHAOS_FLAGS)

# The same chaos against a deliberately broken build that acknowledges
# before its writes are durable (build tag tigerchat_unsafe_lazysync):
# the checks must fail. Never deploy bin/unsafe/.
chaos-broken:
	@mkdir -p $(BIN)/unsafe
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/ ./cmd/tigerchaos
	CGO_ENABLED=0 $(GO) build -trimpath -tags tigerchat_unsafe_lazysync -o $(BIN)/unsafe/ ./cmd/tigerchat
	! ./$(BIN)/tigerchaos -bin $(BIN)/unsafe/tigerchat -duration 9m $(CHAOS_FLAGS)
