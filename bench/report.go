package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"sluice/internal/mariadbtest"
)

// Machine is where and on what a run happened (bench/out/machine.json,
// and the head of REPORT.md).
type Machine struct {
	Commit  string    `json:"commit"`
	Dirty   bool      `json:"dirty"`
	At      time.Time `json:"at"`
	Cores   int       `json:"cores"`
	CPU     string    `json:"cpu,omitempty"`
	OS      string    `json:"os"`
	Go      string    `json:"go"`
	MariaDB string    `json:"mariadb,omitempty"`
}

func thisMachine() Machine {
	m := Machine{At: time.Now().UTC(), Cores: runtime.NumCPU(), OS: runtime.GOOS + "/" + runtime.GOARCH, Go: runtime.Version()}
	if out, err := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
	}
	if out, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil {
		m.Dirty = len(strings.TrimSpace(string(out))) > 0
	}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if bin, err := mariadbtest.Binary(); err == nil {
		if out, err := exec.Command(bin, "--version").Output(); err == nil {
			m.MariaDB = strings.TrimSpace(string(out))
		}
	}
	return m
}

// verdict says how a figure stands against its floor and goal.
func verdict(f Figure) string {
	if f.Floor == 0 && f.Goal == 0 {
		return "—"
	}
	// A floor bounds the ratio when the figure has a baseline and the floor
	// reads as a ratio (quality.md states those as 0.7×, 0.8×, …); else it
	// bounds the value: from below, or from above for a Max figure.
	v := f.Value
	better := func(x, bound float64) bool { return x >= bound }
	switch {
	case f.Max:
		better = func(x, bound float64) bool { return x <= bound }
	case f.Baseline != "" && f.Floor > 0 && f.Floor < 10:
		v = f.Ratio
	}
	switch {
	case f.Goal != 0 && better(v, f.Goal):
		return "goal met"
	case f.Floor != 0 && better(v, f.Floor):
		return "floor met"
	case f.Floor != 0:
		return "**floor NOT met**"
	}
	return "goal not met"
}

func num(v float64) string {
	if v == 0 {
		return ""
	}
	return fmt.Sprintf("%.4g", v)
}

// writeReport renders REPORT.md from every figure file in dir (each with
// the time it was written: a run with -only refreshes some of them) and
// the PNG plots there.
func writeReport(dir string, m Machine) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return err
	}
	sort.Strings(files)
	var b strings.Builder
	fmt.Fprintf(&b, "# sluice benchmarks\n\n")
	dirty := ""
	if m.Dirty {
		dirty = " (with uncommitted changes)"
	}
	fmt.Fprintf(&b, "Written by `make bench` at %s, commit `%s`%s.\n\n", m.At.Format(time.RFC3339), m.Commit, dirty)
	fmt.Fprintf(&b, "Machine: %d cores (%s), %s, %s", m.Cores, orNA(m.CPU), m.OS, m.Go)
	if m.MariaDB != "" {
		fmt.Fprintf(&b, ", %s", m.MariaDB)
	}
	b.WriteString(".\n\nA ratio compares a figure with its baseline measured side by side in the same run; a floor is what ")
	b.WriteString("`../shared/notes/quality.md` requires, a goal what it aims at (for latencies both are upper bounds).\n\n")

	var missed []string
	var body strings.Builder
	for _, path := range files {
		name := filepath.Base(path)
		if name == "machine.json" {
			continue
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var figs []Figure
		if err := json.Unmarshal(data, &figs); err != nil {
			continue // not a figure file
		}
		when := ""
		if st, err := os.Stat(path); err == nil {
			when = st.ModTime().UTC().Format("2006-01-02 15:04")
		}
		fmt.Fprintf(&body, "## %s\n\nwritten %s UTC\n\n", strings.TrimSuffix(name, ".json"), when)
		body.WriteString("| figure | value | unit | ratio | vs | floor | goal | verdict |\n|---|---:|---|---:|---|---:|---:|---|\n")
		var notes []string
		for _, f := range figs {
			v := verdict(f)
			if strings.Contains(v, "NOT") {
				missed = append(missed, fmt.Sprintf("%s: %s", name, f.Name))
			}
			fmt.Fprintf(&body, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", cell(f.Name), num(f.Value), f.Unit, num(f.Ratio), cell(f.Baseline),
				num(f.Floor), num(f.Goal), v)
			if f.Note != "" {
				notes = append(notes, fmt.Sprintf("- %s: %s", f.Name, f.Note))
			}
		}
		if len(notes) > 0 {
			body.WriteString("\n" + strings.Join(notes, "\n") + "\n")
		}
		body.WriteString("\n")
	}
	if len(missed) == 0 {
		b.WriteString("Every figure with a floor meets it.\n\n")
	} else {
		fmt.Fprintf(&b, "Floors not met (%d):\n\n", len(missed))
		for _, s := range missed {
			fmt.Fprintf(&b, "- %s\n", s)
		}
		b.WriteString("\n")
	}
	if pngs, _ := filepath.Glob(filepath.Join(dir, "*.png")); len(pngs) > 0 {
		sort.Strings(pngs)
		b.WriteString("## Plots\n\n")
		for _, p := range pngs {
			n := filepath.Base(p)
			fmt.Fprintf(&b, "![%s](%s)\n\n", strings.TrimSuffix(n, ".png"), n)
		}
	}
	b.WriteString(body.String())
	return os.WriteFile(filepath.Join(dir, "REPORT.md"), []byte(b.String()), 0o644)
}

func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

func orNA(s string) string {
	if s == "" {
		return "cpu unknown"
	}
	return s
}
