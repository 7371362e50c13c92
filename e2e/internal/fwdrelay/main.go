// Command fwdrelay is the per-connection helper QEMU starts for a
// `guestfwd=...-cmd:` rule: it relays its stdin/stdout (the guest's TCP
// connection) to a TCP server on the host's loopback, so the guest reaches
// exactly one host service and nothing else. It refuses any target that is
// not a loopback address.
package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "fwdrelay: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: fwdrelay 127.0.0.1:PORT")
	}
	host, _, err := net.SplitHostPort(args[0])
	if err != nil {
		return fmt.Errorf("parse target %q: %w", args[0], err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("target %q is not a loopback address", args[0])
	}
	conn, err := net.DialTimeout("tcp", args[0], 10*time.Second)
	if err != nil {
		return fmt.Errorf("dial %s: %w", args[0], err)
	}
	defer conn.Close()
	done := make(chan struct{}, 2)
	go func() {
		_, _ = io.Copy(conn, os.Stdin)
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}()
	go func() {
		_, _ = io.Copy(os.Stdout, conn)
		_ = os.Stdout.Close()
		done <- struct{}{}
	}()
	<-done
	<-done
	return nil
}
