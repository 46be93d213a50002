# Realmstream developer targets. The workspace root is not a module: build and
# test with the `work` pattern or per module.
SHELL := /bin/bash
MODULES := libs services/gateway services/world services/persist services/monitor stack e2e deploy tools/healthcheck
GO ?= go
PROTOC_GEN_GO := $(shell go env GOPATH)/bin/protoc-gen-go

.PHONY: run bots capacity test test-short bench lint vet fmt fmt-check proto proto-check build gowork-off race ts-deps demo test-ts

## run: the whole backend on this machine (embedded NATS, Pebble, in-process locks) with a few bots
run:
	$(GO) run ./stack/cmd/realmstream run --bots 20

## bots: a swarm of bots against a running stack (127.0.0.1:7000)
bots:
	$(GO) run ./stack/cmd/realmstream bots --count 100 --duration 30s

## capacity: the capacity curve (250..3000 bots at 10 moves/s, 60s each, stack and bare pipeline; ~25 min;
## run on a quiet machine). Report in capacity.json. Smaller: make capacity CAPACITY_ARGS="--bots 100,200 --duration 10s"
capacity:
	mkdir -p bin
	$(GO) build -o bin/realmstream ./stack/cmd/realmstream
	bin/realmstream bench capacity --json capacity.json $(CAPACITY_ARGS)

## build: every binary into ./bin
build:
	mkdir -p bin
	$(GO) build -o bin/ ./services/gateway/cmd/gateway ./services/world/cmd/world ./services/persist/cmd/persist ./services/monitor/cmd/monitor ./stack/cmd/realmstream

## test: everything CI checks; installs and starts what it needs first (scripts/test-env.sh)
test: test-env lint proto-check gowork-off
	$(GO) test -count=1 -timeout 25m work
	$(GO) test -count=1 -race -timeout 25m $(RACE_PKGS)
	$(GO) test -count=1 -run TestSpinModel ./libs/mpsc/ -args -spin
	$(MAKE) test-ts

## test-env: install and start what the tests need (PostgreSQL, Redis, Chromium, Node.js, protoc, ...); make test runs it first
test-env:
	bash scripts/test-env.sh

# Packages with concurrent code: run again under the race detector.
RACE_PKGS := ./libs/mpsc/... ./libs/lock/... ./libs/zonelog/... ./libs/bots/... ./libs/client/... ./libs/shard/... \
	./services/gateway/... ./services/world/... ./services/persist/... ./services/monitor/... \
	./e2e/faultproxy/... ./e2e/audit/...

race:
	$(GO) test -count=1 -race -timeout 25m $(RACE_PKGS)

## bench: the benchmarks recorded in docs/benchmarks.md (long; run on a quiet machine)
bench:
	bash libs/mpsc/bench.sh /tmp/bench-mpsc  # MPSC ring (benchstat) and gateway ingest, issue 12
	cd libs && $(GO) test -run XXX -bench AcquireRelease -benchtime 20000x -count 3 ./lock/ | tee /tmp/bench-lock.txt
	cd services/world && $(GO) test -run XXX -bench 'Tick|Replay' -benchtime 20x -count 3 ./internal/zone/ | tee /tmp/bench-world.txt
	cd services/persist && $(GO) test -run XXX -bench Pipelines -benchtime 2x -count 3 ./internal/pipeline | tee /tmp/bench-persist.txt
	cd services/persist && $(GO) test -run XXX -bench DedupPaths -benchtime 2x -count 3 ./internal/pgstore | tee /tmp/bench-dedup.txt
	cd services/monitor && $(GO) test -run XXX -bench BenchmarkTick -benchtime 200x -count 5 ./internal/rules/ | tee /tmp/bench-rules.txt

lint: vet fmt-check

vet:
	$(GO) vet work

fmt:
	gofmt -w $$(git ls-files '*.go')

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed (run make fmt):"; echo "$$out"; exit 1; fi

## proto: regenerate the protobuf Go code, the TypeScript SDK's types and the demo bundle that embeds them (needs protoc, protoc-gen-go, node and npm)
proto: ts-deps
	@test -x $(PROTOC_GEN_GO) || $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
	cd libs/schema && PATH="$$PATH:$$(go env GOPATH)/bin" protoc -I . --go_out=. --go_opt=paths=source_relative client.proto world.proto ops.proto
	cd clients/ts && npm run --silent gen && npm run --silent build:demo

## proto-check: fail when the generated code is stale
proto-check: proto
	@git diff --exit-code -- libs/schema clients/ts/src/gen || { echo "generated protobuf code is stale: run make proto and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- clients/ts/src/gen)" || { echo "new generated TypeScript files: run make proto and commit clients/ts/src/gen"; exit 1; }

## ts-deps: the TypeScript SDK's npm packages, from the committed package-lock.json
ts-deps:
	@test -x clients/ts/node_modules/.bin/protoc-gen-es || (cd clients/ts && npm ci --no-audit --no-fund)

## demo: rebuild the browser demo (stack/internal/play/dist, embedded in realmstream and served at /play/)
demo: ts-deps
	cd clients/ts && npm run --silent build:demo

## test-ts: the TypeScript SDK's type check, its tests and the headless-Chromium demo test, each against
## a real one-process stack; fails when the committed demo bundle is stale
test-ts: ts-deps
	cd clients/ts && npm run --silent typecheck
	$(MAKE) demo
	@git diff --exit-code -- stack/internal/play/dist || { echo "the demo bundle is stale: run make demo and commit"; exit 1; }
	cd clients/ts && npm test

## gowork-off: every module builds on its own (the workspace does not enforce libs -> services)
gowork-off:
	@for m in $(MODULES); do [ -f $$m/go.mod ] || continue; echo "GOWORK=off build $$m"; (cd $$m && GOWORK=off $(GO) build ./... && GOWORK=off $(GO) vet ./...) || exit 1; done
