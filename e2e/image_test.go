//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// mirrorLayout names the mirror's layout in its cache directory: a cached
// mirror of an older layout (before debian-security) is not reused.
const mirrorLayout = "-security"

// recipeVersion is folded into every cache key; bump it to force rebuilds.
const recipeVersion = "e2e-image-v4"

// debianMirror is where the host fetches Debian packages to build the
// images and the test mirror (this machine's apt sources). Guests never see it.
const debianMirror = "http://deb.debian.org/debian"

// profilePackages are downloaded (with their dependencies and recommends
// that the image lacks) into the per-release test mirror: everything a
// profile may install at first boot.
var profilePackages = []string{
	"fail2ban", "python3-systemd", "nftables", "iptables",
	"unattended-upgrades", "apt-listchanges", "python3-pyinotify", "whois",
	// the built-in profiles' system measures and packages
	// (TestProfilePackagesInMirror holds this list to them)
	"libpam-pwquality", "libpam-tmpdir", "auditd", "acct", "aide", "apparmor", "debsums",
	"lynis", // make audit (HARDBAKE_E2E_AUDIT=1) installs it in the guest
}

// release describes one Debian release family: one mmdebstrap tree from
// which every variant disk image is made.
type release struct {
	Codename string
	Include  []string
	Variants []variant
}

// variant is one bootable disk image made from a release tree.
type variant struct {
	Name string
	// Tweak runs in the tree (a shell script, $1 = tree) before mkfs.
	Tweak string
	// Undo reverts Tweak so the next variant starts from the base tree.
	Undo string
}

// portTakenPort is the port a service in the "-porttaken" image holds
// from early boot (a systemd socket unit owned by PID 1).
const portTakenPort = 50022

var baseInclude = []string{
	"systemd-sysv", "udev", "kmod", "ifupdown", "isc-dhcp-client", "iproute2",
	"netbase", "cloud-init", "openssh-server", "locales", "qemu-guest-agent",
	"linux-image-amd64", "initramfs-tools", "sudo", "python3", "procps",
	"less", "ca-certificates",
}

// noFirewallTool purges nftables from the tree and checks that no
// firewall tool is left (iptables is not in the recipe).
const noFirewallTool = `set -e
chroot "$1" dpkg --purge nftables
for t in nft iptables iptables-restore ip6tables-restore; do
	if chroot "$1" sh -c "command -v $t" >/dev/null; then echo "$t still installed" >&2; exit 1; fi
done`

func releases() []release {
	bookwormInc := append(append([]string{}, baseInclude...), "nftables")
	// trixie: isc-dhcp-client is gone from the defaults; ifupdown uses dhcpcd.
	trixieInc := []string{}
	for _, p := range baseInclude {
		if p == "isc-dhcp-client" {
			p = "dhcpcd-base"
		}
		trixieInc = append(trixieInc, p)
	}
	trixieInc = append(trixieInc, "nftables")
	portTaken := fmt.Sprintf(`set -e
cat >"$1/etc/systemd/system/e2e-porttaken.socket" <<'EOT'
[Unit]
Description=e2e: something already listening on %[1]d
[Socket]
ListenStream=%[1]d
Accept=yes
[Install]
WantedBy=sockets.target
EOT
cat >"$1/etc/systemd/system/e2e-porttaken@.service" <<'EOT'
[Unit]
Description=e2e: port %[1]d holder
[Service]
ExecStart=/bin/echo e2e-porttaken
StandardInput=socket
StandardOutput=socket
EOT
mkdir -p "$1/etc/systemd/system/sockets.target.wants"
ln -sf /etc/systemd/system/e2e-porttaken.socket "$1/etc/systemd/system/sockets.target.wants/e2e-porttaken.socket"
`, portTakenPort)
	portTakenUndo := `rm -f "$1/etc/systemd/system/e2e-porttaken.socket" "$1/etc/systemd/system/e2e-porttaken@.service" "$1/etc/systemd/system/sockets.target.wants/e2e-porttaken.socket"`
	return []release{
		{
			Codename: "bookworm",
			Include:  bookwormInc,
			Variants: []variant{
				{Name: "bookworm"},
				{
					Name:  "bookworm-socket",
					Tweak: `set -e; chroot "$1" systemctl disable ssh.service; chroot "$1" systemctl enable ssh.socket`,
					Undo:  `set -e; chroot "$1" systemctl disable ssh.socket; chroot "$1" systemctl enable ssh.service`,
				},
				{Name: "bookworm-porttaken", Tweak: portTaken, Undo: portTakenUndo},
				// A provider image without any firewall tool: nftables
				// purged (its conffile too), iptables never installed. The
				// kernel still has nf_tables; only userspace is missing.
				// Keep it last: the purge is not undone (the next variant
				// would need the network to reinstall it).
				{Name: "bookworm-nofw", Tweak: noFirewallTool},
			},
		},
		{
			Codename: "trixie",
			Include:  trixieInc,
			Variants: []variant{{Name: "trixie"}},
		},
	}
}

// customizeScript prepares the tree like a provider's cloud image: a
// generated locale, a cloud-init datasource list, no SSH host keys, apt
// sources that the hermetic guest cannot reach, and it downloads the
// profile packages into /var/tmp/e2e-pool for the test mirror.
func customizeScript(codename string) string {
	return fmt.Sprintf(`set -e
root="$1"
echo "en_US.UTF-8 UTF-8" >"$root/etc/locale.gen"
chroot "$root" locale-gen
echo "LANG=en_US.UTF-8" >"$root/etc/default/locale"
echo debian >"$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
echo "/dev/vda / ext4 rw,errors=remount-ro 0 1" >"$root/etc/fstab"
mkdir -p "$root/etc/cloud/cloud.cfg.d"
cat >"$root/etc/cloud/cloud.cfg.d/01_e2e_image.cfg" <<'EOT'
# like Debian's cloud images: NoCloud seed, managed /etc/hosts
datasource_list: [ NoCloud, None ]
manage_etc_hosts: true
EOT
rm -f "$root"/etc/ssh/ssh_host_*
# the image's own sources: unreachable from a hermetic guest
echo "deb %[1]s %[2]s main" >"$root/etc/apt/sources.list"
# packages for the test mirror: what a profile installs, minus the image
mkdir -p "$root/var/tmp/e2e-pool/partial"
chroot "$root" apt-get -q -y -o APT::Install-Recommends=true \
  -o Dir::Cache::archives=/var/tmp/e2e-pool/ install --download-only %[3]s
# nftables is in the image, so install --download-only skips it; the
# bookworm-nofw variant purges it and installs it again from the mirror.
chroot "$root" sh -c 'cd /var/tmp/e2e-pool && apt-get -q download nftables'
rm -rf "$root/var/tmp/e2e-pool/partial" "$root/var/tmp/e2e-pool/lock"
rm -f "$root/etc/resolv.conf"
`, debianMirror, codename, strings.Join(profilePackages, " "))
}

// builtImage is a bootable disk with its kernel and initrd.
type builtImage struct {
	Name     string
	Codename string
	Disk     string // raw ext4, used read-only as a qcow2 backing file
	Kernel   string
	Initrd   string
	Mirror   *mirror // hermetic apt mirror for the release, signed
}

func recipeKey(r release) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%s\n%s\n", recipeVersion, r.Codename, strings.Join(r.Include, ","), customizeScript(r.Codename))
	for _, v := range r.Variants {
		fmt.Fprintf(h, "variant %s\n%s\n%s\n", v.Name, v.Tweak, v.Undo)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// buildRelease builds (or reuses from the cache) every variant of r and
// its package pool. It returns the directory holding them.
func buildRelease(ctx context.Context, lg *logger, cache string, r release) (string, error) {
	key := recipeKey(r)
	dir := filepath.Join(cache, "images", r.Codename+"-"+key)
	if _, err := os.Stat(filepath.Join(dir, "done")); err == nil {
		lg.Printf("image %s: cached (%s)", r.Codename, dir)
		return dir, nil
	}
	start := time.Now()
	if err := os.RemoveAll(dir); err != nil {
		return "", fmt.Errorf("clean %s: %w", dir, err)
	}
	tree := filepath.Join(dir, "tree")
	pool := filepath.Join(dir, "pool")
	if err := os.MkdirAll(pool, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", pool, err)
	}
	lg.Printf("image %s: mmdebstrap (recipe %s)", r.Codename, key)
	hook := filepath.Join(dir, "customize.sh")
	if err := os.WriteFile(hook, []byte(customizeScript(r.Codename)), 0o755); err != nil {
		return "", fmt.Errorf("write hook: %w", err)
	}
	args := []string{
		"--variant=minbase", "--mode=root", "--format=directory",
		"--include=" + strings.Join(r.Include, ","),
		"--customize-hook=" + hook + ` "$1"`,
		"--customize-hook=sync-out /var/tmp/e2e-pool " + pool,
		`--customize-hook=rm -rf "$1/var/tmp/e2e-pool"`,
		r.Codename, tree, "deb " + debianMirror + " " + r.Codename + " main",
	}
	if err := runLogged(ctx, lg, "mmdebstrap "+r.Codename, "mmdebstrap", args...); err != nil {
		return "", err
	}
	lg.Printf("image %s: tree ready after %s", r.Codename, time.Since(start).Round(time.Second))
	kernels, _ := filepath.Glob(filepath.Join(tree, "boot", "vmlinuz-*"))
	initrds, _ := filepath.Glob(filepath.Join(tree, "boot", "initrd.img-*"))
	if len(kernels) != 1 || len(initrds) != 1 {
		return "", fmt.Errorf("image %s: want one kernel and one initrd in /boot, found %d and %d", r.Codename, len(kernels), len(initrds))
	}
	if err := copyFile(kernels[0], filepath.Join(dir, "vmlinuz")); err != nil {
		return "", err
	}
	if err := copyFile(initrds[0], filepath.Join(dir, "initrd.img")); err != nil {
		return "", err
	}
	for _, v := range r.Variants {
		if v.Tweak != "" {
			if err := runLogged(ctx, lg, "tweak "+v.Name, "sh", "-c", v.Tweak, "tweak", tree); err != nil {
				return "", err
			}
		}
		disk := filepath.Join(dir, v.Name+".raw")
		if err := runLogged(ctx, lg, "mkfs "+v.Name, "mkfs.ext4", "-q", "-F", "-L", "root", "-d", tree, disk, "3G"); err != nil {
			return "", err
		}
		if v.Undo != "" {
			if err := runLogged(ctx, lg, "undo "+v.Name, "sh", "-c", v.Undo, "undo", tree); err != nil {
				return "", err
			}
		}
		lg.Printf("image %s: disk %s ready", r.Codename, v.Name)
	}
	if err := os.RemoveAll(tree); err != nil {
		return "", fmt.Errorf("remove tree: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "done"), []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("mark done: %w", err)
	}
	lg.Printf("image %s: built in %s", r.Codename, time.Since(start).Round(time.Second))
	// drop images of older recipes of this release
	old, _ := filepath.Glob(filepath.Join(cache, "images", r.Codename+"-*"))
	for _, o := range old {
		if o != dir {
			lg.Printf("image %s: removing stale %s", r.Codename, o)
			_ = os.RemoveAll(o)
			_ = os.RemoveAll(filepath.Join(cache, "mirrors", filepath.Base(o)))
		}
	}
	return dir, nil
}

// buildAll builds, concurrently, every release that has a variant in need
// (all of them when need is empty) and returns their images by variant
// name, each with its release's signed mirror.
func buildAll(ctx context.Context, lg *logger, cache string, need map[string]bool) (map[string]*builtImage, error) {
	var rels []release
	for _, r := range releases() {
		if len(need) == 0 || slices.ContainsFunc(r.Variants, func(v variant) bool { return need[v.Name] }) {
			rels = append(rels, r)
		}
	}
	dirs := make([]string, len(rels))
	errs := make([]error, len(rels))
	var wg sync.WaitGroup
	for i, r := range rels {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dirs[i], errs[i] = buildRelease(ctx, lg, cache, r)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	out := map[string]*builtImage{}
	for i, r := range rels {
		m, err := buildMirror(ctx, lg, filepath.Join(dirs[i], "pool"), filepath.Join(cache, "mirrors", filepath.Base(dirs[i])+mirrorLayout), r.Codename)
		if err != nil {
			return nil, err
		}
		for _, v := range r.Variants {
			out[v.Name] = &builtImage{
				Name: v.Name, Codename: r.Codename,
				Disk:   filepath.Join(dirs[i], v.Name+".raw"),
				Kernel: filepath.Join(dirs[i], "vmlinuz"),
				Initrd: filepath.Join(dirs[i], "initrd.img"),
				Mirror: m,
			}
		}
	}
	return out, nil
}

// runLogged runs a command, streaming its output line by line to the log
// with a prefix, and keeps the last lines for the error.
func runLogged(ctx context.Context, lg *logger, prefix, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = 10 * time.Second
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	cmd.Stderr = pw
	var tail []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			line := sc.Text()
			lg.Printf("  [%s] %s", prefix, line)
			tail = append(tail, line)
			if len(tail) > 20 {
				tail = tail[1:]
			}
		}
	}()
	err := cmd.Run()
	pw.Close()
	<-done
	if err != nil {
		return fmt.Errorf("%s: %s %s: %w\n%s", prefix, name, strings.Join(args, " "), err, strings.Join(tail, "\n"))
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return fmt.Errorf("copy to %s: %w", dst, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("close %s: %w", dst, err)
	}
	return nil
}

// logger writes timestamped progress lines to stderr (visible while the
// suite runs, even without -v) and is safe for concurrent use.
type logger struct {
	mu    sync.Mutex
	start time.Time
	w     io.Writer
}

func newLogger(w io.Writer) *logger { return &logger{start: time.Now(), w: w} }

func (l *logger) Printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, "[e2e %6.1fs] %s\n", time.Since(l.start).Seconds(), fmt.Sprintf(format, args...))
}
