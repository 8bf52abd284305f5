#!/bin/bash
# VM tier, containerizer (issue 3): in a Debian 12 guest with systemd as
# PID 1 and pure cgroup v2, the limits are enforced, a live container's
# limit can be raised, and a container started by one tepui process is
# recovered by another. Runs in the guest from the 9p share, which holds
# the tepui binary and the busybox rootfs builder.
set -u
share=/mnt/share
# check and summary, from the share.
. "$share/check.sh"

echo "guest: $(uname -r), $(cat /proc/1/comm) is pid 1, $(stat -fc %T /sys/fs/cgroup) at /sys/fs/cgroup"
# The tepui subtree gets every controller from the root.
echo '+cpu +io +memory +pids' >/sys/fs/cgroup/cgroup.subtree_control
rootfs=/var/tmp/rootfs
"$share/busybox-rootfs.sh" "$rootfs"
cg=/sys/fs/cgroup/tepui
tepui() { "$share/tepui" container --cgroup-root "$cg" --state-dir /run/tepui/containers "$@"; }

# 1. memory.max 32M and a process allocating past it: OOM-killed and
# reported as a memory limitation.
out=$(tepui run --id oom --rootfs "$rootfs" --mem 32M -- awk 'BEGIN { s = "x"; while (1) s = s s }' 2>&1)
code=$?
detail="exit $code: $out"
check "memory limit 32M kills a 100M+ allocation as a memory limitation" \
    test "$code" = 137 -a -n "$(echo "$out" | grep 'memory limit of 33554432 bytes reached')"

# 2. pids.max 16 and a fork loop: capped.
# The loop runs in a subshell: busybox sh exits when a fork fails, and the
# container's pid 1 must outlive it for the cap to be observed.
tepui start --id forky --rootfs "$rootfs" --pids 16 -- \
    sh -c '(while :; do sleep 30 & done) 2>/dev/null; sleep 1000' >/dev/null
peak=0
for _ in $(seq 20); do
    now=$(cat "$cg/forky/pids.current")
    [ "$now" -gt "$peak" ] && peak=$now
    sleep 0.1
done
refused=$(awk '$1 == "max" { print $2 }' "$cg/forky/pids.events")
detail="pids.max $(cat "$cg/forky/pids.max"), peak pids.current $peak, forks refused $refused"
check "pids limit 16 caps a fork loop" test "$peak" -le 16 -a "$peak" -ge 10 -a "$refused" -gt 0
tepui destroy forky

# 3. cpu.max for 0.5 cpus: a busy loop gets half a core, within 10%, over 3 s.
tepui start --id spin --rootfs "$rootfs" --cpus 0.5 --cpu-hard -- sh -c 'while :; do :; done' >/dev/null
sleep 1
u0=$(awk '$1 == "usage_usec" { print $2 }' "$cg/spin/cpu.stat")
t0=$(date +%s%N)
sleep 3
u1=$(awk '$1 == "usage_usec" { print $2 }' "$cg/spin/cpu.stat")
t1=$(date +%s%N)
share_permille=$(( (u1 - u0) * 1000000 / (t1 - t0) ))
detail="cpu.max $(cat "$cg/spin/cpu.max"), used ${share_permille}/1000 of a core"
check "cpu limit 0.5 holds a busy loop to half a core within 10%" \
    test "$share_permille" -ge 450 -a "$share_permille" -le 550
tepui destroy spin

# 4. update() raises the memory limit of a live container: the container
# waits, then needs 48M; with its 32M limit raised to 128M meanwhile, it
# survives.
sandbox=/var/tmp/sandbox
mkdir -p "$sandbox"
rm -f "$sandbox/result"
tepui start --id grow --rootfs "$rootfs" --mem 32M --sandbox "$sandbox" -- \
    sh -c 'sleep 3; awk "BEGIN { s = sprintf(\"%48000000s\", \"\"); print length(s) }" >result' >/dev/null
before=$(cat "$cg/grow/memory.max")
tepui update grow --mem 128M
after=$(cat "$cg/grow/memory.max")
tepui wait grow 2>/dev/null
detail="memory.max $before -> $after, result '$(cat "$sandbox/result" 2>/dev/null)'"
check "update raises a live container's memory limit" \
    test "$before" = 33554432 -a "$after" = 134217728 -a "$(cat "$sandbox/result" 2>/dev/null)" = 48000000

# 5. recover() re-attaches a container started by an earlier process.
started=$(tepui start --id survivor --rootfs "$rootfs" --mem 64M -- sleep 1000)
pid=${started#survivor }
listed=$(tepui list)
detail="started '$started', a later process lists '$listed'"
check "a later tepui process recovers a running container" test "$listed" = "survivor $pid"
tepui destroy survivor
detail="cgroup dir $(ls -d "$cg/survivor" 2>&1 | head -1), pid $pid $(test -e /proc/$pid && echo alive || echo gone)"
check "destroying the recovered container leaves no cgroup or process" \
    test ! -e "$cg/survivor" -a ! -e "/proc/$pid"

# 6. The device filter: a block device made inside (mknod) or put in the
# rootfs from outside (a node of the guest's first disk) cannot be opened,
# while /dev/null and /dev/urandom work. The node is opened for writing
# but never written.
disk=$(ls /sys/block | grep -v -e '^loop' -e '^zram' -e '^ram' | head -1)
rm -f "$rootfs/hostdisk"
mknod "$rootfs/hostdisk" b $(tr : ' ' <"/sys/block/$disk/dev")
out=$(tepui run --id devices --rootfs "$rootfs" -- sh -c \
    'mknod /tmp/sda b 8 0; echo mknod=$?; head -c 1 /hostdisk >/dev/null; echo read=$?;
     (: >>/hostdisk); echo write=$?; echo x >/dev/null && echo null=ok;
     echo urandom=$(head -c 4 /dev/urandom | wc -c)' 2>&1)
rm -f "$rootfs/hostdisk"
detail="$disk ($(cat "/sys/block/$disk/dev")): $(echo "$out" | tr '\n' ' ')"
check "the device filter denies mknod and opening a host disk, keeps /dev/null and /dev/urandom" \
    test "$(echo "$out" | grep -c -e '^mknod=1$' -e '^read=1$' -e '^write=1$' -e '^null=ok$' -e '^urandom=4$')" = 5 \
        -a "$(echo "$out" | grep -c 'Operation not permitted')" -ge 3

summary
