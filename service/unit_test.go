package service

import (
	"bytes"
	"encoding/hex"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("HARDBAKE_REQUIRE_TOOLS") == "1" {
			t.Fatalf("%s not found and HARDBAKE_REQUIRE_TOOLS=1", name)
		}
		t.Skipf("%s not found", name)
	}
	return p
}

// TestSignatureMatchesPython: the python3 recipe in the wire format's doc
// comment (what a launcher would run) produces the signature SignReport
// does, and the service accepts it.
func TestSignatureMatchesPython(t *testing.T) {
	py := requireTool(t, "python3")
	key := bytes.Repeat([]byte{0xa5}, ReportKeySize)
	id, nonce, body := "0123456789abcdef0123456789abcdef", "3f0c9e51b2a8d4c7e6f10a2b", []byte("{\"result\":\"hardened\"}\n")
	at := time.Unix(1764633600, 0)
	sr, err := SignReport(key, id, at, nonce, body)
	if err != nil {
		t.Fatal(err)
	}
	script := `
import hmac, hashlib, sys
KEY, ID, ts, nonce = sys.argv[1:5]
body = sys.stdin.buffer.read()
key = bytes.fromhex(KEY)
msg = b"hardbake-report-v1\n" + ID.encode() + b"\n" + ts.encode() + b"\n" + nonce.encode() + b"\n" + body
print("v1=" + hmac.new(key, msg, hashlib.sha256).hexdigest())
`
	cmd := exec.Command(py, "-c", script, hex.EncodeToString(key), id, sr.Timestamp, nonce)
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); got != sr.Signature {
		t.Fatalf("python3: %s\nGo:      %s", got, sr.Signature)
	}
	h := http.Header{}
	h.Set(HeaderTimestamp, sr.Timestamp)
	h.Set(HeaderNonce, nonce)
	h.Set(HeaderSignature, strings.TrimSpace(string(out)))
	if _, _, _, err := verifyReport(key, id, h, body, at.Add(time.Minute)); err != nil {
		t.Fatalf("python3's signature refused: %v", err)
	}
}

func TestVerifyReport(t *testing.T) {
	key := bytes.Repeat([]byte{1}, ReportKeySize)
	now := time.Unix(1764633600, 0)
	body := []byte(`{}`)
	sr, err := SignReport(key, "order1", now, "nonce-0000000000000001", body)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		edit func(h http.Header)
		at   time.Time
		want error
	}{
		{"ok", func(http.Header) {}, now, nil},
		{"window edge", func(http.Header) {}, now.Add(ReportWindow), nil},
		{"stale", func(http.Header) {}, now.Add(ReportWindow + time.Second), errSigStale},
		{"future", func(http.Header) {}, now.Add(-ReportWindow - time.Second), errSigStale},
		{"no nonce", func(h http.Header) { h.Del(HeaderNonce) }, now, errSigMissing},
		{"short nonce", func(h http.Header) { h.Set(HeaderNonce, "abc") }, now, errSigMalformed},
		{"other nonce", func(h http.Header) { h.Set(HeaderNonce, "nonce-0000000000000002") }, now, errSigBad},
		{"ts plus", func(h http.Header) { h.Set(HeaderTimestamp, "+"+sr.Timestamp) }, now, errSigMalformed},
		{"no prefix", func(h http.Header) { h.Set(HeaderSignature, strings.TrimPrefix(sr.Signature, "v1=")) }, now, errSigMalformed},
		{"short sig", func(h http.Header) { h.Set(HeaderSignature, sr.Signature[:20]) }, now, errSigMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := sr.Header()
			c.edit(h)
			_, _, _, err := verifyReport(key, "order1", h, body, c.at)
			if err != c.want {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
	if _, err := SignReport(key[:5], "x", now, "nonce-0000000000000001", body); err == nil {
		t.Error("short key accepted")
	}
}

func TestRedactPath(t *testing.T) {
	for in, want := range map[string]string{
		"/nocloud/SECRETSECRET/user-data": "/nocloud/REDACTED/user-data",
		"/nocloud/SECRETSECRET":           "/nocloud/REDACTED",
		"/v1/orders/abc":                  "/v1/orders/abc",
	} {
		if got := RedactPath(in); got != want {
			t.Errorf("RedactPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLineCol(t *testing.T) {
	data := []byte("ab\ncd\n\nef")
	for off, want := range map[int64][2]int{0: {1, 1}, 1: {1, 2}, 3: {2, 1}, 4: {2, 2}, 6: {3, 1}, 7: {4, 1}, 99: {4, 3}, -1: {1, 1}} {
		l, c := lineCol(data, off)
		if l != want[0] || c != want[1] {
			t.Errorf("offset %d: %d:%d, want %d:%d", off, l, c, want[0], want[1])
		}
	}
}

func TestParseProfileRef(t *testing.T) {
	for _, c := range []struct {
		in   string
		name string
		rev  int
		ok   bool
	}{
		{"web", "web", 0, true}, {"web@3", "web", 3, true}, {"web@0", "", 0, false}, {"web@03", "", 0, false},
		{"web@", "", 0, false}, {"Web", "", 0, false}, {"", "", 0, false}, {"a@1@2", "", 0, false},
	} {
		name, rev, reason := parseProfileRef(c.in)
		if (reason == "") != c.ok || name != c.name || rev != c.rev {
			t.Errorf("parseProfileRef(%q) = %q, %d, %q", c.in, name, rev, reason)
		}
	}
}

func TestLimiter(t *testing.T) {
	now := time.Unix(0, 0)
	l := newLimiter(RateLimit{Burst: 2, Every: time.Second}, func() time.Time { return now })
	if !l.allow("a", "ip") || !l.allow("a", "ip") || l.allow("a", "ip") {
		t.Fatal("burst of 2 not enforced")
	}
	if l.allow("b", "ip") {
		t.Fatal("the shared ip bucket is empty: b must wait too")
	}
	now = now.Add(time.Second)
	if !l.allow("b", "ip") || l.allow("b", "ip") {
		t.Fatal("one token per second")
	}
	for i := range maxBuckets + 10 {
		l.allow(strings.Repeat("k", i%7) + string(rune('a'+i%26)) + time.Duration(i).String())
	}
	if len(l.buckets) > maxBuckets {
		t.Fatalf("%d buckets, bound %d", len(l.buckets), maxBuckets)
	}
}

func TestSecretFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "secret")
	a, err := LoadOrCreateSecret(p)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("secret file mode %v, %v", st.Mode(), err)
	}
	b, err := LoadOrCreateSecret(p)
	if err != nil {
		t.Fatal(err)
	}
	if a.Token("x") != b.Token("x") || a.Token("x") == a.Token("y") || len(a.Token("x")) != 43 || !tokenRE.MatchString(a.Token("x")) {
		t.Fatal("tokens not stable or not distinct")
	}
	if bytes.Equal(a.ReportKey("x"), a.ReportKey("y")) || len(a.ReportKey("x")) != ReportKeySize {
		t.Fatal("report keys not distinct")
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateSecret(p); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable secret: %v", err)
	}
	if err := os.WriteFile(p, []byte("nothex"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateSecret(p); err == nil {
		t.Fatal("malformed secret accepted")
	}
}

func TestQuoteLabel(t *testing.T) {
	if got := quoteLabel("a\"b\\c\nd"); got != `"a\"b\\c\nd"` {
		t.Fatalf("quoteLabel: %s", got)
	}
}
