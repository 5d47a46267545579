package nab

import "math"

// Windowed Gaussian, NAB's simplest reference detector, written to NAB's
// description: each point is scored by its two-sided tail probability
// under a Gaussian fitted to the window of points before it (up to
// wgWindow, refitted every wgStep points once full). It runs next to
// Vigil's detector (--baseline) so that a change to the corpus, such as
// --every, can be read against a detector that has no tuned constants.
const (
	wgWindow = 6400
	wgStep   = 100
)

// WindowedGaussian returns one score in [0,1] per value.
func WindowedGaussian(values []float64) []float64 {
	out := make([]float64, len(values))
	win := make([]float64, 0, wgWindow)
	buf := make([]float64, 0, wgStep)
	var mean, m2 float64 // Welford's running mean and sum of squares while the window fills
	std := func() float64 {
		if s := math.Sqrt(m2 / float64(len(win))); s > 0 {
			return s
		}
		return 1e-6
	}
	sd := 0.0
	for i, x := range values {
		if len(win) > 0 {
			z := math.Abs(x-mean) / sd
			out[i] = 1 - 0.5*math.Erfc(z/math.Sqrt2)
		}
		if len(win) < wgWindow {
			win = append(win, x)
			d := x - mean
			mean += d / float64(len(win))
			m2 += d * (x - mean)
			sd = std()
			continue
		}
		buf = append(buf, x)
		if len(buf) == wgStep {
			copy(win, win[wgStep:])
			copy(win[wgWindow-wgStep:], buf)
			buf = buf[:0]
			mean, m2 = 0, 0
			for _, w := range win {
				mean += w
			}
			mean /= float64(len(win))
			for _, w := range win {
				m2 += (w - mean) * (w - mean)
			}
			sd = std()
		}
	}
	return out
}
