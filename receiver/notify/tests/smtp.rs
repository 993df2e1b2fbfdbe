//! Email against a real SMTP server: aiosmtpd (tests/support/smtpd.py) with
//! STARTTLS, implicit TLS or neither, AUTH, and certificates from a throwaway
//! certificate authority made here. Needs python3 with aiosmtpd (.ci/run
//! installs it); without it these tests fail, saying how to install it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test support code

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use receiver_core::notify::config::{Email, SmtpTls};
use receiver_notify::smtp;
use serde_json::Value;

const PYTHON: &str = "python3";
const INSTALL: &str = "python3 -m pip install 'aiosmtpd==1.4.6'";
const USER: &str = "heal8s-bot";
const PASSWORD: &str = "pw-Kx81!qz";
const TIMEOUT: Duration = Duration::from_secs(10);

/// Fails (never skips) when python3 or aiosmtpd is missing.
fn require_aiosmtpd() {
    static CHECK: OnceLock<Result<(), String>> = OnceLock::new();
    let r = CHECK.get_or_init(|| {
        match Command::new(PYTHON)
            .args(["-c", "import aiosmtpd"])
            .output()
        {
            Ok(o) if o.status.success() => Ok(()),
            Ok(o) => Err(format!(
                "{PYTHON} cannot import aiosmtpd ({}); install it: {INSTALL} (.ci/run does)",
                String::from_utf8_lossy(&o.stderr).trim().lines().last().unwrap_or("")
            )),
            Err(e) => Err(format!(
                "{PYTHON} is not runnable ({e}); these tests need python3 with aiosmtpd: {INSTALL} (.ci/run installs it)"
            )),
        }
    });
    if let Err(e) = r {
        panic!("{e}");
    }
}

/// A directory of its own for each test, removed when done.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "heal8s-smtp-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, contents).unwrap();
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A throwaway certificate authority and a server certificate it signed for
/// 127.0.0.1 and localhost, as PEM.
struct Pki {
    ca: String,
    cert: String,
    key: String,
}

fn pki(name: &str) -> Pki {
    pki_for(name, &["127.0.0.1", "localhost"])
}

fn pki_for(name: &str, names: &[&str]) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("heal8s test CA {name}"));
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

    let mut params =
        CertificateParams::new(names.iter().map(ToString::to_string).collect::<Vec<_>>()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "smtp.test");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    Pki {
        ca: ca.as_ref().pem(),
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

#[derive(Clone, Copy, Debug)]
enum Mode {
    Starttls,
    Tls,
    Plain,
}

/// aiosmtpd as a child process, killed when dropped.
struct Server {
    child: Child,
    port: u16,
    out: PathBuf,
}

impl Server {
    fn start(dir: &Scratch, mode: Mode, pki: Option<&Pki>, auth: bool) -> Server {
        require_aiosmtpd();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtpd.py");
        let out = dir.0.join("received.jsonl");
        let mut cmd = Command::new(PYTHON);
        cmd.arg(&script)
            .arg("--mode")
            .arg(match mode {
                Mode::Starttls => "starttls",
                Mode::Tls => "tls",
                Mode::Plain => "plain",
            })
            .arg("--out")
            .arg(&out);
        if let Some(p) = pki {
            cmd.arg("--cert")
                .arg(dir.write("server.pem", &p.cert))
                .arg("--key")
                .arg(dir.write("server.key", &p.key));
        }
        if auth {
            cmd.args(["--user", USER, "--password", PASSWORD]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{PYTHON} {}: {e}; {INSTALL}", script.display()));
        let mut line = String::new();
        let stdout = child.stdout.take().unwrap();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let port = match line.trim().parse() {
            Ok(p) => p,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "smtpd.py did not start (printed {line:?}; its stderr is above); it needs aiosmtpd: {INSTALL}"
                );
            }
        };
        Server { child, port, out }
    }

    /// The messages the server took, in order.
    fn received(&self) -> Vec<Value> {
        read_lines(&self.out)
    }

    /// The AUTH attempts the server saw (their mechanisms).
    fn auth_attempts(&self) -> Vec<Value> {
        let mut p = self.out.clone().into_os_string();
        p.push(".auth");
        read_lines(Path::new(&p))
    }
}

fn read_lines(path: &Path) -> Vec<Value> {
    {
        match std::fs::read_to_string(path) {
            Ok(s) => s
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => panic!("{}: {e}", path.display()),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the server at `port` answers to EHLO (its extensions).
fn ehlo(port: u16) -> String {
    use std::io::Write;
    let stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("220"), "{line}");
    (&stream).write_all(b"EHLO client.test\r\n").unwrap();
    let mut all = String::new();
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        all.push_str(&line);
        // the last line of a reply is "250 ", the others "250-"
        if line.len() < 4 || line.as_bytes()[3] != b'-' {
            break;
        }
    }
    let _ = (&stream).write_all(b"QUIT\r\n");
    all
}

fn email(host: &str, port: u16, tls: SmtpTls, ca_file: Option<&Path>) -> Email {
    Email {
        host: host.to_string(),
        port: Some(port),
        tls,
        username: Some(USER.to_string()),
        password: None,
        ca_file: ca_file.map(|p| p.display().to_string()),
        from: "heal8s <heal8s@example.com>".to_string(),
        to: vec![
            "oncall@example.com".to_string(),
            "Platform Team <platform@example.org>".to_string(),
        ],
    }
}

const SUBJECT: &str = "[heal8s] restarted payments/api-7f9c — OOMKilled ✓";
const BODY: &str = "heal8s restarted the pod.\n\nnamespace: payments\nnote: ünïcödé, 日本語\n.\n.. a line with a leading dot\n";

fn assert_delivered(server: &Server) {
    let got = server.received();
    assert_eq!(got.len(), 1, "{got:#?}");
    let m = &got[0];
    assert_eq!(m["mail_from"], "heal8s@example.com", "{m:#}");
    assert_eq!(
        m["rcpt_tos"],
        serde_json::json!(["oncall@example.com", "platform@example.org"]),
        "{m:#}"
    );
    assert_eq!(m["subject"], SUBJECT, "{m:#}");
    let body = m["body"].as_str().unwrap().replace("\r\n", "\n");
    assert_eq!(body, BODY, "{m:#}");
    assert_eq!(m["content_type"], "text/plain", "{m:#}");
    assert_eq!(m["charset"], "utf-8", "{m:#}");
    assert_eq!(m["from"], "heal8s <heal8s@example.com>", "{m:#}");
    let to = m["to"].as_str().unwrap();
    assert!(
        to.contains("oncall@example.com") && to.contains("platform@example.org"),
        "{m:#}"
    );
    // Date: RFC 5322, as a mail reader parses it, and about now
    let date = m["date_epoch"].as_f64();
    let now = jiff::Timestamp::now().as_second() as f64;
    assert!(
        date.is_some_and(|d| (d - now).abs() < 300.0),
        "Date {}: {m:#}",
        m["date"]
    );
    let id = m["message_id"].as_str().unwrap_or_default();
    assert!(
        id.starts_with('<') && id.ends_with('>') && id.contains('@'),
        "Message-ID {id:?}: {m:#}"
    );
    let raw = m["raw"].as_str().unwrap();
    assert!(raw.contains("\r\nDate: "), "{raw}");
    assert!(raw.contains("\r\nMessage-ID: <"), "{raw}");
    assert!(raw.is_ascii(), "the raw message is 7-bit clean: {raw}");
    assert!(!raw.contains(PASSWORD), "{raw}");
}

#[tokio::test]
async fn starttls_with_auth_delivers() {
    let dir = Scratch::new("starttls");
    let pki = pki("starttls");
    let ca = dir.write("ca.pem", &pki.ca);
    let server = Server::start(&dir, Mode::Starttls, Some(&pki), true);
    let cfg = email("127.0.0.1", server.port, SmtpTls::Starttls, Some(&ca));
    smtp::send(&cfg, Some(PASSWORD), SUBJECT, BODY, TIMEOUT)
        .await
        .unwrap();
    assert_delivered(&server);
    let m = &server.received()[0];
    assert_eq!(m["tls"], true, "{m:#}");
    assert_eq!(m["authenticated"], true, "{m:#}");
    assert_eq!(server.auth_attempts().len(), 1);
}

#[tokio::test]
async fn implicit_tls_with_auth_delivers() {
    let dir = Scratch::new("tls");
    let pki = pki("tls");
    let ca = dir.write("ca.pem", &pki.ca);
    let server = Server::start(&dir, Mode::Tls, Some(&pki), true);
    // by name this time: the certificate's DNS name is checked
    let cfg = email("localhost", server.port, SmtpTls::Tls, Some(&ca));
    smtp::send(&cfg, Some(PASSWORD), SUBJECT, BODY, TIMEOUT)
        .await
        .unwrap();
    assert_delivered(&server);
    let m = &server.received()[0];
    assert_eq!(m["tls"], true, "{m:#}");
    assert_eq!(m["authenticated"], true, "{m:#}");
}

#[tokio::test]
async fn plain_without_auth_delivers() {
    let dir = Scratch::new("plain");
    let server = Server::start(&dir, Mode::Plain, None, false);
    let mut cfg = email("127.0.0.1", server.port, SmtpTls::None, None);
    cfg.username = None;
    smtp::send(&cfg, None, SUBJECT, BODY, TIMEOUT)
        .await
        .unwrap();
    assert_delivered(&server);
    let m = &server.received()[0];
    assert_eq!(m["tls"], false, "{m:#}");

    // mostly not ASCII: sent as base64, arrives the same
    let cjk = "再起動しました。\nネームスペース: 決済\n";
    smtp::send(&cfg, None, "再起動", cjk, TIMEOUT)
        .await
        .unwrap();
    let got = server.received();
    assert_eq!(got.len(), 2, "{got:#?}");
    assert_eq!(got[1]["subject"], "再起動");
    assert!(
        got[1]["raw"]
            .as_str()
            .unwrap()
            .contains("Content-Transfer-Encoding: base64"),
        "{:#}",
        got[1]
    );
    assert_eq!(got[1]["body"].as_str().unwrap().replace("\r\n", "\n"), cjk);
}

#[tokio::test]
async fn a_wrong_password_is_permanent_and_never_shown() {
    let dir = Scratch::new("wrongpw");
    let pki = pki("wrongpw");
    let ca = dir.write("ca.pem", &pki.ca);
    let server = Server::start(&dir, Mode::Starttls, Some(&pki), true);
    let cfg = email("127.0.0.1", server.port, SmtpTls::Starttls, Some(&ca));
    let wrong = "wrong-Pw-7Hq2zz";
    let err = smtp::send(&cfg, Some(wrong), SUBJECT, BODY, TIMEOUT)
        .await
        .unwrap_err();
    assert!(!err.retryable, "{err:?}");
    assert!(err.message.contains("535"), "{err:?}");
    for shown in [err.message.clone(), format!("{err:?}"), err.to_string()] {
        assert!(!shown.contains(wrong), "{shown}");
        assert!(!shown.contains(&BASE64.encode(wrong)), "{shown}");
        assert!(
            !shown.contains(&BASE64.encode(format!("\0{USER}\0{wrong}"))),
            "{shown}"
        );
    }
    assert!(server.received().is_empty());
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused() {
    let dir = Scratch::new("untrusted");
    let other = pki("other");
    let pki = pki("server");
    let other_ca = dir.write("other-ca.pem", &other.ca);

    // STARTTLS, only the system's certificate authorities
    let server = Server::start(&dir, Mode::Starttls, Some(&pki), true);
    let cfg = email("127.0.0.1", server.port, SmtpTls::Starttls, None);
    let err = smtp::send(&cfg, Some(PASSWORD), SUBJECT, BODY, TIMEOUT)
        .await
        .unwrap_err();
    assert!(!err.retryable, "{err:?}");
    assert!(
        err.message.to_lowercase().contains("certificate"),
        "{err:?}"
    );
    assert!(!err.message.contains(PASSWORD), "{err:?}");
    assert!(server.received().is_empty());
    drop(server);

    // implicit TLS, a caFile of another authority
    let dir = Scratch::new("untrusted-tls");
    let server = Server::start(&dir, Mode::Tls, Some(&pki), true);
    let cfg = email("127.0.0.1", server.port, SmtpTls::Tls, Some(&other_ca));
    let err = smtp::send(&cfg, Some(PASSWORD), SUBJECT, BODY, TIMEOUT)
        .await
        .unwrap_err();
    assert!(!err.retryable, "{err:?}");
    assert!(
        err.message.to_lowercase().contains("certificate"),
        "{err:?}"
    );
    assert!(server.received().is_empty());
}

#[tokio::test]
async fn a_certificate_for_another_name_is_refused() {
    let dir = Scratch::new("name");
    // a trusted authority, but a certificate for another server
    let pki = pki_for("name", &["smtp.elsewhere.test"]);
    let ca = dir.write("ca.pem", &pki.ca);
    let server = Server::start(&dir, Mode::Tls, Some(&pki), true);
    let cfg = email("127.0.0.1", server.port, SmtpTls::Tls, Some(&ca));
    let err = smtp::send(&cfg, Some(PASSWORD), SUBJECT, BODY, TIMEOUT)
        .await
        .unwrap_err();
    assert!(!err.retryable, "{err:?}");
    assert!(
        err.message.to_lowercase().contains("certificate"),
        "{err:?}"
    );
    assert!(server.received().is_empty());
}

#[tokio::test]
async fn starttls_is_required_never_plaintext() {
    let dir = Scratch::new("nostarttls");
    // a plain server: no STARTTLS offered, AUTH in clear offered instead
    let server = Server::start(&dir, Mode::Plain, None, true);
    let cfg = email("127.0.0.1", server.port, SmtpTls::Starttls, None);
    let err = smtp::send(&cfg, Some(PASSWORD), SUBJECT, BODY, TIMEOUT)
        .await
        .unwrap_err();
    assert!(!err.retryable, "{err:?}");
    assert!(err.message.contains("STARTTLS"), "{err:?}");
    assert!(!err.message.contains(PASSWORD), "{err:?}");
    assert!(server.received().is_empty());
    assert!(
        server.auth_attempts().is_empty(),
        "{:?}",
        server.auth_attempts()
    );

    // the trap was set: this server offers AUTH in clear, no STARTTLS
    let ehlo = ehlo(server.port);
    assert!(ehlo.contains("AUTH"), "{ehlo}");
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
}

#[tokio::test]
async fn replies_4xx_are_transient_5xx_permanent() {
    let dir = Scratch::new("replies");
    let server = Server::start(&dir, Mode::Plain, None, false);
    let mut cfg = email("127.0.0.1", server.port, SmtpTls::None, None);
    cfg.username = None;

    cfg.to = vec!["oncall@example.com".into(), "busy@example.com".into()];
    let err = smtp::send(&cfg, None, SUBJECT, BODY, TIMEOUT)
        .await
        .unwrap_err();
    assert!(err.retryable, "{err:?}");
    assert!(err.message.contains("451"), "{err:?}");

    cfg.to = vec!["nobody@example.com".into()];
    let err = smtp::send(&cfg, None, SUBJECT, BODY, TIMEOUT)
        .await
        .unwrap_err();
    assert!(!err.retryable, "{err:?}");
    assert!(err.message.contains("550"), "{err:?}");

    assert!(server.received().is_empty());
}

#[tokio::test]
async fn nothing_listening_is_transient_and_quick() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    for tls in [SmtpTls::Starttls, SmtpTls::Tls, SmtpTls::None] {
        let mut cfg = email("127.0.0.1", port, tls, None);
        cfg.username = None;
        let t = Instant::now();
        let err = smtp::send(&cfg, None, SUBJECT, BODY, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(err.retryable, "{tls:?}: {err:?}");
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{tls:?}: {:?}",
            t.elapsed()
        );
    }
}

#[tokio::test]
async fn a_server_that_never_speaks_times_out_transient() {
    // the kernel completes the connection; nobody ever answers
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let timeout = Duration::from_secs(1);
    for tls in [SmtpTls::Starttls, SmtpTls::Tls] {
        let cfg = email("127.0.0.1", port, tls, None);
        let t = Instant::now();
        let err = smtp::send(&cfg, Some(PASSWORD), SUBJECT, BODY, timeout)
            .await
            .unwrap_err();
        let took = t.elapsed();
        assert!(err.retryable, "{tls:?}: {err:?}");
        assert!(
            took >= timeout - Duration::from_millis(50) && took < timeout * 3,
            "{tls:?}: took {took:?}"
        );
        assert!(!err.message.contains(PASSWORD), "{err:?}");
    }
    drop(silent);
}
