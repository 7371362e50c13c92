package store

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestCheckDataDir(t *testing.T) {
	base := t.TempDir()
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	withNode := filepath.Join(base, "node")
	orphan := filepath.Join(base, "orphan")
	for _, d := range []string{withNode, orphan} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(withNode, nodeInfoFile), []byte("id: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(orphan, "cluster.yaml"), []byte("- ID: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	readOnly := filepath.Join(base, "ro")
	if err := os.Mkdir(readOnly, 0o500); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		// Root writes through mode bits; /proc/self refuses new files to
		// everyone.
		readOnly = "/proc/self"
	}

	for _, tc := range []struct {
		name    string
		dir     string
		hasNode bool
		err     bool
	}{
		{"missing is created", filepath.Join(base, "new", "deeper"), false, false},
		{"empty existing", base + "/new", false, false},
		{"holds a node", withNode, true, false},
		{"dqlite state without identity", orphan, false, true},
		{"a file", file, false, true},
		{"below a file", filepath.Join(file, "sub"), false, true},
		{"not writable", readOnly, false, true},
		{"empty path", "", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hasNode, err := CheckDataDir(tc.dir)
			if tc.err {
				if !errors.Is(err, ErrDataDir) {
					t.Fatalf("err = %v, want ErrDataDir", err)
				}
				return
			}
			if err != nil || hasNode != tc.hasNode {
				t.Fatalf("hasNode=%v err=%v, want %v", hasNode, err, tc.hasNode)
			}
			entries, _ := os.ReadDir(tc.dir)
			for _, e := range entries {
				if e.Name() != nodeInfoFile && filepath.Ext(e.Name()) != "" && e.Name()[0] == '.' {
					t.Errorf("probe file left behind: %s", e.Name())
				}
			}
		})
	}
	fi, err := os.Stat(filepath.Join(base, "new", "deeper"))
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("created dir: %v %v, want mode 0700", fi.Mode(), err)
	}
}
