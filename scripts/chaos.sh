#!/usr/bin/env bash
# `pnpm chaos`: installs what a fresh machine lacks (pnpm, the dependencies, nats-server and
# redis-server), then runs the chaos CLI with the given flags, e.g.
#   pnpm chaos --scenario all --duration 10m --seed 42 --rate 20
# Exit status: the CLI's (0 when every scenario passed, 1 on any violation, 2 on bad flags).
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
# Every process it starts runs a bundle (scripts/build.mjs): rebuilt each time, never stale.
node scripts/build.mjs || exit 1
exec node --import tsx packages/chaos/src/cli.ts "$@"
