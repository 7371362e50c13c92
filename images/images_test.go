package images

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
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

// TestWriteRejectsAndLeavesNothing checks validation for every format, and
// that a failed Write leaves neither the output nor a temporary behind
// (including go-diskfs's ISO workspace, which lives in TMPDIR).
func TestWriteRejectsAndLeavesNothing(t *testing.T) {
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
				dir := t.TempDir()
				path := filepath.Join(dir, "seed")
				err := Write(format, path, tc.files)
				if err == nil || !strings.Contains(err.Error(), tc.msg) {
					t.Fatalf("Write error %v, want one containing %q", err, tc.msg)
				}
				if got := listDir(t, dir); len(got) != 0 {
					t.Errorf("leftovers in output directory: %v", got)
				}
				if got := listDir(t, tmp); len(got) != 0 {
					t.Errorf("leftovers in TMPDIR: %v", got)
				}
			})
		}
	}
}

// TestWriteFailureKeepsPrevious: a failing Write over an existing seed
// leaves it byte for byte as it was, with no temporary beside it.
func TestWriteFailureKeepsPrevious(t *testing.T) {
	for _, format := range []Format{ISO, VFAT} {
		t.Run(string(format), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "seed")
			if err := Write(format, path, base()); err != nil {
				t.Fatal(err)
			}
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := Write(format, path, base(File{Name: "../evil"})); err == nil {
				t.Fatal("invalid Write succeeded")
			}
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(before, after) {
				t.Error("previous seed changed by a failed Write")
			}
			if got := listDir(t, dir); len(got) != 1 {
				t.Errorf("output directory holds %v, want only the seed", got)
			}
		})
	}
}

// TestBuildFailureCleansUp injects failures after the temporary exists:
// a failing builder, and go-diskfs's workspace not being creatable.
func TestBuildFailureCleansUp(t *testing.T) {
	files, err := prepare(base())
	if err != nil {
		t.Fatal(err)
	}
	t.Run("builder error", func(t *testing.T) {
		dir := t.TempDir()
		boom := errors.New("boom")
		err := writeImageFile(filepath.Join(dir, "seed.iso"), files, func(f *os.File, _ []File) error {
			if _, err := f.WriteString("partial"); err != nil {
				t.Fatal(err)
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("error %v, want boom", err)
		}
		if got := listDir(t, dir); len(got) != 0 {
			t.Errorf("leftovers: %v", got)
		}
	})
	t.Run("no ISO workspace", func(t *testing.T) {
		t.Setenv("TMPDIR", filepath.Join(t.TempDir(), "missing"))
		dir := t.TempDir()
		if err := Write(ISO, filepath.Join(dir, "seed.iso"), base()); err == nil {
			t.Fatal("Write succeeded without a workspace")
		}
		if got := listDir(t, dir); len(got) != 0 {
			t.Errorf("leftovers: %v", got)
		}
	})
	t.Run("missing output directory", func(t *testing.T) {
		dir := t.TempDir()
		for _, format := range []Format{ISO, VFAT, Dir} {
			if err := Write(format, filepath.Join(dir, "no", "seed"), base()); err == nil {
				t.Errorf("%s: Write into a missing directory succeeded", format)
			}
		}
		if got := listDir(t, dir); len(got) != 0 {
			t.Errorf("leftovers: %v", got)
		}
	})
	t.Run("unknown format", func(t *testing.T) {
		dir := t.TempDir()
		err := Write(Format("ISO"), filepath.Join(dir, "seed"), base())
		if err == nil || !strings.Contains(err.Error(), "allowed values") {
			t.Fatalf("error %v, want one naming the allowed values", err)
		}
		if got := listDir(t, dir); len(got) != 0 {
			t.Errorf("leftovers: %v", got)
		}
	})
}

// TestISOWorkspaceRemoved: a successful ISO build leaves nothing in TMPDIR.
func TestISOWorkspaceRemoved(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	if err := Write(ISO, filepath.Join(t.TempDir(), "seed.iso"), sampleFiles()); err != nil {
		t.Fatal(err)
	}
	if got := listDir(t, tmp); len(got) != 0 {
		t.Errorf("leftovers in TMPDIR: %v", got)
	}
}

func TestDirReplace(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, path string)
		wantErr string
	}{
		{"new", func(*testing.T, string) {}, ""},
		{"empty directory", func(t *testing.T, p string) { mkdir(t, p) }, ""},
		{"earlier seed", func(t *testing.T, p string) {
			mkdir(t, p)
			writeFile(t, filepath.Join(p, "meta-data"))
			writeFile(t, filepath.Join(p, "stale-file"))
		}, ""},
		{"unrelated directory", func(t *testing.T, p string) {
			mkdir(t, p)
			writeFile(t, filepath.Join(p, "precious"))
		}, "refusing"},
		{"directory with subdirectory", func(t *testing.T, p string) {
			mkdir(t, p)
			writeFile(t, filepath.Join(p, "meta-data"))
			mkdir(t, filepath.Join(p, "sub"))
		}, "refusing"},
		{"regular file", func(t *testing.T, p string) { writeFile(t, p) }, "not a directory"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			path := filepath.Join(parent, "seed")
			tc.setup(t, path)
			before := listDir(t, parent)
			err := Write(Dir, path, base())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				if got := listDir(t, parent); strings.Join(got, ",") != strings.Join(before, ",") {
					t.Errorf("parent changed: %v -> %v", before, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := listDir(t, path); strings.Join(got, ",") != "meta-data,user-data" {
				t.Errorf("seed holds %v", got)
			}
			if got := listDir(t, parent); len(got) != 1 {
				t.Errorf("leftovers beside the seed: %v", got)
			}
		})
	}
}

func mkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.Mkdir(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, p string) {
	t.Helper()
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
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
	if err := Write(VFAT, path, files); err != nil {
		t.Fatal(err)
	}
	w := expected(files)
	checkFsckFat(t, path, w)
	checkMcopy(t, path, w)
}
