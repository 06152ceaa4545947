// Command gobreaker calls an HTTP service through a gobreaker breaker shared by the whole fleet
// through retryd (examples/README.md). Run it twice: `go run . http://127.0.0.1:8089` (nothing
// listens there) trips the circuit, and `go run . http://127.0.0.1:8088` in another terminal
// fails fast meanwhile, although its own calls never failed.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strings"
	"time"

	retryd "github.com/retryd/retryd/client/go"
	"github.com/retryd/retryd/client/go/fleetbreaker"
	"github.com/sony/gobreaker/v2"
)

func main() {
	if len(os.Args) < 2 {
		log.Fatal("usage: gobreaker BASE_URL")
	}
	base := os.Args[1]
	c, err := retryd.NewClient(context.Background(), "")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	cb := fleetbreaker.New[string](c, "example-breaker", gobreaker.Settings{
		Name: "example-breaker",
		OnStateChange: func(name string, from, to gobreaker.State) {
			log.Printf("%s: the fleet's circuit went %v → %v", name, from, to)
		},
	}, fleetbreaker.Options{})
	defer func() { _ = cb.Flush(context.Background()) }()
	for i := 0; i < 60; i++ {
		item := fmt.Sprintf("item-%d", i)
		body, err := cb.Execute(func() (string, error) {
			resp, err := http.Post(base+"/process", "text/plain", strings.NewReader(item))
			if err != nil {
				return "", err
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode >= 400 {
				return "", retryd.HTTPError(resp.StatusCode, resp.Header.Get("Retry-After"))
			}
			return string(b), nil
		})
		switch {
		case errors.Is(err, gobreaker.ErrOpenState):
			fmt.Printf("%d: failed fast, the fleet's circuit is %v\n", i, cb.State())
		case err != nil:
			fmt.Printf("%d: %v (%v)\n", i, err, cb.State())
		default:
			fmt.Printf("%d: ok %q (%v)\n", i, body, cb.State())
		}
		time.Sleep(250 * time.Millisecond)
	}
}
