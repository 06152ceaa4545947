package retryd

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// classified wraps an error with what the application says about it: the facts (error code,
// HTTP status, Retry-After) and, when it chose one, a class.
type classified struct {
	err        error
	class      ErrorClass
	retryAfter time.Duration
	code       string
	httpStatus int32
}

func (c *classified) Error() string {
	if c.err == nil {
		return c.class.String()
	}
	return c.err.Error()
}

func (c *classified) Unwrap() error { return c.err }

func wrap(err error, f func(*classified)) error {
	if err == nil {
		return nil
	}
	c := &classified{err: err}
	var inner *classified
	if errors.As(err, &inner) {
		*c = *inner
		c.err = err
	}
	f(c)
	return c
}

// Transient marks err as a blip: retried soon with exponential backoff. nil stays nil.
func Transient(err error) error {
	return wrap(err, func(c *classified) { c.class = ClassTransient })
}

// Recoverable marks err as a dependency degraded for a while: retried on the slower cadence.
func Recoverable(err error) error {
	return wrap(err, func(c *classified) { c.class = ClassRecoverable })
}

// Permanent marks err as one that will never succeed: dead-lettered at once.
func Permanent(err error) error {
	return wrap(err, func(c *classified) { c.class = ClassPermanent })
}

// WithRetryAfter attaches a Retry-After hint: retryd waits at least d before the next attempt.
func WithRetryAfter(err error, d time.Duration) error {
	return wrap(err, func(c *classified) { c.retryAfter = d })
}

// WithErrorCode attaches a machine-readable error code such as "UPSTREAM_TIMEOUT".
func WithErrorCode(err error, code string) error {
	return wrap(err, func(c *classified) { c.code = code })
}

// HTTPError builds the error for a failed HTTP call: it carries the facts — the status, the
// Retry-After header (seconds or HTTP-date), the error code HTTP_<status> — and no class: the
// service's policy on the server classifies it (its rules by error code, then the status: by
// default 408, 429, 500, 502, 503, 504 TRANSIENT, other 4xx, 501, 505 PERMANENT). Wrap it in
// Transient/Recoverable/Permanent to choose the class yourself. It returns nil for a status
// below 400.
func HTTPError(status int, retryAfterHeader string) error {
	if status < 400 {
		return nil
	}
	return &classified{
		err:        fmt.Errorf("HTTP %d %s", status, http.StatusText(status)),
		code:       "HTTP_" + strconv.Itoa(status),
		httpStatus: int32(status),
		retryAfter: ParseRetryAfter(retryAfterHeader, time.Now()),
	}
}

// ParseRetryAfter parses a Retry-After header value (delay-seconds or an HTTP-date) relative to
// now; it returns 0 for an empty or malformed value or a date in the past.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// FailureFromError is the Failure reported to retryd for err. Errors wrapped with
// Transient/Recoverable/Permanent/WithRetryAfter/WithErrorCode/HTTPError keep what they carry;
// a class is sent only when the application chose one (Transient, Recoverable, Permanent).
// context.DeadlineExceeded and net timeouts get the error code TIMEOUT; the service's policy
// decides the class of everything unwrapped (its default unclassified class is TRANSIENT).
func FailureFromError(err error) *Failure {
	f := &Failure{Message: "error"}
	if err == nil {
		return f
	}
	f.Message = err.Error()
	var c *classified
	if errors.As(err, &c) {
		f.ErrorClass = c.class
		f.RetryAfter = c.retryAfter
		f.ErrorCode = c.code
		f.HTTPStatus = c.httpStatus
		return f
	}
	var timeout interface{ Timeout() bool }
	if errors.As(err, &timeout) && timeout.Timeout() {
		f.ErrorCode = "TIMEOUT"
	}
	return f
}
