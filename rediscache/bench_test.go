package rediscache

import (
	"bytes"
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/viswals/viswals"
)

const benchBatch = 1000

// benchUsers returns a batch of distinct users with realistic sizes.
func benchUsers(load int64) []viswals.SealedUser {
	users := make([]viswals.SealedUser, benchBatch)
	for i := range users {
		u := sampleUser(int64(i+1), viswals.Version{Load: load, Line: int64(i + 2)})
		u.FirstName, u.LastName = "Firstname"+strconv.Itoa(i), "Lastname"
		users[i] = u
	}
	return users
}

func reportUsers(b *testing.B) {
	b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "users/s")
}

// BenchmarkPut writes 1000 users per call, each a newer version than the
// cached one, so every key is written. Sub-benchmarks vary the users per
// script call: 1 is what Cluster clients get, 100 the single-node default.
func BenchmarkPut(b *testing.B) {
	for _, batch := range []int{1, 10, scriptBatch, 1000} {
		b.Run("batch="+strconv.Itoa(batch), func(b *testing.B) {
			c, _ := newTestCache(b, time.Hour)
			c.batch = batch
			ctx := context.Background()
			users := benchUsers(1)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for j := range users {
					users[j].Version.Load = int64(i + 1)
				}
				if err := c.Put(ctx, users); err != nil {
					b.Fatal(err)
				}
			}
			reportUsers(b)
		})
	}
}

// BenchmarkPutStale writes versions older than the cached ones: every
// script call ends without a write (a redelivered batch).
func BenchmarkPutStale(b *testing.B) {
	c, _ := newTestCache(b, time.Hour)
	ctx := context.Background()
	if err := c.Put(ctx, benchUsers(1<<40)); err != nil {
		b.Fatal(err)
	}
	users := benchUsers(1)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := c.Put(ctx, users); err != nil {
			b.Fatal(err)
		}
	}
	reportUsers(b)
}

// BenchmarkPlainSet is the floor Put is measured against: the same values
// written with pipelined SET ... PX, with no version check.
func BenchmarkPlainSet(b *testing.B) {
	c, client := newTestCache(b, time.Hour)
	ctx := context.Background()
	users := benchUsers(1)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var buf bytes.Buffer
		ends := make([]int, len(users))
		for j := range users {
			users[j].Version.Load = int64(i + 1)
			if err := appendValue(&buf, &users[j]); err != nil {
				b.Fatal(err)
			}
			ends[j] = buf.Len()
		}
		_, err := client.Pipelined(ctx, func(p redis.Pipeliner) error {
			start := 0
			for j := range users {
				p.Set(ctx, c.Key(users[j].ID), buf.Bytes()[start:ends[j]], time.Hour)
				start = ends[j]
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	reportUsers(b)
}

// BenchmarkEncode is the client-side share of Put: building the values.
func BenchmarkEncode(b *testing.B) {
	users := benchUsers(1)
	b.ReportAllocs()
	for b.Loop() {
		var buf bytes.Buffer
		for j := range users {
			if err := appendValue(&buf, &users[j]); err != nil {
				b.Fatal(err)
			}
		}
	}
	reportUsers(b)
}

func BenchmarkGet(b *testing.B) {
	c, _ := newTestCache(b, time.Hour)
	ctx := context.Background()
	if err := c.Put(ctx, benchUsers(1)); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := c.Get(ctx, int64(i%benchBatch+1)); err != nil {
			b.Fatal(err)
		}
	}
}
