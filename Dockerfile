# dais: the server image. Build with `make image` (which builds bin/dais and
# bin/dais-init on the host first, then this file with the classic builder).
#
#   docker build --build-arg BASE_IMAGE=debian:bookworm-slim -t dais .
#   docker run -d -p 3939:3939 -v $PWD/data:/data dais    # Landlock sandbox
#   (--cap-add SYS_ADMIN for the namespaces sandbox; see docs/sandbox.md)
#
# Layers are ordered from the least to the most often changed: the user, the
# Debian packages (R, Python, pandoc), the /opt layout, Quarto, the default
# config, and last the two static binaries, so a code change rebuilds only
# the final small layer. See docs/docker.md for multi-version builds.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

ENV LANG=C.UTF-8 \
    DEBIAN_FRONTEND=noninteractive

# Content runs as rstudio-connect (uid/gid 999, as in Posit's images). Created
# before any package so that no package's system user can take uid 999.
RUN groupadd --system --gid 999 rstudio-connect \
 && useradd --system --uid 999 --gid 999 --home-dir /home/rstudio-connect \
        --create-home --shell /usr/sbin/nologin rstudio-connect

# R with Shiny, Plumber and R Markdown (+ pandoc); Python 3 with venv, pip,
# Flask, FastAPI, uvicorn, gunicorn and nbconvert with a kernel to execute
# notebooks. No recommends, no docs, no package lists: the image stays small.
# R_PACKAGES / PYTHON_PACKAGES add Debian packages (e.g. r-cran-dplyr).
ARG R_PACKAGES=""
ARG PYTHON_PACKAGES=""
RUN printf 'path-exclude /usr/share/doc/*\npath-include /usr/share/doc/*/copyright\npath-exclude /usr/share/man/*\npath-exclude /usr/share/info/*\npath-exclude /usr/share/locale/*\npath-include /usr/share/locale/locale.alias\n' \
        >/etc/dpkg/dpkg.cfg.d/90dais-nodoc \
 && apt-get update \
 && apt-get install -y --no-install-recommends \
        ca-certificates \
        r-base-core r-cran-shiny r-cran-plumber r-cran-rmarkdown pandoc \
        python3 python3-venv python3-pip python3-flask python3-fastapi \
        python3-uvicorn python3-gunicorn gunicorn \
        jupyter-nbconvert python3-nbconvert python3-ipykernel \
        ${R_PACKAGES} ${PYTHON_PACKAGES} \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
        /usr/share/doc/*/changelog* /root/.cache

# The layout dais scans for runtimes: /opt/R/<version>/bin/R and
# /opt/python/<version>/bin/python3, with versions read from the installed
# interpreters (links to Debian's installations, no copies).
RUN set -eu; \
    rv=$(R --version | sed -n 's/^R version \([0-9.]*\).*/\1/p'); \
    pv=$(python3 -c 'import platform; print(platform.python_version())'); \
    test -n "$rv" && test -n "$pv"; \
    mkdir -p /opt/R /opt/python/$pv/bin /opt/quarto /data; \
    ln -s /usr/lib/R /opt/R/$rv; \
    ln -s /usr/bin/python3 /opt/python/$pv/bin/python3; \
    ln -s python3 /opt/python/$pv/bin/python; \
    /opt/R/$rv/bin/R --version | head -1; \
    /opt/python/$pv/bin/python3 -c 'import flask, fastapi, uvicorn, gunicorn, nbconvert, ipykernel, venv; print("python ok")'; \
    /opt/R/$rv/bin/Rscript -e 'for (p in c("shiny", "plumber", "rmarkdown")) library(p, character.only = TRUE); cat("R ok\n")'

# Quarto cannot be downloaded during this build (no network is assumed):
# put quarto-<version>-linux-amd64.tar.gz (from Quarto's releases) into
# docker/quarto/ and pass --build-arg QUARTO_VERSION=<version>. Asked for and
# missing, the build fails here; not asked for, no Quarto is installed.
# pg_dump and psql for `dais backup` / `dais restore` with PostgreSQL. A layer
# of its own so the large R/Python layer above stays cached.
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin

# git for git-backed content (dais clones and polls the repository; docs/api.md).
RUN apt-get update \
    && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin

# slirp4netns gives content outbound network access from its own network
# namespace, without reaching the container's loopback or exposing any of its
# ports (docs/sandbox.md, "Network").
RUN apt-get update \
    && apt-get install -y --no-install-recommends slirp4netns \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin

ARG QUARTO_VERSION=""
COPY docker/quarto/ /tmp/quarto/
RUN set -eu; \
    if [ -n "$QUARTO_VERSION" ]; then \
        tarball=$(ls /tmp/quarto/quarto-"$QUARTO_VERSION"-linux-*.tar.gz 2>/dev/null | head -1); \
        if [ -z "$tarball" ]; then \
            echo "ERROR: QUARTO_VERSION=$QUARTO_VERSION was given but docker/quarto/quarto-$QUARTO_VERSION-linux-amd64.tar.gz is not in the build context: download it where you have network and put it there, or build without QUARTO_VERSION" >&2; \
            exit 1; \
        fi; \
        mkdir -p /opt/quarto/"$QUARTO_VERSION"; \
        tar -xzf "$tarball" -C /opt/quarto/"$QUARTO_VERSION" --strip-components=1; \
        /opt/quarto/"$QUARTO_VERSION"/bin/quarto --version; \
    fi; \
    rm -rf /tmp/quarto

# The server may run as uid 999 with no capability at all (docker run --user
# 999 --cap-drop ALL --security-opt no-new-privileges, a Kubernetes pod with
# runAsNonRoot): it then renders its configuration into /run/dais and keeps
# its data in /data, so both belong to uid 999 and group 0 (mode 0770: an
# arbitrary uid in group 0, as OpenShift assigns, may write them too). A new
# named volume on /data takes this ownership. Started as root, dais-init
# takes /run/dais back (root, 0700). See docs/sandbox.md.
RUN install -d -o rstudio-connect -g root -m 0770 /run/dais \
 && chown rstudio-connect:root /data && chmod 0770 /data

# The base configuration; dais-init overlays CONNECT_* variables on it and
# renders the effective file (mode 0600) before starting the server. Mount
# your own over it with -v $PWD/rstudio-connect.gcfg:/etc/rstudio-connect/rstudio-connect.gcfg:ro
COPY docker/rstudio-connect.gcfg /etc/rstudio-connect/rstudio-connect.gcfg

EXPOSE 3939
VOLUME /data
STOPSIGNAL SIGTERM
# `dais health` GETs /__ready__ on the HTTP.Listen port of the config (with the
# container's CONNECT_* variables applied): no curl needed in the image.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["dais", "health"]
# dais-init is PID 1: preflight checks, config rendering, signal forwarding,
# reaping. It runs `dais serve` on the rendered config (/run/dais/...: it
# replaces the base file's path below); any other command given (docker run
# dais dais --version, bash, ...) runs under it without the server's checks.
ENTRYPOINT ["dais-init"]
CMD ["dais", "serve", "--config", "/etc/rstudio-connect/rstudio-connect.gcfg"]
LABEL org.opencontainers.image.title="dais" \
      org.opencontainers.image.description="Self-hosted publishing server for R and Python content, compatible with Posit Connect's configuration and deployment API" \
      org.opencontainers.image.source="https://github.com/dais-dev/dais" \
      org.opencontainers.image.url="https://github.com/dais-dev/dais" \
      org.opencontainers.image.documentation="https://github.com/dais-dev/dais/blob/main/docs/docker.md" \
      org.opencontainers.image.vendor="dais"

# Last, so that a code change rebuilds only these steps: the static binaries
# built on the host by `make build`, and the labels naming their version
# (an ARG before any RUN would invalidate that RUN's cache on every commit).
COPY bin/dais bin/dais-sandbox-exec bin/dais-init /usr/local/bin/
ARG VERSION=dev
LABEL org.opencontainers.image.version="${VERSION}"
