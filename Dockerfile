# syntax=docker/dockerfile:1
# kobot's image: built once on a connected machine, saved with `docker save`, loaded and run inside an air gap
# (README "In containers and in an air gap"). Nothing is installed when a container starts.

# The base, pinned by digest so every build starts from the same bytes. To pin it (or move the pin), read the
# digest on a connected machine:
#   docker buildx imagetools inspect python:3.11-slim-bookworm      # the "Digest: sha256:..." line
# and build with it:
#   docker build --build-arg PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:<digest> -t kobot:0.1.0 .
# (docker compose passes PYTHON_IMAGE from .env; .env.example shows the line). Without a digest the build
# takes whatever the tag names that day.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# kubectl runs on the controller: the node drain, cordon and uncordon tasks of the playbooks delegate to it.
# One minor of the versions kobot installs (kobot/validation.py SUPPORTED_KUBERNETES_VERSIONS), so the
# releases around it stay within kubectl's supported skew.
ARG KUBECTL_VERSION=v1.31.12

FROM ${PYTHON_IMAGE} AS build
ARG KUBECTL_VERSION
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Debian drops superseded versions from bookworm-security, so pinned apt versions stop installing within
# weeks; what pins the packages is the image that is built once and carried into the air gap.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /build
# The checksum file comes from the same release directory: it proves the download whole, not its origin
# (that rests on TLS to dl.k8s.io).
RUN arch="$(dpkg --print-architecture)" \
 && base="https://dl.k8s.io/release/${KUBECTL_VERSION}/bin/linux/${arch}" \
 && curl -fsSLo kubectl "${base}/kubectl" \
 && curl -fsSLo kubectl.sha256 "${base}/kubectl.sha256" \
 && echo "$(cat kubectl.sha256)  kubectl" | sha256sum --check --strict \
 && install -m 0755 kubectl /usr/local/bin/kubectl

RUN python -m venv /opt/kobot/venv
ENV PATH=/opt/kobot/venv/bin:$PATH
# Only the packages (setuptools' find: kobot*, workers*, commands*, alerts*, bot*) and what pyproject needs.
COPY pyproject.toml README.md ./
COPY kobot/ kobot/
COPY workers/ workers/
COPY commands/ commands/
COPY alerts/ alerts/
COPY bot/ bot/
RUN pip install --no-cache-dir /build


FROM ${PYTHON_IMAGE} AS runtime
# openssh-client: Ansible reaches cluster hosts over ssh. tini: PID 1 that forwards SIGTERM to kobot alone
# (a warm stop) and reaps the processes Ansible's workers leave behind. skopeo: `kobot bundle build` copies
# images as OCI layouts and `setup repository` pushes them to the repository host. apt-utils, gpg, gpg-agent:
# `kobot bundle build` writes the OS packages' apt indexes (apt-ftparchive) and signs them (gpg).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends openssh-client tini skopeo apt-utils gpg gpg-agent gpgconf \
 && rm -rf /var/lib/apt/lists/*

# A fixed numeric id, so a mounted SSH key or policy file can be given to it (chown 10001) and Kubernetes'
# runAsNonRoot can check it. Its home is the data volume: Ansible's ~/.ansible and ssh's known_hosts persist.
RUN groupadd --system --gid 10001 kobot \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/kobot --shell /usr/sbin/nologin kobot \
 && install -d -o 10001 -g 10001 -m 0700 /var/lib/kobot

COPY --from=build /opt/kobot/venv /opt/kobot/venv
COPY --from=build /usr/local/bin/kubectl /usr/local/bin/kubectl
# Read-only to kobot: root owns the automation, so a job cannot change the playbooks the next job runs.
COPY playbooks/ /opt/kobot/playbooks/
COPY terraform/ /opt/kobot/terraform/

# KOBOT_HTTP_HOST: a loopback bind would be unreachable from outside the container; binding 0.0.0.0 makes
# kobot treat itself as public, so it refuses to start until the Alertmanager webhook credentials are set
# and keeps /metrics behind KOBOT_METRICS_TOKEN. No secret is set here: they come from the environment at
# run time (.env), never from a layer.
ENV PATH=/opt/kobot/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/var/lib/kobot \
    KOBOT_DATA_DIR=/var/lib/kobot \
    KOBOT_PLAYBOOKS_DIR=/opt/kobot/playbooks \
    KOBOT_TERRAFORM_DIR=/opt/kobot/terraform \
    KOBOT_HTTP_HOST=0.0.0.0 \
    KOBOT_HTTP_PORT=8080

USER 10001:10001
WORKDIR /var/lib/kobot
VOLUME ["/var/lib/kobot"]
EXPOSE 8080

# `kobot serve`'s own health: 200 while its store answers, 503 otherwise (urlopen raises, the exit is 1).
# The python of the venv, so the image needs no curl. A `kobot worker` container has no HTTP: run it with
# --no-healthcheck (docker-compose.yml disables it for the worker).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('KOBOT_HTTP_PORT', '8080') + '/healthz', timeout=4)"]

ENTRYPOINT ["tini", "--", "kobot"]
CMD ["serve"]
