#!/usr/bin/env bash
# Builds the release binaries and installs them with their man pages, shell completions
# and omd's systemd unit (as root). PREFIX defaults to /usr/local.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || export PATH="$HOME/.cargo/bin:$PATH"
PREFIX=${PREFIX:-/usr/local}
cargo build --release --bins --quiet
TOOLS=(omcluster showmap setpe omckpt mosctl mps mtop migrate mosrun mosmon)
for b in "${TOOLS[@]}"; do install -m 755 "target/release/$b" "$PREFIX/bin/"; done
# openMosix's job wrappers: mosrun -c, mosrun -i, mosrun -h -L.
for w in cpujob iojob nomig; do ln -sf mosrun "$PREFIX/bin/$w"; done
install -d "$PREFIX/sbin" && install -m 755 target/release/omd "$PREFIX/sbin/"
docs=$(mktemp -d)
for b in "${TOOLS[@]}" omd; do OM_GENERATE_DOCS=$docs "target/release/$b"; done
install -d "$PREFIX/share/man/man1" "$PREFIX/share/man/man8"
install -m 644 "$docs"/man/man1/*.1 "$PREFIX/share/man/man1/"
install -m 644 "$docs"/man/man8/*.8 "$PREFIX/share/man/man8/"
install -d "$PREFIX/share/bash-completion/completions" "$PREFIX/share/zsh/site-functions" "$PREFIX/share/fish/vendor_completions.d"
install -m 644 "$docs"/completions/bash/* "$PREFIX/share/bash-completion/completions/"
install -m 644 "$docs"/completions/zsh/* "$PREFIX/share/zsh/site-functions/"
install -m 644 "$docs"/completions/fish/* "$PREFIX/share/fish/vendor_completions.d/"
rm -rf "$docs"
if [ -d /etc/systemd/system ]; then
    sed "s|/usr/local|$PREFIX|g" dist/omd.service > /etc/systemd/system/omd.service
fi
echo "install: binaries, man pages and completions in $PREFIX; omd.service in /etc/systemd/system"
