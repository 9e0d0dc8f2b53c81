package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"syscall"
	"time"

	"github.com/apache/arrow/go/v15/arrow/memory"

	"sluice/connectors/blackhole"
	"sluice/connectors/datagen"
)

// outDir is where reports and plots go (-out).
var outDir = "bench/out"

// Figure is one reported number.
type Figure struct {
	Name     string  `json:"name"`
	Value    float64 `json:"value"`
	Unit     string  `json:"unit"`
	Baseline string  `json:"baseline,omitempty"`
	Ratio    float64 `json:"ratio,omitempty"`
	Floor    float64 `json:"floor,omitempty"`
	Goal     float64 `json:"goal,omitempty"`
	// Max makes Floor and Goal absolute upper bounds on Value (a latency),
	// instead of lower bounds on Ratio.
	Max  bool   `json:"max,omitempty"`
	Note string `json:"note,omitempty"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run() error {
	rows := flag.Int64("rows", 10_000_000, "rows per run")
	runs := flag.Int("runs", 3, "runs of each side (the median is reported)")
	out := flag.String("out", "bench/out", "output directory")
	cdcRows := flag.Int("cdc-rows", 1_000_000, "rows of the CDC benchmark table")
	only := flag.String("only", "", "run only the report with this file name (REPORT.md: only render REPORT.md from the files in -out)")
	bin := flag.String("sluice", "bin/sluice", "the sluice binary (failover runs real processes)")
	tables := flag.Int("tables", 10_000, "tables of the many-tables benchmark (jobs of 100 each in its second half)")
	profile := flag.String("cpuprofile", "", "write a CPU profile of the whole run here")
	flag.Parse()
	if *profile != "" {
		f, err := os.Create(*profile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}

	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	outDir = *out
	reports := []struct {
		file string
		run  func() ([]Figure, error)
	}{
		{"engine_overhead.json", func() ([]Figure, error) { return engineOverhead(*rows, *runs) }},
		{"checkpoint_commit.json", func() ([]Figure, error) { return checkpointCommit(500) }},
		{"cluster_commit.json", func() ([]Figure, error) { return clusterCommit(500) }},
		{"failover.json", func() ([]Figure, error) { return failover(*bin, 10) }},
		{"checkpoint_cost.json", func() ([]Figure, error) { return checkpointCost(5**rows, *runs) }}, // runs of several seconds: several checkpoints each
		{"cdc_mysql.json", func() ([]Figure, error) { return cdcBench(*cdcRows) }},
		{"starrocks_e2e.json", func() ([]Figure, error) { return starrocksBench(10) }},
		{"tables_10k.json", func() ([]Figure, error) { return manyTables(*bin, *tables, 100, time.Minute) }},
	}
	for _, r := range reports {
		if *only != "" && r.file != *only {
			continue
		}
		figs, err := r.run()
		if err != nil {
			return fmt.Errorf("%s: %w", r.file, err)
		}
		path := filepath.Join(*out, r.file)
		data, _ := json.MarshalIndent(figs, "", "  ")
		if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
			return err
		}
		printFigures(figs)
		fmt.Println("wrote", path)
	}
	// One report over every figure file (each says when it was written),
	// with the machine and commit of this run.
	m := thisMachine()
	if *only == "" {
		data, _ := json.MarshalIndent(m, "", "  ")
		if err := os.WriteFile(filepath.Join(*out, "machine.json"), append(data, '\n'), 0o644); err != nil {
			return err
		}
	}
	if err := writeReport(*out, m); err != nil {
		return err
	}
	fmt.Println("wrote", filepath.Join(*out, "REPORT.md"))
	return nil
}

func printFigures(figs []Figure) {
	for _, f := range figs {
		line := fmt.Sprintf("%-32s %14.3f %s", f.Name, f.Value, f.Unit)
		absolute := ""
		if f.Max && f.Floor > 0 {
			absolute = fmt.Sprintf("  (at most %g %s: ", f.Floor, f.Unit)
			if f.Value <= f.Floor {
				absolute += "met)"
			} else {
				absolute += "NOT MET)"
			}
		}
		if f.Baseline != "" && !f.Max {
			verdict := ""
			if f.Floor > 0 {
				verdict = "  (floor " + fmt.Sprint(f.Floor) + ": "
				if f.Ratio >= f.Floor {
					verdict += "met)"
				} else {
					verdict += "NOT MET)"
				}
			}
			line += fmt.Sprintf("   ratio %.3f vs %s%s", f.Ratio, f.Baseline, verdict)
		} else if f.Baseline != "" {
			line += fmt.Sprintf("   ratio %.3f vs %s", f.Ratio, f.Baseline)
		}
		fmt.Println(line + absolute)
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type sample struct{ wall, cpu time.Duration }

func median(s []sample) sample {
	sort.Slice(s, func(i, j int) bool { return s[i].wall < s[j].wall })
	return s[len(s)/2]
}

// bareLoop reads the same datagen batches and hands them to the same
// blackhole sink in one goroutine: no queues, no engine.
func bareLoop(rows int64) (sample, error) {
	src := datagen.New(datagen.Config{Rows: rows, BatchSize: 1024, Parallelism: 1}, memory.NewGoAllocator())
	defer src.Close()
	sink := &blackhole.Sink{}
	ctx := context.Background()
	if err := src.Open(ctx, nil); err != nil {
		return sample{}, err
	}
	runtime.GC()
	c0, t0 := cpuTime(), time.Now()
	for {
		b, err := src.Read(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return sample{}, err
		}
		if err := sink.Write(ctx, b); err != nil {
			return sample{}, err
		}
		b.Release()
	}
	s := sample{wall: time.Since(t0), cpu: cpuTime() - c0}
	if sink.Rows() != rows {
		return sample{}, fmt.Errorf("bare loop wrote %d rows, want %d", sink.Rows(), rows)
	}
	return s, nil
}

// engineOverhead compares the two, alternating runs so that machine noise
// hits both sides alike.
func engineOverhead(rows int64, runs int) ([]Figure, error) {
	var bare, eng []sample
	for i := 0; i < runs; i++ {
		b, err := bareLoop(rows)
		if err != nil {
			return nil, err
		}
		e, err := engineJob(rows, 1, "30s")
		if err != nil {
			return nil, err
		}
		bare, eng = append(bare, b), append(eng, e)
	}
	b, e := median(bare), median(eng)
	perS := func(s sample) float64 { return float64(rows) / s.wall.Seconds() }
	perCPU := func(s sample) float64 { return float64(rows) / s.cpu.Seconds() }
	return []Figure{
		{Name: "bare_loop_rows_per_s", Value: perS(b), Unit: "rows/s",
			Note: "datagen.Read + blackhole.Write in one goroutine, same batches (1024 rows)"},
		{Name: "engine_rows_per_s", Value: perS(e), Unit: "rows/s", Baseline: "bare_loop_rows_per_s",
			Ratio: perS(e) / perS(b), Floor: 0.8, Goal: 0.95,
			Note: "datagen -> blackhole job through exec (parallelism 1), create to FINISHED"},
		{Name: "bare_loop_rows_per_cpu_s", Value: perCPU(b), Unit: "rows/CPU-s"},
		{Name: "engine_rows_per_cpu_s", Value: perCPU(e), Unit: "rows/CPU-s", Baseline: "bare_loop_rows_per_cpu_s",
			Ratio: perCPU(e) / perCPU(b), Note: "engine CPU cost per row against the bare loop"},
	}, nil
}
