package obsproc

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// adminTimeout bounds one request to a process's admin port.
const adminTimeout = 5 * time.Second

// ErrNoSample is what Metric's error wraps when /metrics has no sample of
// the metric: a counter that was never incremented is often not exported
// at all, and a test that counts it treats this as 0.
var ErrNoSample = errors.New("no such sample")

// newClient is an HTTP client that never uses a proxy: every address is
// loopback.
func newClient() *http.Client {
	return &http.Client{Timeout: adminTimeout, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
}

// get fetches path (e.g. "/readyz") from the admin port.
func (p *Proc) get(path string) (int, []byte, error) {
	rsp, err := newClient().Get(p.AdminURL() + path)
	if err != nil {
		return 0, nil, fmt.Errorf("get %s%s: %w", p.opts.Name, path, err)
	}
	defer rsp.Body.Close()
	body, err := io.ReadAll(rsp.Body)
	if err != nil {
		return rsp.StatusCode, nil, fmt.Errorf("read %s%s: %w", p.opts.Name, path, err)
	}
	return rsp.StatusCode, body, nil
}

// GetJSON decodes the JSON answer of GET path (e.g. "/cluster") on the
// admin port into v; an answer other than 200 with application/json is
// an error.
func (p *Proc) GetJSON(path string, v any) error {
	rsp, err := newClient().Get(p.AdminURL() + path)
	if err != nil {
		return fmt.Errorf("get %s%s: %w", p.opts.Name, path, err)
	}
	defer rsp.Body.Close()
	body, err := io.ReadAll(rsp.Body)
	if err != nil {
		return fmt.Errorf("read %s%s: %w", p.opts.Name, path, err)
	}
	if rsp.StatusCode != http.StatusOK {
		return fmt.Errorf("get %s%s: %s: %s", p.opts.Name, path, rsp.Status, tail(string(body), 300))
	}
	if ct := rsp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return fmt.Errorf("get %s%s: content type %q, want application/json", p.opts.Name, path, ct)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("decode %s%s: %w: %s", p.opts.Name, path, err, tail(string(body), 300))
	}
	return nil
}

// Metric scrapes /metrics and returns the sum of every sample of name
// whose labels contain all of the given label pairs (`k="v"`); a metric
// with no such sample is an error wrapping ErrNoSample.
func (p *Proc) Metric(name string, labels ...string) (float64, error) {
	rsp, err := newClient().Get(p.AdminURL() + "/metrics")
	if err != nil {
		return 0, fmt.Errorf("scrape %s: %w", p.opts.Name, err)
	}
	defer rsp.Body.Close()
	if rsp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("scrape %s: %s", p.opts.Name, rsp.Status)
	}
	var sum float64
	found := false
	sc := bufio.NewScanner(rsp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		v, ok, err := sample(sc.Text(), name, labels)
		if err != nil {
			return 0, err
		}
		if ok {
			sum += v
			found = true
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read metrics of %s: %w", p.opts.Name, err)
	}
	if !found {
		return 0, fmt.Errorf("metric %s%v not found on %s: %w", name, labels, p.opts.Name, ErrNoSample)
	}
	return sum, nil
}

// sample parses one line of the text exposition format: the value, and
// whether the line is a sample of name with all of labels.
func sample(line, name string, labels []string) (float64, bool, error) {
	if !strings.HasPrefix(line, name) {
		return 0, false, nil
	}
	rest := line[len(name):]
	if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
		return 0, false, nil
	}
	for _, l := range labels {
		if !strings.Contains(rest, l) {
			return 0, false, nil
		}
	}
	f := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
	if len(f) == 0 {
		return 0, false, nil
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return 0, false, fmt.Errorf("parse %q: %w", line, err)
	}
	return v, true, nil
}
