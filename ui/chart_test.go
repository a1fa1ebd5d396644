package ui

import (
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/theme"
)

func TestNiceMax(t *testing.T) {
	for _, tc := range []struct {
		values []float64
		want   float64
	}{
		{nil, 1},
		{[]float64{0, 0}, 1},
		{[]float64{0.4}, 1},
		{[]float64{1}, 1},
		{[]float64{1.2}, 2},
		{[]float64{3, 2}, 5},
		{[]float64{7}, 10},
		{[]float64{10}, 10},
		{[]float64{11}, 20},
		{[]float64{250, 3}, 500},
		{[]float64{999}, 1000},
		{[]float64{1001}, 2000},
	} {
		if got := niceMax(tc.values); got != tc.want {
			t.Errorf("niceMax(%v) = %v, want %v", tc.values, got, tc.want)
		}
	}
}

func TestFormatScaleAndSpan(t *testing.T) {
	for v, want := range map[float64]string{1: "1", 50: "50", 2000: "2k", 5e6: "5M", 0.5: "0.5"} {
		if got := formatScale(v); got != want {
			t.Errorf("formatScale(%v) = %q, want %q", v, got, want)
		}
	}
	for d, want := range map[time.Duration]string{10 * time.Minute: "10 min", 45 * time.Second: "45 s", 90 * time.Second: "90 s"} {
		if got := formatSpan(d); got != want {
			t.Errorf("formatSpan(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestLineChartDrawsEachSeriesOnItsOwnScale(t *testing.T) {
	holdUI(t)
	test.NewTempApp(t)
	c := newLineChart(10 * time.Minute)
	w := test.NewTempWindow(t, c)
	w.Resize(fyne.NewSize(600, 240))
	r := test.TempWidgetRenderer(t, c).(*lineChartRenderer)

	if r.empty.Hidden {
		t.Error("an empty chart does not say so")
	}

	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	times := []time.Time{now.Add(-11 * time.Minute), now.Add(-2 * time.Second), now.Add(-time.Second), now}
	c.setData(times,
		chartSeries{name: "Requests/s", unit: "req/s", units: "req/s", color: theme.ColorNamePrimary, values: []float64{40, 0, 5, 8}},
		chartSeries{name: "Connections", unit: "connection", units: "connections", color: theme.ColorNameWarning, values: []float64{1, 1, 1, 2}},
	)
	if !r.empty.Hidden {
		t.Error("the no-traffic note still shows with data")
	}
	// The 40 is older than the span: it is left out, of the lines and of the
	// scale. Each scale is labelled with its maximum.
	if len(r.lines) != 2 || len(r.lines[0]) != 2 || len(r.lines[1]) != 2 {
		t.Fatalf("line segments = %d series, want 2 of 2 segments each", len(r.lines))
	}
	if got, want := r.maxima[0].Text, "10 req/s"; got != want {
		t.Errorf("first scale = %q, want %q", got, want)
	}
	if got, want := r.maxima[1].Text, "2 connections"; got != want {
		t.Errorf("second scale = %q, want %q", got, want)
	}
	origin, plot := r.plotArea(c.Size())
	right := origin.X + plot.Width
	newestConn := r.lines[1][1].Position2
	if newestConn.X != right || newestConn.Y != origin.Y {
		t.Errorf("newest connections point at %v, want the top right corner %v", newestConn, fyne.NewPos(right, origin.Y))
	}
	newestReq := r.lines[0][1].Position2
	wantY := origin.Y + plot.Height*(1-8.0/10)
	if newestReq.X != right || abs32(newestReq.Y-wantY) > 0.01 {
		t.Errorf("newest request point at %v, want (%v, %v)", newestReq, right, wantY)
	}
	zero := r.lines[0][0].Position1
	if zero.Y != origin.Y+plot.Height {
		t.Errorf("a zero is drawn at y=%v, want the axis at %v", zero.Y, origin.Y+plot.Height)
	}
	// Two seconds of data: the axis spans a minute.
	oneSecondBack := r.lines[0][1].Position1.X
	if wantX := right - plot.Width/60; abs32(oneSecondBack-wantX) > 0.01 {
		t.Errorf("a point one second old is at x=%v, want %v (a 60th of the width from the right)", oneSecondBack, wantX)
	}
	if r.start.Text != "1 min ago" {
		t.Errorf("time axis starts at %q, want 1 min ago", r.start.Text)
	}

	c.setData(times[3:],
		chartSeries{name: "Connections", unit: "connection", units: "connections", color: theme.ColorNameWarning, values: []float64{1}})
	if got, want := r.maxima[0].Text, "1 connection"; got != want {
		t.Errorf("a scale of one = %q, want %q", got, want)
	}

	c.setData(nil)
	if r.empty.Hidden || len(r.lines) != 0 {
		t.Errorf("after clearing: empty note hidden=%v, %d series drawn", r.empty.Hidden, len(r.lines))
	}
}

func TestLineChartSpanGrowsWithTheData(t *testing.T) {
	holdUI(t)
	test.NewTempApp(t)
	c := newLineChart(10 * time.Minute)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		covered time.Duration
		want    time.Duration
	}{
		{0, time.Minute},
		{59 * time.Second, time.Minute},
		{60 * time.Second, 2 * time.Minute},
		{150 * time.Second, 3 * time.Minute},
		{9*time.Minute + 59*time.Second, 10 * time.Minute},
		{10 * time.Minute, 10 * time.Minute},
	} {
		c.setData([]time.Time{now.Add(-tc.covered), now},
			chartSeries{name: "Requests/s", color: theme.ColorNamePrimary, values: []float64{1, 2}})
		if c.span != tc.want {
			t.Errorf("data covering %v: span %v, want %v", tc.covered, c.span, tc.want)
		}
	}
}

func abs32(f float32) float32 {
	if f < 0 {
		return -f
	}
	return f
}
