package roles

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
)

func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// The status page shows records per second for each pipeline and each
// exporter queue while data flows, not only totals.
func TestStatusPageShowsRates(t *testing.T) {
	dir := t.TempDir()
	httpAddr, adminAddr := freeLoopbackAddr(t), freeLoopbackAddr(t)
	body := `receivers:
  otlp:
    protocols:
      http:
        endpoint: ` + httpAddr + `
processors:
  batch: {}
exporters:
  file:
    path: ` + dir + `/out.jsonl
service:
  pipelines:
    logs:
      receivers: [otlp]
      processors: [batch]
      exporters: [file]
`
	var out syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Role: Gateway, ConfigPath: writeConfig(t, body), DataDir: dir,
			AdminAddr: adminAddr, NoCluster: true, Stdout: &out, ShutdownTimeout: 5 * time.Second}, nil)
	}()
	defer func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Fatal("run did not stop")
		}
	}()

	ld := plog.NewLogs()
	sl := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty()
	for i := range 100 {
		sl.LogRecords().AppendEmpty().Body().SetStr("record " + strconv.Itoa(i))
	}
	req, err := plogotlp.NewExportRequestFromLogs(ld).MarshalProto()
	require.NoError(t, err)
	post := func() error {
		resp, err := http.Post("http://"+httpAddr+"/v1/logs", "application/x-protobuf", bytes.NewReader(req))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("post logs: %s", resp.Status)
		}
		return nil
	}
	require.Eventually(t, func() bool { return post() == nil }, 20*time.Second, 50*time.Millisecond)

	pipelineRate := regexp.MustCompile(`<tr><td>logs</td>.*?<td class="rate">([^<]*)</td></tr>`)
	queueRates := regexp.MustCompile(`<tr><td>file</td><td class="rate">([^<]*)</td><td class="rate">([^<]*)</td><td class="rate">([^<]*)</td>`)
	// Keep sending (bounded: at most 15 s, 20 requests per second) until
	// the page rates the flow.
	var page string
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		for range 10 {
			require.NoError(t, post())
			time.Sleep(50 * time.Millisecond)
		}
		resp, err := http.Get("http://" + adminAddr + "/")
		require.NoError(t, err)
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		page = string(b)
		p, q := pipelineRate.FindStringSubmatch(page), queueRates.FindStringSubmatch(page)
		require.NotNil(t, p, "pipeline row with a rate column: %s", page)
		require.NotNil(t, q, "exporter row with rate columns: %s", page)
		in, errIn := strconv.ParseFloat(p[1], 64)
		queued, errQ := strconv.ParseFloat(q[1], 64)
		sent, errS := strconv.ParseFloat(q[2], 64)
		if errIn != nil || errQ != nil || errS != nil || in == 0 || queued == 0 || sent == 0 {
			continue // no span yet, or the window has not seen the flow
		}
		// 100 records every >= 50 ms is at most 2,000 records/s.
		require.LessOrEqual(t, in, 2000.0*1.5, page)
		require.Equal(t, "0", q[3], "nothing failed: %s", page)
		return
	}
	t.Fatalf("no rates on the status page after 15 s:\n%s", page)
}

// A rate is the increase over the sampled window per second: samples
// older than the window are dropped, a counter that appears starts at
// zero, a decrease (a restarted component) is not a negative rate, and
// samples closer than rateMinSpan are not kept.
func TestRatesOverWindow(t *testing.T) {
	values := map[string]float64{}
	r := newRates(func() (map[string]float64, error) {
		out := make(map[string]float64, len(values))
		for k, v := range values {
			out[k] = v
		}
		return out, nil
	})
	t0 := time.Unix(1000, 0)
	require.Nil(t, r.perSecond(), "no rate before two samples")

	values["a"] = 100
	r.sample(t0)
	values["a"] = 150
	r.sample(t0.Add(100 * time.Millisecond)) // too close: not kept
	require.Nil(t, r.perSecond())

	values["a"], values["b"] = 300, 40
	r.sample(t0.Add(2 * time.Second))
	v := r.perSecond()
	require.InDelta(t, 100.0, v["a"], 1e-9) // (300-100)/2s
	require.InDelta(t, 20.0, v["b"], 1e-9)  // appeared: from 0
	require.Equal(t, "100", v.format("a"))
	require.Equal(t, "0", v.format("missing"), "never counted")
	require.Equal(t, "-", ratesView(nil).format("a"), "no span yet")

	// 14 s later the first sample is outside the window; the rate is
	// over the samples at 2 s and 14 s.
	values["a"], values["b"] = 1500, 10
	r.sample(t0.Add(14 * time.Second))
	v = r.perSecond()
	require.InDelta(t, 100.0, v["a"], 1e-9) // (1500-300)/12s
	require.Zero(t, v["b"])                 // went down: not negative
}
