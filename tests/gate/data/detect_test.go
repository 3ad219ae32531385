package detectors

import (
	"strings"
	"testing"
)

func detect(s string) int { return strings.Count(strings.Repeat(s, 8), "ab") }

func BenchmarkDetector(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = detect("xxabyyab")
	}
	b.ReportMetric(3, "allocs/event")
}

func BenchmarkParse(b *testing.B) {
	for _, size := range []string{"small", "large"} {
		b.Run(size, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				_ = strings.Fields(strings.Repeat("a b ", len(size)*10))
			}
		})
	}
}
