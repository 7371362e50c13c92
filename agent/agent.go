package agent

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"hardbake.dev/hardbake/plan"
)

// Stages.
const (
	StageEarly = "early"
	StageLate  = "late"
	StageCheck = "check"
)

// Exit codes (see the package comment).
const (
	ExitOK      = 0
	ExitFailed  = 1
	ExitUsage   = 2
	ExitPartial = 3
)

// Agent applies and checks one plan. All machine access is injectable.
type Agent struct {
	Root   Root
	Runner Runner
	// Uptime returns seconds since boot (ProcUptime on the machine).
	Uptime func() float64
	// Banner reads the SSH identification line on 127.0.0.1:port (DialBanner).
	Banner func(port int, timeout time.Duration) (string, error)
	// Sleep waits between polls (time.Sleep; a no-op in tests).
	Sleep func(time.Duration)
	// Out gets the one summary line for the console; for check, only the
	// report JSON (the summary goes to Err there, so stdout stays JSON).
	Out io.Writer
	// Err gets check's summary line (io.Discard when nil).
	Err     io.Writer
	Version string
	// Netlink loads the ruleset itself when the image has neither nft nor
	// iptables (Netlink{} on the machine); nil leaves the firewall waiting
	// for the package.
	Netlink NetlinkFirewall

	// Wait bounds each poll loop (banner, fail2ban ping). 30 s when zero.
	Wait time.Duration
}

// Options selects what Run does.
type Options struct {
	Stage      string
	PlanPath   string
	WantDigest string
	// Force re-runs a stage the state says is already done (tests, and an
	// admin who wants the plan re-applied on purpose).
	Force bool
}

// run is the working set of one invocation.
type run struct {
	*Agent
	plan   *plan.Plan
	digest string
	stage  string
	st     state
	steps  []plan.Step
	rep    plan.Report
	// firewallApplied is true when this run loaded a new ruleset (so an
	// SSH rollback must consider rolling it back too).
	firewallApplied bool
	// throwawayKey is the temporary host key sshd -t/-T use before the
	// machine has its own (see sshdArgs).
	throwawayKey string
}

// Run executes opts.Stage and returns the process exit code. When the run
// cannot start (plan unreadable, digest mismatch, undecodable, another
// version, unreadable state) it still leaves a report saying why, prints
// the FAILED line and changes nothing else; the error is returned too.
func (a *Agent) Run(opts Options) (int, error) {
	if opts.Stage != StageEarly && opts.Stage != StageLate && opts.Stage != StageCheck {
		return ExitUsage, fmt.Errorf("unknown stage %q", opts.Stage)
	}
	digest := ""
	data, err := a.Root.ReadFile(opts.PlanPath)
	if err != nil {
		return a.cannotStart(opts, digest, ExitUsage, fmt.Errorf("read plan: %w", err))
	}
	if digest, err = a.planDigest(opts.PlanPath, data); err != nil {
		return a.cannotStart(opts, "", ExitUsage, err)
	}
	if opts.WantDigest != "" && digest != opts.WantDigest {
		return a.cannotStart(opts, digest, ExitUsage, fmt.Errorf("plan digest mismatch: got sha256 %s, want %s", digest, opts.WantDigest))
	}
	p, err := DecodePlan(data)
	if err != nil {
		return a.cannotStart(opts, digest, ExitUsage, err)
	}
	st, err := a.loadState()
	if err != nil {
		return a.cannotStart(opts, digest, ExitFailed, err)
	}
	r := &run{Agent: a, plan: p, digest: digest, stage: opts.Stage, st: st}
	defer r.removeThrowawayKey()
	r.rep = plan.Report{
		PlanVersion: p.Version, PlanDigest: r.digest, Profile: p.Profile, InstanceID: p.InstanceID,
		AgentVersion: a.Version, Stage: opts.Stage,
	}
	if opts.Stage == StageEarly {
		// bootcmd runs on every boot: a report the last boot could not
		// deliver goes out again, in the background.
		defer func() {
			if err := a.resumeDelivery(); err != nil {
				fmt.Fprintf(a.errOut(), "hardbake: report sender: %v\n", err)
			}
		}()
	}
	switch opts.Stage {
	case StageEarly:
		if !opts.Force && st.Early.Completed && st.Early.Digest == r.digest {
			// bootcmd runs on every boot: never undo what the admin changed since.
			fmt.Fprintf(a.Out, "hardbake: early stage already applied for plan %.12s, nothing to do\n", r.digest)
			return ExitOK, nil
		}
		r.early()
	case StageLate:
		if !opts.Force && st.Late.Completed && st.Late.Digest == r.digest && st.Late.Result == plan.ResultHardened {
			fmt.Fprintf(a.Out, "hardbake: late stage already applied for plan %.12s, nothing to do\n", r.digest)
			return ExitOK, nil
		}
		if !st.Early.Completed || st.Early.Digest != r.digest {
			// bootcmd did not run this plan (e.g. it failed to start): do it now.
			r.early()
		}
		r.late()
	case StageCheck:
		r.check()
	}
	return r.finish()
}

// cannotStart reports a run that stopped before its first step: a report
// with result failed and one failed "plan" step carrying the reason (on
// stdout for check, at plan.ReportPath otherwise), and the FAILED line.
// Nothing on the machine is changed, so SSH stays as it was.
func (a *Agent) cannotStart(opts Options, digest string, code int, cause error) (int, error) {
	rep := plan.Report{
		PlanDigest: digest, AgentVersion: a.Version, Stage: opts.Stage, Result: plan.ResultFailed,
		Steps: []plan.Step{{Name: "plan", Stage: opts.Stage, Status: plan.StatusFailed, Error: cause.Error(), Uptime: a.Uptime()}},
	}
	report := EncodeReport(&rep)
	line := Summary(&rep)
	if opts.Stage == StageCheck {
		a.Out.Write(report)
		fmt.Fprintln(a.errOut(), line)
		return code, cause
	}
	fmt.Fprintln(a.Out, line)
	if err := a.Root.WriteAtomic(plan.ReportPath, report, 0o600, ""); err != nil {
		return code, errors.Join(cause, fmt.Errorf("write report: %w", err))
	}
	return code, cause
}

func (a *Agent) errOut() io.Writer {
	if a.Err == nil {
		return io.Discard
	}
	return a.Err
}

// step runs fn and records its outcome with the time since boot.
func (r *run) step(stage, name string, fn func() (string, error)) string {
	status, err := fn()
	s := plan.Step{Name: name, Stage: stage, Status: status, Uptime: r.Uptime()}
	if err != nil {
		s.Error = err.Error()
	}
	r.steps = append(r.steps, s)
	return status
}

// setStep overwrites the outcome of an earlier step (a later rollback).
func (r *run) setStep(name, status string, err error) {
	for i := len(r.steps) - 1; i >= 0; i-- {
		if r.steps[i].Name == name {
			r.steps[i].Status = status
			r.steps[i].Error = err.Error()
			r.steps[i].Uptime = r.Uptime()
			return
		}
	}
}

// result maps the steps to the overall result and exit code.
func (r *run) result(steps []plan.Step) (string, int) {
	waiting := false
	for i, s := range steps {
		switch s.Status {
		case plan.StatusFailed, plan.StatusRolledBack:
			return plan.ResultFailed, ExitFailed
		case plan.StatusWaiting:
			// An early step that waited for a package counts only if the
			// late stage did not finish it.
			waiting = waiting || !slices.ContainsFunc(steps[i+1:], func(l plan.Step) bool { return l.Name == s.Name })
		}
	}
	switch {
	case r.stage == StageEarly:
		return plan.ResultPending, ExitOK
	case waiting:
		return plan.ResultPartial, ExitPartial
	}
	return plan.ResultHardened, ExitOK
}

// finish fills the read-backs, writes state and report, prints the summary.
func (r *run) finish() (int, error) {
	r.readBack()
	var all []plan.Step
	var earlySteps, lateSteps []plan.Step
	for _, s := range r.steps {
		if s.Stage == StageEarly {
			earlySteps = append(earlySteps, s)
		} else {
			lateSteps = append(lateSteps, s)
		}
	}
	ranEarly := earlySteps != nil
	switch r.stage {
	case StageEarly:
		all = earlySteps
	case StageLate:
		if earlySteps == nil && r.st.Early.Digest == r.digest {
			earlySteps = r.st.Early.Steps
		}
		all = append(append(all, earlySteps...), lateSteps...)
	default:
		all = r.steps
	}
	result, code := r.result(all)
	r.rep.Result = result
	r.rep.Steps = all
	if r.rep.Steps == nil {
		r.rep.Steps = []plan.Step{}
	}
	report := EncodeReport(&r.rep)
	if r.stage == StageCheck {
		// check is read-only: the report goes to stdout, alone, so that
		// stdout is one JSON document; the summary goes to stderr.
		r.Out.Write(report)
		fmt.Fprintln(r.errOut(), Summary(&r.rep))
		r.sendHome(report)
		return code, nil
	}
	if ranEarly {
		r.st.Early = stageState{Digest: r.digest, Completed: true, Result: result, BootID: r.bootID(), Steps: earlySteps}
	}
	if r.stage == StageLate {
		r.st.Late = stageState{Digest: r.digest, Completed: true, Result: result, BootID: r.bootID(), Steps: lateSteps}
	}
	var errs []error
	if err := r.saveState(r.st); err != nil {
		errs = append(errs, err)
	}
	if err := r.Root.WriteAtomic(plan.ReportPath, report, 0o600, ""); err != nil {
		errs = append(errs, fmt.Errorf("write report: %w", err))
	}
	fmt.Fprintln(r.Out, Summary(&r.rep))
	if r.stage == StageLate {
		r.sendHome(report)
	}
	if len(errs) > 0 && code == ExitOK {
		code = ExitFailed
	}
	return code, errors.Join(errs...)
}

// sendHome hands a final report to the sender when the order names a
// service. Failing to queue it changes neither the result nor the exit
// code: the report is on the machine either way.
func (r *run) sendHome(report []byte) {
	if err := r.queueReport(report); err != nil {
		fmt.Fprintf(r.errOut(), "hardbake: report not sent: %v\n", err)
	}
}

func (r *run) wait() time.Duration {
	if r.Wait > 0 {
		return r.Wait
	}
	return 30 * time.Second
}

// poll calls fn until it succeeds or the wait bound passes.
func (r *run) poll(fn func() error) error {
	deadline := time.Now().Add(r.wait())
	for {
		err := fn()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		r.Sleep(500 * time.Millisecond)
	}
}
