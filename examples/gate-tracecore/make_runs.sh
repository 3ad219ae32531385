#!/usr/bin/env bash
# Regenerate runs/run-01.txt .. run-12.txt: 12 CI runs of `go test -bench=. -count=10` (needs Go).
set -euo pipefail
cd "$(dirname "$0")/bench"
export GOFLAGS=-mod=mod GOCACHE="${GOCACHE:-$(mktemp -d)}"
for i in $(seq -w 1 12); do
  go test -run '^$' -bench=. -count=10 -benchtime=20000x . > "../runs/run-$i.txt"
  echo "runs/run-$i.txt"
done
