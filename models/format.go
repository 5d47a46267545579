package models

import (
	"math"
	"strconv"
	"strings"
)

// FormatValue writes a series value or a score for people: about four
// significant digits, never an exponent, and 0 for what only a float's
// residue tells from zero (a forecast that decayed to 3e-61 is "expected
// 0" to an on-call engineer). Counts of 1,000 and more are written whole,
// so they can be matched against the rows they came from.
func FormatValue(v float64) string {
	a := math.Abs(v)
	var decimals int
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return strconv.FormatFloat(v, 'g', -1, 64)
	case a < 0.0005:
		return "0"
	case a >= 1000:
		decimals = 0
	case a >= 100:
		decimals = 1
	case a >= 10:
		decimals = 2
	case a >= 1:
		decimals = 3
	default:
		decimals = 4
	}
	s := strconv.FormatFloat(v, 'f', decimals, 64)
	if strings.IndexByte(s, '.') >= 0 {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	if s == "-0" {
		return "0"
	}
	return s
}

// FormatQuantity is FormatValue with units where the series has them:
// byte counts in KiB, MiB and GiB.
func FormatQuantity(series string, v float64) string {
	if !strings.HasPrefix(series, "bytes") {
		return FormatValue(v)
	}
	a := math.Abs(v)
	switch {
	case a >= 1<<30:
		return FormatValue(v/(1<<30)) + " GiB"
	case a >= 1<<20:
		return FormatValue(v/(1<<20)) + " MiB"
	case a >= 1<<10:
		return FormatValue(v/(1<<10)) + " KiB"
	}
	return FormatValue(v) + " B"
}
