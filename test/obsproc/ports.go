package obsproc

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// ports remembers every port handed out by this test binary, so that no
// two listeners of the tests (the gossip, admin and OTLP ports of one
// member, or of two members) are ever given the same one. Package state on
// purpose: the port space is shared by the whole test binary.
var ports = struct {
	mu    sync.Mutex
	given map[int]bool
}{given: map[int]bool{}}

// Ports are drawn at random from below the kernel's ephemeral range: the
// kernel never picks those for a port-0 listener or the source port of an
// outgoing connection, so a port handed out here cannot be taken by one
// of those before the obs process binds it (a port the kernel just gave
// out for ":0" and that was closed again is the one it hands out next).
const (
	lowestPort    = 10000
	pickAttempts  = 200
	ephemeralFile = "/proc/sys/net/ipv4/ip_local_port_range"
	// defaultEphemeralLow is Linux's default start of the ephemeral range.
	defaultEphemeralLow = 32768
)

// Port returns a TCP and UDP port on ip (a loopback address such as
// "127.0.0.1" or "127.0.0.3") that is bindable now and was never handed
// out before in this test binary. The test fails if there is none.
func Port(tb testing.TB, ip string) int {
	tb.Helper()
	p, err := pickPort(ip)
	if err != nil {
		tb.Fatalf("obsproc: %v", err)
	}
	return p
}

// Addr returns "ip:port" with a port from Port.
func Addr(tb testing.TB, ip string) string {
	tb.Helper()
	return net.JoinHostPort(ip, strconv.Itoa(Port(tb, ip)))
}

func pickPort(ip string) (int, error) {
	if parsed := net.ParseIP(ip); parsed == nil || !parsed.IsLoopback() {
		return 0, fmt.Errorf("pick port: %q is not a loopback address", ip)
	}
	high := ephemeralLow()
	ports.mu.Lock()
	defer ports.mu.Unlock()
	var lastErr error
	for range pickAttempts {
		p := lowestPort + rand.IntN(high-lowestPort)
		if ports.given[p] {
			continue
		}
		if err := bindable(ip, p); err != nil {
			lastErr = err
			continue
		}
		ports.given[p] = true
		return p, nil
	}
	return 0, fmt.Errorf("no bindable port on %s in [%d, %d) after %d tries (%d handed out): %w",
		ip, lowestPort, high, pickAttempts, len(ports.given), lastErr)
}

// bindable reports whether ip:port can be bound for TCP and for UDP (a
// gossip port takes both) by binding and releasing it.
func bindable(ip string, port int) error {
	addr := net.JoinHostPort(ip, strconv.Itoa(port))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen tcp %s: %w", addr, err)
	}
	u, err := net.ListenPacket("udp", addr)
	lerr := l.Close()
	if err != nil {
		return fmt.Errorf("listen udp %s: %w", addr, err)
	}
	return errors.Join(lerr, u.Close())
}

// ephemeralLow is the first port of the kernel's ephemeral range, or
// Linux's default when the range cannot be read or leaves no room below.
func ephemeralLow() int {
	b, err := os.ReadFile(ephemeralFile)
	if err != nil {
		return defaultEphemeralLow
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return defaultEphemeralLow
	}
	low, err := strconv.Atoi(f[0])
	if err != nil || low < lowestPort+1000 {
		return defaultEphemeralLow
	}
	return low
}
