// Command bench runs sluice's benchmarks side by side with their baselines
// in one process and writes the figures as JSON to bench/out/ (one object
// per figure: name, value, unit, and baseline/ratio where there is one),
// then REPORT.md over every figure file with the machine, the commit and
// the PNG plots (gonum/plot).
//
//	go run ./bench [-rows N] [-runs K] [-out DIR] [-only FILE|REPORT.md]
//
// Benchmarks never run in the test suite: timings on shared machines are
// noise, so they are reported, not asserted.
package main
