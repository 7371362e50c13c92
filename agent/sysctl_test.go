package agent

import (
	"strings"
	"testing"

	"hardbake.dev/hardbake/plan"
)

func TestSysctlExpect(t *testing.T) {
	expect := map[string]string{"kernel.kptr_restrict": "2", "net.ipv4.ip_local_port_range": "32768 60999", "net.ipv4.tcp_syncookies": "1"}
	for _, tc := range []struct {
		name    string
		kernel  map[string]string
		wantErr string // "" for success
		reads   int    // sysctl -n calls
	}{
		{"all match in one call", map[string]string{"kernel.kptr_restrict": "2", "net.ipv4.ip_local_port_range": "32768\t60999", "net.ipv4.tcp_syncookies": "1"}, "", 1},
		{"a value differs", map[string]string{"kernel.kptr_restrict": "1", "net.ipv4.ip_local_port_range": "32768\t60999", "net.ipv4.tcp_syncookies": "1"},
			`kernel.kptr_restrict is "1", want "2"`, 1},
		{"a key the kernel lacks is named", map[string]string{"kernel.kptr_restrict": "2", "net.ipv4.tcp_syncookies": "1"},
			"sysctl -n -- net.ipv4.ip_local_port_range: exit status 255: sysctl: cannot stat /proc/sys/net/ipv4/ip_local_port_range", 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newFake(t)
			m.sysctl = tc.kernel
			r := &run{Agent: m.agent(), plan: &plan.Plan{Sysctl: &plan.Sysctl{Expect: expect}}}
			err := r.sysctlExpect()
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("err %v, want %q", err, tc.wantErr)
			}
			reads := 0
			for _, c := range m.callList() {
				if strings.HasPrefix(c, "sysctl -n") {
					reads++
				}
			}
			if reads != tc.reads {
				t.Errorf("%d sysctl -n calls, want %d: %q", reads, tc.reads, m.callList())
			}
		})
	}
}

// No keys to check: no sysctl call (without keys it would print its usage
// and fail).
func TestSysctlExpectNothing(t *testing.T) {
	m := newFake(t)
	r := &run{Agent: m.agent(), plan: &plan.Plan{Sysctl: &plan.Sysctl{}}}
	if err := r.sysctlExpect(); err != nil || len(m.callList()) != 0 {
		t.Errorf("err %v, calls %q", err, m.callList())
	}
}
