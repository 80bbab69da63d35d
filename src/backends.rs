//! Which implementation of each costly layer this binary runs on this CPU, as
//! `--version --verbose` shows it, so the owner of a NAS box can see what it gets.
//!
//! The aes and sha2 crates choose at run time, from the CPU's feature flags; the checks
//! here ask the same questions they do (aes 0.8: `aes` on x86, `aes` with the `aes_armv8`
//! build flag on aarch64; sha2 0.10: `sha`, `sse2`, `ssse3`, `sse4.1` on x86, `sha2` on
//! aarch64 with the crate's `asm` feature, which Cargo.toml turns on for aarch64).

/// The target triple this binary was built for.
pub const TARGET: &str = env!("SMAILARCHIVER_TARGET");

/// The deflate implementation (the zlib layer of `.gz` files).
pub const DEFLATE: &str = "miniz_oxide 0.8";

/// The AES implementation the aes crate picks on this CPU.
pub fn aes() -> &'static str {
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    if std::arch::is_x86_feature_detected!("aes") {
        return "aes-ni";
    }
    #[cfg(all(target_arch = "aarch64", aes_armv8))]
    if std::arch::is_aarch64_feature_detected!("aes") {
        return "armv8 crypto extensions";
    }
    "soft (constant-time fixslice)"
}

/// The SHA-256 implementation the sha2 crate picks on this CPU (HMAC and key checks).
pub fn sha256() -> &'static str {
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    if std::arch::is_x86_feature_detected!("sha")
        && std::arch::is_x86_feature_detected!("sse2")
        && std::arch::is_x86_feature_detected!("ssse3")
        && std::arch::is_x86_feature_detected!("sse4.1")
    {
        return "sha-ni";
    }
    #[cfg(target_arch = "aarch64")]
    if std::arch::is_aarch64_feature_detected!("sha2") {
        return "armv8 crypto extensions";
    }
    "soft"
}

/// `name: value` lines for `--version --verbose`, the kernel's landlock ABI last.
pub fn describe() -> Vec<(&'static str, String)> {
    vec![
        ("target", TARGET.to_string()),
        ("aes", aes().to_string()),
        ("sha256", sha256().to_string()),
        ("deflate", format!("{DEFLATE}, default level {}", crate::codec::DEFAULT_LEVEL)),
        ("landlock", crate::sandbox::Support::detect().to_string()),
    ]
}
