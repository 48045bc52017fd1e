#!/bin/bash
# Prepare this machine for `make test`: install what the suite needs from
# Debian (when root and missing), start a PostgreSQL for the store tests, and
# write .tmp/test.env for the Go tests to read. Idempotent; safe to rerun.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .tmp

# Debian packages the tests drive for real:
#   debootstrap: make base-image; postgresql: the store conformance suite;
#   tini, dumb-init, bubblewrap, wrk, hyperfine, nginx, haproxy: peers
#   measured by make bench and used by tests; r-cran-rsconnect + R + Python: the real clients;
#   systemd: systemd-analyze verify of dais.service; util-linux: unshare;
#   python3-click, -semver, -jwt: what rsconnect-python (shared/clients) needs;
#   git: the repositories the git-backed content tests serve;
#   e2fsprogs, mount: make reliability's full data volume on a loop device;
#   slirp4netns: content's outbound network (sandbox tests);
#   lintian: the Debian package's check (packaging/, make deb).
#   chromium: the dashboard's browser tests (chromedp, e2e/browser).
#   slapd, ldap-utils: the LDAP sign-in tests run a private slapd (internal/slapdtest).
pkgs=(debootstrap postgresql tini dumb-init bubblewrap wrk hyperfine nginx haproxy util-linux
	r-base-core r-cran-rsconnect r-cran-shiny r-cran-plumber r-cran-rmarkdown pandoc
	python3 python3-venv python3-flask python3-fastapi python3-uvicorn python3-websockets
	python3-nbconvert python3-ipykernel gunicorn python3-click python3-semver python3-jwt
	systemd curl ca-certificates sqlite3 procps jq docker-compose git e2fsprogs mount slirp4netns lintian chromium
	slapd ldap-utils)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	if [[ $(id -u) != 0 ]]; then
		echo "test-env: missing Debian packages: ${missing[*]} (run as root, or apt-get install them)" >&2
		exit 1
	fi
	echo "test-env: installing ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Content runs as Applications.RunAs (default rstudio-connect); dais serve
# refuses to start when that user does not exist, as on any host install.
if ! getent passwd rstudio-connect >/dev/null; then
	if [[ $(id -u) != 0 ]]; then
		echo "test-env: no rstudio-connect user (run as root, or: useradd --system --user-group rstudio-connect)" >&2
		exit 1
	fi
	useradd --system --user-group --no-create-home --shell /usr/sbin/nologin rstudio-connect
	echo "test-env: created the rstudio-connect system user"
fi

if ! docker info >/dev/null 2>&1; then
	echo "test-env: the Docker engine is not reachable (docker info failed); the suite drives real containers" >&2
	exit 1
fi

# PostgreSQL: use DAIS_TEST_POSTGRES_URL when given, else Debian's cluster.
if [[ -z ${DAIS_TEST_POSTGRES_URL:-} ]]; then
	ver=$(ls /usr/lib/postgresql | sort -V | tail -1)
	if ! pg_lsclusters -h | awk '{print $1"/"$2}' | grep -qx "$ver/main"; then
		pg_createcluster "$ver" main >/dev/null
	fi
	pg_ctlcluster "$ver" main start 2>/dev/null || pg_lsclusters -h | grep -q online
	port=$(pg_lsclusters -h | awk -v v="$ver" '$1==v && $2=="main"{print $3}')
	su postgres -c "psql -p $port -qtAc \"SELECT 1 FROM pg_roles WHERE rolname='dais'\"" | grep -q 1 ||
		su postgres -c "psql -p $port -qc \"CREATE ROLE dais LOGIN SUPERUSER PASSWORD 'dais-test'\""
	su postgres -c "psql -p $port -qtAc \"SELECT 1 FROM pg_database WHERE datname='dais_test'\"" | grep -q 1 ||
		su postgres -c "createdb -p $port -O dais dais_test"
	DAIS_TEST_POSTGRES_URL="postgres://dais:dais-test@127.0.0.1:$port/dais_test?sslmode=disable"
fi

# helm: charts/ tests lint and render charts/dais with it. Built from the Go
# module proxy (about 2 minutes on 2 cores), once: skipped when that version
# is already installed.
helm_version=v4.3.2
helm_bin="$(go env GOPATH)/bin/helm"
if ! go version -m "$helm_bin" 2>/dev/null | grep -Eq "^[[:space:]]+mod[[:space:]]+helm.sh/helm/v4[[:space:]]+$helm_version[[:space:]]"; then
	echo "test-env: building helm $helm_version with go install (about 2 minutes)"
	go install "helm.sh/helm/v4/cmd/helm@$helm_version"
fi

cat >.tmp/test.env <<ENV
export DAIS_TEST_POSTGRES_URL='$DAIS_TEST_POSTGRES_URL'
export DAIS_BIN_DIR='$PWD/bin'
export DAIS_HELM='$helm_bin'
ENV
echo "test-env: ready (PostgreSQL at ${DAIS_TEST_POSTGRES_URL%%@*}@...)"
