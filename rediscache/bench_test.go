package rediscache

import (
	"context"
	"strconv"
	"strings"
	"syscall"
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

// meter reports throughput and the CPU time spent per user by Redis's
// main thread (the resource that does not scale: Redis runs commands on
// one thread) and by this process. CPU times stay meaningful on a busy
// machine where wall-clock figures do not; the Redis figure is exact only
// when no one else uses that server (point REDIS_URL at a private one).
type meter struct {
	client          redis.UniversalClient
	server, client0 time.Duration
	tb              testing.TB
}

func startMeter(b *testing.B, client redis.UniversalClient) *meter {
	b.ResetTimer()
	return &meter{client: client, server: serverCPU(b, client), client0: processCPU(), tb: b}
}

// pause runs fn without counting the CPU it costs either side.
func (m *meter) pause(fn func()) {
	server, client := serverCPU(m.tb, m.client), processCPU()
	fn()
	m.server += serverCPU(m.tb, m.client) - server
	m.client0 += processCPU() - client
}

func (m *meter) report(b *testing.B) {
	b.StopTimer()
	users := float64(b.N * benchBatch)
	b.ReportMetric(users/b.Elapsed().Seconds(), "users/s")
	b.ReportMetric(float64((serverCPU(b, m.client)-m.server).Microseconds())/users, "redis-µs/user")
	b.ReportMetric(float64((processCPU()-m.client0).Microseconds())/users, "client-µs/user")
}

func serverCPU(b testing.TB, client redis.UniversalClient) time.Duration {
	info, err := client.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total time.Duration
	for _, line := range strings.Split(info, "\r\n") {
		name, value, _ := strings.Cut(line, ":")
		if name == "used_cpu_user_main_thread" || name == "used_cpu_sys_main_thread" {
			secs, err := strconv.ParseFloat(value, 64)
			if err != nil {
				b.Fatal(err)
			}
			total += time.Duration(secs * float64(time.Second))
		}
	}
	return total
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPut writes 1000 users per call, each a newer version than the
// cached one, so every key is written. Sub-benchmarks vary the users per
// script call: 1 is what Cluster clients get, 100 the single-node default.
func BenchmarkPut(b *testing.B) {
	for _, batch := range []int{1, 10, scriptBatch, 1000} {
		b.Run("batch="+strconv.Itoa(batch), func(b *testing.B) {
			c, client := newTestCache(b, time.Hour)
			c.batch = batch
			ctx := context.Background()
			users := benchUsers(1)
			m := startMeter(b, client)
			for i := 0; i < b.N; i++ {
				for j := range users {
					users[j].Version.Load = int64(i + 1)
				}
				if err := c.Put(ctx, users); err != nil {
					b.Fatal(err)
				}
			}
			m.report(b)
		})
	}
}

// BenchmarkPutStale writes versions older than the cached ones: every
// script call ends without a write (a redelivered batch).
func BenchmarkPutStale(b *testing.B) {
	c, client := newTestCache(b, time.Hour)
	ctx := context.Background()
	if err := c.Put(ctx, benchUsers(1<<40)); err != nil {
		b.Fatal(err)
	}
	users := benchUsers(1)
	m := startMeter(b, client)
	for i := 0; i < b.N; i++ {
		if err := c.Put(ctx, users); err != nil {
			b.Fatal(err)
		}
	}
	m.report(b)
}

// BenchmarkPutNew is the write of freshly inserted users: SET ... PX NX.
// Each round deletes the keys first (untimed), so every SET writes.
func BenchmarkPutNew(b *testing.B) {
	c, client := newTestCache(b, time.Hour)
	ctx := context.Background()
	users := benchUsers(1)
	keys := make([]string, len(users))
	for j := range users {
		keys[j] = c.Key(users[j].ID)
	}
	m := startMeter(b, client)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		m.pause(func() {
			if err := client.Unlink(ctx, keys...).Err(); err != nil {
				b.Fatal(err)
			}
		})
		b.StartTimer()
		if err := c.PutNew(ctx, users); err != nil {
			b.Fatal(err)
		}
	}
	m.report(b)
}

// BenchmarkPlainSet is the floor Put is measured against: the same values
// written with pipelined SET ... PX, with no version check.
func BenchmarkPlainSet(b *testing.B) {
	c, client := newTestCache(b, time.Hour)
	ctx := context.Background()
	users := benchUsers(1)
	m := startMeter(b, client)
	for i := 0; i < b.N; i++ {
		for j := range users {
			users[j].Version.Load = int64(i + 1)
		}
		values := encodeValues(users)
		_, err := client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for j := range users {
				p.Set(ctx, c.Key(users[j].ID), values[j], time.Hour)
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	m.report(b)
}

// BenchmarkEncode is the client-side share of Put: building the values.
func BenchmarkEncode(b *testing.B) {
	users := benchUsers(1)
	b.ReportAllocs()
	for b.Loop() {
		encodeValues(users)
	}
	b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "users/s")
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

// BenchmarkDecode is the client-side share of Get: decoding one value.
func BenchmarkDecode(b *testing.B) {
	u := sampleUser(42, viswals.Version{Load: 1, Line: 2})
	u.DeletedAt, u.ParentUserID = ptr(u.CreatedAt), ptr(int64(7))
	v := encodeForTest(u)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeValue(v); err != nil {
			b.Fatal(err)
		}
	}
}
