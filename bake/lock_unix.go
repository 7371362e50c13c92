//go:build unix

package bake

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// lockWait bounds how long a writer waits for another one into the same
// directory. Writes take milliseconds; a lock held this long belongs to a
// stuck process, and waiting forever would hide it.
const lockWait = 2 * time.Minute

// lockDir takes an exclusive flock(2) on the directory itself: no lock
// file is left behind, and the lock dies with its holder. flock locks
// belong to the open file description, so writers in one process exclude
// each other as processes do.
func lockDir(dir string) (func(), error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", quotePath(dir), err)
	}
	fd := int(f.Fd())
	deadline := time.Now().Add(lockWait)
	for {
		err = syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", quotePath(dir), err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("lock %s: another writer has held it for %v", quotePath(dir), lockWait)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return func() {
		_ = syscall.Flock(fd, syscall.LOCK_UN)
		_ = f.Close()
	}, nil
}
