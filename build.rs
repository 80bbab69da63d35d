//! Passes the target triple to the crate, for `--version --verbose`.

fn main() {
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=SMAILARCHIVER_TARGET={target}");
    println!("cargo:rerun-if-changed=build.rs");
}
