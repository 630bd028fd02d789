#!/usr/bin/env bash
# Test aid, not part of the product: builds the stand-in base image (Containerfile.standin) and tags it
# with AWS's name, so that Dockerfile.lambda builds unchanged where the real one cannot be pulled.
#
#   tests/container/build-standin.sh ENGINE [TAG] [ARCH]   # ENGINE: docker or podman; ARCH: x86_64 (default)
#                                                          # or arm64; needs root and debootstrap
#
# Debian 12 minbase through debootstrap (Debian's packages), with AWS's Runtime Interface Emulator at
# /usr/local/bin/aws-lambda-rie, as in AWS's image: the one that ships in the aws-sam-cli wheel (PyPI), at
# the version pyproject.toml pins, for ARCH. Its Python:
# - x86_64: a local CPython 3.12 copied to /var/lang (PYTHON312, default python3.12), as AWS's image has;
# - arm64: Debian's own python3.11 for arm64 (no arm64 CPython 3.12 can be had from the registries), linked
#   into /var/lang. Debootstrap runs its arm64 packages' scripts through qemu-user-static (binfmt_misc).
# awslambdaric is installed into /var/runtime for that Python and ARCH.
set -euo pipefail
engine=${1:?usage: build-standin.sh docker|podman [tag] [x86_64|arm64]}
tag=${2:-public.ecr.aws/lambda/python:3.12}
arch=${3:-x86_64}
here=$(cd "$(dirname "$0")" && pwd)
awslambdaric=$(grep -o '"awslambdaric==[^"]*"' "$here/../../pyproject.toml" | tr -d '"')
sam_cli=$(grep -o '"aws-sam-cli==[^"]*"' "$here/../../pyproject.toml" | tr -d '"')
python312=${PYTHON312:-}
for candidate in python3.12 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3.12; do
  [ -z "$python312" ] && "$candidate" -c '' 2>/dev/null && python312=$candidate
done
[ -n "$python312" ] || { echo "build-standin.sh: no CPython 3.12 found (set PYTHON312)" >&2; exit 1; }
case $arch in
  x86_64) debian_arch=amd64 ;;
  arm64) debian_arch=arm64 ;;
  *) echo "build-standin.sh: ARCH is x86_64 or arm64, not $arch" >&2; exit 1 ;;
esac
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pip() { "$python312" -m pip "$@" 2> >(grep -v "^WARNING: Location" >&2); }

# the shared libraries CPython's extension modules link against, beside minbase
packages=ca-certificates,libssl3,libffi8,libbz2-1.0,liblzma5,libsqlite3-0,zlib1g,libreadline8,libncursesw6,libuuid1
[ "$arch" = arm64 ] && packages=$packages,python3.11,python3-pip
debootstrap --variant=minbase --arch="$debian_arch" --include="$packages" \
  bookworm "$work/rootfs" >"$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
mkdir -p "$work/rootfs/var/lang/bin" "$work/rootfs/var/runtime" "$work/rootfs/var/task"
if [ "$arch" = x86_64 ]; then
  prefix=$("$python312" -c 'import sys; print(sys.base_prefix)')
  # the interpreter and its standard library; of its site-packages, pip alone (as in AWS's image)
  tar -C "$prefix" --exclude=./lib/python3.12/test --exclude='./lib/python3.12/site-packages/*' -cf - . |
    tar -C "$work/rootfs/var/lang" -xf -
  cp -a "$prefix"/lib/python3.12/site-packages/pip* "$work/rootfs/var/lang/lib/python3.12/site-packages/"
  # its scripts (pip ...) name the interpreter by its path here: point them at /var/lang
  grep -lr "^#!$prefix/bin/" "$work/rootfs/var/lang/bin" | xargs sed -i "1s|^#!$prefix/bin/|#!/var/lang/bin/|"
  target=(--python-version 3.12)
else
  ln -s /usr/bin/python3.11 "$work/rootfs/var/lang/bin/python3"
  ln -s /usr/bin/pip3 "$work/rootfs/var/lang/bin/pip"
  rm -f "$work/rootfs/usr/lib/python3.11/EXTERNALLY-MANAGED"  # pip installs as in AWS's image, no venv
  target=(--python-version 3.11 --platform manylinux2014_aarch64)
fi
pip install -q --no-cache-dir --root-user-action=ignore --only-binary=:all: --implementation cp "${target[@]}" \
  --target "$work/rootfs/var/runtime" "$awslambdaric"
pip download -q --no-deps --only-binary=:all: -d "$work/wheel" "$sam_cli"
mkdir -p "$work/rootfs/usr/local/bin"
"$python312" -c 'import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))' \
  "$work"/wheel/aws_sam_cli-*.whl "samcli/local/rapid/aws-lambda-rie-$arch" >"$work/rootfs/usr/local/bin/aws-lambda-rie"
chmod 755 "$work/rootfs/usr/local/bin/aws-lambda-rie"
# pip in the image trusts what this machine trusts (its package registries may sit behind its own CA)
cp /etc/ssl/certs/ca-certificates.crt "$work/rootfs/etc/ssl/certs/ca-certificates.crt"
printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$work/rootfs/etc/pip.conf"
install -m 755 "$here/lambda-entrypoint.sh" "$work/rootfs/lambda-entrypoint.sh"
rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
tar -C "$work/rootfs" -cf "$work/rootfs.tar" .
cp "$here/Containerfile.standin" "$work/Containerfile"
"$engine" build -q --platform "linux/$debian_arch" -t "$tag" -f "$work/Containerfile" "$work"
