"""Run a command on this machine's CPU with AVX-512 VNNI (and AVX-VNNI, AMX) hidden from it.

Why: issue 9 asks that edgecnn's ratios to XNNPACK hold on a CPU without VNNI too. Forcing
EDGECNN_KERNELS=portable on a VNNI machine changes only our side: XNNPACK keeps its VNNI kernels,
so that comparison is unfair to us. Hiding the features in CPUID makes every library see a CPU
without them (LLVM's host-CPU detection, hence Numba's code and edgecnn.deploy.runtime.cpu's kernel
choice; XNNPACK's cpuinfo; numpy), on the same cores. Two ways, same effect for user space (KVM
too only masks CPUID bits: the instructions still run if something executes them):

--how cpuid (default): CPUID faulting (arch_prctl ARCH_SET_CPUID; the `cpuid_fault` flag): the
  LD_PRELOAD library benchmarks/novnni_cpuid.c answers every CPUID with the bits masked, and (as
  root) a private mount namespace shows a /proc/cpuinfo without the flags. No VM overhead.
--how kvm: a KVM guest, `qemu -cpu host,-avx512vnni,...`, Debian's stock kernel (apt-get download
  of linux-image-amd64's current image, never installed on the host) and a tiny initramfs
  (busybox-static, the virtio/9p modules, benchmarks/novnni_vm_init.sh) that mounts the host's /
  read-only over 9p, tmpfs on /tmp and writable 9p shares at their host paths (the run directory,
  the Numba cache, each --rw), chroots, runs the command and powers off. Output comes back through
  the serial console (stdout and stderr merged). This project's machines run PVM (a paravirtual
  KVM: `kvm-pvm` in dmesg), which boots only PVM-built kernels: there the guest never comes up.

Either way the command runs in this directory with this environment, this Python's bin first on
PATH, NUMBA_CACHE_DIR in --cache (Numba's cache is per CPU feature set, and the guest cannot write
the tree's __pycache__), and its exit code is returned.

    python benchmarks/novnni_vm.py [--mask avx512vnni,avx-vnni,...] -- python benchmarks/runtime_speed.py --quick
    python benchmarks/novnni_vm.py --how kvm [--rw DIR] -- ...     # --mask none: nothing hidden

--mask takes QEMU's feature names (FEATURES). Cache (gcc-built library, kernel, busybox, Numba
cache): --cache, default ~/.cache/edgecnn-vm.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
INIT, CPUID_SOURCE = HERE / "novnni_vm_init.sh", HERE / "novnni_cpuid.c"
# QEMU's feature name -> (CPUID leaf, subleaf, register 0..3 = eax ebx ecx edx, bit), /proc/cpuinfo's name.
FEATURES = {
    "avx512vnni": ((7, 0, 2, 11), "avx512_vnni"),
    "avx-vnni": ((7, 1, 0, 4), "avx_vnni"),
    "amx-bf16": ((7, 0, 3, 22), "amx_bf16"),
    "amx-tile": ((7, 0, 3, 24), "amx_tile"),
    "amx-int8": ((7, 0, 3, 25), "amx_int8"),
    "avx512-4vnniw": ((7, 0, 3, 2), "avx512_4vnniw"),
    "avx-vnni-int8": ((7, 1, 3, 4), "avx_vnni_int8"),
    "avx-vnni-int16": ((7, 1, 3, 10), "avx_vnni_int16"),
}
DEFAULT_MASK = "avx512vnni,avx-vnni,amx-int8,amx-bf16,amx-tile"
# The 9p root and shares, in load order (each module's own dependencies are loaded before it).
MODULES = ("virtio_pci", "9pnet_virtio", "9p")
KERNEL_META = "linux-image-amd64"  # Debian's generic kernel: the cloud flavour has no 9p
BOOT_SECONDS = 60  # the guest's init prints BOOTED within this, or the kernel is taken not to boot
BOOTED = b"novnni_vm: guest up"


class VMError(Exception):
    """One line for the user; no traceback."""


def run_quiet(cmd: list[str], cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise VMError(f"{cmd[0]} not found") from None
    if done.returncode:
        raise VMError(f"{' '.join(cmd)} failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    return done.stdout


def debian_kernel_package() -> str:
    """linux-image-amd64's current image package, e.g. linux-image-6.1.0-57-amd64."""
    try:
        out = run_quiet(["apt-cache", "depends", KERNEL_META])
    except VMError:
        out = ""
    for line in out.splitlines():
        name = line.split(":", 1)[-1].strip()
        if line.strip().startswith("Depends:") and name.startswith("linux-image-"):
            return name
    raise VMError(f"apt-cache knows no {KERNEL_META}: this needs Debian's repositories (apt-get update on Debian)")


def module_depends(ko: Path) -> list[str]:
    """The `depends=` entry of a module's .modinfo section (no modinfo/depmod needed)."""
    data = ko.read_bytes()
    at = data.find(b"\0depends=")
    if at < 0:
        return []
    value = data[at + 9:data.index(b"\0", at + 1)].decode()
    return [d for d in value.split(",") if d]


def modules_in_load_order(tree: Path, wanted=MODULES) -> list[Path]:
    by_name = {p.name[:-3].replace("-", "_"): p for p in tree.rglob("*.ko")}
    order: list[Path] = []

    def add(name: str) -> None:
        ko = by_name.get(name.replace("-", "_"))
        if ko is None:
            raise VMError(f"the Debian kernel has no module {name} (built in?)")
        for dep in module_depends(ko):
            add(dep)
        if ko not in order:
            order.append(ko)

    for name in wanted:
        add(name)
    return order


def fetch_guest_files(cache: Path) -> Path:
    """cache/<kernel package>/ with vmlinuz, busybox, modules/*.ko and modules.order; built once."""
    package = debian_kernel_package()
    target = cache / package
    if (target / "modules.order").exists():
        return target
    print(f"novnni_vm: fetching {package} and busybox-static into {target} (apt-get download) ...", flush=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        tmp = Path(tmp)
        os.chmod(tmp, 0o755)  # apt's _apt user writes the downloads
        run_quiet(["apt-get", "download", package, "busybox-static"], cwd=tmp)
        for deb in tmp.glob("*.deb"):
            run_quiet(["dpkg-deb", "-x", str(deb), str(tmp / "x")])
        build = tmp / "guest"
        (build / "modules").mkdir(parents=True)
        vmlinuz = next((tmp / "x" / "boot").glob("vmlinuz-*"), None)
        if vmlinuz is None:
            raise VMError(f"{package} holds no /boot/vmlinuz-*")
        shutil.copy(vmlinuz, build / "vmlinuz")
        shutil.copy(tmp / "x" / "bin" / "busybox", build / "busybox")
        order = modules_in_load_order(tmp / "x" / "lib" / "modules")
        for ko in order:
            shutil.copy(ko, build / "modules" / ko.name)
        (build / "modules.order").write_text("".join(ko.name + "\n" for ko in order))
        if target.exists():
            shutil.rmtree(target)
        build.rename(target)
    return target


def cpio_newc(entries: list[tuple[str, int, bytes]]) -> bytes:
    """An uncompressed initramfs: (path, mode, data) entries in the kernel's "newc" cpio format."""
    out = bytearray()

    def entry(ino: int, name: str, mode: int, data: bytes) -> None:
        fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name) + 1, 0)
        out.extend(b"070701" + b"".join(b"%08X" % f for f in fields) + name.encode() + b"\0")
        out.extend(b"\0" * (-len(out) % 4) + data + b"\0" * (-len(data) % 4))

    for ino, (name, mode, data) in enumerate(entries, 1):
        entry(ino, name, mode, data)
    entry(0, "TRAILER!!!", 0, b"")
    return bytes(out)


def build_initramfs(guest: Path) -> Path:
    image = guest / "initramfs.cpio"
    if image.exists() and image.stat().st_mtime >= INIT.stat().st_mtime:
        return image
    directory, executable, regular = 0o040755, 0o100755, 0o100644
    entries = [(d, directory, b"") for d in ("bin", "dev", "proc", "sys", "mnt", "modules")]
    entries += [("bin/busybox", executable, (guest / "busybox").read_bytes()),
                ("init", executable, INIT.read_bytes()),
                ("modules.order", regular, (guest / "modules.order").read_bytes())]  # fmt: skip
    entries += [(f"modules/{ko.name}", regular, ko.read_bytes()) for ko in sorted((guest / "modules").glob("*.ko"))]
    image.write_bytes(cpio_newc(entries))
    return image


def check_mask(mask: list[str]) -> None:
    unknown = [f for f in mask if f not in FEATURES]
    if unknown:
        raise VMError(f"unknown --mask feature {', '.join(unknown)}; known: {', '.join(FEATURES)}")


def cpuinfo_line(text: str, key: str) -> str:
    """'key: value' of /proc/cpuinfo's first such line."""
    values = (ln.partition(":")[2].strip() for ln in text.splitlines() if ln.partition(":")[0].strip() == key)
    return f"{key}: {next(values, '?')}"


def masked_cpuinfo(mask: list[str]) -> str:
    """/proc/cpuinfo with the masked features' flags removed from every "flags" line."""
    hidden = {FEATURES[f][1] for f in mask}
    lines = []
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        key, sep, value = line.partition(":")
        if key.strip() == "flags" and sep:
            line = f"{key}: " + " ".join(f for f in value.split() if f not in hidden)
        lines.append(line)
    return "\n".join(lines) + "\n"


def cpuid_library(cache: Path) -> Path:
    """novnni_cpuid.c built with gcc, once per version of the source."""
    source = CPUID_SOURCE.read_bytes()
    library = cache / f"novnni_cpuid-{hashlib.sha256(source).hexdigest()[:12]}.so"
    if not library.exists():
        built = library.with_suffix(".tmp")
        run_quiet(["gcc", "-O2", "-shared", "-fPIC", "-Wall", "-o", str(built), str(CPUID_SOURCE), "-ldl"])
        built.rename(library)
    return library


def run_cpuid(command: list[str], mask: list[str], cache: Path) -> int:
    if "cpuid_fault" not in cpuinfo_line(Path("/proc/cpuinfo").read_text(), "flags").split()[1:]:
        raise VMError("this CPU or kernel has no CPUID faulting (no cpuid_fault in /proc/cpuinfo): try --how kvm")
    env = guest_environment(numba_cache_dir(cache, mask))
    env["LD_PRELOAD"] = " ".join(filter(None, [str(cpuid_library(cache)), env.get("LD_PRELOAD", "")]))
    env["EDGECNN_CPUID_MASK"] = ",".join(".".join(map(str, FEATURES[f][0])) for f in mask)
    cpuinfo = masked_cpuinfo(mask)
    hides = ", ".join(mask) or "nothing"
    print(f"novnni_vm: CPUID faulting hides {hides}; {cpuinfo_line(cpuinfo, 'model name')}", flush=True)
    with tempfile.TemporaryDirectory(prefix="run-", dir=cache) as run:
        fake = Path(run) / "cpuinfo"
        fake.write_text(cpuinfo)
        bind = "mount --bind \"$1\" /proc/cpuinfo || exit 125; shift; exec \"$@\""
        if os.geteuid() == 0 and shutil.which("unshare"):
            command = ["unshare", "-m", "--propagation", "private", "sh", "-c", bind, "sh", str(fake), *command]
            print(f"novnni_vm: {cpuinfo_line(cpuinfo, 'flags')}", flush=True)
        else:
            print("novnni_vm: not root: /proc/cpuinfo still lists the hidden flags (CPUID does not)", flush=True)
        try:
            return subprocess.run(command, env=env).returncode
        except FileNotFoundError:
            raise VMError(f"{command[0]}: command not found") from None


def check_kvm(qemu: str) -> None:
    if not os.path.exists("/dev/kvm"):
        raise VMError("no /dev/kvm: this needs KVM (nested virtualization in a VM)")
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        raise VMError("/dev/kvm is not readable and writable by this user (the kvm group, or root)")
    if shutil.which(qemu) is None:
        raise VMError(f"no {qemu} on PATH: apt-get install qemu-system-x86")


def stream(proc: subprocess.Popen) -> bool:
    """Copy the serial console to stdout (CRLF back to LF); kill QEMU if the guest is not up in time.
    True if the guest came up."""
    held, seen = b"", bytearray()
    booted = threading.Event()
    watchdog = threading.Timer(BOOT_SECONDS, lambda: booted.is_set() or proc.kill())
    watchdog.start()
    try:
        while chunk := os.read(proc.stdout.fileno(), 65536):
            if not booted.is_set():
                seen += chunk
                if BOOTED in seen:
                    booted.set()
            chunk = held + chunk
            held = b"\r" if chunk.endswith(b"\r") else b""
            sys.stdout.buffer.write(chunk[: len(chunk) - len(held)].replace(b"\r\n", b"\n"))
            sys.stdout.buffer.flush()
    finally:
        watchdog.cancel()
    sys.stdout.buffer.write(held)
    return booted.is_set()


def run_kvm(command: list[str], mask: list[str], cache: Path, args) -> int:
    check_kvm(args.qemu)
    known = set(run_quiet([args.qemu, "-cpu", "help"]).split())
    if any(f not in known for f in mask):
        raise VMError(f"{args.qemu} knows no CPU feature {', '.join(f for f in mask if f not in known)}")
    guest = fetch_guest_files(cache)
    initramfs = build_initramfs(guest)
    numba_cache = numba_cache_dir(cache, mask)
    for d in args.rw:
        if not d.is_dir():
            raise VMError(f"--rw {d}: no such directory")
    with tempfile.TemporaryDirectory(prefix="run-", dir=cache) as run:
        run = Path(run)
        env = guest_environment(numba_cache)
        (run / "command.sh").write_text(
            "".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(env.items()) if k.isidentifier())
            + f"cd {shlex.quote(os.getcwd())} || exit 125\n{shlex.join(command)}\n")  # fmt: skip
        shares = [run, numba_cache, *(d.resolve() for d in args.rw)]
        if any(any(c.isspace() or c in ",'\"\\" for c in str(d)) for d in shares):
            raise VMError("a shared directory's path has a space, comma or quote: not supported")
        (run / "mounts").write_text("".join(f"rw{i} {d}\n" for i, d in enumerate(shares)))
        cpu = ",".join(["host", *(f"-{f}" for f in mask)])
        qemu = [args.qemu, "-enable-kvm", "-cpu", cpu, "-smp", str(args.cpus), "-m", args.memory,
                "-kernel", str(guest / "vmlinuz"), "-initrd", str(initramfs),
                "-append", f"console=ttyS0 quiet loglevel=3 panic=-1 edgecnn_run={run}",
                "-display", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot",
                "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap"]  # fmt: skip
        for i, d in enumerate(shares):
            qemu += ["-virtfs", f"local,path={d},mount_tag=rw{i},security_model=none"]
        print(f"novnni_vm: {guest.name}, -cpu {cpu}, {args.cpus} vCPUs, {args.memory}", flush=True)
        with subprocess.Popen(qemu, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE) as proc:
            try:
                booted = stream(proc)
            except KeyboardInterrupt:
                proc.terminate()
                raise VMError("interrupted: the guest was stopped") from None
        if not booted:
            raise VMError(f"the guest kernel did not come up in {BOOT_SECONDS} s (PVM's KVM, `kvm-pvm` in dmesg, "
                          "boots only PVM-built kernels): use --how cpuid")  # fmt: skip
        if proc.returncode or not (run / "rc").exists():
            raise VMError(f"the guest stopped before the command finished (qemu exit {proc.returncode})")
        return int((run / "rc").read_text().strip() or 1)


def numba_cache_dir(cache: Path, mask: list[str]) -> Path:
    return cache / ("numba-" + ("-".join(mask) or "nomask"))


def guest_environment(numba_cache: Path) -> dict:
    """This environment, this Python's bin first on PATH, a Numba cache of the masked CPU's own."""
    numba_cache.mkdir(exist_ok=True)
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "/usr/bin:/bin")
    env["NUMBA_CACHE_DIR"] = str(numba_cache)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], usage="%(prog)s [options] -- command ...")
    p.add_argument("--how", choices=("cpuid", "kvm"), default="cpuid")
    p.add_argument("--mask", default=DEFAULT_MASK,
                   help=f"CPU features to hide (QEMU's names), comma-separated, or 'none' (default {DEFAULT_MASK})")
    p.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "edgecnn-vm")
    p.add_argument("--rw", type=Path, action="append", default=[], help="kvm: a host directory the guest may write")
    p.add_argument("--cpus", type=int, default=2, help="kvm: vCPUs")
    p.add_argument("--memory", default="8G", help="kvm: guest RAM")
    p.add_argument("--qemu", default="qemu-system-x86_64")
    p.add_argument("command", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        p.error("no command: put it after --")
    mask = [] if args.mask in ("", "none") else args.mask.split(",")
    try:
        check_mask(mask)
        args.cache.mkdir(parents=True, exist_ok=True)
        cache = args.cache.resolve()
        if args.how == "cpuid":
            return run_cpuid(command, mask, cache)
        return run_kvm(command, mask, cache, args)
    except VMError as e:
        print(f"novnni_vm: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
