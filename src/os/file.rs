//! Files by path and by handle: opening without following a symlink, making data and
//! directory entries durable, setting a file's modification time, and dropping a file's
//! cached pages.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Opens `path` with `options`, refusing a symlink in its last component (`ELOOP`): the
/// tool's files beneath an archive root are never reached through one.
pub fn open_no_follow(options: &mut OpenOptions, path: &Path) -> io::Result<File> {
    options.custom_flags(libc::O_NOFOLLOW).open(path)
}

/// Makes the data of `files` durable, and nothing else: writeback of every file is started
/// first, then each is synced. On a journaling file system the first sync's commit carries
/// the blocks of all of them, so the others find nothing left to commit; and unlike
/// `syncfs`, the dirty data of other programs on the same file system (a NAS volume's
/// other services) is not flushed with ours, nor waited for.
pub fn sync_data_together<'a>(files: impl Iterator<Item = &'a File>) -> io::Result<()> {
    let files: Vec<&File> = files.collect();
    if files.len() > 1 {
        for f in &files {
            // SAFETY: the descriptor is open for the call's duration, and the call reads
            // no memory of ours. Only a hint: a failure (a file system without it) leaves
            // the work to the sync below.
            unsafe { libc::sync_file_range(f.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
        }
    }
    files.iter().try_for_each(|f| f.sync_data())
}

/// Flushes a directory's entries to disk.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    File::open(dir)?.sync_all()
}

/// Sets `file`'s modification time to `ns` (Unix time in nanoseconds), leaving its access
/// time alone.
pub fn set_mtime(file: &File, ns: u64) -> io::Result<()> {
    let times = [
        libc::timespec { tv_sec: 0, tv_nsec: libc::UTIME_OMIT },
        libc::timespec { tv_sec: (ns / 1_000_000_000) as _, tv_nsec: (ns % 1_000_000_000) as _ },
    ];
    // SAFETY: the descriptor is open for the call's duration and `times` is an array of
    // two initialised timespecs, which is what futimens reads through the pointer.
    if unsafe { libc::futimens(file.as_raw_fd(), times.as_ptr()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Asks the kernel to drop the file's cached pages, so what is read next comes from the
/// disk: the file was synced when it was committed, so its pages are clean and can go.
/// Only advice: where the kernel keeps them anyway, the check reads the cache.
pub fn forget_cached(file: &File) {
    // SAFETY: a live descriptor owned by `file`; the call reads no memory of ours.
    unsafe {
        libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
    }
}
