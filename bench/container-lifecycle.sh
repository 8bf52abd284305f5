#!/usr/bin/env bash
# Container lifecycle benchmark: the full create-start-wait-delete of a
# container running `true`, for tepui, crun and runc side by side, on the
# same busybox rootfs with the same isolation (new pid, mount, uts, ipc and
# network namespaces, and a cgroup). Prints each median, the ratios
# tepui/crun and tepui/runc, and tepui's peak RSS. A ratio, not a timing
# test: it fails only if a runtime fails.
#   usage: bench/container-lifecycle.sh    (RUNS=50 by default; as root)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-50}

. bench/common.sh
install_missing crun runc hyperfine python3 busybox:busybox-static /usr/bin/time:time

cargo build --release --locked -q -p tepui-cli
tepui=$PWD/target/release/tepui

work=$(mktemp -d)
cgroup2=$(awk '$0 ~ / - cgroup2 / { print $5; exit }' /proc/self/mountinfo)
cgroot=$cgroup2/tepui-bench-$$
cleanup() {
    crun --root "$work/crun" delete -f bench-crun >/dev/null 2>&1 || true
    runc --root "$work/runc" delete -f bench-runc >/dev/null 2>&1 || true
    rmdir "$cgroot" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

bundle=$work/bundle
tests/fixtures/busybox-rootfs.sh "$bundle/rootfs"
(cd "$bundle" && crun spec)
python3 - "$bundle/config.json" <<'PY'
import json, sys
path = sys.argv[1]
config = json.load(open(path))
config["process"]["args"] = ["true"]
config["process"]["terminal"] = False
kinds = sorted(n["type"] for n in config["linux"]["namespaces"])
assert kinds == ["ipc", "mount", "network", "pid", "uts"], kinds
json.dump(config, open(path, "w"))
PY

echo "== $runs lifecycles each: tepui container run / crun run / runc run (true, busybox rootfs, pid+mount+uts+ipc+net namespaces, a cgroup)"
measure() { # NAME COMMAND...: hyperfine without a shell, JSON to $work/NAME.json
    local name=$1
    shift
    hyperfine -N --style none --warmup 3 --runs "$runs" --export-json "$work/$name.json" -n "$name" "$*" >/dev/null
}
measure tepui "$tepui" container --cgroup-root "$cgroot" --state-dir "$work/state" run --net --rootfs "$bundle/rootfs" -- true
measure runc runc --root "$work/runc" run --bundle "$bundle" bench-runc
# crun 1.8 refuses a hybrid host whose cgroup2 mount holds a controller
# (here hugetlb). In a private mount namespace with that mount detached it
# sees a plain cgroup v1 host and does its usual cgroup work; the host's
# mounts are untouched, and the unshare is outside the timed commands.
export -f measure
export runs work bundle
unshare -m -- bash -c 'umount -l '"$cgroup2"' && measure crun crun --root "$work/crun" run --bundle "$bundle" bench-crun'

rss_kib=$(/usr/bin/time -f '%M' "$tepui" container --cgroup-root "$cgroot" --state-dir "$work/state" \
    run --net --rootfs "$bundle/rootfs" -- true 2>&1 >/dev/null | tail -1)

python3 - "$work" "$rss_kib" <<'PY'
import json, sys
results = {name: json.load(open(f"{sys.argv[1]}/{name}.json"))["results"][0] for name in ("tepui", "crun", "runc")}
median = {name: results[name]["median"] * 1000 for name in ("tepui", "crun", "runc")}
for name, ms in median.items():
    times = results[name]["times"]
    print(f"{name:6} median {ms:7.2f} ms   min {min(times)*1000:7.2f} ms   max {max(times)*1000:7.2f} ms   runs {len(times)}")
print(f"ratio tepui/crun {median['tepui'] / median['crun']:.2f}   (target <= 0.80)")
print(f"ratio tepui/runc {median['tepui'] / median['runc']:.2f}")
print(f"tepui peak RSS   {int(sys.argv[2])} KiB")
PY
