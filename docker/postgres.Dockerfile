# dais-postgres: PostgreSQL from Debian on the same base as the dais image,
# for `docker compose --profile postgres` (built by `make image` with
# docker/ as the context). Environment, as in the usual postgres images:
#   POSTGRES_PASSWORD (required on first start), POSTGRES_USER (default dais),
#   POSTGRES_DB (default: POSTGRES_USER). PGDATA is /var/lib/postgresql/data.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

ENV LANG=C.UTF-8 \
    DEBIAN_FRONTEND=noninteractive \
    PGDATA=/var/lib/postgresql/data

# No cluster is created at install time (the entrypoint initdb's on first
# start into the volume); /usr/lib/postgresql/current links the installed
# major version so paths do not change with Debian's.
RUN mkdir -p /etc/postgresql-common \
 && echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.conf \
 && printf 'path-exclude /usr/share/doc/*\npath-include /usr/share/doc/*/copyright\npath-exclude /usr/share/man/*\npath-exclude /usr/share/locale/*\n' \
        >/etc/dpkg/dpkg.cfg.d/90dais-nodoc \
 && apt-get update \
 && apt-get install -y --no-install-recommends postgresql \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
 && ln -s "$(ls -d /usr/lib/postgresql/* | sort -V | tail -1)" /usr/lib/postgresql/current \
 && mkdir -p "$PGDATA" /run/postgresql \
 && chown -R postgres:postgres /var/lib/postgresql /run/postgresql \
 && chmod 0700 "$PGDATA"

ENV PATH=/usr/lib/postgresql/current/bin:$PATH
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint.sh

USER postgres
EXPOSE 5432
VOLUME /var/lib/postgresql/data
# SIGINT is PostgreSQL's fast shutdown: open connections (dais's pool) do not
# hold up `docker stop` as they would with smart shutdown on SIGTERM.
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s --timeout=5s --start-period=30s --retries=5 \
    CMD pg_isready -q -h 127.0.0.1 -U "${POSTGRES_USER:-dais}" -d "${POSTGRES_DB:-${POSTGRES_USER:-dais}}"
ENTRYPOINT ["postgres-entrypoint.sh"]
CMD ["postgres"]
