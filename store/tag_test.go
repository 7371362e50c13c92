//go:build !(cgo && libsqlite3)

package store

import (
	"os"
	"testing"
)

// Without cgo and the libsqlite3 tag the dqlite tests are not compiled at
// all; in CI that must be a failure, not a silent pass.
func TestStoreNeedsDqlite(t *testing.T) {
	if os.Getenv("HARDBAKE_REQUIRE_TOOLS") == "1" {
		t.Fatal("the store's dqlite tests need cgo and -tags libsqlite3 (HARDBAKE_REQUIRE_TOOLS=1); run them with `go test -tags libsqlite3` after .ci/deps")
	}
	t.Skip("store tests need cgo and -tags libsqlite3")
}
