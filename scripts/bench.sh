#!/usr/bin/env bash
# The README's bench command. Installs what a fresh machine lacks (pnpm, the dependencies,
# nats-server and redis-server), then runs the benchmark on servers it starts itself on
# free 127.0.0.1 ports. Options: see `pnpm bench --help` (--messages, --tiny, --only, --json).
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
# Every process it starts runs a bundle (scripts/build.mjs): rebuilt each time, never stale.
node scripts/build.mjs || exit 1
exec node --import tsx bench/src/main.ts "$@"
