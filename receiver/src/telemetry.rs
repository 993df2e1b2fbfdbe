//! Logging setup: text or JSON lines, filtered by a level directive.
//!
//! Log fields carry alert text, and alert senders are untrusted: in text logs
//! every control character of every field is escaped, so no value can end a
//! line (forging the next one) or drive the terminal; colour only when stderr
//! is a terminal. In JSON lines serde escapes C0 controls, and the writer
//! escapes what it leaves (DEL, C1, line separators, direction overrides).

use std::fmt::Write as _;
use std::io::IsTerminal;

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::{DefaultFields, Writer};

/// The log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Install the global subscriber. `level` is an EnvFilter directive such as
/// `info` or `info,receiver=debug`. Logs go to stderr.
pub fn init(format: LogFormat, level: &str) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(level)
        .map_err(|e| anyhow::anyhow!("--log-level {level:?} is not a valid filter: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.fmt_fields(EscapedFields).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_writer(|| JsonEscaping(std::io::stderr()))
            .try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("could not install the logger: {e}"))
}

/// Like [`init`], writing to `file` (a handle each line is written through
/// whole, e.g. the daemon's rotating log file) instead of stderr; no colour.
pub fn init_to<W>(format: LogFormat, level: &str, file: W) -> anyhow::Result<()>
where
    W: std::io::Write + Clone + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(level)
        .map_err(|e| anyhow::anyhow!("--log-level {level:?} is not a valid filter: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false);
    let result = match format {
        LogFormat::Text => builder
            .fmt_fields(EscapedFields)
            .with_writer(move || file.clone())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_writer(move || JsonEscaping(file.clone()))
            .try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("could not install the logger: {e}"))
}

/// tracing's default field format (`name=value`), with every control
/// character escaped (see [`escape_controls`]), whether a field was
/// recorded with `%` (Display) or `?` (Debug).
#[derive(Debug, Clone, Copy, Default)]
pub struct EscapedFields;

impl<'w> FormatFields<'w> for EscapedFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'w>,
        fields: R,
    ) -> std::fmt::Result {
        let mut plain = String::new();
        DefaultFields::new().format_fields(Writer::new(&mut plain), fields)?;
        writer.write_str(&escape_controls(&plain))
    }
}

/// Writes JSON lines with the characters serde leaves raw (see
/// [`escape_controls`]) as `\uXXXX` escapes: they can only occur inside JSON
/// strings, where the escape means the same character.
#[derive(Debug)]
pub struct JsonEscaping<W>(pub W);

impl<W: std::io::Write> std::io::Write for JsonEscaping<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // the formatter hands over one whole line per write
        let Ok(text) = std::str::from_utf8(buf) else {
            return self.0.write(buf);
        };
        if !text.chars().any(|c| c != '\n' && needs_escape(c)) {
            return self.0.write(buf);
        }
        let mut out = String::with_capacity(text.len() + 16);
        for c in text.chars() {
            if c != '\n' && needs_escape(c) {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            } else {
                out.push(c);
            }
        }
        self.0.write_all(out.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Control characters (C0, DEL, C1), Unicode line separators and direction overrides.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with control characters (C0, DEL, C1: newlines, ESC, BEL ...) and
/// the Unicode line separators and direction overrides written as `\n`, `\r`,
/// `\t` or `\u{..}`; everything else unchanged.
pub fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.into()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use super::*;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(
            escape_controls("KubePodCrashLooping é"),
            "KubePodCrashLooping é"
        );
        assert_eq!(
            escape_controls("a\nINFO forged\r\t\u{1b}]0;t\u{7}\u{9b}2J\u{2028}\u{202e}"),
            "a\\nINFO forged\\r\\t\\u{1b}]0;t\\u{7}\\u{9b}2J\\u{2028}\\u{202e}"
        );
    }

    #[test]
    fn json_lines_escape_what_serde_leaves_raw() {
        use std::io::Write as _;
        let mut w = JsonEscaping(Vec::new());
        let line =
            serde_json::json!({"alertname": "a\u{9b}2J\u{7f}\u{202e}\u{1b}"}).to_string() + "\n";
        w.write_all(line.as_bytes()).unwrap();
        let out = String::from_utf8(w.0).unwrap();
        assert_eq!(out, "{\"alertname\":\"a\\u009b2J\\u007f\\u202e\\u001b\"}\n");
        let back: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(back["alertname"], "a\u{9b}2J\u{7f}\u{202e}\u{1b}");
    }

    #[test]
    fn fields_recorded_with_display_are_escaped_in_text_lines() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0
                    .lock()
                    .map_err(|_| std::io::ErrorKind::Other)?
                    .extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .fmt_fields(EscapedFields)
            .with_writer(move || writer.clone())
            .finish();
        let name = "X\n2030-01-01T00:00:00Z  INFO forged: admin logged in\u{1b}[2J";
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(alertname = %name, detail = ?name, "Alert seen.");
        });
        let out = String::from_utf8(buf.0.lock().map(|b| b.clone()).unwrap_or_default())
            .unwrap_or_default();
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(!out.contains('\u{1b}'), "{out:?}");
        assert!(out.contains("alertname=X\\n2030"), "{out}");
    }
}
