// Package failpoint injects faults at named places, for tests only.
//
// Code marks a place with Hit("name"). Nothing happens unless the point was
// enabled: in-process by Enable (tests), or — only in a binary built with
// the `failpoints` build tag — by the SLUICE_FAILPOINTS environment
// variable, e.g. SLUICE_FAILPOINTS="after-sink-precommit=exit@3". Release
// binaries ignore the variable.
//
// Actions: exit (the process ends at once with status 86, like kill -9: no
// deferred code, no flush), panic, error (Hit returns ErrInjected). "@N"
// fires on the Nth hit only.
package failpoint

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Named failpoints of sluice.
const (
	AfterSinkPreCommit = "after-sink-precommit" // sink pre-committed, before the checkpoint is committed in the catalog
	BeforeSinkCommit   = "before-sink-commit"   // checkpoint committed in the catalog, before sinks commit
	MidBatch           = "mid-batch"            // a sink has written part of a batch
)

// ErrInjected is returned by Hit for the error action.
var ErrInjected = errors.New("failpoint: injected error")

// ExitCode is the status of the exit action.
const ExitCode = 86

type point struct {
	action string
	at     int // 0: every hit
	hits   int
}

var (
	mu     sync.Mutex
	points = map[string]*point{}
	active bool // fast path: nothing enabled
)

// Enable turns a point on with an action spec ("exit", "panic", "error", each
// with an optional "@N").
func Enable(name, spec string) error {
	action, at, err := parse(spec)
	if err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	points[name] = &point{action: action, at: at}
	active = true
	return nil
}

// Disable turns every point off.
func Disable() {
	mu.Lock()
	defer mu.Unlock()
	points = map[string]*point{}
	active = false
}

func parse(spec string) (string, int, error) {
	action, n, hasAt := strings.Cut(spec, "@")
	at := 0
	if hasAt {
		v, err := strconv.Atoi(n)
		if err != nil || v < 1 {
			return "", 0, fmt.Errorf("failpoint: bad count in %q", spec)
		}
		at = v
	}
	switch action {
	case "exit", "panic", "error":
		return action, at, nil
	}
	return "", 0, fmt.Errorf("failpoint: unknown action in %q (exit, panic, error)", spec)
}

// enableFromEnv reads SLUICE_FAILPOINTS ("name=spec,name=spec").
func enableFromEnv() error {
	for _, kv := range strings.Split(os.Getenv("SLUICE_FAILPOINTS"), ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		name, spec, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("failpoint: %q is not name=action", kv)
		}
		if err := Enable(name, spec); err != nil {
			return err
		}
	}
	return nil
}

// Hit runs the action of an enabled point.
func Hit(name string) error {
	mu.Lock()
	if !active {
		mu.Unlock()
		return nil
	}
	p := points[name]
	if p == nil {
		mu.Unlock()
		return nil
	}
	p.hits++
	fire := p.at == 0 || p.hits == p.at
	action := p.action
	mu.Unlock()
	if !fire {
		return nil
	}
	switch action {
	case "exit":
		fmt.Fprintf(os.Stderr, "failpoint %s: exit\n", name)
		os.Exit(ExitCode)
	case "panic":
		panic("failpoint " + name)
	}
	return fmt.Errorf("%w at %s", ErrInjected, name)
}
