# Realmstream developer targets. The workspace root is not a module: build and
# test with the `work` pattern or per module.
SHELL := /bin/bash
MODULES := libs services/gateway services/world services/persist services/monitor stack e2e deploy
GO ?= go
PROTOC_GEN_GO := $(shell go env GOPATH)/bin/protoc-gen-go

.PHONY: run bots test test-short bench lint vet fmt fmt-check proto proto-check build gowork-off race

## run: the whole backend on this machine (embedded NATS, Pebble, in-process locks) with a few bots
run:
	$(GO) run ./stack/cmd/realmstream run --bots 20

## bots: a swarm of bots against a running stack (127.0.0.1:7000)
bots:
	$(GO) run ./stack/cmd/realmstream bots --count 100 --duration 30s

## build: every binary into ./bin
build:
	mkdir -p bin
	$(GO) build -o bin/ ./services/gateway/cmd/gateway ./services/world/cmd/world ./services/persist/cmd/persist ./services/monitor/cmd/monitor ./stack/cmd/realmstream

## test: everything CI checks (needs PostgreSQL and Redis, see README)
test: lint proto-check gowork-off
	$(GO) test -count=1 -timeout 20m work
	$(GO) test -count=1 -race -timeout 20m $(RACE_PKGS)

RACE_PKGS := ./libs/mpsc/... ./libs/lock/... ./services/gateway/... ./services/world/...

race:
	$(GO) test -count=1 -race -timeout 20m $(RACE_PKGS)

## bench: the benchmarks recorded in docs/benchmarks.md
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./libs/mpsc/ | tee /tmp/bench-mpsc.txt

lint: vet fmt-check

vet:
	$(GO) vet work

fmt:
	gofmt -w $$(git ls-files '*.go')

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed (run make fmt):"; echo "$$out"; exit 1; fi

## proto: regenerate the protobuf Go code (needs protoc and protoc-gen-go)
proto:
	@test -x $(PROTOC_GEN_GO) || $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
	cd libs/schema && PATH="$$PATH:$$(go env GOPATH)/bin" protoc -I . --go_out=. --go_opt=paths=source_relative client.proto world.proto ops.proto

## proto-check: fail when the generated code is stale
proto-check: proto
	@git diff --exit-code -- libs/schema || { echo "generated protobuf code is stale: run make proto and commit"; exit 1; }

## gowork-off: every module builds on its own (the workspace does not enforce libs -> services)
gowork-off:
	@for m in $(MODULES); do [ -f $$m/go.mod ] || continue; echo "GOWORK=off build $$m"; (cd $$m && GOWORK=off $(GO) build ./... && GOWORK=off $(GO) vet ./...) || exit 1; done
