# dais: run `make` (or `make help`) for the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# Expand once and hand it to sub-makes, so the binaries, the image label and
# the tests agree even when the tree changes during a build.
VERSION    := $(VERSION)
export VERSION
GO         ?= go
GOFLAGS    ?=
LDFLAGS    := -s -w -X main.version=$(VERSION)
# dais-init forwards SIGURG, so the Go runtime in it must not send URG to
# itself (asynchronous preemption). //go:debug cannot set this one; the
# linker can, and main.godebugDefault tells dais-init that it did.
INIT_LDFLAGS := -X=runtime.godebugDefault=asyncpreemptoff=1 -X=main.godebugDefault=asyncpreemptoff=1
BIN        := bin
# The Debian base every Dockerfile starts FROM. `make base-image` builds it
# offline-capable with debootstrap; elsewhere debian:bookworm-slim works too.
BASE_IMAGE ?= dais-base:bookworm
IMAGE      ?= dais:latest
PG_IMAGE   ?= dais-postgres:latest
HAPROXY_IMAGE ?= dais-haproxy:latest
COMPOSE    ?= $(shell command -v docker-compose >/dev/null 2>&1 && echo docker-compose || echo docker compose)
export DAIS_IMAGE := $(IMAGE)
export DAIS_PG_IMAGE := $(PG_IMAGE)
export BASE_IMAGE

DEB_OUT    ?= .

.PHONY: help build deb install test test-go ci bench reliability base-image image images run up down fmt vet clean screenshots

help: ## show this help
	@awk 'BEGIN{FS=":.*## "} /^[a-zA-Z_-]+:.*## /{printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build bin/dais, bin/dais-sandbox-exec and bin/dais-init (static, version stamped from git)
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build $(GOFLAGS) -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/dais ./server
	CGO_ENABLED=0 $(GO) build $(GOFLAGS) -trimpath -ldflags '$(LDFLAGS)' -tags dais_sandbox_exec -o $(BIN)/dais-sandbox-exec ./server/sandbox/cmd/dais-sandbox-exec
	CGO_ENABLED=0 $(GO) build $(GOFLAGS) -trimpath -ldflags '$(LDFLAGS) $(INIT_LDFLAGS)' -o $(BIN)/dais-init ./entrypoint

deb: build ## build dais_<version>_amd64.deb into DEB_OUT (nfpm, packaging/; docs/install.md), then lintian it when installed
	$(GO) run ./packaging/cmd/mkdeb --bin $(BIN) --out $(DEB_OUT) --describe '$(VERSION)' \
		--commit-time $$(git log -1 --format=%ct 2>/dev/null || date +%s)
	@if command -v lintian >/dev/null; then lintian --fail-on error $(DEB_OUT)/dais_*_amd64.deb; else echo "lintian not installed: apt-get install lintian"; fi

install: build ## without the package: binaries in /opt/dais/bin, the unit, the configuration when missing, the rstudio-connect user (then: systemctl enable --now dais)
	install -d -m 0755 $(DESTDIR)/opt/dais/bin
	install -m 0755 $(BIN)/dais $(BIN)/dais-init $(BIN)/dais-sandbox-exec $(DESTDIR)/opt/dais/bin/
	install -D -m 0644 systemd/dais.service $(DESTDIR)/etc/systemd/system/dais.service
	test -e $(DESTDIR)/etc/rstudio-connect/rstudio-connect.gcfg || \
		install -D -m 0600 packaging/deb/rstudio-connect.gcfg $(DESTDIR)/etc/rstudio-connect/rstudio-connect.gcfg
	@if [ -z "$(DESTDIR)" ]; then \
		getent passwd rstudio-connect >/dev/null || useradd --system --user-group --no-create-home \
			--home-dir /nonexistent --shell /usr/sbin/nologin rstudio-connect; \
		install -d -o root -g rstudio-connect -m 0710 /var/lib/rstudio-connect; \
		if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi; \
		echo "installed; start it with: systemctl enable --now dais"; \
	fi

base-image: ## build the Debian base image with debootstrap (offline-capable)
	docker/base-image.sh $(BASE_IMAGE)

image: build base-image ## build the dais image (and the PostgreSQL image for compose)
	docker build --build-arg BASE_IMAGE=$(BASE_IMAGE) --build-arg VERSION=$(VERSION) -t $(IMAGE) .
	docker build --build-arg BASE_IMAGE=$(BASE_IMAGE) -t $(PG_IMAGE) -f docker/postgres.Dockerfile docker
	docker build --build-arg BASE_IMAGE=$(BASE_IMAGE) -t $(HAPROXY_IMAGE) -f docker/haproxy.Dockerfile docker

images: image ## alias of image

test: ## run the whole test suite (installs and starts what it needs when root)
	scripts/test-env.sh
	$(MAKE) image
	source .tmp/test.env && $(GO) test -count=1 -timeout 60m ./...

test-go: build ## run the Go tests only, against what is already installed and running
	source .tmp/test.env 2>/dev/null; $(GO) test -count=1 ./...

ci: ## what .ci/run runs: gofmt and vet, then the whole suite
	@unformatted="$$(gofmt -l entrypoint server internal e2e bench)"; \
	  if [ -n "$$unformatted" ]; then echo "not gofmt-formatted (make fmt):"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(MAKE) test

bench: build ## run the benchmarks against their named peers; results in bench/results/
	scripts/bench.sh

reliability: image ## run the reliability battery (faults, bad input, load; under 10 minutes, as root for all of it) and write its table into docs/reliability.md
	scripts/reliability.sh

run: image ## run dais in Docker on :3939 with ./data as /data (SQLite, no license server, no privilege: Landlock sandbox)
	mkdir -p data
	docker run --rm -it --name dais -p 3939:3939 -v $(CURDIR)/data:/data $(IMAGE)

up: image ## docker compose up (add PROFILES=postgres, PROFILES=license or PROFILES=ha)
	$(COMPOSE) $(foreach p,$(PROFILES),--profile $(p)) up -d

down: ## docker compose down
	$(COMPOSE) --profile postgres --profile license --profile ha down

fmt: ## gofmt the tree
	gofmt -w entrypoint server internal e2e bench

screenshots: ## the dashboard's pages in headless chromium at 1280 and 390 px, as .tmp/screenshots/*.png
	rm -rf .tmp/screenshots
	go test -count=1 -run 'TestBrowser' ./server/web/
	go test -count=1 -run 'TestBrowser|TestAppLogs|TestKeysPage' ./server/api/
	@ls .tmp/screenshots

vet: ## go vet
	$(GO) vet ./...

clean: ## remove build output
	rm -rf $(BIN) .tmp
