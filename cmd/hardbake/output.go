package main

import (
	"fmt"
	"os"
	"path/filepath"
)

// outFile is one file of a render's output.
type outFile struct {
	name string
	data []byte
}

// writeDir writes files into dir so that nothing is half-written: every
// file is built in a temporary directory beside dir first; a new dir is
// then renamed into place whole, an existing one gets each file by rename.
// Files are 0600: user-data may carry secrets.
func writeDir(dir string, files []outFile) (err error) {
	parent := filepath.Dir(filepath.Clean(dir))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", parent, err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return fmt.Errorf("create temporary directory: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	for _, f := range files {
		if err := writeSynced(filepath.Join(tmp, f.name), f.data, 0o600); err != nil {
			return err
		}
	}
	if _, statErr := os.Stat(dir); os.IsNotExist(statErr) {
		if err := os.Chmod(tmp, 0o755); err != nil {
			return fmt.Errorf("chmod %s: %w", tmp, err)
		}
		if err := os.Rename(tmp, dir); err != nil {
			return fmt.Errorf("move output into place: %w", err)
		}
		return nil
	}
	for _, f := range files {
		if err := os.Rename(filepath.Join(tmp, f.name), filepath.Join(dir, f.name)); err != nil {
			return fmt.Errorf("move %s into place: %w", f.name, err)
		}
	}
	return os.Remove(tmp)
}

func writeSynced(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return f.Close()
}
