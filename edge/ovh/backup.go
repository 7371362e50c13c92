package ovh

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"hardbake.dev/hardbake/edge"
)

// automatedBackup is GET /vps/{serviceName}/automatedBackup.
type automatedBackup struct {
	Schedule string `json:"schedule"` // HH:MM:SS
	State    string `json:"state"`
}

// snapshot is GET /vps/{serviceName}/snapshot.
type snapshot struct {
	Description string `json:"description"`
}

// task is a VPS task (GET /vps/{serviceName}/tasks/{id}).
type task struct {
	ID    int64  `json:"id"`
	State string `json:"state"` // todo, doing, done, error, cancelled, …
	Type  string `json:"type"`
}

func vpsBase(serviceName string) string { return "/vps/" + url.PathEscape(serviceName) }

// Backup carries out the automated-backup half of policy on a VPS: the
// option must be subscribed (it is a paid option: hardbake checks and never
// orders it), and its daily time is set to the policy's unless it already is.
func (c *Client) Backup(ctx context.Context, serviceName string, policy *edge.BackupPolicy) (*edge.Outcome, error) {
	out := &edge.Outcome{Provider: edge.BackupOVHVPS, Target: serviceName, Steps: []edge.Step{}}
	if policy == nil || !policy.AutomatedOn() {
		out.Complete = true
		return out, nil
	}
	base := vpsBase(serviceName)
	var ab automatedBackup
	if err := c.call(ctx, http.MethodGet, base+"/automatedBackup", nil, &ab); err != nil {
		out.Add("check automated backup", serviceName, edge.ResultFailed)
		if notFound(err) {
			err = fmt.Errorf("ovh: the VPS %s has no automated backup option (a paid option: subscribe it in the OVHcloud control panel): %w", serviceName, err)
		}
		return out, out.Fail(err)
	}
	if ab.State == "disabled" {
		out.Add("check automated backup", serviceName, edge.ResultFailed)
		return out, out.Fail(fmt.Errorf("ovh: the automated backup option of %s is disabled", serviceName))
	}
	out.Add("check automated backup", serviceName, edge.ResultUnchanged)
	want := policy.BackupTime() + ":00"
	if ab.Schedule == want {
		out.Add("schedule automated backup", want, edge.ResultUnchanged)
		out.Complete = true
		return out, nil
	}
	if err := c.call(ctx, http.MethodPost, base+"/automatedBackup/reschedule", edge.OVHReschedule{Schedule: want}, nil); err != nil {
		out.Add("schedule automated backup", want, edge.ResultFailed)
		return out, out.Fail(err)
	}
	c.log("ovh: automated backup rescheduled", "vps", serviceName, "time", want)
	out.Add("schedule automated backup", want, edge.ResultDone)
	out.Complete = true
	return out, nil
}

// Snapshot takes the snapshot of a freshly hardened machine. hardbaked calls
// it once the agent's report says hardened. OVHcloud keeps one snapshot per
// VPS: a snapshot this machine's hardening already made (same description)
// is kept; another one is deleted first; a snapshot task still running from
// an earlier attempt is waited for instead of starting a second one.
func (c *Client) Snapshot(ctx context.Context, serviceName, instanceID string) (*edge.Outcome, error) {
	out := &edge.Outcome{Provider: edge.BackupOVHVPS, Target: serviceName, Steps: []edge.Step{}}
	base := vpsBase(serviceName)
	desc := edge.SnapshotDescription(instanceID)

	// A createSnapshot task of an earlier attempt that is still running.
	for _, state := range []string{"todo", "doing"} {
		var ids []int64
		if err := c.call(ctx, http.MethodGet, base+"/tasks?type=createSnapshot&state="+state, nil, &ids); err != nil {
			return out, out.Fail(err)
		}
		if len(ids) > 0 {
			if err := c.waitTask(ctx, base, ids[0]); err != nil {
				out.Add("create snapshot", desc, edge.ResultFailed)
				return out, out.Fail(err)
			}
		}
	}

	var snap snapshot
	err := c.call(ctx, http.MethodGet, base+"/snapshot", nil, &snap)
	switch {
	case err == nil && snap.Description == desc:
		out.Add("create snapshot", desc, edge.ResultUnchanged)
		out.Complete = true
		return out, nil
	case err == nil:
		var t task
		if err := c.call(ctx, http.MethodDelete, base+"/snapshot", nil, &t); err != nil {
			out.Add("delete previous snapshot", snap.Description, edge.ResultFailed)
			return out, out.Fail(err)
		}
		if err := c.waitTask(ctx, base, t.ID); err != nil {
			out.Add("delete previous snapshot", snap.Description, edge.ResultFailed)
			return out, out.Fail(err)
		}
		out.Add("delete previous snapshot", snap.Description, edge.ResultDone)
	case !notFound(err):
		return out, out.Fail(err)
	}
	var t task
	if err := c.call(ctx, http.MethodPost, base+"/createSnapshot", edge.OVHSnapshotCreate{Description: desc}, &t); err != nil {
		out.Add("create snapshot", desc, edge.ResultFailed)
		return out, out.Fail(err)
	}
	if err := c.waitTask(ctx, base, t.ID); err != nil {
		out.Add("create snapshot", desc, edge.ResultFailed)
		return out, out.Fail(err)
	}
	c.log("ovh: snapshot taken", "vps", serviceName)
	out.Add("create snapshot", desc, edge.ResultDone)
	out.Complete = true
	return out, nil
}

// waitTask polls a VPS task until it is done; error or cancelled fail.
func (c *Client) waitTask(ctx context.Context, base string, id int64) error {
	return c.pollUntil(ctx, fmt.Sprintf("task %d", id), func() (bool, string, error) {
		var t task
		if err := c.call(ctx, http.MethodGet, fmt.Sprintf("%s/tasks/%d", base, id), nil, &t); err != nil {
			return false, "", err
		}
		switch t.State {
		case "done":
			return true, t.State, nil
		case "error", "cancelled":
			return false, t.State, fmt.Errorf("ovh: task %d (%s) ended %s", id, t.Type, t.State)
		}
		return false, t.State, nil
	})
}
