//! The check a message must pass before it may leave the server: its archived file, read
//! back from the disk (not from the page cache, where the kernel lets go of it), decodes
//! whole (authenticated first when it is encrypted) into a message whose digest and size
//! are those the journal recorded when it was fetched.

use std::fs::File;
use std::io;

use super::Reason;
use crate::archive::metadata::{HashingReader, MessageMeta};
use crate::codec::{self, fromline, Form};
use crate::keys::Keys;
use crate::os::dir::Dir;

/// Checks the archived copy of `uid` in the folder directory `dir` against `meta`, what
/// the journal recorded of it.
pub fn check(dir: &Dir, uid: u32, meta: Option<&MessageMeta>, keys: Option<&Keys>) -> Result<(), Reason> {
    let Some(meta) = meta.filter(|m| m.archived) else { return Err(Reason::NotArchived) };
    let (Some(digest), Some(size)) = (meta.digest, meta.size) else { return Err(Reason::NoDigest) };
    let (name, form, file) = open(dir, uid, meta.form).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => Reason::Missing,
        _ => Reason::Damaged(crate::error::describe_io(&e)),
    })?;
    crate::probe::before_prune_check(dir, &name, uid);
    crate::os::file::forget_cached(&file);
    let (n, got) = decode(file, form, keys).map_err(|e| Reason::Damaged(crate::error::describe_io(&e)))?;
    if got != digest {
        return Err(Reason::Differs("its digest is not the one recorded when it was fetched".into()));
    }
    if n != size {
        return Err(Reason::Differs(format!("it holds {n} bytes, {size} were fetched")));
    }
    Ok(())
}

/// Opens the file of `uid` (in `form`, else in whichever form there is), never through a
/// symlink.
fn open(dir: &Dir, uid: u32, form: Option<Form>) -> io::Result<(String, Form, File)> {
    let given;
    let forms: &[Form] = match form {
        Some(f) => {
            given = [f];
            &given
        }
        None => &Form::ALL,
    };
    let mut last = io::Error::from(io::ErrorKind::NotFound);
    for &form in forms {
        let name = crate::archive::file_name(uid, form);
        match dir.open_read(&name) {
            Ok(file) => return Ok((name, form, file)),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Decodes the file whole: the message's size and digest (an encrypted file's HMAC tag,
/// checked before anything is decrypted; the SHA-256 of the message otherwise), as the
/// backup computed them.
fn decode(file: File, form: Form, keys: Option<&Keys>) -> io::Result<(u64, [u8; 32])> {
    let (sealed, tag) = codec::open_sealed_tagged(file, form, keys)?;
    let (_, message) = fromline::split_stored(codec::inflated(sealed, form))?;
    let mut hashing = HashingReader { inner: message, hasher: Default::default() };
    let n = crate::codec::drain(&mut hashing)?;
    Ok((n, tag.unwrap_or_else(|| hashing.hasher.finish())))
}
