package verify

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// Offer is what an SSH server offers in its identification line and its
// first SSH_MSG_KEXINIT (RFC 4253 §7.1): the algorithms a client may pick.
type Offer struct {
	Banner   string   `json:"banner,omitempty"`
	Kex      []string `json:"kex"`
	HostKey  []string `json:"host_key"`
	Ciphers  []string `json:"ciphers"` // server to client (OpenSSH offers the same both ways)
	MACs     []string `json:"macs"`
	Compress []string `json:"compression"`
	// CiphersC2S and MACsC2S are kept to notice a server that offers
	// different lists in each direction.
	CiphersC2S []string `json:"ciphers_c2s"`
	MACsC2S    []string `json:"macs_c2s"`
}

// maxPacket bounds what is read from an untrusted server: RFC 4253 requires
// support for 35000-byte packets; a KEXINIT is a few KiB.
const maxPacket = 35000

const msgKexInit = 20

// FetchOffer connects to addr, exchanges identification lines and reads the
// server's KEXINIT, which servers send unencrypted before any key exchange.
// x/crypto/ssh keeps the peer's KEXINIT to itself, so the packet is read
// here; nothing past it is sent, so the server only logs a closed connection.
func FetchOffer(ctx context.Context, addr string, timeout time.Duration) (*Offer, error) {
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	defer conn.Close()
	deadline := time.Now().Add(timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = conn.SetDeadline(deadline)
	if _, err := io.WriteString(conn, "SSH-2.0-hardbake_verify\r\n"); err != nil {
		return nil, fmt.Errorf("send identification to %s: %w", addr, err)
	}
	br := bufio.NewReaderSize(conn, 4096)
	banner, err := readBanner(br)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", addr, err)
	}
	payload, err := readPacket(br)
	if err != nil {
		return nil, fmt.Errorf("%s: read KEXINIT: %w", addr, err)
	}
	o, err := ParseKexInit(payload)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", addr, err)
	}
	o.Banner = banner
	return o, nil
}

// readBanner reads lines until the SSH identification line; RFC 4253 §4.2
// lets a server send other lines first.
func readBanner(br *bufio.Reader) (string, error) {
	for i := 0; i < 20; i++ {
		line, err := br.ReadString('\n')
		if len(line) > 255 {
			return "", fmt.Errorf("identification line longer than 255 bytes")
		}
		if strings.HasPrefix(line, "SSH-") {
			return strings.TrimRight(line, "\r\n"), nil
		}
		if err != nil {
			return "", fmt.Errorf("no SSH identification line (read %q): %w", line, err)
		}
	}
	return "", fmt.Errorf("no SSH identification line in the first 20 lines")
}

// readPacket reads one unencrypted binary packet and returns its payload.
func readPacket(r io.Reader) ([]byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	length := binary.BigEndian.Uint32(hdr[:4])
	padding := uint32(hdr[4])
	if length < 1+padding || length > maxPacket {
		return nil, fmt.Errorf("bad packet length %d (padding %d)", length, padding)
	}
	body := make([]byte, length-1)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	return body[:len(body)-int(padding)], nil
}

// ParseKexInit decodes an SSH_MSG_KEXINIT payload.
func ParseKexInit(p []byte) (*Offer, error) {
	if len(p) < 17 || p[0] != msgKexInit {
		if len(p) > 0 {
			return nil, fmt.Errorf("first packet is message %d, not KEXINIT (%d)", p[0], msgKexInit)
		}
		return nil, errors.New("empty packet, not KEXINIT")
	}
	p = p[17:] // message number, 16-byte cookie
	var lists [10][]string
	for i := range lists {
		if len(p) < 4 {
			return nil, fmt.Errorf("KEXINIT truncated in name-list %d", i+1)
		}
		n := binary.BigEndian.Uint32(p[:4])
		p = p[4:]
		if uint64(n) > uint64(len(p)) {
			return nil, fmt.Errorf("KEXINIT name-list %d claims %d bytes, %d left", i+1, n, len(p))
		}
		s := string(p[:n])
		p = p[n:]
		if s == "" {
			continue
		}
		for _, name := range strings.Split(s, ",") {
			if name == "" || strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r > '~' }) {
				return nil, fmt.Errorf("KEXINIT name-list %d has a bad name %q", i+1, name)
			}
			lists[i] = append(lists[i], name)
		}
	}
	if len(p) < 5 {
		return nil, errors.New("KEXINIT truncated after the name-lists")
	}
	return &Offer{
		Kex: lists[0], HostKey: lists[1],
		CiphersC2S: lists[2], Ciphers: lists[3],
		MACsC2S: lists[4], MACs: lists[5],
		Compress: lists[7],
	}, nil
}

// MarshalKexInit encodes o as a KEXINIT payload (zero cookie); tests and
// the fuzzer use it to build packets.
func MarshalKexInit(o *Offer) []byte {
	b := []byte{msgKexInit}
	b = append(b, make([]byte, 16)...)
	for _, l := range [][]string{o.Kex, o.HostKey, o.CiphersC2S, o.Ciphers, o.MACsC2S, o.MACs, o.Compress, o.Compress, nil, nil} {
		s := strings.Join(l, ",")
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	return append(b, 0, 0, 0, 0, 0)
}
