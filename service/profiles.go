package service

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"hardbake.dev/hardbake/config"
)

// profileNameRE is config's rule for metadata.name.
var profileNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// ProfileResponse is a profile revision as the API shows it.
type ProfileResponse struct {
	Name      string    `json:"name"`
	Revision  int       `json:"revision"`
	SHA256    string    `json:"sha256"`
	CreatedAt time.Time `json:"created_at"`
	Document  string    `json:"document,omitempty"`
}

func profileResponse(p ProfileRevision) ProfileResponse {
	return ProfileResponse{Name: p.Name, Revision: p.Revision, SHA256: p.SHA256, CreatedAt: p.CreatedAt.UTC(), Document: string(p.Doc)}
}

// putProfile stores a new revision after the CLI's own decoding and
// validation. The same document as the latest revision stores nothing and
// answers 200 with that revision (a retried PUT does not pile up
// revisions); anything else is a new revision, 201.
func (s *Server) putProfile(w http.ResponseWriter, r *http.Request) *apiError {
	name := r.PathValue("name")
	if !profileNameRE.MatchString(name) {
		return errorf(http.StatusBadRequest, "profile name %q: want lower-case letters, digits and hyphens (at most 63)", name)
	}
	body, aerr := readBody(w, r, MaxProfileBytes)
	if aerr != nil {
		return aerr
	}
	file := "profiles/" + name
	p, err := config.DecodeProfile(file, body)
	if err != nil {
		if d := diagnosticsOf(err, file, nil); d != nil {
			return &apiError{status: http.StatusUnprocessableEntity, msg: "invalid profile", diags: d}
		}
		return internal(err)
	}
	if p.Metadata.Name != name {
		pos := lookupPos(bodyPositions(body), "metadata.name")
		return &apiError{status: http.StatusUnprocessableEntity, msg: "invalid profile", diags: []Diagnostic{{
			Code: CodeMismatch, Severity: "error", File: file, Path: "metadata.name", Line: pos.Line, Column: pos.Col,
			Message: fmt.Sprintf("is %q but the URL names profile %q", p.Metadata.Name, name)}}}
	}
	rev, created, err := s.cfg.Store.PutProfile(r.Context(), name, body)
	if err != nil {
		return storeError(err, "profile")
	}
	if created {
		// Orders need not find out from a failed insert (ErrStale).
		s.profiles.forgetLatest(name)
	}
	rev.Doc = nil
	if !created {
		writeJSON(w, http.StatusOK, profileResponse(rev))
		return nil
	}
	w.Header().Set("Location", fmt.Sprintf("/v1/profiles/%s?revision=%d", name, rev.Revision))
	writeJSON(w, http.StatusCreated, profileResponse(rev))
	return nil
}

func (s *Server) getProfile(w http.ResponseWriter, r *http.Request) *apiError {
	name := r.PathValue("name")
	if !profileNameRE.MatchString(name) {
		return errorf(http.StatusBadRequest, "profile name %q: want lower-case letters, digits and hyphens", name)
	}
	rev := 0
	if v := r.URL.Query().Get("revision"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return errorf(http.StatusBadRequest, "revision=%q: want a positive integer", v)
		}
		rev = n
	}
	p, err := s.cfg.Store.Profile(r.Context(), name, rev)
	if err != nil {
		return storeError(err, "profile")
	}
	writeJSON(w, http.StatusOK, profileResponse(p))
	return nil
}

func (s *Server) listProfiles(w http.ResponseWriter, r *http.Request) *apiError {
	ps, err := s.cfg.Store.Profiles(r.Context())
	if err != nil {
		return storeError(err, "profiles")
	}
	out := make([]ProfileResponse, len(ps))
	for i, p := range ps {
		p.Doc = nil
		out[i] = profileResponse(p)
	}
	writeJSON(w, http.StatusOK, map[string]any{"profiles": out})
	return nil
}
