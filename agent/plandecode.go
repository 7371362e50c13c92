package agent

import (
	"fmt"

	"hardbake.dev/hardbake/agent/internal/jsonv"
	"hardbake.dev/hardbake/plan"
)

// DecodePlan parses a plan as render.DecodePlan does, without
// encoding/json: unknown fields rejected, same version and port checks. Key
// names must match exactly (encoding/json would also accept other case),
// which render.EncodePlan's output always does. The digest is checked by
// the caller (Agent.Run), over the file itself.
func DecodePlan(data []byte) (*plan.Plan, error) {
	v, err := jsonv.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("decode plan: %w", err)
	}
	var p plan.Plan
	d := &decoder{}
	d.object("plan", v, map[string]func(string, any){
		"version":     d.int(&p.Version),
		"profile":     d.str(&p.Profile),
		"instance_id": d.str(&p.InstanceID),
		"ssh":         func(path string, v any) { d.ssh(path, v, &p.SSH) },
		"accounts": func(path string, v any) {
			d.object(path, v, map[string]func(string, any){
				"admin":              d.str(&p.Accounts.Admin),
				"lock_root_password": d.boolean(&p.Accounts.LockRootPassword),
			})
		},
		"firewall": func(path string, v any) {
			if v != nil {
				p.Firewall = &plan.Firewall{}
				d.firewall(path, v, p.Firewall)
			}
		},
		"fail2ban": func(path string, v any) {
			if v != nil {
				f := &plan.Fail2ban{}
				p.Fail2ban = f
				d.object(path, v, map[string]func(string, any){
					"jail_local": d.file(&f.JailLocal),
					"jails":      d.stringMap(&f.Jails),
				})
			}
		},
		"updates": func(path string, v any) {
			if v != nil {
				u := &plan.Updates{}
				p.Updates = u
				d.object(path, v, map[string]func(string, any){
					"files": func(path string, v any) {
						d.array(path, v, func(n int) { u.Files = make([]plan.File, n) },
							func(i int, path string, v any) { d.file(&u.Files[i])(path, v) })
					},
					"unattended": d.boolean(&u.Unattended),
				})
			}
		},
		"sysctl": func(path string, v any) {
			if v != nil {
				s := &plan.Sysctl{}
				p.Sysctl = s
				d.object(path, v, map[string]func(string, any){
					"file":   d.file(&s.File),
					"expect": d.stringMap(&s.Expect),
				})
			}
		},
	})
	if d.err != nil {
		return nil, fmt.Errorf("decode plan: %w", d.err)
	}
	if p.Version != plan.Version {
		return nil, fmt.Errorf("plan version %d is not supported (want %d)", p.Version, plan.Version)
	}
	if p.SSH.Port < 1 || p.SSH.Port > 65535 {
		return nil, fmt.Errorf("plan: ssh.port %d out of range", p.SSH.Port)
	}
	return &p, nil
}

func (d *decoder) file(f *plan.File) func(string, any) {
	return func(path string, v any) {
		d.object(path, v, map[string]func(string, any){
			"path":    d.str(&f.Path),
			"content": d.str(&f.Content),
			"mode":    d.uint32(&f.Mode),
			"owner":   d.str(&f.Owner),
		})
	}
}

func (d *decoder) ssh(path string, v any, s *plan.SSH) {
	d.object(path, v, map[string]func(string, any){
		"port":           d.int(&s.Port),
		"drop_in":        d.file(&s.DropIn),
		"socket_drop_in": d.file(&s.SocketDropIn),
		"expect":         d.stringMap(&s.Expect),
	})
}

func (d *decoder) firewall(path string, v any, f *plan.Firewall) {
	d.object(path, v, map[string]func(string, any){
		"backend":       d.str(&f.Backend),
		"nftables":      d.file(&f.Nftables),
		"iptables_v4":   d.file(&f.IPTablesV4),
		"iptables_v6":   d.file(&f.IPTablesV6),
		"iptables_unit": d.file(&f.IPTablesUnit),
		"allow": func(path string, v any) {
			d.array(path, v, func(n int) { f.Allow = make([]plan.Port, n) },
				func(i int, path string, v any) {
					d.object(path, v, map[string]func(string, any){
						"port":  d.int(&f.Allow[i].Port),
						"proto": d.str(&f.Allow[i].Proto),
					})
				})
		},
	})
}
