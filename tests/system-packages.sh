#!/usr/bin/env bash
# What make test needs from Debian's packages, installed when it runs as root with apt-get (as in CI):
# Chromium and its driver (the page's browser test), a container engine and debootstrap (the image test
# and its stand-in base image), qemu-user-static (the arm64 image, run through binfmt_misc), Ceph's monitor,
# OSD and radosgw (a real S3 on 127.0.0.1 for the catalog's tests: harness/s3.py). Elsewhere it only says
# what is missing; those tests then skip (CI: fail).
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
infra/container-engine >/dev/null 2>&1 || need+=(podman runc)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v ceph-mon >/dev/null && command -v ceph-osd >/dev/null && command -v radosgw >/dev/null ||
  need+=(ceph-mon ceph-osd radosgw)
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
# The arm64 image's test runs LiteRT under qemu-user: Debian 12's qemu 7.2 crashes it (SIGSEGV as the
# interpreter is built), the 10.0 in bookworm-backports runs it. Elsewhere, the distribution's own.
# (none installed yet is version 0)
qemu_major=$({ qemu-aarch64-static --version 2>/dev/null || true; } | sed -n 's/.*version \([0-9]*\)\..*/\1/p')
if [ "${qemu_major:-0}" -lt 10 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  release=()
  if grep -q '^VERSION_CODENAME=bookworm' /etc/os-release; then
    list=/etc/apt/sources.list.d/bookworm-backports.list
    grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/ ||
      echo "deb http://deb.debian.org/debian bookworm-backports main" >"$list"
    release=(-t bookworm-backports)
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${release[@]}" qemu-user-static >/dev/null
  # a rule registered with the F flag keeps the emulator it opened then: register the new one
  [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] && echo -1 >/proc/sys/fs/binfmt_misc/qemu-aarch64
elif [ "${qemu_major:-0}" -lt 10 ]; then
  echo "make test: qemu-user-static 10 or newer is not installed (needs root and apt-get); the arm64 test skips" >&2
fi
# arm64 programs run through qemu once the kernel knows them: Debian's qemu-user-static ships the rule
# (binfmt.d), which systemd would register at boot; a container or sandbox has no such boot, so do it here.
# The F flag opens the emulator now, so it also runs inside containers (podman run --platform linux/arm64).
rule=/usr/lib/binfmt.d/qemu-aarch64.conf
if [ "$(id -u)" = 0 ] && [ -f "$rule" ] && [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || true
  [ -e /proc/sys/fs/binfmt_misc/register ] && printf '%s' "$(cat "$rule")" >/proc/sys/fs/binfmt_misc/register || true
fi
