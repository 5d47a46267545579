package nab

import (
	"bytes"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestReadSeries(t *testing.T) {
	tests := []struct {
		name, in string
		rows     int
		wantErr  bool
	}{
		{"ok", "timestamp,value\n2014-04-01 00:00:00,1.5\n2014-04-01 00:05:00,-2\n", 2, false},
		{"fractional seconds", "timestamp,value\n2014-04-01 00:00:00.000000,1\n", 1, false},
		{"repeated hour kept in file order", "timestamp,value\n2014-04-01 02:55:00,1\n2014-04-01 02:00:00,2\n", 2, false},
		{"header only", "timestamp,value\n", 0, false},
		{"empty", "", 0, true},
		{"bad header", "time,value\n", 0, true},
		{"bad time", "timestamp,value\nyesterday,1\n", 0, true},
		{"bad value", "timestamp,value\n2014-04-01 00:00:00,x\n", 0, true},
		{"nan value", "timestamp,value\n2014-04-01 00:00:00,NaN\n", 0, true},
		{"extra column", "timestamp,value\n2014-04-01 00:00:00,1,2\n", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ReadSeries(strings.NewReader(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err == nil && len(s.Values) != tt.rows {
				t.Errorf("%d rows, want %d", len(s.Values), tt.rows)
			}
		})
	}
}

func FuzzReadSeries(f *testing.F) {
	f.Add([]byte("timestamp,value\n2014-04-01 00:00:00,1.5\n2014-04-01 00:05:00,-2\n"))
	f.Add([]byte("timestamp,value\n2014-04-01 00:00:00.123,1e308\n"))
	f.Add([]byte("\ufefftimestamp,value\r\n2014-04-01 00:00:00,\"3\"\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ReadSeries(bytes.NewReader(data))
		if err != nil {
			return
		}
		if len(s.Times) != len(s.Values) || len(s.Raw) != len(s.Values) {
			t.Fatalf("ragged series: %d times, %d raw, %d values", len(s.Times), len(s.Raw), len(s.Values))
		}
		for _, v := range s.Values {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatalf("non-finite value %v accepted", v)
			}
		}
		// Whatever parses must score without panicking.
		var c Corpus
		scores := make([]float64, len(s.Values))
		if err := c.Add("f.csv", s.Times, scores, nil); err != nil {
			t.Fatal(err)
		}
		c.Score(Profiles[0])
	})
}

func TestSeriesEvery(t *testing.T) {
	s, err := ReadSeries(strings.NewReader("timestamp,value\n" +
		"2014-04-01 00:00:00,1\n2014-04-01 00:05:00,2\n2014-04-01 00:10:00,3\n" +
		"2014-04-01 00:15:00,4\n2014-04-01 00:20:00,5\n"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		k, offset int
		want      []float64
	}{
		{0, 0, []float64{1, 2, 3, 4, 5}},
		{1, 0, []float64{1, 2, 3, 4, 5}},
		{2, 0, []float64{1, 3, 5}},
		{2, 1, []float64{2, 4}},
		{3, 0, []float64{1, 4}},
		{3, 2, []float64{3}},
		{9, 0, []float64{1}},
		{9, 7, nil},
	}
	for _, tt := range tests {
		got := s.Every(tt.k, tt.offset)
		if !slices.Equal(got.Values, tt.want) {
			t.Errorf("Every(%d, %d) = %v, want %v", tt.k, tt.offset, got.Values, tt.want)
		}
		for i, v := range got.Values {
			if got.Text[i] != strconv.FormatFloat(v, 'f', -1, 64) || !got.Times[i].Equal(s.Times[int(v)-1]) || got.Raw[i] != s.Raw[int(v)-1] {
				t.Errorf("Every(%d, %d) row %d: text %q, time %v: rows out of step", tt.k, tt.offset, i, got.Text[i], got.Times[i])
			}
		}
	}
}
