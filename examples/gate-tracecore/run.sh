#!/usr/bin/env bash
# The tracecore-style workflow with sleuth gate, end to end, on the 12 recorded runs in runs/ and helm/.
#   ./run.sh [DB_URL]      default: a fresh SQLite file in a temp dir
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
db="${1:-sqlite:///$work/history.db}"
sleuth="${SLEUTH:-sleuth}"

echo "== record 12 runs of go test -bench=. -count=10, and 12 install-to-Ready timings -> $db"
for i in $(seq -w 1 12); do
  status=success
  [ "$i" = 08 ] && status=failure          # the run whose install breached 300 s failed its job
  $sleuth gate record --db "$db" --suite detectors --run-id "$i" --branch main --status "$status" \
    --created-at "2025-03-01T00:$i:00Z" --no-provenance "$here/runs/run-$i.txt" | tail -1
  $sleuth gate record --db "$db" --suite helm-install --run-id "$i" --branch main --status "$status" \
    --created-at "2025-03-01T00:$i:00Z" --no-provenance "$here/helm/run-$i.csv" | tail -1
done

echo; echo "== graduate: is allocs/event stable enough (CV upper bound < 1 %) to gate hard?"
$sleuth gate graduate --db "$db" --suite detectors --metric '*:allocs/event' --metric '*:ns/op' --target-cv 1% --mode soft
echo "exit $? (soft mode: always 0)"

echo; echo "== check: counters exact, ns/op median budget and regressions"
$sleuth gate check --db "$db" --suite detectors --policy "$here/policy.yaml" --markdown "$work/detectors.md"
echo "exit $?"

echo; echo "== check: install-to-Ready median <= 300 s across the last 10 runs (failed runs included)"
$sleuth gate check --db "$db" --suite helm-install --policy "$here/helm-policy.yaml"
echo "exit $?"

echo; echo "== change points of BenchmarkDetector:ns/op"
$sleuth gate changepoints --db "$db" --suite detectors --metric BenchmarkDetector:ns/op
echo; echo "markdown summary: $work/detectors.md"
