#!/usr/bin/env bash
# Boots the test kernel (kmod/kernel.sh) in qemu with software emulation and an initramfs
# made of a static busybox, the files given as arguments (copied to /bin, with the shared
# libraries of those that are dynamically linked) and an init that runs /bin/vm-test if
# present; prints the serial console and exits 0 only if the
# VM printed "OMHPC-VERDICT PASS". The VM is given at most $OM_VM_TIMEOUT seconds (120).
# Usage: kmod/vm.sh [FILE...]
set -euo pipefail
cd "$(dirname "$0")"
tree=$(./kernel.sh | tail -1)
work=$(mktemp -d /var/tmp/om-vm.XXXXXX)
trap 'rm -rf "$work"' EXIT
root="$work/root"
mkdir -p "$root"/{bin,sbin,proc,sys,dev,tmp,run,etc}
cp /bin/busybox "$root/bin/busybox"
for a in sh mount umount cat echo ls insmod rmmod lsmod dmesg sleep grep reboot poweroff \
    mkdir ip ps kill cut head tail tr wc test true false seq timeout date sed id su chmod; do
    ln -sf busybox "$root/bin/$a"
done
for f in "$@"; do
    cp "$f" "$root/bin/"
    # The libraries of a dynamic executable (and its loader), at the same paths.
    if ldd "$f" >/dev/null 2>&1; then
        for lib in $(ldd "$f" | grep -o '/[^ ]*'); do
            mkdir -p "$root$(dirname "$lib")"
            cp -L "$lib" "$root$lib"
        done
    fi
done
cat > "$root/init" <<'INIT'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mount -t tmpfs tmp /tmp
mount -t tmpfs run /run
echo "OMHPC-VM up: $(cat /proc/version)"
if [ -x /bin/vm-test ]; then
    if /bin/vm-test; then echo "OMHPC-VERDICT PASS"; else echo "OMHPC-VERDICT FAIL"; fi
else
    echo "OMHPC-VERDICT PASS"
fi
reboot -f
INIT
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$work/initramfs.cpio.gz"
log="$work/console.log"
timeout "${OM_VM_TIMEOUT:-120}" qemu-system-x86_64 -accel tcg -m 512M -nographic -no-reboot \
    -kernel "$tree/arch/x86/boot/bzImage" -initrd "$work/initramfs.cpio.gz" \
    -append 'console=ttyS0 panic=-1 quiet' </dev/null >"$log" 2>&1 || true
cat "$log"
grep -q "OMHPC-VERDICT PASS" "$log"
