# The project's commands. `make test` is the README's test command.
GO ?= go
BENCH_ROWS ?= 1000000

.PHONY: test build bench bench-smoke bench-10m bench-go

test:
	bash scripts/test

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/ ./cmd/...

# The performance harness (bench/): data, the yardsticks and the project in
# one run; figures into docs/benchmarks.md, charts into docs/benchmarks.png.
bench:
	$(GO) run ./bench/cmd/bench -rows $(BENCH_ROWS) -doc docs/benchmarks.md -plot docs/benchmarks.png

# The same harness at a tiny size (what TestBenchSmoke runs in CI).
bench-smoke:
	$(GO) run ./bench/cmd/bench -smoke

# Memory at 10M rows: the load alone, RSS over time into docs/rss-10m.png.
bench-10m:
	$(GO) run ./bench/cmd/bench -rows 10000000 -load-only -section rss10m -doc docs/benchmarks.md -plot docs/rss-10m.png

# The Go benchmarks of the hot paths.
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./csvin ./rabbitmq ./emailcrypt ./rediscache ./httpapi
	$(GO) test -run '^$$' -bench . -benchtime 200x ./postgres
