package bake

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// mountPoints lists the current mount points from /proc/self/mountinfo,
// or returns nil where there is no such file (not Linux): callers then
// rely on the rename failing with EBUSY instead.
func mountPoints() map[string]bool {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	mounts := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 {
			mounts[unescapeMount(fields[4])] = true
		}
	}
	if sc.Err() != nil {
		return nil
	}
	return mounts
}

// unescapeMount undoes the kernel's octal escapes (\040 for a space,
// \011, \012, \134) in a mountinfo path.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// firstMountPoint returns the first of paths (files in dir, or dir's own
// entries) that something is mounted on, or "". Checked before any file is
// replaced: renaming over a mount point fails with EBUSY, and failing
// halfway through a seed would leave it mixed.
func firstMountPoint(dir string, names []string) string {
	mounts := mountPoints()
	if len(mounts) == 0 {
		return ""
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return ""
	}
	real, err = filepath.Abs(real)
	if err != nil {
		return ""
	}
	for _, n := range names {
		if mounts[filepath.Join(real, n)] {
			return n
		}
	}
	return ""
}
