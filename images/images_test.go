package images

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestParseFormat(t *testing.T) {
	tests := []struct {
		in      string
		want    Format
		wantErr bool
	}{
		{"iso", ISO, false},
		{"ISO", ISO, false},
		{" vfat ", VFAT, false},
		{"dir", Dir, false},
		{"fat", "", true},
		{"", "", true},
	}
	for _, tc := range tests {
		got, err := ParseFormat(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("ParseFormat(%q) = %q, %v; want %q, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
		if err != nil && !strings.Contains(err.Error(), "iso, vfat, dir") {
			t.Errorf("ParseFormat(%q) error %q does not name the allowed values", tc.in, err)
		}
	}
}

// base returns a valid minimal seed plus extra files.
func base(extra ...File) []File {
	return append([]File{
		{Name: "user-data", Data: []byte("#cloud-config\n")},
		{Name: "meta-data", Data: []byte("instance-id: i-1\n")},
	}, extra...)
}

// TestBuildRejectsAndLeavesNothing checks validation for every format,
// and that a failed Build leaves nothing in TMPDIR (where go-diskfs's ISO
// workspace lives).
func TestBuildRejectsAndLeavesNothing(t *testing.T) {
	invalid := []struct {
		name  string
		files []File
		msg   string
	}{
		{"empty name", base(File{Name: ""}), "empty name"},
		{"slash", base(File{Name: "a/b"}), "'/'"},
		{"dotdot", base(File{Name: ".."}), "reserved"},
		{"dot", base(File{Name: "."}), "reserved"},
		{"traversal", base(File{Name: "../user-data"}), "'/'"},
		{"hidden", base(File{Name: ".x"}), "hidden"},
		{"space", base(File{Name: "a b"}), "may only contain"},
		{"nul", base(File{Name: "a\x00b"}), "may only contain"},
		{"too long", base(File{Name: strings.Repeat("a", maxNameLen+1)}), "longer than"},
		{"duplicate", base(File{Name: "user-data"}), "duplicate"},
		{"case duplicate", base(File{Name: "User-Data"}), "duplicate"},
		{"setuid", base(File{Name: "x", Mode: 0o4755}), "mode"},
		{"directory mode", base(File{Name: "x", Mode: os.ModeDir | 0o755}), "mode"},
		{"no meta-data", []File{{Name: "user-data"}}, `missing "meta-data"`},
		{"no user-data", []File{{Name: "meta-data"}}, `missing "user-data"`},
		{"nothing", nil, "missing"},
	}
	for _, format := range []Format{ISO, VFAT, Dir} {
		for _, tc := range invalid {
			t.Run(string(format)+"/"+tc.name, func(t *testing.T) {
				tmp := t.TempDir()
				t.Setenv("TMPDIR", tmp)
				var err error
				if format == Dir {
					_, err = Validate(tc.files)
				} else {
					_, err = Build(format, tc.files)
				}
				if err == nil || !strings.Contains(err.Error(), tc.msg) {
					t.Fatalf("error %v, want one containing %q", err, tc.msg)
				}
				if got := listDir(t, tmp); len(got) != 0 {
					t.Errorf("leftovers in TMPDIR: %v", got)
				}
			})
		}
	}
}

// TestBuildFailures: go-diskfs's workspace not being creatable, and
// formats Build does not make.
func TestBuildFailures(t *testing.T) {
	t.Run("no ISO workspace", func(t *testing.T) {
		t.Setenv("TMPDIR", filepath.Join(t.TempDir(), "missing"))
		if _, err := Build(ISO, base()); err == nil || !strings.Contains(err.Error(), "workspace") {
			t.Fatalf("Build without a workspace: %v", err)
		}
	})
	t.Run("WorkDir", func(t *testing.T) {
		work := t.TempDir()
		img, err := Builder{WorkDir: work}.Build(ISO, base())
		if err != nil {
			t.Fatal(err)
		}
		ref, err := Build(ISO, base())
		if err != nil || !bytes.Equal(img.Bytes(), ref.Bytes()) {
			t.Fatalf("a WorkDir changes the image (%v)", err)
		}
		if got := listDir(t, work); len(got) != 0 {
			t.Errorf("leftovers in WorkDir: %v", got)
		}
		if _, err := (Builder{WorkDir: filepath.Join(work, "missing")}).Build(ISO, base()); err == nil {
			t.Error("a missing WorkDir was accepted")
		}
	})
	t.Run("unknown format", func(t *testing.T) {
		_, err := Build(Format("ISO"), base())
		if err == nil || !strings.Contains(err.Error(), "allowed values") {
			t.Fatalf("error %v, want one naming the allowed values", err)
		}
	})
	t.Run("dir", func(t *testing.T) {
		if _, err := Build(Dir, base()); err == nil {
			t.Fatal("Build(Dir) made an image")
		}
	})
}

// TestISOWorkspaceRemoved: a successful ISO build leaves nothing in TMPDIR.
func TestISOWorkspaceRemoved(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	if _, err := Build(ISO, sampleFiles()); err != nil {
		t.Fatal(err)
	}
	if got := listDir(t, tmp); len(got) != 0 {
		t.Errorf("leftovers in TMPDIR: %v", got)
	}
}

// TestImageForms: the streamed, flat and sparse-file forms of one image
// hold the same bytes, and the file form keeps FAT's unwritten pages as
// holes.
func TestImageForms(t *testing.T) {
	for _, format := range []Format{ISO, VFAT} {
		t.Run(string(format), func(t *testing.T) {
			img, err := Build(format, sampleFiles())
			if err != nil {
				t.Fatal(err)
			}
			flat := img.Bytes()
			if int64(len(flat)) != img.Size() {
				t.Fatalf("Bytes: %d bytes, Size %d", len(flat), img.Size())
			}
			var buf bytes.Buffer
			n, err := img.WriteTo(&buf)
			if err != nil || n != img.Size() || !bytes.Equal(buf.Bytes(), flat) {
				t.Fatalf("WriteTo: %d bytes, %v; equal %v", n, err, bytes.Equal(buf.Bytes(), flat))
			}
			var enc bytes.Buffer
			if _, err := Encode(&enc, format, sampleFiles()); err != nil || !bytes.Equal(enc.Bytes(), flat) {
				t.Fatalf("Encode differs from Build (%v)", err)
			}
			path := filepath.Join(t.TempDir(), "seed")
			if err := writeSeed(format, path, sampleFiles()); err != nil {
				t.Fatal(err)
			}
			onDisk, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(onDisk, flat) {
				t.Fatalf("CopyTo file differs (%v)", err)
			}
			if format == VFAT {
				var st syscall.Stat_t
				if err := syscall.Stat(path, &st); err != nil {
					t.Fatal(err)
				}
				if used := st.Blocks * 512; used >= img.Size()/2 {
					t.Errorf("FAT seed file uses %d bytes on disk for %d: not sparse", used, img.Size())
				}
			}
		})
	}
}

// TestImageReadWriteAt checks the sparse store against a flat reference
// across page boundaries, holes, truncation and reads past the end.
func TestImageReadWriteAt(t *testing.T) {
	img := newImage()
	var ref []byte
	write := func(off int, data []byte) {
		if _, err := img.WriteAt(data, int64(off)); err != nil {
			t.Fatal(err)
		}
		if end := off + len(data); end > len(ref) {
			ref = append(ref, make([]byte, end-len(ref))...)
		}
		copy(ref[off:], data)
	}
	write(10, bytes.Repeat([]byte{1}, 5000))
	write(3*imagePage-7, bytes.Repeat([]byte{2}, 20))
	write(9*imagePage+1, []byte{3})
	img.truncate(4 * imagePage)
	ref = ref[:4*imagePage]
	img.truncate(6 * imagePage)
	ref = append(ref, make([]byte, 2*imagePage)...)
	if got := img.Bytes(); !bytes.Equal(got, ref) {
		t.Fatalf("image differs from reference at %d", firstDiff(got, ref))
	}
	p := make([]byte, 100)
	n, err := img.ReadAt(p, img.Size()-40)
	if n != 40 || err == nil {
		t.Errorf("read across the end: %d, %v; want 40, EOF", n, err)
	}
	if _, err := img.ReadAt(p, img.Size()); err == nil {
		t.Error("read at the end: no EOF")
	}
}

// TestVFATSizing checks the image sizing against both go-diskfs pitfalls
// for a range of contents, including sizes near the cluster boundaries.
func TestVFATSizing(t *testing.T) {
	for _, n := range []int{0, 1, 511, 512, 513, 1 << 20, 31 << 20, 40 << 20} {
		files := base(File{Name: "blob", Data: make([]byte, n)})
		size, err := fatSizeFor(files)
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		spf, clusters := fatLayout(uint32(size / fatSector))
		if clusters < fatMinClusters {
			t.Errorf("%d bytes: %d clusters, below the FAT32 minimum", n, clusters)
		}
		if spf*fatSector/4 < clusters+2 {
			t.Errorf("%d bytes: FAT of %d entries for %d clusters", n, spf*fatSector/4, clusters)
		}
		if uint64(clusters)*fatSector < uint64(n) {
			t.Errorf("%d bytes do not fit in %d clusters", n, clusters)
		}
	}
	// The 64 MiB case go-diskfs gets wrong on its own: our layout check
	// must see it as unusable.
	if spf, clusters := fatLayout(64 << 20 / fatSector); spf*fatSector/4 >= clusters+2 {
		t.Errorf("expected go-diskfs's layout for 64 MiB to be short of FAT entries (spf %d, clusters %d)", spf, clusters)
	}
	if _, err := fatSizeFor(base(File{Name: "huge", Data: make([]byte, 300<<20)})); err == nil {
		t.Error("300 MiB of content accepted for a FAT32 seed with 512-byte clusters")
	}
}

// TestVFATLargeFile reads a multi-megabyte agent back through mtools and
// fsck.fat, since large chains are where FAT writers go wrong.
func TestVFATLargeFile(t *testing.T) {
	files := base(File{Name: "hardbake-firstboot-amd64", Data: sampleBinary(9<<20 + 123), Mode: 0o755})
	path := filepath.Join(t.TempDir(), "seed.img")
	if err := writeSeed(VFAT, path, files); err != nil {
		t.Fatal(err)
	}
	w := expected(files)
	checkFsckFat(t, path, w)
	checkMcopy(t, path, w)
}
