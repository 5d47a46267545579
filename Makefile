# Vigil. `make run` and `make test` are the quick start; both install what is
# missing first (deploy/setup.sh says what it does at every step).
SHELL := /bin/bash
GO ?= go
export CGO_ENABLED := 1
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
ARGS ?=

.PHONY: all build run test vet generate ui bench clean setup-run setup-test chdb

all: build

setup-run:
	@bash deploy/setup.sh run

setup-test:
	@bash deploy/setup.sh test

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/vigil ./cmd/vigil

# run starts the whole platform: embedded ClickHouse, probes, models and the
# dashboard. Probes need root.
run: setup-run build
	@if [ "$$(id -u)" -ne 0 ]; then echo "make run: the kernel probes need root; run 'sudo make run'" >&2; exit 1; fi
	./bin/vigil up $(ARGS)

vet:
	$(GO) vet ./...

# test uses the real kernel, the real ClickHouse engine and a real browser.
# With CI=true a test that cannot get its component fails instead of skipping.
# Benchmarks run once (-benchtime=1x) so they keep compiling and running.
test: setup-test build vet
	$(GO) test -count=1 -timeout 25m ./...
	$(GO) test -count=1 -run '^$$' -bench . -benchtime=1x -timeout 10m ./...

generate:
	@bash deploy/setup.sh gen
	$(GO) generate ./bpf/...

ui:
	cd ui/web && npm ci --no-audit --no-fund && npm run build

NAB ?= ../shared/nab
bench: setup-run build
	./bin/vigil bench collector --out bench/results
	./bin/vigil bench overhead --out bench/results
	./bin/vigil bench store --out bench/results
	./bin/vigil bench models --out bench/results
	./bin/vigil bench e2e --rate 100000 --duration 10s --out bench/results
	./bin/vigil bench scenarios --baseline 1m --quiet 10m --out bench/results
	./bin/vigil bench nab --data $(NAB)/data --labels $(NAB)/labels/combined_windows.json --out bench/results/nab

clean:
	rm -rf bin

# chdb fetches libchdb.so (ClickHouse as a library) into ~/.cache/vigil/chdb.
chdb:
	@bash deploy/setup.sh run
