package export

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// permanentError marks an error that retrying cannot fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return "permanent: " + e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as non-retryable: the caller moves the payload to the
// dead-letter area instead of sending it again. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	if IsPermanent(err) {
		return err
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err (or an error it wraps) was marked by
// Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// ThrottleError is a retryable error whose peer asked to wait at least After
// before the next attempt (gRPC RetryInfo, HTTP Retry-After).
type ThrottleError struct {
	After time.Duration
	Err   error
}

func (e *ThrottleError) Error() string {
	return fmt.Sprintf("throttled, retry after %s: %v", e.After, e.Err)
}

func (e *ThrottleError) Unwrap() error { return e.Err }

// RetryConfig is the Collector's retry_on_failure block.
type RetryConfig struct {
	// Enabled turns retries on. Default true. When false, Backoff.Next
	// reports ok=false after the first failure.
	Enabled bool `yaml:"enabled"`
	// InitialInterval is the wait after the first failure. Default 5s.
	InitialInterval time.Duration `yaml:"initial_interval"`
	// RandomizationFactor spreads each wait over
	// [wait*(1-f), wait*(1+f)]. Default 0.5.
	RandomizationFactor float64 `yaml:"randomization_factor"`
	// Multiplier grows the wait after every failure. Default 1.5.
	Multiplier float64 `yaml:"multiplier"`
	// MaxInterval caps one wait. Default 30s.
	MaxInterval time.Duration `yaml:"max_interval"`
	// MaxElapsedTime is how long a payload is retried before the caller
	// gives up on it (and dead-letters it: data is never dropped). 0 means
	// forever. Default 300s.
	MaxElapsedTime time.Duration `yaml:"max_elapsed_time"`
}

// DefaultRetryConfig returns the Collector's defaults.
func DefaultRetryConfig() RetryConfig {
	return RetryConfig{
		Enabled:             true,
		InitialInterval:     5 * time.Second,
		RandomizationFactor: 0.5,
		Multiplier:          1.5,
		MaxInterval:         30 * time.Second,
		MaxElapsedTime:      300 * time.Second,
	}
}

// Validate checks the values; it names the offending key.
func (c RetryConfig) Validate() error {
	if !c.Enabled {
		return nil
	}
	switch {
	case c.InitialInterval <= 0:
		return fmt.Errorf("retry_on_failure: initial_interval must be > 0, got %s", c.InitialInterval)
	case c.MaxInterval < c.InitialInterval:
		return fmt.Errorf("retry_on_failure: max_interval (%s) must be >= initial_interval (%s)", c.MaxInterval, c.InitialInterval)
	case c.Multiplier < 1:
		return fmt.Errorf("retry_on_failure: multiplier must be >= 1, got %g", c.Multiplier)
	case c.RandomizationFactor < 0 || c.RandomizationFactor >= 1:
		return fmt.Errorf("retry_on_failure: randomization_factor must be in [0, 1), got %g", c.RandomizationFactor)
	case c.MaxElapsedTime < 0:
		return fmt.Errorf("retry_on_failure: max_elapsed_time must be >= 0, got %s", c.MaxElapsedTime)
	}
	return nil
}

// Backoff is the retry state of one payload. It is not safe for concurrent
// use; make one per payload with RetryConfig.Backoff.
type Backoff struct {
	cfg     RetryConfig
	start   time.Time
	current time.Duration
	now     func() time.Time
	rand    func() float64
}

// Backoff starts the retry state of one payload; the elapsed-time budget
// starts now.
func (c RetryConfig) Backoff() *Backoff {
	return &Backoff{cfg: c, now: time.Now, rand: rand.Float64, start: time.Now(), current: c.InitialInterval}
}

// Next returns how long to wait after err before the next attempt. ok is
// false when err is permanent, retries are disabled, or the next attempt
// would start after MaxElapsedTime: the caller then dead-letters the
// payload. A ThrottleError's After is honoured (the longer of it and the
// jittered backoff).
func (b *Backoff) Next(err error) (wait time.Duration, ok bool) {
	if err == nil || IsPermanent(err) || !b.cfg.Enabled {
		return 0, false
	}
	wait = b.current
	if f := b.cfg.RandomizationFactor; f > 0 {
		delta := f * float64(wait)
		lo := float64(wait) - delta
		wait = time.Duration(lo + b.rand()*(2*delta+1))
	}
	next := time.Duration(float64(b.current) * b.cfg.Multiplier)
	if next > b.cfg.MaxInterval || next <= 0 {
		next = b.cfg.MaxInterval
	}
	b.current = next
	var te *ThrottleError
	if errors.As(err, &te) && te.After > wait {
		wait = te.After
	}
	if b.cfg.MaxElapsedTime > 0 && b.now().Add(wait).Sub(b.start) > b.cfg.MaxElapsedTime {
		return 0, false
	}
	return wait, true
}
