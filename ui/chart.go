package ui

import (
	"image/color"
	"math"
	"strconv"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"
)

// chartSeries is one line of a lineChart: a value for each of the chart's
// times, drawn against its own scale (requests and connections differ in
// size by orders of magnitude, so each gets the full height).
type chartSeries struct {
	name   string // in the legend
	unit   string // after the scale's maximum when it is 1, such as "connection"
	units  string // after any other maximum, such as "connections"
	color  fyne.ThemeColorName
	values []float64
}

// lineChart draws up to two series over a time span that ends at the
// newest point: the first series is scaled on the left, the second on the
// right, each labelled with its maximum. The span grows a minute at a time
// with the data, up to maxSpan, so a proxy started seconds ago already
// shows a curve rather than a few pixels at the right edge.
type lineChart struct {
	widget.BaseWidget
	maxSpan time.Duration
	span    time.Duration // what the time axis covers now
	times   []time.Time   // oldest first, one per value of each series
	series  []chartSeries
}

// chartMinSpan is the shortest time axis: a minute.
const chartMinSpan = time.Minute

func newLineChart(maxSpan time.Duration) *lineChart {
	c := &lineChart{maxSpan: maxSpan, span: chartMinSpan}
	c.ExtendBaseWidget(c)
	return c
}

// setData replaces what the chart shows and redraws it, leaving out points
// older than the longest span. Call it on the Fyne goroutine.
func (c *lineChart) setData(times []time.Time, series ...chartSeries) {
	first := 0
	c.span = chartMinSpan
	if len(times) > 0 {
		newest := times[len(times)-1]
		for first < len(times) && newest.Sub(times[first]) > c.maxSpan {
			first++
		}
		if first < len(times) {
			covered := newest.Sub(times[first])
			c.span = min(c.maxSpan, max(chartMinSpan, covered.Truncate(time.Minute)+time.Minute))
		}
	}
	c.times = times[first:]
	c.series = make([]chartSeries, len(series))
	for i, s := range series {
		s.values = s.values[first:]
		c.series[i] = s
	}
	c.Refresh()
}

func (c *lineChart) CreateRenderer() fyne.WidgetRenderer {
	r := &lineChartRenderer{
		chart:      c,
		background: canvas.NewRectangle(color.Transparent),
		empty:      canvas.NewText("No traffic yet", color.Black),
		start:      canvas.NewText("", color.Black),
		end:        canvas.NewText("now", color.Black),
	}
	for i := range r.grid {
		r.grid[i] = canvas.NewLine(color.Black)
	}
	r.Refresh()
	return r
}

// chartGridLines is how many horizontal guides divide the plot.
const chartGridLines = 4

type lineChartRenderer struct {
	chart      *lineChart
	background *canvas.Rectangle
	grid       [chartGridLines + 1]*canvas.Line // from the top edge to the bottom axis
	empty      *canvas.Text                     // shown while there is nothing to draw
	start, end *canvas.Text                     // the time axis
	legend     []*canvas.Text                   // a swatch-coloured name per series
	swatches   []*canvas.Rectangle
	maxima     []*canvas.Text // each series' scale
	lines      [][]*canvas.Line
}

func (r *lineChartRenderer) Destroy() {}

func (r *lineChartRenderer) MinSize() fyne.Size {
	th := r.chart.Theme()
	text := th.Size(theme.SizeNameCaptionText)
	return fyne.NewSize(240, 4*text+80)
}

func (r *lineChartRenderer) Objects() []fyne.CanvasObject {
	objs := []fyne.CanvasObject{r.background}
	for _, g := range r.grid {
		objs = append(objs, g)
	}
	objs = append(objs, r.start, r.end, r.empty)
	for i := range r.legend {
		objs = append(objs, r.swatches[i], r.legend[i], r.maxima[i])
	}
	for _, ls := range r.lines {
		for _, l := range ls {
			objs = append(objs, l)
		}
	}
	return objs
}

// Refresh brings the objects in line with the chart's data and theme.
func (r *lineChartRenderer) Refresh() {
	c := r.chart
	th := c.Theme()
	v := fyne.CurrentApp().Settings().ThemeVariant()
	fg := th.Color(theme.ColorNameForeground, v)
	dim := th.Color(theme.ColorNamePlaceHolder, v)
	caption := th.Size(theme.SizeNameCaptionText)

	r.background.FillColor = th.Color(theme.ColorNameInputBackground, v)
	r.background.CornerRadius = th.Size(theme.SizeNameInputRadius)
	for i, g := range r.grid {
		g.StrokeColor = th.Color(theme.ColorNameSeparator, v)
		g.StrokeWidth = 1
		if i == chartGridLines {
			g.StrokeColor = dim
		}
	}
	for _, t := range []*canvas.Text{r.start, r.end, r.empty} {
		t.Color = dim
		t.TextSize = caption
	}
	r.start.Text = formatSpan(c.span) + " ago"
	r.empty.Hidden = len(c.times) > 0

	for len(r.legend) < len(c.series) {
		r.legend = append(r.legend, canvas.NewText("", fg))
		r.swatches = append(r.swatches, canvas.NewRectangle(fg))
		r.maxima = append(r.maxima, canvas.NewText("", fg))
		r.lines = append(r.lines, nil)
	}
	r.legend = r.legend[:len(c.series)]
	r.swatches = r.swatches[:len(c.series)]
	r.maxima = r.maxima[:len(c.series)]
	r.lines = r.lines[:len(c.series)]
	for i, s := range c.series {
		col := th.Color(s.color, v)
		r.legend[i].Text, r.legend[i].Color, r.legend[i].TextSize = s.name, fg, caption
		r.swatches[i].FillColor = col
		top := niceMax(s.values)
		unit := s.units
		if top == 1 {
			unit = s.unit
		}
		r.maxima[i].Text = formatScale(top) + " " + unit
		r.maxima[i].Color, r.maxima[i].TextSize, r.maxima[i].TextStyle.Bold = col, caption, true
		segments := max(0, len(s.values)-1)
		for len(r.lines[i]) < segments {
			r.lines[i] = append(r.lines[i], canvas.NewLine(col))
		}
		r.lines[i] = r.lines[i][:segments]
		for _, l := range r.lines[i] {
			l.StrokeColor, l.StrokeWidth = col, 2
		}
	}
	r.Layout(c.Size())
	// Texts and rectangles are painted from cached textures that a refresh
	// renews; lines are drawn afresh each frame.
	for _, o := range []fyne.CanvasObject{r.background, r.start, r.end, r.empty} {
		canvas.Refresh(o)
	}
	for i := range r.legend {
		canvas.Refresh(r.legend[i])
		canvas.Refresh(r.swatches[i])
		canvas.Refresh(r.maxima[i])
	}
	canvas.Refresh(c)
}

// plotArea is the rectangle the lines are drawn in, inside the labels.
func (r *lineChartRenderer) plotArea(size fyne.Size) (pos fyne.Position, plot fyne.Size) {
	th := r.chart.Theme()
	pad := th.Size(theme.SizeNamePadding)
	label := fyne.MeasureText("0", th.Size(theme.SizeNameCaptionText), fyne.TextStyle{}).Height
	top := pad + label + pad
	bottom := pad + label + pad
	side := 2 * pad
	return fyne.NewPos(side, top), fyne.NewSize(size.Width-2*side, size.Height-top-bottom)
}

func (r *lineChartRenderer) Layout(size fyne.Size) {
	c := r.chart
	th := c.Theme()
	pad := th.Size(theme.SizeNamePadding)
	r.background.Resize(size)
	r.background.Move(fyne.NewPos(0, 0))
	origin, plot := r.plotArea(size)

	for i, g := range r.grid {
		y := origin.Y + plot.Height*float32(i)/chartGridLines
		g.Position1 = fyne.NewPos(origin.X, y)
		g.Position2 = fyne.NewPos(origin.X+plot.Width, y)
	}

	// Time axis under the plot, legend centred above it, maxima in the top
	// corners on the side of their scale.
	below := origin.Y + plot.Height + pad/2
	r.start.Move(fyne.NewPos(origin.X, below))
	endSize := r.end.MinSize()
	r.end.Move(fyne.NewPos(origin.X+plot.Width-endSize.Width, below))
	emptySize := r.empty.MinSize()
	r.empty.Move(fyne.NewPos(origin.X+(plot.Width-emptySize.Width)/2, origin.Y+(plot.Height-emptySize.Height)/2))

	var legendWidth float32
	swatch := r.swatchSize()
	for _, l := range r.legend {
		legendWidth += swatch + pad + l.MinSize().Width + 3*pad
	}
	x := (size.Width - legendWidth) / 2
	for i, l := range r.legend {
		h := l.MinSize().Height
		r.swatches[i].Resize(fyne.NewSize(swatch, swatch))
		r.swatches[i].Move(fyne.NewPos(x, pad+(h-swatch)/2))
		l.Move(fyne.NewPos(x+swatch+pad, pad))
		x += swatch + pad + l.MinSize().Width + 3*pad
	}
	for i, m := range r.maxima {
		if i == 0 {
			m.Move(fyne.NewPos(origin.X, pad))
		} else {
			m.Move(fyne.NewPos(origin.X+plot.Width-m.MinSize().Width, pad))
		}
	}

	if len(c.times) == 0 {
		return
	}
	newest := c.times[len(c.times)-1]
	xAt := func(t time.Time) float32 {
		back := newest.Sub(t)
		return origin.X + plot.Width*float32(1-float64(back)/float64(c.span))
	}
	for i, s := range c.series {
		top := niceMax(s.values)
		yAt := func(v float64) float32 {
			return origin.Y + plot.Height*float32(1-v/top)
		}
		for j, l := range r.lines[i] {
			l.Position1 = fyne.NewPos(xAt(c.times[j]), yAt(s.values[j]))
			l.Position2 = fyne.NewPos(xAt(c.times[j+1]), yAt(s.values[j+1]))
		}
	}
}

func (r *lineChartRenderer) swatchSize() float32 {
	return r.chart.Theme().Size(theme.SizeNameCaptionText)
}

// niceMax is the top of a scale showing values: the smallest 1, 2 or 5
// times a power of ten at or above their maximum, and at least 1.
func niceMax(values []float64) float64 {
	top := 0.0
	for _, v := range values {
		top = max(top, v)
	}
	if top <= 1 {
		return 1
	}
	pow := math.Pow(10, math.Floor(math.Log10(top)))
	for _, step := range []float64{1, 2, 5, 10} {
		if step*pow >= top {
			return step * pow
		}
	}
	return 10 * pow
}

// formatScale writes a scale's maximum without a fraction and with a
// k or M above a thousand.
func formatScale(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', -1, 64) + "M"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'f', -1, 64) + "k"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// formatSpan writes a span as the time axis labels it: "10 min", "45 s".
func formatSpan(d time.Duration) string {
	if d >= time.Minute && d%time.Minute == 0 {
		return strconv.Itoa(int(d/time.Minute)) + " min"
	}
	return strconv.Itoa(int(d.Round(time.Second)/time.Second)) + " s"
}
