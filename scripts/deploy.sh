#!/usr/bin/env bash
# deploy.sh: build, push and roll out Realmstream to one Kubernetes overlay.
#
# Usage: scripts/deploy.sh --env dev|staging|prod [options]
#
#   -e, --env NAME        overlay in deploy/k8s/overlays (required; or DEPLOY_ENV)
#   -r, --registry REG    image registry prefix, e.g. ghcr.io/acme (or REALM_REGISTRY;
#                         required, with --no-push too: the images carry its name)
#   -t, --tag TAG         image tag (default: the git revision, git describe --always
#                         --dirty; a dirty tree is refused for staging and prod)
#   -c, --context CTX     kubectl context (default: the current one)
#       --services LIST   comma list of services (default gateway,world,persist,monitor);
#                         only their objects (and the shared ones) are applied
#       --timeout DUR     rollout wait per Deployment (default 10m)
#       --no-build        do not build images (they must exist in the registry)
#       --no-push         build locally but do not push (e.g. kind load afterwards)
#       --allow-dirty     build staging/prod images from a tree with uncommitted changes
#   -n, --dry-run         print every command and the rendered manifests; change nothing
#   -h, --help            this help
#
# Steps: check the required Secrets exist, docker build (one image per
# service, SERVICE build arg, VERSION from git), docker push, render the
# overlay with the images pinned to TAG, kubectl apply, kubectl rollout status
# for every Deployment. If one fails, everything the apply changed is rolled
# back: every object that existed before is re-applied as it was (Deployments,
# ConfigMaps, Services, HPAs, policies), the objects the deploy created are
# deleted (except a Namespace and CNPG Clusters, which hold data), the
# restored Deployments are waited for, and the script exits 1.
#
# --services LIST applies only those services' objects (label
# realmstream.io/service) and the shared ones (realmstream.io/service: shared:
# realm-common, the default-deny policy): the other services keep what runs
# now, never an unpinned image. Infrastructure of the dev overlay and the
# Namespace are applied only by a deploy of every service.
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
# Even with --no-push the images are named after the registry the cluster
# pulls from: without one they would be Docker Hub names (docker.io/realmstream/...).
[[ -n "$registry" ]] || die "no registry: give --registry REG (or REALM_REGISTRY); --no-push needs it too (the name the cluster pulls)"
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
	echo "$registry/realmstream/$1:$tag"
}

echo "== plan: env=$env_name namespace=$namespace tag=$tag revision=$git_rev services=$services dry-run=$dry_run"

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

if ! command -v kubectl >/dev/null 2>&1; then
	die "kubectl not found: it renders the overlay (kubectl kustomize) and applies it"
fi
if ! kubectl kustomize "$work" >"$work/rendered.yaml" 2>"$work/render.err"; then
	die "kubectl kustomize $env_name failed: $(cat "$work/render.err")"
fi

# select_objects keeps the documents of the rendered stream that this deploy
# applies: all of them for every service, else those labelled with a listed
# service or "shared". Kustomize prints metadata.labels at four spaces.
select_objects() {
	if [[ "$services" == "$ALL_SERVICES" ]]; then
		cat "$work/rendered.yaml"
		return
	fi
	awk -v want=",$services,shared," '
		function flush() { if (doc != "" && keep) { printf "%s", sep doc; sep = "---\n" } doc = ""; keep = 0 }
		/^---$/ { flush(); next }
		{ doc = doc $0 "\n" }
		/^    realmstream.io\/service: / { v = $2; gsub(/"/, "", v); if (index(want, "," v ",")) keep = 1 }
		END { flush() }
	' "$work/rendered.yaml"
}
select_objects >"$work/apply.yaml"
grep -q '^kind: Deployment$' "$work/apply.yaml" || die "nothing to deploy: no Deployment selected for $services"

# required_secrets lists the Secrets the selected pods read (env secretKeyRef
# without optional: true, envFrom secretRef, secret volumes) that neither this
# render generates nor a CNPG Cluster of the render creates (<cluster>-app,
# <cluster>-ca).
required_secrets() {
	awk '
		/^---$/ { kind = ""; next }
		/^kind: / { kind = $2 }
		/^  name: / && kind == "Secret" { made[$2] = 1 }
		/^  name: / && kind == "Cluster" { made[$2 "-app"] = 1; made[$2 "-superuser"] = 1; made[$2 "-ca"] = 1 }
		/secretKeyRef:|secretRef:/ { ref = 1; ind = match($0, /[^ ]/); name = ""; opt = 0; next }
		/secretName: / { need[$2] = 1 }
		ref {
			i = match($0, /[^ ]/)
			if (i <= ind) { if (name != "" && !opt) need[name] = 1; ref = 0 }
			else if ($1 == "name:") name = $2
			else if ($1 == "optional:" && $2 == "true") opt = 1
		}
		END { if (ref && name != "" && !opt) need[name] = 1; for (n in need) if (!(n in made)) print n }
	' "$work/apply.yaml" | sort -u
}
mapfile -t secrets < <(required_secrets)

if [[ $dry_run -eq 1 ]]; then
	echo "== rendered manifests"
	cat "$work/apply.yaml"
	echo "== dry run: would check the Secrets ${secrets[*]:-(none)} in $namespace"
fi

# 1b. A pod whose Secret is missing hangs in CreateContainerConfigError for
# the whole rollout timeout: refuse before touching the cluster.
if [[ $dry_run -eq 0 && ${#secrets[@]} -gt 0 ]]; then
	missing=()
	for sec in "${secrets[@]}"; do
		"${kubectl_cmd[@]}" get "secret/$sec" -o name >/dev/null 2>&1 || missing+=("$sec")
	done
	if [[ ${#missing[@]} -gt 0 ]]; then
		die "missing Secrets in namespace $namespace: ${missing[*]} (create them first, see docs/deploy.md)"
	fi
fi

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

# 3. Apply. What existed before is saved first (without resourceVersion, so
# that re-applying it is not refused as a conflict) for the rollback.
if [[ $dry_run -eq 0 ]]; then
	"${kubectl_cmd[@]}" get -f "$work/apply.yaml" --ignore-not-found -o name >"$work/before.names" 2>/dev/null || :
	"${kubectl_cmd[@]}" get -f "$work/apply.yaml" --ignore-not-found -o yaml 2>/dev/null |
		sed -E '/^    (resourceVersion|uid|creationTimestamp|generation|selfLink): /d' >"$work/previous.yaml" || :
fi
apply_failed=0
run "${kubectl_cmd[@]}" apply --server-side --force-conflicts --field-manager=realmstream-deploy -f "$work/apply.yaml" || apply_failed=1

# 4. Wait.
failed=""
if [[ $apply_failed -eq 1 ]]; then
	failed="apply"
else
	for s in "${svc_list[@]}"; do
		if ! run "${kubectl_cmd[@]}" rollout status "deployment/$s" --timeout "$timeout"; then
			failed="deployment/$s"
			break
		fi
	done
fi

# 5. Roll back everything the apply changed.
if [[ -n "$failed" ]]; then
	echo "deploy.sh: $failed failed: rolling back every object of this deploy" >&2
	# A List with items, or a single object (kubectl prints one object bare).
	if grep -qE '^- apiVersion: |^kind: [^L]' "$work/previous.yaml" 2>/dev/null; then
		run "${kubectl_cmd[@]}" apply --server-side --force-conflicts --field-manager=realmstream-deploy -f "$work/previous.yaml" ||
			echo "deploy.sh: re-applying the previous objects failed" >&2
	fi
	"${kubectl_cmd[@]}" get -f "$work/apply.yaml" --ignore-not-found -o name >"$work/after.names" 2>/dev/null || :
	while read -r obj; do
		[[ -n "$obj" ]] || continue
		case "$obj" in
		namespace/* | cluster.postgresql.cnpg.io/*) continue ;;
		esac
		grep -qxF "$obj" "$work/before.names" 2>/dev/null && continue
		run "${kubectl_cmd[@]}" delete --wait=false "$obj" || echo "deploy.sh: delete of $obj failed" >&2
	done <"$work/after.names"
	for s in "${svc_list[@]}"; do
		if grep -qxF "deployment.apps/$s" "$work/before.names" 2>/dev/null; then
			run "${kubectl_cmd[@]}" rollout status "deployment/$s" --timeout "$timeout" || true
		fi
	done
	exit 1
fi

if [[ $dry_run -eq 1 ]]; then
	echo "== dry run: nothing was built, pushed or applied ($tag for $env_name, $namespace)"
else
	echo "== deployed $tag to $env_name ($namespace): ${services}"
fi
