package agent

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"hardbake.dev/hardbake/internal/testtool"
	"hardbake.dev/hardbake/plan"
)

// signatureVector is one entry of testdata/report-signature-vectors.json,
// which the service's tests check against its verifier too.
type signatureVector struct {
	Key       string `json:"key"`
	OrderID   string `json:"order_id"`
	Timestamp string `json:"timestamp"`
	Nonce     string `json:"nonce"`
	Body      string `json:"body"`
	Signature string `json:"signature"`
}

func loadVectors(t *testing.T) []signatureVector {
	t.Helper()
	data, err := os.ReadFile("testdata/report-signature-vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v []signatureVector
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	if len(v) == 0 {
		t.Fatal("no vectors")
	}
	return v
}

// TestPostPySignVectors: the sender's python3 signs exactly as the wire
// format says (the vectors), the key read from an endpoint file as render
// writes it.
func TestPostPySignVectors(t *testing.T) {
	py := testtool.Require(t, "python3")
	for i, v := range loadVectors(t) {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			dir := t.TempDir()
			ep := writeEndpoint(t, dir, "http://127.0.0.1:1/report/"+v.OrderID, v.OrderID, v.Key)
			body := filepath.Join(dir, "body")
			if err := os.WriteFile(body, []byte(v.Body), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(py, "-I", "-c", PostPy, "sign", ep, body, v.Timestamp, v.Nonce).Output()
			if err != nil {
				t.Fatalf("python3: %v", err)
			}
			if got := strings.TrimSpace(string(out)); got != v.Signature {
				t.Fatalf("signature %s, want %s", got, v.Signature)
			}
			// And the vector itself is HMAC-SHA256 of the documented message.
			key, _ := hex.DecodeString(v.Key)
			m := hmac.New(sha256.New, key)
			m.Write([]byte("hardbake-report-v1\n" + v.OrderID + "\n" + v.Timestamp + "\n" + v.Nonce + "\n" + v.Body))
			if want := "v1=" + hex.EncodeToString(m.Sum(nil)); want != v.Signature {
				t.Fatalf("vector %d is wrong: %s, computed %s", i, v.Signature, want)
			}
		})
	}
}

func writeEndpoint(t *testing.T, dir, url, id, key string) string {
	t.Helper()
	p := filepath.Join(dir, "report-endpoint.json")
	data, _ := json.Marshal(map[string]string{"url": url, "order_id": id, "key": key})
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBackoffDelay(t *testing.T) {
	b := Backoff{First: 5 * time.Second, Max: 10 * time.Minute, Attempts: 50}
	for _, c := range []struct {
		n          int
		retryAfter time.Duration
		want       time.Duration
	}{
		{0, 0, 5 * time.Second},
		{1, 0, 10 * time.Second},
		{2, 0, 20 * time.Second},
		{6, 0, 320 * time.Second},
		{7, 0, 10 * time.Minute}, // 640 s capped
		{40, 0, 10 * time.Minute},
		{1 << 30, 0, 10 * time.Minute}, // no overflow
		{0, 30 * time.Second, 30 * time.Second},
		{3, 30 * time.Second, 40 * time.Second}, // the longer one
		{0, 2 * time.Hour, 10 * time.Minute},    // Retry-After capped too
	} {
		if got := b.Delay(c.n, c.retryAfter); got != c.want {
			t.Errorf("Delay(%d, %v) = %v, want %v", c.n, c.retryAfter, got, c.want)
		}
	}
	d := DefaultBackoff()
	var total time.Duration
	for n := 0; n < d.Attempts-1; n++ {
		total += d.Delay(n, 0)
	}
	if total < 6*time.Hour || total > 8*time.Hour {
		t.Errorf("default backoff tries for %v; documented as about 7 hours", total)
	}
}

func TestFinalStatus(t *testing.T) {
	final := []int{200, 201, 204, 400, 404, 409, 410, 413, 422}
	retry := []int{301, 401, 403, 405, 408, 425, 429, 500, 502, 503, 504}
	for _, c := range final {
		if !finalStatus(c) {
			t.Errorf("%d: retried, want final", c)
		}
	}
	for _, c := range retry {
		if finalStatus(c) {
			t.Errorf("%d: final, want retried", c)
		}
	}
}

func TestParsePostOutput(t *testing.T) {
	for _, c := range []struct {
		out    string
		status int
		after  time.Duration
		answer string
		err    bool
	}{
		{"200 -\n{\"id\": \"x\", \"status\": \"hardened\"}\n", 200, 0, `{"id": "x", "status": "hardened"}`, false},
		{"429 10\n{\"error\": \"too many\"}\n", 429, 10 * time.Second, `{"error": "too many"}`, false},
		{"503 Wed, 21 Oct 2026 07:28:00 GMT\n\n", 0, 0, "", true}, // three fields: not ours
		{"503 soon\n\n", 503, 0, "", false},                       // unparsable Retry-After: none
		{"503 999999999\n", 503, 24 * time.Hour, "", false},
		{"", 0, 0, "", true},
		{"Traceback (most recent call last):\n", 0, 0, "", true},
		{"99 -\n", 0, 0, "", true},
		{"600 -\n", 0, 0, "", true},
	} {
		status, after, answer, err := parsePostOutput(c.out)
		if (err != nil) != c.err || status != c.status || after != c.after || answer != c.answer {
			t.Errorf("parsePostOutput(%q) = %d, %v, %q, %v", c.out, status, after, answer, err)
		}
	}
}

// scriptRunner answers the sender's commands from a script.
type scriptRunner struct {
	calls   [][]string
	posts   []func() ([]byte, error) // one per python3 post, in order
	missing map[string]bool
	fail    map[string]error
	onPost  func(n int) // called before post n (0-based) answers
}

func (r *scriptRunner) Run(name string, args ...string) ([]byte, error) {
	r.calls = append(r.calls, append([]string{name}, args...))
	if err := r.fail[name]; err != nil {
		return nil, err
	}
	if name == "python3" {
		n := len(slices.DeleteFunc(slices.Clone(r.calls), func(c []string) bool { return c[0] != "python3" })) - 1
		if r.onPost != nil {
			r.onPost(n)
		}
		if n >= len(r.posts) {
			return nil, fmt.Errorf("unscripted post %d", n)
		}
		return r.posts[n]()
	}
	return nil, nil
}

func (r *scriptRunner) LookPath(name string) (string, error) {
	if r.missing[name] {
		return "", fmt.Errorf("%s: not found", name)
	}
	return "/usr/bin/" + name, nil
}

func answer(status int, retryAfter string) func() ([]byte, error) {
	return func() ([]byte, error) { return []byte(fmt.Sprintf("%d %s\n{}\n", status, retryAfter)), nil }
}

func noAnswer() ([]byte, error) {
	return nil, &ExitError{Cmd: "python3", Code: 1, Stderr: "post http://x/report/1: <urlopen error [Errno 111] Connection refused>"}
}

// senderAgent is an agent on a temp root with an endpoint and a queued
// report; sleeps are recorded, not slept.
func senderAgent(t *testing.T, r Runner) (*Agent, *[]time.Duration) {
	t.Helper()
	root := t.TempDir()
	a := &Agent{Root: Root{Dir: root}, Runner: r, Out: io.Discard, Err: io.Discard}
	var sleeps []time.Duration
	a.Sleep = func(d time.Duration) { sleeps = append(sleeps, d) }
	if err := a.Root.WriteAtomic(plan.ReportEndpointPath, []byte(`{"url":"http://x/report/1","order_id":"1","key":"00"}`), 0o600, ""); err != nil {
		t.Fatal(err)
	}
	if err := a.Root.WriteAtomic(plan.OutboxPath, []byte(`{"result":"hardened"}`), 0o600, ""); err != nil {
		t.Fatal(err)
	}
	return a, &sleeps
}

func readDelivery(t *testing.T, a *Agent) Delivery {
	t.Helper()
	data, err := a.Root.ReadFile(plan.DeliveryPath)
	if err != nil {
		t.Fatal(err)
	}
	var d Delivery
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDeliver(t *testing.T) {
	b := Backoff{First: 5 * time.Second, Max: time.Minute, Attempts: 5}
	for _, c := range []struct {
		name       string
		posts      []func() ([]byte, error)
		result     string
		status     int
		sleeps     []time.Duration
		outboxKept bool
	}{
		{"accepted at once", []func() ([]byte, error){answer(200, "-")}, DeliverySent, 200, nil, false},
		{"unreachable, then 503, then rate limited, then accepted",
			[]func() ([]byte, error){noAnswer, answer(503, "-"), answer(429, "45"), answer(200, "-")},
			DeliverySent, 200, []time.Duration{5 * time.Second, 10 * time.Second, 45 * time.Second}, false},
		{"clock off (403), then accepted", []func() ([]byte, error){answer(403, "-"), answer(200, "-")}, DeliverySent, 200, []time.Duration{5 * time.Second}, false},
		{"order already final: no retry", []func() ([]byte, error){answer(409, "-")}, DeliveryRefused, 409, nil, false},
		{"cancelled: no retry", []func() ([]byte, error){answer(503, "-"), answer(410, "-")}, DeliveryRefused, 410, []time.Duration{5 * time.Second}, false},
		{"never reachable: bounded, report kept",
			[]func() ([]byte, error){noAnswer, noAnswer, answer(502, "-"), noAnswer, noAnswer},
			DeliveryPending, 0, []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := &scriptRunner{posts: c.posts}
			a, sleeps := senderAgent(t, r)
			d, err := a.Deliver(b)
			if err != nil {
				t.Fatal(err)
			}
			if d.Result != c.result || d.Status != c.status || d.Attempts != len(c.posts) {
				t.Fatalf("delivery %+v, want %s HTTP %d after %d attempts", d, c.result, c.status, len(c.posts))
			}
			if !slices.Equal(*sleeps, c.sleeps) {
				t.Fatalf("slept %v, want %v", *sleeps, c.sleeps)
			}
			if got := a.Root.Exists(plan.OutboxPath); got != c.outboxKept {
				t.Fatalf("outbox kept: %v, want %v", got, c.outboxKept)
			}
			if rec := readDelivery(t, a); rec.Result != c.result || rec.Attempts != len(c.posts) || rec.Unix == 0 {
				t.Fatalf("recorded %+v", rec)
			}
			if c.result == DeliveryPending && !strings.Contains(readDelivery(t, a).Error, "Connection refused") {
				t.Fatalf("the record does not say why: %+v", readDelivery(t, a))
			}
			// Every attempt posts the snapshot, with the endpoint file; the
			// key is never on a command line.
			for _, call := range r.calls {
				if call[0] != "python3" || call[4] != "post" || call[5] != a.Root.Path(plan.ReportEndpointPath) || call[6] != a.Root.Path(sendingPath) {
					t.Fatalf("call %q", call)
				}
			}
		})
	}
}

// TestDeliverNewerReport: a report queued while one is being sent is sent
// next, and not lost when the first is accepted.
func TestDeliverNewerReport(t *testing.T) {
	r := &scriptRunner{posts: []func() ([]byte, error){answer(200, "-"), answer(409, "-")}}
	a, _ := senderAgent(t, r)
	r.onPost = func(n int) {
		if n == 0 {
			if err := a.Root.WriteAtomic(plan.OutboxPath, []byte(`{"result":"hardened","stage":"check"}`), 0o600, ""); err != nil {
				t.Fatal(err)
			}
		}
	}
	d, err := a.Deliver(Backoff{First: time.Second, Max: time.Second, Attempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	if d.Attempts != 2 || d.Result != DeliveryRefused || a.Root.Exists(plan.OutboxPath) {
		t.Fatalf("delivery %+v, outbox kept %v", d, a.Root.Exists(plan.OutboxPath))
	}
}

func TestDeliverOneSenderAtATime(t *testing.T) {
	r := &scriptRunner{}
	a, _ := senderAgent(t, r)
	unlock, err := a.lockSender()
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	d, err := a.Deliver(DefaultBackoff())
	if err != nil || d.Attempts != 0 || len(r.calls) != 0 {
		t.Fatalf("second sender: %+v, %v, calls %q", d, err, r.calls)
	}
	if !a.Root.Exists(plan.OutboxPath) {
		t.Fatal("outbox gone")
	}
}

func TestDeliverNothingQueued(t *testing.T) {
	r := &scriptRunner{}
	a, _ := senderAgent(t, r)
	if err := a.Root.Remove(plan.OutboxPath); err != nil {
		t.Fatal(err)
	}
	if d, err := a.Deliver(DefaultBackoff()); err != nil || d.Attempts != 0 || len(r.calls) != 0 {
		t.Fatalf("%+v, %v, calls %q", d, err, r.calls)
	}
	if err := a.Root.Remove(plan.ReportEndpointPath); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Deliver(DefaultBackoff()); err == nil || !strings.Contains(err.Error(), "no report endpoint") {
		t.Fatalf("no endpoint: %v", err)
	}
}

func TestQueueReport(t *testing.T) {
	report := []byte(`{"result":"hardened"}` + "\n")
	t.Run("no endpoint: stays on the machine", func(t *testing.T) {
		r := &scriptRunner{}
		a, _ := senderAgent(t, r)
		_ = a.Root.Remove(plan.ReportEndpointPath)
		_ = a.Root.Remove(plan.OutboxPath)
		if err := a.queueReport(report); err != nil || len(r.calls) != 0 || a.Root.Exists(plan.OutboxPath) {
			t.Fatalf("%v, calls %q", err, r.calls)
		}
	})
	t.Run("transient unit", func(t *testing.T) {
		r := &scriptRunner{}
		a, _ := senderAgent(t, r)
		if err := a.queueReport(report); err != nil {
			t.Fatal(err)
		}
		if got, _ := a.Root.ReadFile(plan.OutboxPath); string(got) != string(report) {
			t.Fatalf("outbox %q", got)
		}
		if len(r.calls) != 1 || r.calls[0][0] != "systemd-run" || !slices.Contains(r.calls[0], "--no-block") ||
			!slices.Equal(r.calls[0][len(r.calls[0])-2:], []string{plan.AgentPath, "send-report"}) {
			t.Fatalf("calls %q", r.calls)
		}
	})
	t.Run("systemd-run fails: own session", func(t *testing.T) {
		r := &scriptRunner{fail: map[string]error{"systemd-run": errors.New("Unit hardbake-report.service already exists")}}
		a, _ := senderAgent(t, r)
		if err := a.queueReport(report); err != nil {
			t.Fatal(err)
		}
		if len(r.calls) != 2 || r.calls[1][0] != "sh" || r.calls[1][3] != plan.AgentPath {
			t.Fatalf("calls %q", r.calls)
		}
	})
	t.Run("no systemd-run", func(t *testing.T) {
		r := &scriptRunner{missing: map[string]bool{"systemd-run": true}}
		a, _ := senderAgent(t, r)
		if err := a.queueReport(report); err != nil || len(r.calls) != 1 || r.calls[0][0] != "sh" {
			t.Fatalf("%v, calls %q", err, r.calls)
		}
	})
	t.Run("cannot start a sender", func(t *testing.T) {
		r := &scriptRunner{fail: map[string]error{"systemd-run": errors.New("no bus"), "sh": errors.New("no sh")}}
		a, _ := senderAgent(t, r)
		if err := a.queueReport(report); err == nil || !strings.Contains(err.Error(), "no bus") || !strings.Contains(err.Error(), "no sh") {
			t.Fatalf("err %v", err)
		}
		if !a.Root.Exists(plan.OutboxPath) {
			t.Fatal("report not kept in the outbox")
		}
	})
}

// TestResumeDelivery: the early stage of a later boot starts the sender
// only while a report waits.
func TestResumeDelivery(t *testing.T) {
	r := &scriptRunner{}
	a, _ := senderAgent(t, r)
	if err := a.resumeDelivery(); err != nil || len(r.calls) != 1 {
		t.Fatalf("%v, calls %q", err, r.calls)
	}
	_ = a.Root.Remove(plan.OutboxPath)
	if err := a.resumeDelivery(); err != nil || len(r.calls) != 1 {
		t.Fatalf("%v, calls %q", err, r.calls)
	}
}

// TestDeliverRealPython: the real python3 posts to a server that checks
// the signature as the wire format says; a 503 with Retry-After is
// retried after that long, then the 200 ends it.
func TestDeliverRealPython(t *testing.T) {
	testtool.Require(t, "python3")
	key := strings.Repeat("5a", 32)
	body := []byte(`{"result":"hardened","instance_id":"i-1"}` + "\n")
	var seen []string
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ := io.ReadAll(r.Body)
		k, _ := hex.DecodeString(key)
		m := hmac.New(sha256.New, k)
		ts, nonce := r.Header.Get("Hardbake-Timestamp"), r.Header.Get("Hardbake-Nonce")
		m.Write([]byte("hardbake-report-v1\nord-1\n" + ts + "\n" + nonce + "\n"))
		m.Write(got)
		ok := r.Method == "POST" && r.URL.Path == "/report/ord-1" && string(got) == string(body) &&
			r.Header.Get("Content-Type") == "application/json" && len(nonce) >= 16 && !slices.Contains(seen, nonce) &&
			hmac.Equal([]byte(r.Header.Get("Hardbake-Signature")), []byte("v1="+hex.EncodeToString(m.Sum(nil))))
		seen = append(seen, nonce)
		n++
		switch {
		case !ok:
			http.Error(w, "bad signature", http.StatusForbidden)
		case n == 1:
			w.Header().Set("Retry-After", "7")
			http.Error(w, "busy", http.StatusServiceUnavailable)
		default:
			fmt.Fprintln(w, `{"status": "hardened"}`)
		}
	}))
	defer srv.Close()
	a, sleeps := senderAgent(t, ExecRunner{Timeout: time.Minute})
	data, _ := json.Marshal(map[string]string{"url": srv.URL + "/report/ord-1", "order_id": "ord-1", "key": key})
	if err := a.Root.WriteAtomic(plan.ReportEndpointPath, data, 0o600, ""); err != nil {
		t.Fatal(err)
	}
	if err := a.Root.WriteAtomic(plan.OutboxPath, body, 0o600, ""); err != nil {
		t.Fatal(err)
	}
	d, err := a.Deliver(Backoff{First: time.Second, Max: time.Minute, Attempts: 4})
	if err != nil {
		t.Fatal(err)
	}
	if d.Result != DeliverySent || d.Status != 200 || d.Attempts != 2 || d.Answer != `{"status": "hardened"}` {
		t.Fatalf("delivery %+v", d)
	}
	if !slices.Equal(*sleeps, []time.Duration{7 * time.Second}) {
		t.Fatalf("slept %v, want the Retry-After", *sleeps)
	}

	// Nothing listening: an error, no status, retried to the bound.
	srv.Close()
	if err := a.Root.WriteAtomic(plan.OutboxPath, body, 0o600, ""); err != nil {
		t.Fatal(err)
	}
	d, err = a.Deliver(Backoff{First: time.Second, Max: time.Minute, Attempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	if d.Result != DeliveryPending || d.Status != 0 || d.Error == "" || !a.Root.Exists(plan.OutboxPath) {
		t.Fatalf("delivery %+v", d)
	}
}

// FuzzParsePostOutput: any output of the post (a python3 that printed
// something unexpected) gives a status in 100–599 with a Retry-After in
// 0–24 h, or an error; never a panic.
func FuzzParsePostOutput(f *testing.F) {
	for _, s := range []string{"200 -\n{}\n", "429 10\nslow down\n", "503 Wed, 21 Oct 2026 07:28:00 GMT\n", "", "Traceback\n", "600 -\n", "200 -1\n", "200 99999999999999999999\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, out string) {
		status, after, answer, err := parsePostOutput(out)
		if err != nil {
			if status != 0 || after != 0 || answer != "" {
				t.Fatalf("error %v with values %d %v %q", err, status, after, answer)
			}
			return
		}
		if status < 100 || status > 599 || after < 0 || after > 24*time.Hour {
			t.Fatalf("status %d, retry after %v", status, after)
		}
	})
}
