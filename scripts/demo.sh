#!/usr/bin/env bash
# The main job: a 4-node openMosix cluster on this machine, with nodes of different CPU
# capacity, shown working. The cluster stays up afterwards; `omcluster down --name demo`
# removes it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
command -v cargo >/dev/null || export PATH="$HOME/.cargo/bin:$PATH"

echo "demo: building release binaries and installing them (with man pages) under /usr/local"
scripts/install.sh

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "omcluster up: 4 nodes with 1, 0.5, 0.5 and 0.25 of a CPU, each running omd"
omcluster up --name demo --private-fs --nodes 4 --cpu 1,0.5,0.5,0.25 --mem 1G,1G,512M,512M 2>/dev/null ||
    { omcluster down --name demo >/dev/null; omcluster up --name demo --private-fs --nodes 4 --cpu 1,0.5,0.5,0.25 --mem 1G,1G,512M,512M; }

say "every node has its own name, address and /etc/openmosix.map"
for n in 1 2 3 4; do
    omcluster exec --name demo "$n" -- sh -c 'printf "%s  %s  " "$(hostname)" "$(ip -4 -o addr show eth0 | awk "{print \$4}")"; showmap --json | python3 -c "import json,sys; print(len(json.load(sys.stdin)[\"nodes\"]), \"nodes in its map\")"'
done
omcluster exec --name demo 1 -- showmap

say "node 1 reaches every other node over the cluster network"
for n in 2 3 4; do
    omcluster exec --name demo 1 -- ping -c 1 -W 1 "198.18.0.$n" | grep -E 'bytes from|packet loss'
done

say "files are private to a node: node 1 writes /tmp/hello, node 2 cannot see it"
omcluster exec --name demo 1 -- sh -c 'echo "hello from $(hostname)" > /tmp/hello; cat /tmp/hello'
omcluster exec --name demo 2 -- sh -c 'cat /tmp/hello 2>&1 || true'

say "each node is as fast as its share of a CPU: the same busy loop for 3 seconds in each"
cpu_times() { omcluster status --name demo --json | python3 -c 'import json,sys; print(" ".join(str(n["cpu_seconds"]) for n in json.load(sys.stdin)))'; }
before=$(cpu_times)
for n in 1 2 3 4; do
    omcluster exec --name demo "$n" -- timeout 3 sh -c 'while :; do :; done' &
done
wait || true
after=$(cpu_times)
python3 - "$before" "$after" <<'PY'
import sys
before, after = (list(map(float, a.split())) for a in sys.argv[1:3])
quota = [1, 0.5, 0.5, 0.25]
print("NODE  QUOTA  CPU USED BY THE LOOP (this machine has 2 CPUs for all four)")
for i, (b, a) in enumerate(zip(before, after)):
    print(f"{i + 1:<4}  {quota[i]:<5}  {(a - b) / 3:.2f} CPU")
PY
omcluster status --name demo

say "omd: every node knows every node (gossip: one message per second to one random node)"
sleep 3
omcluster exec --name demo 1 -- mosctl status

say "the /proc-style tree of node 2: /run/hpc"
omcluster exec --name demo 2 -- sh -c 'for f in load speed CPUs tmem status; do printf "nodes/4/%-7s %s\n" "$f" "$(cat /run/hpc/nodes/4/$f)"; done'

say "a busy loop in node 3: node 1 sees node 3's load rise, then decay"
omcluster exec --name demo 3 -- timeout 6 sh -c 'while :; do :; done' &
for i in $(seq 1 16); do
    printf "t=%2ds  load of node 3 seen from node 1: %s\n" "$i" "$(omcluster exec --name demo 1 -- mosctl getload 3)"
    sleep 1
done
wait || true

say "balancing: six CPU-bound jobs (bc computing pi) started at node 1 with plain mosrun"
omcluster exec --name demo 1 -- sh -c '
set -e
export BC_LINE_LENGTH=0
mkdir -p /tmp/jobs && cd /tmp/jobs
for j in 1 2 3 4 5 6; do echo "scale=$((2600 + 100 * j)); 4*a(1)" > job$j.bc; done
echo "native runs at node 1 first, for the reference results:"
for j in 1 2 3 4 5 6; do bc -l < job$j.bc > native$j; echo "  job $j: $(tail -c 21 native$j)"; done
echo "now the same jobs with plain mosrun (no node given: the balancer places and moves them):"
for j in 1 2 3 4 5 6; do mosrun bc -l < job$j.bc > moved$j & echo $! > pid$j; done
pids=$(cat pid1 pid2 pid3 pid4 pid5 pid6)
for t in 1 4 8; do
    case $t in 1) sleep 1 ;; 4) sleep 3 ;; *) sleep 4 ;; esac
    echo "after ${t} s, mps as node 1 sees its jobs (NODE = where each runs):"
    mps $pids 2>/dev/null || true
done
echo "why the ones at home stay:"
for p in $pids; do [ "$(mosctl where $p 2>/dev/null)" = 0 ] && echo "  $p: $(cat /run/hpc/$p/cantmove)"; done || true
echo "job 1 moves on to node 4 when asked, then comes home:"
migrate --wait $(cat pid1) 4 || true
migrate --wait $(cat pid1) home || true
mps $pids 2>/dev/null || true
wait
echo "what the balancer did (node 1 log and status):"
grep -h "balancer:" /run/omd/omd.log | sed "s/^.*balancer: /  /"
mosctl status | grep -i "balancer"
echo "results, read at node 1 from the files the jobs wrote (at their home, node 1):"
for j in 1 2 3 4 5 6; do
    if cmp -s native$j moved$j; then echo "  job $j: $(tail -c 21 moved$j)  same as the native run"; else echo "  job $j: DIFFERENT"; exit 1; fi
done
'
echo "node 2 ran guests, but holds none of their files:"
omcluster exec --name demo 2 -- sh -c 'ls /tmp/jobs 2>&1 || true'

cat <<MSG

The cluster "demo" is still up. Try:
  omcluster exec --name demo 3 -- bash        a shell inside node 3 (try mosctl, mps, mtop)
  omcluster exec --name demo 1 -- mtop        node 1's processes, with their node
  omcluster exec --name demo 1 -- mosmon      the cluster monitor (h: help, q: quit)
  omcluster exec --name demo 1 -- mosrun -3 bc -l     a calculator running at node 3
  omcluster status --name demo                its nodes and what they used
  omcluster down --name demo                  remove it
MSG
