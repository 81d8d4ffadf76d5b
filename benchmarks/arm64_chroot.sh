#!/usr/bin/env bash
# Run a command inside the Debian arm64 root under qemu-user, as an ARM board would see itself.
#
#   arm64_chroot.sh ROOT CPUINFO QEMU_CPU BIND_DIR COMMAND...
#
# The mounts live in a private mount namespace (unshare -m): they vanish with the command, even
# when it is killed, and the host never sees them. Inside: /proc (its cpuinfo replaced by
# CPUINFO, so LLVM's and edgecnn's CPU detection see an ARM core), /dev, /sys, and BIND_DIR at
# /check. QEMU_CPU picks the emulated core (never `max`: a real board has a real core's features).
# Needs root, binfmt_misc with qemu-aarch64 registered (qemu-user-static + binfmt-support).
set -euo pipefail
[ $# -ge 5 ] || { echo "usage: $0 ROOT CPUINFO QEMU_CPU BIND_DIR COMMAND..." >&2; exit 2; }
root=$1 cpuinfo=$2 cpu=$3 bind=$4
shift 4
[ "$cpu" != max ] || { echo "arm64_chroot.sh: QEMU_CPU=max is not a board's core" >&2; exit 2; }
mkdir -p "$root/check"
export QEMU_CPU=$cpu
exec unshare --mount --propagation private -- bash -euo pipefail -c '
root=$1 cpuinfo=$2 bind=$3
shift 3
mount -t proc proc "$root/proc"
mount --bind "$cpuinfo" "$root/proc/cpuinfo"
mount --rbind /dev "$root/dev"
mount -t sysfs sysfs "$root/sys"
mount --bind "$bind" "$root/check"
chroot=$(command -v chroot)
exec env -i QEMU_CPU="$QEMU_CPU" HOME=/root PATH=/opt/venv/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
    NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 "$chroot" "$root" "$@"
' arm64_chroot "$root" "$cpuinfo" "$bind" "$@"
