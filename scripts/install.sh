#!/usr/bin/env bash
# Builds the binaries and installs them with their man pages, shell completions and omd's
# systemd unit (as root). The demo installs this way; scripts/package.sh stages a Debian
# package the same way.
#
#   PREFIX    where the files go (default /usr/local)
#   DESTDIR   a staging root to install under instead of / (default none)
#   UNITDIR   where omd.service goes (default /etc/systemd/system, if that exists)
#   ZSHDIR    zsh's completions (default $PREFIX/share/zsh/site-functions)
#   PROFILE   cargo's build profile (default release)
#   GZIP_MAN  1 to compress the man pages, as Debian ships them
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || export PATH="$HOME/.cargo/bin:$PATH"
PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
PROFILE=${PROFILE:-release}
ZSHDIR=${ZSHDIR:-$PREFIX/share/zsh/site-functions}
if [ -z "${UNITDIR:-}" ] && [ -d /etc/systemd/system ]; then UNITDIR=/etc/systemd/system; fi
case $PROFILE in dev) bin=target/debug ;; *) bin=target/$PROFILE ;; esac
cargo build --profile "$PROFILE" --workspace --bins --quiet
TOOLS=(omcluster showmap setpe omckpt mosctl mps mtop migrate mosrun mosmon)
root=$DESTDIR$PREFIX
install -d "$root/bin" "$root/sbin"
for b in "${TOOLS[@]}"; do install -m 755 "$bin/$b" "$root/bin/"; done
# openMosix's job wrappers: mosrun -c, mosrun -i, mosrun -h -L.
for w in cpujob iojob nomig; do ln -sf mosrun "$root/bin/$w"; done
install -m 755 "$bin/omd" "$root/sbin/"
docs=$(mktemp -d)
trap 'rm -rf "$docs"' EXIT
for b in "${TOOLS[@]}" omd; do OM_GENERATE_DOCS=$docs "$bin/$b"; done
if [ "${GZIP_MAN:-0}" = 1 ]; then gzip -9n "$docs"/man/man*/*; fi
for s in 1 8; do
    install -d "$root/share/man/man$s"
    install -m 644 "$docs"/man/man$s/* "$root/share/man/man$s/"
done
install -d "$root/share/bash-completion/completions" "$DESTDIR$ZSHDIR" "$root/share/fish/vendor_completions.d"
install -m 644 "$docs"/completions/bash/* "$root/share/bash-completion/completions/"
install -m 644 "$docs"/completions/zsh/* "$DESTDIR$ZSHDIR/"
install -m 644 "$docs"/completions/fish/* "$root/share/fish/vendor_completions.d/"
if [ -n "${UNITDIR:-}" ]; then
    install -d "$DESTDIR$UNITDIR"
    sed "s|/usr/local|$PREFIX|g" dist/omd.service > "$DESTDIR$UNITDIR/omd.service"
    chmod 644 "$DESTDIR$UNITDIR/omd.service"
    # omd's options; an existing one is the operator's.
    [ -e "$DESTDIR/etc/default/omd" ] || install -D -m 644 dist/omd.default "$DESTDIR/etc/default/omd"
fi
echo "install: binaries, man pages and completions in $root${UNITDIR:+; omd.service in $DESTDIR$UNITDIR}"
