// Package edgetest holds local fakes of the provider APIs hardbake applies
// edge rules and backups through: the OVHcloud API (signed requests, the
// Network Firewall of an IP, VPS backups) and the Hetzner Cloud firewall
// API. Each listens on 127.0.0.1 only (httptest), implements the documented
// behaviour of the endpoints hardbake calls — asynchronous states, limits,
// conflicts — and can be told to fail part way, so the clients' tests and
// hardbaked's service tests exercise the same fakes. Every accessor locks:
// hardbaked applies from background workers while a test reads the state.
package edgetest
