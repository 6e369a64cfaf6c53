package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/postgres"
)

// BenchmarkLoadCounting measures what counting a batch's rows into its
// load costs the batch's write: the same batches written by UpsertBatch
// (the yardstick) and by UpsertCounted, every message under one load, each
// into a database of its own, interleaved round by round so that the
// machine's other load hits both alike. With several writers at once the
// counting transactions also queue on the load's row, which each holds
// from its count to its commit. Reported: each writer's rows/s and
// counted/uncounted.
//
//	go test ./postgres -run '^$' -bench LoadCounting -benchtime 50x
func BenchmarkLoadCounting(b *testing.B) {
	for _, reload := range []bool{false, true} {
		for _, writers := range []int{1, 4} {
			name := fmt.Sprintf("fresh/writers=%d", writers)
			if reload {
				name = fmt.Sprintf("reload/writers=%d", writers)
			}
			b.Run(name, func(b *testing.B) { benchCounting(b, reload, writers) })
		}
	}
}

func benchCounting(b *testing.B, reload bool, par int) {
	ctx := context.Background()
	open := func() *postgres.Store {
		s, _ := newStoreWith(b, postgres.PoolConfig{MaxConns: int32(par + 2), Upsert: postgres.UpsertCopyFirst})
		return s
	}
	plain, counted := open(), open()
	batches := make([][]viswals.SealedUser, b.N*par)
	for i := range batches {
		batches[i] = benchUsers(i, 1)
		if reload {
			// Stored first, then written again with a newer version of
			// the same content: the upsert path, nothing changes.
			for _, s := range []*postgres.Store{plain, counted} {
				_, _, err := s.UpsertBatch(ctx, batches[i])
				require.NoError(b, err)
			}
			for j := range batches[i] {
				batches[i][j].Version.Load = 2
			}
		}
	}
	const load = 1
	write := map[string]func(i int) error{
		"uncounted": func(i int) error {
			_, _, err := plain.UpsertBatch(ctx, batches[i])
			return err
		},
		"counted": func(i int) error {
			_, _, err := counted.UpsertCounted(ctx, batches[i], &viswals.Receipt{Load: load, Message: fmt.Sprint("m", i)})
			return err
		},
	}
	order := []string{"uncounted", "counted"}
	spent := map[string]time.Duration{}
	b.ResetTimer()
	for round := 0; round < b.N; round++ {
		for k := range order {
			name := order[(round+k)%len(order)]
			start := time.Now()
			var wg sync.WaitGroup
			errs := make([]error, par)
			for j := range par {
				wg.Go(func() { errs[j] = write[name](round*par + j) })
			}
			wg.Wait()
			spent[name] += time.Since(start)
			for _, err := range errs {
				if err != nil {
					b.Fatalf("%s: %v", name, err)
				}
			}
		}
	}
	b.StopTimer()
	rows := float64(b.N * par * benchBatch)
	for _, name := range order {
		b.ReportMetric(rows/spent[name].Seconds(), name+"_rows/s")
	}
	b.ReportMetric(spent["uncounted"].Seconds()/spent["counted"].Seconds(), "counted/uncounted")

	rec, err := counted.GetLoad(ctx, load)
	require.NoError(b, err)
	if rec.Received != int64(rows) {
		b.Fatalf("the load counted %d rows, want %.0f", rec.Received, rows)
	}
}
