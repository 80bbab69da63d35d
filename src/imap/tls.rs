//! TLS with rustls (ring provider) and a certificate verifier that knows the three ways a
//! user can trust a server: the public web PKI plus the certificates of `--ca-file`, one
//! of those `--ca-file` certificates presented verbatim, or a `--pin-sha256` fingerprint.
//! The last two are pins: the name and the dates are not checked, because self-signed
//! appliance certificates rarely name the address users type and often outlive their
//! dates, and the user vouched for that very certificate. The handshake signature is
//! always verified, so the server must hold the certificate's key.
//!
//! When the verifier refuses a certificate it records why and the certificate's SHA-256,
//! because rustls only reports an error kind: the user needs the fingerprint to decide
//! whether to pin it.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme,
    StreamOwned,
};
use sha2::{Digest, Sha256};

use super::clock::waited;
use super::error::Unreached;
use crate::bounded;
use crate::error::{describe_io, without_links, Error, Result};

/// A TLS connection to the server over TCP, as the IMAP client uses it.
pub type Stream = StreamOwned<ClientConnection, Socket>;

/// Bytes read from the socket at once.
const SOCKET_READ: usize = 64 * 1024;

/// The TCP socket under TLS, read through a buffer of its own: rustls asks for at most
/// 4 KiB a read, which for a backup at 150 MB/s is 40,000 system calls a second; one
/// read of 64 KiB serves sixteen of its asks. Writes go straight to the socket.
pub struct Socket {
    tcp: TcpStream,
    buf: Box<[u8]>,
    pos: usize,
    end: usize,
    /// While set (during the handshake), each read may only wait for what is left until
    /// then: a server that answers a little now and then cannot stretch the handshake.
    deadline: Option<Instant>,
}

impl Socket {
    /// Wraps a connected socket.
    pub fn new(tcp: TcpStream) -> Socket {
        Socket { tcp, buf: vec![0u8; SOCKET_READ].into_boxed_slice(), pos: 0, end: 0, deadline: None }
    }

    /// The socket itself, for its options.
    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }
}

impl Read for Socket {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.end {
            if let Some(deadline) = self.deadline {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"));
                }
                self.tcp.set_read_timeout(Some(left))?;
            }
            self.end = self.tcp.read(&mut self.buf)?;
            self.pos = 0;
        }
        let n = out.len().min(self.end - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Write for Socket {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.tcp.write(data)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

/// Which server certificates to accept. Built once (it reads `--ca-file`, which a
/// sandbox may later hide) and reused for every connection.
#[derive(Clone, Debug)]
pub struct Trust {
    provider: Arc<CryptoProvider>,
    mode: Mode,
    names: &'static Names,
    /// The last certificate refused, shared by the clones (the wizard offers to pin it).
    refused: Arc<Mutex<Option<Rejection>>>,
}

#[derive(Clone, Debug)]
enum Mode {
    /// The web PKI roots plus the `--ca-file` certificates, which are also accepted as
    /// they are when presented (`exact`).
    Roots { webpki: Arc<WebPkiServerVerifier>, exact: Arc<Vec<CertificateDer<'static>>> },
    /// Only the certificate with this SHA-256.
    Pin([u8; 32]),
}

impl Trust {
    /// Reads the `--ca-file` certificates or parses the `--pin-sha256` fingerprint; bad
    /// input is a usage error. With neither, only the web PKI roots are trusted.
    pub fn load(ca_file: Option<&Path>, pin_sha256: Option<&str>) -> Result<Trust> {
        Trust::load_as(ca_file, pin_sha256, &FLAG_NAMES)
    }

    /// [`Trust::load`], naming the settings in errors as `names` says (the config file's
    /// keys are not the flags).
    pub fn load_as(ca_file: Option<&Path>, pin_sha256: Option<&str>, names: &'static Names) -> Result<Trust> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mode = match (ca_file, pin_sha256) {
            (Some(_), Some(_)) => {
                return Err(Error::usage(format!(
                    "{} and {} exclude each other (a pin accepts exactly one certificate)",
                    names.ca_file, names.pin
                )))
            }
            (None, Some(pin)) => Mode::Pin(parse_pin(pin).map_err(|e| e.context(names.pin))?),
            (ca_file, None) => roots_mode(ca_file, &provider, names)?,
        };
        Ok(Trust { provider, mode, names, refused: Arc::default() })
    }

    /// The SHA-256 (lowercase hex) of the last server certificate refused, and why.
    pub fn refused(&self) -> Option<(String, String)> {
        let slot = self.refused.lock().ok()?;
        slot.as_ref().map(|r| (r.fingerprint.clone(), r.reason.clone()))
    }

    /// What the trust settings are called where they were given.
    pub fn names(&self) -> &'static Names {
        self.names
    }
}

/// What the connection settings are called where they were given: messages name the
/// flags for a command line, the keys for a config file.
#[derive(Debug, PartialEq, Eq)]
pub struct Names {
    /// The CA file's name.
    pub ca_file: &'static str,
    /// The pin's name.
    pub pin: &'static str,
    /// STARTTLS's name.
    pub starttls: &'static str,
}

/// The command line's names.
pub static FLAG_NAMES: Names = Names { ca_file: "--ca-file", pin: "--pin-sha256", starttls: "--starttls" };
/// The config file's names.
pub static CONFIG_NAMES: Names = Names { ca_file: "\"ca_file\"", pin: "\"pin_sha256\"", starttls: "\"starttls\"" };

fn roots_mode(ca_file: Option<&Path>, provider: &Arc<CryptoProvider>, names: &Names) -> Result<Mode> {
    let exact = match ca_file {
        Some(path) => {
            read_pem_certificates(path).map_err(|e| e.context(format!("{} {}", names.ca_file, path.display())))?
        }
        None => Vec::new(),
    };
    let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    // A certificate webpki cannot use as an anchor may still be presented verbatim.
    roots.add_parsable_certificates(exact.iter().cloned());
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| Error::runtime(format!("cannot set up certificate verification: {e}")))?;
    Ok(Mode::Roots { webpki, exact: Arc::new(exact) })
}

/// The certificates of a PEM file, in order; errors say why, the caller names the file.
pub fn read_pem_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let bad = Error::usage;
    let bytes = bounded::read_file(path, bounded::CA_FILE).map_err(|e| {
        if bounded::is_too_large(&e) {
            bad(format!("{}, not a PEM certificate file", describe_io(&e)))
        } else {
            bad(describe_io(&e))
        }
    })?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("not a valid PEM file ({e})")))?;
    if certs.is_empty() {
        return Err(bad("no certificate in it (expected PEM: -----BEGIN CERTIFICATE-----)".into()));
    }
    Ok(certs)
}

/// Parses a `--pin-sha256` value: 64 hex digits, any case, colons allowed anywhere;
/// errors say why, the caller names the setting.
pub fn parse_pin(text: &str) -> Result<[u8; 32]> {
    let digits: Vec<u8> = text.trim().bytes().filter(|&b| b != b':').collect();
    let bad = |why: &str| Error::usage(format!("{why} (expected 64 hex digits, colons allowed)"));
    if let Some(&b) = digits.iter().find(|b| !b.is_ascii_hexdigit()) {
        return Err(bad(&format!("{:?} is not a hex digit", char::from(b))));
    }
    if digits.len() != 64 {
        return Err(bad(&format!("{} hex digits", digits.len())));
    }
    let mut pin = [0u8; 32];
    for (byte, pair) in pin.iter_mut().zip(digits.chunks(2)) {
        *byte = (hex_value(pair[0]) << 4) | hex_value(pair[1]);
    }
    Ok(pin)
}

fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => digit - b'A' + 10,
    }
}

/// SHA-256 of a DER certificate, lowercase hex without separators (the `--pin-sha256` form).
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der).iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a certificate was refused, and which certificate it was.
#[derive(Clone, Debug)]
struct Rejection {
    fingerprint: String,
    reason: String,
}

/// One connection's verifier: [`Trust`] plus the slot where a refusal is recorded.
#[derive(Debug)]
struct Verifier {
    trust: Trust,
    rejection: Arc<Mutex<Option<Rejection>>>,
}

impl Verifier {
    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<(), (rustls::Error, String)> {
        match &self.trust.mode {
            Mode::Pin(pin) if Sha256::digest(end_entity.as_ref()).as_slice() == pin => Ok(()),
            Mode::Pin(_) => Err((
                rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure),
                format!("its SHA-256 is not the one given with {}", self.trust.names.pin),
            )),
            Mode::Roots { webpki, exact } => {
                match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
                    Ok(_) => Ok(()),
                    // The user handed us this very certificate: as good as a pin. This is how
                    // self-signed `CA:TRUE` certificates pass, which webpki refuses as end entities.
                    Err(_) if exact.iter().any(|c| c == end_entity) => Ok(()),
                    Err(e) => {
                        let reason = describe_rejection(&e);
                        Err((e, reason))
                    }
                }
            }
        }
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self.check(end_entity, intermediates, server_name, ocsp_response, now) {
            Ok(()) => Ok(ServerCertVerified::assertion()),
            Err((error, reason)) => {
                if let Ok(mut slot) = self.rejection.lock() {
                    *slot = Some(Rejection { fingerprint: fingerprint(end_entity), reason });
                }
                Err(error)
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.trust.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.trust.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.trust.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// A verifier error as the end of "not trusted: ...".
fn describe_rejection(error: &rustls::Error) -> String {
    let rustls::Error::InvalidCertificate(cert_error) = error else {
        return without_links(&error.to_string());
    };
    match cert_error {
        CertificateError::UnknownIssuer => "it is not signed by a known certificate authority".into(),
        CertificateError::NotValidForName => "it is not valid for this name".into(),
        CertificateError::NotValidForNameContext { .. } => without_links(&cert_error.to_string()),
        CertificateError::Expired => "it has expired".into(),
        CertificateError::ExpiredContext { time, not_after } => {
            format!("it expired {} days ago", time.as_secs().saturating_sub(not_after.as_secs()) / 86_400)
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => "it is not valid yet".into(),
        CertificateError::Revoked => "it has been revoked".into(),
        CertificateError::BadSignature => "its signature is invalid".into(),
        // webpki's own error type is not ours to name; its text is stable.
        CertificateError::Other(other) if other.to_string().contains("CaUsedAsEndEntity") => {
            "it is a CA certificate (CA:TRUE, as self-signed certificates often are) used as the server's own".into()
        }
        other => without_links(&other.to_string()),
    }
}

/// A client connection that records why it rejected a certificate in `rejection`.
fn client(
    trust: &Trust,
    host: &str,
    endpoint: &str,
    rejection: Arc<Mutex<Option<Rejection>>>,
) -> Result<ClientConnection> {
    let verifier = Arc::new(Verifier { trust: trust.clone(), rejection });
    let config = ClientConfig::builder_with_provider(trust.provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::runtime(format!("cannot set up TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    ClientConnection::new(Arc::new(config), server_name(host)?)
        .map_err(|e| Error::runtime(format!("cannot set up TLS for {endpoint}: {e}")))
}

/// Whether the server at `addr` answers a TLS ClientHello with a TLS record (a handshake
/// or an alert) within `wait`: asked on a connection of its own, closed at once. It tells
/// an implicit-TLS port, which waits for the client to speak, from a silent plain one.
pub fn speaks_tls(trust: &Trust, host: &str, addr: SocketAddr, wait: Duration) -> bool {
    let probe = || -> std::result::Result<bool, Box<dyn std::error::Error>> {
        let mut conn = client(trust, host, "", Arc::new(Mutex::new(None)))?;
        let mut hello = Vec::new();
        conn.write_tls(&mut hello)?;
        let mut tcp = TcpStream::connect_timeout(&addr, wait)?;
        tcp.set_read_timeout(Some(wait))?;
        tcp.set_write_timeout(Some(wait))?;
        tcp.write_all(&hello)?;
        let mut first = [0u8; 1];
        tcp.read_exact(&mut first)?;
        Ok(is_tls_record(first[0]))
    };
    probe().unwrap_or(false)
}

/// Whether a first byte from the server starts a TLS record: a handshake (22) or an
/// alert (21); no IMAP answer starts with either.
pub fn is_tls_record(byte: u8) -> bool {
    byte == 0x16 || byte == 0x15
}

/// Performs the TLS handshake on a connected socket (whose timeouts are already set),
/// within `timeout` in all; `endpoint` (`host:port`) names the server in errors.
pub fn handshake(
    trust: &Trust,
    host: &str,
    endpoint: &str,
    tcp: TcpStream,
    timeout: Duration,
) -> std::result::Result<Stream, Unreached> {
    let began = Instant::now();
    let mut tcp = Socket::new(tcp);
    tcp.deadline = Some(began + timeout);
    let rejection = Arc::clone(&trust.refused);
    if let Ok(mut slot) = rejection.lock() {
        *slot = None;
    }
    let mut conn = client(trust, host, endpoint, rejection.clone())?;
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut tcp) {
            let recorded = rejection.lock().ok().and_then(|slot| slot.clone());
            return Err(match recorded {
                Some(r) => Unreached::permanent(untrusted(host, &r, trust.names)),
                None => handshake_failure(endpoint, &e, began, trust.names),
            });
        }
    }
    tcp.deadline = None;
    tcp.tcp
        .set_read_timeout(Some(timeout))
        .map_err(|e| Unreached::transient(Error::runtime(format!("{endpoint}: {}", describe_io(&e)))))?;
    Ok(StreamOwned::new(conn, tcp))
}

/// The name the certificate must carry: a DNS name or an IP address.
fn server_name(host: &str) -> Result<ServerName<'static>> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(bare.to_string()).map_err(|_| Error::usage(format!("{host:?} is not a valid server name")))
}

fn untrusted(host: &str, r: &Rejection, names: &Names) -> Error {
    let pin = if *names == CONFIG_NAMES {
        format!("{}: \"{}\"", names.pin, r.fingerprint)
    } else {
        format!("{} {}", names.pin, r.fingerprint)
    };
    Error::runtime(format!(
        "TLS certificate of {host} not trusted: {} (the server presented SHA-256 {}; \
         if that is your server's certificate, trust it with {} or {pin})",
        r.reason, r.fingerprint, names.ca_file
    ))
}

/// Why a handshake begun at `began` failed; the network's failures may pass, the
/// server's refusals (another protocol, no common cipher) will not.
fn handshake_failure(endpoint: &str, e: &io::Error, began: Instant, names: &Names) -> Unreached {
    let tls_error = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>());
    let (what, transient) = match (e.kind(), tls_error) {
        (io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut, _) => {
            (format!("no answer within {}", waited(began)), true)
        }
        // A plain IMAP server greets in clear text, which is not a TLS record.
        (_, Some(rustls::Error::InvalidMessage(_))) => (
            format!(
                "the server does not speak TLS on this port (a plain or STARTTLS port? then use {})",
                names.starttls
            ),
            false,
        ),
        (io::ErrorKind::UnexpectedEof, _) => ("the server closed the connection".into(), true),
        (_, Some(tls)) => (without_links(&tls.to_string()), false),
        _ => (describe_io(e), true),
    };
    let error = Error::runtime(format!("TLS handshake with {endpoint} failed: {what}"));
    Unreached { error, transient }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    const HEX: &str = "ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12";

    #[test]
    fn pin_accepts_case_and_colons() {
        let plain = parse_pin(HEX).unwrap();
        assert_eq!(plain[0], 0xab);
        assert_eq!(plain[31], 0x12);
        let colons: Vec<String> =
            HEX.to_uppercase().as_bytes().chunks(2).map(|c| String::from_utf8_lossy(c).into()).collect();
        assert_eq!(parse_pin(&colons.join(":")).unwrap(), plain);
    }

    #[test]
    fn bad_pins_are_usage_errors() {
        for bad in ["", "ab12", &HEX[..63], &format!("{HEX}00"), &format!("{}g", &HEX[..63])] {
            let e = Trust::load(None, Some(bad)).unwrap_err();
            assert_eq!(e.exit_code(), crate::error::EXIT_USAGE, "{bad:?}");
            assert!(e.message().starts_with("--pin-sha256: "), "{e}");
            let e = Trust::load_as(None, Some(bad), &CONFIG_NAMES).unwrap_err();
            assert!(e.message().starts_with("\"pin_sha256\": "), "{e}");
        }
    }

    #[test]
    fn fingerprint_is_lowercase_hex_sha256() {
        assert_eq!(fingerprint(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn ca_file_and_pin_exclude_each_other() {
        let e = Trust::load(Some(Path::new("/nonexistent")), Some(HEX)).unwrap_err();
        assert_eq!(e.exit_code(), crate::error::EXIT_USAGE);
    }

    #[test]
    fn ca_file_problems_are_usage_errors() {
        let dir = std::env::temp_dir().join(format!("tls-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        let e = Trust::load(Some(&missing), None).unwrap_err();
        assert!(e.message().contains("missing.pem") && e.exit_code() == crate::error::EXIT_USAGE, "{e}");
        let empty = dir.join("empty.pem");
        fs::write(&empty, "no PEM here\n").unwrap();
        let e = Trust::load(Some(&empty), None).unwrap_err();
        assert!(e.message().contains("no certificate"), "{e}");
        let e = Trust::load(Some(Path::new("/dev/zero")), None).unwrap_err();
        assert_eq!(e.message(), "--ca-file /dev/zero: larger than 1048576 bytes, not a PEM certificate file");
        let e = Trust::load_as(Some(&missing), None, &CONFIG_NAMES).unwrap_err();
        assert!(e.message().starts_with(&format!("\"ca_file\" {}: ", missing.display())), "{e}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn server_names() {
        assert!(matches!(server_name("127.0.0.1").unwrap(), ServerName::IpAddress(_)));
        assert!(matches!(server_name("[::1]").unwrap(), ServerName::IpAddress(_)));
        assert!(matches!(server_name("imap.example.org").unwrap(), ServerName::DnsName(_)));
        assert!(server_name("bad name").is_err());
    }
}
