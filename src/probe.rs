//! A probe of the sandbox around a real run, for the integration tests. Right after a run
//! confined itself (or was told not to), [`after_confinement`] tries what the sandbox must
//! refuse, where the test says, and prints one line per attempt on standard error:
//!
//! * `SMAILARCHIVER_PROBE_READ=PATH`: read the file PATH (outside what the run may read);
//! * `SMAILARCHIVER_PROBE_CREATE=PATH`: create the file PATH (outside what it may write);
//! * `SMAILARCHIVER_PROBE_SYMLINK=PATH`: read PATH, a file reached through a symlink planted
//!   where the run may read, pointing outside;
//! * `SMAILARCHIVER_PROBE_CONNECT=PORT`: connect to 127.0.0.1:PORT (not the server's port).
//!
//! A line reads `smailarchiver probe: WHAT TARGET: OUTCOME`, the outcome being `denied`
//! (EACCES, landlock's answer), `allowed`, or the error.
//!
//! And one fault for the tests of verified prune, [`before_prune_check`]:
//! `SMAILARCHIVER_PROBE_DAMAGE_UIDS=UID[,UID...]` changes one byte in the middle of those
//! messages' archived files just before prune reads them back, as a failing disk would
//! after the commit (said in one line on standard error).
//!
//! Only builds with the `probe` feature have it, and only `cargo test` turns that on (the
//! dev-dependency of Cargo.toml): a release binary has no code that touches a path or a
//! port it was not configured for, and neither its command line, its config file nor its
//! environment can make it do so. The probe runs on the main thread after the call that
//! confines it, so it is confined exactly as the run's own code is, including every thread
//! started afterwards; a build whose run skipped the sandbox shows it here.

/// After the run's call to the sandbox: in test builds, the attempts the environment asks
/// for (see the module documentation); in other builds nothing.
pub fn after_confinement() {
    #[cfg(feature = "probe")]
    enabled::run();
}

/// Just before prune reads back the archived file `name` of message `uid` in `dir`: in
/// test builds, the damage the environment asks for (see the module documentation); in
/// other builds nothing.
pub fn before_prune_check(dir: &crate::os::dir::Dir, name: &str, uid: u32) {
    #[cfg(feature = "probe")]
    enabled::damage(dir, name, uid);
    #[cfg(not(feature = "probe"))]
    let _ = (dir, name, uid);
}

#[cfg(feature = "probe")]
mod enabled {
    use std::fmt::Display;
    use std::fs::{self, File};
    use std::io::{self, Write};
    use std::net::{Ipv4Addr, SocketAddr, TcpStream};
    use std::path::PathBuf;
    use std::time::Duration;

    pub fn run() {
        let path = |name: &str| std::env::var_os(name).map(PathBuf::from);
        if let Some(p) = path("SMAILARCHIVER_PROBE_READ") {
            say("read a file outside", p.display(), fs::read(&p).map(drop));
        }
        if let Some(p) = path("SMAILARCHIVER_PROBE_CREATE") {
            say("create a file outside", p.display(), File::create_new(&p).and_then(|mut f| f.write_all(b"probe\n")));
        }
        if let Some(p) = path("SMAILARCHIVER_PROBE_SYMLINK") {
            say("read through a symlink", p.display(), fs::read(&p).map(drop));
        }
        if let Ok(text) = std::env::var("SMAILARCHIVER_PROBE_CONNECT") {
            let connected =
                text.parse::<u16>().map_err(|e| io::Error::other(format!("not a port: {e}"))).and_then(|port| {
                    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
                    TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map(drop)
                });
            say("connect to", format!("127.0.0.1:{text}"), connected);
        }
    }

    pub fn damage(dir: &crate::os::dir::Dir, name: &str, uid: u32) {
        use std::io::{Read, Seek, SeekFrom};
        let Ok(list) = std::env::var("SMAILARCHIVER_PROBE_DAMAGE_UIDS") else { return };
        if !list.split(',').any(|u| u.trim().parse() == Ok(uid)) {
            return;
        }
        let damaged = dir.open_file(name).and_then(|mut f| {
            let middle = f.metadata()?.len() / 2;
            let mut byte = [0u8];
            f.seek(SeekFrom::Start(middle))?;
            f.read_exact(&mut byte)?;
            // Another base64 letter: the file stays well-formed, its content changes.
            byte[0] = if byte[0] == b'A' { b'B' } else { b'A' };
            f.seek(SeekFrom::Start(middle))?;
            f.write_all(&byte)?;
            f.sync_all()
        });
        say("damage the archived file of UID", format!("{uid} ({name})"), damaged);
    }

    fn say(what: &str, target: impl Display, result: io::Result<()>) {
        let outcome = match &result {
            Ok(()) => "allowed".to_string(),
            Err(e) if e.raw_os_error() == Some(libc::EACCES) => "denied".to_string(),
            Err(e) => crate::error::describe_io(e),
        };
        eprintln!("smailarchiver probe: {what} {target}: {outcome}");
    }
}
