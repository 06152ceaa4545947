# syntax=docker/dockerfile:1
# retryd container image: a Debian 12 builder that builds with CI's script and CMake options and
# runs the unit tests (scripts/install-deps.sh, scripts/build.sh; see .ci/run -> scripts/test.sh),
# and a slim Debian 12 runtime with only the shared libraries the binaries load
# (install-deps.sh runtime).
#
# There is no Docker engine on the project's machines: tests/packaging/check_dockerfile.py keeps
# these steps CI's, tests/packaging/check_runtime_libs.py checks that every library the built
# binaries link against is installed by the runtime stage, and scripts/build-image.sh builds this
# file for real with buildah (vfs storage, chroot isolation, no registry) and smoke-tests the
# image; CI runs it (scripts/test-packaging.sh):
#   bash scripts/build-image.sh            # -> localhost/retryd:dev
#
# BASE names the Debian 12 base image; build-image.sh passes a locally made one
# (--build-arg BASE=localhost/debian:bookworm-slim). Both stages use it: the builder's compilers
# and headers all come from install-deps.sh.
ARG BASE=debian:bookworm-slim

FROM ${BASE} AS build
# Dependencies first, so a layer cache (docker build; build-image.sh with LAYERS=1) reuses them
# while only sources change. The `build` mode is CI's `test` mode minus what only the integration
# tests, client tests and promtool use (sqlite3, procps, python3, curl, prometheus);
# check_dockerfile.py holds it to a subset of CI's packages that contains every build package.
COPY scripts/install-deps.sh /src/scripts/install-deps.sh
RUN bash /src/scripts/install-deps.sh build
COPY . /src
WORKDIR /src
# The build is CI's (scripts/test.sh): same script, same CMake options, but only the targets the
# image needs plus every unit test (the integration tests and benchmarks run in CI on the host).
# Then the unit tests (tests/server and tests/cli; RETRYD_BIN/RETRYCTL_BIN as ctest sets them, so
# the tests that run the real binaries run here too), then a stripped install. The builder has no
# PostgreSQL server: the PostgreSQL variants (test names containing "Postgres") run in CI only.
RUN BUILD_TARGETS="retryd retryctl retryd_unit_tests" bash scripts/build.sh -DRETRYD_BUILD_TESTS=ON \
 && for src in $(find tests/server tests/cli -name '*_test.cc' | sort); do \
      t="build/tests/$(basename "$src" .cc)"; echo "== $t"; \
      RETRYD_BIN=/src/build/server/retryd RETRYCTL_BIN=/src/build/client/cli/retryctl \
      RETRYD_SKIP_POSTGRES_TESTS=1 "$t" --gtest_brief=1 --gtest_filter='-*Postgres*' || exit 1; \
    done \
 && cmake --install build --prefix /out --strip

FROM ${BASE}
LABEL org.opencontainers.image.title="retryd" \
      org.opencontainers.image.description="retry and dead-letter control plane (retryd server and retryctl CLI)" \
      org.opencontainers.image.licenses="NOASSERTION"
COPY scripts/install-deps.sh /tmp/install-deps.sh
# Runtime libraries only (the script removes the apt lists in this mode); a fixed non-root
# user 10001 (the Helm chart's runAsUser) owning the /data volume.
RUN bash /tmp/install-deps.sh runtime && rm /tmp/install-deps.sh \
 && groupadd --gid 10001 retryd \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /data --shell /usr/sbin/nologin retryd \
 && install -d -o 10001 -g 10001 -m 0750 /data
# Executables owned by root, run by retryd.
COPY --from=build /out/bin/retryd /out/bin/retryctl /usr/local/bin/
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
# 50051 gRPC, 9464 Prometheus /metrics.
EXPOSE 50051 9464
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/retryctl", "--server", "127.0.0.1:50051", "--timeout", "2s", "health"]
# Exec form: retryd is PID 1 and receives SIGTERM itself (graceful drain, --shutdown-grace).
ENTRYPOINT ["/usr/local/bin/retryd"]
# A container is reached through its network namespace, so retryd listens on 0.0.0.0; this build
# has neither bearer tokens nor TLS, so that needs --insecure-allow-remote, and retryd logs a
# warning at start-up. Keep the port on a private network. A config file can be given with
# RETRYD_CONFIG=/path or by replacing this CMD (flags override the file). /metrics listens on
# 0.0.0.0:9464 too (read-only counts; no payloads or message ids).
CMD ["--grpc-addr=0.0.0.0:50051", "--metrics-addr=0.0.0.0:9464", "--data-dir=/data", "--insecure-allow-remote"]
