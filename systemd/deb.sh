#!/usr/bin/env bash
# Builds tepui's Debian package from the release binaries with dpkg-deb
# (no other tool): the binaries in /usr/bin, the units in
# /usr/lib/systemd/system, /etc/tepui/*.env as conffiles, and maintainer
# scripts that reload systemd, restart the master and the agent on an
# upgrade (never tepui-containers, which would kill the tasks), stop
# everything on removal, and remove the work dirs only on purge.
# Prints the package's path.
#   usage: systemd/deb.sh [OUT_DIR]   (after cargo build --release)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
out=${1:-$root/target/debian}
bin=${BIN_DIR:-$root/target/release}
version=$(awk -F'"' '/^version = / { print $2; exit }' "$root/Cargo.toml")
arch=$(dpkg --print-architecture)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
pkg=$stage/tepui

install -d "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/usr/lib/systemd/system" "$pkg/etc/tepui" \
    "$pkg/usr/share/doc/tepui"
for b in tepui tepui-master tepui-agent tepui-executor; do
    [ -x "$bin/$b" ] || { echo "$bin/$b is missing: cargo build --release first" >&2; exit 1; }
    install -m 0755 "$bin/$b" "$pkg/usr/bin/$b"
done
for u in "$here"/units/*.service; do
    sed 's|@BINDIR@|/usr/bin|g' "$u" >"$pkg/usr/lib/systemd/system/$(basename "$u")"
done
install -m 0644 "$here/env/master.env" "$here/env/agent.env" "$pkg/etc/tepui/"
install -m 0644 "$root/README.md" "$pkg/usr/share/doc/tepui/README.md"
printf '/etc/tepui/master.env\n/etc/tepui/agent.env\n' >"$pkg/DEBIAN/conffiles"
size=$(du -sk "$pkg" | cut -f1)
cat >"$pkg/DEBIAN/control" <<CONTROL
Package: tepui
Version: $version
Architecture: $arch
Maintainer: tepui developers <tepui@localhost>
Depends: libc6 (>= 2.34), libseccomp2 (>= 2.5)
Recommends: systemd
Installed-Size: $size
Section: admin
Priority: optional
Homepage: https://github.com/tepui/tepui
Description: Linux-native cluster agent and compact master after Apache Mesos
 tepui runs tasks in containers (namespaces, cgroups v2, OCI images) on
 agents whose resources a master offers to frameworks by DRF. It speaks
 the Mesos v1 HTTP APIs. Start it with:
 systemctl enable --now tepui-master tepui-agent
CONTROL
cat >"$pkg/DEBIAN/postinst" <<'SCRIPT'
#!/bin/sh
set -e
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    # An upgrade: the new binaries take over; running tasks stay, as
    # tepui-containers is not restarted.
    if [ -n "$2" ]; then
        systemctl try-restart tepui-master.service tepui-agent.service || true
    fi
fi
SCRIPT
cat >"$pkg/DEBIAN/prerm" <<'SCRIPT'
#!/bin/sh
set -e
# Removal (not upgrade): stop the daemons and the containers with them.
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
    systemctl disable --now tepui-agent.service tepui-master.service tepui-containers.service >/dev/null 2>&1 || true
fi
SCRIPT
cat >"$pkg/DEBIAN/postrm" <<'SCRIPT'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
fi
# Work dirs (registry, sandboxes, checkpoints, images) only on purge.
if [ "$1" = purge ]; then
    rm -rf /var/lib/tepui /run/tepui
fi
SCRIPT
chmod 0755 "$pkg/DEBIAN/postinst" "$pkg/DEBIAN/prerm" "$pkg/DEBIAN/postrm"
mkdir -p "$out"
deb=$out/tepui_${version}_${arch}.deb
dpkg-deb --root-owner-group --build "$pkg" "$deb" >/dev/null
echo "$deb"
