package service

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The Prometheus text exposition (format 0.0.4), written by hand: three
// metric families do not justify the client library and its dependencies.

// latencyBuckets are the histogram's upper bounds in seconds.
var latencyBuckets = [...]float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}

type histogram struct {
	counts [len(latencyBuckets) + 1]uint64 // last: +Inf
	sum    float64
	n      uint64
}

type routeKey struct {
	route string
	code  int
}

type metrics struct {
	mu        sync.Mutex
	latencies map[string]*histogram // by route pattern
	requests  map[routeKey]uint64
}

func newMetrics() *metrics {
	return &metrics{latencies: map[string]*histogram{}, requests: map[routeKey]uint64{}}
}

// observe records one request. Routes are the mux's patterns, never raw
// paths, so the label set is bounded and no token reaches a label.
func (m *metrics) observe(route string, code int, d time.Duration) {
	sec := d.Seconds()
	m.mu.Lock()
	defer m.mu.Unlock()
	h := m.latencies[route]
	if h == nil {
		h = &histogram{}
		m.latencies[route] = h
	}
	i := 0
	for i < len(latencyBuckets) && sec > latencyBuckets[i] {
		i++
	}
	h.counts[i]++
	h.sum += sec
	h.n++
	m.requests[routeKey{route, code}]++
}

func (m *metrics) write(b *bytes.Buffer) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b.WriteString("# HELP hardbaked_http_requests_total HTTP requests by route and status code.\n# TYPE hardbaked_http_requests_total counter\n")
	keys := make([]routeKey, 0, len(m.requests))
	for k := range m.requests {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b routeKey) int {
		if a.route != b.route {
			if a.route < b.route {
				return -1
			}
			return 1
		}
		return a.code - b.code
	})
	for _, k := range keys {
		fmt.Fprintf(b, "hardbaked_http_requests_total{route=%s,code=\"%d\"} %d\n", quoteLabel(k.route), k.code, m.requests[k])
	}
	b.WriteString("# HELP hardbaked_http_request_duration_seconds HTTP request latency by route.\n# TYPE hardbaked_http_request_duration_seconds histogram\n")
	routes := make([]string, 0, len(m.latencies))
	for r := range m.latencies {
		routes = append(routes, r)
	}
	slices.Sort(routes)
	for _, r := range routes {
		h := m.latencies[r]
		var cum uint64
		for i, le := range latencyBuckets {
			cum += h.counts[i]
			fmt.Fprintf(b, "hardbaked_http_request_duration_seconds_bucket{route=%s,le=\"%s\"} %d\n", quoteLabel(r), strconv.FormatFloat(le, 'g', -1, 64), cum)
		}
		cum += h.counts[len(latencyBuckets)]
		fmt.Fprintf(b, "hardbaked_http_request_duration_seconds_bucket{route=%s,le=\"+Inf\"} %d\n", quoteLabel(r), cum)
		fmt.Fprintf(b, "hardbaked_http_request_duration_seconds_sum{route=%s} %s\n", quoteLabel(r), strconv.FormatFloat(h.sum, 'g', -1, 64))
		fmt.Fprintf(b, "hardbaked_http_request_duration_seconds_count{route=%s} %d\n", quoteLabel(r), h.n)
	}
}

// quoteLabel quotes a label value with the exposition format's escapes
// (backslash, double quote, newline).
func quoteLabel(s string) string {
	var b bytes.Buffer
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '\\':
			b.WriteString(`\\`)
		case '"':
			b.WriteString(`\"`)
		case '\n':
			b.WriteString(`\n`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

var dqliteRoles = []string{"leader", "voter", "stand-by", "spare"}

func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) *apiError {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	counts, err := s.cfg.Store.CountByStatus(ctx)
	if err != nil {
		return storeError(err, "order counts")
	}
	role, err := s.cfg.Store.Role(ctx)
	if err != nil {
		return storeError(err, "dqlite role")
	}
	var b bytes.Buffer
	b.WriteString("# HELP hardbaked_orders Orders by status.\n# TYPE hardbaked_orders gauge\n")
	for _, st := range Statuses() {
		fmt.Fprintf(&b, "hardbaked_orders{status=%s} %d\n", quoteLabel(st), counts[st])
	}
	b.WriteString("# HELP hardbaked_dqlite_role This node's dqlite role (1 for the current one).\n# TYPE hardbaked_dqlite_role gauge\n")
	roles := dqliteRoles
	if !slices.Contains(roles, role) {
		roles = append(slices.Clone(roles), role)
	}
	for _, ro := range roles {
		v := 0
		if ro == role {
			v = 1
		}
		fmt.Fprintf(&b, "hardbaked_dqlite_role{role=%s} %d\n", quoteLabel(ro), v)
	}
	if s.edge != nil {
		queued, counts := s.edge.snapshotMetrics()
		fmt.Fprintf(&b, "# HELP hardbaked_edge_queue Orders waiting for an edge apply.\n# TYPE hardbaked_edge_queue gauge\nhardbaked_edge_queue %d\n", queued)
		b.WriteString("# HELP hardbaked_edge_applies_total Edge applies by provider and result.\n# TYPE hardbaked_edge_applies_total counter\n")
		keys := slices.Collect(maps.Keys(counts))
		slices.SortFunc(keys, func(a, b [2]string) int { return strings.Compare(a[0]+"\x00"+a[1], b[0]+"\x00"+b[1]) })
		for _, k := range keys {
			fmt.Fprintf(&b, "hardbaked_edge_applies_total{provider=%s,result=%s} %d\n", quoteLabel(k[0]), quoteLabel(k[1]), counts[k])
		}
	}
	s.metrics.write(&b)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b.Bytes())
	return nil
}
