package faults_test

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/viswals/viswals/internal/testenv"
	"github.com/viswals/viswals/internal/testservers"
)

// inputRows is the size of every load: big enough that a fault injected at
// a share of it (stack.share) lands while batches are in flight in every
// stage.
const inputRows = 100_000

var keep = flag.Bool("faults.keep", false, "keep the suite's temporary directory (binaries, input, server data) after the run")

// shared holds what the scenarios share, each part made once on first use
// so that running one scenario alone costs only what it needs.
var shared struct {
	root string // temporary directory of the run, world-readable for the postgres user

	binOnce sync.Once
	binDir  string
	binErr  error

	inputOnce sync.Once
	in        *input
	inputErr  error

	pgOnce     sync.Once
	pgBin      string
	pgOwner    pgOwner
	pgTemplate string
	pgErr      error

	rabbitOnce sync.Once
	rabbit     *rabbitNode
	rabbitErr  error
}

func TestMain(m *testing.M) {
	flag.Parse()
	loadTimeout = *loadTimeoutFlag
	root, err := os.MkdirTemp("", "viswals-faults-")
	if err == nil {
		err = os.Chmod(root, 0o755)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		os.Exit(1)
	}
	shared.root = root
	code := m.Run()
	if shared.rabbit != nil {
		shared.rabbit.close()
	}
	if *keep {
		fmt.Fprintln(os.Stderr, "faults: kept", root)
	} else {
		os.RemoveAll(root)
	}
	os.Exit(code)
}

// skipShort skips the heavy scenarios under -short.
func skipShort(t *testing.T) {
	t.Helper()
	testenv.SkipShort(t, "fault scenarios start their own PostgreSQL, Redis and RabbitMQ servers (initdb, redis-server, rabbitmq-server) and load 100k rows through the real binaries")
}

// prepare makes the shared parts a scenario needs, at the same time:
// the first scenario to run pays for them, the others wait for them.
func prepare(t *testing.T, needSharedRabbit bool) {
	t.Helper()
	steps := []func() error{buildBinaries, generateTheInput, initTemplate}
	if needSharedRabbit {
		steps = append(steps, startSharedRabbit)
	}
	errs := make(chan error, len(steps))
	for _, step := range steps {
		go func() { errs <- step() }()
	}
	var failed bool
	for range steps {
		if err := <-errs; err != nil {
			t.Error(err)
			failed = true
		}
	}
	if failed {
		t.FailNow()
	}
}

// logSetup reports how long a shared part took, once, on stderr (it is
// made outside any one test).
func logSetup(what string, start time.Time) {
	fmt.Fprintf(os.Stderr, "faults: %s in %s\n", what, time.Since(start).Round(time.Millisecond))
}

// buildBinaries builds cmd/producer and cmd/consumer once per run.
func buildBinaries() error {
	shared.binOnce.Do(func() {
		start := time.Now()
		dir := filepath.Join(shared.root, "bin")
		// go test puts its own toolchain first on PATH, so this finds the
		// go that is running the tests.
		goTool, err := exec.LookPath("go")
		if err != nil {
			shared.binErr = fmt.Errorf("find the go command: %w", err)
			return
		}
		out, err := run(os.Environ(), "..", goTool, "build", "-o", dir+string(filepath.Separator), "./cmd/producer", "./cmd/consumer")
		if err != nil {
			shared.binErr = fmt.Errorf("build the binaries: %w\n%s", err, out)
			return
		}
		shared.binDir = dir
		logSetup("built producer and consumer", start)
	})
	return shared.binErr
}

// generateTheInput generates the 100k-row export once per run.
func generateTheInput() error {
	shared.inputOnce.Do(func() {
		start := time.Now()
		shared.in, shared.inputErr = generateInput(filepath.Join(shared.root, "users.csv"), inputRows, 4)
		if shared.inputErr != nil {
			shared.inputErr = fmt.Errorf("generate the input: %w", shared.inputErr)
			return
		}
		logSetup(fmt.Sprintf("generated %v", shared.in), start)
	})
	return shared.inputErr
}

// initTemplate runs initdb once; every scenario's cluster is a copy.
func initTemplate() error {
	shared.pgOnce.Do(func() {
		start := time.Now()
		if shared.pgBin, shared.pgErr = testservers.PGBinDir(); shared.pgErr != nil {
			return
		}
		if shared.pgOwner, shared.pgErr = testservers.FindPGOwner(); shared.pgErr != nil {
			return
		}
		shared.pgTemplate, shared.pgErr = initPGTemplate(shared.pgBin, shared.pgOwner, filepath.Join(shared.root, "pg-template"))
		if shared.pgErr != nil {
			shared.pgErr = fmt.Errorf("PostgreSQL: %w", shared.pgErr)
			return
		}
		logSetup("initdb", start)
	})
	return shared.pgErr
}

// startSharedRabbit starts the RabbitMQ node that the scenarios which do
// not restart the broker share, each on queues of its own.
func startSharedRabbit() error {
	shared.rabbitOnce.Do(func() {
		start := time.Now()
		shared.rabbit, shared.rabbitErr = startRabbit(filepath.Join(shared.root, "rabbit-shared"))
		if shared.rabbitErr != nil {
			shared.rabbitErr = fmt.Errorf("RabbitMQ: %w", shared.rabbitErr)
			return
		}
		logSetup("RabbitMQ node "+shared.rabbit.node+" up", start)
	})
	return shared.rabbitErr
}
