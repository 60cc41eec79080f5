#!/bin/sh
# Build a statically linked release binary of `reconcile` for x86_64 glibc.
#
#   packaging/build-static.sh            build, then print the binary's path
#
# Static glibc is safe here: reconcile resolves users and groups by reading
# <root>/etc/passwd and <root>/etc/group itself and never calls NSS, so the
# binary runs in an empty chroot and in Debian, Ubuntu and Alpine images alike.
# Build output goes to stderr; stdout is only the path, for scripts:
#   bin=$(packaging/build-static.sh)
set -eu

target=x86_64-unknown-linux-gnu
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

if command -v rustup >/dev/null 2>&1; then
	if ! rustup target list --installed | grep -qx "$target"; then
		echo "build-static: fatal: rust target $target is not installed (rustup target add $target)" >&2
		exit 111
	fi
fi

# --target keeps RUSTFLAGS away from build scripts and proc-macros, which
# must stay dynamic; only the final binary gets crt-static. The static
# relocation model gives a plain static executable (`file`: "statically
# linked") rather than a static PIE: no loader or relocation code at start.
RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C target-feature=+crt-static -C relocation-model=static" \
	cargo build --release --locked --target "$target" --bin reconcile >&2

target_dir=$(cargo metadata --format-version 1 --no-deps |
	sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
bin="$target_dir/$target/release/reconcile"
if [ ! -x "$bin" ]; then
	echo "build-static: fatal: $bin was not produced" >&2
	exit 111
fi

# Refuse to hand out a binary that needs a dynamic loader.
if command -v file >/dev/null 2>&1; then
	desc=$(file -b "$bin")
	case "$desc" in
	*"dynamically linked"* | *"interpreter"*)
		echo "build-static: fatal: $bin is not static: $desc" >&2
		exit 111
		;;
	esac
fi

echo "$bin"
