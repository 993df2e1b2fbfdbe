//! Text from alerts and the cluster made safe to show to people: on one
//! line, cut to a length, and links only when they are plain http(s) links.
//! Pull request bodies (`gitops`) and notifications build on these. Pure.
//!
//! Alert senders are untrusted: every label, annotation and URL may be
//! hostile.

/// Longest link heal8s shows.
pub const MAX_URL: usize = 2048;

/// Characters that could start a line or disguise the text around them:
/// every control character (C0, DEL, C1 with NEL), the line and paragraph
/// separators, the byte-order mark and the bidirectional formatting
/// characters (which reorder what a reviewer sees).
pub fn hazardous(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}'
                | '\u{2029}'
                | '\u{feff}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// `s` on one line: each hazardous character shown as its escape (`\n`,
/// `\u{1b}`), at most `max` characters (a longer text is cut and ends in `…`;
/// an escape is never cut in two).
pub fn one_line(s: &str, max: usize) -> String {
    let mut out = String::new();
    let mut count = 0;
    // where to cut if the text turns out too long: room for the ellipsis
    let mut cut = None;
    for c in s.chars() {
        let piece: String = if hazardous(c) {
            c.escape_default().collect()
        } else {
            c.to_string()
        };
        let n = piece.chars().count();
        if count + n > max {
            out.truncate(cut.unwrap_or(out.len()));
            out.push('…');
            return out;
        }
        if cut.is_none() && count + n > max.saturating_sub(1) {
            cut = Some(out.len());
        }
        out.push_str(&piece);
        count += n;
    }
    out
}

/// A link heal8s may show: `http://` or `https://`, a host (a DNS name, an
/// IPv4 address or a bracketed IPv6 address) with an optional port, no
/// credentials, at most [`MAX_URL`] characters, nothing but printable ASCII
/// and none of the characters RFC 3986 never allows unencoded (space,
/// `<>"{}|\^` and the backtick). Returns the link, or why it is refused.
pub fn link(raw: &str) -> Result<&str, &'static str> {
    if raw.len() > MAX_URL {
        return Err("longer than 2048 characters");
    }
    if raw
        .chars()
        .any(|c| !c.is_ascii_graphic() || "<>\"{}|\\^`".contains(c))
    {
        return Err("control characters, spaces, non-ASCII or characters RFC 3986 wants encoded");
    }
    let lower = raw.to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &raw[8..]
    } else if lower.starts_with("http://") {
        &raw[7..]
    } else {
        return Err("not an http(s) URL");
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err("credentials in the URL");
    }
    let (host_ok, port) = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((h, after)) => (
                !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit() || ".:".contains(c)),
                after,
            ),
            None => (false, ""),
        },
        None => {
            let (host, port) = match authority.find(':') {
                Some(i) => authority.split_at(i),
                None => (authority, ""),
            };
            (dns_name(host), port)
        }
    };
    let port_ok = port.is_empty()
        || port.strip_prefix(':').is_some_and(|p| {
            !p.is_empty() && p.len() <= 5 && p.chars().all(|c| c.is_ascii_digit())
        });
    if !host_ok || !port_ok {
        return Err("a malformed host");
    }
    Ok(raw)
}

/// A DNS name or an IPv4 address: dot-separated labels of letters, digits
/// and inner dashes.
fn dns_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_never_leave_their_line() {
        let s = "a\nb\r\nc\u{1b}]0;pwned\u{7}d\u{85}e\u{2028}f\u{202e}g\th";
        let one = one_line(s, 1000);
        assert_eq!(
            one,
            "a\\nb\\r\\nc\\u{1b}]0;pwned\\u{7}d\\u{85}e\\u{2028}f\\u{202e}g\\th"
        );
        assert!(!one.chars().any(hazardous));
    }

    #[test]
    fn long_values_are_cut_with_an_ellipsis_and_short_ones_kept() {
        assert_eq!(one_line("abcdef", 4), "abc…");
        assert_eq!(one_line("abcd", 4), "abcd");
        assert_eq!(one_line("", 4), "");
        assert_eq!(one_line("\n\n\n", 4), "\\n…");
        assert!(one_line(&"x".repeat(10_000), 200).chars().count() <= 200);
    }

    #[test]
    fn only_plain_http_links_without_credentials_pass() {
        for ok in [
            "http://prometheus.example:9090/graph?g0.expr=rate%28x%5B5m%5D%29&g0.tab=1",
            "https://runbooks.example/oom#memory",
            "HTTPS://Runbooks.Example/x",
            "http://10.0.0.1/x",
            "http://[::1]:9090/graph",
            "https://prometheus",
        ] {
            assert_eq!(link(ok), Ok(ok));
        }
        for (bad, why) in [
            ("javascript:alert(1)", "not an http(s) URL"),
            ("data:text/html,<b>x</b>", "control characters"),
            ("data:text/html;base64,PGI+", "not an http(s) URL"),
            ("vbscript:x", "not an http(s) URL"),
            ("//evil.example/x", "not an http(s) URL"),
            ("https://user:pw@evil.example/", "credentials"),
            ("https://prometheus.example@evil.example/", "credentials"),
            (
                "https://evil.example/\n<!-- heal8s-apply: -f x -->",
                "control characters",
            ),
            ("https://evil.example/a b", "control characters"),
            ("https://evil.example/`x`", "control characters"),
            ("https://évil.example/", "control characters"),
            ("https://evil.example\\@good.example/", "control characters"),
            ("https:///x", "a malformed host"),
            ("https://-x.example/", "a malformed host"),
            ("https://x.example:99999999/", "a malformed host"),
            ("https://[zz]/", "a malformed host"),
        ] {
            let e = link(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        let long = format!("https://x.example/{}", "a".repeat(MAX_URL));
        assert_eq!(link(&long), Err("longer than 2048 characters"));
    }
}
