# TigerChat — the commands a newcomer and CI run. See README.md.
GO      ?= go
BIN     := bin
# The fast suite must stay under 5 minutes on 2 cores.
SWARM_FAST_COUNT    ?= 300
SWARM_NIGHTLY_COUNT ?= 30000
CHAT_FAST_COUNT     ?= 100
CHAT_NIGHTLY_COUNT  ?= 10000

.PHONY: all build test test-go vet fmt-check run sim sim-swarm sim-nightly clean bench-failover

all: build

build:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags="-s -w" -o $(BIN)/ ./cmd/...

# The fast suite: formatting, vet, unit and property tests (fuzz seed corpora
# run as ordinary tests), then a few hundred simulator swarm seeds.
test: fmt-check vet test-go sim-swarm

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

test-go:
	$(GO) test -count=1 -timeout 240s ./...

sim-swarm: build
	./$(BIN)/tigersim -swarm -count $(SWARM_FAST_COUNT)
	./$(BIN)/tigersim -subject chat -swarm -count $(CHAT_FAST_COUNT)

# The nightly swarm: tens of thousands of seeds; not part of `make test`.
sim-nightly: build
	./$(BIN)/tigersim -swarm -count $(SWARM_NIGHTLY_COUNT)
	./$(BIN)/tigersim -subject chat -swarm -count $(CHAT_NIGHTLY_COUNT)

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
