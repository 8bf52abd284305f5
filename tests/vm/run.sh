#!/usr/bin/env bash
# Boots the VM-tier guest (tests/vm/build-image.sh) under qemu with TCG, a
# 9p share holding SCENARIO (as guest.sh) and FILEs, and prints what the
# scenario printed in the guest, under systemd; exits with its exit code.
# The disk image is used with snapshot=on, so every run starts from the
# same pristine guest. KVM is not used: it hangs a stock Debian kernel on
# these hosts (see shared/VM.md).
#   usage: [TEPUI_VM_ARTIFACTS=DIR] [TEPUI_VM_TIMEOUT=S] tests/vm/run.sh SCENARIO [FILE...]
set -euo pipefail
cd "$(dirname "$0")/../.."
scenario=${1:?usage: tests/vm/run.sh SCENARIO [FILE...]}
shift

command -v qemu-system-x86_64 >/dev/null || {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-system-x86 >/dev/null
}
cache_root=${TEPUI_VM_CACHE:-/var/cache/tepui-vm}
image=$(tests/vm/build-image.sh | tail -1)
if [ -z "$image" ] || [ "$(dirname "$image")" != "$cache_root" ] || [ ! -s "$image/disk.img" ]; then
    echo "vm: no guest image (build-image.sh printed '$image')" >&2
    exit 1
fi
# Images of earlier recipes are of no further use.
find "$cache_root" -mindepth 1 -maxdepth 1 -type d ! -path "$image" -exec rm -rf {} +

share=$(mktemp -d "${TMPDIR:-/tmp}/tepui-vm-share.XXXXXX")
# With TEPUI_VM_ARTIFACTS=DIR, what the scenario left in the share's
# artifacts/ (logs, journals) is copied there before the share goes.
keep_artifacts() {
    if [ -n "${TEPUI_VM_ARTIFACTS:-}" ] && [ -d "$share/artifacts" ]; then
        mkdir -p "$TEPUI_VM_ARTIFACTS"
        cp -a "$share/artifacts/." "$TEPUI_VM_ARTIFACTS/"
        echo "vm: the scenario's artifacts are in $TEPUI_VM_ARTIFACTS" >&2
    fi
    rm -rf "$share"
}
trap keep_artifacts EXIT
cp "$scenario" "$share/guest.sh"
for file in "$@"; do
    cp -a "$file" "$share/"
done

timeout=${TEPUI_VM_TIMEOUT:-900}
start=$SECONDS
# The guest powers itself off when the scenario ends; timeout bounds it
# anyway (and, unlike a watchdog of our own, leaves no process holding
# our stdout open).
timeout --kill-after=10 "$timeout" qemu-system-x86_64 -accel tcg,thread=multi -cpu max -m 2048 -smp 2 \
    -nographic -no-reboot \
    -kernel "$image/vmlinuz" -initrd "$image/initrd.img" \
    -append 'root=/dev/vda rw console=ttyS0 quiet' \
    -drive "file=$image/disk.img,format=raw,if=virtio,snapshot=on" \
    -virtfs "local,path=$share,mount_tag=share,security_model=none,id=share" \
    -nic none </dev/null >"$share/console.log" 2>&1 || true

cat "$share/output" 2>/dev/null || true
if [ ! -s "$share/exitcode" ]; then
    echo "vm: the scenario did not finish within ${timeout}s; the console's last lines:" >&2
    tail -30 "$share/console.log" >&2
    exit 1
fi
echo "vm: guest ran for $((SECONDS - start)) s" >&2
exit "$(cat "$share/exitcode")"
