#!/usr/bin/env bash
# Builds the Debian 12 guest of the VM tier from Debian packages: a root
# filesystem by debootstrap (kernel, systemd, busybox-static, python3 for
# the chaos tier's pymesos framework, and Debian's
# docker-registry and skopeo for the deployment scenarios), turned into
# an ext4 disk image by mkfs.ext4 -d (no loop mounts). The guest mounts a
# 9p share at /mnt/share and, once up, runs /mnt/share/guest.sh from a
# oneshot unit, which records its exit code there and powers off.
#
# The result is cached in $TEPUI_VM_CACHE (default /var/cache/tepui-vm),
# keyed by a hash of this file, so it is rebuilt only when the recipe
# changes. Prints the directory holding vmlinuz, initrd.img and disk.img.
#   usage: tests/vm/build-image.sh
set -euo pipefail

recipe_hash=$(sha256sum "$0" | cut -c1-16)
cache=${TEPUI_VM_CACHE:-/var/cache/tepui-vm}/$recipe_hash
if [ -s "$cache/disk.img" ] && [ -s "$cache/vmlinuz" ] && [ -s "$cache/initrd.img" ]; then
    echo "$cache"
    exit 0
fi

for tool in debootstrap:debootstrap mkfs.ext4:e2fsprogs; do
    command -v "${tool%%:*}" >/dev/null || {
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${tool##*:}" >/dev/null
    }
done

# The mirror apt already uses on this machine.
mirror=$(awk '/^URIs:/ && $2 ~ /debian\/?$/ { print $2; exit }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
[ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $2 ~ /debian\/?$/ { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}

work=$(mktemp -d "${TMPDIR:-/tmp}/tepui-vm-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
echo "building the VM image from $mirror into $cache" >&2
debootstrap --variant=minbase \
    --include=systemd,systemd-sysv,udev,kmod,iproute2,procps,linux-image-amd64,initramfs-tools,e2fsprogs,busybox-static,python3 \
    bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
    tail -20 "$work/debootstrap.log" >&2
    exit 1
}

# The registry and skopeo through apt in the new root: debootstrap's own
# configuration pass fails on skopeo's dependencies. No service starts
# in the chroot (policy-rc.d).
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod +x "$root/usr/sbin/policy-rc.d"
{ chroot "$root" apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get install -y -qq --no-install-recommends \
        docker-registry skopeo; } >"$work/apt.log" 2>&1 || {
    tail -20 "$work/apt.log" >&2
    exit 1
}
rm -f "$root/usr/sbin/policy-rc.d"
chroot "$root" apt-get clean

echo tepui-vm >"$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\ttepui-vm\n' >"$root/etc/hosts"
cat >"$root/etc/fstab" <<'FSTAB'
/dev/vda / ext4 rw,errors=remount-ro 0 1
share /mnt/share 9p trans=virtio,version=9p2000.L,msize=262144,nofail 0 0
FSTAB
printf '9p\n9pnet\n9pnet_virtio\n' >>"$root/etc/modules"
mkdir -p "$root/mnt/share"
cat >"$root/etc/systemd/system/tepui-vm-test.service" <<'UNIT'
[Unit]
Description=Run the tepui VM test script from the share, then power off
After=multi-user.target mnt-share.mount
Requires=mnt-share.mount

[Service]
Type=oneshot
StandardOutput=journal+console
StandardError=journal+console
ExecStart=/bin/sh -c '/bin/bash /mnt/share/guest.sh >/mnt/share/output 2>&1; echo $? >/mnt/share/exitcode; sync'
ExecStartPost=/bin/systemctl --no-block poweroff

[Install]
WantedBy=multi-user.target
UNIT
ln -sf /etc/systemd/system/tepui-vm-test.service "$root/etc/systemd/system/multi-user.target.wants/tepui-vm-test.service"
# No console login, no waiting for a network that is not there.
rm -f "$root/etc/systemd/system/getty.target.wants/"* 2>/dev/null || true
ln -sf /dev/null "$root/etc/systemd/system/systemd-networkd-wait-online.service"

mkdir -p "$work/out"
cp "$(ls "$root"/boot/vmlinuz-* | head -1)" "$work/out/vmlinuz"
cp "$(ls "$root"/boot/initrd.img-* | head -1)" "$work/out/initrd.img"
mkfs.ext4 -q -F -d "$root" -L root "$work/out/disk.img" 2G >&2
mkdir -p "$(dirname "$cache")"
rm -rf "$cache"
mv "$work/out" "$cache"
echo "$cache"
