# syntax=docker/dockerfile:1
#
# fonestorm-bridge image: `docker build -t fonestorm-bridge:0.1.0 .`
#
#   docker run --rm -p 8080:8080 -p 127.0.0.1:9090:9090 \
#       -e BRIDGE_KAFKA__BOOTSTRAP_SERVERS=kafka:9092 \
#       fonestorm-bridge:0.1.0 receiver        # or: worker | serve (default)
#
# Callbacks on 8080; /healthz, /readyz and /metrics only on the admin port 9090, so publishing
# the callback port never exposes the metrics (-e BRIDGE_HTTP__ADMIN_PORT= serves all on 8080).
#
# Two stages on the same pinned base: the builder makes a virtualenv with the bridge and its
# dependencies (all of them ship manylinux wheels, so no compiler is needed); the final stage
# copies only that venv and runs as an unprivileged numeric user, so Kubernetes can verify
# runAsNonRoot.
#
# Supply chain: nothing is resolved at build time. The dependencies are exactly the versions of
# requirements.lock (runtime) and requirements-build.lock (setuptools for the bridge's wheel),
# each file checked against its sha256 (`make lock` regenerates them from pyproject.toml; `make
# lint` checks that they still match). The base image is pinned too: a tag can be re-pointed, a
# digest cannot, so the default below names both (the tag for people, the digest of its
# multi-platform index for the builder). To refresh it (README, Supply chain), read the index
# digest of the tag with
#   docker buildx imagetools inspect python:3.11.14-slim-bookworm     # the "Digest:" line
# and replace tag and digest together, deliberately (Python patch releases, Debian security
# updates); re-run `make lock` if the Python minor version changes. A one-off build can also
# take --build-arg PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:<digest>.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

############################ builder ############################
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_NO_INPUT=1 \
    PYTHONDONTWRITEBYTECODE=1

# /opt/venv is what the image ships; /opt/build only builds the bridge's wheel. Both use the pip
# of the base image: upgrading it here would download an unpinned pip.
RUN python -m venv /opt/venv \
    && python -m venv /opt/build
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# The locked dependencies, in a layer that only changes with the locks: exact versions, every
# file checked against the lock's hashes (--require-hashes), wheels only (no sdist can run a
# build), and no resolver (--no-deps): pip installs exactly the lock or fails. Byte-compiled now
# because the runtime root filesystem is read-only.
COPY requirements.lock requirements-build.lock ./
RUN /opt/build/bin/pip install --require-hashes --no-deps --only-binary :all: \
        -r requirements-build.lock \
    && pip install --require-hashes --no-deps --only-binary :all: --compile -r requirements.lock

# Only what the wheel needs: the package metadata, its readme and the package itself.
COPY pyproject.toml README.md ./
COPY bridge ./bridge
# The bridge: a wheel built with the locked setuptools (no build isolation, so no build
# requirements are fetched), installed without dependencies. `pip check` fails the build if the
# lock misses a dependency or pins an incompatible one. pip and setuptools (from ensurepip) are
# not needed at run time.
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation --wheel-dir dist . \
    && pip install --no-deps --compile dist/fonestorm_bridge-*.whl \
    && pip check \
    && pip uninstall --yes pip setuptools

############################ runtime ############################
FROM ${PYTHON_IMAGE} AS runtime

ARG PYTHON_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="fonestorm-bridge" \
      org.opencontainers.image.description="Bridge between FoneStorm call callbacks / create-call API and Apache Kafka" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"

# Unprivileged user with a fixed numeric UID/GID (matches the Helm chart's securityContext).
RUN groupadd --system --gid 10001 bridge \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin bridge

COPY --from=builder /opt/venv /opt/venv

# The operations endpoints get their own port by default, as in the Helm chart: the callback
# port then answers nothing but callbacks.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    BRIDGE_HTTP__HOST=0.0.0.0 \
    BRIDGE_HTTP__PORT=8080 \
    BRIDGE_HTTP__ADMIN_PORT=9090

WORKDIR /tmp
USER 10001:10001
EXPOSE 8080 9090

# Liveness for plain `docker run`; Kubernetes uses the chart's probes instead.
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["fonestorm-bridge", "healthcheck"]

# Exec form, no init: the bridge is PID 1 and gets the signals itself (it installs its handlers
# before anything else, README "Shutdown"; `docker run --init` adds an init in front of it).
ENTRYPOINT ["fonestorm-bridge"]
CMD ["serve"]
