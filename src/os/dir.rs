//! Directories held open by descriptor. Names beneath the archive root are resolved one
//! component at a time from the root's descriptor, never following a symlink, and files
//! are created, linked and removed relative to a directory's descriptor: a directory
//! swapped for a symlink (by a neighbour with write access, between a check and a use)
//! cannot send a write outside the root, with or without landlock.

use std::ffi::{CStr, CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

/// Mode of the directories the tool makes: they hold mail.
pub const DIR_MODE: u32 = 0o700;

/// An open directory and the path it was opened by (for messages only).
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

impl Dir {
    /// Opens the directory at `path`, following symlinks in it (the user named it).
    pub fn open(path: &Path) -> io::Result<Dir> {
        let c = c_path(path.as_os_str())?;
        // SAFETY: a valid C string; the descriptor returned is owned below.
        let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) };
        Ok(Dir { fd: owned(fd)?, path: path.to_path_buf() })
    }

    /// The path it was opened by.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the directory `rel` beneath this one: every component a plain name (no `..`,
    /// no root) and a real directory, not a symlink.
    pub fn open_beneath(&self, rel: &Path) -> io::Result<Dir> {
        let mut names = Vec::new();
        for c in rel.components() {
            match c {
                Component::Normal(n) => names.push(n),
                Component::CurDir => {}
                _ => return Err(not_beneath(rel)),
            }
        }
        let mut dir = self.try_clone()?;
        for name in names {
            dir = dir.open_child(name)?;
        }
        Ok(dir)
    }

    /// Opens the directory `name` in this one, refusing a symlink.
    fn open_child(&self, name: &OsStr) -> io::Result<Dir> {
        let c = c_name(name)?;
        // SAFETY: a live descriptor and a valid C string; the result is owned below.
        let fd = unsafe {
            libc::openat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        };
        match owned(fd) {
            Ok(fd) => Ok(Dir { fd, path: self.path.join(name) }),
            // ELOOP: a symlink; ENOTDIR: a file.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR)) => {
                Err(io::Error::other(format!(
                    "{} is not a directory (a symlink or a file): refusing to go through it",
                    self.path.join(name).display()
                )))
            }
            Err(e) => Err(e),
        }
    }

    /// Makes the directory `name` in this one (mode [`DIR_MODE`] whatever the umask)
    /// unless it is there, and opens it; a symlink or a file in its place is an error. A
    /// directory made now is durable when this returns: its entry is synced in this one,
    /// before anything is put in it (POSIX promises nothing otherwise; ext4 and XFS only
    /// happen to commit it with a later sync).
    pub fn make_child(&self, name: &str) -> io::Result<Dir> {
        let (dir, made) = self.make_child_unsynced(name)?;
        if made {
            self.sync()?;
        }
        Ok(dir)
    }

    /// Makes each directory of `names` that is missing here (mode [`DIR_MODE`]), with one
    /// sync of this directory for all of them; returns how many were made. Something else
    /// in a name's place is left for [`Dir::open_beneath`] to refuse.
    pub fn make_children<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> io::Result<usize> {
        let mut made = 0;
        for name in names {
            let c = c_name(OsStr::new(name))?;
            if mkdir(self.fd.as_raw_fd(), &c)? {
                // SAFETY: a live descriptor and a valid C string; the result is closed below.
                let fd = unsafe {
                    libc::openat(
                        self.fd.as_raw_fd(),
                        c.as_ptr(),
                        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                    )
                };
                set_mode(owned(fd)?.as_raw_fd(), DIR_MODE)?;
                made += 1;
            }
        }
        if made > 0 {
            self.sync()?;
        }
        Ok(made)
    }

    /// [`Dir::make_child`] without the sync; true when the directory was made now.
    fn make_child_unsynced(&self, name: &str) -> io::Result<(Dir, bool)> {
        let c = c_name(OsStr::new(name))?;
        let made = mkdir(self.fd.as_raw_fd(), &c)?;
        let dir = self.open_child(OsStr::new(name))?;
        if made {
            // The umask may have taken bits away; none may be added.
            set_mode(dir.fd.as_raw_fd(), DIR_MODE)?;
        }
        Ok((dir, made))
    }

    /// Creates the new file `name` (mode `mode` whatever the umask), never through a
    /// symlink, never over an existing file.
    pub fn create_new(&self, name: &str, mode: u32) -> io::Result<File> {
        let c = c_name(OsStr::new(name))?;
        let flags = libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        // SAFETY: a live descriptor and a valid C string; the result is owned below.
        let fd = unsafe { libc::openat(self.fd.as_raw_fd(), c.as_ptr(), flags, mode as libc::c_uint) };
        let fd = owned(fd)?;
        set_mode(fd.as_raw_fd(), mode)?;
        Ok(File::from(fd))
    }

    /// Opens the existing file `name` for reading and writing, never through a symlink.
    pub fn open_file(&self, name: &str) -> io::Result<File> {
        let c = c_name(OsStr::new(name))?;
        let flags = libc::O_RDWR | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        // SAFETY: a live descriptor and a valid C string; the result is owned below.
        let fd = unsafe { libc::openat(self.fd.as_raw_fd(), c.as_ptr(), flags) };
        Ok(File::from(owned(fd)?))
    }

    /// Opens the existing file `name` for reading only, never through a symlink (what a
    /// read-only sandbox allows).
    pub fn open_read(&self, name: &str) -> io::Result<File> {
        let c = c_name(OsStr::new(name))?;
        let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        // SAFETY: a live descriptor and a valid C string; the result is owned below.
        let fd = unsafe { libc::openat(self.fd.as_raw_fd(), c.as_ptr(), flags) };
        Ok(File::from(owned(fd)?))
    }

    /// Gives the file `name` of this directory the name `to_name` in `to` as well; fails
    /// with `AlreadyExists` when that is taken (nothing is replaced).
    pub fn link(&self, name: &str, to: &Dir, to_name: &str) -> io::Result<()> {
        let (a, b) = (c_name(OsStr::new(name))?, c_name(OsStr::new(to_name))?);
        // SAFETY: live descriptors and valid C strings; flags 0: a symlink is not followed.
        check(unsafe { libc::linkat(self.fd.as_raw_fd(), a.as_ptr(), to.fd.as_raw_fd(), b.as_ptr(), 0) })
    }

    /// Moves the entry `name` of this directory to `to_name` in `to`, replacing a file
    /// there.
    pub fn rename(&self, name: &str, to: &Dir, to_name: &str) -> io::Result<()> {
        let (a, b) = (c_name(OsStr::new(name))?, c_name(OsStr::new(to_name))?);
        // SAFETY: live descriptors and valid C strings.
        check(unsafe { libc::renameat(self.fd.as_raw_fd(), a.as_ptr(), to.fd.as_raw_fd(), b.as_ptr()) })
    }

    /// Removes the file `name` (a symlink itself, never what it points to).
    pub fn remove_file(&self, name: &str) -> io::Result<()> {
        let c = c_name(OsStr::new(name))?;
        // SAFETY: a live descriptor and a valid C string.
        check(unsafe { libc::unlinkat(self.fd.as_raw_fd(), c.as_ptr(), 0) })
    }

    /// Makes the directory's entries durable.
    pub fn sync(&self) -> io::Result<()> {
        #[cfg(test)]
        tests::SYNCED.with(|s| s.borrow_mut().push(self.path.clone()));
        // SAFETY: a live descriptor.
        check(unsafe { libc::fsync(self.fd.as_raw_fd()) })
    }

    /// Calls `each` with the name of every entry but `.` and `..`.
    pub fn for_each_name(&self, mut each: impl FnMut(&OsStr)) -> io::Result<()> {
        // fdopendir takes the descriptor over: give it a copy.
        // SAFETY: a live descriptor; the copy is owned by the stream from here on.
        let copy = unsafe { libc::fcntl(self.fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
        if copy < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `copy` is a directory descriptor we own; on failure it is closed here.
        let stream = unsafe { libc::fdopendir(copy) };
        if stream.is_null() {
            let e = io::Error::last_os_error();
            // SAFETY: fdopendir failed, so `copy` is still ours alone to close.
            unsafe { libc::close(copy) };
            return Err(e);
        }
        // The copy shares its offset with the original: start from the top.
        // SAFETY: `stream` is the live stream fdopendir returned.
        unsafe { libc::rewinddir(stream) };
        let result = loop {
            // readdir reports an error only through errno, which must be cleared first.
            // SAFETY: __errno_location returns this thread's errno, valid for writing.
            unsafe { *libc::__errno_location() = 0 };
            // SAFETY: a live stream; the entry is valid until the next readdir.
            let entry = unsafe { libc::readdir(stream) };
            if entry.is_null() {
                let e = io::Error::last_os_error();
                break if e.raw_os_error().unwrap_or(0) == 0 { Ok(()) } else { Err(e) };
            }
            // SAFETY: d_name is a NUL-terminated string inside the entry.
            let name = unsafe { CStr::from_ptr((*entry).d_name.as_ptr()) };
            let name = OsStr::from_bytes(name.to_bytes());
            if name != "." && name != ".." {
                each(name);
            }
        };
        // SAFETY: the stream is live and closed once (closing `copy` with it).
        unsafe { libc::closedir(stream) };
        result
    }

    /// Another handle on the same directory.
    pub fn try_clone(&self) -> io::Result<Dir> {
        Ok(Dir { fd: self.fd.try_clone()?, path: self.path.clone() })
    }
}

fn owned(fd: RawFd) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor just returned to us by the kernel, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// mkdirat with [`DIR_MODE`]: true when made, false when something is there already.
fn mkdir(dir: RawFd, name: &CStr) -> io::Result<bool> {
    // SAFETY: a live descriptor and a valid C string.
    if unsafe { libc::mkdirat(dir, name.as_ptr(), DIR_MODE as libc::mode_t) } == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.kind() == io::ErrorKind::AlreadyExists {
        Ok(false)
    } else {
        Err(e)
    }
}

fn check(r: libc::c_int) -> io::Result<()> {
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn set_mode(fd: RawFd, mode: u32) -> io::Result<()> {
    // SAFETY: a live descriptor.
    check(unsafe { libc::fchmod(fd, mode as libc::mode_t) })
}

fn c_path(p: &OsStr) -> io::Result<CString> {
    CString::new(OsString::from(p).into_vec()).map_err(|_| io::Error::other("a path with a NUL byte"))
}

/// One plain name: no separator, not `.` or `..`.
fn c_name(name: &OsStr) -> io::Result<CString> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.contains(&b'/') || name == "." || name == ".." {
        return Err(not_beneath(Path::new(name)));
    }
    c_path(name)
}

fn not_beneath(p: &Path) -> io::Error {
    io::Error::other(format!("{} is not a plain name beneath the archive root", p.display()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::cell::RefCell;

    thread_local! {
        /// The directories this thread synced, in order (see [`Dir::sync`]).
        pub(crate) static SYNCED: RefCell<Vec<PathBuf>> = const { RefCell::new(Vec::new()) };
    }

    /// The directories synced by this thread since the last call.
    pub(crate) fn synced() -> Vec<PathBuf> {
        SYNCED.with(|s| std::mem::take(&mut *s.borrow_mut()))
    }

    struct Tmp(PathBuf);
    impl Drop for Tmp {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    fn tmp(name: &str) -> Tmp {
        let p = std::env::temp_dir().join(format!("smailarchiver-dir-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Tmp(p)
    }

    #[test]
    fn symlinks_and_dot_dot_are_never_followed() {
        let (root, outside) = (tmp("root"), tmp("outside"));
        std::os::unix::fs::symlink(&outside.0, root.0.join("link")).unwrap();
        let r = Dir::open(&root.0).unwrap();
        for rel in ["link", "link/x", "../x", "/etc", "a/../b"] {
            assert!(r.open_beneath(Path::new(rel)).is_err(), "{rel}");
        }
        assert!(r.make_child("link").is_err());
        assert!(r.create_new("link", 0o600).is_err());
        assert!(r.create_new("../escape", 0o600).is_err());
        assert_eq!(std::fs::read_dir(&outside.0).unwrap().count(), 0, "nothing written outside");
    }

    #[test]
    fn modes_ignore_the_umask_and_names_are_listed() {
        use std::os::unix::fs::PermissionsExt;
        let root = tmp("modes");
        let r = Dir::open(&root.0).unwrap();
        let sub = r.make_child("a").unwrap();
        assert_eq!(std::fs::metadata(root.0.join("a")).unwrap().permissions().mode() & 0o777, DIR_MODE);
        sub.create_new("f", 0o600).unwrap();
        assert!(sub.create_new("f", 0o600).is_err(), "never over an existing file");
        sub.link("f", &r, "g").unwrap();
        assert_eq!(sub.link("f", &r, "g").unwrap_err().kind(), io::ErrorKind::AlreadyExists);
        let mut names = Vec::new();
        r.for_each_name(|n| names.push(n.to_os_string())).unwrap();
        names.sort();
        assert_eq!(names, ["a", "g"]);
        assert_eq!(r.open_beneath(Path::new("a")).unwrap().path(), root.0.join("a"));
    }

    #[test]
    fn a_new_directory_is_synced_in_its_parent_before_it_is_used() {
        let root = tmp("durable");
        let r = Dir::open(&root.0).unwrap();
        synced();
        let a = r.make_child("a").unwrap();
        assert_eq!(synced(), std::slice::from_ref(&root.0), "the parent is synced once the entry is made");
        r.make_child("a").unwrap();
        assert!(synced().is_empty(), "nothing to sync for a directory that was there");
        assert_eq!(a.make_children(["x", "y", "z"]).unwrap(), 3);
        assert_eq!(synced(), [root.0.join("a")], "one sync for a batch");
        assert_eq!(a.make_children(["x", "w"]).unwrap(), 1);
        assert_eq!(synced(), [root.0.join("a")]);
        assert_eq!(a.make_children(["x"]).unwrap(), 0);
        assert!(synced().is_empty());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(root.0.join("a/w")).unwrap().permissions().mode() & 0o777, DIR_MODE);
    }
}
