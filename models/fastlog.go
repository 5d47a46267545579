package models

import "math"

// fastLog is ln(x) for finite x > 0 to about 1e-7 relative error, about
// twice as fast as math.Log. The detector takes three logarithms per view
// per point; they only shape features whose tails are then estimated, so
// the last digits do not matter but the time does. Non-positive x gives a
// large negative number instead of -Inf or NaN.
func fastLog(x float64) float64 {
	if !(x >= 0x1p-1022) || x > math.MaxFloat64 {
		return slowLog(x)
	}
	// Fold the mantissa into [sqrt(1/2), sqrt(2)) without a branch (the
	// bias trick from musl's log): adding 1 - sqrt(1/2) in the exponent
	// field carries into the exponent exactly when the mantissa is at
	// least sqrt(2).
	const sqrtHalf = 0x3fe6a09e667f3bcd
	u := math.Float64bits(x) + (0x3ff0000000000000 - sqrtHalf)
	k := float64(int64(u>>52) - 0x3ff)
	m := math.Float64frombits(u&(1<<52-1) + sqrtHalf)
	// ln m = 2 atanh(s), s = (m-1)/(m+1), |s| < 0.172: the series to s^9
	// is within 3e-8.
	s := (m - 1) / (m + 1)
	s2 := s * s
	return k*math.Ln2 + 2*s*(1+s2*(1.0/3+s2*(1.0/5+s2*(1.0/7+s2*(1.0/9)))))
}

// slowLog handles what fastLog does not: subnormals, zero, negatives, NaN
// and +Inf.
func slowLog(x float64) float64 {
	switch {
	case x > 0 && x < 0x1p-1022:
		return fastLog(x*0x1p54) - 54*math.Ln2
	case x > 0:
		return math.Inf(1)
	}
	return -745
}
