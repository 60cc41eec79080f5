#!/bin/sh
# Build a statically linked release binary of `reconcile`.
#
#   packaging/build-static.sh                 for this machine's target (rustc -vV, "host:")
#   TARGET=aarch64-unknown-linux-gnu packaging/build-static.sh     for another one
#
# Prints the binary's path on stdout; build output goes to stderr, so
#   bin=$(packaging/build-static.sh)
# works. A target whose standard library is not installed fails at once,
# before anything is built, with the `rustup target add` line to run.
#
# Static glibc is safe here: reconcile resolves users and groups by reading
# <root>/etc/passwd and <root>/etc/group itself and never calls NSS, so the
# binary runs in an empty chroot and in Debian, Ubuntu and Alpine images alike.
# A cross build (TARGET not the host) also needs a linker for the target, e.g.
# Debian's gcc-aarch64-linux-gnu with
# CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc.
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
rustc=${RUSTC:-rustc}

host=$("$rustc" -vV | sed -n 's/^host: //p')
if [ -z "$host" ]; then
	echo "build-static: fatal: cannot read the host target from '$rustc -vV'" >&2
	exit 111
fi
target=${TARGET:-$host}

# The standard library of the target must be in the toolchain's sysroot;
# cargo would otherwise fail only after building every dependency.
if ! libdir=$("$rustc" --print target-libdir --target "$target" 2>/dev/null); then
	echo "build-static: fatal: $target is not a target rustc knows (rustc --print target-list)" >&2
	exit 100
fi
if ! ls "$libdir"/libstd-*.rlib >/dev/null 2>&1; then
	echo "build-static: fatal: the Rust standard library for $target is not installed; run: rustup target add $target" >&2
	exit 111
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
