#!/usr/bin/env bash
# deploy.sh: build, push and roll out Realmstream to one Kubernetes overlay.
#
# Usage: scripts/deploy.sh --env dev|staging|prod [options]
#
#   -e, --env NAME        overlay in deploy/k8s/overlays (required; or DEPLOY_ENV)
#   -r, --registry REG    image registry prefix, e.g. ghcr.io/acme (or REALM_REGISTRY;
#                         required unless --no-push is given)
#   -t, --tag TAG         image tag (default: the git revision, git describe --always
#                         --dirty; a dirty tree is refused for staging and prod)
#   -c, --context CTX     kubectl context (default: the current one)
#       --services LIST   comma list of services (default gateway,world,persist,monitor)
#       --timeout DUR     rollout wait per Deployment (default 10m)
#       --no-build        do not build images (they must exist in the registry)
#       --no-push         build locally but do not push (e.g. kind load afterwards)
#       --allow-dirty     build staging/prod images from a tree with uncommitted changes
#   -n, --dry-run         print every command and the rendered manifests; change nothing
#   -h, --help            this help
#
# Steps: docker build (one image per service, SERVICE build arg, VERSION from
# git), docker push, render the overlay with the images pinned to TAG, kubectl
# apply, kubectl rollout status for every Deployment; if one fails, kubectl
# rollout undo for every Deployment that was rolled, and exit 1.
set -euo pipefail

readonly ALL_SERVICES="gateway,world,persist,monitor"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

env_name="${DEPLOY_ENV:-}"
registry="${REALM_REGISTRY:-}"
tag=""
kube_context=""
services="$ALL_SERVICES"
timeout="10m"
build=1
push=1
allow_dirty=0
dry_run=0

usage() {
	awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
}

die() {
	echo "deploy.sh: $*" >&2
	exit 2
}

need_arg() {
	[[ $# -ge 2 && -n "$2" ]] || die "$1 needs a value (see --help)"
}

while [[ $# -gt 0 ]]; do
	case "$1" in
	-e | --env) need_arg "$@"; env_name="$2"; shift 2 ;;
	-r | --registry) need_arg "$@"; registry="$2"; shift 2 ;;
	-t | --tag) need_arg "$@"; tag="$2"; shift 2 ;;
	-c | --context) need_arg "$@"; kube_context="$2"; shift 2 ;;
	--services) need_arg "$@"; services="$2"; shift 2 ;;
	--timeout) need_arg "$@"; timeout="$2"; shift 2 ;;
	--no-build) build=0; shift ;;
	--no-push) push=0; shift ;;
	--allow-dirty) allow_dirty=1; shift ;;
	-n | --dry-run) dry_run=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
done

[[ -n "$env_name" ]] || die "no environment: give --env dev|staging|prod (or DEPLOY_ENV)"
overlay="$root/deploy/k8s/overlays/$env_name"
if [[ ! -f "$overlay/kustomization.yaml" ]]; then
	known=""
	for d in "$root"/deploy/k8s/overlays/*/; do
		known+="$(basename "$d") "
	done
	die "no overlay '$env_name' (want one of: $known)"
fi
if [[ $push -eq 1 && -z "$registry" ]]; then
	die "no registry: give --registry REG (or REALM_REGISTRY), or --no-push"
fi
registry="${registry%/}"

IFS=',' read -r -a svc_list <<<"$services"
for s in "${svc_list[@]}"; do
	case ",$ALL_SERVICES," in
	*",$s,"*) ;;
	*) die "unknown service '$s' (want some of $ALL_SERVICES)" ;;
	esac
done

# The tag names the exact source: the git revision. Staging and prod refuse a
# dirty tree, whose revision would not say what was built.
git_rev="$(git -C "$root" describe --tags --always --dirty 2>/dev/null || echo unknown)"
if [[ -z "$tag" ]]; then
	tag="$git_rev"
fi
[[ "$tag" != "latest" ]] || die "refusing the tag 'latest': tags must name a revision"
[[ "$tag" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "invalid image tag '$tag'"
if [[ "$env_name" != "dev" && $allow_dirty -eq 0 && ( "$tag" == *-dirty || ( $build -eq 1 && "$git_rev" == *-dirty ) ) ]]; then
	die "the work tree has uncommitted changes ($git_rev): commit before deploying to $env_name (or --allow-dirty)"
fi

namespace="$(sed -n 's/^namespace:[[:space:]]*//p' "$overlay/kustomization.yaml" | head -n1)"
[[ -n "$namespace" ]] || die "overlay $env_name sets no namespace"

kubectl_cmd=(kubectl)
[[ -n "$kube_context" ]] && kubectl_cmd+=(--context "$kube_context")
kubectl_cmd+=(--namespace "$namespace")

# run prints a command (quoted so it can be pasted) and runs it unless --dry-run.
run() {
	printf '+'
	printf ' %q' "$@"
	printf '\n'
	if [[ $dry_run -eq 0 ]]; then
		"$@"
	fi
}

image_of() {
	if [[ -n "$registry" ]]; then
		echo "$registry/realmstream/$1:$tag"
	else
		echo "realmstream/$1:$tag"
	fi
}

echo "== plan: env=$env_name namespace=$namespace tag=$tag revision=$git_rev services=$services dry-run=$dry_run"

# 1. Images.
for s in "${svc_list[@]}"; do
	img="$(image_of "$s")"
	if [[ $build -eq 1 ]]; then
		run docker build --file "$root/Dockerfile" --build-arg "SERVICE=$s" \
			--build-arg "VERSION=$git_rev" --label "org.opencontainers.image.revision=$git_rev" \
			--tag "$img" "$root"
	fi
	if [[ $push -eq 1 ]]; then
		run docker push "$img"
	fi
done

# 2. Manifests: a throw-away kustomization over the overlay pins the images.
# It lives beside the overlays because kustomize only takes relative paths.
work="$(mktemp -d "$root/deploy/k8s/.deploy.XXXXXX")"
trap 'rm -rf "$work"' EXIT
{
	echo "apiVersion: kustomize.config.k8s.io/v1beta1"
	echo "kind: Kustomization"
	echo "resources:"
	echo "  - ../overlays/$env_name"
	echo "images:"
	for s in "${svc_list[@]}"; do
		img="$(image_of "$s")"
		echo "  - name: realmstream/$s"
		echo "    newName: ${img%:*}"
		echo "    newTag: \"$tag\""
		echo "  - name: registry.example.com/realmstream/$s"
		echo "    newName: ${img%:*}"
		echo "    newTag: \"$tag\""
	done
} >"$work/kustomization.yaml"
echo "== kustomization ($work/kustomization.yaml)"
cat "$work/kustomization.yaml"

if [[ $dry_run -eq 1 ]]; then
	echo "== rendered manifests"
	if command -v kubectl >/dev/null 2>&1 && kubectl kustomize "$work" >"$work/rendered.yaml" 2>"$work/render.err"; then
		cat "$work/rendered.yaml"
	else
		echo "(kubectl kustomize not available here: $(cat "$work/render.err" 2>/dev/null || echo 'no kubectl'))"
	fi
fi

# 3. Apply, 4. wait, 5. roll back what was rolled if any rollout fails.
run "${kubectl_cmd[@]}" apply --server-side --force-conflicts --field-manager=realmstream-deploy -k "$work"

failed=""
rolled=()
for s in "${svc_list[@]}"; do
	rolled+=("$s")
	if ! run "${kubectl_cmd[@]}" rollout status "deployment/$s" --timeout "$timeout"; then
		failed="$s"
		break
	fi
done

if [[ -n "$failed" ]]; then
	echo "deploy.sh: rollout of $failed failed: rolling back ${rolled[*]}" >&2
	for s in "${rolled[@]}"; do
		run "${kubectl_cmd[@]}" rollout undo "deployment/$s" || echo "deploy.sh: undo of $s failed" >&2
	done
	for s in "${rolled[@]}"; do
		run "${kubectl_cmd[@]}" rollout status "deployment/$s" --timeout "$timeout" || true
	done
	exit 1
fi

echo "== deployed $tag to $env_name ($namespace)"
