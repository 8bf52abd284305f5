#!/usr/bin/env bash
# Image pull benchmark: from one local docker-registry on 127.0.0.1, a
# ~100 MB image in 3 gzip layers to a ready root filesystem:
#   tepui  `tepui image pull` + `tepui container run --image ... -- true`
#          (layers downloaded, verified and unpacked; an overlay rootfs
#          mounted and a container run in it)
#   peer   `skopeo copy docker://... oci:...` + `umoci unpack`
# with a fresh store and the page cache dropped before every run. Prints
# both medians and the ratio peer/tepui (target >= 1.5). Then pulls a
# second image sharing 2 of the 3 layers into the same store and counts,
# from the registry's access log, the layer blobs it fetched (must be 1).
# A ratio, not a timing test: it fails only if a tool fails or the second
# pull fetches a shared layer again.
#   usage: bench/image-pull.sh    (RUNS=5 by default; as root)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-5}

. bench/common.sh
install_missing docker-registry skopeo umoci hyperfine python3 busybox:busybox-static

cargo build --release --locked -q -p tepui-cli
tepui=$PWD/target/release/tepui

work=$(mktemp -d)
cgroup2=$(awk '$0 ~ / - cgroup2 / { print $5; exit }' /proc/self/mountinfo)
cgroot=$cgroup2/tepui-bench-pull-$$
registry_pid=
cleanup() {
    local status=$?
    if [ -n "$registry_pid" ]; then
        kill "$registry_pid" 2>/dev/null || true
        wait "$registry_pid" 2>/dev/null || true
    fi
    rmdir "$cgroot" 2>/dev/null || true
    if [ -n "$work" ] && [ -d "$work" ]; then rm -rf "$work"; fi
    exit "$status"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
host=127.0.0.1:$port
cat > "$work/registry.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: $host
EOF
docker-registry serve "$work/registry.yml" > "$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done

echo "== building and pushing two ~100 MB images of 3 layers that share 2"
tests/fixtures/busybox-rootfs.sh "$work/rootfs"
for variant in one two; do
    python3 tests/fixtures/oci-image.py "$work/rootfs" "$work/layout-$variant" --variant "$variant" --payload-mib 96
    skopeo --insecure-policy copy -q --dest-tls-verify=false \
        "oci:$work/layout-$variant:latest" "docker://$host/bench:$variant"
done
du -sh "$work/layout-one/blobs" | awk '{ print "image size (compressed blobs): " $1 }'

drop='sync; echo 3 > /proc/sys/vm/drop_caches'
echo "== $runs cold pulls each, fresh store and dropped caches before every run"
hyperfine --style none --runs "$runs" --export-json "$work/tepui.json" -n tepui \
    --prepare "rm -rf $work/store; $drop" \
    "$tepui image --store $work/store --insecure-registry $host pull $host/bench:one >/dev/null && \
     $tepui container --store $work/store --insecure-registry $host --cgroup-root $cgroot \
         --state-dir $work/state run --image $host/bench:one -- true" >/dev/null
hyperfine --style none --runs "$runs" --export-json "$work/peer.json" -n skopeo+umoci \
    --prepare "rm -rf $work/oci $work/bundle; $drop" \
    "skopeo --insecure-policy copy -q --src-tls-verify=false docker://$host/bench:one oci:$work/oci:latest && \
     umoci --log error unpack --image $work/oci:latest $work/bundle" >/dev/null

# The second image into the store that holds the first: only its own layer moves.
rm -rf "$work/store"
"$tepui" image --store "$work/store" --insecure-registry "$host" pull "$host/bench:one" >/dev/null
lines_before=$(wc -l < "$work/registry.log")
"$tepui" image --store "$work/store" --insecure-registry "$host" pull "$host/bench:two" >/dev/null
tail -n +"$((lines_before + 1))" "$work/registry.log" > "$work/second.log"

python3 - "$work" <<'PY'
import json, re, sys
work = sys.argv[1]
res = {n: json.load(open(f"{work}/{n}.json"))["results"][0] for n in ("tepui", "peer")}
for name, label in (("tepui", "tepui pull+run"), ("peer", "skopeo+umoci")):
    t = res[name]["times"]
    print(f"{label:15} median {res[name]['median']:6.2f} s   min {min(t):6.2f} s   max {max(t):6.2f} s   runs {len(t)}")
print(f"ratio skopeo+umoci / tepui {res['peer']['median'] / res['tepui']['median']:.2f}   (target >= 1.5)")

def layers(variant):
    index = json.load(open(f"{work}/layout-{variant}/index.json"))
    digest = index["manifests"][0]["digest"].split(":")[1]
    manifest = json.load(open(f"{work}/layout-{variant}/blobs/sha256/{digest}"))
    return [(l["digest"], l["size"]) for l in manifest["layers"]]

log = open(f"{work}/second.log").read()
fetched = [(d, s) for d, s in layers("two") if re.search(rf'"GET /v2/bench/blobs/{d} HTTP[^"]*" 20[06] ', log)]
total = sum(s for _, s in layers("two"))
print(f"second pull (shares 2 of 3 layers): fetched {len(fetched)} of 3 layer blobs, "
      f"{sum(s for _, s in fetched) / 2**20:.1f} of {total / 2**20:.1f} MiB")
if len(fetched) != 1:
    sys.exit("the second pull fetched a shared layer again")
PY
