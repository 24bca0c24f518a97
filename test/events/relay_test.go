package events

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	_ "google.golang.org/grpc/encoding/gzip" // obs' otlp exporter compresses with gzip by default
)

// A gateway SIGKILLed while its export request is in flight cannot be
// exactly-once: the sink takes the request, the answer never reaches the
// dead process, and its WAL sends the batch again after the restart. Only
// a sink that dedupes could close that; obs' done log closes everything
// after the answer. So the suites tell the two apart by timing, which the
// sink's file does not keep: the gateways export through a relay in this
// test process that forwards each request to the real otelcol sink and
// notes when it arrived and when the sink's answer went back.

// answerSlack is how long before the kill signal an answer may have left
// the relay and still not have reached the killed process's Done: the
// kernel, the gRPC transport and the exporter's goroutine on a loaded
// 2-core machine. A batch re-sent although its answer left earlier than
// that was confirmed and then sent again: a lost Done. It stays under the
// exporter's 200 ms batch timeout, so only the last request before a
// kill can be explained by it.
const answerSlack = 100 * time.Millisecond

// relay is a gRPC OTLP logs hop in front of the sink.
type relay struct {
	plogotlp.UnimplementedGRPCServer
	Addr string
	sink plogotlp.GRPCClient

	gates chan gate // a request takes one and waits on it before the sink

	mu   sync.Mutex
	reqs []relayed
}

// gate holds one request before the sink: held is closed once a request
// waits on it, closing release lets it go on, and events then gives its
// events once the sink took it (nil if the sink refused it).
type gate struct {
	held, release chan struct{}
	events        chan []string
}

// relayed is one export request the sink answered.
type relayed struct {
	arrived, answered time.Time
	events            []string // k8s.event.name of each record
}

// kill is one SIGKILL: the signal was sent after before, and the process
// had exited by after.
type kill struct {
	name          string
	before, after time.Time
}

// killTimed SIGKILLs g and notes when.
func killTimed(g *gateway) kill {
	k := kill{name: g.Name(), before: time.Now()}
	g.Kill()
	k.after = time.Now()
	return k
}

func startRelay(t testing.TB, sinkAddr string) *relay {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("relay: %v", err)
	}
	conn, err := grpc.NewClient(sinkAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("relay: %v", err)
	}
	r := &relay{Addr: lis.Addr().String(), sink: plogotlp.NewGRPCClient(conn), gates: make(chan gate, 1)}
	srv := grpc.NewServer()
	plogotlp.RegisterGRPCServer(srv, r)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() {
		srv.Stop()
		_ = conn.Close()
	})
	return r
}

func (r *relay) Export(ctx context.Context, req plogotlp.ExportRequest) (plogotlp.ExportResponse, error) {
	arrived := time.Now()
	var held *gate
	select {
	case g := <-r.gates:
		held = &g
		close(g.held)
		<-g.release
	default:
	}
	// The sink gets a request whose sender died meanwhile, as it would
	// without the relay.
	resp, err := r.sink.Export(context.WithoutCancel(ctx), req)
	var events []string
	if err == nil {
		events = eventNames(req.Logs())
		r.mu.Lock()
		r.reqs = append(r.reqs, relayed{arrived: arrived, answered: time.Now(), events: events})
		r.mu.Unlock()
	}
	if held != nil {
		held.events <- events
	}
	return resp, err
}

// holdNext makes the next request wait before it goes to the sink, so
// that a test can kill its sender while it is in flight.
func (r *relay) holdNext() gate {
	g := gate{held: make(chan struct{}), release: make(chan struct{}), events: make(chan []string, 1)}
	r.gates <- g
	return g
}

func eventNames(ld plog.Logs) []string {
	var out []string
	eachEvent(ld, func(name string, _ plog.LogRecord) { out = append(out, name) })
	return out
}

func (r *relay) requests() []relayed {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]relayed(nil), r.reqs...)
}

// caught is a request in flight at a kill.
type caught struct {
	kill
	req int // index in the relay's requests
}

// inFlight gives the events of the requests that were in flight at a
// kill: the request reached the relay before the process was gone, and
// its answer left the relay no earlier than answerSlack before the signal.
func inFlight(reqs []relayed, kills []kill) map[string]caught {
	out := map[string]caught{}
	for _, k := range kills {
		for i, r := range reqs {
			if r.arrived.Before(k.after) && !r.answered.Before(k.before.Add(-answerSlack)) {
				for _, n := range r.events {
					out[n] = caught{kill: k, req: i}
				}
			}
		}
	}
	return out
}

// explain splits the events the exporter sent twice (resent, "name xN" as
// duplicates gives them) into those of a request in flight at a kill and
// the others. An event sent more than twice is never explained: one kill
// re-sends a batch once.
func explain(resent []string, at map[string]caught) (inFlightAtKill, other []string) {
	for _, d := range resent {
		n, count, _ := strings.Cut(d, " ")
		if _, ok := at[n]; ok && count == "x2" {
			inFlightAtKill = append(inFlightAtKill, d)
		} else {
			other = append(other, d)
		}
	}
	return inFlightAtKill, other
}

// lastBefore describes the last request that reached the relay before k's
// signal, relative to it: how close the kill came to a send.
func lastBefore(reqs []relayed, k kill) string {
	for i := len(reqs) - 1; i >= 0; i-- {
		if r := reqs[i]; r.arrived.Before(k.before) {
			answered := fmt.Sprintf("%s before", k.before.Sub(r.answered).Round(time.Microsecond))
			if r.answered.After(k.before) {
				answered = fmt.Sprintf("%s after", r.answered.Sub(k.before).Round(time.Microsecond))
			}
			return fmt.Sprintf("the last request before the kill of %s arrived %s before the signal and was answered %s it (%d events)",
				k.name, k.before.Sub(r.arrived).Round(time.Microsecond), answered, len(r.events))
		}
	}
	return "no request before the kill of " + k.name
}
