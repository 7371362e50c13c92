package bake

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"hardbake.dev/hardbake/images"
	"hardbake.dev/hardbake/internal/testtool"
)

// entry is what a snapshot records of one directory entry.
type entry struct {
	mode  fs.FileMode
	data  string
	link  string
	mtime time.Time
}

// snapshot records a directory (and the directory's own mode) so a test
// can show that a refused write changed nothing at all.
func snapshot(t *testing.T, dir string) map[string]entry {
	t.Helper()
	out := map[string]entry{}
	fi, err := os.Lstat(dir)
	if err != nil {
		t.Fatal(err)
	}
	out["."] = entry{mode: fi.Mode()}
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range des {
		p := filepath.Join(dir, de.Name())
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		e := entry{mode: fi.Mode(), mtime: fi.ModTime()}
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			e.data = string(b)
		case fi.Mode()&fs.ModeSymlink != 0:
			e.link, _ = os.Readlink(p)
		}
		out[de.Name()] = e
	}
	return out
}

func sameSnapshot(t *testing.T, before, after map[string]entry) {
	t.Helper()
	for name, b := range before {
		a, ok := after[name]
		if !ok {
			t.Errorf("%s disappeared", name)
			continue
		}
		if a.mode != b.mode || a.data != b.data || a.link != b.link || (name != "." && !a.mtime.Equal(b.mtime)) {
			t.Errorf("%s changed: %v %q -> %v %q", name, b.mode, trim(b.data), a.mode, trim(a.data))
		}
	}
	for name := range after {
		if _, ok := before[name]; !ok {
			t.Errorf("%s appeared", name)
		}
	}
}

func trim(s string) string {
	if len(s) > 20 {
		return s[:20] + "…"
	}
	return s
}

func testImage(t *testing.T) *images.Image {
	t.Helper()
	img, err := images.Build(images.ISO, seedFiles("A"))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func seedFiles(tag string) []images.File {
	return []images.File{
		{Name: "user-data", Data: []byte("#cloud-config\n# order " + tag + "\n"), Mode: 0o600},
		{Name: "meta-data", Data: []byte("instance-id: " + tag + "\n"), Mode: 0o600},
	}
}

func mustWrite(t *testing.T, p, data string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func wantInputError(t *testing.T, err error, want string) {
	t.Helper()
	var ie *InputError
	if !errors.As(err, &ie) || ie.Field != "-o" || !strings.Contains(ie.Reason, want) {
		t.Fatalf("error %v, want an input error on -o containing %q", err, want)
	}
}

// TestWriteImageRefuses: every target that must not be replaced is
// refused with an input error naming -o and why, and neither the target
// nor its directory changes.
func TestWriteImageRefuses(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string) (target string, inputs []Input)
		want  string
	}{
		{"the input itself", func(t *testing.T, dir string) (string, []Input) {
			p := filepath.Join(dir, "order.yaml")
			mustWrite(t, p, "hostname: a\n")
			return p, []Input{{"--profile", ""}, {"--order", p}}
		}, "is the file given to --order; refusing to overwrite an input"},
		{"a symlink to the input", func(t *testing.T, dir string) (string, []Input) {
			p := filepath.Join(dir, "order.yaml")
			mustWrite(t, p, "hostname: a\n")
			l := filepath.Join(dir, "seed.iso")
			if err := os.Symlink("order.yaml", l); err != nil {
				t.Fatal(err)
			}
			return l, []Input{{"--order", p}}
		}, "is the file given to --order"},
		{"the input through a symlink", func(t *testing.T, dir string) (string, []Input) {
			p := filepath.Join(dir, "key.pub")
			mustWrite(t, p, "ssh-ed25519 AAAA\n")
			l := filepath.Join(dir, "link.pub")
			if err := os.Symlink(p, l); err != nil {
				t.Fatal(err)
			}
			return p, []Input{{"--ssh-key-file", l}}
		}, "is the file given to --ssh-key-file"},
		{"a hard link of the input", func(t *testing.T, dir string) (string, []Input) {
			p := filepath.Join(dir, "agent")
			mustWrite(t, p, "ELF")
			h := filepath.Join(dir, "seed.iso")
			if err := os.Link(p, h); err != nil {
				t.Fatal(err)
			}
			return h, []Input{{"--agent-binary", p}}
		}, "is the file given to --agent-binary"},
		{"a FIFO", func(t *testing.T, dir string) (string, []Input) {
			p := filepath.Join(dir, "fifo")
			if err := syscall.Mkfifo(p, 0o644); err != nil {
				t.Fatal(err)
			}
			return p, nil
		}, "is a FIFO, not a regular file"},
		{"a socket", func(t *testing.T, dir string) (string, []Input) {
			p := filepath.Join(dir, "sock")
			l, err := net.Listen("unix", p)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			return p, nil
		}, "is a socket"},
		{"a directory", func(t *testing.T, dir string) (string, []Input) {
			p := filepath.Join(dir, "sub")
			if err := os.Mkdir(p, 0o755); err != nil {
				t.Fatal(err)
			}
			mustWrite(t, filepath.Join(p, "precious"), "x")
			return p, nil
		}, "is a directory, not a regular file"},
		{"a symlink to a device", func(t *testing.T, dir string) (string, []Input) {
			p := filepath.Join(dir, "null")
			if err := os.Symlink("/dev/null", p); err != nil {
				t.Fatal(err)
			}
			return p, nil
		}, "is a character device"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			target, inputs := tc.setup(t, dir)
			before := snapshot(t, dir)
			err := WriteImage(target, testImage(t), WriteOptions{Field: "-o", Inputs: inputs})
			wantInputError(t, err, tc.want)
			sameSnapshot(t, before, snapshot(t, dir))
		})
	}
}

// TestWriteImageDevNull: /dev/null itself is refused and stays a device.
func TestWriteImageDevNull(t *testing.T) {
	err := WriteImage("/dev/null", testImage(t), WriteOptions{Field: "-o"})
	wantInputError(t, err, "/dev/null is a character device, not a regular file")
	fi, err := os.Stat("/dev/null")
	if err != nil || fi.Mode()&fs.ModeCharDevice == 0 {
		t.Fatalf("/dev/null is now %v (%v)", fi.Mode(), err)
	}
	des, _ := os.ReadDir("/dev")
	for _, de := range des {
		if strings.HasPrefix(de.Name(), ".null.tmp-") {
			t.Errorf("temporary left in /dev: %s", de.Name())
		}
	}
}

func TestWriteImageWrites(t *testing.T) {
	img := testImage(t)
	t.Run("new and replaced", func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "seed.iso")
		for range 2 {
			if err := WriteImage(p, img, WriteOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, img.Bytes()) {
			t.Fatalf("content differs (%v)", err)
		}
		if fi, _ := os.Stat(p); fi.Mode() != 0o600 {
			t.Errorf("mode %v, want -rw-------", fi.Mode())
		}
		if names := listNames(t, dir); !slices.Equal(names, []string{"seed.iso"}) {
			t.Errorf("directory holds %v", names)
		}
	})
	t.Run("through a symlink", func(t *testing.T) {
		dir := t.TempDir()
		real := filepath.Join(dir, "real.iso")
		mustWrite(t, real, "old")
		link := filepath.Join(dir, "seed.iso")
		if err := os.Symlink("real.iso", link); err != nil {
			t.Fatal(err)
		}
		if err := WriteImage(link, img, WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Lstat(link); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			t.Errorf("the link was replaced: %v %v", fi.Mode(), err)
		}
		if got, _ := os.ReadFile(real); !bytes.Equal(got, img.Bytes()) {
			t.Error("the file the link names was not written")
		}
	})
	t.Run("missing directory", func(t *testing.T) {
		err := WriteImage(filepath.Join(t.TempDir(), "no", "seed.iso"), img, WriteOptions{})
		var ie *InputError
		if err == nil || errors.As(err, &ie) {
			t.Fatalf("error %v, want a plain failure", err)
		}
	})
}

// requireRootMount mounts (bind or tmpfs) for a test, or skips: only root
// can, and CI (HARDBAKE_REQUIRE_TOOLS=1) must run these tests.
func requireRootMount(t *testing.T, src, dst, fstype string, flags uintptr) {
	t.Helper()
	skip := func(why string) {
		if os.Getenv("HARDBAKE_REQUIRE_TOOLS") == "1" {
			t.Fatalf("mount test needs root and mount(2) (HARDBAKE_REQUIRE_TOOLS=1): %s", why)
		}
		t.Skip(why)
	}
	if os.Geteuid() != 0 {
		skip("not root: cannot mount")
	}
	if err := syscall.Mount(src, dst, fstype, flags, ""); err != nil {
		skip(fmt.Sprintf("mount %s on %s: %v", src, dst, err))
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dst, 0); err != nil {
			t.Errorf("unmount %s: %v", dst, err)
		}
	})
}

// TestWriteImageOntoMountPoint: a file with something bind-mounted on it
// cannot be replaced by rename; the write is refused clearly and the file
// keeps its content.
func TestWriteImageOntoMountPoint(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "elsewhere")
	mustWrite(t, src, "mounted content")
	target := filepath.Join(dir, "seed.iso")
	mustWrite(t, target, "")
	requireRootMount(t, src, target, "", syscall.MS_BIND)
	err := WriteImage(target, testImage(t), WriteOptions{Field: "-o"})
	wantInputError(t, err, "is a mount point")
	if got, _ := os.ReadFile(target); string(got) != "mounted content" {
		t.Errorf("mounted file now holds %q", trim(string(got)))
	}
	for _, n := range listNames(t, dir) {
		if strings.Contains(n, ".tmp-") {
			t.Errorf("temporary left: %s", n)
		}
	}
}

func listNames(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

func TestWriteDirNew(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	dir := filepath.Join(t.TempDir(), "a", "seed")
	files := append(seedFiles("A"), images.File{Name: "agent", Data: []byte("bin"), Mode: 0o755})
	res, err := WriteDir(dir, files, WriteOptions{MakeParents: true, NewDirMode: 0o750, FixedTimes: true})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Created || len(res.Kept) != 0 {
		t.Errorf("result %+v", res)
	}
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode() != fs.ModeDir|0o750 || !fi.ModTime().Equal(images.FixedTime()) {
		t.Fatalf("directory %v %v (%v)", fi.Mode(), fi.ModTime(), err)
	}
	for _, f := range files {
		fi, err := os.Stat(filepath.Join(dir, f.Name))
		if err != nil || fi.Mode() != f.Mode || !fi.ModTime().Equal(images.FixedTime()) {
			t.Errorf("%s: %v %v (%v), want %v", f.Name, fi.Mode(), fi.ModTime(), err, f.Mode)
		}
	}
	if names := listNames(t, filepath.Dir(dir)); !slices.Equal(names, []string{"seed"}) {
		t.Errorf("beside the seed: %v", names)
	}
}

// TestWriteDirExisting: into a directory that holds other files, only the
// seed's files change; the rest, and the directory's mode, stay.
func TestWriteDirExisting(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "www")
	if err := os.Mkdir(dir, 0o751); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o751); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(dir, "index.html"), "<h1>mine</h1>")
	mustWrite(t, filepath.Join(dir, "network-config"), "version: 2\n")
	mustWrite(t, filepath.Join(dir, "meta-data"), "instance-id: old\n")
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, dir)
	res, err := WriteDir(dir, seedFiles("B"), WriteOptions{NewDirMode: 0o700})
	if err != nil {
		t.Fatal(err)
	}
	if res.Created || !slices.Equal(res.Kept, []string{"network-config"}) {
		t.Errorf("result %+v, want kept [network-config]", res)
	}
	after := snapshot(t, dir)
	for _, name := range []string{".", "index.html", "network-config", "sub"} {
		if b, a := before[name], after[name]; a.mode != b.mode || a.data != b.data {
			t.Errorf("%s changed: %v -> %v", name, b.mode, a.mode)
		}
	}
	if after["meta-data"].data != "instance-id: B\n" || after["user-data"].mode != 0o600 {
		t.Errorf("seed not written: %+v", after)
	}
	if len(after) != len(before)+1 {
		t.Errorf("entries %d -> %d, want only user-data added", len(before), len(after))
	}
}

func TestWriteDirRefuses(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string) (target string, inputs []Input)
		want  string
	}{
		{"a regular file", func(t *testing.T, dir string) (string, []Input) {
			p := filepath.Join(dir, "order.yaml")
			mustWrite(t, p, "x")
			return p, []Input{{"--order", p}}
		}, "is a regular file, not a directory"},
		{"a FIFO", func(t *testing.T, dir string) (string, []Input) {
			p := filepath.Join(dir, "fifo")
			if err := syscall.Mkfifo(p, 0o644); err != nil {
				t.Fatal(err)
			}
			return p, nil
		}, "is a FIFO, not a directory"},
		{"a device through a symlink", func(t *testing.T, dir string) (string, []Input) {
			p := filepath.Join(dir, "out")
			if err := os.Symlink("/dev/null", p); err != nil {
				t.Fatal(err)
			}
			return p, nil
		}, "is a character device, not a directory"},
		{"user-data is a symlink", func(t *testing.T, dir string) (string, []Input) {
			mustWrite(t, filepath.Join(dir, "passwd"), "root:x:0:0")
			if err := os.Symlink(filepath.Join(dir, "passwd"), filepath.Join(dir, "user-data")); err != nil {
				t.Fatal(err)
			}
			return dir, nil
		}, "user-data is a symbolic link, not a regular file"},
		{"meta-data is a FIFO", func(t *testing.T, dir string) (string, []Input) {
			if err := syscall.Mkfifo(filepath.Join(dir, "meta-data"), 0o644); err != nil {
				t.Fatal(err)
			}
			return dir, nil
		}, "meta-data is a FIFO"},
		{"user-data is a directory", func(t *testing.T, dir string) (string, []Input) {
			if err := os.Mkdir(filepath.Join(dir, "user-data"), 0o755); err != nil {
				t.Fatal(err)
			}
			return dir, nil
		}, "user-data is a directory"},
		{"meta-data is the order", func(t *testing.T, dir string) (string, []Input) {
			p := filepath.Join(dir, "meta-data")
			mustWrite(t, p, "hostname: a\n")
			return dir, []Input{{"--order", p}}
		}, "meta-data is the file given to --order"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			target, inputs := tc.setup(t, dir)
			before := snapshot(t, dir)
			_, err := WriteDir(target, seedFiles("A"), WriteOptions{Field: "-o", Inputs: inputs})
			wantInputError(t, err, tc.want)
			sameSnapshot(t, before, snapshot(t, dir))
		})
	}
}

// TestWriteDirOntoMountPoint: a file system mounted on the output
// directory is written in place (the temporaries are made inside it, so
// no rename crosses devices), and its root keeps its mode.
func TestWriteDirOntoMountPoint(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	requireRootMount(t, "hardbake-test", dir, "tmpfs", 0)
	if err := os.Chmod(dir, fs.ModeSticky|0o777); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(dir, "other"), "x")
	if _, err := WriteDir(dir, seedFiles("A"), WriteOptions{Field: "-o"}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode() != fs.ModeDir|fs.ModeSticky|0o777 {
		t.Errorf("mount root now %v (%v)", fi.Mode(), err)
	}
	if names := listNames(t, dir); !slices.Equal(names, []string{"meta-data", "other", "user-data"}) {
		t.Errorf("mount holds %v", names)
	}
}

// concurrentRounds runs two writers of different seeds into one directory
// at once, rounds times (alternately into a new and an existing
// directory), and returns how many rounds ended with one seed's user-data
// beside the other's meta-data, and how many with a writer failing.
func concurrentRounds(t *testing.T, rounds int, opts WriteOptions) (mixed, failed int) {
	t.Helper()
	parent := t.TempDir()
	dir := filepath.Join(parent, "seed")
	deadline := time.Now().Add(60 * time.Second)
	for i := range rounds {
		if time.Now().After(deadline) {
			t.Logf("stopped after %d rounds (time bound)", i)
			break
		}
		if i%2 == 0 {
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for w, tag := range []string{"A", "B"} {
			wg.Go(func() {
				_, errs[w] = WriteDir(dir, seedFiles(tag), opts)
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			if !opts.noLock {
				t.Fatalf("round %d: %v", i, err)
			}
			failed++
			continue
		}
		ud, err1 := os.ReadFile(filepath.Join(dir, "user-data"))
		md, err2 := os.ReadFile(filepath.Join(dir, "meta-data"))
		if err1 != nil || err2 != nil {
			t.Fatalf("round %d: %v %v", i, err1, err2)
		}
		tag := strings.TrimPrefix(strings.TrimSpace(string(md)), "instance-id: ")
		if !strings.HasSuffix(string(ud), "# order "+tag+"\n") {
			mixed++
		}
		if names := listNames(t, parent); !opts.noLock && !slices.Equal(names, []string{"seed"}) {
			t.Fatalf("round %d: beside the seed: %v", i, names)
		}
	}
	return mixed, failed
}

// TestWriteDirConcurrent: with the lock, two concurrent writers never
// leave a mixed seed.
func TestWriteDirConcurrent(t *testing.T) {
	if mixed, _ := concurrentRounds(t, 300, WriteOptions{NewDirMode: 0o755}); mixed > 0 {
		t.Errorf("%d rounds left a mixed seed", mixed)
	}
}

// TestWriteDirConcurrentNeedsLock shows the check above can fail: without
// the lock, interleaved writers leave mixed seeds or fail (the locked test
// treats either as a failure).
func TestWriteDirConcurrentNeedsLock(t *testing.T) {
	mixed, failed := concurrentRounds(t, 300, WriteOptions{NewDirMode: 0o755, noLock: true})
	if mixed+failed == 0 {
		t.Skip("no interleaving happened in 300 unlocked rounds on this machine; TestWriteDirConcurrent still ran")
	}
	t.Logf("of 300 unlocked rounds, %d left a mixed seed and %d had a writer fail", mixed, failed)
}

// TestWriteDirFileMountPoint: a seed file with something mounted on it is
// found before anything is replaced, so the seed is not left half new.
func TestWriteDirFileMountPoint(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "seed")
	if _, err := WriteDir(dir, seedFiles("A"), WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(filepath.Dir(dir), "elsewhere")
	mustWrite(t, src, "#cloud-config\n# order A\n")
	requireRootMount(t, src, filepath.Join(dir, "user-data"), "", syscall.MS_BIND)
	before := snapshot(t, dir)
	_, err := WriteDir(dir, seedFiles("B"), WriteOptions{Field: "-o"})
	wantInputError(t, err, "user-data is a mount point")
	sameSnapshot(t, before, snapshot(t, dir))
}

func TestUnescapeMount(t *testing.T) {
	for in, want := range map[string]string{
		`/mnt/a\040b`:  "/mnt/a b",
		`/x\134y`:      `/x\y`,
		`/plain`:       "/plain",
		`/bad\09`:      `/bad\09`,
		`/end\04`:      `/end\04`,
		`/t\011\012z`:  "/t\t\nz",
		`/trailing\\`:  `/trailing\\`,
		`/mnt/\040`:    "/mnt/ ",
		`\040`:         " ",
		`/a\040\040b`:  "/a  b",
		`/x\777`:       `/x\777`,
		`/x\0401`:      "/x 1",
		`/weird\`:      `/weird\`,
		`/q\1`:         `/q\1`,
		`/z\12`:        `/z\12`,
		`/ok\1340`:     `/ok\0`,
		`/sp\040\134`:  `/sp \`,
		`/m\060`:       "/m0",
		`/n\101\102`:   "/nAB",
		`/e\040end\\x`: `/e end\\x`,
	} {
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestWriteDirRollsBack: when a rename fails after the checks (here an
// immutable user-data, so meta-data, renamed first, is already new), the
// files already replaced get their previous content back.
func TestWriteDirRollsBack(t *testing.T) {
	chattr := testtool.Require(t, "chattr")
	dir := filepath.Join(t.TempDir(), "seed")
	if _, err := WriteDir(dir, seedFiles("A"), WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	ud := filepath.Join(dir, "user-data")
	if out, err := exec.Command(chattr, "+i", ud).CombinedOutput(); err != nil {
		if os.Getenv("HARDBAKE_REQUIRE_TOOLS") == "1" {
			t.Fatalf("chattr +i (HARDBAKE_REQUIRE_TOOLS=1): %v: %s", err, out)
		}
		t.Skipf("chattr +i not possible here (needs root and a file system with the flag): %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command(chattr, "-i", ud).Run() })
	before := snapshot(t, dir)
	_, err := WriteDir(dir, seedFiles("B"), WriteOptions{Field: "-o"})
	if err == nil || !strings.Contains(err.Error(), "user-data") {
		t.Fatalf("error %v, want one naming user-data", err)
	}
	sameSnapshot(t, before, snapshot(t, dir))
}

func FuzzUnescapeMount(f *testing.F) {
	for _, s := range []string{`/mnt/a\040b`, `/x\134y`, `\`, `\04`, `/plain`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := unescapeMount(s)
		if len(got) > len(s) {
			t.Fatalf("unescapeMount(%q) = %q grew", s, got)
		}
		if !strings.Contains(s, `\`) && got != s {
			t.Fatalf("unescapeMount(%q) = %q changed a string without escapes", s, got)
		}
	})
}
