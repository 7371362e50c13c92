//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// uefiRecipe is folded into the marker of every UEFI disk; bump it to
// rebuild them.
const uefiRecipe = "uefi-disk-v1"

// Sizes of the UEFI disk's partitions, in 512-byte sectors.
const (
	espStart  = 2048      // 1 MiB, where partitioning tools align
	espSize   = 64 * 2048 // 64 MiB FAT, as Debian's cloud images have it
	rootStart = espStart + espSize
)

var bootFileRe = regexp.MustCompile(`\b(vmlinuz|initrd\.img)-[0-9][^\s]*`)

// uefiDisk turns a variant's ext4 root (img.Disk) into a disk that boots
// the way a Debian genericcloud image does: a GPT with an EFI system
// partition holding GRUB, and the root filesystem in the second
// partition, with no kernel or initrd given to QEMU. It is made with no
// loop device and no mount (sfdisk on a file, mtools into the FAT, dd
// into place) and cached beside the image.
func uefiDisk(ctx context.Context, lg *logger, img *builtImage) (string, error) {
	dir := filepath.Dir(img.Disk)
	disk := filepath.Join(dir, img.Name+"-uefi.raw")
	marker := disk + ".done"
	if b, err := os.ReadFile(marker); err == nil && string(b) == uefiRecipe+"\n" {
		return disk, nil
	}
	run := func(name string, args ...string) error {
		out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("uefi disk: %s %s: %w: %s", name, strings.Join(args, " "), err, out)
		}
		return nil
	}
	// The kernel and initrd by name, as GRUB finds them in /boot.
	out, err := exec.CommandContext(ctx, "debugfs", "-R", "ls /boot", img.Disk).Output()
	if err != nil {
		return "", fmt.Errorf("uefi disk: debugfs ls /boot: %w", err)
	}
	var kernel, initrd string
	for _, f := range bootFileRe.FindAllString(string(out), -1) {
		if strings.HasPrefix(f, "vmlinuz-") {
			kernel = f
		} else {
			initrd = f
		}
	}
	if kernel == "" || initrd == "" {
		return "", fmt.Errorf("uefi disk: no vmlinuz-* and initrd.img-* in /boot of %s: %s", img.Disk, out)
	}
	work, err := os.MkdirTemp(dir, "uefi-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	// GRUB as one EFI binary with its configuration inside: it finds the
	// root filesystem by label, like the search in a cloud image's grub.cfg.
	cfg := filepath.Join(work, "grub.cfg")
	grubCfg := fmt.Sprintf(`set timeout=0
search --no-floppy --label root --set=root
linux /boot/%s root=LABEL=root rw console=tty0 console=ttyS0,115200 net.ifnames=0
initrd /boot/%s
boot
`, kernel, initrd)
	if err := os.WriteFile(cfg, []byte(grubCfg), 0o644); err != nil {
		return "", err
	}
	efi := filepath.Join(work, "BOOTX64.EFI")
	if err := run("grub-mkstandalone", "-O", "x86_64-efi", "-o", efi,
		"--modules=part_gpt ext2 search search_label linux normal", "boot/grub/grub.cfg="+cfg); err != nil {
		return "", err
	}
	esp := filepath.Join(work, "esp.img")
	if err := run("mkfs.vfat", "-C", "-n", "ESP", esp, fmt.Sprint(espSize/2)); err != nil {
		return "", err
	}
	if err := run("mmd", "-i", esp, "::/EFI", "::/EFI/BOOT"); err != nil {
		return "", err
	}
	if err := run("mcopy", "-i", esp, efi, "::/EFI/BOOT/BOOTX64.EFI"); err != nil {
		return "", err
	}
	st, err := os.Stat(img.Disk)
	if err != nil {
		return "", err
	}
	rootSize := st.Size() / 512
	tmp := filepath.Join(work, "disk.raw")
	total := (rootStart + rootSize + 2048) * 512 // and room for the backup GPT
	if err := run("truncate", "-s", fmt.Sprint(total), tmp); err != nil {
		return "", err
	}
	layout := fmt.Sprintf("label: gpt\nstart=%d, size=%d, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=\"EFI\"\nstart=%d, size=%d, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=\"root\"\n",
		espStart, espSize, rootStart, rootSize)
	sf := exec.CommandContext(ctx, "sfdisk", "--quiet", tmp)
	sf.Stdin = strings.NewReader(layout)
	if out, err := sf.CombinedOutput(); err != nil {
		return "", fmt.Errorf("uefi disk: sfdisk: %w: %s", err, out)
	}
	for _, part := range []struct {
		src   string
		start int64
	}{{esp, espStart}, {img.Disk, rootStart}} {
		if err := run("dd", "if="+part.src, "of="+tmp, "bs=4M", fmt.Sprintf("seek=%d", part.start*512), "oflag=seek_bytes", "conv=notrunc,sparse", "status=none"); err != nil {
			return "", err
		}
	}
	if err := os.Rename(tmp, disk); err != nil {
		return "", err
	}
	lg.Printf("image %s: UEFI disk (GPT, ESP with GRUB, root by label) ready: %s", img.Name, disk)
	return disk, os.WriteFile(marker, []byte(uefiRecipe+"\n"), 0o644)
}
