# dais-haproxy: Debian's haproxy on the same base as the dais image, the
# load balancer of `docker compose --profile ha` (built by `make image` with
# docker/ as the context). Its configuration is docker/haproxy.cfg, baked
# in; mount your own over /etc/haproxy/haproxy.cfg to change it.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive
RUN printf 'path-exclude /usr/share/doc/*\npath-include /usr/share/doc/*/copyright\npath-exclude /usr/share/man/*\n' \
        >/etc/dpkg/dpkg.cfg.d/90dais-nodoc \
 && apt-get update \
 && apt-get install -y --no-install-recommends haproxy \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log
COPY haproxy.cfg /etc/haproxy/haproxy.cfg
EXPOSE 3939
# SIGUSR1 is haproxy's soft stop: established connections finish.
STOPSIGNAL SIGUSR1
# -W: master-worker (reload with SIGUSR2); -db: foreground, logs to stdout.
CMD ["haproxy", "-W", "-db", "-f", "/etc/haproxy/haproxy.cfg"]
