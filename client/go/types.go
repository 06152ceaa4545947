package retryd

import (
	"time"

	retrydv1 "github.com/retryd/retryd/client/go/gen/retryd/v1"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// ErrorClass is the failure taxonomy (retryd.v1.ErrorClass).
type ErrorClass int32

// The error classes.
const (
	ClassUnspecified ErrorClass = ErrorClass(retrydv1.ErrorClass_ERROR_CLASS_UNSPECIFIED)
	ClassTransient   ErrorClass = ErrorClass(retrydv1.ErrorClass_TRANSIENT)
	ClassRecoverable ErrorClass = ErrorClass(retrydv1.ErrorClass_RECOVERABLE)
	ClassPermanent   ErrorClass = ErrorClass(retrydv1.ErrorClass_PERMANENT)
)

func (c ErrorClass) String() string { return retrydv1.ErrorClass(c).String() }

// Envelope is a message a worker failed to process. The first fields belong to the worker; the
// server-owned ones are filled in on leased envelopes and ignored when reporting. Raw holds the
// full protobuf message (attempt history included) when the envelope came from the server.
type Envelope struct {
	Service       string
	MessageID     string
	TraceID       string
	Attempt       int32
	FirstSeenAt   time.Time
	Payload       []byte
	ContentType   string
	SchemaVersion string
	Source        string
	Headers       map[string]string

	// Server-owned.
	State          retrydv1.EnvelopeState
	MaxAttempts    int32
	NextRetryAt    time.Time
	LastError      *Failure
	LeaseExpiresAt time.Time
	// RetryLifeStartedAt is when the current retry life began: FirstSeenAt, or the replay that
	// reset the attempts (max_retry_duration counts from here).
	RetryLifeStartedAt time.Time
	Raw                *retrydv1.Envelope
}

// Failure is what went wrong this time.
type Failure struct {
	ErrorCode  string
	ErrorClass ErrorClass
	Message    string
	HTTPStatus int32
	// RetryAfter is a "do not retry sooner" hint; 0 means none.
	RetryAfter time.Duration
}

// Decision is retryd's answer to a reported failure.
type Decision struct {
	Kind        retrydv1.DecisionKind
	Reason      retrydv1.DeadLetterReason
	NextRetryAt time.Time
	Attempt     int32
	Duplicate   bool
	ErrorClass  ErrorClass
	State       retrydv1.EnvelopeState
	Delay       time.Duration
}

// Scheduled reports whether another attempt was scheduled.
func (d *Decision) Scheduled() bool { return d.Kind == retrydv1.DecisionKind_DECISION_SCHEDULED }

// DeadLettered reports whether the envelope went to the dead-letter queue.
func (d *Decision) DeadLettered() bool { return d.Kind == retrydv1.DecisionKind_DECISION_DEAD_LETTERED }

// LeasedEnvelope is a due retry handed out under a lease; this delivery is attempt
// Envelope.Attempt+1.
type LeasedEnvelope struct {
	Envelope       *Envelope
	LeaseToken     string
	LeaseExpiresAt time.Time
}

// LeaseResult is the answer to Lease.
type LeaseResult struct {
	Envelopes    []*LeasedEnvelope
	CircuitState retrydv1.CircuitState
}

// Circuit is the circuit state of a service.
type Circuit struct {
	State       retrydv1.CircuitState
	Since       time.Time
	NextProbeAt time.Time
	FailureRate float64
}

func tsTime(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}

func durOf(d *durationpb.Duration) time.Duration {
	if d == nil {
		return 0
	}
	return d.AsDuration()
}

func (e *Envelope) toProto() *retrydv1.Envelope {
	pb := &retrydv1.Envelope{
		Service:       e.Service,
		MessageId:     e.MessageID,
		TraceId:       e.TraceID,
		Attempt:       e.Attempt,
		Payload:       e.Payload,
		ContentType:   e.ContentType,
		SchemaVersion: e.SchemaVersion,
		Source:        e.Source,
		Headers:       e.Headers,
	}
	if !e.FirstSeenAt.IsZero() {
		pb.FirstSeenAt = timestamppb.New(e.FirstSeenAt)
	}
	return pb
}

func envelopeFromProto(pb *retrydv1.Envelope) *Envelope {
	e := &Envelope{
		Service:        pb.GetService(),
		MessageID:      pb.GetMessageId(),
		TraceID:        pb.GetTraceId(),
		Attempt:        pb.GetAttempt(),
		FirstSeenAt:    tsTime(pb.GetFirstSeenAt()),
		Payload:        pb.GetPayload(),
		ContentType:    pb.GetContentType(),
		SchemaVersion:  pb.GetSchemaVersion(),
		Source:         pb.GetSource(),
		Headers:        pb.GetHeaders(),
		State:          pb.GetState(),
		MaxAttempts:    pb.GetMaxAttempts(),
		NextRetryAt:    tsTime(pb.GetNextRetryAt()),
		LeaseExpiresAt: tsTime(pb.GetLeaseExpiresAt()),
		Raw:            pb,
	}
	e.RetryLifeStartedAt = tsTime(pb.GetRetryLifeStartedAt())
	if le := pb.GetLastError(); le != nil {
		e.LastError = failureFromProto(le)
	}
	return e
}

func (f *Failure) toProto() *retrydv1.Failure {
	msg := f.Message
	if len(msg) > 4096 {
		msg = msg[:4093] + "..."
	}
	code := f.ErrorCode
	if len(code) > 128 {
		code = code[:128]
	}
	pb := &retrydv1.Failure{
		ErrorCode:  code,
		ErrorClass: retrydv1.ErrorClass(f.ErrorClass),
		Message:    msg,
		HttpStatus: f.HTTPStatus,
	}
	if f.RetryAfter > 0 {
		pb.RetryAfter = durationpb.New(f.RetryAfter)
	}
	return pb
}

func failureFromProto(pb *retrydv1.Failure) *Failure {
	return &Failure{
		ErrorCode:  pb.GetErrorCode(),
		ErrorClass: ErrorClass(pb.GetErrorClass()),
		Message:    pb.GetMessage(),
		HTTPStatus: pb.GetHttpStatus(),
		RetryAfter: durOf(pb.GetRetryAfter()),
	}
}

func decisionFromProto(pb *retrydv1.Decision) *Decision {
	return &Decision{
		Kind:        pb.GetKind(),
		Reason:      pb.GetReason(),
		NextRetryAt: tsTime(pb.GetNextRetryAt()),
		Attempt:     pb.GetAttempt(),
		Duplicate:   pb.GetDuplicate(),
		ErrorClass:  ErrorClass(pb.GetErrorClass()),
		State:       pb.GetState(),
		Delay:       durOf(pb.GetDelay()),
	}
}
