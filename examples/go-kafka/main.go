// A Kafka consumer that hands failed records to retryd and gets their retries back through a
// retryd Worker (client/go/kafka, franz-go).
//
//	bash scripts/kafka-broker.sh start /tmp/kafka      # prints the bootstrap address
//	bash scripts/serve.sh &                            # retryd on 127.0.0.1:50051
//	cd examples/go-kafka && go run . -produce 100 127.0.0.1:PORT orders
//
// With -produce N it first creates the topic (3 partitions) and writes N orders {"order": i}.
// Every 7th order fails transiently the first time (retried by retryd), every 50th is invalid and
// dead-lettered at once; partitions never wait for either, and offsets are committed only past
// records that succeeded or whose failure retryd acknowledged. Ctrl-C stops it.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"

	retryd "github.com/retryd/retryd/client/go"
	"github.com/retryd/retryd/client/go/kafka"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

const service = "example-go-kafka"

func charge(_ context.Context, r *kafka.Record) error {
	var msg struct{ Order int }
	if err := json.Unmarshal(r.Value, &msg); err != nil {
		return retryd.Permanent(retryd.WithErrorCode(err, "INVALID_JSON"))
	}
	switch {
	case msg.Order%50 == 0:
		return retryd.Permanent(retryd.WithErrorCode(fmt.Errorf("order %d: missing customer", msg.Order), "INVALID_ORDER"))
	case msg.Order%7 == 0 && r.Attempt == 1:
		return retryd.Transient(retryd.WithErrorCode(fmt.Errorf("order %d: payment gateway timed out", msg.Order), "GATEWAY_TIMEOUT"))
	}
	fmt.Printf("charged order %d (attempt %d, %s/%d/%d)\n", msg.Order, r.Attempt, r.Topic, r.Partition, r.Offset)
	return nil
}

func produce(ctx context.Context, bootstrap, topic string, n int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(bootstrap))
	if err != nil {
		return err
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 3, 1, nil, topic); err != nil {
		log.Printf("topic %s: %v", topic, err)
	}
	var recs []*kgo.Record
	for i := 1; i <= n; i++ {
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprintf(`{"order": %d}`, i))})
	}
	return cl.ProduceSync(ctx, recs...).FirstErr()
}

func main() {
	n := flag.Int("produce", 0, "create the topic and produce N orders first")
	group := flag.String("group", "example-go-kafka", "consumer group")
	flag.Parse()
	if flag.NArg() != 2 {
		fmt.Fprintln(os.Stderr, "usage: go-kafka [-produce N] BOOTSTRAP TOPIC")
		os.Exit(2)
	}
	bootstrap, topic := flag.Arg(0), flag.Arg(1)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *n > 0 {
		if err := produce(ctx, bootstrap, topic, *n); err != nil {
			log.Fatal(err)
		}
	}
	addr := os.Getenv("RETRYD_ADDR")
	if addr == "" {
		addr = "127.0.0.1:50051"
	}
	client, err := retryd.NewClient(ctx, addr)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	worker := kafka.RetryWorker(client, service, charge)
	done := make(chan error, 1)
	go func() { done <- worker.Run(ctx) }()
	c := &kafka.Consumer{Retryd: client, Service: service, Handler: charge,
		// The order id, not the offset: the same order produced twice is one envelope.
		MessageID: func(r *kafka.Record) string { return "order-" + string(r.Key) },
		OnReported: func(r *kafka.Record, d *retryd.Decision) {
			fmt.Printf("handed over %s/%d/%d: %v duplicate=%v\n", r.Topic, r.Partition, r.Offset, d.Kind, d.Duplicate)
		}}
	if err := c.Run(ctx, kgo.SeedBrokers(bootstrap), kgo.ConsumerGroup(*group), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())); err != nil {
		log.Fatal(err)
	}
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		log.Fatal(err)
	}
}
