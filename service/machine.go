package service

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strconv"

	"hardbake.dev/hardbake/config"
	"hardbake.dev/hardbake/plan"
	"hardbake.dev/hardbake/render"
)

func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// tokenRE is the shape of a NoCloud-Net token (see Secrets.Token); other
// paths are refused before any database work.
var tokenRE = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

// nocloud serves cloud-init's NoCloud-Net datasource. The token in the path
// is the only credential (cloud-init cannot send a header); it is looked up
// by its hash. vendor-data is an empty 200, since cloud-init 22.4 retries a
// 404 ten times, a second apart. The first fetch of an order moves it from
// created to fetched.
func (s *Server) nocloud(w http.ResponseWriter, r *http.Request) *apiError {
	tok, file := r.PathValue("token"), r.PathValue("file")
	switch file {
	case "meta-data", "user-data", "vendor-data", "network-config":
	default:
		return errorf(http.StatusNotFound, "not found")
	}
	if !tokenRE.MatchString(tok) {
		return errorf(http.StatusNotFound, "not found")
	}
	o, err := s.cfg.Store.OrderByTokenHash(r.Context(), TokenHash(tok))
	switch {
	case isNotFound(err):
		return errorf(http.StatusNotFound, "not found")
	case errors.Is(err, ErrRevoked):
		return errorf(http.StatusGone, "revoked")
	case err != nil:
		return storeError(err, "order")
	}
	if o.Revoked { // a store that finds revoked orders by token
		return errorf(http.StatusGone, "revoked")
	}
	var data []byte
	if file != "vendor-data" {
		var ok bool
		if data, ok = o.Files[file]; !ok {
			return errorf(http.StatusNotFound, "not found")
		}
	}
	if o.FetchedAt.IsZero() {
		if err := s.cfg.Store.MarkFetched(r.Context(), o.ID); err != nil {
			return storeError(err, "order")
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	_, _ = w.Write(data)
	return nil
}

// agentBinary serves the agent for agent: url orders. It is public and
// content-addressed: the binary is no secret, and the user-data pins its
// sha256, so only the exact bytes are served.
func (s *Server) agentBinary(w http.ResponseWriter, r *http.Request) *apiError {
	sum, name := r.PathValue("sha256"), r.PathValue("name")
	bin, ok := s.cfg.Agents.bySum(sum)
	if !ok {
		return errorf(http.StatusNotFound, "not found")
	}
	match := false
	for _, arch := range Arches {
		if a, ok := s.cfg.Agents.forArch(arch); ok && bytes.Equal(a, bin) && name == render.SeedName(arch) {
			match = true
		}
	}
	if !match {
		return errorf(http.StatusNotFound, "not found")
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(bin)))
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	_, _ = w.Write(bin)
	return nil
}

// reportStatus maps a report's result to the order's status.
var reportStatus = map[string]string{
	plan.ResultHardened: StatusHardened,
	plan.ResultPartial:  StatusPartial,
	plan.ResultFailed:   StatusFailed,
}

// report accepts a machine's signed report (wire format: see sign.go).
// Nothing changes unless the rate limit, the size limit, the signature, the
// timestamp window, the nonce, and the report's own content all pass.
func (s *Server) report(w http.ResponseWriter, r *http.Request) *apiError {
	id := r.PathValue("id")
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if !s.limiter.allow("ip:"+host, "order:"+id) {
		w.Header().Set("Retry-After", "10")
		return errorf(http.StatusTooManyRequests, "too many reports; retry later")
	}
	if !validOrderID(id) {
		return errorf(http.StatusNotFound, "order not found")
	}
	body, aerr := readBody(w, r, MaxReportBytes)
	if aerr != nil {
		return aerr
	}
	nonce, ts, sig, err := verifyReport(s.cfg.Secrets.ReportKey(id), id, r.Header, body, s.now())
	switch {
	case errors.Is(err, errSigMissing), errors.Is(err, errSigMalformed):
		return errorf(http.StatusBadRequest, "%v", err)
	case err != nil:
		return errorf(http.StatusForbidden, "report refused: %v", err)
	}
	// The signature proves the sender holds this order's key, so from
	// here on answers may say what is wrong.
	var rep plan.Report
	if d := decodeStrictJSON(body, &rep); d != nil {
		return &apiError{status: http.StatusBadRequest, msg: "malformed report", diags: d}
	}
	o, err := s.cfg.Store.Order(r.Context(), id)
	if err != nil {
		return storeError(err, "order")
	}
	var diags []Diagnostic
	bad := func(path, code, format string, args ...any) {
		diags = append(diags, Diagnostic{Code: code, Severity: "error", File: "report", Path: path, Message: fmt.Sprintf(format, args...)})
	}
	status, ok := reportStatus[rep.Result]
	if !ok {
		bad("result", string(config.CodeInvalidChoice), "%q is not a final result (hardened, partial, failed)", rep.Result)
	}
	if rep.InstanceID != o.InstanceID {
		bad("instance_id", CodeMismatch, "%q is not this order's instance (%s)", rep.InstanceID, o.InstanceID)
	}
	if rep.PlanDigest != o.PlanDigest {
		bad("plan_digest", CodeMismatch, "%q is not the digest of this order's plan", rep.PlanDigest)
	}
	if len(diags) > 0 {
		return &apiError{status: http.StatusUnprocessableEntity, msg: "report does not fit the order", diags: diags}
	}
	if o.Revoked {
		return errorf(http.StatusGone, "order %s is cancelled", id)
	}
	rec := ReportRecord{OrderID: id, Status: status, Nonce: nonce, Timestamp: ts, Signature: sig, Body: body}
	for _, k := range rep.HostKeys {
		rec.HostKeys = append(rec.HostKeys, HostKey{Type: k.Type, Fingerprint: k.Fingerprint})
	}
	updated, err := s.cfg.Store.AddReport(r.Context(), rec)
	if err != nil {
		return storeError(err, "report")
	}
	// A hardened machine gets its snapshot (backup.snapshotWhenHardened):
	// the apply runs again in the background, the answer never waits.
	if updated.Status == StatusHardened {
		if _, full := s.queueSnapshot(r.Context(), updated); full {
			s.log.Warn("edge apply queue full: the snapshot of a hardened order is left pending", "order", id)
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"id": updated.ID, "status": updated.Status})
	return nil
}
