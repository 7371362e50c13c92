package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"syscall"

	"hardbake.dev/hardbake/plan"
)

const statePath = plan.StateDir + "/state.json"

// stageState is what one stage left behind for the next run.
type stageState struct {
	Digest    string `json:"digest"`
	Completed bool   `json:"completed"` // the stage ran to its end (whatever the result)
	Result    string `json:"result"`
	// BootID is the kernel's boot_id when the stage ran: step uptimes
	// compare with other clocks only within the same boot.
	BootID string      `json:"boot_id"`
	Steps  []plan.Step `json:"steps"`
}

// state persists between runs and boots: which plan each stage applied and
// the SSH port that worked before the change (the rollback target).
type state struct {
	Early      stageState `json:"early"`
	Late       stageState `json:"late"`
	OldSSHPort int        `json:"old_ssh_port"`
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
	if err := plan.StrictJSON(data); err != nil {
		return state{}, fmt.Errorf("read state %s: %w", statePath, err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return state{}, fmt.Errorf("read state %s: %w", statePath, err)
	}
	return st, nil
}

func (a *Agent) saveState(st state) error {
	data, err := json.MarshalIndent(&st, "", "  ")
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	if err := a.Root.WriteAtomic(statePath, append(data, '\n'), 0o600, ""); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	return nil
}
