package images

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/diskfs/go-diskfs/filesystem/iso9660"
)

// isoBlockSize is the ISO9660 logical block size; 2048 is what every
// reader expects.
const isoBlockSize = 2048

// isoVolumeID is the label cloud-init looks for (blkid LABEL=cidata).
const isoVolumeID = "cidata"

// buildISO writes an ISO9660 + Rock Ridge seed into img.
//
// go-diskfs builds from a workspace directory: the files are written there
// with os.WriteFile and their modes set with os.Chmod, because its
// FileSystem.Chmod is not implemented and new files would be 0644 with a
// 0700 root. Joliet stays off: in v1.9.4 it mislinks subdirectories and
// can wipe the Joliet root, and Rock Ridge is what Linux reads anyway.
func buildISO(img *Image, files []File, workDir string) error {
	if err := finalizeISO(img, files, workDir); err != nil {
		return err
	}
	if err := normalizeISO(img); err != nil {
		return fmt.Errorf("normalize ISO: %w", err)
	}
	return nil
}

// finalizeISO is the go-diskfs part of buildISO: it stages the files in a
// workspace and lets Finalize write the image, clock-dependent fields
// and all.
//
// The workspace is a real directory because go-diskfs v1.9.4 reads the
// tree to pack from the OS file system (filepath.WalkDir, os.Open); there
// is no in-memory source. It stays internal to one call: the image itself
// is built in memory (see BenchmarkBuildISO for what the workspace costs).
func finalizeISO(img *Image, files []File, workDir string) error {
	// A fresh workspace every time: Finalize deletes it, and it must not
	// be shared with anything else. It lives in the system temp dir (or
	// the Builder's WorkDir) rather than next to any output, so a crash
	// never leaves it beside a seed.
	ws, err := os.MkdirTemp(workDir, "hardbake-iso-*")
	if err != nil {
		return fmt.Errorf("create ISO workspace: %w", err)
	}
	// Finalize removes the workspace on success; this covers every
	// earlier failure.
	defer func() { _ = os.RemoveAll(ws) }()

	for _, f := range files {
		p := filepath.Join(ws, f.Name)
		if err := os.WriteFile(p, f.Data, f.Mode); err != nil {
			return fmt.Errorf("stage %s: %w", f.Name, err)
		}
		// WriteFile's mode is filtered by the umask; Chmod is exact.
		if err := os.Chmod(p, f.Mode); err != nil {
			return fmt.Errorf("chmod %s: %w", f.Name, err)
		}
	}
	// The root becomes the mount point's mode: 0755 so that non-root
	// processes (and cloud-init's helpers) can list the seed.
	if err := os.Chmod(ws, 0o755); err != nil {
		return fmt.Errorf("chmod ISO root: %w", err)
	}

	fsys, err := iso9660.Create(&memBackend{img: img}, 0, 0, isoBlockSize, ws)
	if err != nil {
		return fmt.Errorf("create ISO filesystem: %w", err)
	}
	if err := fsys.Finalize(iso9660.FinalizeOptions{
		RockRidge:        true,
		VolumeIdentifier: isoVolumeID,
	}); err != nil {
		return fmt.Errorf("finalize ISO filesystem: %w", err)
	}
	return nil
}
