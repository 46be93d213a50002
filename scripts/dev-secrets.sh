#!/usr/bin/env bash
# dev-secrets.sh writes random development secrets for compose.yml into a
# git-ignored file (default .env.secrets), so that no password is committed:
#   scripts/dev-secrets.sh            # once per checkout
#   docker compose --env-file .env --env-file .env.secrets up -d --build
# It never overwrites an existing file (the Postgres volumes keep the first
# password); delete the file and the volumes to start over.
set -euo pipefail
out=${1:-.env.secrets}
if [[ -e $out ]]; then
	echo "dev-secrets: $out exists; keeping it" >&2
	exit 0
fi
rand() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }
umask 077
{
	echo "# Development secrets made by scripts/dev-secrets.sh (never commit this file)."
	echo "PG_PASSWORD=$(rand 16)"
	echo "GATEWAY_TOKEN_KEY=$(rand 32)"
	echo "GRAFANA_ADMIN_PASSWORD=$(rand 16)"
} >"$out"
echo "dev-secrets: wrote $out" >&2
