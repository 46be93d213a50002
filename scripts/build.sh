#!/bin/sh
# build.sh builds one Realmstream service binary and the image's healthcheck
# probe exactly as the container image does. The Dockerfile runs it, and the
# deploy tests run it too, so what the tests start is what the image ships.
#
#   scripts/build.sh download SERVICE            fetch the module's dependencies
#   scripts/build.sh build SERVICE OUTDIR [VERSION]
#                                                OUTDIR/service, OUTDIR/healthcheck,
#                                                OUTDIR/tools/healthcheck
#
# SERVICE is gateway, world, persist or monitor (services/SERVICE/cmd/SERVICE),
# or stack (the all-in-one binary stack/cmd/realmstream, used by the bots
# profile). Each module builds on its own with GOWORK=off: its go.mod and its
# replace of ../../libs are what a release depends on, not the workspace.
set -eu

usage() {
	sed -n '2,12p' "$0" >&2
	exit 2
}

[ $# -ge 2 ] || usage
cmd=$1
service=$2
root=$(cd "$(dirname "$0")/.." && pwd)

# module, main package and ops listen address (for the healthcheck default)
case "$service" in
gateway) module=services/gateway pkg=./cmd/gateway addr=:8080 ;;
world) module=services/world pkg=./cmd/world addr=:8081 ;;
persist) module=services/persist pkg=./cmd/persist addr=:8082 ;;
monitor) module=services/monitor pkg=./cmd/monitor addr=:8083 ;;
stack) module=stack pkg=./cmd/realmstream addr=:8080 ;; # "run": the gateway's ops port (--http-base)
*)
	echo "build.sh: unknown SERVICE '$service' (want gateway, world, persist, monitor or stack)" >&2
	exit 2
	;;
esac

export GOWORK=off CGO_ENABLED=0 GOFLAGS=-mod=readonly

case "$cmd" in
download)
	cd "$root/$module" && go mod download
	cd "$root/tools/healthcheck" && go mod download
	;;
build)
	[ $# -ge 3 ] || usage
	out=$3
	version=${4:-dev}
	case "$out" in /*) ;; *) out=$(pwd)/$out ;; esac
	mkdir -p "$out"
	# -s -w: no symbol tables; -trimpath and -buildvcs=false: the same source
	# gives the same binary on any machine (the version is stamped explicitly,
	# the image has no .git).
	ldflags="-s -w -X main.version=$version"
	cd "$root/$module"
	go build -trimpath -buildvcs=false -ldflags "$ldflags" -o "$out/service" "$pkg"
	cd "$root/tools/healthcheck"
	go build -trimpath -buildvcs=false -ldflags "$ldflags -X main.defaultAddr=$addr" -o "$out/healthcheck" .
	# A copy for the image's /tools directory, which compose shares with
	# third-party images that have no shell to probe themselves with.
	mkdir -p "$out/tools"
	cp "$out/healthcheck" "$out/tools/healthcheck"
	chmod 0755 "$out/tools/healthcheck"
	;;
*) usage ;;
esac
