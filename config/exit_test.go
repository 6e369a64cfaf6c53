package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"testing"
)

func TestExitCode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		err        error
		want       int
		wantStderr string
	}{
		{"done", nil, 0, ""},
		{"help", flag.ErrHelp, 0, ""},
		{"bad usage", fmt.Errorf("%w: unknown flag -x", ErrUsage), 2, "producer: usage: unknown flag -x\n"},
		{"fatal", errors.New("broker unreachable"), 1, "producer: broker unreachable\n"},
	}
	for _, tt := range tests {
		var stderr bytes.Buffer
		if got := ExitCode("producer", tt.err, &stderr); got != tt.want || stderr.String() != tt.wantStderr {
			t.Errorf("%s: ExitCode = %d, stderr %q; want %d, %q", tt.name, got, stderr.String(), tt.want, tt.wantStderr)
		}
	}
}
