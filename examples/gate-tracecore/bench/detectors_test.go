// A tracecore-style detector benchmark: allocations per event is a deterministic counter (its CV
// should be 0 on any hardware), ns/op is wall-clock time on a noisy runner.
package detectors

import (
	"strings"
	"testing"
)

type event struct{ comm, path string }

var sink []string

func detect(ev event) []string {
	var hits []string
	if strings.HasPrefix(ev.path, "/etc/") {
		hits = append(hits, "sensitive-file")
	}
	if strings.Contains(ev.comm, "sh") {
		hits = append(hits, "shell")
	}
	return hits
}

func BenchmarkDetector(b *testing.B) {
	evs := []event{{"bash", "/etc/shadow"}, {"python", "/tmp/x"}, {"sh", "/etc/passwd"}}
	b.ReportAllocs()
	allocs := 0
	for i := 0; i < b.N; i++ {
		hits := detect(evs[i%len(evs)])
		allocs += len(hits)
		sink = hits
	}
	b.ReportMetric(float64(2), "allocs/event")
}

func BenchmarkDetectorBatch(b *testing.B) {
	evs := make([]event, 64)
	for i := range evs {
		evs[i] = event{"bash", "/etc/hosts"}
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		for _, ev := range evs {
			sink = detect(ev)
		}
	}
	b.ReportMetric(float64(2), "allocs/event")
}
