package nab

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// Series is one NAB data file: rows in file order, with the original text of
// each timestamp and value kept so the output file repeats them byte for
// byte.
type Series struct {
	Times  []time.Time
	Raw    []string // timestamp text as read
	Text   []string // value text as read
	Values []float64
}

// Every returns the series with only every k-th row, starting with row
// offset (0 is the first).
func (s *Series) Every(k, offset int) *Series {
	out := &Series{}
	for i := max(offset, 0); i < len(s.Values); i += max(k, 1) {
		out.Times = append(out.Times, s.Times[i])
		out.Raw = append(out.Raw, s.Raw[i])
		out.Text = append(out.Text, s.Text[i])
		out.Values = append(out.Values, s.Values[i])
	}
	return out
}

// timeLayout is NAB's timestamp format. Go's parser also accepts the
// fractional seconds the label files carry.
const timeLayout = "2006-01-02 15:04:05"

// ParseTime parses a NAB timestamp ("2014-04-10 07:15:00[.000000]") as UTC.
func ParseTime(s string) (time.Time, error) {
	t, err := time.Parse(timeLayout, strings.TrimSpace(s))
	if err != nil {
		return time.Time{}, fmt.Errorf("parse time %q: %w", s, err)
	}
	return t, nil
}

// ReadSeries reads a CSV with header timestamp,value, keeping file order.
// Values must be finite. Timestamps are not required to increase: a few NAB
// files repeat an hour, and NAB processes rows in file order.
func ReadSeries(r io.Reader) (*Series, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = 2
	cr.ReuseRecord = true
	head, err := cr.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("read header: empty file")
		}
		return nil, fmt.Errorf("read header: %w", err)
	}
	if strings.TrimSpace(strings.TrimPrefix(head[0], "\ufeff")) != "timestamp" || strings.TrimSpace(head[1]) != "value" {
		return nil, fmt.Errorf("read header: want timestamp,value, got %q", strings.Join(head, ","))
	}
	s := &Series{}
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return s, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read row: %w", err)
		}
		t, err := ParseTime(rec[0])
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rec[1]), 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("line %d: value %q is not a finite number", line, rec[1])
		}
		s.Times = append(s.Times, t)
		s.Raw = append(s.Raw, rec[0])
		s.Text = append(s.Text, rec[1])
		s.Values = append(s.Values, v)
	}
}
