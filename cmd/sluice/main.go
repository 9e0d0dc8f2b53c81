package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/grafana/pyroscope-go"
	"github.com/hashicorp/go-hclog"

	"sluice/connectors"
	"sluice/connectors/blackhole"
	"sluice/connectors/console"
	"sluice/connectors/datagen"
	"sluice/connectors/file"
	"sluice/connectors/mysqlcdc"
	"sluice/connectors/mysqlsink"
	"sluice/connectors/starrocks"
	"sluice/connectors/tablerename"
	assembly "sluice/node"
)

// version is set by the linker (-X main.version=…).
var version = "dev"

func main() {
	if len(os.Args) < 2 {
		usage(os.Stderr)
		os.Exit(2)
	}
	switch os.Args[1] {
	case "server":
		if err := serverCmd(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "sluice:", err)
			os.Exit(1)
		}
	case "version", "--version":
		fmt.Println("sluice", version)
	case "help", "-h", "--help":
		usage(os.Stdout)
	default:
		fmt.Fprintf(os.Stderr, "sluice: unknown command %q\n", os.Args[1])
		usage(os.Stderr)
		os.Exit(2)
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: sluice <command> [flags]

commands:
  server    run a sluice node (sluice server -h for its flags)
  version   print the version
`)
}

type options struct {
	dataDir, mysqlAddr, httpAddr, raftAddr string
	nodeID, join, role, slots, tags        string
	rootPassword, pyroscopeURL, logLevel   string
	slotCount                              int
	joinTimeout                            time.Duration
	secretKeyFile                          string
	tls                                    assembly.TLSFiles
	heartbeat, sessionTimeout              time.Duration
	historyRetention, binlogRiskInterval   time.Duration
}

func parseFlags(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("sluice server", flag.ContinueOnError)
	fs.StringVar(&o.dataDir, "data-dir", "./data", "directory for the catalog (Raft log, snapshots) and users")
	fs.StringVar(&o.mysqlAddr, "mysql-addr", "127.0.0.1:9306", "MySQL protocol listen address")
	fs.StringVar(&o.httpAddr, "http-addr", "127.0.0.1:9380", "HTTP listen address (/healthz, /metrics, /debug/pprof)")
	fs.StringVar(&o.raftAddr, "raft-addr", "127.0.0.1:9370", "Raft listen address (must be reachable by other nodes)")
	fs.StringVar(&o.nodeID, "node-id", "", "node id, stable for the data dir (default: generated on first start and kept in the data dir)")
	fs.StringVar(&o.join, "join", "", "HTTP address of any node of an existing cluster to join (a node with state ignores it)")
	fs.DurationVar(&o.joinTimeout, "join-timeout", time.Minute, "how long a new node keeps trying to join before it exits")
	fs.StringVar(&o.role, "role", "hybrid", "hybrid | master | worker")
	fs.StringVar(&o.slots, "slots", "dynamic", "task slots of this node: a number, or dynamic")
	fs.StringVar(&o.tags, "tags", "", "node tags k=v,… for job placement")
	fs.StringVar(&o.rootPassword, "root-password", os.Getenv("SLUICE_ROOT_PASSWORD"), "password of user root (default $SLUICE_ROOT_PASSWORD); required unless every listener is on loopback")
	fs.StringVar(&o.pyroscopeURL, "pyroscope-url", os.Getenv("SLUICE_PYROSCOPE_URL"), "push continuous profiles to this Pyroscope server (off when empty)")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug | info | warn | error")
	fs.StringVar(&o.secretKeyFile, "secret-key-file", os.Getenv("SLUICE_SECRET_KEY_FILE"), "the cluster key (32 bytes as hex or base64, mode 0600) that seals secrets in the catalog (default $SLUICE_SECRET_KEY_FILE; without it the key is made at bootstrap, handed to joining nodes and kept in the data dir)")
	fs.StringVar(&o.tls.Cert, "tls-cert", "", "PEM certificate for the MySQL, HTTP and Raft listeners (TLS off when empty)")
	fs.StringVar(&o.tls.Key, "tls-key", "", "PEM private key of --tls-cert")
	fs.StringVar(&o.tls.CA, "tls-ca", "", "PEM CA of the cluster's node certificates: turns on mutual TLS between nodes (Raft requires, HTTP checks a client certificate) and verifies the other nodes")
	fs.DurationVar(&o.heartbeat, "heartbeat-interval", time.Second, "how often this node heartbeats to the leader")
	fs.DurationVar(&o.historyRetention, "history-retention", 24*time.Hour, "how long sluice.job_history keeps finished, failed and dropped jobs, and sluice.events its events (on the leader)")
	fs.DurationVar(&o.binlogRiskInterval, "binlog-risk-interval", 30*time.Second, "how often the leader checks how long each job's source server keeps the binlog the job still needs (sluice.binlog_risk)")
	fs.DurationVar(&o.sessionTimeout, "node-session-timeout", 10*time.Second, "a node without a heartbeat for this long is DOWN (SUSPECT after 3 missed intervals)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	switch o.role {
	case "hybrid", "master":
	case "worker": // a new worker must --join (checked once the data dir is open)
	default:
		return nil, fmt.Errorf("--role %q: want hybrid, master or worker", o.role)
	}
	if o.slots != "dynamic" {
		n, err := strconv.Atoi(o.slots)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("--slots %q: want a positive number or dynamic", o.slots)
		}
		o.slotCount = n
	}
	for _, a := range []struct{ flag, addr string }{{"--mysql-addr", o.mysqlAddr}, {"--http-addr", o.httpAddr}, {"--raft-addr", o.raftAddr}} {
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			return nil, fmt.Errorf("%s %q: %v", a.flag, a.addr, err)
		}
		if o.rootPassword == "" && !isLoopback(a.addr) {
			return nil, fmt.Errorf("%s %s is not a loopback address: set --root-password or SLUICE_ROOT_PASSWORD (root with an empty password is only allowed on loopback)", a.flag, a.addr)
		}
	}
	if o.sessionTimeout <= 3*o.heartbeat {
		return nil, fmt.Errorf("--node-session-timeout %s must be longer than 3 heartbeat intervals (%s)", o.sessionTimeout, 3*o.heartbeat)
	}
	return o, nil
}

func isLoopback(addr string) bool { return assembly.IsLoopback(addr) }

func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

// nodeID returns the node id: the flag, else the one kept in the data dir,
// else a new one written there.
func nodeID(dir, flagID string) (string, error) {
	path := filepath.Join(dir, "node-id")
	kept, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	id := strings.TrimSpace(string(kept))
	switch {
	case flagID != "" && id != "" && flagID != id:
		return "", fmt.Errorf("--node-id %s, but data dir %s belongs to node %s", flagID, dir, id)
	case flagID != "":
		id = flagID
	case id == "":
		b := make([]byte, 4)
		if _, err := rand.Read(b); err != nil {
			return "", err
		}
		id = "node-" + hex.EncodeToString(b)
	}
	if len(kept) == 0 {
		if err := os.WriteFile(path, []byte(id+"\n"), 0o640); err != nil {
			return "", err
		}
	}
	return id, nil
}

// Registry lists the connectors this binary offers (explicit wiring).
func Registry() *connectors.Registry {
	return connectors.NewRegistry().MustRegister(
		datagen.Spec(),
		blackhole.Spec(),
		console.Spec(os.Stdout),
		file.Spec(),
		tablerename.Spec(),
		mysqlcdc.Spec(),
		mysqlsink.Spec(),
		starrocks.Spec(),
	)
}

func serverCmd(args []string) error {
	o, err := parseFlags(args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	log, err := newLogger(o.logLevel)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.dataDir, 0o750); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	id, err := nodeID(o.dataDir, o.nodeID)
	if err != nil {
		return fmt.Errorf("node id: %w", err)
	}
	tlsc, err := o.tls.Load()
	if err != nil {
		return err
	}
	if o.pyroscopeURL != "" {
		p, err := pyroscope.Start(pyroscope.Config{ApplicationName: "sluice", ServerAddress: o.pyroscopeURL,
			Tags: map[string]string{"node": id}})
		if err != nil {
			return fmt.Errorf("pyroscope: %w", err)
		}
		defer p.Stop()
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	n, err := assembly.Start(ctx, assembly.Config{ID: id, DataDir: o.dataDir, MySQLAddr: o.mysqlAddr, HTTPAddr: o.httpAddr, RaftAddr: o.raftAddr,
		Join: o.join, JoinTimeout: o.joinTimeout, Role: o.role, Slots: o.slotCount, Tags: o.tags,
		RootPassword: o.rootPassword, SecretKeyFile: o.secretKeyFile, TLS: tlsc,
		HeartbeatInterval: o.heartbeat, SessionTimeout: o.sessionTimeout, HistoryRetention: o.historyRetention,
		BinlogRiskInterval: o.binlogRiskInterval,
		Registry:           Registry(), Logger: log,
		RaftLogger: hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Warn, Output: os.Stderr})})
	if err != nil {
		return err
	}
	<-ctx.Done()
	log.Info("shutting down")
	return n.Close()
}
