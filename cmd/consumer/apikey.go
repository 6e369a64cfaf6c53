package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/auth"
	"github.com/viswals/viswals/config"
)

// runAPIKey implements `consumer apikey create --name NAME --role ROLE`:
// the new key on the first line of stdout, the line for the keys file on
// the second, and nothing else there, so a script can take them apart. It
// needs no configuration and reaches no service.
func runAPIKey(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		return fmt.Errorf("%w: want `apikey create --name NAME --role reader|pii|admin`", config.ErrUsage)
	}
	fs := flag.NewFlagSet("apikey create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "", "the key's name in the keys file and in logs: 1 to 64 ASCII letters, digits, '.', '_' or '-' (required)")
	role := fs.String("role", "", "reader (emails masked), pii (emails shown) or admin (also metrics) (required)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: consumer apikey create --name NAME --role reader|pii|admin\n\n"+
			"Prints a new API key, then the line to append to the file named by API_KEYS_FILE.\n"+
			"The key is shown only this once; the file keeps only its SHA-256.\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: apikey create: %w", config.ErrUsage, err)
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("%w: apikey create: unexpected arguments %q", config.ErrUsage, fs.Args())
	case *name == "":
		return fmt.Errorf("%w: apikey create: --name is required", config.ErrUsage)
	case *role == "":
		return fmt.Errorf("%w: apikey create: --role is required (reader, pii or admin)", config.ErrUsage)
	}
	r, err := auth.ParseRole(*role)
	if err != nil {
		return fmt.Errorf("%w: apikey create: --role: %s", config.ErrUsage, viswals.ErrorMessage(err))
	}
	key, line, err := auth.GenerateKey(*name, r)
	if viswals.ErrorCode(err) == viswals.EINVALID {
		return fmt.Errorf("%w: apikey create: --name: %s", config.ErrUsage, viswals.ErrorMessage(err))
	}
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(stdout, "%s\n%s\n", key, line); err != nil {
		return fmt.Errorf("apikey create: %w", err)
	}
	return nil
}
