#!/bin/sh
# Build the Debian package of s6-reconcile from a staged tree with dpkg-deb.
#
#   packaging/build-deb.sh [OUTDIR]      default OUTDIR: <target dir>/debian
#
# Prints the path of the .deb on stdout (build output goes to stderr).
# Needs cargo, dpkg-deb and gzip; no cargo-deb. Installed paths:
#   /usr/bin/reconcile                                    static binary
#   /usr/share/man/man8/reconcile.8.gz                    man page (from clap)
#   /usr/share/doc/s6-reconcile/examples/config.yaml      documented config
#   /usr/share/doc/s6-reconcile/copyright
#   /usr/share/s6-reconcile/cont-init.d/99-s6-reconcile   cont-init script
#   /usr/share/s6-reconcile/s6-rc.d/s6-reconcile/...      s6-rc oneshot
#   /usr/share/s6-reconcile/s6-rc.d/user/contents.d/s6-reconcile
# Nothing goes to /etc: copy one of the two init definitions into place
# (see packaging/README-section.md); the package starts nothing by itself.
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

bin=$(packaging/build-static.sh)

# `cargo pkgid` ends in "#<version>" or "#<name>@<version>".
version=$(cargo pkgid | sed 's/.*[#@]//')
case "$version" in
[0-9]*) ;;
*)
	echo "build-deb: fatal: cannot read the version from Cargo.toml (got '$version')" >&2
	exit 111
	;;
esac
# Debian orders 1.0.0~rc1 before 1.0.0; SemVer writes 1.0.0-rc1.
debversion=$(printf '%s' "$version" | sed 's/-/~/')
arch=amd64

target_dir=$(cargo metadata --format-version 1 --no-deps |
	sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
outdir=${1:-$target_dir/debian}
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)

stage=$(mktemp -d "${TMPDIR:-/tmp}/s6-reconcile-deb.XXXXXX")
trap 'rm -rf "$stage"' EXIT
trap 'exit 130' INT TERM
root="$stage/s6-reconcile_${debversion}_$arch"
umask 022

install -d "$root/DEBIAN" "$root/usr/bin" "$root/usr/share/man/man8" \
	"$root/usr/share/doc/s6-reconcile/examples" \
	"$root/usr/share/s6-reconcile/cont-init.d" \
	"$root/usr/share/s6-reconcile/s6-rc.d/s6-reconcile/dependencies.d" \
	"$root/usr/share/s6-reconcile/s6-rc.d/user/contents.d"

install -m 0755 "$bin" "$root/usr/bin/reconcile"

cargo run --quiet --locked --example gen-man -- "$stage/reconcile.8" >&2
gzip -9n <"$stage/reconcile.8" >"$root/usr/share/man/man8/reconcile.8.gz"
chmod 0644 "$root/usr/share/man/man8/reconcile.8.gz"

install -m 0644 packaging/config.yaml "$root/usr/share/doc/s6-reconcile/examples/config.yaml"
cat >"$root/usr/share/doc/s6-reconcile/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: s6-reconcile

Files: *
License: ISC
 Permission to use, copy, modify, and/or distribute this software for any
 purpose with or without fee is hereby granted, provided that the above
 copyright notice and this permission notice appear in all copies.
 .
 THE SOFTWARE IS PROVIDED "AS IS" AND THE AUTHOR DISCLAIMS ALL WARRANTIES
 WITH REGARD TO THIS SOFTWARE INCLUDING ALL IMPLIED WARRANTIES OF
 MERCHANTABILITY AND FITNESS. IN NO EVENT SHALL THE AUTHOR BE LIABLE FOR
 ANY SPECIAL, DIRECT, INDIRECT, OR CONSEQUENTIAL DAMAGES OR ANY DAMAGES
 WHATSOEVER RESULTING FROM LOSS OF USE, DATA OR PROFITS, WHETHER IN AN
 ACTION OF CONTRACT, NEGLIGENCE OR OTHER TORTIOUS ACTION, ARISING OUT OF
 OR IN CONNECTION WITH THE USE OR PERFORMANCE OF THIS SOFTWARE.
COPYRIGHT
chmod 0644 "$root/usr/share/doc/s6-reconcile/copyright"

install -m 0755 packaging/cont-init.d/99-s6-reconcile \
	"$root/usr/share/s6-reconcile/cont-init.d/99-s6-reconcile"
install -m 0644 packaging/s6-rc.d/s6-reconcile/type packaging/s6-rc.d/s6-reconcile/up \
	"$root/usr/share/s6-reconcile/s6-rc.d/s6-reconcile/"
install -m 0644 packaging/s6-rc.d/s6-reconcile/dependencies.d/base \
	"$root/usr/share/s6-reconcile/s6-rc.d/s6-reconcile/dependencies.d/base"
install -m 0644 packaging/s6-rc.d/user/contents.d/s6-reconcile \
	"$root/usr/share/s6-reconcile/s6-rc.d/user/contents.d/s6-reconcile"

installed_size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<CONTROL
Package: s6-reconcile
Version: $debversion
Architecture: $arch
Maintainer: ${DEB_MAINTAINER:-s6-reconcile developers <s6-reconcile@localhost>}
Installed-Size: $installed_size
Section: admin
Priority: optional
Description: boot-time oneshot that reconciles an s6-overlay supervision tree
 reconcile runs once at container boot, from cont-init or as an s6-rc
 oneshot. It opens the static services' supervise/ and event/ trees to one
 unprivileged user, lets that user reach the scandir, and restores the
 per-profile service slots that the persistent volume declares.
 .
 The binary is statically linked and has no dependencies. Example init
 definitions are in /usr/share/s6-reconcile/.
CONTROL

deb="$outdir/s6-reconcile_${debversion}_$arch.deb"
dpkg-deb --root-owner-group --build "$root" "$deb" >&2
echo "$deb"
