package postgres

import "testing"

func TestNeedsAnalyze(t *testing.T) {
	t.Parallel()
	const minRows = 1000
	tests := []struct {
		name    string
		changed int64
		tuples  float64
		settled bool
		want    bool
	}{
		{"too few changes", 999, -1, true, false},
		{"never analyzed", 1000, -1, false, true},
		{"grew tenfold during a load", 10_000, 1000, false, true},
		{"grew less during a load: wait for the pause", 9_999, 1000, false, false},
		{"a tenth changed, writes paused", 100_000, 1_000_000, true, true},
		{"less than a tenth changed", 99_999, 1_000_000, true, false},
		{"a tenth changed, still writing", 100_000, 1_000_000, false, false},
	}
	for _, tt := range tests {
		if got := needsAnalyze(tt.changed, tt.tuples, minRows, tt.settled); got != tt.want {
			t.Errorf("%s: needsAnalyze(%d, %v, %d, %v) = %v, want %v", tt.name, tt.changed, tt.tuples, minRows, tt.settled, got, tt.want)
		}
	}
}
