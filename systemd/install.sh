#!/usr/bin/env bash
# Installs tepui's binaries, systemd units and configuration files, then
# reloads systemd; or removes them again. The work dirs under
# /var/lib/tepui stay unless --purge is given. Run as root from a clone
# after `cargo build --release`, or with BIN_DIR pointing at the binaries;
# DESTDIR stages the whole tree under a directory instead (packaging).
#   usage: systemd/install.sh [--prefix /usr/local] [--uninstall [--purge]]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
prefix=/usr/local
action=install
purge=no
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix=${2:?--prefix needs a directory}; shift 2 ;;
        --uninstall) action=uninstall; shift ;;
        --purge) purge=yes; shift ;;
        *) echo "usage: $0 [--prefix DIR] [--uninstall [--purge]]" >&2; exit 2 ;;
    esac
done
dest=${DESTDIR:-}
bindir=$prefix/bin
units=/etc/systemd/system
[ "$prefix" = /usr ] && units=/usr/lib/systemd/system
etc=$dest/etc/tepui
# systemd is told only about a live install.
[ -n "$dest" ] && live=no || live=yes
binaries=(tepui tepui-master tepui-agent tepui-executor)
unit_files=(tepui-master.service tepui-agent.service tepui-containers.service)
reload() { [ "$live" = yes ] && [ -d /run/systemd/system ] && systemctl daemon-reload || true; }

if [ "$action" = uninstall ]; then
    if [ "$live" = yes ] && [ -d /run/systemd/system ]; then
        systemctl disable --now tepui-agent.service tepui-master.service tepui-containers.service 2>/dev/null || true
    fi
    for u in "${unit_files[@]}"; do rm -f "$dest$units/$u"; done
    for b in "${binaries[@]}"; do rm -f "$dest$bindir/$b"; done
    reload
    if [ "$purge" = yes ]; then
        rm -rf "$etc" "$dest/var/lib/tepui"
        echo "tepui removed, with its configuration and work dirs"
    else
        echo "tepui removed; /etc/tepui and /var/lib/tepui are kept (--purge removes them)"
    fi
    exit 0
fi

src=${BIN_DIR:-$here/../target/release}
for b in "${binaries[@]}"; do
    [ -x "$src/$b" ] || { echo "$src/$b is missing: cargo build --release first" >&2; exit 1; }
done
install -d "$dest$bindir" "$dest$units" "$etc"
for b in "${binaries[@]}"; do install -m 0755 "$src/$b" "$dest$bindir/$b"; done
for u in "${unit_files[@]}"; do
    sed "s|@BINDIR@|$bindir|g" "$here/units/$u" >"$dest$units/$u"
    chmod 0644 "$dest$units/$u"
done
# Configuration is the operator's: never overwritten.
for e in master agent; do
    [ -e "$etc/$e.env" ] || install -m 0644 "$here/env/$e.env" "$etc/$e.env"
done
reload
echo "tepui installed in $dest$bindir, units in $dest$units; start with: systemctl enable --now tepui-master tepui-agent"
