package edge

// BackupDocument is the rendered backup policy of one machine: the policy
// and the OVHcloud VPS API calls that carry it out. hardbaked makes them
// where it has credentials (edge/ovh: Backup, Snapshot); otherwise the
// provider's own tooling can.
type BackupDocument struct {
	Provider             string    `json:"provider"`
	Automated            bool      `json:"automated"`
	Time                 string    `json:"time,omitempty"`
	SnapshotWhenHardened bool      `json:"snapshot_when_hardened"`
	Requests             []Request `json:"requests"`
}

// OVHReschedule is the body of POST /vps/{serviceName}/automatedBackup/reschedule.
type OVHReschedule struct {
	Schedule string `json:"schedule"` // HH:MM:SS
}

// OVHSnapshotCreate is the body of POST /vps/{serviceName}/createSnapshot.
type OVHSnapshotCreate struct {
	Description string `json:"description"`
}

// SnapshotDescription names the snapshot of a hardened machine, so a retry
// recognises its own snapshot and does not take a second one.
func SnapshotDescription(instanceID string) string {
	return "hardbake " + instanceID + " hardened"
}

// BuildBackup renders b for the machine of in.
func BuildBackup(b *BackupPolicy, in *Input, opts Options) *BackupDocument {
	svc := opts.ServiceName
	if svc == "" {
		svc = "{serviceName}"
	}
	d := &BackupDocument{Provider: b.Provider, Automated: b.AutomatedOn(), SnapshotWhenHardened: b.SnapshotOn(), Requests: []Request{}}
	base := "/vps/" + svc
	if d.Automated {
		d.Time = b.BackupTime()
		d.Requests = append(d.Requests,
			Request{Method: "GET", Path: base + "/automatedBackup", Note: "the automated backup option must be subscribed (a paid option); hardbake checks, it does not order it"},
			Request{Method: "POST", Path: base + "/automatedBackup/reschedule", Body: OVHReschedule{Schedule: d.Time + ":00"}, Note: "skipped when the schedule already matches"},
		)
	}
	if d.SnapshotWhenHardened {
		d.Requests = append(d.Requests,
			Request{Method: "GET", Path: base + "/snapshot", Note: "after the agent reports hardened; one snapshot slot per VPS: one with this description is kept, another is deleted first (DELETE " + base + "/snapshot)"},
			Request{Method: "POST", Path: base + "/createSnapshot", Body: OVHSnapshotCreate{Description: SnapshotDescription(in.InstanceID)}, Note: "then poll GET " + base + "/tasks/{id} until done"},
		)
	}
	return d
}
