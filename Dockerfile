# syntax=docker/dockerfile:1
#
# fonestorm-bridge image: `docker build -t fonestorm-bridge:0.1.0 .`
#
#   docker run --rm -p 8080:8080 -e BRIDGE_KAFKA__BOOTSTRAP_SERVERS=kafka:9092 \
#       fonestorm-bridge:0.1.0 receiver        # or: worker | serve (default)
#
# Two stages on the same pinned base: the builder makes a virtualenv with the bridge and its
# dependencies (all of them ship manylinux wheels, so no compiler is needed); the final stage
# copies only that venv and runs as an unprivileged numeric user, so Kubernetes can verify
# runAsNonRoot. Bump PYTHON_IMAGE deliberately (and pin by digest in your registry mirror).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

############################ builder ############################
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# Only what the wheel needs: the package metadata, its readme and the package itself.
COPY pyproject.toml README.md ./
COPY bridge ./bridge
# A non-editable install builds a wheel of the bridge and installs it with its dependencies,
# byte-compiled now because the runtime root filesystem is read-only. pip itself is not needed
# at run time.
RUN pip install --upgrade pip \
    && pip install --compile . \
    && pip uninstall --yes pip

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

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    BRIDGE_HTTP__HOST=0.0.0.0 \
    BRIDGE_HTTP__PORT=8080

WORKDIR /tmp
USER 10001:10001
EXPOSE 8080

# Liveness for plain `docker run`; Kubernetes uses the chart's probes instead.
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"]

ENTRYPOINT ["fonestorm-bridge"]
CMD ["serve"]
