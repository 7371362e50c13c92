package bake

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"hardbake.dev/hardbake/images"
	"hardbake.dev/hardbake/render"
)

// Input is a file the same run reads (the profile, the order, a key file,
// the agent). An output never replaces one.
type Input struct {
	Flag string // how the user gave it: "--order"
	Path string
}

// WriteOptions say how an output is written and what it must not destroy.
type WriteOptions struct {
	// Field names the output in errors ("-o").
	Field string
	// Inputs are never overwritten (compared with os.SameFile, so through
	// symlinks and hard links too).
	Inputs []Input
	// MakeParents creates missing parent directories (0755).
	MakeParents bool
	// NewDirMode is the mode of a directory WriteDir creates; an existing
	// directory keeps its own mode, owner and unrelated files.
	NewDirMode fs.FileMode
	// FixedTimes stamps the written files (and a new directory) with
	// images.FixedTime, so a seed directory is reproducible.
	FixedTimes bool

	// noLock skips the directory lock, only so a test can show that its
	// concurrency check finds the mixed results the lock prevents.
	noLock bool
}

// lock takes the writers' lock on dir unless a test turned it off.
func (o WriteOptions) lock(dir string) (func(), error) {
	if o.noLock {
		return func() {}, nil
	}
	return lockDir(dir)
}

func (o WriteOptions) field() string {
	if o.Field == "" {
		return "output"
	}
	return o.Field
}

// WriteImage writes an image to the file path, all or nothing: the image
// goes to a temporary file in path's own directory (so the final rename
// never crosses a file system), is synced, and renamed over path; the
// directory is synced after. Writers into the same directory are
// serialized by a lock on it. path may be a symlink (the file it points
// to is replaced, the link stays). It refuses, writing nothing, when path
// is an input of the run, or exists and is not a regular file (a device,
// a FIFO, a socket, a directory), or is a mount point. The new file is
// 0600: a seed carries user-data, which may hold secrets.
func WriteImage(path string, img *images.Image, opts WriteOptions) (err error) {
	field := opts.field()
	if path == "" {
		return inputErr(field, "empty output path")
	}
	target, err := resolveTarget(path, field)
	if err != nil {
		return err
	}
	dir := filepath.Dir(target)
	if opts.MakeParents {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", quotePath(dir), err)
		}
	}
	unlock, err := opts.lock(dir)
	if err != nil {
		return err
	}
	defer unlock()
	// Checked under the lock: what another writer did before is seen.
	if err := checkFileTarget(target, path, opts); err != nil {
		return err
	}
	if firstMountPoint(dir, []string{filepath.Base(target)}) != "" {
		return renameError(field, path, syscall.EBUSY)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(target)+".tmp-*")
	if err != nil {
		return fmt.Errorf("create temporary image: %w", err)
	}
	tmpName := tmp.Name()
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmpName)
		}
	}()
	// Enforce 0600 even if CreateTemp's behaviour or the umask changes.
	if err = tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("chmod temporary image: %w", err)
	}
	if err = img.CopyTo(tmp); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("sync image: %w", err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("close image: %w", err)
	}
	if err = os.Rename(tmpName, target); err != nil {
		return renameError(field, path, err)
	}
	return syncDir(dir)
}

// DirResult tells what WriteDir did.
type DirResult struct {
	// Created is true when the directory was new.
	Created bool
	// Kept lists seed files already in the directory that this write did
	// not replace (a network-config or agent from an earlier seed, or the
	// user's own vendor-data): they are left alone, since bake never
	// removes what it did not write, but the caller should say so.
	Kept []string
}

// seedNames are the files a NoCloud seed directory may hold.
func seedNames() []string {
	return []string{"user-data", "meta-data", "network-config", "vendor-data", render.SeedName("amd64"), render.SeedName("arm64")}
}

// WriteDir writes files into the directory path.
//
// A new directory is built whole beside path and renamed into place (one
// atomic rename). Into an existing directory each file is written to a
// temporary file inside it and renamed over its name, after every target
// was checked (type, inputs, mount points); should a rename still fail,
// the files already replaced are restored. Nothing else in the directory
// is touched: no file removed, no mode or owner changed. (A power loss
// between two renames can still leave a mix: there is no atomic rename of
// several files into a directory that also holds other files.) Writers into the same place are serialized by
// a lock on the parent directory, so two concurrent writes never leave
// one's user-data beside the other's meta-data. Refused, with nothing
// written: path (or a target file in it) being an input of the run, path
// existing as something other than a directory, a target name that
// exists as anything but a regular file (a symlink included: following it
// would write outside the directory).
func WriteDir(path string, files []images.File, opts WriteOptions) (*DirResult, error) {
	field := opts.field()
	if path == "" {
		return nil, inputErr(field, "empty output path")
	}
	files, err := images.Validate(files)
	if err != nil {
		return nil, fmt.Errorf("write seed directory %s: %w", quotePath(path), err)
	}
	target, err := resolveTarget(path, field)
	if err != nil {
		return nil, err
	}
	parent := filepath.Dir(target)
	if opts.MakeParents {
		if err := os.MkdirAll(parent, 0o755); err != nil {
			return nil, fmt.Errorf("create %s: %w", quotePath(parent), err)
		}
	}
	unlock, err := opts.lock(parent)
	if err != nil {
		return nil, err
	}
	defer unlock()
	fi, err := os.Stat(target)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := newDir(target, files, opts); err != nil {
			return nil, err
		}
		return &DirResult{Created: true}, nil
	case err != nil:
		return nil, fmt.Errorf("inspect %s: %w", quotePath(path), err)
	case !fi.IsDir():
		return nil, inputErr(field, fmt.Sprintf("%s is %s, not a directory; refusing to replace it (nothing written)", quotePath(path), describeMode(fi.Mode())))
	}
	return intoDir(target, path, files, opts)
}

// newDir builds the directory beside target and renames it into place.
func newDir(target string, files []images.File, opts WriteOptions) (err error) {
	parent := filepath.Dir(target)
	// MkdirTemp creates it 0700; the chmod below is exact, whatever the umask.
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(target)+".tmp-*")
	if err != nil {
		return fmt.Errorf("create temporary directory: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(tmp)
		}
	}()
	mode := opts.NewDirMode
	if mode == 0 {
		mode = 0o700
	}
	if err = os.Chmod(tmp, mode); err != nil {
		return fmt.Errorf("chmod %s: %w", quotePath(tmp), err)
	}
	for _, f := range files {
		if err = writeFileSynced(filepath.Join(tmp, f.Name), f, opts.FixedTimes); err != nil {
			return err
		}
	}
	if opts.FixedTimes {
		// Listings and HTTP Last-Modified then do not depend on the build time.
		if err = os.Chtimes(tmp, images.FixedTime(), images.FixedTime()); err != nil {
			return fmt.Errorf("set directory times: %w", err)
		}
	}
	if err = syncDir(tmp); err != nil {
		return err
	}
	if err = os.Rename(tmp, target); err != nil {
		return renameError(opts.field(), target, err)
	}
	return syncDir(parent)
}

// intoDir writes files into the existing directory dir.
func intoDir(dir, shown string, files []images.File, opts WriteOptions) (res *DirResult, err error) {
	field := opts.field()
	for _, f := range files {
		p := filepath.Join(dir, f.Name)
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("inspect %s: %w", quotePath(p), err)
		}
		if !fi.Mode().IsRegular() {
			return nil, inputErr(field, fmt.Sprintf("%s is %s, not a regular file; refusing to replace it (nothing written)", quotePath(filepath.Join(shown, f.Name)), describeMode(fi.Mode())))
		}
		if in, ok := sameAsInput(fi, opts.Inputs); ok {
			return nil, inputErr(field, fmt.Sprintf("%s is the file given to %s; refusing to overwrite an input (nothing written)", quotePath(filepath.Join(shown, f.Name)), in.Flag))
		}
	}
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = f.Name
	}
	if n := firstMountPoint(dir, names); n != "" {
		return nil, renameError(field, filepath.Join(shown, n), syscall.EBUSY)
	}
	temps := make([]string, len(files))
	defer func() {
		for _, t := range temps {
			if t != "" {
				_ = os.Remove(t)
			}
		}
	}()
	for i, f := range files {
		t, err := os.CreateTemp(dir, "."+f.Name+".tmp-*")
		if err != nil {
			return nil, fmt.Errorf("create temporary file in %s: %w", quotePath(shown), err)
		}
		temps[i] = t.Name()
		if err := fillSynced(t, f, opts.FixedTimes); err != nil {
			return nil, err
		}
	}
	if err := replaceAll(dir, shown, field, files, temps); err != nil {
		return nil, err
	}
	res = &DirResult{}
	for _, name := range seedNames() {
		if slices.ContainsFunc(files, func(f images.File) bool { return f.Name == name }) {
			continue
		}
		if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
			res.Kept = append(res.Kept, name)
		}
	}
	return res, nil
}

// replaceAll renames each temporary over its file. A rename can still fail
// after every check passed (an immutable file, an I/O error): then the
// files already replaced get their previous content back, from hard links
// made before the first rename, so the directory holds the old seed or the
// new one, never a mix. Where hard links are impossible the previous
// content cannot be kept and a failure says which files were replaced.
func replaceAll(dir, shown, field string, files []images.File, temps []string) error {
	backups := make([]string, len(files)) // hard links to the previous files
	existed := make([]bool, len(files))
	defer func() {
		for _, b := range backups {
			if b != "" {
				_ = os.Remove(b)
			}
		}
	}()
	for i, f := range files {
		target := filepath.Join(dir, f.Name)
		if _, err := os.Lstat(target); err != nil {
			continue
		}
		existed[i] = true
		b, err := reserveName(dir, "."+f.Name+".old-*")
		if err != nil {
			return err
		}
		if os.Link(target, b) == nil {
			backups[i] = b
		}
	}
	for i, f := range files {
		target := filepath.Join(dir, f.Name)
		if err := os.Rename(temps[i], target); err != nil {
			failed := renameError(field, filepath.Join(shown, f.Name), err)
			var lost []string
			for j := range i {
				p := filepath.Join(dir, files[j].Name)
				switch {
				case backups[j] != "":
					err = os.Rename(backups[j], p)
					backups[j] = ""
				case !existed[j]:
					err = os.Remove(p)
				default:
					err = errors.New("no hard link of the previous file")
				}
				if err != nil {
					lost = append(lost, fmt.Sprintf("%s (%v)", files[j].Name, err))
				}
			}
			if len(lost) > 0 {
				return fmt.Errorf("%w; these were already replaced and could not be restored: %s", failed, strings.Join(lost, ", "))
			}
			return failed
		}
		temps[i] = ""
	}
	return syncDir(dir)
}

// reserveName returns an unused name in dir for os.Link, which will not
// replace an existing file: CreateTemp finds one, and the placeholder is
// removed.
func reserveName(dir, pattern string) (string, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return "", fmt.Errorf("reserve a backup name in %s: %w", quotePath(dir), err)
	}
	name := f.Name()
	_ = f.Close()
	if err := os.Remove(name); err != nil {
		return "", fmt.Errorf("reserve a backup name in %s: %w", quotePath(dir), err)
	}
	return name, nil
}

// writeFileSynced creates name and fills it.
func writeFileSynced(name string, f images.File, fixed bool) error {
	out, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", f.Name, err)
	}
	return fillSynced(out, f, fixed)
}

// fillSynced writes f's data into out with f's exact mode (chmod, because
// the umask narrows the mode given at creation), syncs and closes it, and
// stamps the fixed time if asked.
func fillSynced(out *os.File, f images.File, fixed bool) error {
	if _, err := out.Write(f.Data); err != nil {
		_ = out.Close()
		return fmt.Errorf("write %s: %w", f.Name, err)
	}
	if err := out.Chmod(f.Mode); err != nil {
		_ = out.Close()
		return fmt.Errorf("chmod %s: %w", f.Name, err)
	}
	if err := out.Sync(); err != nil {
		_ = out.Close()
		return fmt.Errorf("sync %s: %w", f.Name, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("close %s: %w", f.Name, err)
	}
	if fixed {
		if err := os.Chtimes(out.Name(), images.FixedTime(), images.FixedTime()); err != nil {
			return fmt.Errorf("set times of %s: %w", f.Name, err)
		}
	}
	return nil
}

// resolveTarget follows a symlink given as the output, so the file it
// names is replaced and the link itself stays.
func resolveTarget(path, field string) (string, error) {
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		return path, nil
	}
	real, err := filepath.EvalSymlinks(path)
	if errors.Is(err, fs.ErrNotExist) {
		// A dangling link: write where it points, as a shell's > would.
		dest, rerr := os.Readlink(path)
		if rerr != nil {
			return "", fmt.Errorf("read link %s: %w", quotePath(path), rerr)
		}
		if !filepath.IsAbs(dest) {
			dest = filepath.Join(filepath.Dir(path), dest)
		}
		if _, lerr := os.Lstat(dest); lerr == nil {
			return "", inputErr(field, fmt.Sprintf("%s is a symbolic link through a broken chain of links; refusing to follow it", quotePath(path)))
		}
		return dest, nil
	}
	if err != nil {
		return "", inputErr(field, fmt.Sprintf("%s: %v", quotePath(path), err))
	}
	return real, nil
}

// checkFileTarget refuses a file output onto an input or a non-regular file.
func checkFileTarget(target, shown string, opts WriteOptions) error {
	field := opts.field()
	fi, err := os.Stat(target)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("inspect %s: %w", quotePath(shown), err)
	}
	if !fi.Mode().IsRegular() {
		return inputErr(field, fmt.Sprintf("%s is %s, not a regular file; refusing to replace it (nothing written)", quotePath(shown), describeMode(fi.Mode())))
	}
	if in, ok := sameAsInput(fi, opts.Inputs); ok {
		return inputErr(field, fmt.Sprintf("%s is the file given to %s; refusing to overwrite an input (nothing written)", quotePath(shown), in.Flag))
	}
	return nil
}

// sameAsInput reports which input, if any, is the file fi describes.
func sameAsInput(fi fs.FileInfo, inputs []Input) (Input, bool) {
	for _, in := range inputs {
		if in.Path == "" {
			continue
		}
		if ifi, err := os.Stat(in.Path); err == nil && os.SameFile(fi, ifi) {
			return in, true
		}
	}
	return Input{}, false
}

// renameError explains a failed final rename. EBUSY means the target is a
// mount point (a file or directory something is mounted on), which no
// rename can replace; EXDEV cannot happen with the temporary beside the
// target unless the target is a mount point of another file system.
func renameError(field, shown string, err error) error {
	if errors.Is(err, syscall.EBUSY) || errors.Is(err, syscall.EXDEV) {
		return inputErr(field, fmt.Sprintf("%s is a mount point, which cannot be replaced atomically; write the seed elsewhere and copy it onto the mount (nothing written)", quotePath(shown)))
	}
	return fmt.Errorf("move %s into place: %w", quotePath(shown), err)
}

// syncDir fsyncs a directory so that entries created or renamed in it are
// durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory %s for sync: %w", quotePath(dir), err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", quotePath(dir), err)
	}
	return nil
}
