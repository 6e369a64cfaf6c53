package bench

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"strings"
)

// A small line-chart drawer on image/png, so the harness needs no plotting
// module: panels side by side, each with axes, ticks, a title and one line.

// Panel is one chart.
type Panel struct {
	Title, XLabel, YLabel string
	X, Y                  []float64
	LogX                  bool    // spread batch sizes evenly
	Limit                 float64 // a horizontal dashed line (a target), 0: none
}

var (
	black = color.RGBA{30, 30, 30, 255}
	grey  = color.RGBA{210, 210, 210, 255}
	blue  = color.RGBA{31, 119, 180, 255}
	red   = color.RGBA{214, 39, 40, 255}
)

// WritePNG draws the panels side by side, each pw×ph pixels.
func WritePNG(w io.Writer, panels []Panel, pw, ph int) error {
	img := image.NewRGBA(image.Rect(0, 0, pw*len(panels), ph))
	for i := range img.Pix {
		img.Pix[i] = 255
	}
	for i, p := range panels {
		drawPanel(img, p, image.Rect(i*pw, 0, (i+1)*pw, ph))
	}
	return png.Encode(w, img)
}

func drawPanel(img *image.RGBA, p Panel, r image.Rectangle) {
	const scale = 2
	left, right, top, bottom := r.Min.X+90, r.Max.X-25, r.Min.Y+45, r.Max.Y-60
	text(img, r.Min.X+(r.Dx()-textWidth(p.Title, scale))/2, r.Min.Y+12, p.Title, scale, black)
	text(img, left+(right-left-textWidth(p.XLabel, scale))/2, r.Max.Y-22, p.XLabel, scale, black)
	textUp(img, r.Min.X+8, top+(bottom-top+textWidth(p.YLabel, scale))/2, p.YLabel, scale, black)
	if len(p.X) == 0 {
		return
	}
	fx := func(v float64) float64 {
		if p.LogX {
			return math.Log10(v)
		}
		return v
	}
	xmin, xmax := fx(p.X[0]), fx(p.X[0])
	ymax := p.Limit
	for i := range p.X {
		xmin, xmax = min(xmin, fx(p.X[i])), max(xmax, fx(p.X[i]))
		ymax = max(ymax, p.Y[i])
	}
	if xmax == xmin {
		xmin, xmax = xmin-1, xmax+1
	}
	pad := (xmax - xmin) * 0.05
	xmin, xmax = xmin-pad, xmax+pad
	step := niceStep(ymax / 5)
	ymax = math.Ceil(ymax*1.05/step) * step
	px := func(v float64) int { return left + int((fx(v)-xmin)/(xmax-xmin)*float64(right-left)) }
	py := func(v float64) int { return bottom - int(v/ymax*float64(bottom-top)) }

	for v := 0.0; v <= ymax+step/2; v += step {
		y := py(v)
		hline(img, left, right, y, grey, false)
		s := formatTick(v)
		text(img, left-8-textWidth(s, scale), y-7, s, scale, black)
	}
	xticks := p.X
	if len(p.X) > 10 { // a time series: round ticks, not one per sample
		xticks = nil
		lo, hi := p.X[0], p.X[len(p.X)-1]
		st := niceStep((hi - lo) / 6)
		for v := math.Ceil(lo/st) * st; v <= hi; v += st {
			xticks = append(xticks, v)
		}
	}
	for _, v := range xticks {
		x := px(v)
		vline(img, x, bottom, bottom+6, black)
		s := formatTick(v)
		text(img, x-textWidth(s, scale)/2, bottom+10, s, scale, black)
	}
	hline(img, left, right, bottom, black, false)
	vline(img, left, top, bottom, black)
	if p.Limit > 0 {
		hline(img, left, right, py(p.Limit), red, true)
	}
	for i := 1; i < len(p.X); i++ {
		line(img, px(p.X[i-1]), py(p.Y[i-1]), px(p.X[i]), py(p.Y[i]), blue)
	}
	if len(p.X) <= 50 {
		for i := range p.X {
			dot(img, px(p.X[i]), py(p.Y[i]), blue)
		}
	}
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

func set(img *image.RGBA, x, y int, c color.RGBA) {
	if image.Pt(x, y).In(img.Rect) {
		img.SetRGBA(x, y, c)
	}
}

func hline(img *image.RGBA, x0, x1, y int, c color.RGBA, dashed bool) {
	for x := x0; x <= x1; x++ {
		if !dashed || (x/8)%2 == 0 {
			set(img, x, y, c)
			if dashed {
				set(img, x, y+1, c)
			}
		}
	}
}

func vline(img *image.RGBA, x, y0, y1 int, c color.RGBA) {
	for y := y0; y <= y1; y++ {
		set(img, x, y, c)
	}
}

// line draws a 2-pixel-thick segment (Bresenham).
func line(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := 1, 1
	if x0 > x1 {
		sx = -1
	}
	if y0 > y1 {
		sy = -1
	}
	for e := dx + dy; ; {
		set(img, x0, y0, c)
		set(img, x0+1, y0, c)
		set(img, x0, y0+1, c)
		if x0 == x1 && y0 == y1 {
			return
		}
		if e2 := 2 * e; e2 >= dy {
			e += dy
			x0 += sx
		} else {
			e += dx
			y0 += sy
		}
	}
}

func dot(img *image.RGBA, x, y int, c color.RGBA) {
	for i := -4; i <= 4; i++ {
		for j := -4; j <= 4; j++ {
			if i*i+j*j <= 16 {
				set(img, x+i, y+j, c)
			}
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// font5x7 holds columns of 5×7 glyphs (bit 0 is the top row) from ' ' to 'Z'.
var font5x7 = [...][5]byte{
	{0x00, 0x00, 0x00, 0x00, 0x00}, {0x00, 0x00, 0x5F, 0x00, 0x00}, {0x00, 0x07, 0x00, 0x07, 0x00}, {0x14, 0x7F, 0x14, 0x7F, 0x14},
	{0x24, 0x2A, 0x7F, 0x2A, 0x12}, {0x23, 0x13, 0x08, 0x64, 0x62}, {0x36, 0x49, 0x56, 0x20, 0x50}, {0x00, 0x08, 0x07, 0x03, 0x00},
	{0x00, 0x1C, 0x22, 0x41, 0x00}, {0x00, 0x41, 0x22, 0x1C, 0x00}, {0x2A, 0x1C, 0x7F, 0x1C, 0x2A}, {0x08, 0x08, 0x3E, 0x08, 0x08},
	{0x00, 0x80, 0x70, 0x30, 0x00}, {0x08, 0x08, 0x08, 0x08, 0x08}, {0x00, 0x00, 0x60, 0x60, 0x00}, {0x20, 0x10, 0x08, 0x04, 0x02},
	{0x3E, 0x51, 0x49, 0x45, 0x3E}, {0x00, 0x42, 0x7F, 0x40, 0x00}, {0x72, 0x49, 0x49, 0x49, 0x46}, {0x21, 0x41, 0x49, 0x4D, 0x33},
	{0x18, 0x14, 0x12, 0x7F, 0x10}, {0x27, 0x45, 0x45, 0x45, 0x39}, {0x3C, 0x4A, 0x49, 0x49, 0x31}, {0x41, 0x21, 0x11, 0x09, 0x07},
	{0x36, 0x49, 0x49, 0x49, 0x36}, {0x46, 0x49, 0x49, 0x29, 0x1E}, {0x00, 0x00, 0x14, 0x00, 0x00}, {0x00, 0x40, 0x34, 0x00, 0x00},
	{0x00, 0x08, 0x14, 0x22, 0x41}, {0x14, 0x14, 0x14, 0x14, 0x14}, {0x00, 0x41, 0x22, 0x14, 0x08}, {0x02, 0x01, 0x59, 0x09, 0x06},
	{0x3E, 0x41, 0x5D, 0x59, 0x4E}, {0x7C, 0x12, 0x11, 0x12, 0x7C}, {0x7F, 0x49, 0x49, 0x49, 0x36}, {0x3E, 0x41, 0x41, 0x41, 0x22},
	{0x7F, 0x41, 0x41, 0x41, 0x3E}, {0x7F, 0x49, 0x49, 0x49, 0x41}, {0x7F, 0x09, 0x09, 0x09, 0x01}, {0x3E, 0x41, 0x41, 0x51, 0x73},
	{0x7F, 0x08, 0x08, 0x08, 0x7F}, {0x00, 0x41, 0x7F, 0x41, 0x00}, {0x20, 0x40, 0x41, 0x3F, 0x01}, {0x7F, 0x08, 0x14, 0x22, 0x41},
	{0x7F, 0x40, 0x40, 0x40, 0x40}, {0x7F, 0x02, 0x1C, 0x02, 0x7F}, {0x7F, 0x04, 0x08, 0x10, 0x7F}, {0x3E, 0x41, 0x41, 0x41, 0x3E},
	{0x7F, 0x09, 0x09, 0x09, 0x06}, {0x3E, 0x41, 0x51, 0x21, 0x5E}, {0x7F, 0x09, 0x19, 0x29, 0x46}, {0x26, 0x49, 0x49, 0x49, 0x32},
	{0x03, 0x01, 0x7F, 0x01, 0x03}, {0x3F, 0x40, 0x40, 0x40, 0x3F}, {0x1F, 0x20, 0x40, 0x20, 0x1F}, {0x3F, 0x40, 0x38, 0x40, 0x3F},
	{0x63, 0x14, 0x08, 0x14, 0x63}, {0x03, 0x04, 0x78, 0x04, 0x03}, {0x61, 0x59, 0x49, 0x4D, 0x43},
}

func glyph(r rune) [5]byte {
	if r >= 'a' && r <= 'z' {
		r -= 'a' - 'A'
	}
	if r < ' ' || int(r-' ') >= len(font5x7) {
		r = '?'
	}
	return font5x7[r-' ']
}

func textWidth(s string, scale int) int { return len([]rune(s)) * 6 * scale }

// text draws s with its top-left corner at (x, y).
func text(img *image.RGBA, x, y int, s string, scale int, c color.RGBA) {
	for i, r := range []rune(s) {
		g := glyph(r)
		for col := range 5 {
			for row := range 8 {
				if g[col]&(1<<row) == 0 {
					continue
				}
				for a := range scale {
					for b := range scale {
						set(img, x+(i*6+col)*scale+a, y+row*scale+b, c)
					}
				}
			}
		}
	}
}

// textUp draws s rotated a quarter turn, reading bottom to top from (x, y).
func textUp(img *image.RGBA, x, y int, s string, scale int, c color.RGBA) {
	for i, r := range []rune(s) {
		g := glyph(r)
		for col := range 5 {
			for row := range 8 {
				if g[col]&(1<<row) == 0 {
					continue
				}
				for a := range scale {
					for b := range scale {
						set(img, x+row*scale+b, y-(i*6+col)*scale-a, c)
					}
				}
			}
		}
	}
}
