package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

const (
	// requestTimeout bounds one Export call, like an exporter's timeout.
	requestTimeout = 30 * time.Second
	// maxAttempts bounds the tries of one batch before the row fails.
	maxAttempts = 50
	// maxRetryWait caps a backoff or server-given retry delay.
	maxRetryWait = 5 * time.Second
)

// loadStats is what the senders saw.
type loadStats struct {
	sentRecords int64
	requests    int64
	throttled   int64 // RESOURCE_EXHAUSTED answers, retried
	otherErrors int64 // other failed attempts, retried
	acked       time.Time
}

// work hands out the requests to send: total records in requests of the
// payloads, round robin, and a shorter tail request at the end.
type work struct {
	payloads []payload
	tail     *payload
	full     int64 // number of full requests
	next     atomic.Int64
}

func (w *work) take() (*payload, bool) {
	i := w.next.Add(1) - 1
	switch {
	case i < w.full:
		return &w.payloads[i%int64(len(w.payloads))], true
	case i == w.full && w.tail != nil:
		return w.tail, true
	}
	return nil, false
}

// sendAll sends every request of w to addr from senders concurrent
// clients, each waiting for the answer before its next request. It
// returns when all were accepted, ctx ends, or a request fails for good.
func sendAll(ctx context.Context, addr string, senders int, w *work) (*loadStats, error) {
	conns := make([]*grpc.ClientConn, senders)
	for i := range conns {
		c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", addr, err)
		}
		defer c.Close()
		conns[i] = c
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		st       loadStats
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for i := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(i), 7))
			for {
				p, ok := w.take()
				if !ok {
					return
				}
				if err := sendOne(ctx, conns[i], p, &st, r); err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
					return
				}
				atomic.AddInt64(&st.sentRecords, int64(p.records))
			}
		}()
	}
	wg.Wait()
	st.acked = time.Now()
	if firstErr != nil {
		return &st, firstErr
	}
	return &st, ctx.Err()
}

// sendOne sends one request until it is accepted, retrying throttling and
// transient errors with jittered exponential backoff (a server-given
// RetryInfo delay wins when longer), at most maxAttempts times.
func sendOne(ctx context.Context, cc *grpc.ClientConn, p *payload, st *loadStats, r *rand.Rand) error {
	backoff := 5 * time.Millisecond
	var last error
	for range maxAttempts {
		atomic.AddInt64(&st.requests, 1)
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		err := cc.Invoke(rctx, logsExportMethod, &rawMsg{b: p.body}, &rawMsg{})
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		last = err
		s := status.Convert(err)
		wait := backoff/2 + time.Duration(r.Int64N(int64(backoff)))
		switch s.Code() {
		case codes.ResourceExhausted:
			atomic.AddInt64(&st.throttled, 1)
		case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted, codes.Canceled:
			atomic.AddInt64(&st.otherErrors, 1)
		default:
			return fmt.Errorf("export %d records: %w", p.records, err)
		}
		for _, d := range s.Details() {
			if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay().AsDuration() > wait {
				wait = ri.GetRetryDelay().AsDuration()
			}
		}
		wait = min(wait, maxRetryWait)
		backoff = min(backoff*2, time.Second)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
	return fmt.Errorf("export %d records: gave up after %d attempts: %w", p.records, maxAttempts, errors.Join(last))
}
