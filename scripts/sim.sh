#!/usr/bin/env bash
# `pnpm sim`: runs seeded simulated worlds (packages/sim/README.md), e.g.
#   pnpm sim --seeds 2000 --workers 2
#   pnpm sim --seed sim-17          # one world, with its trace
# Installs what a fresh machine lacks, bundles the simulator, and runs it with plain node.
# Exit status: 0 when every world passed, 1 on any violation, 2 on bad flags.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
node scripts/build.mjs sim || exit 1
exec node packages/sim/dist/cli.mjs "$@"
