#!/bin/sh
# Build the Debian package of s6-reconcile from a staged tree with dpkg-deb.
#
#   packaging/build-deb.sh [OUTDIR]      default OUTDIR: <target dir>/debian
#   TARGET=aarch64-unknown-linux-gnu packaging/build-deb.sh     another architecture
#
# Prints the path of the .deb on stdout (build output goes to stderr).
# Needs cargo, dpkg-deb, dpkg and gzip; no cargo-deb. The architecture is
# `dpkg --print-architecture`, or the Debian name of $TARGET when set.
#
# Reproducible: every file's time is SOURCE_DATE_EPOCH (default: the time
# of the last git commit), entries are sorted and owned by root:root, and
# the control archive has md5sums, so two builds of one commit are
# byte-identical. Installed paths:
#   /usr/bin/reconcile                                    static binary
#   /usr/share/man/man8/reconcile.8.gz                    man page (from clap)
#   /usr/share/doc/s6-reconcile/examples/config.yaml      documented config
#   /usr/share/doc/s6-reconcile/copyright
#   /usr/share/s6-reconcile/cont-init.d/99-s6-reconcile   cont-init script
#   /usr/share/s6-reconcile/s6-rc.d/s6-reconcile/...      s6-rc oneshot
#   /usr/share/s6-reconcile/s6-rc.d/s6-reconcile-runtime/...
#                                 s6-rc longrun: runtime passes (docs/runtime.md)
#   /usr/share/s6-reconcile/user-bundles.d/user/contents.d/s6-reconcile{,-runtime}
#                                 user bundle entries, s6-overlay 3.2.3.1 and later
#   /usr/share/s6-reconcile/before-3.2.3.1/s6-rc.d/user/contents.d/s6-reconcile{,-runtime}
#                                 the same entries for s6-overlay 3.0.0.0 to 3.2.3.0
# Nothing goes to /etc: copy one init definition into place (see
# docs/packaging.md, "Debian package"); the package starts nothing by itself.
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

# Debian's name for a Rust target's architecture.
deb_arch() {
	case "$1" in
	x86_64-*) echo amd64 ;;
	aarch64-*) echo arm64 ;;
	i686-* | i586-*) echo i386 ;;
	armv7-*hf | armv7-*eabihf) echo armhf ;;
	arm-*) echo armel ;;
	riscv64*) echo riscv64 ;;
	s390x-*) echo s390x ;;
	powerpc64le-*) echo ppc64el ;;
	*) return 1 ;;
	esac
}
if [ -n "${TARGET:-}" ]; then
	if ! arch=$(deb_arch "$TARGET"); then
		echo "build-deb: fatal: no Debian architecture known for target $TARGET" >&2
		exit 100
	fi
else
	arch=$(dpkg --print-architecture)
fi

if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
	if ! SOURCE_DATE_EPOCH=$(git -C "$repo" log -1 --format=%ct 2>/dev/null); then
		echo "build-deb: fatal: not a git checkout: set SOURCE_DATE_EPOCH to the source's time" >&2
		exit 100
	fi
fi
case "$SOURCE_DATE_EPOCH" in
'' | *[!0-9]*)
	echo "build-deb: fatal: SOURCE_DATE_EPOCH must be seconds since the epoch (got '$SOURCE_DATE_EPOCH')" >&2
	exit 100
	;;
esac
export SOURCE_DATE_EPOCH

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
share="$root/usr/share/s6-reconcile"

install -d "$root/DEBIAN" "$root/usr/bin" "$root/usr/share/man/man8" \
	"$root/usr/share/doc/s6-reconcile/examples" \
	"$share/cont-init.d" \
	"$share/s6-rc.d/s6-reconcile/dependencies.d" \
	"$share/s6-rc.d/s6-reconcile-runtime/dependencies.d" \
	"$share/user-bundles.d/user/contents.d" \
	"$share/before-3.2.3.1/s6-rc.d/user/contents.d"

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

install -m 0755 packaging/cont-init.d/99-s6-reconcile "$share/cont-init.d/99-s6-reconcile"
install -m 0644 packaging/s6-rc.d/s6-reconcile/type packaging/s6-rc.d/s6-reconcile/up \
	packaging/s6-rc.d/s6-reconcile/timeout-up \
	"$share/s6-rc.d/s6-reconcile/"
install -m 0644 packaging/s6-rc.d/s6-reconcile/dependencies.d/base \
	"$share/s6-rc.d/s6-reconcile/dependencies.d/base"
rt=packaging/s6-rc.d/s6-reconcile-runtime
install -m 0644 "$rt/type" "$rt/notification-fd" "$rt/timeout-up" \
	"$share/s6-rc.d/s6-reconcile-runtime/"
install -m 0755 "$rt/run" "$rt/finish" "$share/s6-rc.d/s6-reconcile-runtime/"
install -m 0644 "$rt/dependencies.d/s6-reconcile" \
	"$share/s6-rc.d/s6-reconcile-runtime/dependencies.d/s6-reconcile"
# Empty files, the user bundle entries, in the two places s6-overlay
# versions read them from.
for entry in s6-reconcile s6-reconcile-runtime; do
	install -m 0644 "packaging/user-bundles.d/user/contents.d/$entry" \
		"$share/user-bundles.d/user/contents.d/$entry"
	install -m 0644 "packaging/user-bundles.d/user/contents.d/$entry" \
		"$share/before-3.2.3.1/s6-rc.d/user/contents.d/$entry"
done

# Installed-Size as dpkg-gencontrol counts it (KiB per file, rounded up,
# plus one per directory): from sizes, not from du, whose block counts
# depend on the filesystem the stage is on.
installed_size=$(cd "$root" && find usr \( -type f -printf '%s\n' \) -o \( -type d -printf 'd\n' \) |
	awk '$1 == "d" { n += 1; next } { n += int(($1 + 1023) / 1024) } END { print n }')
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
(cd "$root" && find usr -type f | LC_ALL=C sort | xargs md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/md5sums"

# Every time is the source's: dpkg-deb only clamps newer times to
# SOURCE_DATE_EPOCH (and uses it for the ar members); set them all.
find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

deb="$outdir/s6-reconcile_${debversion}_$arch.deb"
dpkg-deb --root-owner-group --build "$root" "$deb" >&2
echo "$deb"
