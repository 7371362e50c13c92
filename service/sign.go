package service

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The report wire format (version 1). The machine sends its report (the
// agent's plan.Report JSON, unchanged) as
//
//	POST /report/{order_id}
//	Content-Type: application/json
//	Hardbake-Timestamp: 1764633600            (Unix seconds, decimal)
//	Hardbake-Nonce: 3f0c9e51b2a8d4c7e6f10a2b  (16–64 characters of [A-Za-z0-9_-], fresh per attempt)
//	Hardbake-Signature: v1=<64 lowercase hex digits>
//
//	<body: the report JSON, at most MaxReportBytes>
//
// where the signature is HMAC-SHA256, keyed with the order's 32-byte report
// key (handed to the machine as 64 hex digits), over
//
//	"hardbake-report-v1\n" + order_id + "\n" + timestamp + "\n" + nonce + "\n" + body
//
// Binding the order id means a report signed for one order is refused for
// every other; the timestamp must be within ReportWindow of the service's
// clock, and a nonce is accepted once per order, so a captured request
// cannot be replayed. Headers rather than body fields keep the body the
// agent's report byte for byte; python3's hmac and urllib (on every Debian
// image, and what the launcher already uses for url=) do all of it:
//
//	key = bytes.fromhex(KEY); ts = str(int(time.time())); nonce = secrets.token_hex(16)
//	msg = b"hardbake-report-v1\n" + ID.encode() + b"\n" + ts.encode() + b"\n" + nonce.encode() + b"\n" + body
//	sig = "v1=" + hmac.new(key, msg, hashlib.sha256).hexdigest()
const (
	HeaderTimestamp = "Hardbake-Timestamp"
	HeaderNonce     = "Hardbake-Nonce"
	HeaderSignature = "Hardbake-Signature"

	signaturePrefix = "v1="
	signatureDomain = "hardbake-report-v1\n"

	// ReportWindow is how far a report's timestamp may be from the
	// service's clock, either way (clock skew of a freshly booted machine
	// before NTP, plus retries).
	ReportWindow = 5 * time.Minute
	// MaxReportBytes bounds a report body; a real one is a few KiB.
	MaxReportBytes = 64 << 10
	// ReportKeySize is the length of a report key in bytes.
	ReportKeySize = 32
)

// SignedReport is a report ready to send: the headers to set and the body.
type SignedReport struct {
	Timestamp string
	Nonce     string
	Signature string
	Body      []byte
}

// Header returns the three request headers.
func (s SignedReport) Header() http.Header {
	h := http.Header{}
	h.Set(HeaderTimestamp, s.Timestamp)
	h.Set(HeaderNonce, s.Nonce)
	h.Set(HeaderSignature, s.Signature)
	return h
}

// SignReport signs body for orderID with key (32 bytes) at time at with
// nonce. It is the reference implementation of the wire format for the
// machine side and the tests.
func SignReport(key []byte, orderID string, at time.Time, nonce string, body []byte) (SignedReport, error) {
	if len(key) != ReportKeySize {
		return SignedReport{}, fmt.Errorf("report key is %d bytes, want %d", len(key), ReportKeySize)
	}
	if !validNonce(nonce) {
		return SignedReport{}, fmt.Errorf("nonce %q: want 16–64 characters of [A-Za-z0-9_-]", nonce)
	}
	ts := strconv.FormatInt(at.Unix(), 10)
	return SignedReport{Timestamp: ts, Nonce: nonce, Signature: signaturePrefix + hex.EncodeToString(reportMAC(key, orderID, ts, nonce, body)), Body: body}, nil
}

func reportMAC(key []byte, orderID, ts, nonce string, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(signatureDomain))
	m.Write([]byte(orderID + "\n" + ts + "\n" + nonce + "\n"))
	m.Write(body)
	return m.Sum(nil)
}

func validNonce(s string) bool {
	if len(s) < 16 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Why a report's signature was refused. Each is a 400 (malformed) or a 403
// (well-formed but not valid for this order now).
var (
	errSigMissing   = errors.New("missing Hardbake-Timestamp, Hardbake-Nonce or Hardbake-Signature header")
	errSigMalformed = errors.New("malformed signature headers")
	errSigStale     = errors.New("timestamp outside the accepted window")
	errSigBad       = errors.New("signature does not match")
)

// verifyReport checks the signature headers of a report for orderID. It
// compares MACs in constant time and checks the signature before the
// timestamp so a forger learns nothing from the answer's timing or kind.
func verifyReport(key []byte, orderID string, h http.Header, body []byte, now time.Time) (nonce string, at time.Time, mac []byte, err error) {
	ts, nonce, sig := h.Get(HeaderTimestamp), h.Get(HeaderNonce), h.Get(HeaderSignature)
	if ts == "" || nonce == "" || sig == "" {
		return "", time.Time{}, nil, errSigMissing
	}
	sec, perr := strconv.ParseInt(ts, 10, 64)
	hexSig, ok := strings.CutPrefix(sig, signaturePrefix)
	got, herr := hex.DecodeString(hexSig)
	if perr != nil || !ok || herr != nil || len(got) != sha256.Size || !validNonce(nonce) || strconv.FormatInt(sec, 10) != ts {
		return "", time.Time{}, nil, errSigMalformed
	}
	if !hmac.Equal(got, reportMAC(key, orderID, ts, nonce, body)) {
		return "", time.Time{}, nil, errSigBad
	}
	at = time.Unix(sec, 0)
	if d := now.Sub(at); d > ReportWindow || d < -ReportWindow {
		return "", time.Time{}, nil, errSigStale
	}
	return nonce, at, got, nil
}
