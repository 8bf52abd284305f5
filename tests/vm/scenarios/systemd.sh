#!/bin/bash
# VM tier, deployment (issue 7): in a Debian 12 guest with systemd 252 as
# PID 1 and pure cgroup v2, tepui is installed as systemd services and its
# tasks outlive `systemctl restart tepui-agent` and a `kill -9` of the
# agent, with their limits. Runs in the guest from the 9p share, which
# holds tepui's Debian package (systemd/deb.sh) and a busybox OCI image
# layout built on the host.
set -u
share=/mnt/share
# check and summary, from the share.
. "$share/check.sh"
# Polls COMMAND... every 0.2 s for up to SECONDS; true once it holds.
wait_for() {
    local seconds=$1
    shift
    local tries=$((seconds * 5))
    while [ "$tries" -gt 0 ]; do
        "$@" && return 0
        sleep 0.2
        tries=$((tries - 1))
    done
    return 1
}
metric() { # NAME: the agent's /metrics/snapshot value
    busybox wget -qO- http://127.0.0.1:5051/metrics/snapshot 2>/dev/null |
        grep -o "\"$1\":[0-9.]*" | cut -d: -f2 | cut -d. -f1
}
show() { systemctl show -p "$2" --value "$1"; }
cgroot=/sys/fs/cgroup/system.slice/tepui-containers.service/containers
work=/var/tmp/scenario
mkdir -p "$work"

echo "guest: $(uname -r), systemd $(systemctl --version | awk 'NR == 1 { print $2 }'), $(stat -fc %T /sys/fs/cgroup) at /sys/fs/cgroup"

# 1. Install the package, enable and start; both daemons report ready
# (Type=notify: active means READY=1 arrived) with a status line.
dpkg -i "$share"/tepui_*.deb >"$work/install.log" 2>&1
detail="$(tail -1 "$work/install.log")"
check "the Debian package installs" sh -c 'dpkg -s tepui | grep -q "Status: install ok installed"'
systemctl enable --now tepui-master tepui-agent >"$work/enable.log" 2>&1
wait_for 60 sh -c 'tepui agents 2>/dev/null | grep -q " true "'
detail="master $(systemctl is-active tepui-master) '$(show tepui-master StatusText)', agent $(systemctl is-active tepui-agent) '$(show tepui-agent StatusText)', holder $(systemctl is-active tepui-containers), failed units: $(systemctl list-units --failed --no-legend | wc -l)"
check "installed units start and report ready through sd_notify" \
    test "$(systemctl is-active tepui-master tepui-agent tepui-containers | sort -u)" = active \
    -a -n "$(show tepui-master StatusText)" -a -n "$(show tepui-agent StatusText)" \
    -a "$(systemctl list-units --failed --no-legend | wc -l)" = 0
detail="$(tepui agents 2>&1 | tail -1)"
check "the agent registered with the master" sh -c 'tepui agents | grep -q " true "'

# 2. Debian's docker-registry on 127.0.0.1:5000, the image pushed there,
# and a task from it with a 64 MiB limit.
# Debian's default config asks for htpasswd credentials: this one serves
# 127.0.0.1 without them.
cat >/etc/docker/registry/config.yml <<'YAML'
version: 0.1
storage:
  filesystem:
    rootdirectory: /var/lib/docker-registry
http:
  addr: 127.0.0.1:5000
YAML
systemctl restart docker-registry
wait_for 30 sh -c 'busybox wget -qO- http://127.0.0.1:5000/v2/ >/dev/null 2>&1'
skopeo copy --quiet --dest-tls-verify=false "oci:$share/busybox:latest" \
    docker://127.0.0.1:5000/busybox:latest >"$work/push.log" 2>&1
detail="$(tail -1 "$work/push.log")"
check "skopeo pushes the busybox image to the guest's registry" \
    sh -c 'busybox wget -qO- http://127.0.0.1:5000/v2/busybox/tags/list | grep -q latest'
echo 'TEPUI_INSECURE_REGISTRIES=127.0.0.1:5000' >>/etc/tepui/agent.env
# Sandboxes of finished runs go quickly here, for scenario 6.
printf 'TEPUI_GC_DELAY=2secs\nTEPUI_DISK_WATCH_INTERVAL=1secs\n' >>/etc/tepui/agent.env
# A lower process cap than the default 4096, for the fork bomb of 3b.
echo 'TEPUI_CONTAINER_PIDS_MAX=256' >>/etc/tepui/agent.env
systemctl restart tepui-agent
wait_for 60 sh -c 'tepui agents 2>/dev/null | grep -q " true "'
out=$(tepui run --image 127.0.0.1:5000/busybox:latest --mem 64 -- \
    sh -c 'echo hello from the registry image; cat /etc/layer3' 2>"$work/run2.err")
code=$?
detail="exit $code, out '$out', $(tail -1 "$work/run2.err")"
check "tepui run --image from the registry prints its output and exits 0" \
    test "$code" = 0 -a "$(echo "$out" | head -1)" = "hello from the registry image"

# 3. Past its memory limit: TASK_FAILED for the memory limitation.
tepui run --image 127.0.0.1:5000/busybox:latest --mem 32 -- \
    awk 'BEGIN { s = "x"; while (1) s = s s }' >/dev/null 2>"$work/run3.err"
code=$?
detail="exit $code, $(grep TASK_FAILED "$work/run3.err")"
check "a task past its memory limit ends TASK_FAILED with the memory reason" \
    sh -c "test $code -ne 0 && grep -q 'TASK_FAILED (REASON_CONTAINER_LIMITATION_MEMORY)' '$work/run3.err'"

# 3b. A fork bomb stays inside its container: pids.max (the agent's
# --container_pids_max) stops it there (busybox sh gives up at the first
# fork the kernel refuses), the guest can still start processes, and the
# task ends; memory.oom.group is set on the way. The bomb is a subshell,
# so that the task's own shell (pid 1 of its pid namespace) outlives it
# and holds the container at the limit for 3 s (exec: no fork needed)
# while it is measured; when the bomb itself was pid 1, the container
# went within moments of reaching the limit and a poll could miss it.
tepui run --image 127.0.0.1:5000/busybox:latest --mem 256 -- \
    sh -c '(i=0; while [ $i -lt 400 ]; do sleep 30 & i=$((i + 1)); done); echo bomb done; exec sleep 3' \
    >"$work/bomb.out" 2>"$work/bomb.err" &
bomb=$!
bomb_cgroup=
found=0
find_bomb() {
    local dir
    for dir in "$cgroot"/*/; do
        found=$(cat "$dir/pids.current" 2>/dev/null || echo 0)
        [ "$found" -ge 200 ] && bomb_cgroup=${dir%/} && return 0
    done
    return 1
}
wait_for 60 find_bomb
# Read at once: when the task's pid 1 ends, the kernel ends every process
# in its pid namespace and the container goes.
pids_max=$(cat "$bomb_cgroup/pids.max" 2>&1)
oom_group=$(cat "$bomb_cgroup/memory.oom.group" 2>&1)
peak=$found
for _ in $(seq 10); do
    now=$(cat "$bomb_cgroup/pids.current" 2>/dev/null || echo 0)
    [ "$now" -gt "$peak" ] && peak=$now
    sleep 0.2
done
guest_forks=no
sh -c 'true' && guest_forks=yes
wait "$bomb"
code=$?
detail="pids.max $pids_max, peak pids.current $peak, memory.oom.group $oom_group, guest forks: $guest_forks, exit $code, out '$(cat "$work/bomb.out")', fork refusals $(grep -c "can't fork" "$work/bomb.err")"
check "a fork bomb is held at the container's pids.max and the guest keeps working" \
    test "$pids_max" = 256 -a "$peak" -le 256 -a "$peak" -ge 200 -a "$oom_group" = 1 \
    -a "$guest_forks" = yes -a "$(grep -c "can't fork" "$work/bomb.err")" -ge 1

# 4 and 5. A long task writes a counter to its sandbox every 100 ms; the
# agent restarts under it (NAME, then the COMMAND that causes it).
survives() { # NAME COMMAND...
    local name=$1
    shift
    local log=$work/$name
    local started=$SECONDS
    tepui run --image 127.0.0.1:5000/busybox:latest --mem 64 -- \
        sh -c 'cd "$MESOS_SANDBOX"; i=0; while [ $i -lt 300 ]; do i=$((i + 1)); echo $i >next; mv next counter; sleep 0.1; done; echo counted $i' \
        >"$log.out" 2>"$log.err" &
    local run=$!
    local counter=
    find_counter() {
        counter=$(find /var/lib/tepui/agent/slaves -name counter -newer "$log.err" 2>/dev/null | head -1)
        [ -n "$counter" ] && [ "$(cat "$counter" 2>/dev/null || echo 0)" -ge 5 ] 2>/dev/null
    }
    wait_for 60 find_counter
    local container
    container=$(basename "$(dirname "$counter")")
    local limit_before
    limit_before=$(cat "$cgroot/$container/memory.max" 2>&1)
    local restarts_before
    restarts_before=$(show tepui-agent NRestarts)
    local since
    since=$(date '+%Y-%m-%d %H:%M:%S')
    "$@"
    # The counter, every 0.3 s while the agent comes back: it must grow
    # at every look.
    local samples="" previous=0 stalled=0
    for _ in $(seq 12); do
        sleep 0.3
        local now
        now=$(cat "$counter" 2>/dev/null || echo 0)
        samples="$samples $now"
        [ "$now" -gt "$previous" ] || stalled=$((stalled + 1))
        previous=$now
    done
    wait_for 60 sh -c 'systemctl is-active -q tepui-agent'
    local reconnected=no
    reconnect_done() {
        [ "$(metric slave/executors_running)" = 1 ] && [ "$(metric slave/executors_registering)" = 0 ]
    }
    wait_for 60 reconnect_done && reconnected=yes
    local limit_after
    limit_after=$(cat "$cgroot/$container/memory.max" 2>&1)
    local cgroup_errors
    cgroup_errors=$(journalctl -q -u tepui-agent --since "$since" | grep -c -e 219/CGROUP -e 'Failed to attach' || true)
    detail="agent $(systemctl is-active tepui-agent), restarts $restarts_before -> $(show tepui-agent NRestarts), cgroup errors $cgroup_errors, counter:$samples, stalls $stalled"
    check "$name: the agent comes back ready without a cgroup error and the task's counter never stops" \
        test "$(systemctl is-active tepui-agent)" = active -a "$cgroup_errors" = 0 -a "$stalled" -le 1
    detail="executor reconnected: $reconnected, memory.max $limit_before -> $limit_after"
    check "$name: the executor reconnects and the memory limit is still set" \
        test "$reconnected" = yes -a "$limit_before" = 67108864 -a "$limit_after" = 67108864
    wait "$run"
    local code=$?
    local finished
    finished=$(grep -c 'is TASK_FINISHED' "$log.err")
    detail="exit $code after $((SECONDS - started)) s, TASK_FINISHED seen $finished times, task said '$(cat "$log.out")'"
    check "$name: the task finishes with exactly one TASK_FINISHED delivered" \
        test "$code" = 0 -a "$finished" = 1 -a "$(cat "$log.out")" = "counted 300"
}
survives "systemctl restart" systemctl restart tepui-agent
kill_agent() {
    local pid
    pid=$(show tepui-agent MainPID)
    kill -9 "$pid"
    # systemd restarts it (Restart=always, RestartSec=1s).
    wait_for 30 sh -c "test \"\$(systemctl show -p MainPID --value tepui-agent)\" != $pid -a \"\$(systemctl show -p MainPID --value tepui-agent)\" != 0"
}
survives "kill -9 of the agent" kill_agent
detail="NRestarts $(show tepui-agent NRestarts)"
check "systemd restarted the killed agent" test "$(show tepui-agent NRestarts)" -ge 1
stop_start() {
    systemctl stop tepui-agent
    sleep 1
    systemctl start tepui-agent
}
survives "systemctl stop, then start" stop_start

# 6. tepui kill: the task ends TASK_KILLED; its cgroup and mounts go at
# once, its sandbox at the next garbage collection.
tepui run --image 127.0.0.1:5000/busybox:latest -- sleep 600 >/dev/null 2>"$work/run6.err" &
run=$!
task=
running_task() {
    task=$(tepui ps 2>/dev/null | awk '$2 == "TASK_RUNNING" { print $1; exit }')
    [ -n "$task" ]
}
wait_for 60 running_task
sandbox=$(find /var/lib/tepui/agent/slaves -mindepth 7 -maxdepth 7 -type d -path "*/executors/*$task*/runs/*" 2>/dev/null | head -1)
container=$(basename "$sandbox")
mounts_before=$(grep -c "$container" /proc/self/mountinfo)
tepui kill "$task" >/dev/null
wait "$run"
code=$?
gone() { [ ! -e "$cgroot/$container" ] && [ "$(grep -c "$container" /proc/self/mountinfo)" = 0 ]; }
wait_for 30 gone
detail="exit $code, $(grep -o 'is TASK_KILLED' "$work/run6.err" | head -1), cgroup $(test -e "$cgroot/$container" && echo left || echo gone), mounts $mounts_before -> $(grep -c "$container" /proc/self/mountinfo)"
check "tepui kill ends the task TASK_KILLED" \
    sh -c "test $code -ne 0 && grep -q 'is TASK_KILLED' '$work/run6.err'"
detail="container '$container'"
check "the killed task leaves no cgroup or mount" sh -c "test -n '$container' && ! test -e '$cgroot/$container' && ! grep -q '$container' /proc/self/mountinfo"
wait_for 30 test ! -e "$sandbox"
detail="sandbox $sandbox $(test -e "$sandbox" && echo left || echo removed)"
check "garbage collection removes the killed task's sandbox" test -n "$sandbox" -a ! -e "$sandbox"

# 7. Removal keeps the work dir; purge removes it.
dpkg -r tepui >"$work/remove.log" 2>&1
detail="units $(ls /usr/lib/systemd/system/tepui-* 2>/dev/null | wc -l), work dir $(test -d /var/lib/tepui/agent && echo kept || echo gone), containers' unit $(systemctl is-active tepui-containers)"
check "removing the package stops tepui and keeps /var/lib/tepui" \
    test "$(ls /usr/lib/systemd/system/tepui-* 2>/dev/null | wc -l)" = 0 -a -d /var/lib/tepui/agent \
    -a "$(systemctl is-active tepui-containers)" != active
dpkg -P tepui >>"$work/remove.log" 2>&1
detail="/var/lib/tepui $(test -e /var/lib/tepui && echo kept || echo gone), /etc/tepui $(test -e /etc/tepui && echo kept || echo gone)"
check "purging the package removes its work and configuration dirs" test ! -e /var/lib/tepui -a ! -e /etc/tepui

summary
