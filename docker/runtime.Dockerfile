# The image every pod of a Kubernetes target runs: Python, engine and its runtime
# dependencies, and a non-root user. No project code: each app's and task's bundle comes
# from its ConfigMap and is unpacked at pod start (see docs/kubernetes.md).
#
#   docker build -f docker/runtime.Dockerfile -t REGISTRY/engine-runtime:VERSION .
#   docker push REGISTRY/engine-runtime:VERSION
#
# then name it as the target's `image:`. Handlers that import more packages need an
# image built FROM this one with them installed.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

COPY pyproject.toml README.md /tmp/engine/
COPY engine /tmp/engine/engine
COPY schemas /tmp/engine/schemas
COPY blueprints /tmp/engine/blueprints
RUN pip install /tmp/engine && rm -rf /tmp/engine

# The uid the manifests run as (runAsUser 10001); HOME is the writable /tmp emptyDir.
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /tmp engine
USER 10001:10001
WORKDIR /srv/app
