# hardbake — see README.md. Every target works on a fresh Debian 12 machine
# after `.ci/deps` (or `make deps`) has installed the system packages.
GO        ?= go
BIN       := bin
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
AGENT_LDFLAGS := -s -w -X main.version=$(VERSION)
FUZZTIME  ?= 5s

.PHONY: all build cli agent test unit fuzz vet demo bench e2e deps clean

all: build

deps:
	bash .ci/deps

build: cli agent

cli:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/hardbake ./cmd/hardbake

# The agent for both architectures, static and stripped; sizes printed beside
# a stripped hello-world built the same way in the same run.
agent:
	bash scripts/build-agent.sh $(BIN) "$(AGENT_LDFLAGS)"

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...

unit:
	HARDBAKE_REQUIRE_TOOLS=$${CI:+1} $(GO) test -race -count=1 ./...

fuzz:
	bash scripts/fuzz.sh $(FUZZTIME)

test: build vet unit fuzz

demo: build
	bash scripts/demo.sh

bench: build
	bash scripts/bench.sh

e2e: build
	$(GO) test -tags e2e -count=1 -timeout 80m -v ./e2e/...

clean:
	rm -rf $(BIN) out
