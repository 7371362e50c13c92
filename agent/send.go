package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"time"

	"hardbake.dev/hardbake/plan"
)

// Sending the report home (an order from hardbaked): after the late stage
// and after check, the report is copied to plan.OutboxPath and a sender is
// started in the background (`hardbake-firstboot send-report`, as a
// transient systemd unit), so boot never waits for the network. The sender
// posts the outbox until the service answers for good, with a bounded
// exponential backoff; what is not delivered stays in the outbox, and the
// early stage of the next boot starts the sender again.
//
// The agent itself has no HTTP client and no HMAC: net and crypto/sha256
// would cost ~740 KiB of a budget that google/nftables is about to use up
// (docs/bench/agent.md). One signed POST is a few lines of python3, which
// every cloud image has (cloud-init is Python); the agent runs PostPy once
// per attempt and keeps the retry logic, which its tests drive.

// PostPy signs and posts one report, per the wire format of
// docs/hardbaked.md: HMAC-SHA256(key, "hardbake-report-v1\n" + order_id +
// "\n" + timestamp + "\n" + nonce + "\n" + body), sent as
// "Hardbake-Signature: v1=HEX" with Hardbake-Timestamp and Hardbake-Nonce.
//
//	python3 -I -c PostPy post ENDPOINT_FILE BODY_FILE
//	python3 -I -c PostPy sign ENDPOINT_FILE BODY_FILE TIMESTAMP NONCE
//
// post prints "STATUS RETRY_AFTER" (RETRY_AFTER "-" when absent) and the
// first KiB of the answer on a second line; it exits 1 with the reason on
// stderr when no HTTP answer came. sign prints the signature header value
// (the test vectors' mode). The key never appears on a command line.
const PostPy = `import hashlib, hmac, json, secrets, sys, time, urllib.error, urllib.request
def sign(key, oid, ts, nonce, body):
    msg = b"hardbake-report-v1\n" + oid.encode() + b"\n" + ts.encode() + b"\n" + nonce.encode() + b"\n" + body
    return "v1=" + hmac.new(key, msg, hashlib.sha256).hexdigest()
with open(sys.argv[2], "rb") as f:
    ep = json.load(f)
with open(sys.argv[3], "rb") as f:
    body = f.read()
key, oid = bytes.fromhex(ep["key"]), ep["order_id"]
if sys.argv[1] == "sign":
    print(sign(key, oid, sys.argv[4], sys.argv[5], body))
    sys.exit(0)
ts, nonce = str(int(time.time())), secrets.token_hex(16)
req = urllib.request.Request(ep["url"], data=body, method="POST", headers={
    "Content-Type": "application/json", "Hardbake-Timestamp": ts, "Hardbake-Nonce": nonce,
    "Hardbake-Signature": sign(key, oid, ts, nonce, body)})
try:
    with urllib.request.urlopen(req, timeout=30) as r:
        code, after, text = r.status, r.headers.get("Retry-After"), r.read(1024)
except urllib.error.HTTPError as e:
    code, after, text = e.code, e.headers.get("Retry-After"), e.read(1024)
except (OSError, ValueError) as e:
    print("post %s: %s" % (ep["url"], e), file=sys.stderr)
    sys.exit(1)
print(code, (after or "-").strip() or "-")
print(text.decode("utf-8", "replace").replace("\n", " ").strip())
`

// Delivery results in plan.DeliveryPath.
const (
	DeliverySent    = "sent"    // the service accepted the report
	DeliveryRefused = "refused" // the service answered for good: no retry helps
	DeliveryPending = "pending" // no final answer within the bound; the report stays in the outbox
)

// Delivery is how the last delivery attempt series ended.
type Delivery struct {
	Result   string `json:"result"`
	Status   int    `json:"status,omitempty"` // HTTP status of the last answer
	Answer   string `json:"answer,omitempty"` // the start of the last answer's body
	Error    string `json:"error,omitempty"`  // why the last attempt got no answer
	Attempts int    `json:"attempts"`
	Unix     int64  `json:"at"` // when it ended, Unix seconds
}

// Backoff bounds the retries of one sender run.
type Backoff struct {
	First    time.Duration // wait after the first failed attempt
	Max      time.Duration // cap of one wait (and of a Retry-After)
	Attempts int           // attempts per sender run
}

// DefaultBackoff: 5 s doubling to 10 min, 50 attempts: about 7 hours of
// trying, then the report waits in the outbox for the next boot.
func DefaultBackoff() Backoff {
	return Backoff{First: 5 * time.Second, Max: 10 * time.Minute, Attempts: 50}
}

// Delay is the wait after failed attempt n (0-based): First·2ⁿ capped at
// Max, and never shorter than the service's Retry-After (capped too).
func (b Backoff) Delay(n int, retryAfter time.Duration) time.Duration {
	d := b.First
	for i := 0; i < n && d < b.Max; i++ {
		d *= 2
	}
	d = max(d, retryAfter)
	return min(d, b.Max)
}

// finalStatus reports whether an HTTP answer ends the delivery: accepted
// (2xx), or refused in a way no retry changes: malformed (400), unknown
// order (404), already reported or final (409), cancelled (410), too large
// (413), not this order's report (422). Everything else is retried: 403
// too, since a machine whose clock is off (before NTP) gets "timestamp
// outside the window" until it is set; 429 and 5xx by their nature.
func finalStatus(code int) bool {
	switch {
	case code >= 200 && code < 300:
		return true
	case code == 400, code == 404, code == 409, code == 410, code == 413, code == 422:
		return true
	}
	return false
}

// sendingPath is the snapshot one attempt posts: the outbox may be
// replaced by a newer report while the attempt runs.
const sendingPath = plan.StateDir + "/report-sending.json"

// senderLockPath keeps to one sender at a time.
const senderLockPath = plan.StateDir + "/report-sender.lock"

// senderUnit is the transient unit the sender runs in.
const senderUnit = "hardbake-report"

// queueReport puts report in the outbox and starts the sender, when the
// order has a report endpoint. It never waits for the network.
func (a *Agent) queueReport(report []byte) error {
	if !a.Root.Exists(plan.ReportEndpointPath) {
		return nil
	}
	if err := a.Root.WriteAtomic(plan.OutboxPath, report, 0o600, ""); err != nil {
		return fmt.Errorf("queue report: %w", err)
	}
	return a.startSender()
}

// resumeDelivery starts the sender when a report is still in the outbox
// (the machine rebooted before it was delivered).
func (a *Agent) resumeDelivery() error {
	if !a.Root.Exists(plan.OutboxPath) || !a.Root.Exists(plan.ReportEndpointPath) {
		return nil
	}
	return a.startSender()
}

// startSender runs `hardbake-firstboot send-report` detached: as a
// transient systemd unit (its own cgroup and journal, outside cloud-init's
// units; a simple service, so nothing in boot waits for it), else as its
// own session. A sender already running picks the new report up at its
// next attempt; the lock keeps a second one from starting.
func (a *Agent) startSender() error {
	var errs []error
	if has(a.Runner, "systemd-run") {
		_, err := a.Runner.Run("systemd-run", "--no-block", "--quiet", "--collect",
			"--unit="+senderUnit, "--description=hardbake: send the first-boot report home",
			"--property=StandardOutput=journal+console", plan.AgentPath, "send-report")
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	_, err := a.Runner.Run("sh", "-c", `setsid "$0" send-report </dev/null >/dev/null 2>&1 &`, plan.AgentPath)
	if err == nil {
		return nil
	}
	return errors.Join(append(errs, fmt.Errorf("start the report sender: %w", err))...)
}

// errSenderBusy: another sender holds the lock.
var errSenderBusy = errors.New("another report sender is running")

func (a *Agent) lockSender() (func(), error) {
	p := a.Root.Path(senderLockPath)
	if err := sysMkdirAll(a.Root.Path(plan.StateDir), 0o700); err != nil {
		return nil, err
	}
	fd, err := syscall.Open(p, syscall.O_CREAT|syscall.O_RDWR|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", p, err)
	}
	if err := syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		syscall.Close(fd)
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errSenderBusy
		}
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	return func() { syscall.Close(fd) }, nil
}

// Deliver posts the outbox until the service answers for good or the
// backoff's attempts are used up, and records the end in
// plan.DeliveryPath. A report queued meanwhile is sent next. Nothing in
// the outbox is not an error; neither is another sender holding the lock.
func (a *Agent) Deliver(b Backoff) (Delivery, error) {
	unlock, err := a.lockSender()
	if errors.Is(err, errSenderBusy) {
		fmt.Fprintln(a.Out, "hardbake: report sender already running")
		return Delivery{}, nil
	}
	if err != nil {
		return Delivery{}, err
	}
	defer unlock()
	if !a.Root.Exists(plan.ReportEndpointPath) {
		return Delivery{}, fmt.Errorf("no report endpoint (%s): this machine's order names no service", plan.ReportEndpointPath)
	}
	var d Delivery
	for {
		body, err := a.Root.ReadFile(plan.OutboxPath)
		if errors.Is(err, syscall.ENOENT) {
			return d, nil
		}
		if err != nil {
			return d, err
		}
		if err := a.Root.WriteAtomic(sendingPath, body, 0o600, ""); err != nil {
			return d, err
		}
		status, retryAfter, answer, perr := a.post()
		d.Attempts++
		d.Status, d.Answer, d.Error = status, answer, ""
		if perr != nil {
			d.Status, d.Error = 0, perr.Error()
		}
		if perr == nil && finalStatus(status) {
			d.Result = DeliveryRefused
			if status >= 200 && status < 300 {
				d.Result = DeliverySent
			}
			if cur, err := a.Root.ReadFile(plan.OutboxPath); err == nil && bytes.Equal(cur, body) {
				if err := a.Root.Remove(plan.OutboxPath); err != nil {
					return d, err
				}
			}
			_ = a.Root.Remove(sendingPath)
			if err := a.recordDelivery(d); err != nil {
				return d, err
			}
			fmt.Fprintln(a.Out, deliverySummary(d))
			continue // a newer report may have been queued meanwhile
		}
		if d.Attempts >= b.Attempts {
			d.Result = DeliveryPending
			fmt.Fprintln(a.Out, deliverySummary(d))
			return d, a.recordDelivery(d)
		}
		a.Sleep(b.Delay(d.Attempts-1, retryAfter))
	}
}

func (a *Agent) recordDelivery(d Delivery) error {
	d.Unix = time.Now().Unix()
	data, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return err
	}
	return a.Root.WriteAtomic(plan.DeliveryPath, append(data, '\n'), 0o600, "")
}

func deliverySummary(d Delivery) string {
	switch {
	case d.Result == DeliverySent:
		return fmt.Sprintf("hardbake: report sent (HTTP %d, attempt %d)", d.Status, d.Attempts)
	case d.Result == DeliveryRefused:
		return fmt.Sprintf("hardbake: report refused (HTTP %d, attempt %d): %s", d.Status, d.Attempts, oneLine(d.Answer))
	case d.Error != "":
		return fmt.Sprintf("hardbake: report not delivered after %d attempts, kept in %s: %s", d.Attempts, plan.OutboxPath, oneLine(d.Error))
	}
	return fmt.Sprintf("hardbake: report not delivered after %d attempts (last HTTP %d), kept in %s", d.Attempts, d.Status, plan.OutboxPath)
}

// post runs one signed POST of the snapshot and parses PostPy's answer.
func (a *Agent) post() (status int, retryAfter time.Duration, answer string, err error) {
	out, err := a.Runner.Run("python3", "-I", "-c", PostPy, "post",
		a.Root.Path(plan.ReportEndpointPath), a.Root.Path(sendingPath))
	if err != nil {
		return 0, 0, "", err
	}
	return parsePostOutput(string(out))
}

// parsePostOutput reads "STATUS RETRY_AFTER\nANSWER". A Retry-After that
// is not a number of seconds (an HTTP date) counts as none.
func parsePostOutput(out string) (int, time.Duration, string, error) {
	first, answer, _ := strings.Cut(out, "\n")
	f := strings.Fields(first)
	if len(f) != 2 {
		return 0, 0, "", fmt.Errorf("unexpected output of the report post: %q", first)
	}
	code, err := strconv.Atoi(f[0])
	if err != nil || code < 100 || code > 599 {
		return 0, 0, "", fmt.Errorf("unexpected HTTP status in the report post's output: %q", first)
	}
	var after time.Duration
	if s, err := strconv.Atoi(f[1]); err == nil && s > 0 {
		after = time.Duration(min(s, 86400)) * time.Second
	}
	return code, after, strings.TrimSpace(answer), nil
}
