#!/usr/bin/env bash
# What make test needs from Debian's packages, installed when it runs as root with apt-get (as in CI):
# Chromium and its driver (the page's browser test), a container engine and debootstrap (the image test
# and its stand-in base image). Elsewhere it only says what is missing; those tests then skip (CI: fail).
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
infra/container-engine >/dev/null 2>&1 || need+=(podman runc)
command -v debootstrap >/dev/null || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "make test: ${need[*]} not installed (needs root and apt-get); the tests that use them skip" >&2
  fi
fi
# In CI's sandbox podman must not raise RLIMIT_NOFILE, and crun cannot use its hybrid cgroups: runc can.
# Only there, and only where no one has configured podman: a user's own settings are left alone.
conf=/etc/containers/containers.conf
if [ "${CI:-}" = true ] && [ "$(id -u)" = 0 ] && command -v podman >/dev/null && [ ! -e "$conf" ]; then
  printf '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]\n\n[engine]\nruntime = "runc"\n' >"$conf"
fi
