// Package e2e boots real Debian images under QEMU (TCG, hermetic user
// networking) with a hardbake seed and proves the result from outside.
//
// Everything lives in files with the `e2e` build tag; run it with
//
//	make build && go test -tags e2e -count=1 -timeout 80m -v ./e2e/...
//
// Environment: HARDBAKE_E2E_CACHE (image and mirror cache, default
// e2e/.cache), HARDBAKE_E2E_ONLY (comma-separated scenario names),
// HARDBAKE_E2E_PARALLEL (guests at once, default 2).
//
// Scenario "bookworm-socket" boots with no seed disk, by NoCloud-Net
// (ds=nocloud-net;s=… on the kernel command line) from a bin/hardbaked the
// test starts on 127.0.0.1 and relays to the guest's 10.0.2.100:8080: it
// PUTs the suite's profile, POSTs the order (agent: url), proves that
// forged reports are refused and that a cancelled order serves nothing,
// and that the guest's report turns the order hardened with the host key
// the SSH client saw.
//
// The timings compare hardbake with a plain cloud-config doing the same
// steps (scenario "reference"). With two or more guests at once, that pair
// ("bookworm" and "reference") boots first, side by side and alone, so both
// see the same host load, and neither starts its checks before both have
// booted; the other scenarios follow.
package e2e
