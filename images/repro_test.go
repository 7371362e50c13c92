package images

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// helperEnv, when set, turns TestHelperBuildSeed into a seed builder run in
// a child process; the value is "format:path".
const helperEnv = "HARDBAKE_IMAGES_HELPER"

// TestHelperBuildSeed is not a test on its own: TestReproducible runs the
// test binary again with a different clock reading, time zone and umask,
// and this function builds the seed in that child.
func TestHelperBuildSeed(t *testing.T) {
	spec := os.Getenv(helperEnv)
	if spec == "" {
		t.Skip("helper process only")
	}
	format, path, ok := bytes.Cut([]byte(spec), []byte(":"))
	if !ok {
		t.Fatalf("bad %s=%q", helperEnv, spec)
	}
	if err := writeSeed(Format(format), string(path), sampleFiles()); err != nil {
		t.Fatal(err)
	}
}

// buildInChild builds a seed in a child process whose time zone (UTC+13:45,
// so local dates differ from UTC ones) and umask (077) differ from ours.
func buildInChild(t *testing.T, format Format, path string) {
	t.Helper()
	sh := requireTool(t, "sh")
	cmd := exec.Command(sh, "-c", `umask 077 && exec "$0" -test.run='^TestHelperBuildSeed$' -test.count=1`, os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"="+string(format)+":"+path, "TZ=Pacific/Chatham")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child build: %v\n%s", err, out)
	}
}

// TestReproducible builds each format twice, more than a second apart (ISO
// dates have one-second resolution, FAT two), the second time in another
// process with another time zone and umask, and requires identical output.
func TestReproducible(t *testing.T) {
	for _, format := range []Format{ISO, VFAT} {
		t.Run(string(format), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
			if err := writeSeed(format, a, sampleFiles()); err != nil {
				t.Fatal(err)
			}
			time.Sleep(2100 * time.Millisecond)
			buildInChild(t, format, b)
			ab, err := os.ReadFile(a)
			if err != nil {
				t.Fatal(err)
			}
			bb, err := os.ReadFile(b)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(ab, bb) {
				t.Errorf("%s images differ: %d vs %d bytes, first difference at offset %d", format, len(ab), len(bb), firstDiff(ab, bb))
			}
		})
	}
}

func firstDiff(a, b []byte) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestNormalizeISONeeded shows that TestReproducible is not vacuous: raw
// go-diskfs output differs between two builds, and normalizeISO is what
// makes the two identical.
func TestNormalizeISONeeded(t *testing.T) {
	t.Parallel()
	files, err := prepare(sampleFiles())
	if err != nil {
		t.Fatal(err)
	}
	build := func() *Image {
		img := newImage()
		if err := finalizeISO(img, files, ""); err != nil {
			t.Fatal(err)
		}
		return img
	}
	fa := build()
	time.Sleep(1100 * time.Millisecond)
	fb := build()
	if bytes.Equal(fa.Bytes(), fb.Bytes()) {
		t.Fatal("raw go-diskfs images are identical; the clock no longer leaks in and normalizeISO may be obsolete")
	}
	for _, img := range []*Image{fa, fb} {
		if err := normalizeISO(img); err != nil {
			t.Fatal(err)
		}
	}
	if a, b := fa.Bytes(), fb.Bytes(); !bytes.Equal(a, b) {
		t.Errorf("normalized images differ at offset %d", firstDiff(a, b))
	}
}

// TestNormalizeISOReachesEverything checks that the normalizer walks the
// Rock Ridge entries go-diskfs writes, including the continuation area
// that holds the root's long ER entry, and that no clock date survives.
func TestNormalizeISOReachesEverything(t *testing.T) {
	// Text-only content, so a date pattern cannot occur in file data by
	// chance and the whole image can be searched.
	files := base(File{Name: "run-me", Data: []byte("#!/bin/sh\necho hi\n"), Mode: 0o755})
	built, err := Build(ISO, files)
	if err != nil {
		t.Fatal(err)
	}
	_, st, err := normalizeISOStructures(built)
	if err != nil {
		t.Fatal(err)
	}
	// Root: ".", ".."; then one record per file.
	if want := 2 + len(files); st.records != want || st.tf != want || st.px != want {
		t.Errorf("normalized %+v, want %d records, TF and PX entries", st, want)
	}
	if st.ce == 0 {
		t.Errorf("no SUSP continuation area followed (%+v); go-diskfs puts the root's ER entry in one", st)
	}
	// No date from this year may remain anywhere in the image: neither as
	// a 17-byte volume date nor as a 7-byte record date.
	img := built.Bytes()
	now := time.Now().UTC()
	if bytes.Contains(img, []byte(now.Format("2006010215"))) {
		t.Error("a volume date from the current hour survives")
	}
	rec := []byte{byte(now.Year() - 1900), byte(now.Month()), byte(now.Day())}
	if i := bytes.Index(img, rec); i >= 0 {
		t.Errorf("a record date of today survives at offset %d", i)
	}
}
