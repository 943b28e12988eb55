#!/usr/bin/env bash
# The README's test command. Installs what a fresh machine lacks (pnpm, the
# dependencies, nats-server and redis-server), runs the whole vitest suite, and
# ends with one plain line `N passed, N failed` read from vitest's JSON report.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
# Every process it starts runs a bundle (scripts/build.mjs): rebuilt each time, never stale.
node scripts/build.mjs || exit 1
rm -f reports/vitest.json
pnpm exec vitest run "$@"
status=$?
node scripts/summary.mjs reports/vitest.json
summary=$?
if [ $status -eq 0 ] && [ $summary -ne 0 ]; then status=$summary; fi
exit $status
