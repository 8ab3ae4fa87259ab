#!/bin/sh
# Runs inside the test VM as /bin/vm-test (kmod/test.sh puts it there with omhpc.ko,
# omd, mosctl and mosrun). Exit status 0 = every check passed. Each step prints
# "OMHPC-STEP", each failure "OMHPC-FAIL <why>".
set -u
PATH=/bin:/sbin
fail() {
    echo "OMHPC-FAIL $*"
    [ -f /tmp/omd.log ] && sed 's/^/omd.log: /' /tmp/omd.log | tail -20
    dmesg | tail -20 | sed 's/^/dmesg: /'
    exit 1
}
step() { echo "OMHPC-STEP $*"; }
# until SECONDS COMMAND...: retries COMMAND every 0.2 s until it succeeds.
until_ok() {
    n=$(($1 * 5))
    shift
    while [ "$n" -gt 0 ]; do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.2
        n=$((n - 1))
    done
    return 1
}

ip link set lo up || fail "no loopback"
mkdir -p /etc/omd /run/omd /var/log
echo "1 127.0.0.1 1" >/etc/openmosix.map
omd keygen --out /etc/omd/cluster.key >/dev/null 2>&1 || fail "omd keygen"

step "load the module"
insmod /bin/omhpc.ko || fail "insmod omhpc.ko"
[ -c /dev/hpc ] || fail "no /dev/hpc after insmod"
[ -d /proc/hpc ] || fail "no /proc/hpc after insmod"

step "start omd with a one-node map"
omd --foreground --node 1 --speed 10000 >/tmp/omd.log 2>&1 &
omd=$!
until_ok 60 test -e /proc/hpc/nodes/1/load || fail "omd did not fill /proc/hpc within 60 s"
until_ok 10 grep -q "serving /proc/hpc through /dev/hpc" /tmp/omd.log || fail "omd does not say it serves /dev/hpc"
grep -qs " /run/hpc " /proc/mounts && fail "omd mounted FUSE although /dev/hpc exists"
ls /proc/hpc | tr '\n' ' ' | sed 's/^/tree: /'
echo

step "nodes/1/load matches mosctl getload"
same_load() {
    a=$(cat /proc/hpc/nodes/1/load) || return 1
    b=$(mosctl getload 1) || return 1
    echo "load: /proc/hpc says '$a', mosctl says '$b'"
    [ -n "$a" ] && [ "$a" = "$b" ]
}
# The load can change between the two reads: they must agree within a few tries.
until_ok 10 same_load || { same_load; fail "nodes/1/load differs from mosctl getload"; }
echo "load: /proc/hpc/nodes/1/load and mosctl getload 1 both say $a"

step "admin/block is seen by mosctl status"
[ "$(cat /proc/hpc/admin/block)" = 0 ] || fail "admin/block is not 0 at start"
echo 1 >/proc/hpc/admin/block || fail "cannot write admin/block"
[ "$(cat /proc/hpc/admin/block)" = 1 ] || fail "admin/block did not become 1"
mosctl status | grep "Settings: block" >/dev/null || { mosctl status; fail "mosctl status does not show block"; }
echo 0 >/proc/hpc/admin/block || fail "cannot clear admin/block"
mosctl status | grep "Settings: none" >/dev/null || { mosctl status; fail "mosctl status still shows block"; }
echo 7 >/proc/hpc/admin/block 2>/dev/null && fail "admin/block took 7"

step "a mosrun'd process gets /proc/hpc/PID"
mosrun -h sleep 600 &
job=$!
until_ok 20 test -e "/proc/hpc/$job/where" || fail "/proc/hpc/$job/ did not appear"
[ "$(cat "/proc/hpc/$job/where")" = 0 ] || fail "where of $job is not 0"
[ "$(cat "/proc/hpc/$job/lock")" = 1 ] || fail "lock of $job (mosrun -h) is not 1"
echo 0 >"/proc/hpc/$job/lock" || fail "cannot write lock"
[ "$(cat "/proc/hpc/$job/lock")" = 0 ] || fail "lock did not become 0"
echo 1 >"/proc/hpc/$job/lock" || fail "cannot write lock back"
[ "$(cat "/proc/hpc/$job/lock")" = 1 ] || fail "lock did not become 1 again"
ls -ln "/proc/hpc/$job/" | sed 's/^/pid dir: /'
kill "$job"
wait "$job" 2>/dev/null
until_ok 10 test ! -e "/proc/hpc/$job" || fail "/proc/hpc/$job stayed after the process ended"

step "a user's process: its files are the user's, admin files are not"
echo "root:x:0:0::/:/bin/sh" >/etc/passwd
echo "user:x:1000:1000::/tmp:/bin/sh" >>/etc/passwd
echo "root:x:0:" >/etc/group
su -s /bin/sh user -c 'exec mosrun -h sleep 600' &
ujob=$!
# su may run the job as its child or exec it: find the sleep by its owner.
upid=""
find_upid() {
    for p in $(ps -o pid,user,comm | grep -E "(1000|user) +sleep" | cut -c1-6); do upid=$p; done
    [ -n "$upid" ] && test -e "/proc/hpc/$upid/lock"
}
until_ok 20 find_upid || { ps -o pid,user,comm; fail "the user's process got no /proc/hpc/PID"; }
ls -ln "/proc/hpc/$upid/lock" | grep -q " 1000 " || { ls -ln "/proc/hpc/$upid/"; fail "/proc/hpc/$upid/lock is not owned by uid 1000"; }
su -s /bin/sh user -c "echo 0 > /proc/hpc/$upid/lock" || fail "the owner cannot write its lock"
[ "$(cat "/proc/hpc/$upid/lock")" = 0 ] || fail "the owner's lock write did not take"
su -s /bin/sh user -c "echo 1 > /proc/hpc/admin/block" 2>/dev/null && fail "a user could write admin/block"
[ "$(cat /proc/hpc/admin/block)" = 0 ] || fail "admin/block changed by a user"
kill "$upid" "$ujob" 2>/dev/null
wait "$ujob" 2>/dev/null

step "readers during tree changes: no error but a vanished process, no hang"
# Three readers for 4 s while processes come under control and end (the tree changes
# every second); each read must succeed or find its process gone (ENOENT).
reader() { # reader NAME FILE...
    name=$1
    shift
    end=$(($(date +%s) + 4))
    while [ "$(date +%s)" -lt "$end" ]; do
        for f in "$@"; do
            if out=$(timeout 10 cat "$f" 2>&1); then
                echo ok >>/tmp/reads-$name
            else
                case "$out" in
                    *"No such file"*) echo gone >>/tmp/reads-$name ;;
                    *) echo "$name: $f: $out" >>/tmp/reader-errors ;;
                esac
            fi
        done
    done
}
rm -f /tmp/reader-errors
jobs=""
for i in 4 5 6 7 8; do
    mosrun -h sleep "$i" &
    jobs="$jobs $!"
done
listed() { [ "$(ls /proc/hpc | grep -cE '^[0-9]+$')" -ge 3 ]; }
until_ok 10 listed || fail "the processes got no directories"
pids=$(ls /proc/hpc | grep -E '^[0-9]+$' | tr '\n' ' ')
files=""
for p in $pids; do files="$files /proc/hpc/$p/where /proc/hpc/$p/lock"; done
reader r1 /proc/hpc/nodes/1/load $files &
r1=$!
reader r2 $files /proc/hpc/admin/block &
r2=$!
reader r3 /proc/hpc/nodes/1/status $files &
r3=$!
wait $r1 $r2 $r3
[ -s /tmp/reader-errors ] && { cat /tmp/reader-errors; fail "readers got errors"; }
echo "reads: $(cat /tmp/reads-* | grep -c ok) answered, $(cat /tmp/reads-* | grep -c gone) of processes gone"
wait $jobs
until_ok 10 sh -c '! ls /proc/hpc | grep -qE "^[0-9]+$"' || fail "process directories stayed"

step "omd restarts: the new one takes over the device"
kill "$omd"
wait "$omd" 2>/dev/null
omd --foreground --node 1 --speed 10000 >/tmp/omd.log 2>&1 &
omd=$!
until_ok 30 grep -q "serving /proc/hpc through /dev/hpc" /tmp/omd.log || fail "a restarted omd did not take /dev/hpc"
until_ok 10 same_load || fail "the tree does not work after omd restarted"
[ "$(dmesg | grep -c 'omhpc: omd connected')" = 2 ] || fail "expected two connections in the log"

step "unloading is refused while omd is connected"
rmmod omhpc 2>/dev/null && fail "rmmod succeeded under omd"
grep -q "^omhpc " /proc/modules || fail "the module went away"
# (The load moves between the two reads: compare until they agree.)
until_ok 10 same_load || fail "the tree stopped working after the refused rmmod"

step "stop omd: reads fail cleanly"
kill "$omd"
wait "$omd" 2>/dev/null
dmesg | grep -q "omhpc: omd disconnected" || fail "the module did not see omd go"
# Once per time omd is gone, whatever reads come: a read in the gap of the restart above
# may have logged one already.
n0=$(dmesg | grep -c "omhpc: omd is not connected")
t0=$(date +%s)
out=$(timeout 10 cat /proc/hpc/nodes/1/load 2>&1) && fail "a read without omd succeeded: $out"
echo "read without omd: $out"
echo "$out" | grep -q "not connected" || fail "a read without omd did not say ENOTCONN: $out"
timeout 10 cat /proc/hpc/admin/block >/dev/null 2>&1 && fail "a second read without omd succeeded"
[ $(($(date +%s) - t0)) -le 2 ] || fail "reads without omd took over 2 s"
n=$(($(dmesg | grep -c "omhpc: omd is not connected") - n0))
[ "$n" = 1 ] || fail "expected one 'not connected' log line for two reads, found $n"

step "raw messages on /dev/hpc: a bad tree is refused whole, a good one replaces the tree"
# Tree (kind 4) holding only the file a/b (mode 0100444): its directory is not listed.
# (Written by cat, in one write, which names the error it gets.)
printf 'HPC1\002\000\004\000\000\000\000\000\013\000\000\000\044\201\000\000\000\000\003\000a/b' >/tmp/bad
cat /tmp/bad >/dev/hpc 2>/tmp/err && fail "a tree with an unlisted directory was taken"
grep -q "Invalid argument" /tmp/err || fail "a bad tree was not refused with EINVAL: $(cat /tmp/err)"
[ -e /proc/hpc/nodes/1/load ] || fail "a refused tree changed the tree"
# Tree holding only the directory x (mode 040555): everything else goes.
printf 'HPC1\002\000\004\000\000\000\000\000\011\000\000\000\155\101\000\000\000\000\001\000x' >/tmp/good
cat /tmp/good >/dev/hpc 2>/tmp/err || fail "a good tree was refused: $(cat /tmp/err)"
[ -d /proc/hpc/x ] || fail "the new tree's directory is missing"
[ "$(ls /proc/hpc)" = x ] || fail "the old entries stayed: $(ls /proc/hpc)"

step "unload"
rmmod omhpc || fail "rmmod after omd stopped"
[ -e /proc/hpc ] && fail "/proc/hpc stayed after rmmod"
[ -e /dev/hpc ] && fail "/dev/hpc stayed after rmmod"

step "dmesg is clean"
dmesg | grep "omhpc" | sed 's/^/dmesg: /'
if dmesg | grep -E "WARNING|BUG|Oops|refcount_t|general protection|Call Trace|suspected memory leak"; then
    fail "kernel log has warnings"
fi
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
if [ -e /sys/kernel/debug/kmemleak ]; then
    # kmemleak reports only objects older than 5 s: let the module's be.
    sleep 6
    echo scan >/sys/kernel/debug/kmemleak
    sleep 1
    echo scan >/sys/kernel/debug/kmemleak
    leaks=$(cat /sys/kernel/debug/kmemleak)
    [ -z "$leaks" ] || { echo "$leaks"; fail "kmemleak reports leaks"; }
    echo "kmemleak: no leaks"
fi
echo "OMHPC-ALL-CHECKS-PASSED"
