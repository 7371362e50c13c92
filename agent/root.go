package agent

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"hardbake.dev/hardbake/plan"
)

// Root is the machine's filesystem seen from a root directory ("/" on the
// machine, a temp dir in tests). Every path the agent handles is absolute
// as on the machine and is resolved here.
type Root struct{ Dir string }

// backupDir holds the previous content of every file the agent replaced.
const backupDir = plan.StateDir + "/backup"

// absentSuffix marks a backup of a file that did not exist before.
const absentSuffix = ".absent"

// Path maps a machine path to the real path under the root.
func (r Root) Path(p string) string { return filepath.Join(r.Dir, filepath.Clean("/"+p)) }

// ReadFile reads a machine path.
func (r Root) ReadFile(p string) ([]byte, error) { return os.ReadFile(r.Path(p)) }

// Exists reports whether a machine path exists.
func (r Root) Exists(p string) bool {
	_, err := os.Lstat(r.Path(p))
	return err == nil
}

// WriteAtomic writes data to p through a temp file in the same directory,
// fsync and rename, so readers (sshd, systemd) never see half a file.
// Parent directories are created 0755.
func (r Root) WriteAtomic(p string, data []byte, mode fs.FileMode, owner string) error {
	full := r.Path(p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return fmt.Errorf("create parent of %s: %w", p, err)
	}
	uid, gid, err := r.lookupOwner(owner)
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(full), "."+filepath.Base(full)+".hardbake-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		return fmt.Errorf("chmod %s: %w", p, err)
	}
	if uid >= 0 && os.Geteuid() == 0 {
		if err := tmp.Chown(uid, gid); err != nil {
			return fmt.Errorf("chown %s: %w", p, err)
		}
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", p, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", p, err)
	}
	if err := os.Rename(tmp.Name(), full); err != nil {
		return fmt.Errorf("rename into %s: %w", p, err)
	}
	ok = true
	return nil
}

// Remove deletes a machine path; a missing file is not an error.
func (r Root) Remove(p string) error {
	if err := os.Remove(r.Path(p)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", p, err)
	}
	return nil
}

// Same reports whether f is already on disk with the same content and mode.
func (r Root) Same(f plan.File) bool {
	full := r.Path(f.Path)
	fi, err := os.Stat(full)
	if err != nil || fi.Mode().Perm() != fs.FileMode(f.Mode).Perm() {
		return false
	}
	data, err := os.ReadFile(full)
	return err == nil && bytes.Equal(data, []byte(f.Content))
}

// Install writes f unless it is already in place, keeping the previous
// content (or the fact there was none) under backupDir first. It reports
// whether anything changed.
func (r Root) Install(f plan.File) (bool, error) {
	if f.Path == "" {
		return false, errors.New("plan file has no path")
	}
	if r.Same(f) {
		return false, nil
	}
	if err := r.backup(f.Path); err != nil {
		return false, err
	}
	mode := fs.FileMode(f.Mode).Perm()
	if mode == 0 {
		mode = 0o644
	}
	if err := r.WriteAtomic(f.Path, []byte(f.Content), mode, f.Owner); err != nil {
		return false, err
	}
	return true, nil
}

func (r Root) backupPath(p string) string { return backupDir + filepath.Clean("/"+p) }

// backup records the current state of p for Restore.
func (r Root) backup(p string) error {
	bp := r.backupPath(p)
	fi, err := os.Stat(r.Path(p))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := r.Remove(bp); err != nil {
			return err
		}
		return r.WriteAtomic(bp+absentSuffix, nil, 0o600, "")
	case err != nil:
		return fmt.Errorf("back up %s: %w", p, err)
	}
	data, err := r.ReadFile(p)
	if err != nil {
		return fmt.Errorf("back up %s: %w", p, err)
	}
	if err := r.Remove(bp + absentSuffix); err != nil {
		return err
	}
	return r.WriteAtomic(bp, data, fi.Mode().Perm(), "")
}

// HasBackup reports whether Restore(p) has something to restore.
func (r Root) HasBackup(p string) bool {
	bp := r.backupPath(p)
	return r.Exists(bp) || r.Exists(bp+absentSuffix)
}

// Restore puts back what backup recorded: the old content, or no file.
func (r Root) Restore(p string) error {
	bp := r.backupPath(p)
	if r.Exists(bp + absentSuffix) {
		return r.Remove(p)
	}
	data, err := r.ReadFile(bp)
	if err != nil {
		return fmt.Errorf("restore %s: %w", p, err)
	}
	fi, err := os.Stat(r.Path(bp))
	if err != nil {
		return fmt.Errorf("restore %s: %w", p, err)
	}
	return r.WriteAtomic(p, data, fi.Mode().Perm(), "")
}

// lookupOwner resolves "user:group" in the root's /etc/passwd and
// /etc/group (no NSS: the agent is static). "" means leave as is (-1).
func (r Root) lookupOwner(owner string) (int, int, error) {
	if owner == "" {
		return -1, -1, nil
	}
	user, group, _ := strings.Cut(owner, ":")
	uid, err := r.lookupID("/etc/passwd", user)
	if err != nil {
		return 0, 0, err
	}
	gid := 0
	if group != "" {
		if gid, err = r.lookupID("/etc/group", group); err != nil {
			return 0, 0, err
		}
	}
	return uid, gid, nil
}

func (r Root) lookupID(db, name string) (int, error) {
	if n, err := strconv.Atoi(name); err == nil {
		return n, nil
	}
	if name == "root" {
		return 0, nil
	}
	fields, err := r.dbEntry(db, name)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(fields[2])
}

// dbEntry returns the colon-separated fields of name's line in a passwd-style file.
func (r Root) dbEntry(db, name string) ([]string, error) {
	data, err := r.ReadFile(db)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", db, err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Split(line, ":")
		if len(f) >= 3 && f[0] == name {
			return f, nil
		}
	}
	return nil, fmt.Errorf("%s: no entry for %q", db, name)
}
