# nanokms — see README.md. Every target installs what it needs first.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)

GO        ?= go
# The binaries by role: the operator's (nanokms), the isolated host's
# (nanokms-cold: no hot code linked) and the development tools' (nanokms-dev).
BINARIES  := nanokms nanokms-cold nanokms-dev
# make fuzz: every fuzz target FUZZSCALE times its short count (see
# scripts/fuzz.sh), or FUZZTIME executions each if set (a count, e.g.
# FUZZTIME=1000000x: Go 1.26 can fail a duration run at its end).
FUZZSCALE ?= 50
FUZZTIME  ?=

.PHONY: all build test bench fuzz proto demo demo-ha deps clean

all: build

deps:
	@bash scripts/deps.sh

build: deps
	$(GO) build -o bin/ $(addprefix ./cmd/,$(BINARIES))

## test: gofmt, go vet, every test under the race detector, a short fuzz run
test:
	@bash scripts/test.sh

## bench: every Go benchmark
bench: deps
	$(GO) test -run '^$$' -bench . -benchmem ./...

## fuzz: a longer run of every fuzz target (FUZZSCALE=50 × its short count; FUZZTIME=Nx for N each)
fuzz: deps
	@FUZZSCALE=$(FUZZSCALE) FUZZTIME=$(FUZZTIME) bash scripts/fuzz.sh

## proto: regenerate the protobuf and gRPC code with the pinned plugins
proto: deps
	@bash scripts/proto.sh

## demo: the main job, end to end on embedded defaults
demo: build
	@bash scripts/demo.sh

## demo-ha: two gateways on a throw-away PostgreSQL, the leader SIGKILLed, the withdrawal confirming through the other
demo-ha: build
	@bash scripts/demo-ha.sh

clean:
	rm -rf bin
