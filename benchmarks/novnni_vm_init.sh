#!/bin/busybox sh
# /init of benchmarks/novnni_vm.py's guest. The host's / read-only over 9p, tmpfs on /tmp, the run's
# writable 9p shares at their host paths (list in $run/mounts: "tag path"), then the command script in
# a chroot; its exit code goes to $run/rc, and the guest powers off (QEMU exits).
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
echo "novnni_vm: guest up, $(grep -m1 'model name' /proc/cpuinfo)"
grep -m1 '^flags' /proc/cpuinfo
fail() { echo "novnni_vm init: $*"; poweroff -f; }
for arg in $(cat /proc/cmdline); do case "$arg" in edgecnn_run=*) run="${arg#edgecnn_run=}" ;; esac; done
[ -n "$run" ] || fail "no edgecnn_run= on the kernel command line"
while read -r ko; do insmod "/modules/$ko" || fail "insmod $ko failed"; done < /modules.order
p9="trans=virtio,version=9p2000.L,msize=512000"
mount -t 9p -o "$p9,ro,cache=loose" hostroot /mnt || fail "cannot mount the host's / over 9p"
mount -t proc proc /mnt/proc && mount -t sysfs sys /mnt/sys && mount -t devtmpfs dev /mnt/dev \
  && mkdir -p /mnt/dev/shm && mount -t tmpfs shm /mnt/dev/shm && mount -t tmpfs -o mode=1777 tmp /mnt/tmp \
  || fail "cannot mount /proc, /sys, /dev, /dev/shm or /tmp in the host's /"
mkdir -p "/mnt$run" 2>/dev/null
mount -t 9p -o "$p9" rw0 "/mnt$run" || fail "cannot mount the run directory $run"
while read -r tag dir; do
  [ "$tag" = rw0 ] && continue
  mkdir -p "/mnt$dir" 2>/dev/null
  mount -t 9p -o "$p9" "$tag" "/mnt$dir" || fail "cannot mount $dir writable"
done < "/mnt$run/mounts"
chroot /mnt /bin/sh "$run/command.sh"
echo $? > "/mnt$run/rc"
sync
poweroff -f
