#!/usr/bin/env bash
# Sourced by the README commands: makes a fresh Debian machine able to run jetmesh.
# pnpm at the version pinned in package.json, the locked dependencies, and the
# nats-server, redis-server, promtool and prometheus (Debian packages nats-server,
# redis-server and prometheus; test/alerts.test.ts runs promtool, and
# test/observability/prometheus-e2e.test.ts runs prometheus) when they are missing.
PNPM_VERSION=$(node -p "require('./package.json').packageManager.split('@')[1]")
if ! command -v pnpm >/dev/null 2>&1 || [ "$(pnpm --version 2>/dev/null)" != "$PNPM_VERSION" ]; then
  echo "bootstrap: installing pnpm@$PNPM_VERSION" >&2
  npm i -g "pnpm@$PNPM_VERSION" >/dev/null 2>&1 || { echo "bootstrap: npm i -g pnpm@$PNPM_VERSION failed" >&2; exit 1; }
fi
pnpm install --frozen-lockfile --reporter=silent || { echo "bootstrap: pnpm install failed" >&2; exit 1; }
need=()
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || need+=(nats-server)
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || need+=(redis-server)
{ command -v promtool >/dev/null 2>&1 || [ -x /usr/bin/promtool ]; } \
  && { command -v prometheus >/dev/null 2>&1 || [ -x /usr/bin/prometheus ]; } || need+=(prometheus)
if [ ${#need[@]} -gt 0 ]; then
  echo "bootstrap: installing ${need[*]} from Debian packages" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null \
    || { echo "bootstrap: apt-get install ${need[*]} failed" >&2; exit 1; }
fi
export PATH="$PATH:/usr/sbin"
