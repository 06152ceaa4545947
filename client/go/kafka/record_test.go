package kafka

import (
	"reflect"
	"testing"

	retryd "github.com/retryd/retryd/client/go"
)

func TestRecordRoundTripsThroughEnvelopeHeaders(t *testing.T) {
	r := &Record{Topic: "orders", Partition: 2, Offset: 41, Key: []byte("\x00order-7"), Value: []byte(`{"order": 7}`),
		Headers: map[string][]byte{"trace": []byte("abc"), "bin": {0xff, 0}}, Attempt: 1}
	if got := DefaultMessageID(r); got != "orders/2/41" {
		t.Fatalf("message id %q", got)
	}
	back := RecordFromEnvelope(&retryd.Envelope{Payload: r.Value, Attempt: 1, Headers: EnvelopeHeaders(r)})
	want := *r
	want.Attempt = 2
	if !reflect.DeepEqual(*back, want) {
		t.Fatalf("got %+v, want %+v", *back, want)
	}
	noKey := RecordFromEnvelope(&retryd.Envelope{Headers: EnvelopeHeaders(&Record{Topic: "t"})})
	if noKey.Key != nil || noKey.Attempt != 1 {
		t.Fatalf("got %+v", noKey)
	}
}
