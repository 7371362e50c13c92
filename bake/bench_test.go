package bake

import (
	"path/filepath"
	"testing"

	"hardbake.dev/hardbake/images"
)

// benchSeed is the seed the write benchmarks store: a rendered baseline
// user-data and meta-data, no agent (as images' benchmarks).
func benchSeed(b *testing.B) []images.File {
	res, err := Seed(testRequest(b))
	if err != nil {
		b.Fatal(err)
	}
	return res.Documents()
}

// BenchmarkWriteImageISO is a whole `hardbake iso` output step: build in
// memory, then lock, temporary file, fsync, rename, directory fsync.
func BenchmarkWriteImageISO(b *testing.B) {
	files := benchSeed(b)
	path := filepath.Join(b.TempDir(), "seed.iso")
	b.ReportAllocs()
	for b.Loop() {
		img, err := images.Build(images.ISO, files)
		if err != nil {
			b.Fatal(err)
		}
		if err := WriteImage(path, img, WriteOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWriteDirExisting rewrites a seed directory in place (the
// render -o DIR case after the first run).
func BenchmarkWriteDirExisting(b *testing.B) {
	files := benchSeed(b)
	path := filepath.Join(b.TempDir(), "seed")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := WriteDir(path, files, WriteOptions{NewDirMode: 0o755}); err != nil {
			b.Fatal(err)
		}
	}
}
