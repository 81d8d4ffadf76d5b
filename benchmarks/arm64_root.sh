#!/usr/bin/env bash
# Build the Debian bookworm arm64 root that benchmarks/arm64_check.py runs edgecnn in (~10 min under
# emulation): debootstrap minbase + python3 + venv, an empty venv in /opt/venv. Built beside ROOT and
# renamed at the end, so a half-built root is never taken for a whole one. No Python needed on the host.
#
#   arm64_root.sh ROOT
#
# An existing root is reused. Either way binfmt_misc is mounted and qemu-aarch64 enabled when they
# are not (after a reboot, say). Needs root, and Debian's qemu-user-static, debootstrap, binfmt-support.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 ROOT" >&2; exit 2; }
root=$1
binfmt=/proc/sys/fs/binfmt_misc
[ -e "$binfmt/register" ] || mount -t binfmt_misc binfmt_misc "$binfmt"
grep -qx enabled "$binfmt/qemu-aarch64" 2>/dev/null || update-binfmts --enable qemu-aarch64
grep -qx enabled "$binfmt/qemu-aarch64" || { echo "arm64 root: binfmt_misc has no qemu-aarch64" >&2; exit 1; }
[ ! -x "$root/opt/venv/bin/python" ] || { echo "arm64 root: $root (reused)"; exit 0; }
tmp="$root.tmp"
rm -rf "$tmp"
mkdir -p "$(dirname "$root")"
debootstrap --arch=arm64 --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$tmp" http://deb.debian.org/debian >/dev/null
chroot "$tmp" /usr/bin/python3 -m venv /opt/venv
mv "$tmp" "$root"
echo "arm64 root: built $root ($(du -sh "$root" | cut -f1))"
