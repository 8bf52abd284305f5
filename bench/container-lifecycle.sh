#!/usr/bin/env bash
# Container lifecycle benchmark: the full create-start-wait-delete of a
# container running `true`, for tepui, crun and runc, on the same ground:
# all in one private mount namespace with cgroup2 (and nothing else)
# mounted on /sys/fs/cgroup, the same busybox rootfs, the same namespaces
# (pid, mount, uts, ipc, network, cgroup), and crun and runc given through
# their config.json what tepui applies: tepui's own seccomp filter
# (`tepui container seccomp`), its capability set (none inheritable or
# ambient), no_new_privs, its masked and read-only paths, the default
# device rules, its mounts and its nofile limit. The floor is the kernel
# work alone: `unshare -pfmuin --mount-proc chroot ROOTFS true`.
# Runs alternate between the runtimes, so a load that comes and goes
# falls on all of them. Prints each median, the ratios tepui/crun,
# tepui/runc and tepui/floor, and tepui's peak RSS. A ratio, not a timing
# test: it fails only if a runtime fails. The host's mounts are untouched
# (the namespace is private) and the cgroups are removed on any exit.
#   usage: bench/container-lifecycle.sh    (RUNS=50 by default; as root)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-50}

. bench/common.sh
install_missing crun runc python3 busybox:busybox-static /usr/bin/time:time unshare:util-linux gcc

cargo build --release --locked -q -p tepui-cli
tepui=$PWD/target/release/tepui

work=$(mktemp -d)
group=tepui-bench-$$
cleanup() {
    # The cgroups live in the host's cgroup2 hierarchy; reach them through
    # a private mount of it, whatever the host mounts where.
    unshare -m --propagation private -- sh -c '
        mount -t cgroup2 none "$1" 2>/dev/null || exit 0
        for dir in $(find "$1/$2" -depth -type d 2>/dev/null); do rmdir "$dir" 2>/dev/null; done
        umount "$1"' sh "$work/cgroup2" "$group" || true
    rm -rf "$work"
}
trap cleanup EXIT
mkdir "$work/cgroup2"

# crun raises RLIMIT_MEMLOCK before loading its device program, which a
# sandbox without CAP_SYS_RESOURCE refuses; since 5.11 the kernel does not
# charge the program to that limit, so there bench/memlock-shim.c reports
# the raise done and crun does the same work as anywhere else.
preload=
if python3 -c 'import os, sys; sys.exit(tuple(map(int, os.uname().release.split(".")[:2])) < (5, 11))'; then
    gcc -shared -fPIC -O2 -o "$work/memlock-shim.so" bench/memlock-shim.c -ldl
    preload=$work/memlock-shim.so
fi

bundle=$work/bundle
tests/fixtures/busybox-rootfs.sh "$bundle/rootfs"
(cd "$bundle" && crun spec)
"$tepui" container seccomp >"$work/seccomp.json"
# systemd's nofile default, 1024:524288, with the hard limit capped at
# this shell's (raising it takes CAP_SYS_RESOURCE, which a CI sandbox may
# lack).
nofile_hard=$(ulimit -Hn)
[ "$nofile_hard" = unlimited ] || [ "$nofile_hard" -gt 524288 ] && nofile_hard=524288
python3 - "$bundle/config.json" "$work/seccomp.json" "$group" "$nofile_hard" <<'PY'
import json, sys
path, seccomp, group, nofile_hard = sys.argv[1:]
config = json.load(open(path))
process = config["process"]
process["args"] = ["true"]
process["terminal"] = False
process["noNewPrivileges"] = True
# tepui's default set (Podman's), in every set but inheritable and ambient.
caps = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
        "CAP_NET_BIND_SERVICE", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID",
        "CAP_SYS_CHROOT"]
process["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps}
process["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": int(nofile_hard)}]
linux = config["linux"]
linux["namespaces"] = [{"type": t} for t in ("pid", "mount", "uts", "ipc", "network", "cgroup")]
linux["seccomp"] = json.load(open(seccomp))
# tepui's lists (isolators/src/filesystem.rs MASKED and READ_ONLY).
linux["maskedPaths"] = ["/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore",
                        "/proc/keys", "/proc/latency_stats", "/proc/sched_debug", "/proc/scsi",
                        "/proc/timer_list", "/proc/timer_stats",
                        "/sys/devices/virtual/powercap", "/sys/firmware"]
linux["readonlyPaths"] = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
# Deny all; both runtimes add the default devices (null, zero, full,
# tty, random, urandom, pts), as tepui's device filter allows.
linux["resources"] = {"devices": [{"allow": False, "access": "rwm"}]}
linux["cgroupsPath"] = f"/{group}/peer"
config["root"] = {"path": f"{path.rsplit('/', 1)[0]}/rootfs", "readonly": False}
# tepui's mounts: /proc, a /dev tmpfs with devpts and shm, /sys read-only.
keep = {"/proc", "/dev", "/dev/pts", "/dev/shm", "/sys"}
config["mounts"] = [m for m in config["mounts"] if m["destination"] in keep]
json.dump(config, open(path, "w"))
PY
for peer in crun runc; do
    sed "s|\"/$group/peer\"|\"/$group/$peer\"|" "$bundle/config.json" >"$work/$peer.json"
    mkdir -p "$work/$peer-bundle"
    mv "$work/$peer.json" "$work/$peer-bundle/config.json"
done

echo "== $runs lifecycles each, alternating: tepui container run / crun run / runc run / the floor (true, busybox rootfs, pid+mount+uts+ipc+net+cgroup namespaces, a cgroup, seccomp, caps, masks, devices; one private mount namespace, cgroup2 on /sys/fs/cgroup)"
export tepui work bundle group runs nofile_hard preload
unshare -m --propagation private -- bash -c '
set -euo pipefail
umount -R /sys/fs/cgroup 2>/dev/null || umount -l /sys/fs/cgroup
mount -t cgroup2 none /sys/fs/cgroup
mkdir -p /sys/fs/cgroup/$group
# Each runtime keeps its state on a tmpfs, as by default (/run/tepui,
# /run/crun, /run/runc): state that a reboot ends anyway.
mkdir -p "$work/run"
mount -t tmpfs tmpfs "$work/run"
python3 - <<'"'PY'"'
import os, statistics, subprocess, sys, time
work, bundle, group, tepui, nofile_hard = (
    os.environ[k] for k in ("work", "bundle", "group", "tepui", "nofile_hard"))
runs = int(os.environ["runs"])
commands = {
    "tepui": [tepui, "container", "--cgroup-root", f"/sys/fs/cgroup/{group}/tepui",
              "--state-dir", f"{work}/run/tepui", "run", "--net", "--rootfs", f"{bundle}/rootfs",
              "--rlimit", f"nofile=1024:{nofile_hard}", "--", "true"],
    "crun": ["crun", "--root", f"{work}/run/crun", "run", "--bundle", f"{work}/crun-bundle", "bench-crun"],
    "runc": ["runc", "--root", f"{work}/run/runc", "run", "--bundle", f"{work}/runc-bundle", "bench-runc"],
    "floor": ["unshare", "-pfmuin", "--mount-proc", "chroot", f"{bundle}/rootfs", "true"],
}
crun_env = dict(os.environ)
if os.environ["preload"]:
    crun_env["LD_PRELOAD"] = os.environ["preload"]
envs = {name: crun_env if name == "crun" else None for name in commands}
times = {name: [] for name in commands}
names = list(commands)
for i in range(3 + runs):
    for name in names[i % len(names):] + names[:i % len(names)]:
        start = time.perf_counter()
        done = subprocess.run(commands[name], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, env=envs[name])
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            err = done.stderr.decode(errors="replace")[-2000:]
            sys.exit(f"{name} failed ({done.returncode}): {err}")
        if i >= 3:
            times[name].append(elapsed * 1000)
median = {name: statistics.median(t) for name, t in times.items()}
for name, t in times.items():
    print(f"{name:6} median {median[name]:7.2f} ms   min {min(t):7.2f} ms   max {max(t):7.2f} ms   runs {len(t)}")
for peer, target in (("crun", "(target <= 0.50)"), ("runc", ""), ("floor", "(target <= 1.50)")):
    print("ratio tepui/%-5s %.2f   %s" % (peer, median["tepui"] / median[peer], target))
PY
rss_kib=$(/usr/bin/time -f "%M" "$tepui" container --cgroup-root /sys/fs/cgroup/$group/tepui \
    --state-dir "$work/run/tepui" run --net --rootfs "$bundle/rootfs" -- true 2>&1 >/dev/null | tail -1)
echo "tepui peak RSS    $rss_kib KiB"
'
