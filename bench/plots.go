package main

import (
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// histogramPNG draws the distribution of values (a histogram of 40 bins)
// as a PNG at path, for REPORT.md.
func histogramPNG(path, title, xLabel string, values []float64) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xLabel
	p.Y.Label.Text = "rows"
	h, err := plotter.NewHist(plotter.Values(values), 40)
	if err != nil {
		return err
	}
	p.Add(h)
	return p.Save(8*vg.Inch, 4*vg.Inch, path)
}
