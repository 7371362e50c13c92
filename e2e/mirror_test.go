//go:build e2e

package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// mirror is a signed apt repository on disk: <Root>/debian/{dists,pool}
// and <Root>/debian-security/dists.
type mirror struct {
	Root     string
	Codename string
	Suites   []string
	KeyASCII string // ASCII-armoured public key of the throwaway signing key
}

// buildMirror indexes the package pool into a Debian-style repository for
// codename, codename-updates and, under debian-security/, codename-security
// (both empty), signs them with a throwaway key
// made in a temporary GNUPGHOME, and caches the result under dir.
func buildMirror(ctx context.Context, lg *logger, pool, dir, codename string) (*mirror, error) {
	m := &mirror{Root: dir, Codename: codename, Suites: []string{codename, codename + "-updates"}}
	keyFile := filepath.Join(dir, "key.asc")
	if b, err := os.ReadFile(filepath.Join(dir, "done")); err == nil && len(b) > 0 {
		key, err := os.ReadFile(keyFile)
		if err != nil {
			return nil, fmt.Errorf("read mirror key: %w", err)
		}
		m.KeyASCII = string(key)
		lg.Printf("mirror %s: cached (%s)", codename, dir)
		return m, nil
	}
	start := time.Now()
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("clean mirror: %w", err)
	}
	poolDst := filepath.Join(dir, "debian", "pool", "main")
	if err := os.MkdirAll(poolDst, 0o755); err != nil {
		return nil, fmt.Errorf("create mirror pool: %w", err)
	}
	debs, err := filepath.Glob(filepath.Join(pool, "*.deb"))
	if err != nil || len(debs) == 0 {
		return nil, fmt.Errorf("mirror %s: no packages in %s (%v)", codename, pool, err)
	}
	for _, d := range debs {
		if err := os.Link(d, filepath.Join(poolDst, filepath.Base(d))); err != nil {
			if err := copyFile(d, filepath.Join(poolDst, filepath.Base(d))); err != nil {
				return nil, err
			}
		}
	}
	cmd := exec.CommandContext(ctx, "dpkg-scanpackages", "--multiversion", "pool/main", "/dev/null")
	cmd.Dir = filepath.Join(dir, "debian")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	packages, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("dpkg-scanpackages: %w: %s", err, stderr.String())
	}

	gnupg, err := os.MkdirTemp("", "e2e-gnupg-")
	if err != nil {
		return nil, fmt.Errorf("gnupg home: %w", err)
	}
	defer os.RemoveAll(gnupg)
	defer func() {
		kill := exec.Command("gpgconf", "--homedir", gnupg, "--kill", "gpg-agent")
		_ = kill.Run()
	}()
	gpg := func(args ...string) ([]byte, error) {
		c := exec.CommandContext(ctx, "gpg", append([]string{"--homedir", gnupg, "--batch", "--yes", "--pinentry-mode", "loopback", "--passphrase", ""}, args...)...)
		var e bytes.Buffer
		c.Stderr = &e
		out, err := c.Output()
		if err != nil {
			return nil, fmt.Errorf("gpg %s: %w: %s", strings.Join(args, " "), err, e.String())
		}
		return out, nil
	}
	if _, err := gpg("--quick-gen-key", "hardbake e2e mirror <e2e-mirror@hardbake.invalid>", "ed25519", "sign", "1d"); err != nil {
		return nil, err
	}
	key, err := gpg("--armor", "--export")
	if err != nil {
		return nil, err
	}
	m.KeyASCII = string(key)

	// The suites, and the security archive's $RELEASE-security beside the
	// archive, as on Debian's mirrors (a profile names it in
	// updates.mirror.securityURL); all but the first are valid, empty
	// indexes.
	dists := []string{}
	for _, suite := range m.Suites {
		dists = append(dists, filepath.Join(dir, "debian", "dists", suite))
	}
	dists = append(dists, filepath.Join(dir, "debian-security", "dists", codename+"-security"))
	for i, dist := range dists {
		content := packages
		if i > 0 {
			content = nil
		}
		if err := writeSuite(dist, filepath.Base(dist), codename, content); err != nil {
			return nil, err
		}
		rel := filepath.Join(dist, "Release")
		if _, err := gpg("--clearsign", "-o", filepath.Join(filepath.Dir(rel), "InRelease"), rel); err != nil {
			return nil, err
		}
		if _, err := gpg("-abs", "-o", filepath.Join(filepath.Dir(rel), "Release.gpg"), rel); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(keyFile, key, 0o644); err != nil {
		return nil, fmt.Errorf("write key: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "done"), []byte("ok\n"), 0o644); err != nil {
		return nil, fmt.Errorf("mark mirror done: %w", err)
	}
	lg.Printf("mirror %s: %d packages, signed, in %s", codename, len(debs), time.Since(start).Round(time.Millisecond))
	return m, nil
}

// writeSuite writes main/binary-amd64/Packages{,.gz} and a Release file
// listing their sizes and SHA256 sums.
func writeSuite(dir, suite, codename string, packages []byte) error {
	bin := filepath.Join(dir, "main", "binary-amd64")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", bin, err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(packages); err != nil {
		return fmt.Errorf("gzip Packages: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("gzip Packages: %w", err)
	}
	files := map[string][]byte{
		"main/binary-amd64/Packages":    packages,
		"main/binary-amd64/Packages.gz": gz.Bytes(),
	}
	var rel strings.Builder
	fmt.Fprintf(&rel, "Origin: hardbake-e2e\nLabel: hardbake-e2e\nSuite: %s\nCodename: %s\n", suite, codename)
	fmt.Fprintf(&rel, "Date: %s\nArchitectures: amd64\nComponents: main\nDescription: hermetic test mirror\nSHA256:\n",
		time.Now().UTC().Format(time.RFC1123))
	for _, name := range slices.Sorted(maps.Keys(files)) {
		data := files[name]
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
		sum := sha256.Sum256(data)
		fmt.Fprintf(&rel, " %s %d %s\n", hex.EncodeToString(sum[:]), len(data), name)
	}
	if err := os.WriteFile(filepath.Join(dir, "Release"), []byte(rel.String()), 0o644); err != nil {
		return fmt.Errorf("write Release: %w", err)
	}
	return nil
}

// mirrorServer serves a mirror on 127.0.0.1 and counts what the guest asked.
type mirrorServer struct {
	Addr     string
	srv      *http.Server
	requests atomic.Int64
	mu       sync.Mutex
	log      []string
}

// startMirrorServer serves the mirror tree at root and, at agentURLPath,
// the agent binary (for scenarios that fetch it with --agent url=).
func startMirrorServer(root, agentBinary string) (*mirrorServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for mirror: %w", err)
	}
	ms := &mirrorServer{Addr: ln.Addr().String()}
	fs := http.FileServer(http.Dir(root))
	ms.srv = &http.Server{
		ReadHeaderTimeout: 30 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ms.requests.Add(1)
			ms.mu.Lock()
			ms.log = append(ms.log, r.Method+" "+r.URL.Path)
			ms.mu.Unlock()
			if r.URL.Path == agentURLPath {
				http.ServeFile(w, r, agentBinary)
				return
			}
			fs.ServeHTTP(w, r)
		}),
	}
	go func() { _ = ms.srv.Serve(ln) }()
	return ms, nil
}

func (ms *mirrorServer) Requests() []string {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return append([]string(nil), ms.log...)
}

func (ms *mirrorServer) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = ms.srv.Shutdown(ctx)
}
