// Command gencsv writes a realistic CSV export of users for tests, benchmarks
// and demos: clean, or with -dirty every kind of bad row the producer rejects,
// duplicate ids, a BOM and CRLF line ends. The same seed gives the same file.
//
//	go run ./cmd/gencsv -rows 1000000 -dirty -seed 7 -o users.csv
//
// A summary goes to stderr: rows=N bad=B duplicates=D users=U, where a
// correct load reads N rows, rejects B and stores U users.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	var usage usageError
	switch {
	case err == nil:
	case errors.As(err, &usage):
		os.Exit(2) // the flag package has printed the problem and the usage
	default:
		fmt.Fprintln(os.Stderr, "gencsv:", err)
		os.Exit(1)
	}
}

// usageError is a bad command line.
type usageError struct{ error }

// run is the whole program; getenv is unused (gencsv takes flags only) and
// kept so every command of the project has the same shape.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("gencsv", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: gencsv [-rows N] [-dirty] [-seed N] [-o FILE]")
		fs.PrintDefaults()
	}
	var cfg config
	fs.IntVar(&cfg.Rows, "rows", 1000, "data rows to write (header excluded)")
	fs.BoolVar(&cfg.Dirty, "dirty", false, "add bad rows, duplicate ids, a BOM and CRLF line ends")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "random seed; the same seed gives the same file")
	out := fs.String("o", "-", "output file, - for stdout")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{err}
	}
	if fs.NArg() > 0 || cfg.Rows < 0 {
		fmt.Fprintln(stderr, "gencsv: -rows must be >= 0 and there are no arguments")
		fs.Usage()
		return usageError{errors.New("bad usage")}
	}

	var st stats
	var err error
	if *out == "-" || *out == "" {
		st, err = generate(ctx, stdout, cfg)
	} else {
		st, err = generateFile(ctx, *out, cfg)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "rows=%d bad=%d duplicates=%d users=%d\n", st.Rows, st.Bad, st.Duplicates, st.Users)
	return nil
}

// generateFile writes the CSV to the file at path.
func generateFile(ctx context.Context, path string, cfg config) (stats, error) {
	f, err := os.Create(path)
	if err != nil {
		return stats{}, err
	}
	st, err := generate(ctx, f, cfg)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("closing %s: %w", path, cerr)
	}
	return st, err
}
