# Shared settings of cross/setup, cross/build and cross/test; sourced, not run.
# Everything the cross builds need lives under cross/.tools (git-ignored), so CI can cache
# that one directory and the developers' own target/ is never touched. CROSS_TOOLS_DIR
# moves it: CI, which starts from a fresh clone, points it at a directory that outlives
# the clone, so that later runs on the same machine find the venv, zig's cache of musl
# and compiler-rt builds, and the compiled dependencies.

CROSS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT_DIR="$(cd "$CROSS_DIR/.." && pwd)"
TOOLS_DIR="${CROSS_TOOLS_DIR:-$CROSS_DIR/.tools}"
VENV_DIR="$TOOLS_DIR/venv"
# Build output of the cross builds, separate from target/ so that a cross build and a
# developer's `cargo test` do not wait on each other's lock or evict each other's cache.
CROSS_TARGET_DIR="${CROSS_TARGET_DIR:-$TOOLS_DIR/target}"
# Where finished binaries go (cross/out/TARGET/smailarchiver); packaging/release reads it.
CROSS_OUT="${CROSS_OUT:-$CROSS_DIR/out}"

# Pinned so that a build made today can be made again: cargo-zigbuild drives cargo with
# zig as the C compiler (ring's C and assembly) and linker; the ziglang wheel carries zig
# itself, including musl sources for every target, so no cross gcc or sysroot is needed.
CARGO_ZIGBUILD_VERSION=0.24.1
ZIGLANG_VERSION=0.15.2

# The machine has 2 cores (so does CI): one target at a time, two jobs.
CROSS_JOBS="${CROSS_JOBS:-2}"

# Rust targets, and the emulator and CPU model each one is tested on. The CPU models are
# the oldest cores of the devices each binary is meant for, so an instruction those lack
# would fail the test:
#   x86_64   qemu64: about the x86-64 baseline (SSE2, SSE3; no SSSE3, SSE4, AVX), so
#            nothing newer than an old Atom or Celeron NAS box has is assumed.
#   aarch64  cortex-a53: Raspberry Pi 3, Realtek RTD1296/1619 and most ARM64 NAS boxes.
#   armv7    cortex-a9: Marvell Armada 370/385 NAS boxes (no NEON on some: the target
#            does not assume it).
#   armv5te  arm926: ARMv5TE, like Marvell Kirkwood (Feroceon) in older NAS boxes.
#   mipsel   24KEc: MIPS32r2 without FPU, like MediaTek MT7620/MT7628 routers.
ALL_TARGETS=(
    x86_64-unknown-linux-musl
    aarch64-unknown-linux-musl
    armv7-unknown-linux-musleabihf
    armv5te-unknown-linux-musleabi
    mipsel-unknown-linux-musl
)

# Prints "QEMU-BINARY CPU" for a target.
qemu_for() {
    case "$1" in
        x86_64-unknown-linux-musl) echo "qemu-x86_64-static qemu64" ;;
        aarch64-unknown-linux-musl) echo "qemu-aarch64-static cortex-a53" ;;
        armv7-unknown-linux-musleabihf) echo "qemu-arm-static cortex-a9" ;;
        armv5te-unknown-linux-musleabi) echo "qemu-arm-static arm926" ;;
        mipsel-unknown-linux-musl) echo "qemu-mipsel-static 24KEc" ;;
        *) return 1 ;;
    esac
}

# Whether the rust-std of a target comes prebuilt from rustup. The others are built from
# the rust-src component with -Zbuild-std: mipsel because it is tier 3 (rustup ships no
# std for it at all), armv7 and armv5te because the rustup distribution server this
# machine reaches answers 404 for their rust-std (seen with 1.95.0); building std from
# source works the same everywhere, so they take that path always.
prebuilt_std() {
    case "$1" in
        x86_64-unknown-linux-musl | aarch64-unknown-linux-musl) return 0 ;;
        *) return 1 ;;
    esac
}

is_known_target() {
    local t
    for t in "${ALL_TARGETS[@]}"; do
        [ "$t" = "$1" ] && return 0
    done
    return 1
}

die() {
    echo "${0##*/}: error: $*" >&2
    exit 1
}

# Environment for the cross tools: the venv's cargo-zigbuild and python-zig first, and zig's
# and cargo-zigbuild's caches (musl and compiler-rt built per target, a few hundred MB)
# under cross/.tools so that CI can cache them with the venv.
cross_env() {
    export PATH="$VENV_DIR/bin:$HOME/.cargo/bin:$PATH"
    export XDG_CACHE_HOME="$TOOLS_DIR/cache"
    export ZIG_GLOBAL_CACHE_DIR="$TOOLS_DIR/cache/zig"
}

# Runs `cargo-zigbuild SUBCOMMAND` (zigbuild: a release build; check: type-check only) of
# the release profile for TARGET, with the flags every cross build of TARGET takes, then
# any further arguments. The caller has run cross_env.
cross_cargo() {
    local sub="$1" target="$2"
    shift 2
    local env_name
    env_name="CARGO_TARGET_$(echo "$target" | tr 'a-z-' 'A-Z_')_RUSTFLAGS"
    # Paths of this machine would otherwise end up in the binary (panic locations): map
    # them to neutral names, the most specific last (rustc applies the last that
    # matches), so that the same commit builds to the same bytes in any checkout, with any
    # tools directory, cold cache or warm (packaging/check-reproducible compares).
    local rustflags="--remap-path-prefix=$ROOT_DIR=smailarchiver"
    rustflags+=" --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=cargo"
    rustflags+=" --remap-path-prefix=${RUSTUP_HOME:-$HOME/.rustup}=rustup"
    rustflags+=" --remap-path-prefix=$CROSS_TARGET_DIR=target"
    local args=(--release --locked -j "$CROSS_JOBS" --target "$target")
    local env_extra=()
    if ! prebuilt_std "$target"; then
        # std comes from rust-src. RUSTC_BOOTSTRAP=1 lets the stable toolchain take -Z
        # flags, so no second (nightly) toolchain is needed; panic_abort because the
        # release profile aborts on panic.
        args+=(-Zbuild-std=std,panic_abort)
        env_extra+=(RUSTC_BOOTSTRAP=1)
        # Rust's own musl start files and libc (self-contained linking) only come with a
        # prebuilt rust-std; here zig supplies crt1.o and musl's libc.a instead.
        rustflags+=" -C link-self-contained=no"
    fi
    case "$target" in
        # MIPS: without this the binary comes out static-pie (it relocates itself at
        # start; cross/build refuses that) and 12% bigger, as MIPS position-independent
        # code goes through the GOT (measured: 3.49 MB against 3.11 MB).
        mips*) rustflags+=" -C relocation-model=static" ;;
    esac
    echo "cross: $target: cargo-zigbuild $sub (rustflags: $rustflags)" >&2
    # RUSTFLAGS and CARGO_ENCODED_RUSTFLAGS would replace the per-target flags: drop any
    # from the caller's environment so every build is made the same way.
    env -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS \
        CARGO_TARGET_DIR="$CROSS_TARGET_DIR" "$env_name=$rustflags" "${env_extra[@]}" \
        cargo-zigbuild "$sub" "${args[@]}" "$@"
}

# The package version from Cargo.toml's [package] section.
package_version() {
    awk '
        /^\[/ { in_pkg = ($0 == "[package]") }
        in_pkg && /^version *=/ { gsub(/.*= *"|".*/, ""); print; exit }
    ' "$ROOT_DIR/Cargo.toml"
}
