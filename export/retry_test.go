package export

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBackoff(t *testing.T) {
	retryable := errors.New("unavailable")
	cfg := RetryConfig{Enabled: true, InitialInterval: time.Second, Multiplier: 2, MaxInterval: 5 * time.Second, MaxElapsedTime: time.Minute}
	fixed := func(c RetryConfig, r float64) (*Backoff, *time.Time) {
		b := c.Backoff()
		now := b.start
		b.now = func() time.Time { return now }
		b.rand = func() float64 { return r }
		return b, &now
	}
	t.Run("exponential capped", func(t *testing.T) {
		b, _ := fixed(cfg, 0)
		var got []time.Duration
		for range 5 {
			w, ok := b.Next(retryable)
			require.True(t, ok)
			got = append(got, w)
		}
		require.Equal(t, []time.Duration{1 * time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}, got)
	})
	t.Run("jitter bounds", func(t *testing.T) {
		c := cfg
		c.RandomizationFactor = 0.5
		lo, _ := fixed(c, 0)
		hi, _ := fixed(c, 0.999999)
		wl, _ := lo.Next(retryable)
		wh, _ := hi.Next(retryable)
		require.Equal(t, 500*time.Millisecond, wl)
		require.InDelta(t, float64(1500*time.Millisecond), float64(wh), float64(time.Millisecond))
		real := c.Backoff()
		for range 100 {
			real.current = time.Second
			w, ok := real.Next(retryable)
			require.True(t, ok)
			require.GreaterOrEqual(t, w, 500*time.Millisecond)
			require.LessOrEqual(t, w, 1500*time.Millisecond)
		}
	})
	t.Run("throttle honoured", func(t *testing.T) {
		b, _ := fixed(cfg, 0)
		w, ok := b.Next(&ThrottleError{After: 10 * time.Second, Err: retryable})
		require.True(t, ok)
		require.Equal(t, 10*time.Second, w)
		w, ok = b.Next(&ThrottleError{After: time.Millisecond, Err: retryable})
		require.True(t, ok)
		require.Equal(t, 2*time.Second, w) // the longer of the two
	})
	t.Run("permanent stops", func(t *testing.T) {
		b, _ := fixed(cfg, 0)
		_, ok := b.Next(fmt.Errorf("wrapped: %w", Permanent(retryable)))
		require.False(t, ok)
	})
	t.Run("max elapsed stops", func(t *testing.T) {
		b, now := fixed(cfg, 0)
		*now = now.Add(58 * time.Second)
		w, ok := b.Next(retryable)
		require.True(t, ok)
		require.Equal(t, time.Second, w)
		*now = now.Add(time.Second)
		_, ok = b.Next(retryable) // 59s + 2s > 60s
		require.False(t, ok)
	})
	t.Run("zero max elapsed retries forever", func(t *testing.T) {
		c := cfg
		c.MaxElapsedTime = 0
		b, now := fixed(c, 0)
		*now = now.Add(1000 * time.Hour)
		_, ok := b.Next(retryable)
		require.True(t, ok)
	})
	t.Run("disabled", func(t *testing.T) {
		b, _ := fixed(RetryConfig{}, 0)
		_, ok := b.Next(retryable)
		require.False(t, ok)
	})
}

func TestPermanent(t *testing.T) {
	base := errors.New("bad request")
	p := Permanent(base)
	require.True(t, IsPermanent(p))
	require.True(t, IsPermanent(fmt.Errorf("send: %w", p)))
	require.ErrorIs(t, p, base)
	require.False(t, IsPermanent(base))
	require.NoError(t, Permanent(nil))
	require.Same(t, p, Permanent(p))
	te := &ThrottleError{After: time.Second, Err: base}
	require.ErrorIs(t, te, base)
	require.False(t, IsPermanent(te))
	require.NoError(t, DefaultRetryConfig().Validate())
}
