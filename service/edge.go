package service

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"hardbake.dev/hardbake/bake"
	"hardbake.dev/hardbake/config"
	"hardbake.dev/hardbake/edge"
	"hardbake.dev/hardbake/edge/fromconfig"
	"hardbake.dev/hardbake/render"
)

// orderEdge serves GET /v1/orders/{id}/edge?provider=NAME[&ip=ADDR][&vps=NAME]
// and GET /v1/orders/{id}/backup[?provider=…]: the same document `hardbake
// edge` prints, from the order's stored request and profile revision
// rendered again through bake (so the SSH port is the order's).
func (s *Server) orderEdge(w http.ResponseWriter, r *http.Request) *apiError {
	id := r.PathValue("id")
	if !validOrderID(id) {
		return errorf(http.StatusNotFound, "order not found")
	}
	q := r.URL.Query()
	provider := q.Get("provider")
	if !slices.Contains(edge.Providers(), provider) {
		return errorf(http.StatusBadRequest, "provider: %q is not one of %s", provider, strings.Join(edge.Providers(), ", "))
	}
	opts := edge.Options{ServiceName: q.Get("vps")}
	if v := q.Get("ip"); v != "" {
		ip, err := netip.ParseAddr(v)
		if err != nil || !ip.Is4() {
			return errorf(http.StatusBadRequest, "ip: %q is not an IPv4 address", v)
		}
		opts.IP = ip
	}
	o, err := s.cfg.Store.Order(r.Context(), id)
	if err != nil {
		return storeError(err, "order")
	}
	if o.Revoked {
		return errorf(http.StatusGone, "order %s is cancelled", id)
	}
	res, aerr := s.rebake(r.Context(), o)
	if aerr != nil {
		return aerr
	}
	in, err := fromconfig.Input(res.Profile, res.Machine, res.Plan)
	if err != nil {
		return internal(fmt.Errorf("edge input for order %s: %w", id, err))
	}
	doc, err := edge.Build(provider, in, res.Profile.Edge, res.Profile.Backup, opts)
	if err != nil {
		if d := diagnosticsOf(fromconfig.ConfigError(err, "profile", nil), "request", nil); d != nil {
			return s.invalid(d, nil)
		}
		return internal(err)
	}
	var body any = doc
	if strings.HasSuffix(r.URL.Path, "/backup") {
		if res.Profile.Backup == nil {
			return errorf(http.StatusNotFound, "profile %s@%d has no backup: section", o.Profile, o.ProfileRevision)
		}
		body = edge.BuildBackup(res.Profile.Backup, in, opts)
	}
	out, err := edge.Encode(body)
	if err != nil {
		return internal(err)
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out)
	return nil
}

// rebake renders a stored order again: its canonical request, its profile
// revision, the agent it was made with. A result whose SSH port differs
// from the stored one would describe another machine, so it is refused.
func (s *Server) rebake(ctx context.Context, o Order) (*bake.Result, *apiError) {
	var req OrderRequest
	if err := json.Unmarshal(o.Request, &req); err != nil {
		return nil, internal(fmt.Errorf("order %s: stored request: %w", o.ID, err))
	}
	_, prof, err := s.profile(ctx, o.Profile, o.ProfileRevision)
	if err != nil {
		var fe profileDiags
		if errors.As(err, &fe) {
			return nil, internal(fmt.Errorf("order %s: profile %s@%d no longer validates", o.ID, o.Profile, o.ProfileRevision))
		}
		return nil, storeError(err, "profile")
	}
	doc, _ := json.Marshal(orderFields{req.Hostname, req.InstanceID, req.AdminUser, req.AdminPasswordHash, req.SSHKeys, req.SSHPort, req.Allow})
	ord, src, err := config.DecodeOrder("request", doc)
	if err != nil {
		return nil, internal(fmt.Errorf("order %s: stored request: %w", o.ID, err))
	}
	agent := s.resolved[req.Agent+"/"+req.Arch]
	if agent == nil {
		return nil, internal(fmt.Errorf("no resolved agent %s for %s", req.Agent, req.Arch))
	}
	res, err := bake.Seed(bake.Request{
		Profile: prof, Order: ord, Source: src, Resolved: agent, NetworkConfig: req.NetworkConfig,
		Report: &render.ReportEndpoint{URL: s.reportURL(o.ID), Key: hex.EncodeToString(s.cfg.Secrets.ReportKey(o.ID))},
	})
	if err != nil {
		return nil, internal(fmt.Errorf("order %s: render again: %w", o.ID, err))
	}
	if res.SSHPort != o.SSHPort {
		return nil, internal(fmt.Errorf("order %s: rendered again with SSH port %d, stored %d", o.ID, res.SSHPort, o.SSHPort))
	}
	return res, nil
}
