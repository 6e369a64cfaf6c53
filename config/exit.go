package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// ExitCode reports err on stderr, prefixed by the program's name, and maps
// it to the programs' exit codes: 0 done (or -h), 1 fatal, 2 bad usage
// (an error wrapping ErrUsage).
func ExitCode(program string, err error, stderr io.Writer) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, ErrUsage):
		fmt.Fprintln(stderr, program+":", err)
		return 2
	default:
		fmt.Fprintln(stderr, program+":", err)
		return 1
	}
}
