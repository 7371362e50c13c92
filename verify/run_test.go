package verify

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"hardbake.dev/hardbake/plan"
	"hardbake.dev/hardbake/verify/sshdtest"
)

// checkWant is one check's expected status and a piece of its evidence.
type checkWant struct {
	status   Status
	evidence string
}

func TestRunAgainstRealSSHD(t *testing.T) {
	strict := renderedDropIn(t, "strict")
	nothing := sshdtest.FreePort(t) // no listener: port 22 for most cases
	tests := []struct {
		name     string
		config   string
		policy   Policy
		known    []string // "" entries are replaced by the server's fingerprint
		port22   string   // "sshd": map port 22 to the server itself
		expect22 bool     // expect SSH on 22 itself (verify host --port 22)
		firewall bool
		report   bool
		want     map[string]checkWant
	}{
		{
			name:     "hardened",
			config:   cryptoLines(strict) + "AuthenticationMethods publickey\n",
			policy:   PolicyFromSSHD("modern", strict),
			known:    []string{""},
			firewall: true,
			want: map[string]checkWant{
				IDBanner:      {Pass, "SSH-2.0-OpenSSH_"},
				IDNoPort22:    {Pass, "dial"},
				IDAuthMethods: {Pass, "neither"},
				IDCrypto:      {Pass, "policy modern: no failing algorithm"},
				IDKeyLogin:    {Pass, "ssh-ed25519"},
				IDSudo:        {Pass, ""},
				// Root is the test's admin (the one account with a shell
				// everywhere), so root login succeeds here: the check must say so.
				IDRootRefused: {Fail, "root logged in"},
				IDHostKey:     {Pass, "ssh-ed25519 SHA256:"},
				IDReport:      {Skip, "not expected"},
				// No firewall on the test machine: the open port answers,
				// and so does the one the profile does not allow.
				"firewall-open:":     {Pass, "greeting received"},
				"firewall-filtered:": {Fail, "answered from here"},
			},
		},
		{
			name:   "password login on",
			config: cryptoLines(strict) + "PasswordAuthentication yes\n",
			policy: PolicyFromSSHD("modern", strict),
			want: map[string]checkWant{
				IDAuthMethods: {Fail, "offers password"},
				IDKeyLogin:    {Pass, ""},
				IDCrypto:      {Pass, ""},
			},
		},
		{
			name:   "keyboard-interactive on",
			config: "UsePAM yes\nKbdInteractiveAuthentication yes\n",
			policy: PolicyFromSSHD("openssh", ""),
			want: map[string]checkWant{
				// sshd offers keyboard-interactive through PAM.
				IDAuthMethods: {Fail, "keyboard-interactive"},
				IDKeyLogin:    {Pass, ""},
			},
		},
		{
			name:   "openssh defaults against the strict policy",
			config: "",
			policy: PolicyFromSSHD("modern", strict),
			want: map[string]checkWant{
				IDCrypto: {Fail, "ecdh-sha2-nistp256"},
			},
		},
		{
			name:   "root login refused",
			config: "PermitRootLogin no\n",
			policy: PolicyFromSSHD("openssh", ""),
			report: true,
			want: map[string]checkWant{
				IDRootRefused: {Pass, "unable to authenticate"},
				IDKeyLogin:    {Fail, "unable to authenticate"},
				IDSudo:        {Skip, "needs the key login"},
				IDReport:      {Skip, "needs the key login"},
				IDAuthMethods: {Pass, ""},
			},
		},
		{
			name:   "unknown host key, sshd on 22",
			config: "",
			policy: PolicyFromSSHD("openssh", ""),
			known:  []string{"SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"},
			port22: "sshd",
			report: true,
			want: map[string]checkWant{
				IDHostKey:  {Fail, "expected one of [SHA256:47DEQ"},
				IDNoPort22: {Fail, "port 22 answers: SSH-2.0-OpenSSH"},
				// The agent's report does not exist on the test machine.
				IDReport: {Fail, "no agent report"},
				IDCrypto: {Pass, "policy openssh"},
			},
		},
		{
			// A machine left on 22, audited as it is: SSH on 22 is the
			// finding, not a reason to skip the check.
			name:     "expected on 22",
			config:   "",
			policy:   PolicyFromSSHD("openssh", ""),
			port22:   "sshd",
			expect22: true,
			want: map[string]checkWant{
				IDBanner:   {Pass, "SSH-2.0-OpenSSH_"},
				IDNoPort22: {Fail, "port 22 answers: SSH-2.0-OpenSSH"},
				IDKeyLogin: {Pass, ""},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := sshdtest.Start(t, tc.config)
			openPort, probePort := sshdtest.FreePort(t), sshdtest.FreePort(t)
			e := Expect{
				SSHPort: s.Port, Admin: "root", Policy: tc.policy,
				Firewall: tc.firewall, Open: []plan.Port{{Port: openPort, Proto: "tcp"}}, ProbePort: probePort,
				Report: tc.report,
			}
			if tc.expect22 {
				e.SSHPort = 22
			}
			for _, k := range tc.known {
				if k == "" {
					k = s.HostFP
				}
				e.KnownHostKeys = append(e.KnownHostKeys, k)
			}
			target := Target{
				User: "root", Signer: s.Client, Timeout: 30 * time.Second, // a loaded 2-core host
				Addr: func(port int) (string, bool) {
					switch {
					case port == s.Port || (port == 22 && tc.port22 == "sshd"):
						return s.Addr, true
					case port == 22:
						return "127.0.0.1:" + strconv.Itoa(nothing), true
					}
					return "127.0.0.1:" + strconv.Itoa(port), true
				},
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			var progress strings.Builder
			rs := Run(ctx, target, e, Options{Progress: &progress})
			var table strings.Builder
			_ = rs.WriteTable(&table)
			for id, w := range tc.want {
				r, ok := findPrefix(rs, id, openPort, probePort)
				if !ok {
					t.Errorf("no check %s in:\n%s", id, table.String())
					continue
				}
				if r.Status != w.status || !strings.Contains(r.Evidence, w.evidence) {
					t.Errorf("%s: got %s %q, want %s containing %q\n%s", id, r.Status, r.Evidence, w.status, w.evidence, table.String())
				}
			}
			if t.Failed() {
				t.Logf("progress:\n%s", progress.String())
			}
		})
	}
}

// findPrefix finds a check by id; ids ending in ":" get the port appended.
func findPrefix(rs Results, id string, open, probe int) (Result, bool) {
	switch id {
	case "firewall-open:":
		id += strconv.Itoa(open)
	case "firewall-filtered:":
		id += strconv.Itoa(probe)
	}
	return rs.Find(id)
}
