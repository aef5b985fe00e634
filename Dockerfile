# flyte-sensor-connector: the gRPC connector (flyteidl AsyncAgentService) that runs Flyte sensors.
#
#   docker build -t flyte-sensor-connector .                            # extras s3,gcs,azure,postgres
#   docker build --build-arg EXTRAS=s3 -t flyte-sensor-connector:s3 .  # fewer extras, smaller image
#   docker build --build-arg EXTRA_PIP_PACKAGES="my-sensors==1.2 PyMySQL" -t my-connector .
#   docker run --rm --read-only -p 8000:8000 -p 9090:9090 flyte-sensor-connector
#
# Every package comes in at the version pinned in constraints.txt (scripts/lock.sh writes it), so two
# builds of one commit hold the same packages; EXTRA_PIP_PACKAGES are held to it too where it pins them.
#
# The image holds no key: mount one and point SENSOR_CONNECTOR_SIGNING_KEY_FILE at it (see docs/deploy.md).

ARG PYTHON_IMAGE=python:3.11-slim

# ---- builder: a virtualenv with the connector and its runtime dependencies, nothing else ----------------
FROM ${PYTHON_IMAGE} AS builder

# Object stores (s3, gcs, azure) and SqlSensor with PostgreSQL (postgres: SQLAlchemy + pg8000).
ARG EXTRAS=s3,gcs,azure,postgres
# More packages for the runtime venv, space-separated pip requirements (sensor plugins, drivers).
ARG EXTRA_PIP_PACKAGES=
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore

RUN python -m venv /opt/sensor-connector

WORKDIR /src
COPY pyproject.toml README.md LICENSE constraints.txt ./
COPY connector ./connector
COPY sensors ./sensors

# A regular (non-editable) install: the wheel is built here and the sources stay behind in this stage.
# pip and setuptools are removed from the venv afterwards: nothing installs at run time.
RUN /opt/sensor-connector/bin/pip install -c /src/constraints.txt "/src${EXTRAS:+[${EXTRAS}]}" ${EXTRA_PIP_PACKAGES} \
 && /opt/sensor-connector/bin/pip uninstall -y pip setuptools \
 && /opt/sensor-connector/bin/sensor-connector --version

# ---- runtime ---------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}

ARG PYTHON_IMAGE
# Set by CI from connector/__init__.py (the project's one version number).
ARG VERSION=
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE=
ARG EXTRAS=s3,gcs,azure,postgres
ARG EXTRA_PIP_PACKAGES=

LABEL org.opencontainers.image.title="flyte-sensor-connector" \
      org.opencontainers.image.description="gRPC connector (flyteidl AsyncAgentService) that runs Flyte sensors without holding a pod" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}" \
      io.flyte.sensor-connector.extras="${EXTRAS}" \
      io.flyte.sensor-connector.extra-pip-packages="${EXTRA_PIP_PACKAGES}"

# A fixed, unprivileged UID/GID (65532), numeric in USER so Kubernetes' runAsNonRoot can check it.
# /var/lib/sensor-connector (state: a generated signing key when none is mounted) and /tmp are the only
# paths written at run time, so the root filesystem can be read-only; both are VOLUMEs (docker run
# --read-only gives them anonymous writable volumes; the Helm chart mounts emptyDirs there).
RUN groupadd --system --gid 65532 sensor \
 && useradd --system --uid 65532 --gid 65532 --no-create-home \
        --home-dir /var/lib/sensor-connector --shell /usr/sbin/nologin sensor \
 && install -d -o 65532 -g 65532 -m 0700 /var/lib/sensor-connector

COPY --from=builder /opt/sensor-connector /opt/sensor-connector

ENV PATH=/opt/sensor-connector/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/var/lib/sensor-connector \
    TMPDIR=/tmp \
    SENSOR_CONNECTOR_STATE_DIR=/var/lib/sensor-connector

VOLUME ["/var/lib/sensor-connector", "/tmp"]
WORKDIR /var/lib/sensor-connector
USER 65532:65532
EXPOSE 8000 9090
STOPSIGNAL SIGTERM

ENTRYPOINT ["sensor-connector"]
CMD ["serve"]
