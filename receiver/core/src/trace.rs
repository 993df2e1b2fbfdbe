//! `TraceContext`: which trace a signal belongs to (W3C Trace Context).
//!
//! Owns: reading and writing the `traceparent` header value. A webhook's
//! `traceparent` names the sender's trace; heal8s makes each signal's spans
//! (receive, route, re-check, guard, act, verify) part of it, and keeps its
//! context on the signal and on every plan made from it, so the Remediation
//! record, the pull request and the log lines name the same trace id.
//! Exporting spans is the service's (`receiver::trace`); this is pure.
//!
//! The header is untrusted input: anything but a well-formed value is
//! ignored (the W3C rule: a receiver that cannot parse `traceparent` starts
//! a new trace), never an error for the delivery.

use serde::{Deserialize, Serialize};

/// One span's place in a trace: the trace id, the span's own id and whether
/// the trace is sampled. Written and read as a `traceparent` value
/// (`00-<32 hex>-<16 hex>-<2 hex>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TraceContext {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub sampled: bool,
}

/// Why a `traceparent` value was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("traceparent: {0}")]
pub struct BadTraceparent(&'static str);

/// The longest `traceparent` value read (a later version may append fields;
/// version 00 is 55 bytes).
const MAX_LEN: usize = 512;

impl TraceContext {
    /// Read a `traceparent` header value (W3C Trace Context, level 1):
    /// version 00 exactly, a later version by its first four fields; version
    /// `ff`, an all-zero trace or span id, upper-case hex or a wrong length
    /// is refused.
    pub fn parse(value: &str) -> Result<TraceContext, BadTraceparent> {
        let v = value.trim_matches([' ', '\t']);
        if v.len() > MAX_LEN {
            return Err(BadTraceparent("longer than 512 bytes"));
        }
        let mut parts = v.split('-');
        let (Some(version), Some(trace), Some(span), Some(flags)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(BadTraceparent("not four fields separated by '-'"));
        };
        let version =
            hex_bytes::<1>(version).ok_or(BadTraceparent("version is not 2 hex digits"))?;
        if version[0] == 0xff {
            return Err(BadTraceparent("version ff is invalid"));
        }
        if version[0] == 0 && parts.next().is_some() {
            return Err(BadTraceparent("version 00 has exactly four fields"));
        }
        let trace_id = hex_bytes::<16>(trace)
            .ok_or(BadTraceparent("trace-id is not 32 lower-case hex digits"))?;
        let span_id = hex_bytes::<8>(span)
            .ok_or(BadTraceparent("parent-id is not 16 lower-case hex digits"))?;
        let flags =
            hex_bytes::<1>(flags).ok_or(BadTraceparent("trace-flags is not 2 hex digits"))?;
        if trace_id == [0; 16] {
            return Err(BadTraceparent("trace-id is all zeros"));
        }
        if span_id == [0; 8] {
            return Err(BadTraceparent("parent-id is all zeros"));
        }
        Ok(TraceContext {
            trace_id,
            span_id,
            sampled: flags[0] & 1 == 1,
        })
    }

    /// The trace id as 32 lower-case hex digits (how records, pull requests
    /// and logs name it).
    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }

    /// The span id as 16 lower-case hex digits.
    pub fn span_id_hex(&self) -> String {
        hex(&self.span_id)
    }

    /// The `traceparent` value (version 00).
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            self.trace_id_hex(),
            self.span_id_hex(),
            u8::from(self.sampled)
        )
    }
}

impl std::fmt::Display for TraceContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.traceparent())
    }
}

impl From<TraceContext> for String {
    fn from(t: TraceContext) -> String {
        t.traceparent()
    }
}

impl TryFrom<String> for TraceContext {
    type Error = BadTraceparent;
    fn try_from(s: String) -> Result<TraceContext, BadTraceparent> {
        TraceContext::parse(&s)
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// `N` bytes from exactly `2N` lower-case hex digits.
fn hex_bytes<const N: usize>(s: &str) -> Option<[u8; N]> {
    let b = s.as_bytes();
    if b.len() != 2 * N {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, pair) in b.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const W3C: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_w3c_example_reads_and_writes_back_the_same() {
        let t = TraceContext::parse(W3C).unwrap();
        assert_eq!(t.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.span_id_hex(), "00f067aa0ba902b7");
        assert!(t.sampled);
        assert_eq!(t.traceparent(), W3C);
        let unsampled = TraceContext::parse(&W3C.replace("-01", "-00")).unwrap();
        assert!(!unsampled.sampled);
        // other flag bits are kept out; sampled is bit 0
        assert!(
            TraceContext::parse(&W3C.replace("-01", "-03"))
                .unwrap()
                .sampled
        );
        assert!(
            !TraceContext::parse(&W3C.replace("-01", "-02"))
                .unwrap()
                .sampled
        );
    }

    #[test]
    fn a_later_version_is_read_by_its_first_four_fields() {
        let t = TraceContext::parse(&format!("cc{}-what-ever", &W3C[2..])).unwrap();
        assert_eq!(t.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn malformed_values_are_refused_with_the_field_named() {
        let cases = [
            ("", "four fields"),
            ("00-abc", "four fields"),
            (&W3C.replacen("00", "ff", 1), "version ff"),
            (&W3C.replacen("00", "0g", 1), "version"),
            (&format!("{W3C}-extra"), "exactly four"),
            (&W3C.replace("4bf92f", "4BF92F"), "trace-id"),
            (
                &W3C.replace("4bf92f3577b34da6a3ce929d0e0e4736", "4bf92f"),
                "trace-id",
            ),
            (
                &W3C.replace("4bf92f3577b34da6a3ce929d0e0e4736", &"0".repeat(32)),
                "all zeros",
            ),
            (
                &W3C.replace("00f067aa0ba902b7", &"0".repeat(16)),
                "parent-id is all zeros",
            ),
            (
                &W3C.replace("00f067aa0ba902b7", "00f067aa0ba902b"),
                "parent-id",
            ),
            (&W3C.replace("-01", "-1"), "trace-flags"),
            (&"0".repeat(600), "512"),
        ];
        for (value, says) in cases {
            let e = TraceContext::parse(value).unwrap_err().to_string();
            assert!(e.contains(says), "{value:?}: {e}");
        }
    }

    #[test]
    fn it_travels_in_json_as_its_traceparent() {
        let t = TraceContext::parse(W3C).unwrap();
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, format!("\"{W3C}\""));
        assert_eq!(serde_json::from_str::<TraceContext>(&json).unwrap(), t);
        assert!(serde_json::from_str::<TraceContext>("\"00-zz\"").is_err());
    }
}
