#!/usr/bin/env bash
# Installs and starts what the tests need on a Debian machine, idempotently:
# protoc, PostgreSQL and Redis (started on 127.0.0.1:5432 and :6379), headless
# Chromium, Node.js/npm, shellcheck, spin, gcc, protoc-gen-go. `make test` runs
# it first (so the README's one test command works on a fresh machine), and so
# does CI (.ci/run calls make test). REALM_SKIP_SETUP=1 skips it.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ "${REALM_SKIP_SETUP:-}" == 1 ]] && exit 0

log() { printf '\n==> %s\n' "$*"; }
export DEBIAN_FRONTEND=noninteractive
gopath=$(go env GOPATH 2>/dev/null || echo /root/go)
export PATH="$PATH:/usr/local/go/bin:$gopath/bin"
as_root() {
  if [[ $(id -u) == 0 ]]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else echo "need root to run: $* (or install those packages yourself, then run make test again)" >&2; return 1
  fi
}

need=()
command -v protoc >/dev/null || need+=(protobuf-compiler)
command -v redis-server >/dev/null || need+=(redis-server)
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || need+=(postgresql postgresql-contrib)
command -v chromium >/dev/null || need+=(chromium)
command -v shellcheck >/dev/null || need+=(shellcheck)
command -v make >/dev/null || need+=(make)
command -v spin >/dev/null || need+=(spin)
command -v gcc >/dev/null || need+=(gcc)
# The TypeScript SDK and the browser demo test (make test-ts): Node.js 20+ and npm.
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
if ((${#need[@]})); then
  log "apt-get install ${need[*]}"
  as_root apt-get update -qq || true
  as_root apt-get install -y -qq "${need[@]}"
fi

node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' ||
  echo "warning: Node.js $(node --version) is older than 20, which clients/ts (make test-ts) needs"

log "starting PostgreSQL and Redis if they are not running"
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  as_root pg_ctlcluster --skip-systemctl-redirect "$(find /etc/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -1)" main start || true
fi
for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
pg_isready -h 127.0.0.1 -p 5432 || { echo "PostgreSQL did not start on 127.0.0.1:5432"; exit 1; }
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  as_root mkdir -p /var/lib/redis /var/log/redis
  as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi
for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 1; done

log "protoc-gen-go"
command -v protoc-gen-go >/dev/null || go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12

log "protoc-gen-go"
command -v protoc-gen-go >/dev/null || go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
log "test environment ready"
