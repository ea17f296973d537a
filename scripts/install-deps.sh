#!/usr/bin/env bash
# Installs the system packages berth and its tests need, if any is missing (Debian/Ubuntu).
# runc runs tasks; busybox-static builds the test image; socat and curl are the clients the
# integration tests drive the socket with; umoci and skopeo build and push OCI images;
# docker-registry is the registry the pull tests push to, htpasswd (apache2-utils) locks it;
# tini ships the static init `run --init` mounts; containerd (ctr), docker.io (dockerd) and
# podman are the peers the image tests exchange archives with and the benches compare
# against (each is started on its own temp dirs by the tests, never as a host service).
set -euo pipefail
need=()
have() { command -v "$1" >/dev/null 2>&1; }
have runc || need+=(runc)
[ -x /bin/busybox ] || need+=(busybox-static)
have socat || need+=(socat)
have curl || need+=(curl)
have jq || need+=(jq)
have umoci || need+=(umoci)
have skopeo || need+=(skopeo)
have docker-registry || need+=(docker-registry)
have htpasswd || need+=(apache2-utils)
have setpriv || need+=(util-linux)
[ -x /usr/bin/tini-static ] || need+=(tini)
have containerd || need+=(containerd)
have dockerd || need+=(docker.io)
have podman || need+=(podman)
# systemd-socket-activate and systemd-analyze: the service tests (no systemd as PID 1).
have systemd-socket-activate || need+=(systemd)
# Networks (issue 16): the standard CNI plugins, iptables they program, ip for bridges.
[ -x /usr/lib/cni/bridge ] || [ -x /opt/cni/bin/bridge ] || need+=(containernetworking-plugins)
have iptables || need+=(iptables)
have ip || need+=(iproute2)
# The client generated from rpc.discover (tests/clients) is standard-library Python.
have python3 || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
