//! Mail over SMTP: STARTTLS, implicit TLS, or plain without a password; auth
//! when configured; a certificate authority file for private servers.
//!
//! One connection per mail (lettre without its pool), rustls on ring with
//! the system's certificate authorities plus those of `caFile`. STARTTLS is
//! required when configured: a server that does not offer it gets no mail
//! (and no password), never a plaintext fallback. The password is never in
//! an error: lettre's messages carry the server's replies, and any that
//! echoed it (or its base64 forms) is redacted.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, Mailbox, Message};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use receiver_core::notify::config::{Email, SmtpTls};
use receiver_core::text::{hazardous, one_line};

use crate::SendError;

/// Longest error message kept (the server's reply included).
const MAX_MESSAGE: usize = 300;

/// Send one plain-text mail to every `to` of `cfg` within `timeout`.
pub async fn send(
    cfg: &Email,
    password: Option<&str>,
    subject: &str,
    body: &str,
    timeout: Duration,
) -> Result<(), SendError> {
    let server = server_name(cfg);
    let message = message(cfg, subject, body)?;
    let transport = transport(cfg, password, timeout)?;
    match tokio::time::timeout(timeout, transport.send(message)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(classify(&server, &e, cfg.username.as_deref(), password)),
        Err(_) => Err(SendError::transient(format!(
            "SMTP server {server} did not take the mail within {timeout:?}"
        ))),
    }
}

/// `host:port`, how errors name the server.
fn server_name(cfg: &Email) -> String {
    if cfg.host.contains(':') {
        format!("[{}]:{}", cfg.host, cfg.port())
    } else {
        format!("{}:{}", cfg.host, cfg.port())
    }
}

/// The mail: text/plain in UTF-8 (lettre picks 7bit, quoted-printable or
/// base64, and encodes a non-ASCII subject), with a Date and a Message-ID.
fn message(cfg: &Email, subject: &str, body: &str) -> Result<Message, SendError> {
    let from: Mailbox = cfg.from.parse().map_err(|e| {
        SendError::permanent(format!(
            "email from {:?} is not a mail address: {e}",
            cfg.from
        ))
    })?;
    // one line: a line break in a header would end it
    let subject: String = subject
        .chars()
        .map(|c| if hazardous(c) { ' ' } else { c })
        .collect();
    let mut builder = Message::builder()
        .from(from)
        .subject(subject)
        .date_now()
        .message_id(None)
        .header(ContentType::TEXT_PLAIN);
    for to in &cfg.to {
        let mailbox: Mailbox = to.parse().map_err(|e| {
            SendError::permanent(format!("email to {to:?} is not a mail address: {e}"))
        })?;
        builder = builder.to(mailbox);
    }
    builder
        .body(encoded(body))
        .map_err(|e| SendError::permanent(format!("email could not be built: {e}")))
}

/// `body` encoded (with CRLF line ends). SMTP ends the data with CRLF "."
/// CRLF, whose CRLF ends the last line: in a 7bit or quoted-printable body a
/// final line break of its own would arrive as an extra blank line, so it is
/// left to the terminator (base64 carries it inside).
fn encoded(body: &str) -> Body {
    let whole = Body::new(body.to_string());
    match whole.encoding() {
        ContentTransferEncoding::SevenBit | ContentTransferEncoding::QuotedPrintable => {
            match body.strip_suffix('\n') {
                Some(rest) => Body::new(rest.strip_suffix('\r').unwrap_or(rest).to_string()),
                None => whole,
            }
        }
        _ => whole,
    }
}

fn transport(
    cfg: &Email,
    password: Option<&str>,
    timeout: Duration,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, SendError> {
    let tls = match cfg.tls {
        SmtpTls::Starttls => Tls::Required(tls_parameters(cfg)?),
        SmtpTls::Tls => Tls::Wrapper(tls_parameters(cfg)?),
        SmtpTls::None => {
            // validation refuses this too; a password is never sent in clear
            if password.is_some() {
                return Err(SendError::permanent(format!(
                    "email to {}: tls none would send the password in clear: use starttls or tls",
                    server_name(cfg)
                )));
            }
            Tls::None
        }
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(cfg.host.as_str())
        .port(cfg.port())
        .tls(tls)
        // each connect attempt; `send` bounds the whole exchange
        .timeout(Some(timeout));
    if let (Some(user), Some(password)) = (&cfg.username, password) {
        builder = builder
            .credentials(Credentials::new(user.clone(), password.to_string()))
            .authentication(vec![Mechanism::Plain, Mechanism::Login]);
    }
    Ok(builder.build())
}

/// TLS for `cfg.host`: the system's certificate authorities and `caFile`'s.
fn tls_parameters(cfg: &Email) -> Result<TlsParameters, SendError> {
    let mut builder = TlsParameters::builder(cfg.host.clone());
    if let Some(path) = &cfg.ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| SendError::permanent(format!("email caFile {path}: {e}")))?;
        if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
            return Err(SendError::permanent(format!(
                "email caFile {path}: no PEM certificate in it"
            )));
        }
        let cert = Certificate::from_pem(&pem).map_err(|_| {
            SendError::permanent(format!("email caFile {path}: not PEM certificates"))
        })?;
        builder = builder.add_root_certificate(cert);
    }
    builder
        .build()
        .map_err(|e| SendError::permanent(format!("email TLS for {}: {e}", cfg.host)))
}

/// lettre's error as a [`SendError`]: 4xx replies, timeouts and lost or
/// refused connections are worth another attempt; 5xx replies, TLS failures
/// (an untrusted or mismatched certificate) and a server without STARTTLS
/// are not.
fn classify(
    server: &str,
    e: &lettre::transport::smtp::Error,
    user: Option<&str>,
    password: Option<&str>,
) -> SendError {
    let said = redact(&chain(e), user, password);
    let message = one_line(&format!("SMTP server {server}: {said}"), MAX_MESSAGE);
    let retryable = if e.is_transient() {
        true
    } else if e.is_permanent() || e.is_tls() || e.is_client() || tls_error(e) {
        false
    } else {
        // timeouts, refused, reset or closed connections, a garbled reply
        true
    };
    if retryable {
        SendError::transient(message)
    } else {
        SendError::permanent(message)
    }
}

/// A rustls error anywhere in `e`'s sources (a certificate refused, a TLS
/// handshake that cannot succeed). tokio-rustls wraps it in an `io::Error`,
/// whose `source` skips it, so each `io::Error` is looked into as well.
fn tls_error(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.is::<rustls::Error>() {
            return true;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io
                .get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>())
        {
            return true;
        }
        cur = err.source();
    }
    false
}

/// `e` and its sources, each once: lettre's Display already shows its own
/// source, and a TLS failure comes wrapped twice ("Connection error:
/// Connection error: invalid peer certificate: UnknownIssuer").
fn chain(e: &lettre::transport::smtp::Error) -> String {
    let mut s = e.to_string();
    let mut cur = std::error::Error::source(e).and_then(std::error::Error::source);
    while let Some(err) = cur {
        let part = err.to_string();
        if !s.contains(&part) {
            s = format!("{s}: {part}");
        }
        cur = err.source();
    }
    let mut parts: Vec<&str> = s.split(": ").collect();
    parts.dedup();
    parts.join(": ")
}

/// `s` without the password, nor the forms AUTH sends it in.
fn redact(s: &str, user: Option<&str>, password: Option<&str>) -> String {
    let Some(password) = password.filter(|p| !p.is_empty()) else {
        return s.to_string();
    };
    let mut forms = vec![
        BASE64.encode(format!("\0{}\0{password}", user.unwrap_or(""))),
        BASE64.encode(password),
        password.to_string(),
    ];
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    let mut out = s.to_string();
    for f in forms {
        out = out.replace(&f, "[redacted]");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email() -> Email {
        Email {
            host: "smtp.example.com".into(),
            port: None,
            tls: SmtpTls::Starttls,
            username: Some("heal8s".into()),
            password: None,
            ca_file: None,
            from: "heal8s <heal8s@example.com>".into(),
            to: vec![
                "oncall@example.com".into(),
                "Team <team@example.org>".into(),
            ],
        }
    }

    #[test]
    fn the_password_and_its_auth_forms_are_redacted() {
        let plain = BASE64.encode("\0heal8s\0hunter2!");
        let said = format!("535 nope hunter2! {plain} {}", BASE64.encode("hunter2!"));
        let r = redact(&said, Some("heal8s"), Some("hunter2!"));
        assert!(!r.contains("hunter2!"), "{r}");
        assert!(!r.contains(&plain), "{r}");
        assert!(!r.contains(&BASE64.encode("hunter2!")), "{r}");
        assert!(r.starts_with("535 nope [redacted]"), "{r}");
        assert_eq!(redact("535 nope", None, None), "535 nope");
    }

    #[test]
    fn the_message_has_a_date_a_message_id_and_every_recipient() {
        let m = message(&email(), "a\r\nBcc: x@evil.example", "body\nline").unwrap();
        let raw = String::from_utf8(m.formatted()).unwrap();
        assert!(raw.contains("\r\nDate: "), "{raw}");
        assert!(raw.contains("\r\nMessage-ID: <"), "{raw}");
        assert!(
            raw.contains("Content-Type: text/plain; charset=utf-8"),
            "{raw}"
        );
        assert!(!raw.contains("\r\nBcc:"), "{raw}");
        let to: Vec<String> = m.envelope().to().iter().map(ToString::to_string).collect();
        assert_eq!(to, ["oncall@example.com", "team@example.org"]);
    }

    #[test]
    fn a_bad_address_is_permanent() {
        let mut e = email();
        e.to.push("not an address".into());
        let err = message(&e, "s", "b").unwrap_err();
        assert!(!err.retryable, "{err:?}");
        assert!(err.message.contains("not an address"), "{err:?}");
    }

    #[tokio::test]
    async fn a_password_is_never_sent_in_clear() {
        let mut e = email();
        e.tls = SmtpTls::None;
        let err = send(&e, Some("pw"), "s", "b", Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(!err.retryable, "{err:?}");
    }

    #[test]
    fn a_ca_file_that_cannot_be_read_is_permanent() {
        let mut e = email();
        e.ca_file = Some("/nonexistent/heal8s-ca.pem".into());
        let Err(err) = tls_parameters(&e) else {
            panic!("read a missing caFile")
        };
        assert!(!err.retryable, "{err:?}");
        assert!(
            err.message.contains("/nonexistent/heal8s-ca.pem"),
            "{err:?}"
        );
    }
}
