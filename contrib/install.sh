#!/bin/sh
# Installs herd the way distributions lay it out:
#
#   $BINDIR/herdd, $BINDIR/herdctl                 BINDIR=$PREFIX/bin
#   $SYSTEMDUNITDIR/herd.service                   $PREFIX/lib/systemd/system
#   $DBUSPOLICYDIR/org.herd.Herd1.conf             $PREFIX/share/dbus-1/system.d
#   $BASHCOMPDIR/herdctl                           $PREFIX/share/bash-completion/completions
#   $ZSHCOMPDIR/_herdctl                           $PREFIX/share/zsh/site-functions
#   $FISHCOMPDIR/herdctl.fish                      $PREFIX/share/fish/vendor_completions.d
#   $MANDIR/man1/herdctl*.1, man5/herd.toml.5, man8/herdd.8    $PREFIX/share/man
#   $SYSCONFDIR/herd/herd.toml (an example; an existing one is kept)   /etc
#
# every path under $DESTDIR (a staging root for packages; empty by default).
# PREFIX defaults to /usr. Binaries are taken from $HERD_BUILD_DIR (default
# target/release, built with `cargo build --release` when missing).
#
#   sudo contrib/install.sh                          # into /usr and /etc
#   DESTDIR=/tmp/stage PREFIX=/usr/local contrib/install.sh
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")

DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr}
BINDIR=${BINDIR:-$PREFIX/bin}
SYSCONFDIR=${SYSCONFDIR:-/etc}
DATADIR=${DATADIR:-$PREFIX/share}
MANDIR=${MANDIR:-$DATADIR/man}
SYSTEMDUNITDIR=${SYSTEMDUNITDIR:-$PREFIX/lib/systemd/system}
DBUSPOLICYDIR=${DBUSPOLICYDIR:-$DATADIR/dbus-1/system.d}
BASHCOMPDIR=${BASHCOMPDIR:-$DATADIR/bash-completion/completions}
ZSHCOMPDIR=${ZSHCOMPDIR:-$DATADIR/zsh/site-functions}
FISHCOMPDIR=${FISHCOMPDIR:-$DATADIR/fish/vendor_completions.d}
HERD_BUILD_DIR=${HERD_BUILD_DIR:-$root/target/release}

if [ ! -x "$HERD_BUILD_DIR/herdd" ] || [ ! -x "$HERD_BUILD_DIR/herdctl" ]; then
    (cd "$root" && cargo build --release --bin herdd --bin herdctl)
fi

# install(1) -D creates the parent directories.
put() { # MODE SOURCE TARGET
    install -D -m "$1" "$2" "$DESTDIR$3"
}

put 755 "$HERD_BUILD_DIR/herdd" "$BINDIR/herdd"
put 755 "$HERD_BUILD_DIR/herdctl" "$BINDIR/herdctl"

# The unit as shipped runs /usr/bin/herdd with /etc/herd/herd.toml.
unit=$(mktemp)
trap 'rm -f "$unit"' EXIT
sed -e "s|/usr/bin/herdd|$BINDIR/herdd|g" -e "s|/etc/herd/|$SYSCONFDIR/herd/|g" \
    "$here/herd.service" >"$unit"
put 644 "$unit" "$SYSTEMDUNITDIR/herd.service"
put 644 "$here/org.herd.Herd1.conf" "$DBUSPOLICYDIR/org.herd.Herd1.conf"

# What `herdctl completions SHELL` prints (a test keeps these current).
put 644 "$here/completions/herdctl.bash" "$BASHCOMPDIR/herdctl"
put 644 "$here/completions/_herdctl" "$ZSHCOMPDIR/_herdctl"
put 644 "$here/completions/herdctl.fish" "$FISHCOMPDIR/herdctl.fish"

for page in "$root"/man/*.[0-9]; do
    section=${page##*.}
    put 644 "$page" "$MANDIR/man$section/$(basename "$page")"
done

# An example config, never over one that is there.
if [ ! -e "$DESTDIR$SYSCONFDIR/herd/herd.toml" ]; then
    put 644 "$here/herd.toml" "$SYSCONFDIR/herd/herd.toml"
fi

echo "herd installed under ${DESTDIR:-/}: $BINDIR, $SYSTEMDUNITDIR, $MANDIR, $SYSCONFDIR/herd"
