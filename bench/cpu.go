package bench

import (
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// CPU accounting of a load: the CPU seconds each part of the pipeline used,
// read from /proc before and after. The services are shared with anything
// else on the machine, so their figures are upper bounds.

// cpuParts maps a process's command name to the part it belongs to.
var cpuParts = map[string]string{
	"producer": "producer", "consumer": "consumer",
	"postgres": "postgres", "redis-server": "redis", "beam.smp": "rabbitmq",
}

// CPUShare is the CPU seconds a part used during a load.
type CPUShare struct {
	Part    string
	Seconds float64
}

// cpuSnapshot returns the CPU seconds used so far by each process of the
// parts, by pid (so processes that exit in between still count via the
// final figures of their parent's children, see cpuSince).
func cpuSnapshot() map[int]cpuProc {
	out := map[int]cpuProc{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, _ := strconv.Atoi(filepath.Base(d))
		comm, err := os.ReadFile(d + "/comm")
		if err != nil {
			continue
		}
		part, ok := cpuParts[strings.TrimSpace(string(comm))]
		if !ok {
			continue
		}
		stat, err := os.ReadFile(d + "/stat")
		if err != nil {
			continue
		}
		// Fields after the command's closing parenthesis: utime is the
		// 12th, stime the 13th (0-based from the state field).
		s := string(stat)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 13 {
			continue
		}
		ut, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		out[pid] = cpuProc{part: part, seconds: (ut + st) / 100}
	}
	return out
}

type cpuProc struct {
	part    string
	seconds float64
}

// cpuSince returns the CPU used by each part between before and after;
// extra adds figures of processes measured otherwise (exited children).
func cpuSince(before, after map[int]cpuProc, extra map[string]float64) []CPUShare {
	sum := map[string]float64{}
	for pid, a := range after {
		sum[a.part] += a.seconds - before[pid].seconds
	}
	for part, s := range extra {
		sum[part] += s
	}
	var out []CPUShare
	for part, s := range sum {
		out = append(out, CPUShare{part, s})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seconds > out[j].Seconds })
	return out
}
