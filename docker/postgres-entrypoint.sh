#!/bin/bash
# Entrypoint of dais-postgres: initialise $PGDATA on first start, then exec
# the server (PID 1; it reaps its own children). Runs as user postgres.
set -euo pipefail

: "${PGDATA:=/var/lib/postgresql/data}"
user=${POSTGRES_USER:-dais}
db=${POSTGRES_DB:-$user}

if [[ ${1:-} == postgres && ! -s $PGDATA/PG_VERSION ]]; then
	if [[ -z ${POSTGRES_PASSWORD:-} ]]; then
		echo "postgres-entrypoint: POSTGRES_PASSWORD is not set: pass -e POSTGRES_PASSWORD=... (compose: set POSTGRES_PASSWORD in .env)" >&2
		exit 78
	fi
	if [[ ! -w $PGDATA ]]; then
		echo "postgres-entrypoint: $PGDATA is not writable by uid $(id -u): use a named volume, or chown $(id -u) the host directory you mount" >&2
		exit 78
	fi
	pwfile=$(mktemp)
	printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
	initdb -D "$PGDATA" -U "$user" --pwfile="$pwfile" --encoding=UTF8 --locale=C.UTF-8 \
		--auth-local=trust --auth-host=scram-sha-256 >/dev/null
	rm -f "$pwfile"
	{
		echo "listen_addresses = '*'"
		echo "unix_socket_directories = '/run/postgresql'"
	} >>"$PGDATA/postgresql.conf"
	{
		echo "host all all 0.0.0.0/0 scram-sha-256"
		echo "host all all ::/0 scram-sha-256"
	} >>"$PGDATA/pg_hba.conf"
	if [[ $db != postgres ]]; then
		# --single: no listener, no race with clients during initialisation.
		echo "CREATE DATABASE \"${db//\"/\"\"}\" OWNER \"${user//\"/\"\"}\";" |
			postgres --single -D "$PGDATA" -j postgres >/dev/null
	fi
	echo "postgres-entrypoint: initialised $PGDATA (user $user, database $db)"
fi
exec "$@"
