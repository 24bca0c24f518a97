// Package obsproc runs the obs binary as a real process for integration
// tests: it builds obs once per test binary, starts it with a config on
// fresh loopback ports, waits for /readyz, sends signals, stops it and
// keeps its log for the failure message.
//
// Typical use:
//
//	func TestMain(m *testing.M) { obsproc.Main(m) }
//
//	func TestX(t *testing.T) {
//		p := obsproc.Start(t, obsproc.Options{Config: `receivers:
//	  otlp:
//	    protocols:
//	      grpc:
//	        endpoint: {{addr "grpc"}}
//	...`})
//		conn := dial(p.Addr("grpc"))
//		...
//	}
//
// The config is a text/template: each name given to addr (or port) gets a
// port of its own, which Start waits on and Proc.Addr returns. New
// prepares a process without starting it, so that a cluster's seed
// address (Proc.GossipAddr, with Options.Cluster) is known to the members
// that join it. Kill, Stop or Signal and Wait end a process; Start runs it
// again with the same config, data dir and ports. Ports come from Port,
// which never hands out one port twice in a test binary. OBS_BIN names a
// prebuilt obs to use instead of building one.
//
// Every process is killed in t.Cleanup and its log tail is logged when the
// test failed; every wait is bounded; every port is on a loopback address.
package obsproc
