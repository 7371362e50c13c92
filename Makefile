# hardbake — see README.md. `make demo` and `make test` work on a fresh
# Debian 12 machine: both first install the system packages (.ci/deps) once.
GO        ?= go
BIN       := bin
VERSION   ?= $(shell bash scripts/version.sh 2>/dev/null || echo dev)
# The agent's version as internal/stamp reads it from the binary.
AGENT_LDFLAGS := -s -w -X 'main.version=[hardbake-version:$(VERSION)]'
FUZZTIME  ?= 20000x
# cgo code (store/, cmd/hardbaked) builds, tests and vets with -tags libsqlite3:
# without it go-dqlite bundles a second, older SQLite.
# Re-run .ci/deps whenever it changes.
DEPS_STAMP := .cache/deps-$(shell sha256sum .ci/deps | cut -c1-16)

.PHONY: all build cli agent hardbaked test unit fuzz vet demo bench e2e audit deps clean deb deb-test

all: build

deps: $(DEPS_STAMP)
$(DEPS_STAMP): .ci/deps
	bash .ci/deps
	mkdir -p .cache && touch $@

build: cli agent hardbaked

cli:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-X main.version=$(VERSION)" -o $(BIN)/hardbake ./cmd/hardbake

# The order service links libdqlite through cgo (Debian 12: libdqlite-dev);
# -tags libsqlite3 uses the system SQLite instead of bundling a second one.
hardbaked:
	CGO_ENABLED=1 $(GO) build -tags libsqlite3 -buildmode=pie -trimpath -ldflags "-X main.version=$(VERSION)" -o $(BIN)/hardbaked ./cmd/hardbaked

# The agent for both architectures, static and stripped; sizes printed beside
# a stripped hello-world built the same way in the same run.
agent:
	bash scripts/build-agent.sh $(BIN) "$(AGENT_LDFLAGS)"

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) mod tidy -diff >/dev/null || { $(GO) mod tidy -diff; echo "go.mod/go.sum not tidy: run go mod tidy"; exit 1; }
	$(GO) vet -tags e2e,libsqlite3 ./...
	CGO_ENABLED=0 $(GO) vet ./...  # the CLI and agent stay pure Go without the tag

unit:
	HARDBAKE_REQUIRE_TOOLS=$${CI:+1} $(GO) test -race -tags libsqlite3 -count=1 ./...

fuzz:
	bash scripts/fuzz.sh $(FUZZTIME)

test: deps build vet unit fuzz

demo: deps build
	bash scripts/demo.sh

bench: deps build
	bash scripts/bench.sh

e2e: deps build
	$(GO) test -tags e2e -count=1 -timeout 80m -v ./e2e  # one package, so progress streams

# Lynis inside the guests that boot the built-in profiles (issue 15): each
# stops after its first boot's checks and the audit (minutes under TCG).
audit: deps build
	HARDBAKE_E2E_AUDIT=1 HARDBAKE_E2E_ONLY=$${HARDBAKE_E2E_ONLY:-bookworm-nofw,bookworm-socket,trixie,trixie-baseline} \
		$(GO) test -tags e2e -count=1 -timeout 180m -v -run TestE2E ./e2e

# hardbake_VERSION_ARCH.deb in the repository root (debhelper).
deb: deps
	bash scripts/deb.sh

# Build the package, lintian, install into a fresh Debian 12 root, remove.
deb-test: deps
	bash scripts/deb-test.sh

clean:
	rm -rf $(BIN) out .cache hardbake_*.deb
