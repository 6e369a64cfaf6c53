package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/config"
	"github.com/viswals/viswals/postgres"
)

// runLoads implements `consumer loads [--limit N] [ID]`: the newest loads,
// or one, as a table read from Postgres.
func runLoads(ctx context.Context, cfg config.Consumer, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("loads", flag.ContinueOnError)
	fs.SetOutput(stdout)
	limit := fs.Int("limit", 20, "loads to show, newest first")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %w", config.ErrUsage, err)
	}
	if fs.NArg() > 1 || *limit < 1 || *limit > 1000 {
		return fmt.Errorf("%w: want `loads [--limit 1..1000] [ID]`", config.ErrUsage)
	}
	var id int64
	if fs.NArg() == 1 {
		var err error
		if id, err = viswals.ParseLoadID(fs.Arg(0)); err != nil {
			return fmt.Errorf("%w: %w", config.ErrUsage, err)
		}
	}
	store, err := postgres.Open(ctx, cfg.PostgresURL, postgres.PoolConfig{MaxConns: 2, AppName: "viswals-cli"})
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	defer store.Close()
	var recs []viswals.LoadRecord
	if id != 0 {
		rec, err := store.GetLoad(ctx, id)
		if err != nil {
			return err
		}
		recs = append(recs, rec)
	} else if recs, err = store.ListLoads(ctx, 0, *limit); err != nil {
		return err
	}
	return writeLoads(stdout, recs)
}

// writeLoads prints loads as a table; counts the producer has not yet
// reported show as "-".
func writeLoads(w io.Writer, recs []viswals.LoadRecord) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "ID\tSTATE\tSTARTED\tREAD\tPUBLISHED\tREJECTED\tRECEIVED\tINSERTED\tUPDATED\tUNCHANGED\tDEAD_LETTERED\tLAST_COMMIT\t")
	for _, r := range recs {
		read, published, rejected := "-", "-", "-"
		if s := r.Summary; s != nil {
			read, published, rejected = strconv.FormatInt(s.Read, 10), strconv.FormatInt(s.Published, 10), strconv.FormatInt(s.Rejected, 10)
		}
		last := "-"
		if !r.LastCommit.IsZero() {
			last = r.LastCommit.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t\n", r.ID, r.State(), r.Started().Format(time.RFC3339),
			read, published, rejected, r.Received, r.Inserted, r.Updated, r.Unchanged, r.DeadLettered, last)
	}
	return tw.Flush()
}
