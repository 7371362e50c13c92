// Command hardbake turns a hardening profile and a VPS order into cloud-init
// user-data and NoCloud seed images, so a VPS boots already hardened.
//
// Exit codes: 0 success, 1 failure, 2 bad input (usage, profile or order).
package main

import (
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
