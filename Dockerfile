# syntax=docker/dockerfile:1.10
#
# One image per Realmstream service, chosen by the SERVICE build argument
# (gateway, world, persist, monitor; or stack, the all-in-one binary whose
# "bots" command the compose bots profile runs):
#
#   docker build --build-arg SERVICE=world --build-arg VERSION=$(git describe --always --dirty) \
#     -t realmstream/world:$(git rev-parse --short HEAD) .
#
# The build context is the workspace root (go.work, libs/, services/...), but
# each module is built on its own with GOWORK=off through scripts/build.sh, the
# same script the deploy tests run: the module's go.mod and its replace of
# ../../libs define a release, exactly as CI's gowork-off check does.
# The runtime is distroless static (no shell, no package manager) as uid 65532.

FROM golang:1.26.8-bookworm AS build
ARG SERVICE
WORKDIR /src
ENV GOTOOLCHAIN=local GOFLAGS=-mod=readonly
# Module files first: the download layer is rebuilt only when they change, and
# the module cache mount keeps downloads across builds and services.
COPY go.work go.work.sum ./
COPY scripts/build.sh scripts/build.sh
COPY libs/go.* libs/
COPY services/gateway/go.* services/gateway/
COPY services/world/go.* services/world/
COPY services/persist/go.* services/persist/
COPY services/monitor/go.* services/monitor/
COPY stack/go.* stack/
COPY tools/healthcheck/go.* tools/healthcheck/
RUN --mount=type=cache,target=/go/pkg/mod \
    sh scripts/build.sh download "${SERVICE}"
COPY libs/ libs/
COPY services/ services/
COPY stack/ stack/
COPY tools/healthcheck/ tools/healthcheck/
# VERSION is declared late so a new version does not invalidate the layers above.
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    sh scripts/build.sh build "${SERVICE}" /out "${VERSION}"

FROM gcr.io/distroless/static-debian12:nonroot@sha256:d093aa3e30dbadd3efe1310db061a14da60299baff8450a17fe0ccc514a16639 AS runtime
ARG SERVICE
ARG VERSION=dev
LABEL org.opencontainers.image.title="realmstream-${SERVICE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/realmstream/realmstream" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build --chmod=0555 /out/service /out/healthcheck /usr/local/bin/
# /tools (owned by the runtime user) seeds the compose volume through which the
# probe is handed to images without a shell (see compose.yml, healthcheck-tools).
COPY --from=build --chown=65532:65532 /out/tools/ /tools/
USER 65532:65532
# TCP and WebSocket (gateway), ops HTTP (gateway 8080, world 8081, persist 8082, monitor 8083).
EXPOSE 7000 7001 8080 8081 8082 8083
# The probe reads REALM_HTTP_ADDR like the service does (default linked in per SERVICE).
HEALTHCHECK --interval=10s --timeout=4s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/healthcheck", "-path", "/readyz"]
ENTRYPOINT ["/usr/local/bin/service"]
