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
// The timings compare hardbake with a plain cloud-config doing the same
// steps (scenario "reference"). With two or more guests at once, that pair
// ("bookworm" and "reference") boots first, side by side and alone, so both
// see the same host load, and neither starts its checks before both have
// booted; the other scenarios follow.
package e2e
