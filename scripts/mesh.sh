#!/usr/bin/env bash
# The README's first command (`pnpm mesh`, or `bash scripts/mesh.sh` on a fresh machine):
# installs what is missing (pnpm, the dependencies, nats-server, redis-server), then runs
# the local runner: the whole mesh, demo traffic, and a report with the invariants checked.
# Options go to the runner: `pnpm mesh --transfers 2000 --rate 400 --keep` (see --help).
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
# Every process it starts runs a bundle (scripts/build.mjs): rebuilt each time, never stale.
node scripts/build.mjs || exit 1
# exec: Ctrl-C reaches the runner directly, which stops every process it started.
exec node --import tsx packages/mesh/src/main.ts "$@"
