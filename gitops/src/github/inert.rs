//! Text from alerts, the cluster and the repository made inert for GitHub:
//! shown in a pull request's title, body or commit message, it can neither
//! start a line of its own, nor format, link, mention, embed or hide
//! anything. Pure; no IO.
//!
//! Alert senders are untrusted: every label, annotation and URL may be
//! hostile. So every value is put on one line (control characters shown as
//! escapes), cut to a length, and rendered as a code span it cannot close
//! (GitHub neither renders Markdown or HTML nor links mentions, references or
//! URLs inside code). Links must pass [`link`].

/// Most characters of one value in a body (a longer one is cut with `…`).
pub const MAX_VALUE: usize = 200;

pub use receiver_core::text::{MAX_URL, link, one_line};

/// `s` as an inline code span it cannot close: on one line, at most
/// [`MAX_VALUE`] characters, fenced by one backtick more than its longest
/// run of backticks.
pub fn code(s: &str) -> String {
    code_within(s, MAX_VALUE)
}

/// [`code`] with at most `max` characters shown.
pub fn code_within(s: &str, max: usize) -> String {
    let s = one_line(s, max);
    if s.is_empty() {
        return "(empty)".to_string();
    }
    let mut longest = 0;
    let mut run = 0;
    for c in s.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat(longest + 1);
    // a span that begins or ends with a backtick or a space needs padding:
    // CommonMark strips one space from each end when both have one
    let pad = s.starts_with(['`', ' ']) || s.ends_with(['`', ' ']);
    let sp = if pad { " " } else { "" };
    format!("{fence}{sp}{s}{sp}{fence}")
}

/// [`code`] for a table cell: a `|`, even inside a code span, would end the
/// cell, so it is escaped as GitHub's tables require.
pub fn cell(s: &str) -> String {
    code(s).replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn long_code_spans_are_cut() {
        assert!(one_line(&"x".repeat(10_000), MAX_VALUE).chars().count() <= MAX_VALUE);
        assert!(code(&"`".repeat(10_000)).chars().count() < 3 * MAX_VALUE + 10);
    }

    #[test]
    fn a_code_span_cannot_be_closed_by_what_it_shows() {
        assert_eq!(code("plain"), "`plain`");
        assert_eq!(code("a ` b"), "``a ` b``");
        assert_eq!(code("``x"), "``` ``x ```");
        assert_eq!(code(" x"), "`  x `");
        assert_eq!(code(""), "(empty)");
        assert_eq!(cell("a|b"), "`a\\|b`");
    }
}
