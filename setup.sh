#!/usr/bin/env bash
# Installs what lab needs on Debian 12: the host packages (QEMU, libvirt's QEMU driver and
# headers, mmdebstrap), the account libvirt's QEMU driver expects, and a virtualenv in .venv
# with the project. `./setup.sh --dev` adds the test and lint tools and the guest agent's
# package. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")"

extras=""
agent=()
dev_packages=()
if [ "${1:-}" = "--dev" ]; then
  extras="[dev]"
  agent=(-e ./guest-agent)  # the guest agent's package, so tests and tools import labagent
  # docker-compose (Debian's 1.29): the end-to-end tests drive a node with it. socat, sudo and
  # openssh-server: the proxy tests run the real bridge chain under a private sshd of their own.
  dev_packages=(docker-compose socat sudo openssh-server)
fi

sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"

packages=(
  qemu-system-x86 qemu-utils libvirt-daemon-driver-qemu libvirt-dev pkg-config
  mmdebstrap e2fsprogs cpio xz-utils openssh-client python3-venv python3-dev gcc
  "${dev_packages[@]}"
)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# libvirt's QEMU driver parses its built-in default account even in embedded mode.
if ! getent passwd libvirt-qemu >/dev/null; then
  getent group libvirt-qemu >/dev/null || $sudo groupadd --system libvirt-qemu
  $sudo useradd --system --no-create-home --home-dir /var/lib/libvirt \
    --shell /usr/sbin/nologin -g libvirt-qemu libvirt-qemu
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip 2>/dev/null || true
.venv/bin/python -m pip install -q -e ".${extras}" "${agent[@]}"
echo "setup: done (.venv/bin/lab is ready)"
