package images

import (
	"io"
	"os"
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

func benchmarkBuild(b *testing.B, format Format) {
	files := benchFiles()
	b.ReportAllocs()
	for b.Loop() {
		img, err := Build(format, files)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := img.WriteTo(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBuildISO measures a whole in-memory ISO seed build: staging in
// go-diskfs's workspace directory, Finalize, normalization, streaming out.
func BenchmarkBuildISO(b *testing.B) { benchmarkBuild(b, ISO) }

// BenchmarkBuildVFAT is the same for the FAT32 seed (a 33 MiB sparse
// volume, streamed out whole).
func BenchmarkBuildVFAT(b *testing.B) { benchmarkBuild(b, VFAT) }

// BenchmarkISOWorkspace measures only what the workspace directory costs
// (create, stage two files, chmod, remove), the part of an ISO build that
// touches the file system, to set against BenchmarkBuildISO.
func BenchmarkISOWorkspace(b *testing.B) {
	files := benchFiles()
	b.ReportAllocs()
	for b.Loop() {
		ws, err := os.MkdirTemp("", "hardbake-iso-*")
		if err != nil {
			b.Fatal(err)
		}
		for _, f := range files {
			p := filepath.Join(ws, f.Name)
			if err := os.WriteFile(p, f.Data, 0o644); err != nil {
				b.Fatal(err)
			}
			if err := os.Chmod(p, 0o644); err != nil {
				b.Fatal(err)
			}
		}
		if err := os.RemoveAll(ws); err != nil {
			b.Fatal(err)
		}
	}
}
