# sluice — the two commands a newcomer needs are `make run` and `make test`.
GO      ?= go
BIN     := bin/sluice
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)

# Packages with goroutines of their own: tested under the race detector.
RACE_PKGS := ./exec/... ./catalog/... ./raftstore/... ./sqlfront/... ./connectors/... ./cluster/... ./node/...

.PHONY: all build run test check race unit fuzz bench soak fmt vet clean demo

all: build

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/sluice

## run: start a single node with the defaults (MySQL 127.0.0.1:9306, HTTP :9380, Raft :9370, ./data)
run: build
	./$(BIN) server

## test: everything CI runs, on a fresh machine (installs the mysql client if missing)
test: deps check race unit fuzz

deps:
	@scripts/ensure-deps.sh

check: fmt vet

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

race:
	$(GO) test -race -count=1 $(RACE_PKGS)

# -count=1: the import-direction and end-to-end tests read sources and build
# the binary in subprocesses, which the test cache cannot see.
unit:
	$(GO) test -count=1 ./...

fuzz:
	$(GO) test ./planner -run '^$$' -fuzz FuzzParse -fuzztime 15s
	$(GO) test ./connectors/mysqlcdc -run '^$$' -fuzz FuzzRowDecoder -fuzztime 15s

## demo: MariaDB → sluice → StarRocks emulator in one command (throwaway processes, cleaned up)
demo:
	@scripts/demo.sh

## soak: the randomized crash test, SOAK seeds (default 20) per sink mode, then the
## cluster fault tests CLUSTER_SOAK times (default 10) each; prints the passes
SOAK ?= 20
CLUSTER_SOAK ?= 10
CLUSTER_FAULTS := ^(TestClusterLeaderKillExactlyOnce|TestClusterLeaderKillIntoMariaDB|TestClusterPlacementAndFailover|TestClusterLeaderPaused|TestClusterWorkerPausedIsFenced|TestClusterPipelineAcrossNodes|TestClusterCDCToStarRocksLeaderKill|TestClusterSlowSinkStaysUp|TestClusterWholeRestartInOrders|TestClusterLeaderPausedIsFenced)$$
soak: build
	@mkdir -p bench/out
	@SOAK=$(SOAK) $(GO) test ./cmd/sluice -run '^TestRandomizedCrash$$' -count=1 -timeout 4h -v 2>&1 | tee bench/out/soak.log | grep -E '^(crash test:|--- FAIL|    --- FAIL)'
	@$(GO) test ./cmd/sluice -run '$(CLUSTER_FAULTS)' -count=$(CLUSTER_SOAK) -timeout 4h -v 2>&1 | tee bench/out/soak-cluster.log | \
		awk '/^--- (PASS|FAIL)/ { n[$$3 " " $$2]++ } END { for (k in n) print "cluster fault test:", k, n[k], "of $(CLUSTER_SOAK)" }' | sort

## bench: side-by-side benchmarks; JSON reports in bench/out/
bench: build
	$(GO) run ./bench -out bench/out

clean:
	rm -rf bin data
