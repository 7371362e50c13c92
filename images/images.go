// Package images writes NoCloud seeds: the small filesystems (or the plain
// directory) from which cloud-init's NoCloud datasource reads user-data and
// meta-data on first boot.
//
// Three formats are supported:
//
//   - ISO: ISO9660 with Rock Ridge, volume identifier "cidata". The default:
//     it is small, carries POSIX modes (an executable agent stays 0755) and
//     every hypervisor can attach it as a CD-ROM.
//   - VFAT: FAT32 labelled "CIDATA", for platforms that only attach disks.
//   - Dir: a plain directory, to be served over HTTP for NoCloud-Net.
//
// Every builder is reproducible: the same files give byte-identical output,
// whatever the clock, time zone, umask or user that builds them.
package images

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"
	"time"
)

// Format names an output format of Write.
type Format string

// The supported formats.
const (
	ISO  Format = "iso"
	VFAT Format = "vfat"
	Dir  Format = "dir"
)

// formats lists the allowed values in the order they are shown to users.
func formats() []Format { return []Format{ISO, VFAT, Dir} }

// ParseFormat turns a user-supplied name into a Format. Matching is
// case-insensitive because users type "ISO" as often as "iso".
func ParseFormat(s string) (Format, error) {
	want := Format(strings.ToLower(strings.TrimSpace(s)))
	for _, f := range formats() {
		if f == want {
			return f, nil
		}
	}
	return "", fmt.Errorf("unknown seed format %q: allowed values are %s", s, allowedList())
}

// allowedList names the formats for error messages.
func allowedList() string {
	names := make([]string, 0, len(formats()))
	for _, f := range formats() {
		names = append(names, string(f))
	}
	return strings.Join(names, ", ")
}

// File is one file of a seed. Names are flat (the NoCloud datasource only
// reads the top level). A zero Mode means 0644.
type File struct {
	Name string
	Data []byte
	Mode fs.FileMode
}

// fixedTime is the timestamp recorded for every file and volume date in a
// seed. 2000-01-01 UTC rather than the Unix epoch: FAT cannot represent
// dates before 1980, and several tools treat a zero time as "unset", so one
// constant that every format can store exactly keeps the formats consistent
// and the output reproducible. A function, not a variable, so nothing can
// change it at run time.
func fixedTime() time.Time { return time.Date(2000, time.January, 1, 0, 0, 0, 0, time.UTC) }

// FixedTime is the timestamp every seed records for its files and volume;
// a seed directory's files carry it too, so it does not depend on when
// it was built.
func FixedTime() time.Time { return fixedTime() }

// maxNameLen bounds file names well inside the limits of Rock Ridge NM
// entries, FAT long names and ext4, so a name valid for one format is valid
// for all of them.
const maxNameLen = 128

// defaultMode is used when File.Mode is zero.
const defaultMode fs.FileMode = 0o644

// required lists the files without which cloud-init's NoCloud datasource
// ignores the seed; a seed missing them is always a bug upstream.
var required = [...]string{"user-data", "meta-data"}

// validName reports whether every byte of name is in a conservative set.
// The set is deliberately narrow: such names mean the same thing on
// ISO9660/Rock Ridge, FAT long names and a POSIX directory, and need no
// escaping in a NoCloud-Net URL or a shell.
func validName(name string) bool {
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-' || c == '_' || c == '.' || c == '+':
		default:
			return false
		}
	}
	return true
}

// prepare validates files and returns a copy sorted by name with modes
// defaulted, so every writer sees the same canonical input.
func prepare(files []File) ([]File, error) {
	out := make([]File, 0, len(files))
	// FAT compares names case-insensitively, so "User-Data" and
	// "user-data" would collide there; reject that in every format so a
	// file list is valid independently of the format chosen.
	seen := make(map[string]string, len(files))
	var errs []error
	for i, f := range files {
		switch {
		case f.Name == "":
			errs = append(errs, fmt.Errorf("file %d: empty name", i))
			continue
		case f.Name == "." || f.Name == "..":
			errs = append(errs, fmt.Errorf("file %q: reserved name", f.Name))
			continue
		case strings.Contains(f.Name, "/"):
			errs = append(errs, fmt.Errorf("file %q: name contains '/' (seeds are flat)", f.Name))
			continue
		case len(f.Name) > maxNameLen:
			errs = append(errs, fmt.Errorf("file %q: name longer than %d bytes", f.Name, maxNameLen))
			continue
		case !validName(f.Name):
			errs = append(errs, fmt.Errorf("file %q: name may only contain A-Z a-z 0-9 . _ - +", f.Name))
			continue
		case strings.HasPrefix(f.Name, "."):
			errs = append(errs, fmt.Errorf("file %q: hidden names are not allowed", f.Name))
			continue
		}
		key := strings.ToLower(f.Name)
		if prev, ok := seen[key]; ok {
			errs = append(errs, fmt.Errorf("file %q: duplicate of %q", f.Name, prev))
			continue
		}
		seen[key] = f.Name
		mode := f.Mode
		if mode == 0 {
			mode = defaultMode
		}
		// Only permission bits: a seed carries regular files, and setuid
		// bits on removable media are something nobody should want.
		if mode&^fs.ModePerm != 0 {
			errs = append(errs, fmt.Errorf("file %q: mode %v has bits other than permissions", f.Name, f.Mode))
			continue
		}
		out = append(out, File{Name: f.Name, Data: f.Data, Mode: mode})
	}
	for _, r := range required {
		if _, ok := seen[r]; !ok {
			errs = append(errs, fmt.Errorf("missing %q: cloud-init's NoCloud datasource needs both user-data and meta-data", r))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("invalid seed files: %w", errors.Join(errs...))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Validate checks a seed's files as every format needs them (flat, safe
// names, no case-insensitive duplicates, permission bits only, user-data
// and meta-data present) and returns a copy sorted by name with modes
// defaulted. A Dir seed is exactly this list; writing it to a directory is
// the caller's business (package bake does it safely).
func Validate(files []File) ([]File, error) { return prepare(files) }

// Build builds an ISO or VFAT seed in memory. Nothing is written to the
// output's file system: the caller decides where the bytes go (a file,
// an HTTP response). The ISO format still uses a private workspace
// directory in the system temp dir for the duration of the call (go-diskfs
// packs from one) and removes it before returning.
func Build(format Format, files []File) (*Image, error) { return Builder{}.Build(format, files) }

// Builder builds seeds with settings. Its zero value is what Build uses.
type Builder struct {
	// WorkDir is where an ISO build makes its private workspace
	// directory; empty means the system temp dir. A tmpfs (a service's
	// RuntimeDirectory under /run) makes the workspace cost a tenth of
	// what it costs on a disk file system (BenchmarkISOWorkspace).
	WorkDir string
}

// Build is the package-level Build with b's settings.
func (b Builder) Build(format Format, files []File) (*Image, error) {
	// Exact match only: Build takes the constants, ParseFormat is where
	// user spellings are accepted.
	var build func(*Image, []File) error
	switch format {
	case ISO:
		build = func(img *Image, files []File) error { return buildISO(img, files, b.WorkDir) }
	case VFAT:
		build = buildVFAT
	case Dir:
		return nil, errors.New("build seed: a dir seed is a set of files, not an image (use Validate)")
	default:
		return nil, fmt.Errorf("build seed: unknown format %q: allowed values are %s", format, allowedList())
	}
	canon, err := prepare(files)
	if err != nil {
		return nil, fmt.Errorf("build %s seed: %w", format, err)
	}
	img := newImage()
	if err := build(img, canon); err != nil {
		return nil, fmt.Errorf("build %s seed: %w", format, err)
	}
	return img, nil
}

// Encode builds an ISO or VFAT seed and writes it to w.
func Encode(w io.Writer, format Format, files []File) (int64, error) {
	img, err := Build(format, files)
	if err != nil {
		return 0, err
	}
	return img.WriteTo(w)
}
