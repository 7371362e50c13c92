package images

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// writeDir builds a NoCloud-Net seed directory next to path and moves it
// into place.
func writeDir(path string, files []File) (err error) {
	parent, base := filepath.Split(filepath.Clean(path))
	if parent == "" {
		parent = "."
	}
	// MkdirTemp creates the directory 0700: user-data may hold secrets,
	// and whoever serves it can widen access deliberately.
	tmp, err := os.MkdirTemp(parent, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("create temporary directory: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(tmp)
		}
	}()
	for _, f := range files {
		if err = writeFileSynced(filepath.Join(tmp, f.Name), f.Data, f.Mode); err != nil {
			return err
		}
	}
	// A fixed mtime on the directory too, so that listings and HTTP
	// Last-Modified headers do not depend on when the seed was built.
	if err = os.Chtimes(tmp, fixedTime(), fixedTime()); err != nil {
		return fmt.Errorf("set directory times: %w", err)
	}
	if err = syncDir(tmp); err != nil {
		return err
	}
	if err = replaceDir(tmp, path, parent, base); err != nil {
		return err
	}
	return syncDir(parent)
}

// writeFileSynced writes one seed file with an explicit mode (chmod after
// create, because the umask would otherwise narrow it), a fixed mtime and
// an fsync.
func writeFileSynced(name string, data []byte, mode fs.FileMode) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("create %s: %w", filepath.Base(name), err)
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return fmt.Errorf("write %s: %w", filepath.Base(name), err)
	}
	if err := f.Chmod(mode); err != nil {
		_ = f.Close()
		return fmt.Errorf("chmod %s: %w", filepath.Base(name), err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return fmt.Errorf("sync %s: %w", filepath.Base(name), err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", filepath.Base(name), err)
	}
	if err := os.Chtimes(name, fixedTime(), fixedTime()); err != nil {
		return fmt.Errorf("set times of %s: %w", filepath.Base(name), err)
	}
	return nil
}

// replaceDir moves the finished directory tmp to path. A missing path is
// filled by a single rename(2), which is atomic. An existing empty
// directory, or an earlier seed directory (renamed aside, removed after),
// is replaced in two steps: there is no portable atomic swap of two
// directories, so readers may briefly see no directory, but never a
// partial seed.
func replaceDir(tmp, path, parent, base string) error {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("rename seed directory into place: %w", err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("inspect existing %s: %w", path, err)
	case !fi.IsDir():
		return fmt.Errorf("%s exists and is not a directory", path)
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return fmt.Errorf("read existing %s: %w", path, err)
	}
	if len(entries) == 0 {
		// os.Rename refuses to replace a directory (even an empty one,
		// which rename(2) would allow), so remove it first.
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("remove empty %s: %w", path, err)
		}
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("rename seed directory into place: %w", err)
		}
		return nil
	}
	if !looksLikeSeed(entries) {
		return fmt.Errorf("refusing to replace %s: it exists and is not a seed directory (only regular files, with meta-data)", path)
	}
	// Pick a unique name for the old seed: MkdirTemp finds one, and the
	// placeholder is removed because os.Rename will not replace a
	// directory.
	old, err := os.MkdirTemp(parent, "."+base+".old-*")
	if err != nil {
		return fmt.Errorf("reserve name for previous seed: %w", err)
	}
	if err := os.Remove(old); err != nil {
		return fmt.Errorf("reserve name for previous seed: %w", err)
	}
	if err := os.Rename(path, old); err != nil {
		return fmt.Errorf("move previous seed aside: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		// Put the previous seed back so a failure changes nothing.
		if rerr := os.Rename(old, path); rerr != nil {
			return fmt.Errorf("rename seed directory into place: %w (and restoring the previous seed from %s failed: %v)", err, old, rerr)
		}
		return fmt.Errorf("rename seed directory into place: %w", err)
	}
	if err := os.RemoveAll(old); err != nil {
		return fmt.Errorf("remove previous seed %s: %w", old, err)
	}
	return nil
}

// looksLikeSeed reports whether a directory listing is that of an earlier
// seed: regular files only, meta-data among them.
func looksLikeSeed(entries []fs.DirEntry) bool {
	hasMeta := false
	for _, e := range entries {
		if !e.Type().IsRegular() {
			return false
		}
		if e.Name() == "meta-data" {
			hasMeta = true
		}
	}
	return hasMeta
}
