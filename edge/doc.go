// Package edge turns what a machine's host firewall allows into the provider
// edge firewall that mirrors it (OVHcloud Network Firewall, Hetzner Cloud
// Firewall, DigitalOcean Cloud Firewall), and records the provider-side
// backup policy. It is pure: an Input (built from the same profile, order
// and compiled plan render uses, see package edge/fromconfig) and a Policy
// in, one JSON document of API requests out, byte-identical for the same
// input. Every provider limit is checked here, so a profile the edge cannot
// carry is refused at render time, with the key path that overflowed.
//
// The package imports neither config nor render: config can then embed
// Policy and BackupPolicy in the profile type without an import cycle.
// Clients that apply the documents live in edge/ovh and edge/hetzner.
package edge
