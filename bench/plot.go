package bench

import (
	"fmt"
	"image"
	"image/color"
	"io"
	"math"
	"strings"

	xfont "golang.org/x/image/font"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// The harness's charts, drawn with gonum's plot: panels side by side, each
// with axes, ticks, a title and one line.

// Panel is one chart.
type Panel struct {
	Title, XLabel, YLabel string
	X, Y                  []float64
	LogX                  bool    // spread batch sizes evenly
	Limit                 float64 // a horizontal dashed line (a target), 0: none
}

var (
	grey = color.RGBA{210, 210, 210, 255}
	blue = color.RGBA{31, 119, 180, 255}
	red  = color.RGBA{214, 39, 40, 255}
)

// plotDPI sizes text and lines for a screen: at 96 dots per inch a 12 pt
// label is 16 pixels high.
const plotDPI = 96

// WritePNG draws the panels side by side, each pw×ph pixels.
func WritePNG(w io.Writer, panels []Panel, pw, ph int) error {
	if len(panels) == 0 {
		return fmt.Errorf("plot: no panels")
	}
	row := make([]*plot.Plot, len(panels))
	for i, p := range panels {
		pl, err := newPlot(p)
		if err != nil {
			return fmt.Errorf("plot %q: %w", p.Title, err)
		}
		row[i] = pl
	}
	img := image.NewRGBA(image.Rect(0, 0, pw*len(panels), ph))
	c := vgimg.NewWith(vgimg.UseImage(img), vgimg.UseDPI(plotDPI))
	pad := vg.Length(10)
	tiles := draw.Tiles{Rows: 1, Cols: len(panels), PadTop: pad, PadBottom: pad, PadLeft: pad, PadRight: pad, PadX: 3 * pad}
	canvases := plot.Align([][]*plot.Plot{row}, tiles, draw.New(c))
	for i, pl := range row {
		pl.Draw(canvases[0][i])
	}
	if _, err := (vgimg.PngCanvas{Canvas: c}).WriteTo(w); err != nil {
		return fmt.Errorf("plot: write PNG: %w", err)
	}
	return nil
}

// newPlot builds one panel: y from 0 to a round value above the data and
// the limit, x padded a little on both sides, a tick at each point of a
// short series (the sweep's batch sizes and worker counts) and round ticks
// along a long one (a time series).
func newPlot(p Panel) (*plot.Plot, error) {
	pl := plot.New()
	pl.Title.Text = p.Title
	pl.Title.Padding = vg.Points(8)
	pl.X.Label.Text = p.XLabel
	pl.Y.Label.Text = p.YLabel
	for _, f := range []*font.Font{&pl.Title.TextStyle.Font, &pl.X.Label.TextStyle.Font, &pl.Y.Label.TextStyle.Font, &pl.X.Tick.Label.Font, &pl.Y.Tick.Label.Font} {
		f.Variant = "Sans"
		f.Size = vg.Points(11)
	}
	pl.Title.TextStyle.Font.Size = vg.Points(13)
	pl.Title.TextStyle.Font.Weight = xfont.WeightBold
	pl.X.Padding, pl.Y.Padding = 0, 0 // the axes meet at the origin
	if len(p.X) == 0 {
		pl.X.Tick.Marker = plot.ConstantTicks(nil)
		pl.Y.Tick.Marker = plot.ConstantTicks(nil)
		return pl, nil
	}

	ymax := p.Limit
	for _, y := range p.Y {
		ymax = max(ymax, y)
	}
	step := niceStep(ymax / 5)
	ytop := math.Ceil(ymax*1.05/step) * step
	var yticks []plot.Tick
	for v := 0.0; v <= ytop+step/2; v += step {
		yticks = append(yticks, plot.Tick{Value: v, Label: formatTick(v)})
	}
	pl.Y.Tick.Marker = plot.ConstantTicks(yticks)

	fx, unfx := func(v float64) float64 { return v }, func(v float64) float64 { return v }
	if p.LogX {
		pl.X.Scale = plot.LogScale{}
		fx, unfx = math.Log10, func(v float64) float64 { return math.Pow(10, v) }
	}
	xmin, xmax := fx(p.X[0]), fx(p.X[0])
	for _, x := range p.X {
		xmin, xmax = min(xmin, fx(x)), max(xmax, fx(x))
	}
	if xmax == xmin {
		xmin, xmax = xmin-1, xmax+1
	}
	xpad := (xmax - xmin) * 0.05
	var xticks []plot.Tick
	if len(p.X) <= 10 {
		for _, x := range p.X {
			xticks = append(xticks, plot.Tick{Value: x, Label: formatTick(x)})
		}
	} else {
		lo, hi := p.X[0], p.X[len(p.X)-1]
		st := niceStep((hi - lo) / 6)
		for v := math.Ceil(lo/st) * st; v <= hi; v += st {
			xticks = append(xticks, plot.Tick{Value: v, Label: formatTick(v)})
		}
	}
	pl.X.Tick.Marker = plot.ConstantTicks(xticks)

	grid := plotter.NewGrid()
	grid.Vertical.Color = nil
	grid.Horizontal.Color = grey
	grid.Horizontal.Width = vg.Points(0.75)
	pl.Add(grid)
	if p.Limit > 0 {
		limit := plotter.NewFunction(func(float64) float64 { return p.Limit })
		limit.Color = red
		limit.Width = vg.Points(1.5)
		limit.Dashes = []vg.Length{vg.Points(5), vg.Points(4)}
		pl.Add(limit)
	}
	xys := make(plotter.XYs, len(p.X))
	for i := range p.X {
		xys[i].X, xys[i].Y = p.X[i], p.Y[i]
	}
	line, err := plotter.NewLine(xys)
	if err != nil {
		return nil, err
	}
	line.Color = blue
	line.Width = vg.Points(1.5)
	pl.Add(line)
	if len(p.X) <= 50 {
		dots, err := plotter.NewScatter(xys)
		if err != nil {
			return nil, err
		}
		dots.GlyphStyle = draw.GlyphStyle{Color: blue, Radius: vg.Points(3), Shape: draw.CircleGlyph{}}
		pl.Add(dots)
	}
	// Add widened the ranges to the data's; these are the ones above.
	pl.X.Min, pl.X.Max = unfx(xmin-xpad), unfx(xmax+xpad)
	pl.Y.Min, pl.Y.Max = 0, ytop
	return pl, nil
}

func niceStep(raw float64) float64 {
	if raw <= 0 {
		return 1
	}
	e := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*e >= raw {
			return m * e
		}
	}
	return 10 * e
}

func formatTick(v float64) string {
	switch {
	case v >= 1e6 && math.Mod(v, 1e5) == 0:
		return strings.TrimSuffix(fmt.Sprintf("%.1fM", v/1e6), ".0M") + map[bool]string{true: "M", false: ""}[math.Mod(v, 1e6) == 0]
	case v >= 1e3 && math.Mod(v, 100) == 0:
		return strings.TrimSuffix(fmt.Sprintf("%.1fk", v/1e3), ".0k") + map[bool]string{true: "k", false: ""}[math.Mod(v, 1e3) == 0]
	case v == math.Trunc(v):
		return fmt.Sprintf("%.0f", v)
	default:
		return fmt.Sprintf("%.1f", v)
	}
}
