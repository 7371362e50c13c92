package agent

import (
	"bytes"
	"fmt"
	"strings"
)

// fileSHA256 returns the lowercase hex SHA-256 of a machine path as
// coreutils' sha256sum computes it. The agent does not link crypto/sha256:
// it pulls Go's whole FIPS 140 module (~170 KiB) into the static binary
// (docs/bench/agent.md), and sha256sum is on every image (the first-boot
// launcher already pins the agent binary with it).
func (a *Agent) fileSHA256(p string) (string, error) {
	out, err := a.Runner.Run("sha256sum", "--", a.Root.Path(p))
	if err != nil {
		return "", fmt.Errorf("sha256 of %s: %w", p, err)
	}
	sum, ok := ParseSHA256Sum(string(out))
	if !ok {
		line, _, _ := strings.Cut(string(out), "\n")
		return "", fmt.Errorf("sha256 of %s: unexpected sha256sum output %q", p, line)
	}
	return sum, nil
}

// ParseSHA256Sum returns the digest of the first line of sha256sum output
// ("HEX  NAME"; "\HEX  NAME" when NAME needed escaping).
func ParseSHA256Sum(out string) (string, bool) {
	sum, _, _ := strings.Cut(out, " ")
	sum = strings.TrimPrefix(sum, `\`)
	if len(sum) != 64 {
		return "", false
	}
	for _, c := range []byte(sum) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return "", false
		}
	}
	return sum, true
}

// planDigest is the SHA-256 of the plan file whose content is data. The
// file is read again after hashing so the digest provably belongs to the
// bytes the agent decodes.
func (a *Agent) planDigest(p string, data []byte) (string, error) {
	sum, err := a.fileSHA256(p)
	if err != nil {
		return "", fmt.Errorf("plan digest: %w", err)
	}
	again, err := a.Root.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("read plan: %w", err)
	}
	if !bytes.Equal(again, data) {
		return "", fmt.Errorf("plan %s changed while it was being read", p)
	}
	return sum, nil
}
