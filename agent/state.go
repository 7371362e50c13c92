package agent

import (
	"errors"
	"fmt"
	"syscall"

	"hardbake.dev/hardbake/agent/internal/jsonv"
	"hardbake.dev/hardbake/plan"
)

const statePath = plan.StateDir + "/state.json"

// stageState is what one stage left behind for the next run.
type stageState struct {
	Digest    string
	Completed bool // the stage ran to its end (whatever the result)
	Result    string
	// BootID is the kernel's boot_id when the stage ran: step uptimes
	// compare with other clocks only within the same boot.
	BootID string
	Steps  []plan.Step
}

// state persists between runs and boots: which plan each stage applied and
// the SSH port that worked before the change (the rollback target).
type state struct {
	Early, Late stageState
	OldSSHPort  int
}

func (a *Agent) loadState() (state, error) {
	var st state
	data, err := a.Root.ReadFile(statePath)
	if errors.Is(err, syscall.ENOENT) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("read state: %w", err)
	}
	v, err := jsonv.Parse(data)
	if err != nil {
		return st, fmt.Errorf("read state: %w", err)
	}
	d := &decoder{}
	d.object("state", v, map[string]func(string, any){
		"early":        d.stage(&st.Early),
		"late":         d.stage(&st.Late),
		"old_ssh_port": d.int(&st.OldSSHPort),
	})
	if d.err != nil {
		return state{}, fmt.Errorf("read state: %w", d.err)
	}
	return st, nil
}

func (d *decoder) stage(s *stageState) func(string, any) {
	return func(path string, v any) {
		d.object(path, v, map[string]func(string, any){
			"digest":    d.str(&s.Digest),
			"completed": d.boolean(&s.Completed),
			"result":    d.str(&s.Result),
			"boot_id":   d.str(&s.BootID),
			"steps": func(path string, v any) {
				d.array(path, v, func(n int) { s.Steps = make([]plan.Step, n) }, func(i int, path string, v any) {
					st := &s.Steps[i]
					d.object(path, v, map[string]func(string, any){
						"name": d.str(&st.Name), "stage": d.str(&st.Stage), "status": d.str(&st.Status),
						"error": d.str(&st.Error), "uptime_s": d.float(&st.Uptime),
					})
				})
			},
		})
	}
}

func (a *Agent) saveState(st state) error {
	var w jsonv.Writer
	w.Open('{')
	for _, s := range []struct {
		name string
		st   *stageState
	}{{"early", &st.Early}, {"late", &st.Late}} {
		w.Key(s.name)
		w.Open('{')
		w.Key("digest")
		w.String(s.st.Digest)
		w.Key("completed")
		w.Bool(s.st.Completed)
		w.Key("result")
		w.String(s.st.Result)
		w.Key("boot_id")
		w.String(s.st.BootID)
		w.Key("steps")
		writeSteps(&w, s.st.Steps)
		w.Close('}')
	}
	w.Key("old_ssh_port")
	w.Int(int64(st.OldSSHPort))
	w.Close('}')
	if err := a.Root.WriteAtomic(statePath, w.Bytes(), 0o600, ""); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	return nil
}
