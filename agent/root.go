package agent

import (
	"bytes"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"syscall"

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
func (r Root) Path(p string) string { return path.Join(r.Dir, path.Clean("/"+p)) }

// ReadFile reads a machine path.
func (r Root) ReadFile(p string) ([]byte, error) { return sysReadFile(r.Path(p)) }

// Exists reports whether a machine path exists.
func (r Root) Exists(p string) bool { return sysExists(r.Path(p)) }

// WriteAtomic writes data to p through a temp file in the same directory,
// fsync and rename, so readers (sshd, systemd) never see half a file.
// Parent directories are created 0755.
func (r Root) WriteAtomic(p string, data []byte, mode uint32, owner string) error {
	full := r.Path(p)
	if err := sysMkdirAll(path.Dir(full), 0o755); err != nil {
		return fmt.Errorf("create parent of %s: %w", p, err)
	}
	uid, gid, err := r.lookupOwner(owner)
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	return sysWriteAtomic(full, data, mode, uid, gid)
}

// Remove deletes a machine path; a missing file is not an error.
func (r Root) Remove(p string) error { return sysRemove(r.Path(p)) }

// Same reports whether f is already on disk with the same content and mode.
func (r Root) Same(f plan.File) bool {
	full := r.Path(f.Path)
	mode, _, err := sysStat(full)
	if err != nil || mode&0o777 != fileMode(f)&0o777 {
		return false
	}
	data, err := sysReadFile(full)
	return err == nil && bytes.Equal(data, []byte(f.Content))
}

// fileMode is the plan's mode, 0644 when the plan leaves it out.
func fileMode(f plan.File) uint32 {
	if m := f.Mode & 0o7777; m != 0 {
		return m
	}
	return 0o644
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
	if err := r.WriteAtomic(f.Path, []byte(f.Content), fileMode(f), f.Owner); err != nil {
		return false, err
	}
	return true, nil
}

func (r Root) backupPath(p string) string { return backupDir + path.Clean("/"+p) }

// backup records the current state of p for Restore.
func (r Root) backup(p string) error {
	bp := r.backupPath(p)
	mode, _, err := sysStat(r.Path(p))
	if errors.Is(err, syscall.ENOENT) {
		if err := r.Remove(bp); err != nil {
			return err
		}
		return r.WriteAtomic(bp+absentSuffix, nil, 0o600, "")
	}
	if err != nil {
		return fmt.Errorf("back up %s: %w", p, err)
	}
	data, err := r.ReadFile(p)
	if err != nil {
		return fmt.Errorf("back up %s: %w", p, err)
	}
	if err := r.Remove(bp + absentSuffix); err != nil {
		return err
	}
	return r.WriteAtomic(bp, data, mode, "")
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
	mode, _, err := sysStat(r.Path(bp))
	if err != nil {
		return fmt.Errorf("restore %s: %w", p, err)
	}
	return r.WriteAtomic(p, data, mode, "")
}

// lookupOwner resolves "user:group" in the root's /etc/passwd and
// /etc/group (no NSS: the agent is static). A bare "user" gets the user's
// primary group, as chown(1) does for "user:"; never gid 0 by accident.
// "" means leave as is (-1).
func (r Root) lookupOwner(owner string) (int, int, error) {
	if owner == "" {
		return -1, -1, nil
	}
	user, group, _ := strings.Cut(owner, ":")
	if group != "" {
		uid, err := r.lookupID("/etc/passwd", user)
		if err != nil {
			return 0, 0, err
		}
		gid, err := r.lookupID("/etc/group", group)
		if err != nil {
			return 0, 0, err
		}
		return uid, gid, nil
	}
	if user == "root" {
		return 0, 0, nil
	}
	if _, err := strconv.Atoi(user); err == nil {
		return 0, 0, fmt.Errorf("owner %q: a numeric user needs a group (%s:GID)", owner, user)
	}
	f, err := r.dbEntry("/etc/passwd", user)
	if err != nil {
		return 0, 0, err
	}
	if len(f) < 4 {
		return 0, 0, fmt.Errorf("/etc/passwd: malformed entry for %q", user)
	}
	uid, err := strconv.Atoi(f[2])
	if err != nil {
		return 0, 0, fmt.Errorf("/etc/passwd: uid of %q: %w", user, err)
	}
	gid, err := strconv.Atoi(f[3])
	if err != nil {
		return 0, 0, fmt.Errorf("/etc/passwd: primary gid of %q: %w", user, err)
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
