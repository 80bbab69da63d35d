#!/usr/bin/env python3
# -*- coding: utf-8 -*-
"""The storage code of the ORIGINAL SMail Archiver 0.5, as a test oracle.

Source: github.com/mart-e/smailarchiver, smailarchiver.py (version 0.5, 2013,
Copyright (C) 2013 Martin Trigaux, MIT license). The functions `encrypt`, `decrypt`,
`load_keys`, `generate_new_keys` and the layer handling of `restore_folder` and
`EmailBackup.fetch_emails` are carried over with their behaviour unchanged, quirks
included (no constant-time compare, no padding check, `data[:-data[-1]]`, PBKDF2 fed the
`str` password, which pycryptodome encodes as Latin-1, while the `.sha` hashes its UTF-8
bytes). Only the IMAP, argparse and printing around them are left out.

Deviation kept to a minimum: the original's `restore_folder` opens every file in text
mode ('r'). Under Python 2 (the original's main target) that yields bytes; under
Python 3 a plain `.mbox` or `.mbox.gz` file comes back as `str`, which the original then
fails to write or decompress (TypeError) whatever wrote the file. So `.enc` files are
read in text mode exactly as the original does (base64 is ASCII), the other forms as
bytes, as Python 2 read them.

Usage:
  original.py decode FILE [FILE ...] [--keys KEYFILE] [--password PW] [--out-dir DIR]
      One FILE without --out-dir: its decoded bytes (the stored message, From-line
      included) go to stdout. With --out-dir: each FILE's bytes go to DIR/BASENAME.
      Exit 0 if all decoded; otherwise each failure is printed as
      `FILE: Type: message` (stderr) and the exit code is 1.
  original.py encode IN OUT [IN OUT ...] --form mbox|mbox.gz|mbox.enc|mbox.gz.enc|auto
                     [--keys KEYFILE] [--password PW] [--add-from-line]
      Stores IN's bytes (which already start with the From-line) in OUT as the original
      would. `auto` takes the form from OUT's suffix. --add-from-line: IN is the raw
      message as IMAP returned it; the From-line is added by fetch_emails()'s code.
  original.py check MANIFEST
      Replays a test-vector manifest (path, sha256, key file, password, outcome), and
      checks expected/N.mbox == From-line + input/N.eml beside it; reports every row
      whose outcome differs. Exit 0 if none.
  original.py restore DIR [--keys KEYFILE] [--password PW] [--out FILE] [--py3-text-mode]
      The original's whole `-r DIR` (restore_folder()), quirks included; see "restore"
      below. Exit 0 when its loop completed: stdout gets `restored N messages to PATH`
      (N = messages written). Exit 1 when the original would raise: stderr gets
      `Type: message` (e.g. `UnboundLocalError: ...`).
  original.py listing DIR
      Prints os.listdir(DIR), one name per line, in the order it returns them (the order
      `restore` and the original take them in).

Exit code 3: pycryptodome is missing. Exit code 2: bad usage.

restore, in detail (restore_folder() of smailarchiver.py, git 1b8c759 = HEAD):
* In the original's order: without KEYFILE on disk, `OSError: Keyfile K does not exists`;
  then load_keys(KEYFILE, PW) (its AssertionError/ValueError/Exception); without DIR,
  `OSError: Folder DIR does not exists`. Then the output file is opened 'wb' (created or
  TRUNCATED) before the first entry is read, so every later failure leaves it empty or
  holding the messages written so far. Output: os.path.abspath(DIR) + '.mbox' (a trailing
  slash of DIR is dropped by abspath); --out FILE replaces that path (for tests).
* The original's `-r` always passes a key file (`-k`, default `keys` in the current
  directory) and demands it even when nothing is encrypted; pass --keys to reproduce that.
  Without --keys (an oracle convenience, not a state of the original) no key file is
  looked for and the keys are None: plain and .gz files restore, an .enc file fails in
  decrypt() with whatever HMAC(None, ...) raises (a TypeError). --password PW stands for
  the answer to the original's `-P` getpass prompt (its only way to take one with `-r`).
* The loop is the original's, line for line: for each name of os.listdir(DIR), in the
  order returned, a name ending in .mbox.enc, .mbox.gz.enc, .mbox.gz or .mbox (nothing
  else is looked at: not the UID, not whether it is a file) is read; .enc names are
  decrypted, .gz names decompressed; then `if file_content:` writes it and b"\n\n";
  then `file_content = ""`. A non-archive FIRST name reaches `if file_content:` before
  the variable was ever assigned: UnboundLocalError, raised by this interpreter itself
  (its wording differs between Python versions), the output left empty. A non-archive name
  later sees the previous "" and is skipped. So is an archive whose content is empty
  (b"" read or decompressed): skipped, no b"\n\n". A directory whose name has an
  archive suffix: IsADirectoryError.
* The original's "Decrypting X"/"Decompressing X" prints are left out (stdout is the one
  summary line).
* Read mode: by default the module's deviation (above): .enc names in text mode as the
  original, .mbox/.mbox.gz as bytes, i.e. what the original does under Python 2.
  --py3-text-mode opens every archive in text mode with the locale's encoding, as the
  original does under Python 3: a plain .mbox then fails with `TypeError: a bytes-like
  object is required, not 'str'` at the write (or UnicodeDecodeError at the read if it
  is not valid in the locale's encoding), a .mbox.gz usually with UnicodeDecodeError at
  the read (zlib data is rarely valid UTF-8), else TypeError in zlib.decompress().
"""

import base64
import hashlib
import os
import sys
import zlib

try:
    # pycrypto (the original's library); pycryptodome keeps this API
    from Crypto import Random
    from Crypto.Cipher import AES
    from Crypto.Hash import SHA256
    from Crypto.Hash.HMAC import HMAC
    from Crypto.Protocol.KDF import PBKDF2
except ImportError:
    sys.stderr.write("pycryptodome is missing: pip install pycryptodome\n")
    sys.exit(3)

AES_BLOCK_SIZE = AES.block_size  # 16
AES_KEY_SIZE = 32  # AES-256 (16, 24, 32)
SIG_SIZE = SHA256.digest_size  # 32


# ---- verbatim from smailarchiver.py 0.5 (print statements removed) -------------------

def encrypt(data, aes_key, hmac_key, enc_key_size=AES_KEY_SIZE, enc_block_size=AES_BLOCK_SIZE, sig_key_size=SIG_SIZE):
    """encrypt data with AES-CBC and sign it with HMAC-SHA256"""
    pad = enc_key_size - len(data) % sig_key_size
    data = data + pad * chr(pad).encode()
    iv_bytes = Random.get_random_bytes(enc_block_size)
    cypher = AES.new(aes_key, AES.MODE_CBC, iv_bytes)
    enc_data = iv_bytes + cypher.encrypt(data)
    sig = HMAC(hmac_key, enc_data, SHA256).digest()
    return enc_data + sig


def decrypt(data, aes_key, hmac_key, enc_key_size=AES_KEY_SIZE, enc_block_size=AES_BLOCK_SIZE, sig_key_size=SIG_SIZE):
    """Verify HMAC-SHA256 signature and decrypt data with AES-CBC"""
    data = base64.b64decode(data)
    sig = data[-sig_key_size:]
    data = data[:-sig_key_size]

    assert HMAC(hmac_key, data, SHA256).digest() == sig, "Invalid data signature"

    iv_bytes = data[:enc_block_size]
    data = data[enc_block_size:]
    cypher = AES.new(aes_key, AES.MODE_CBC, iv_bytes)
    data = cypher.decrypt(data)

    # eg: data = b'...\x03\x03\x03'
    if sys.version > '3':
        # data[-1] = 3, int
        return data[:-data[-1]]
    else:
        # data[-1] = '\x03', str
        return data[:-ord(data[-1])]


def generate_new_keys(key_file="keys", password=None, enc_key_size=AES_KEY_SIZE, sig_key_size=SIG_SIZE):
    """Generate the encryption and signature key (the original also prints them)"""
    rand_bytes = Random.get_random_bytes(enc_key_size + sig_key_size)

    # save the salt/secret
    with open(key_file, 'wb') as f:
        f.write(base64.b64encode(rand_bytes))

    if password:
        # derive the two keys using PBKDF2 and the salt
        enc_key = PBKDF2(password, rand_bytes[:enc_key_size], dkLen=enc_key_size)
        sig_key = PBKDF2(password, rand_bytes[enc_key_size:], dkLen=sig_key_size)
        hash_string = base64.b64encode(SHA256.new(rand_bytes+password.encode()).digest())
        with open(key_file+".sha", 'wb') as f:
            f.write(hash_string)
    else:
        # the keys are the random bytes
        enc_key = rand_bytes[:enc_key_size]
        sig_key = rand_bytes[enc_key_size:]

    return (enc_key, sig_key)


def load_keys(key_file, password=None, enc_key_size=AES_KEY_SIZE, sig_key_size=SIG_SIZE):
    """Load the keys from the specified file

    If a password is specified, the key file contains the salt that is used to
        generate the key using PBKDF2 and the password
    If no password is specified, the key will be the content of the key file
    """

    assert os.path.isfile(key_file), "%s does not exists" % key_file
    with open(key_file, 'r') as f:
        content = f.read()
    try:
        rand_bytes = base64.b64decode(content)
    except TypeError:
        raise ValueError("%s is not a base64 file" % key_file)
    assert len(rand_bytes) == enc_key_size + sig_key_size, "Invalid key size %d bytes" % len(rand_bytes)

    if password:
        # verifiy the password
        if not os.path.isfile(key_file+".sha"):
            raise Exception("No hash file found, can not guarantee the password")
        else:
            hash_string = base64.b64encode(SHA256.new(rand_bytes+password.encode()).digest())
            with open(key_file+".sha", 'r') as f:
                assert f.read().encode() == hash_string, "Hash validation failed"

        # derive the two keys using PBKDF2
        enc_key = PBKDF2(password, rand_bytes[:enc_key_size], dkLen=enc_key_size)
        sig_key = PBKDF2(password, rand_bytes[enc_key_size:], dkLen=sig_key_size)
    else:
        # the keys are the random bytes
        enc_key = rand_bytes[:enc_key_size]
        sig_key = rand_bytes[enc_key_size:]

    return (enc_key, sig_key)


# ---- the per-file layer handling of restore_folder() and fetch_emails() --------------

def restore_file(path, enc_key, sig_key):
    """The body of restore_folder()'s loop for one file, minus the `\\n\\n` it appends"""
    filename = os.path.basename(path)
    file_content = None
    if filename[-9:] == ".mbox.enc" or filename[-12:] == ".mbox.gz.enc":
        with open(path, 'r') as mbox_file:
            file_content = mbox_file.read()
    elif filename[-8:] == ".mbox.gz" or filename[-5:] == ".mbox":
        # Python 2's 'r' (see the module docstring)
        with open(path, 'rb') as mbox_file:
            file_content = mbox_file.read()
    else:
        raise ValueError("%s: not a .mbox[.gz][.enc] file" % filename)

    if filename[-9:] == ".mbox.enc" or filename[-12:] == ".mbox.gz.enc":
        file_content = decrypt(file_content, enc_key, sig_key)

    if filename[-8:] == ".mbox.gz" or filename[-12:] == ".mbox.gz.enc":
        file_content = zlib.decompress(file_content)

    return file_content


def restore_folder(foldername, key_file, passwd=None, out_path=None, py3_text_mode=False):
    """restore_folder() of the original, line for line (see the module docstring).

    Differences: the getpass prompt is replaced by `passwd`; key_file None skips the key
    file (keys None); `out_path` replaces the output path; the prints are left out; the
    read mode of .mbox/.mbox.gz (bytes, as Python 2) unless py3_text_mode. Returns
    (messages written, output path)."""
    enc_key = sig_key = None
    if key_file is not None:
        if not os.path.isfile(key_file):
            raise OSError("Keyfile {} does not exists".format(key_file))
        enc_key, sig_key = load_keys(key_file, passwd)

    if not os.path.isdir(foldername):
        raise OSError("Folder {} does not exists".format(foldername))

    if out_path is None:
        out_path = os.path.abspath(foldername)+'.mbox'  # foo@bar.com/ -> foo@bar.com.mbox
    written = 0
    out_file = open(out_path, 'wb')
    try:
        for filename in os.listdir(foldername):
            if filename[-9:] == ".mbox.enc" or filename[-12:] == ".mbox.gz.enc" or \
                filename[-8:] == ".mbox.gz" or filename[-5:] == ".mbox":
                text = py3_text_mode or filename[-9:] == ".mbox.enc" or filename[-12:] == ".mbox.gz.enc"
                with open(os.path.join(foldername,filename),'r' if text else 'rb') as mbox_file:
                    file_content = mbox_file.read()

            if filename[-9:] == ".mbox.enc" or filename[-12:] == ".mbox.gz.enc":
                file_content = decrypt(file_content, enc_key, sig_key)

            if filename[-8:] == ".mbox.gz" or filename[-12:] == ".mbox.gz.enc":
                file_content = zlib.decompress(file_content)

            if file_content:
                out_file.write(file_content)
                out_file.write(b"\n\n")
                written += 1

            file_content = ""
    finally:
        # the original does not close on error; CPython flushes the file when the process ends
        out_file.close()

    return written, out_path


def add_from_line(email_body):
    """fetch_emails()'s From-line. Without a from: line Python 3 crashes there (a str
    default concatenated to bytes); this uses Python 2's result, `From unknown@unknown`."""
    from_line = b"from:unknown@unknown"
    try:
        from_line = [line for line in email_body[:16384].split(b'\n') if line.lower().startswith(b'from:')][0].strip()
    except IndexError:
        pass

    return b"From "+from_line[5:].strip()+b"\n"+email_body


def store(email_body, compress, encrypt_, enc_key, sig_key):
    """What fetch_emails() does to `b"From ..." + b"\\n" + message` before writing it"""
    if compress:
        email_body = zlib.compress(email_body)

    if encrypt_:
        email_body = base64.b64encode(encrypt(email_body, enc_key, sig_key))

    return email_body


# ---- command line ---------------------------------------------------------------------

FORMS = {
    "mbox": (False, False),
    "mbox.gz": (True, False),
    "mbox.enc": (False, True),
    "mbox.gz.enc": (True, True),
}


def form_of(path):
    for suffix in ("mbox.gz.enc", "mbox.enc", "mbox.gz", "mbox"):
        if path.endswith("." + suffix):
            return suffix
    raise ValueError("%s: no .mbox[.gz][.enc] suffix" % path)


def describe(exc):
    t = type(exc)
    name = t.__qualname__ if t.__module__ == "builtins" else "%s.%s" % (t.__module__, t.__qualname__)
    return "%s: %s" % (name, exc)


def usage(msg):
    sys.stderr.write("original.py: %s\n%s" % (msg, __doc__[__doc__.index("Usage:"):]))
    sys.exit(2)


def parse(argv, options, flags=()):
    """Splits argv into positionals, the given --options (each takes a value) and flags"""
    positional, values = [], {}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in flags:
            values[a] = True
            i += 1
        elif a in options:
            if i + 1 >= len(argv):
                usage("%s needs a value" % a)
            values[a] = argv[i + 1]
            i += 2
        elif a.startswith("--"):
            usage("unknown option %s" % a)
        else:
            positional.append(a)
            i += 1
    return positional, values


def keys_from(values):
    """The keys as the original's restore/backup get them; (None, None) without --keys"""
    if "--keys" not in values:
        return None, None
    return load_keys(values["--keys"], values.get("--password"))


def cmd_decode(argv):
    files, values = parse(argv, ("--keys", "--password", "--out-dir"))
    if not files:
        usage("decode needs a FILE")
    out_dir = values.get("--out-dir")
    if out_dir is None and len(files) != 1:
        usage("several FILEs need --out-dir")
    try:
        enc_key, sig_key = keys_from(values)
    except Exception as e:
        sys.stderr.write("%s: %s\n" % (values["--keys"], describe(e)))
        return 1
    failed = 0
    for path in files:
        try:
            data = restore_file(path, enc_key, sig_key)
        except Exception as e:
            sys.stderr.write("%s: %s\n" % (path, describe(e)))
            failed += 1
            continue
        if out_dir is None:
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        else:
            with open(os.path.join(out_dir, os.path.basename(path)), 'wb') as f:
                f.write(data)
    return 1 if failed else 0


def cmd_encode(argv):
    paths, values = parse(argv, ("--keys", "--password", "--form"), ("--add-from-line",))
    if not paths or len(paths) % 2:
        usage("encode needs IN OUT pairs")
    form = values.get("--form")
    if form != "auto" and form not in FORMS:
        usage("--form must be one of %s or auto" % ", ".join(FORMS))
    try:
        enc_key, sig_key = keys_from(values)
    except Exception as e:
        sys.stderr.write("%s: %s\n" % (values["--keys"], describe(e)))
        return 1
    for src, dst in zip(paths[0::2], paths[1::2]):
        try:
            compress, encrypt_ = FORMS[form_of(dst) if form == "auto" else form]
            if encrypt_ and enc_key is None:
                raise ValueError("encryption needs --keys")
            with open(src, 'rb') as f:
                email_body = f.read()
            if "--add-from-line" in values:
                email_body = add_from_line(email_body)
            email_body = store(email_body, compress, encrypt_, enc_key, sig_key)
            with open(dst, 'wb') as f:
                f.write(email_body)
        except Exception as e:
            sys.stderr.write("%s: %s\n" % (src, describe(e)))
            return 1
    return 0


def cmd_check(argv):
    """Replays MANIFEST rows: path, sha256, key file, password, outcome (TAB-separated)"""
    if len(argv) != 1:
        usage("check needs MANIFEST")
    manifest = argv[0]
    base = os.path.dirname(os.path.abspath(manifest))
    rows = mismatches = 0
    with open(manifest, 'r', encoding='utf-8') as f:
        lines = [row.rstrip("\n") for row in f if row.strip() and not row.startswith("#")]
    for line in lines:
        fields = line.split("\t")
        path, sha, key, password, expected = fields[:5]
        rows += 1
        try:
            enc_key = sig_key = None
            if key != "-":
                enc_key, sig_key = load_keys(os.path.join(base, key), None if password == "-" else password)
            data = restore_file(os.path.join(base, path), enc_key, sig_key)
            got = "ok"
            got_sha = hashlib.sha256(data).hexdigest()
        except Exception as e:
            got = "error:" + describe(e)
            got_sha = "-"
        same = got == expected and (sha == "-" or got_sha == sha)
        # CPython words its base64 errors differently from version to version.
        if not same and got.startswith("error:binascii.Error:") and expected.startswith("error:binascii.Error:"):
            same = True
        if not same:
            mismatches += 1
            sys.stderr.write("MISMATCH %s (key %s, password %r): expected %s %s, got %s %s\n"
                             % (path, key, password, expected, sha, got, got_sha))
    # fetch_emails()'s From-line: input/N.eml (as IMAP returned it) -> expected/N.mbox
    expected_dir, input_dir = os.path.join(base, "expected"), os.path.join(base, "input")
    if os.path.isdir(expected_dir):
        for name in sorted(os.listdir(expected_dir)):
            src = os.path.join(input_dir, name[:-len(".mbox")] + ".eml")
            if not name.endswith(".mbox") or not os.path.isfile(src):
                continue
            rows += 1
            with open(src, 'rb') as f:
                stored = add_from_line(f.read())
            with open(os.path.join(expected_dir, name), 'rb') as f:
                if f.read() != stored:
                    mismatches += 1
                    sys.stderr.write("MISMATCH From-line of %s\n" % src)
    sys.stdout.write("%d rows, %d mismatches\n" % (rows, mismatches))
    return 1 if mismatches or not rows else 0


def cmd_restore(argv):
    paths, values = parse(argv, ("--keys", "--password", "--out"), ("--py3-text-mode",))
    if len(paths) != 1:
        usage("restore needs one DIR")
    try:
        written, out_path = restore_folder(paths[0], values.get("--keys"), values.get("--password"),
                                           values.get("--out"), "--py3-text-mode" in values)
    except Exception as e:
        sys.stderr.write("%s\n" % describe(e))
        return 1
    sys.stdout.write("restored %d messages to %s\n" % (written, out_path))
    return 0


def cmd_listing(argv):
    if len(argv) != 1:
        usage("listing needs one DIR")
    try:
        names = os.listdir(argv[0])
    except OSError as e:
        sys.stderr.write("%s\n" % describe(e))
        return 1
    sys.stdout.write("".join(name + "\n" for name in names))
    return 0


def main(argv):
    if not argv:
        usage("missing command")
    commands = {"decode": cmd_decode, "encode": cmd_encode, "check": cmd_check,
                "restore": cmd_restore, "listing": cmd_listing}
    if argv[0] not in commands:
        usage("unknown command %s" % argv[0])
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
