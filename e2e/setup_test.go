//go:build e2e

package e2e

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
)

// repoRoot is the module root (the e2e package runs with cwd = e2e/).
func repoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the e2e package")
	}
	return filepath.Dir(filepath.Dir(file))
}

func cacheDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("HARDBAKE_E2E_CACHE")
	if dir == "" {
		dir = filepath.Join(repoRoot(t), "e2e", ".cache")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatalf("cache dir: %v", err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		t.Fatalf("cache dir: %v", err)
	}
	return abs
}

// TestImages only builds (or verifies the cache of) the images and mirrors.
func TestImages(t *testing.T) {
	lg := newLogger(os.Stderr)
	imgs, err := buildAll(context.Background(), lg, cacheDir(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range slices.Sorted(maps.Keys(imgs)) {
		t.Logf("%s: %s", name, imgs[name].Disk)
	}
}
