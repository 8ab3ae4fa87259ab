#!/usr/bin/env bash
# The omhpc module's test: builds (or reuses) the test kernel (kernel.sh), builds the
# module against it and omd, mosctl and mosrun, boots them in qemu (vm.sh) and runs
# vm-test.sh inside: load the module, start omd with a one-node map, compare
# /proc/hpc with mosctl, write admin/block and a process's lock, refuse rmmod under omd,
# stop omd (reads fail with ENOTCONN and one log line), unload, and check dmesg.
# Exit status 0 only if the VM says "OMHPC-VERDICT PASS".
# Usage: kmod/test.sh   (as root; the first run installs packages and builds the kernel)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
t0=$(date +%s)
tree=$("$here/kernel.sh" | tail -1)
t_kernel=$(($(date +%s) - t0))
echo "kmod/test.sh: kernel tree $tree (${t_kernel} s)"
make -s -C "$tree" M="$here/omhpc" LLVM=1 modules
(cd "$here/.." && cargo build -q -p omd -p om-tools --bin omd --bin mosctl --bin mosrun)
target=$(cd "$here/.." && cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
bin=$(mktemp -d /var/tmp/om-kmod-bin.XXXXXX)
trap 'rm -rf "$bin"' EXIT
for b in omd mosctl mosrun; do
    strip -o "$bin/$b" "$target/debug/$b"
done
cp "$here/omhpc/omhpc.ko" "$bin/"
cp "$here/vm-test.sh" "$bin/vm-test"
chmod +x "$bin/vm-test"
OM_VM_TIMEOUT=${OM_VM_TIMEOUT:-300} "$here/vm.sh" "$bin"/{omhpc.ko,omd,mosctl,mosrun,vm-test}
echo "kmod/test.sh: passed in $(($(date +%s) - t0)) s (kernel ready after ${t_kernel} s)"
