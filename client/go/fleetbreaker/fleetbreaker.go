// Package fleetbreaker wraps a gobreaker circuit breaker so that every process of a fleet obeys
// one breaker: retryd's circuit of a service (GetCircuit), fed with the outcomes of the calls
// (RecordOutcomes). It is a module of its own, so the retryd client gains no dependency.
//
//	cb := fleetbreaker.New[[]byte](client, "inventory", gobreaker.Settings{Name: "inventory"}, fleetbreaker.Options{})
//	body, err := cb.Execute(func() ([]byte, error) { return callInventory(ctx) })
//	if errors.Is(err, gobreaker.ErrOpenState) { ... }   // the fleet's circuit is OPEN: fail fast
//
// retryd's policy decides the transitions (failure_rate_threshold, minimum_calls,
// open_duration, half_open_trials), not the Settings' ReadyToTrip/Timeout: see the client
// README's table of differences.
package fleetbreaker

import (
	"context"
	"errors"
	"sync"
	"time"

	retryd "github.com/retryd/retryd/client/go"
	retrydv1 "github.com/retryd/retryd/client/go/gen/retryd/v1"
	"github.com/sony/gobreaker/v2"
)

// Options tune how often the wrapper talks to retryd.
type Options struct {
	// RefreshInterval is how long a GetCircuit answer is reused (default 1 s; negative: ask on
	// every call). A flush of outcomes forces the next call to ask again.
	RefreshInterval time.Duration
	// FlushInterval: outcomes are sent with RecordOutcomes at most this often, by the call that
	// finds them due (default 1 s; negative: after every call). Flush sends the rest.
	FlushInterval time.Duration
	// CallTimeout bounds each call to retryd (default 2 s). When retryd cannot be reached the
	// last state seen is kept (CLOSED before any was seen).
	CallTimeout time.Duration
}

// Breaker is a gobreaker.CircuitBreaker[T] gated by retryd's circuit of one service.
//
//   - retryd OPEN: Execute returns gobreaker.ErrOpenState without calling.
//   - retryd HALF_OPEN: at most Settings.MaxRequests (default 1) calls of this process run at
//     once; more get gobreaker.ErrTooManyRequests.
//   - retryd CLOSED: calls run.
//
// Calls run through an inner gobreaker.CircuitBreaker built from the Settings; it trips only if
// Settings.ReadyToTrip is set (a local guard on top of the fleet's), never by default.
// Outcomes (Settings.IsSuccessful, default err == nil; Settings.IsExcluded ones are not
// counted) go to RecordOutcomes. OnStateChange is called when this process sees retryd's state
// change.
type Breaker[T any] struct {
	client   *retryd.Client
	service  string
	local    *gobreaker.CircuitBreaker[T]
	settings gobreaker.Settings
	opts     Options

	mu        sync.Mutex
	state     gobreaker.State
	readAt    time.Time
	trials    uint32
	successes int64
	failures  int64
	flushedAt time.Time
}

// New wraps a new gobreaker.CircuitBreaker[T] built from st around retryd's circuit of service.
func New[T any](client *retryd.Client, service string, st gobreaker.Settings, o Options) *Breaker[T] {
	if o.RefreshInterval == 0 {
		o.RefreshInterval = time.Second
	}
	if o.FlushInterval == 0 {
		o.FlushInterval = time.Second
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = 2 * time.Second
	}
	if st.MaxRequests == 0 {
		st.MaxRequests = 1
	}
	if st.IsSuccessful == nil {
		st.IsSuccessful = func(err error) bool { return err == nil }
	}
	if st.IsExcluded == nil {
		st.IsExcluded = func(error) bool { return false }
	}
	inner := st
	inner.OnStateChange = nil
	if inner.ReadyToTrip == nil {
		inner.ReadyToTrip = func(gobreaker.Counts) bool { return false }
	}
	return &Breaker[T]{
		client: client, service: service, local: gobreaker.NewCircuitBreaker[T](inner),
		settings: st, opts: o, state: gobreaker.StateClosed,
	}
}

// Name is the Settings' name.
func (b *Breaker[T]) Name() string { return b.settings.Name }

// Local is the inner, per-process breaker.
func (b *Breaker[T]) Local() *gobreaker.CircuitBreaker[T] { return b.local }

// State is retryd's state of the circuit as this process last read it (read again when older
// than RefreshInterval).
func (b *Breaker[T]) State() gobreaker.State { return b.fleetState() }

// Execute runs req if the fleet's circuit allows it and records its outcome.
func (b *Breaker[T]) Execute(req func() (T, error)) (T, error) {
	var zero T
	switch b.fleetState() {
	case gobreaker.StateOpen:
		return zero, gobreaker.ErrOpenState
	case gobreaker.StateHalfOpen:
		b.mu.Lock()
		if b.trials >= b.settings.MaxRequests {
			b.mu.Unlock()
			return zero, gobreaker.ErrTooManyRequests
		}
		b.trials++
		b.mu.Unlock()
		defer func() {
			b.mu.Lock()
			b.trials--
			b.mu.Unlock()
		}()
	}
	res, err := b.local.Execute(req)
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		return res, err // rejected by the local guard: nothing ran
	}
	if !b.settings.IsExcluded(err) {
		b.record(b.settings.IsSuccessful(err))
	}
	return res, err
}

// Flush sends the outcomes not sent yet.
func (b *Breaker[T]) Flush(ctx context.Context) error {
	b.mu.Lock()
	ok, failed := b.successes, b.failures
	b.successes, b.failures = 0, 0
	b.flushedAt = time.Now()
	b.readAt = time.Time{} // the flush may have moved the circuit
	b.mu.Unlock()
	if ok == 0 && failed == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, b.opts.CallTimeout)
	defer cancel()
	return b.client.RecordOutcomes(ctx, b.service, ok, failed)
}

func (b *Breaker[T]) record(success bool) {
	b.mu.Lock()
	if success {
		b.successes++
	} else {
		b.failures++
	}
	due := b.opts.FlushInterval < 0 || time.Since(b.flushedAt) >= b.opts.FlushInterval
	b.mu.Unlock()
	if due {
		_ = b.Flush(context.Background()) // counts lost to an unreachable retryd are not retried
	}
}

func (b *Breaker[T]) fleetState() gobreaker.State {
	b.mu.Lock()
	if b.opts.RefreshInterval > 0 && !b.readAt.IsZero() && time.Since(b.readAt) < b.opts.RefreshInterval {
		s := b.state
		b.mu.Unlock()
		return s
	}
	b.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.CallTimeout)
	c, err := b.client.GetCircuit(ctx, b.service)
	cancel()
	b.mu.Lock()
	from := b.state
	if err == nil {
		b.state = toGobreaker(c.State)
		b.readAt = time.Now()
	}
	to := b.state
	b.mu.Unlock()
	if from != to && b.settings.OnStateChange != nil {
		b.settings.OnStateChange(b.settings.Name, from, to)
	}
	return to
}

func toGobreaker(s retrydv1.CircuitState) gobreaker.State {
	switch s {
	case retrydv1.CircuitState_OPEN:
		return gobreaker.StateOpen
	case retrydv1.CircuitState_HALF_OPEN:
		return gobreaker.StateHalfOpen
	default:
		return gobreaker.StateClosed
	}
}
