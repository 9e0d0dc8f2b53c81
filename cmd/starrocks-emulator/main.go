// Command starrocks-emulator runs the StarRocks emulator of
// internal/sremu as a process, for the demo and end-to-end tests. It is
// not StarRocks: see internal/sremu/README.md for what it reproduces.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"sluice/internal/sremu"
)

func main() {
	fe := flag.String("fe", "127.0.0.1:8030", "FE HTTP address (Stream Load, transactions, get_load_state)")
	query := flag.String("query", "127.0.0.1:9030", "MySQL-protocol query address")
	user := flag.String("user", "root", "user")
	password := flag.String("password", "", "password")
	latency := flag.Duration("commit-latency", 50*time.Millisecond, "delay of every commit, like a real FE's publish")
	failEvery := flag.Int("fail-every", 0, "answer every n-th load request with HTTP 500 (0: never)")
	track := flag.Bool("track-visibility", false, "stamp rows with __visible_at (for latency benchmarks)")
	flag.Parse()
	e, err := sremu.StartOn(*user, *password, *fe)
	if err != nil {
		fmt.Fprintln(os.Stderr, "starrocks-emulator:", err)
		os.Exit(1)
	}
	e.TrackVisibility = *track
	q, err := e.ServeQueriesOn(*query)
	if err != nil {
		fmt.Fprintln(os.Stderr, "starrocks-emulator:", err)
		os.Exit(1)
	}
	e.SetFaults(sremu.Faults{CommitLatency: *latency, FailEvery: *failEvery})
	fmt.Printf("StarRocks emulator (not StarRocks): FE http://%s, BE http://%s, query port %s\n", e.FE, e.BE, q)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	e.Close()
}
