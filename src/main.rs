//! The `smailarchiver` command: the library's command line, and the allocator's setting.

#![deny(clippy::undocumented_unsafe_blocks)]

fn main() {
    // glibc gives each thread that allocates an arena of its own; the codec threads come
    // and go with messages, and their arenas' free pages stay resident. Two arenas keep
    // the peak RSS of a -z -e backup about a MiB lower (musl builds have no arenas).
    // The mmap threshold is left to move: fixed at 128 KiB it kept the codec's buffers off
    // the heap, but mapped and faulted them in again for every message (-z -e: 20% more
    // CPU, docs/BENCHMARKS.md "Many folders").
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets an allocator parameter; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
    let code = smailarchiver::cli::run::main(std::env::args_os().skip(1));
    std::process::exit(code);
}
