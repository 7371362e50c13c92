// Package verify checks a machine from the outside, the way an attacker
// (and its admin) sees it: which port answers SSH, who may log in and how,
// what the SSH server offers, whether the firewall filters what the
// profile does not allow, and whether fail2ban bans. It is pure Go (no
// cgo) and used by `hardbake verify` and by the e2e suite.
package verify

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Status is the outcome of one check.
type Status string

const (
	Pass Status = "PASS"
	Fail Status = "FAIL"
	Skip Status = "SKIP"
)

// Result is one check's outcome with the evidence that decided it.
type Result struct {
	ID       string `json:"id"`   // stable, e.g. "no-password-auth"
	Name     string `json:"name"` // for people
	Status   Status `json:"status"`
	Evidence string `json:"evidence"`
}

// Err returns nil for PASS and SKIP and an error naming the check and the
// evidence for FAIL, for callers that collect errors (the e2e suite).
func (r Result) Err() error {
	if r.Status != Fail {
		return nil
	}
	return fmt.Errorf("%s: %s", r.Name, r.Evidence)
}

func pass(id, name, format string, args ...any) Result {
	return Result{ID: id, Name: name, Status: Pass, Evidence: fmt.Sprintf(format, args...)}
}

func fail(id, name, format string, args ...any) Result {
	return Result{ID: id, Name: name, Status: Fail, Evidence: fmt.Sprintf(format, args...)}
}

func skip(id, name, format string, args ...any) Result {
	return Result{ID: id, Name: name, Status: Skip, Evidence: fmt.Sprintf(format, args...)}
}

// Results is a run's outcome in the order the checks ran.
type Results []Result

// Failed lists the failed checks.
func (rs Results) Failed() Results {
	var out Results
	for _, r := range rs {
		if r.Status == Fail {
			out = append(out, r)
		}
	}
	return out
}

// OK reports whether no check failed.
func (rs Results) OK() bool { return len(rs.Failed()) == 0 }

// Find returns the result with the given id.
func (rs Results) Find(id string) (Result, bool) {
	for _, r := range rs {
		if r.ID == id {
			return r, true
		}
	}
	return Result{}, false
}

// WriteTable prints a STATUS/CHECK/EVIDENCE table; evidence is one line.
func (rs Results) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STATUS\tCHECK\tEVIDENCE")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Status, r.Name, oneLine(r.Evidence))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	p, f, s := rs.counts()
	_, err := fmt.Fprintf(w, "%d passed, %d failed, %d skipped\n", p, f, s)
	return err
}

// WriteJSON prints the results as one JSON document.
func (rs Results) WriteJSON(w io.Writer, extra map[string]any) error {
	p, f, s := rs.counts()
	doc := map[string]any{"checks": rs, "passed": p, "failed": f, "skipped": s, "ok": f == 0}
	for k, v := range extra {
		doc[k] = v
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

func (rs Results) counts() (p, f, s int) {
	for _, r := range rs {
		switch r.Status {
		case Pass:
			p++
		case Fail:
			f++
		default:
			s++
		}
	}
	return
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
