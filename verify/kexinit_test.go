package verify

import (
	"bytes"
	"encoding/binary"
	"os"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func TestParseKexInit(t *testing.T) {
	o := &Offer{Kex: []string{"curve25519-sha256", "ext-info-s"}, HostKey: []string{"ssh-ed25519"},
		Ciphers: []string{"aes256-ctr"}, CiphersC2S: []string{"aes128-ctr"}, MACs: []string{"hmac-sha2-256-etm@openssh.com"},
		MACsC2S: []string{"umac-128-etm@openssh.com"}, Compress: []string{"none"}}
	got, err := ParseKexInit(MarshalKexInit(o))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Kex, o.Kex) || !slices.Equal(got.Ciphers, o.Ciphers) || !slices.Equal(got.CiphersC2S, o.CiphersC2S) ||
		!slices.Equal(got.MACs, o.MACs) || !slices.Equal(got.MACsC2S, o.MACsC2S) || !slices.Equal(got.HostKey, o.HostKey) {
		t.Errorf("round trip: got %+v, want %+v", got, o)
	}
	good := MarshalKexInit(o)
	bad := []struct {
		name string
		p    []byte
		want string
	}{
		{"empty", nil, "empty packet"},
		{"not kexinit", append([]byte{21}, good[1:]...), "not KEXINIT"},
		{"truncated", good[:30], "claims 28 bytes"},
		{"cut in a length", good[:19], "truncated in name-list 1"},
		{"overlong list", append(append(slices.Clone(good[:17]), 0xff, 0xff, 0xff, 0xff), 'a'), "claims"},
		{"bad name", MarshalKexInit(&Offer{Kex: []string{"a b"}}), "bad name"},
		{"empty name", MarshalKexInit(&Offer{Kex: []string{"a", ""}}), "bad name"},
		{"no tail", good[:len(good)-5], "truncated after"},
	}
	for _, tc := range bad {
		if _, err := ParseKexInit(tc.p); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}

func TestParseRecorded(t *testing.T) {
	payload := MarshalKexInit(&Offer{Kex: []string{"curve25519-sha256"}})
	pad := 4
	var pkt bytes.Buffer
	pkt.WriteString("hello, a pre-banner line\r\nSSH-2.0-OpenSSH_9.2p1 Debian\r\n")
	_ = binary.Write(&pkt, binary.BigEndian, uint32(len(payload)+pad+1))
	pkt.WriteByte(byte(pad))
	pkt.Write(payload)
	pkt.Write(make([]byte, pad))
	banner, o := parseRecorded(pkt.Bytes())
	if banner != "SSH-2.0-OpenSSH_9.2p1 Debian" || o == nil || !slices.Equal(o.Kex, []string{"curve25519-sha256"}) {
		t.Errorf("got %q %+v", banner, o)
	}
	if b, o := parseRecorded([]byte("SSH-2.0-x\r\n\x00\x00")); b != "SSH-2.0-x" || o != nil {
		t.Errorf("a cut packet: got %q %+v", b, o)
	}
}

func TestJailMaxRetry(t *testing.T) {
	jl := "[DEFAULT]\nmaxretry = 5\n\n[sshd]\nenabled = true\nmaxretry = 3\n[recidive]\nmaxretry = 7\n"
	if got := jailMaxRetry(jl, "sshd"); got != 3 {
		t.Errorf("sshd: %d", got)
	}
	if got := jailMaxRetry("[DEFAULT]\nmaxretry=4\n[sshd]\nport = 1\n", "sshd"); got != 4 {
		t.Errorf("default: %d", got)
	}
	if got := jailMaxRetry("", "sshd"); got != 0 {
		t.Errorf("empty: %d", got)
	}
}

// FuzzParseKexInit feeds arbitrary payloads and identification+packet
// streams: no panic, and what parses re-encodes to the same lists.
func FuzzParseKexInit(f *testing.F) {
	f.Add(MarshalKexInit(&Offer{Kex: []string{"curve25519-sha256"}, HostKey: []string{"ssh-ed25519"}}))
	f.Add([]byte{20})
	f.Add([]byte("SSH-2.0-x\r\n\x00\x00\x00\x0c\x04\x14abcdefg"))
	f.Fuzz(func(t *testing.T, p []byte) {
		_, _ = parseRecorded(p)
		o, err := ParseKexInit(p)
		if err != nil {
			return
		}
		again, err := ParseKexInit(MarshalKexInit(o))
		if err != nil {
			t.Fatalf("re-encoded offer does not parse: %v", err)
		}
		if !slices.Equal(again.Kex, o.Kex) || !slices.Equal(again.MACs, o.MACs) {
			t.Fatalf("round trip changed the offer")
		}
	})
}

func TestPlanFromUserData(t *testing.T) {
	ud := "#cloud-config\nbootcmd:\n  - [sh, -c, 'script', hardbake-firstboot, seed, x, agentsha, '{\"version\":1,\"profile\":\"p\",\"instance_id\":\"i\",\"ssh\":{\"port\":50022,\"drop_in\":{\"path\":\"/x\",\"content\":\"Port 50022\\n\",\"mode\":420,\"owner\":\"root:root\"},\"socket_drop_in\":{\"path\":\"\",\"content\":\"\",\"mode\":0,\"owner\":\"\"},\"expect\":{}},\"accounts\":{\"admin\":\"ops\",\"lock_root_password\":true}}', digest]\n"
	pl, err := PlanFromUserData([]byte(ud))
	if err != nil {
		t.Fatal(err)
	}
	if pl.SSH.Port != 50022 || pl.Accounts.Admin != "ops" {
		t.Errorf("got %+v", pl)
	}
	if _, err := PlanFromUserData([]byte("#cloud-config\nusers: [default]\n")); err == nil || !strings.Contains(err.Error(), "no hardbake plan") {
		t.Errorf("plain user-data: %v", err)
	}
}

func TestNewKeyFile(t *testing.T) {
	p := t.TempDir() + "/id"
	signer, line, err := NewKeyFile(p, "c")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ssh.ParsePrivateKey(data)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back.PublicKey().Marshal(), signer.PublicKey().Marshal()) || !strings.HasSuffix(line, " c") {
		t.Errorf("key file does not hold the signer's key (%s)", line)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", st.Mode())
	}
}
