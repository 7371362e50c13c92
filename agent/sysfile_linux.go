package agent

import (
	"fmt"
	"path"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
)

// The agent's file primitives, straight on syscalls. Package os's file API
// (os.File, fs.FileInfo, ReadFile, CreateTemp, Glob) adds ~170 KiB to the
// static binary — a third of the whole size budget — for nothing the
// agent needs (measured in docs/bench/agent.md).

// tempSeq makes temp names unique within the process; the pid makes them
// unique across processes.
var tempSeq atomic.Uint64

func tempName(dir, prefix string) string {
	return path.Join(dir, prefix+strconv.Itoa(syscall.Getpid())+"-"+strconv.FormatUint(tempSeq.Add(1), 10))
}

func sysReadFile(p string) ([]byte, error) {
	fd, err := syscall.Open(p, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", p, err)
	}
	defer syscall.Close(fd)
	var out []byte
	buf := make([]byte, 32*1024)
	for {
		n, err := syscall.Read(fd, buf)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", p, err)
		}
		if n <= 0 {
			return out, nil
		}
		out = append(out, buf[:n]...)
	}
}

// sysStat returns the permission bits and whether p is a directory.
func sysStat(p string) (uint32, bool, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		return 0, false, fmt.Errorf("stat %s: %w", p, err)
	}
	return st.Mode & 0o7777, st.Mode&syscall.S_IFMT == syscall.S_IFDIR, nil
}

func sysExists(p string) bool {
	var st syscall.Stat_t
	return syscall.Lstat(p, &st) == nil
}

func sysMkdirAll(p string, mode uint32) error {
	if _, isDir, err := sysStat(p); err == nil && isDir {
		return nil
	}
	if parent := path.Dir(p); parent != p {
		if err := sysMkdirAll(parent, mode); err != nil {
			return err
		}
	}
	if err := syscall.Mkdir(p, mode); err != nil && err != syscall.EEXIST {
		return fmt.Errorf("mkdir %s: %w", p, err)
	}
	return nil
}

func sysRemove(p string) error {
	if err := syscall.Unlink(p); err != nil && err != syscall.ENOENT {
		return fmt.Errorf("remove %s: %w", p, err)
	}
	return nil
}

// sysWriteAtomic writes data to a temp file beside p, sets mode and owner
// (uid < 0: leave), fsyncs it, renames it over p and fsyncs the directory,
// so after a crash p holds either the old or the new content, never
// nothing.
func sysWriteAtomic(p string, data []byte, mode uint32, uid, gid int) error {
	tmp := tempName(path.Dir(p), "."+path.Base(p)+".hardbake-")
	fd, err := syscall.Open(tmp, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_EXCL|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	err = writeAll(fd, data)
	if err == nil {
		err = syscall.Fchmod(fd, mode)
	}
	if err == nil && uid >= 0 && syscall.Geteuid() == 0 {
		err = syscall.Fchown(fd, uid, gid)
	}
	if err == nil {
		err = syscall.Fsync(fd)
	}
	if cerr := syscall.Close(fd); err == nil {
		err = cerr
	}
	if err == nil {
		err = syscall.Rename(tmp, p)
	}
	if err != nil {
		syscall.Unlink(tmp)
		return fmt.Errorf("write %s: %w", p, err)
	}
	return sysFsyncDir(path.Dir(p))
}

func writeAll(fd int, data []byte) error {
	for len(data) > 0 {
		n, err := syscall.Write(fd, data)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

// sysReadDir lists the names in dir.
func sysReadDir(dir string) ([]string, error) {
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	defer syscall.Close(fd)
	var names []string
	buf := make([]byte, 8192)
	for {
		n, err := syscall.ReadDirent(fd, buf)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", dir, err)
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = syscall.ParseDirent(buf[:n], -1, names)
	}
}

// sysGlob lists dir's entries named prefix*suffix, sorted.
func sysGlob(dir, prefix, suffix string) []string {
	names, _ := sysReadDir(dir)
	var out []string
	for _, n := range names {
		if len(n) >= len(prefix)+len(suffix) && strings.HasPrefix(n, prefix) && strings.HasSuffix(n, suffix) {
			out = append(out, path.Join(dir, n))
		}
	}
	sortStrings(out)
	return out
}

// sysMkdirTemp creates a fresh 0700 directory in dir.
func sysMkdirTemp(dir, prefix string) (string, error) {
	for range 100 {
		p := tempName(dir, prefix)
		err := syscall.Mkdir(p, 0o700)
		if err == nil {
			return p, nil
		}
		if err != syscall.EEXIST {
			return "", fmt.Errorf("mkdir %s: %w", p, err)
		}
	}
	return "", fmt.Errorf("mkdir temp in %s: too many collisions", dir)
}

// sysRemoveFlat removes a directory of plain files (our temp dirs).
func sysRemoveFlat(dir string) {
	names, _ := sysReadDir(dir)
	for _, n := range names {
		syscall.Unlink(path.Join(dir, n))
	}
	syscall.Rmdir(dir)
}

// fileInfo is what the admin check needs of a path: type, permission bits
// and owner.
type fileInfo struct {
	mode     uint32 // permission bits
	fmt      uint32 // syscall.S_IFMT bits
	uid, gid int
}

func sysStatInfo(p string) (fileInfo, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		return fileInfo{}, fmt.Errorf("stat %s: %w", p, err)
	}
	return fileInfo{mode: st.Mode & 0o7777, fmt: st.Mode & syscall.S_IFMT, uid: int(st.Uid), gid: int(st.Gid)}, nil
}

// sysFsyncDir makes a rename in dir durable: the new directory entry is
// on disk only once the directory itself is synced.
func sysFsyncDir(dir string) error {
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", dir, err)
	}
	defer syscall.Close(fd)
	if err := syscall.Fsync(fd); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}
