#!/usr/bin/env bash
# Builds the Debian package `openmosix` (omd, the tools, their man pages and completions,
# and omd's systemd unit) into target/debian/, with dpkg-deb. Run as root or not.
#
#   scripts/package.sh [--profile release|dev] [--out DIR]
#
# Install it on every node with `apt install ./openmosix_VERSION_amd64.deb` (README: "A
# cluster of real machines").
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=release
OUT=target/debian
while [ $# -gt 0 ]; do
    case $1 in
    --profile) PROFILE=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    -h | --help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "package: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
if ! command -v dpkg-shlibdeps >/dev/null; then
    [ "$(id -u)" = 0 ] || { echo "package: needs dpkg-dev (apt install dpkg-dev)" >&2; exit 1; }
    . scripts/apt.sh
    apt_need package dpkg-dev
fi

NAME=openmosix
VERSION=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
ARCH=$(dpkg --print-architecture)
stage=$OUT/${NAME}_${VERSION}_$ARCH
rm -rf "$stage"
mkdir -p "$stage/DEBIAN"
stage=$(cd "$stage" && pwd)

DESTDIR=$stage PREFIX=/usr UNITDIR=/lib/systemd/system ZSHDIR=/usr/share/zsh/vendor-completions \
    PROFILE=$PROFILE GZIP_MAN=1 scripts/install.sh >/dev/null
# As dh_strip does: the debug info stays out of the package.
find "$stage/usr/bin" "$stage/usr/sbin" -type f -exec strip --strip-unneeded --remove-section=.comment {} +
doc=$stage/usr/share/doc/$NAME
install -d "$doc"
install -m 644 README.md "$doc/"
gzip -9n "$doc/README.md"
cat > "$doc/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: $NAME
Source: this repository

Files: *
License: GPL-2.0-or-later
 On Debian systems, the full text of the GNU General Public License version 2 can be
 found in /usr/share/common-licenses/GPL-2.
COPYRIGHT

# The shared libraries the binaries use, as Debian's own tools find them.
shlibs=$(mktemp -d)
trap 'rm -rf "$shlibs"' EXIT
mkdir "$shlibs/debian"
printf 'Source: %s\n\nPackage: %s\nArchitecture: any\n' "$NAME" "$NAME" > "$shlibs/debian/control"
depends=$(cd "$shlibs" && dpkg-shlibdeps -O "$stage"/usr/bin/* "$stage"/usr/sbin/* 2>/dev/null |
    sed -n 's/^shlibs:Depends=//p')
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)

cat > "$stage/DEBIAN/control" <<CONTROL
Package: $NAME
Version: $VERSION
Architecture: $ARCH
Maintainer: openMosix, again <openmosix@localhost>
Installed-Size: $size
Depends: $depends
Recommends: fuse3
Suggests: bash-completion
Section: admin
Priority: optional
Description: single-system image clusters: processes migrate to idle nodes
 What openMosix and MOSIX gave Linux clusters, on unmodified kernels: programs start on
 any node and move by themselves to idle or faster nodes, while living at their home node
 in every way anyone can observe. omd runs on every node (systemd unit omd.service); the
 tools are openMosix's: mosrun, migrate, mps, mtop, mosctl, setpe, showmap and the mosmon
 monitor, with /etc/openmosix.map.
CONTROL

echo /etc/default/omd > "$stage/DEBIAN/conffiles"
cat > "$stage/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
    install -d -m 700 /etc/omd
    if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
    if [ ! -e /etc/omd/cluster.key ] || [ ! -e /etc/openmosix.map ]; then
        echo "openmosix: omd starts once /etc/openmosix.map and /etc/omd/cluster.key exist:"
        echo "  omd keygen   (on one node; copy /etc/omd/cluster.key to the others)"
        echo "  then: systemctl enable --now omd"
    fi
fi
POSTINST
cat > "$stage/DEBIAN/prerm" <<'PRERM'
#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
    systemctl stop omd.service || true
    systemctl disable omd.service >/dev/null 2>&1 || true
fi
PRERM
cat > "$stage/DEBIAN/postrm" <<'POSTRM'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
if [ "$1" = purge ]; then rm -rf /etc/omd; fi
POSTRM
chmod 755 "$stage"/DEBIAN/postinst "$stage"/DEBIAN/prerm "$stage"/DEBIAN/postrm
(cd "$stage" && find . \( -path ./DEBIAN -o -path ./etc \) -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) \
    > "$stage/DEBIAN/md5sums"

deb=$OUT/${NAME}_${VERSION}_$ARCH.deb
# xz as Debian's own packages; a dev build (only the tests make one) is big, and gzip
# packs it in a few seconds where xz takes a minute.
if [ "$PROFILE" = dev ]; then compress=-Zgzip; else compress=-Zxz; fi
dpkg-deb --root-owner-group "$compress" --build "$stage" "$deb" >/dev/null
echo "package: $deb ($(du -h "$deb" | cut -f1), $(dpkg-deb -c "$deb" | wc -l) entries; Depends: $depends)"
