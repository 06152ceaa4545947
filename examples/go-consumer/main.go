// Command go-consumer is the Go counterpart of examples/python_consumer.py: it hands first
// failures to retryd from a consumer loop, then runs a retryd.Worker until SIGINT/SIGTERM.
//
//	python3 examples/http_service.py 8088 &
//	cd examples/go-consumer && RETRYD_ADDR=127.0.0.1:50051 go run . http://127.0.0.1:8088
package main

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	retryd "github.com/retryd/retryd/client/go"
)

const service = "example-go"

func call(ctx context.Context, url string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/process", bytes.NewReader(body))
	if err != nil {
		return retryd.Permanent(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return retryd.WithErrorCode(retryd.Transient(err), "CONNECT")
	}
	defer resp.Body.Close()
	return retryd.HTTPError(resp.StatusCode, resp.Header.Get("Retry-After")) // nil for 2xx
}

func main() {
	url := "http://127.0.0.1:8088"
	if len(os.Args) > 1 {
		url = os.Args[1]
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	client, err := retryd.NewClient(ctx, "") // $RETRYD_ADDR, $RETRYD_TOKEN
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	for _, item := range []string{"ok-2", "flaky-2", "slow-2", "bad-2"} { // the consumer loop
		if err := call(ctx, url, []byte(item)); err != nil {
			d, rerr := client.ReportFailure(ctx, &retryd.Envelope{Service: service, MessageID: item, Payload: []byte(item)}, err, "")
			if rerr != nil {
				log.Fatal(rerr)
			}
			fmt.Printf("%s: %v -> %v attempt=%d reason=%v\n", item, err, d.Kind, d.Attempt, d.Reason)
			continue
		}
		fmt.Printf("%s: ok\n", item)
	}

	w := &retryd.Worker{Client: client, Service: service, Concurrency: 2, WaitTime: 5 * time.Second,
		Handler: func(ctx context.Context, e *retryd.Envelope) error {
			if err := call(ctx, url, e.Payload); err != nil {
				return err
			}
			fmt.Printf("retry of %s (attempt %d) succeeded\n", e.MessageID, e.Attempt+1)
			return nil
		}}
	fmt.Println("worker: taking due retries until Ctrl-C")
	if err := w.Run(ctx); err != nil {
		log.Fatal(err)
	}
}
