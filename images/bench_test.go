package images

import (
	"path/filepath"
	"testing"
)

// benchFiles is the seed measured by the benchmarks: an ~8 KB user-data
// and a meta-data, the size of a rendered baseline profile.
func benchFiles() []File {
	return []File{
		{Name: "user-data", Data: sampleUserData()},
		{Name: "meta-data", Data: []byte("instance-id: iid-hardbake-bench\nlocal-hostname: vps1\n")},
	}
}

func benchmarkWrite(b *testing.B, format Format) {
	files := benchFiles()
	path := filepath.Join(b.TempDir(), "seed")
	b.ReportAllocs()
	for b.Loop() {
		if err := Write(format, path, files); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWriteISO measures a whole ISO seed build: staging, go-diskfs
// Finalize, normalization, fsync and rename.
func BenchmarkWriteISO(b *testing.B) { benchmarkWrite(b, ISO) }

// BenchmarkWriteVFAT is the same for the FAT32 seed.
func BenchmarkWriteVFAT(b *testing.B) { benchmarkWrite(b, VFAT) }

// BenchmarkWriteDir is the same for a NoCloud-Net directory.
func BenchmarkWriteDir(b *testing.B) { benchmarkWrite(b, Dir) }
