//! Each channel's message for a notice, as its service documents it: Slack
//! Block Kit, a Teams Adaptive Card (workflow webhook), DingTalk's markdown
//! robot message (with its signature), a Bark push, a PagerDuty Events API v2
//! event, the generic webhook's JSON, and a plain-text mail.
//!
//! Owns: the payloads and the escaping each service needs, so that text from
//! an alert (untrusted) can neither mention anyone, nor format, nor link.
//! Pure; no IO.
//!
//! Every text taken from a notice is put on one line and cut again here
//! ([`one_line`]), whoever made the notice, and every link must pass
//! [`link`] again. Then, per channel:
//!
//! - Slack: untrusted text only in `plain_text` objects (never parsed for
//!   formatting, mentions or links); the one `mrkdwn` text carries the links
//!   alone, `verbatim`, with `&`, `<` and `>` escaped; the fallback `text`
//!   escapes `&`, `<` and `>` too, so `<!channel>`, `<@U…>` and `<url|x>` are
//!   shown, not acted on (and `mrkdwn: false` keeps it from formatting).
//! - Teams: the title, message and examples are `TextRun`s of a
//!   `RichTextBlock`, which Adaptive Cards never render as Markdown; facts
//!   (whose values Teams does render as Markdown) are escaped ([`markdown`]).
//!   No `msteams.entities`, so no mention.
//! - DingTalk: Markdown escaped ([`markdown`]); no `at`, so no mention.
//! - Bark, PagerDuty, email: plain text.

use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use receiver_core::notify::{Event, MAX_EVIDENCE, MAX_MESSAGE, MAX_VALUE, Notice, Severity};
use receiver_core::text::{link, one_line};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// Longest title shown (a summary's title names its namespace, which core
/// does not bound).
const MAX_TITLE: usize = 300;
/// Targets a summary shows at most (as [`receiver_core::notify::group::EXAMPLES`]).
const MAX_EXAMPLES: usize = receiver_core::notify::group::EXAMPLES;

/// Slack Block Kit's limits (<https://api.slack.com/reference/block-kit/blocks>).
const SLACK_HEADER: usize = 150;
const SLACK_SECTION: usize = 3000;
const SLACK_FIELDS: usize = 10;
const SLACK_FIELD: usize = 2000;
const SLACK_CONTEXT: usize = 10;
const SLACK_BLOCKS: usize = 50;

/// PagerDuty's limits: `payload.summary` and `dedup_key`.
const PD_SUMMARY: usize = 1024;
const PD_DEDUP_KEY: usize = 255;

/// Longest mail subject.
const SUBJECT: usize = 200;

/// Bark: bytes (as JSON) of the title, the body and the url together, well
/// within the 4096 bytes of an APNs payload (which also carries Bark's keys).
const BARK_BYTES: usize = 3000;
/// Bark: bytes (as JSON) of the title at most, and of the body at least.
const BARK_TITLE: usize = 512;
const BARK_BODY_MIN: usize = 256;

/// `s` on one line, at most [`MAX_VALUE`] characters.
fn value(s: &str) -> String {
    one_line(s, MAX_VALUE)
}

/// `s` at most `max` characters: a longer one is cut and ends in `…`.
fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Bytes `c` takes in a JSON string.
fn json_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
        c if u32::from(c) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

/// `s` at most `max` bytes once in a JSON string: a longer one is cut and
/// ends in `…`.
fn cut_json(s: &str, max: usize) -> String {
    if s.chars().map(json_len).sum::<usize>() <= max {
        return s.to_string();
    }
    let room = max.saturating_sub('…'.len_utf8());
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        used += json_len(c);
        if used > room {
            break;
        }
        out.push(c);
    }
    out.push('…');
    out
}

/// The notice's title on one line, never empty.
fn title(n: &Notice) -> String {
    let t = one_line(&n.title, MAX_TITLE);
    if t.trim().is_empty() {
        format!("heal8s: {}", n.event.as_str().replace('_', " "))
    } else {
        t
    }
}

/// The notice's message on one line; `None` when blank.
fn message(n: &Notice) -> Option<String> {
    let m = one_line(n.message.trim(), MAX_MESSAGE);
    (!m.is_empty()).then_some(m)
}

/// What came of it: the result, with the refusal's reason.
fn result(n: &Notice) -> String {
    match n.reason {
        Some(r) => format!("{} ({})", value(&n.result), r.as_str()),
        None => value(&n.result),
    }
}

/// The alert or detector: `alert KubePodCrashLooping`.
fn signal(n: &Notice) -> String {
    format!("{} {}", n.source.as_str(), value(&n.signal))
}

/// The facts every channel shows, labelled, in order; at most 9 (one Slack
/// section holds 10 fields).
fn facts(n: &Notice) -> Vec<(&'static str, String)> {
    let mut f = vec![("Severity", n.severity.as_str().to_string())];
    if let Some(c) = &n.cluster {
        f.push(("Cluster", value(c)));
    }
    if let Some(ns) = &n.namespace {
        f.push(("Namespace", value(ns)));
    }
    if let Some(t) = &n.target {
        let label = if n.count > 1 {
            "Latest target"
        } else {
            "Target"
        };
        f.push((label, value(t)));
    }
    if let Some(r) = n.remediation {
        f.push(("Remediation", r.as_str().to_string()));
    }
    f.push(("Signal", signal(n)));
    f.push(("Result", result(n)));
    if n.count > 1 {
        f.push(("Count", n.count.to_string()));
    }
    if let Some(r) = &n.route {
        f.push(("Route", value(r)));
    }
    f
}

/// The notice's links that (still) pass [`link`], labelled, in order.
fn links(n: &Notice) -> Vec<(&'static str, &str)> {
    let l = &n.links;
    [
        ("Pull request", &l.pull_request),
        ("Runbook", &l.runbook),
        ("Source", &l.source),
        ("Record", &l.record),
    ]
    .into_iter()
    .filter_map(|(label, u)| u.as_deref().and_then(|u| link(u).ok()).map(|u| (label, u)))
    .collect()
}

/// The evidence, each key and value on one line and cut.
fn evidence(n: &Notice) -> Vec<(String, String)> {
    n.evidence
        .iter()
        .take(MAX_EVIDENCE)
        .map(|(k, v)| (value(k), value(v)))
        .collect()
}

/// A summary's examples (targets), each on one line and cut; none for a
/// single notice.
fn examples(n: &Notice) -> Vec<String> {
    if n.count <= 1 {
        return Vec::new();
    }
    n.examples
        .iter()
        .take(MAX_EXAMPLES)
        .map(|e| value(e))
        .collect()
}

/// `s` for Slack `mrkdwn` (and the fallback `text`): its three control
/// characters escaped, so nothing in it can open a mention, a link or a
/// command (`<!channel>`, `<@U…>`, `<url|x>`).
pub fn mrkdwn(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// `s` (one line) for Markdown (Teams facts, DingTalk): every character that
/// can emphasise, link, embed, quote, fence, or start a heading or a list
/// escaped with a backslash, as CommonMark defines. A backslash before each
/// also breaks the two-character openers (`](`, `![`, `**`) for a renderer
/// that ignores escapes.
pub fn markdown(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    let indent = s.len() - s.trim_start_matches(' ').len();
    out.push_str(&s[..indent]);
    let rest = &s[indent..];
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    for (i, c) in rest.char_indices() {
        let special = matches!(
            c,
            '\\' | '`'
                | '*'
                | '_'
                | '~'
                | '['
                | ']'
                | '('
                | ')'
                | '{'
                | '}'
                | '<'
                | '>'
                | '#'
                | '!'
                | '|'
        );
        // where a line starts: a list item, a setext underline, an ordered list
        let at_start = (i == 0 && matches!(c, '-' | '+' | '='))
            || (digits > 0 && i == digits && matches!(c, '.' | ')'));
        if special || at_start {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A checked link as a Markdown link destination: parentheses, which would
/// end it, percent-encoded.
fn markdown_url(u: &str) -> String {
    u.replace('(', "%28").replace(')', "%29")
}

fn plain(text: &str) -> Value {
    json!({"type": "plain_text", "text": text, "emoji": false})
}

/// Slack incoming webhook: `text` (the fallback) and `blocks`.
///
/// A header (the title), a section of fields (severity, cluster, namespace,
/// target, remediation, signal, result, count, route), the message, a
/// summary's examples, the evidence as a context, and the links. Untrusted
/// text is only ever in `plain_text`; links are the only `mrkdwn`.
pub fn slack(n: &Notice) -> Value {
    let title = title(n);
    let mut blocks = vec![json!({
        "type": "header",
        "text": plain(&cut(&title, SLACK_HEADER)),
    })];
    let fields: Vec<Value> = facts(n)
        .into_iter()
        .take(SLACK_FIELDS)
        .map(|(k, v)| plain(&cut(&format!("{k}: {v}"), SLACK_FIELD)))
        .collect();
    blocks.push(json!({"type": "section", "fields": fields}));
    if let Some(m) = message(n) {
        blocks.push(json!({"type": "section", "text": plain(&cut(&m, SLACK_SECTION))}));
    }
    let examples = examples(n);
    if !examples.is_empty() {
        let text = format!("Examples: {}", examples.join(", "));
        blocks.push(json!({"type": "section", "text": plain(&cut(&text, SLACK_SECTION))}));
    }
    let evidence: Vec<String> = evidence(n)
        .into_iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    if !evidence.is_empty() {
        // at most 10 elements: the last one holds whatever is left
        let mut elements: Vec<String> = evidence.iter().take(SLACK_CONTEXT - 1).cloned().collect();
        if evidence.len() >= SLACK_CONTEXT {
            elements.push(evidence[SLACK_CONTEXT - 1..].join(" · "));
        }
        let elements: Vec<Value> = elements
            .iter()
            .map(|e| plain(&cut(e, SLACK_FIELD)))
            .collect();
        blocks.push(json!({"type": "context", "elements": elements}));
    }
    // the links, as few sections as their text's limit allows; a link too
    // long for a section on its own is left out
    let mut text = String::new();
    let mut sections = Vec::new();
    for (label, url) in links(n) {
        let piece = format!("<{}|{label}>", mrkdwn(url));
        let len = piece.chars().count();
        if len > SLACK_SECTION {
            continue;
        }
        if !text.is_empty() && text.chars().count() + 3 + len > SLACK_SECTION {
            sections.push(std::mem::take(&mut text));
        }
        if !text.is_empty() {
            text.push_str(" · ");
        }
        text.push_str(&piece);
    }
    if !text.is_empty() {
        sections.push(text);
    }
    for s in sections {
        blocks.push(json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": s, "verbatim": true},
        }));
    }
    blocks.truncate(SLACK_BLOCKS);
    json!({
        "text": format!("[{}] {}", n.severity.as_str(), mrkdwn(&title)),
        // the fallback is shown as it is, never formatted
        "mrkdwn": false,
        "blocks": blocks,
        "unfurl_links": false,
        "unfurl_media": false,
    })
}

/// A `RichTextBlock` of `TextRun`s (never rendered as Markdown).
fn rich(runs: Vec<Value>) -> Value {
    json!({"type": "RichTextBlock", "inlines": runs})
}

fn run(text: &str) -> Value {
    json!({"type": "TextRun", "text": text})
}

fn bold(text: &str) -> Value {
    json!({"type": "TextRun", "text": text, "weight": "Bolder"})
}

/// Microsoft Teams workflow webhook: a message with one Adaptive Card.
///
/// The title (bold, medium, coloured by severity), a FactSet of the facts,
/// the message, a summary's examples, the evidence as a second FactSet, and
/// an `Action.OpenUrl` per link.
pub fn teams(n: &Notice) -> Value {
    let color = match (n.event, n.severity) {
        (Event::Recovered, _) => "Good",
        (_, Severity::Critical | Severity::High) => "Attention",
        (_, Severity::Warning) => "Warning",
        (_, Severity::Info) => "Default",
    };
    let mut body = vec![rich(vec![json!({
        "type": "TextRun",
        "text": title(n),
        "weight": "Bolder",
        "size": "Medium",
        "color": color,
    })])];
    let facts: Vec<Value> = facts(n)
        .into_iter()
        .map(|(k, v)| json!({"title": k, "value": markdown(&v)}))
        .collect();
    body.push(json!({"type": "FactSet", "facts": facts}));
    if let Some(m) = message(n) {
        body.push(rich(vec![run(&m)]));
    }
    let examples = examples(n);
    if !examples.is_empty() {
        body.push(rich(vec![bold("Examples: "), run(&examples.join(", "))]));
    }
    let evidence = evidence(n);
    if !evidence.is_empty() {
        body.push(rich(vec![bold("Evidence")]));
        let facts: Vec<Value> = evidence
            .iter()
            .map(|(k, v)| json!({"title": markdown(k), "value": markdown(v)}))
            .collect();
        body.push(json!({"type": "FactSet", "facts": facts}));
    }
    let actions: Vec<Value> = links(n)
        .into_iter()
        .map(|(label, url)| json!({"type": "Action.OpenUrl", "title": label, "url": url}))
        .collect();
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": body,
                "actions": actions,
            },
        }],
    })
}

/// DingTalk robot: a markdown message.
///
/// `title` (what the conversation list shows, plain) names heal8s, so a
/// robot whose security setting is the keyword `heal8s` takes it; `text` is
/// the title as a heading, the facts as a list, the message, a summary's
/// examples, the evidence and the links, every untrusted text escaped. No
/// `at`: nobody is mentioned.
pub fn dingtalk(n: &Notice) -> Value {
    let title = title(n);
    let mut text = format!("#### {}\n\n", markdown(&title));
    for (k, v) in facts(n) {
        let _ = writeln!(text, "- **{k}**: {}", markdown(&v));
    }
    text.push('\n');
    if let Some(m) = message(n) {
        let _ = write!(text, "{}\n\n", markdown(&m));
    }
    let examples = examples(n);
    if !examples.is_empty() {
        let shown: Vec<String> = examples.iter().map(|e| markdown(e)).collect();
        let _ = write!(text, "**Examples**: {}\n\n", shown.join(", "));
    }
    let evidence = evidence(n);
    if !evidence.is_empty() {
        text.push_str("**Evidence**\n\n");
        for (k, v) in &evidence {
            let _ = writeln!(text, "- {}: {}", markdown(k), markdown(v));
        }
        text.push('\n');
    }
    let links: Vec<String> = links(n)
        .into_iter()
        .map(|(label, url)| format!("[{label}]({})", markdown_url(url)))
        .collect();
    if !links.is_empty() {
        let _ = write!(text, "{}\n\n", links.join(" · "));
    }
    text.push_str("heal8s");
    json!({
        "msgtype": "markdown",
        "markdown": {
            "title": cut(&format!("heal8s [{}] {title}", n.severity.as_str()), MAX_TITLE),
            "text": text,
        },
    })
}

/// `s` percent-encoded for a URL's query: everything but RFC 3986's
/// unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// DingTalk's signature: base64 of HMAC-SHA256 keyed with the secret over
/// `"<ms>\n<secret>"`, percent-encoded.
fn dingtalk_sign(secret: &str, timestamp_ms: i64) -> String {
    // HMAC takes a key of any length
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(format!("{timestamp_ms}\n{secret}").as_bytes());
    percent_encode(&BASE64.encode(mac.finalize().into_bytes()))
}

/// The DingTalk robot URL with the signature its "additional signature"
/// setting requires: `&timestamp=<ms>&sign=<urlencoded base64 HMAC-SHA256 of
/// "<ms>\n<secret>" keyed with the secret>`.
pub fn dingtalk_signed_url(url: &str, secret: &str, timestamp_ms: i64) -> String {
    let (base, fragment) = match url.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (url, None),
    };
    let joint = if !base.contains('?') {
        "?"
    } else if base.ends_with(['?', '&']) {
        ""
    } else {
        "&"
    };
    let mut out = format!(
        "{base}{joint}timestamp={timestamp_ms}&sign={}",
        dingtalk_sign(secret, timestamp_ms)
    );
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

/// Bark: the JSON body POSTed to the device URL (`https://api.day.app/<key>`).
///
/// `title`, a plain-text `body` (the target and cluster, the signal and
/// result, the message, a summary's examples), `group` `heal8s`, `level` by
/// severity (critical: `critical`, which rings even when the phone is
/// silenced; high: `timeSensitive`, shown in a Focus; else `active`; a
/// recovery is never louder than `active`), and `url`, the pull request or
/// the record, when there is one. Title, body and url together stay within
/// an APNs payload.
pub fn bark(n: &Notice) -> Value {
    let title = cut_json(&title(n), BARK_TITLE);
    let url = n
        .links
        .pull_request
        .as_deref()
        .or(n.links.record.as_deref())
        .and_then(|u| link(u).ok());
    let mut lines = Vec::new();
    let place: Vec<String> = [
        n.target.as_deref().map(value),
        n.cluster
            .as_deref()
            .map(|c| format!("cluster {}", value(c))),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !place.is_empty() {
        lines.push(place.join(" · "));
    }
    lines.push(format!("{} → {}", signal(n), result(n)));
    if let Some(m) = message(n) {
        lines.push(m);
    }
    let examples = examples(n);
    if !examples.is_empty() {
        lines.push(format!("Examples: {}", examples.join(", ")));
    }
    let title_len: usize = title.chars().map(json_len).sum();
    let url_len = url.map_or(0, str::len);
    let room = BARK_BYTES
        .saturating_sub(title_len + url_len)
        .max(BARK_BODY_MIN);
    let level = match (n.event, n.severity) {
        (Event::Recovered, _) => "active",
        (_, Severity::Critical) => "critical",
        (_, Severity::High) => "timeSensitive",
        (_, Severity::Warning | Severity::Info) => "active",
    };
    let mut v = json!({
        "title": title,
        "body": cut_json(&lines.join("\n"), room),
        "group": "heal8s",
        "level": level,
    });
    if let (Some(u), Some(o)) = (url, v.as_object_mut()) {
        o.insert("url".into(), Value::from(u));
    }
    v
}

/// The notice's dedup key within PagerDuty's 255 characters: a longer one
/// keeps its start and ends in a digest of the whole, so it stays stable
/// (a trigger and its resolve meet) and distinct.
fn pagerduty_dedup_key(n: &Notice) -> String {
    let key = n.dedup_key();
    if key.len() <= PD_DEDUP_KEY {
        return key;
    }
    let digest = Sha256::digest(key.as_bytes());
    let mut hex = String::with_capacity(32);
    for b in &digest[..16] {
        let _ = write!(hex, "{b:02x}");
    }
    let mut end = PD_DEDUP_KEY - 1 - hex.len();
    while !key.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}~{hex}", &key[..end])
}

/// Everything useful about the notice for PagerDuty's `custom_details`.
fn pagerduty_details(n: &Notice) -> Value {
    let mut d = Map::new();
    let mut put = |k: &str, v: Value| {
        d.insert(k.to_string(), v);
    };
    put("event", n.event.as_str().into());
    put("severity", n.severity.as_str().into());
    put("at", n.at.to_string().into());
    for (k, v) in [
        ("cluster", &n.cluster),
        ("namespace", &n.namespace),
        ("kind", &n.kind),
        ("name", &n.name),
        ("target", &n.target),
        ("route", &n.route),
        ("record", &n.record),
    ] {
        if let Some(v) = v {
            put(k, value(v).into());
        }
    }
    if let Some(r) = n.remediation {
        put("remediation", r.as_str().into());
    }
    put("source", n.source.as_str().into());
    put("signal", value(&n.signal).into());
    put("result", value(&n.result).into());
    if let Some(r) = n.reason {
        put("reason", r.as_str().into());
    }
    if let Some(m) = message(n) {
        put("message", m.into());
    }
    let evidence: Map<String, Value> = evidence(n)
        .into_iter()
        .map(|(k, v)| (k, Value::from(v)))
        .collect();
    if !evidence.is_empty() {
        put("evidence", Value::Object(evidence));
    }
    put("key", value(&n.key).into());
    put("count", n.count.into());
    let examples = examples(n);
    if !examples.is_empty() {
        put("examples", examples.into());
    }
    Value::Object(d)
}

/// PagerDuty Events API v2: `trigger` (or `resolve` for a recovery), deduplicated by the notice's stable key.
///
/// A trigger's `payload`: `summary` (the title), `source` (the cluster, or
/// `heal8s`), `severity` (critical, error for high, warning, info),
/// `timestamp`, `component` (the target), `group` (the namespace), `class`
/// (`<remediation>/<event>`) and `custom_details`; `links` to the pull
/// request, runbook, source and record; `client` heal8s (`client_url`: the
/// record). A resolve is the routing key, the action and the dedup key only.
pub fn pagerduty(n: &Notice, routing_key: &str) -> Value {
    let dedup_key = pagerduty_dedup_key(n);
    if n.event == Event::Recovered {
        return json!({
            "routing_key": routing_key,
            "event_action": "resolve",
            "dedup_key": dedup_key,
        });
    }
    let severity = match n.severity {
        Severity::Critical => "critical",
        Severity::High => "error",
        Severity::Warning => "warning",
        Severity::Info => "info",
    };
    let source = n
        .cluster
        .as_deref()
        .map(value)
        .filter(|c| !c.trim().is_empty())
        .unwrap_or_else(|| "heal8s".to_string());
    let class = match n.remediation {
        Some(r) => format!("{}/{}", r.as_str(), n.event.as_str()),
        None => n.event.as_str().to_string(),
    };
    let mut payload = Map::new();
    payload.insert("summary".into(), cut(&title(n), PD_SUMMARY).into());
    payload.insert("source".into(), source.into());
    payload.insert("severity".into(), severity.into());
    payload.insert("timestamp".into(), n.at.to_string().into());
    if let Some(t) = &n.target {
        payload.insert("component".into(), value(t).into());
    }
    if let Some(ns) = &n.namespace {
        payload.insert("group".into(), value(ns).into());
    }
    payload.insert("class".into(), class.into());
    payload.insert("custom_details".into(), pagerduty_details(n));
    let mut event = Map::new();
    event.insert("routing_key".into(), routing_key.into());
    event.insert("event_action".into(), "trigger".into());
    event.insert("dedup_key".into(), dedup_key.into());
    event.insert("payload".into(), Value::Object(payload));
    let links: Vec<Value> = links(n)
        .into_iter()
        .map(|(label, url)| json!({"href": url, "text": label}))
        .collect();
    if !links.is_empty() {
        event.insert("links".into(), links.into());
    }
    event.insert("client".into(), "heal8s".into());
    if let Some(record) = n.links.record.as_deref().and_then(|u| link(u).ok()) {
        event.insert("client_url".into(), record.into());
    }
    Value::Object(event)
}

/// The generic webhook: the notice itself, versioned.
pub fn webhook(n: &Notice) -> Value {
    json!({
        "version": "1",
        "notice": serde_json::to_value(n).unwrap_or(Value::Null),
    })
}

/// A mail: its subject and plain-text body.
///
/// Subject: `[heal8s][<severity>] <title>`, one line, at most 200
/// characters. Body: labelled lines (What, Severity, Where, Why,
/// Remediation, Result, Details, a summary's Count and Examples, Evidence,
/// Links, Record, When, Key).
pub fn email(n: &Notice) -> (String, String) {
    let title = title(n);
    let subject = one_line(
        &format!("[heal8s][{}] {title}", n.severity.as_str()),
        SUBJECT,
    );
    let mut b = String::new();
    let _ = writeln!(b, "What: {title}");
    let _ = writeln!(b, "Severity: {}", n.severity.as_str());
    let mut place = Vec::new();
    if let Some(t) = &n.target {
        place.push(value(t));
    }
    if let Some(ns) = &n.namespace {
        place.push(format!("namespace {}", value(ns)));
    }
    if let Some(c) = &n.cluster {
        place.push(format!("cluster {}", value(c)));
    }
    if !place.is_empty() {
        let _ = writeln!(b, "Where: {}", place.join(", "));
    }
    let why = match &n.route {
        Some(r) => format!("{} (route {})", signal(n), value(r)),
        None => signal(n),
    };
    let _ = writeln!(b, "Why: {why}");
    if let Some(r) = n.remediation {
        let _ = writeln!(b, "Remediation: {}", r.as_str());
    }
    let _ = writeln!(b, "Result: {}", result(n));
    if let Some(m) = message(n) {
        let _ = writeln!(b, "Details: {m}");
    }
    if n.count > 1 {
        let _ = writeln!(b, "Count: {}", n.count);
        let examples = examples(n);
        if !examples.is_empty() {
            let _ = writeln!(b, "Examples: {}", examples.join(", "));
        }
    }
    let evidence = evidence(n);
    if !evidence.is_empty() {
        b.push_str("Evidence:\n");
        for (k, v) in &evidence {
            let _ = writeln!(b, "  {k}: {v}");
        }
    }
    let links = links(n);
    if !links.is_empty() {
        b.push_str("Links:\n");
        for (label, url) in links {
            let _ = writeln!(b, "  {label}: {url}");
        }
    }
    if let Some(r) = &n.record {
        let _ = writeln!(b, "Record: {}", value(r));
    }
    let _ = writeln!(b, "When: {}", n.at);
    let _ = writeln!(b, "Key: {}", value(&n.key));
    b.push_str("\n-- \nheal8s\n");
    (subject, b)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use jiff::Timestamp;
    use receiver_core::guard::RefusalReason;
    use receiver_core::notify::Links;
    use receiver_core::remediation::RemediationKind;
    use receiver_core::signal::SourceKind;

    use super::*;

    const HOSTILE: &str = "<!channel> *x* [a](http://evil) <@U123> <https://evil.example|click> **b** _i_ `c` ![img](http://evil/p.png) # h";

    fn notice(event: Event) -> Notice {
        Notice {
            event,
            severity: Severity::High,
            at: Timestamp::from_second(1_800_000_000).unwrap(),
            cluster: Some("prod".into()),
            namespace: Some("shop".into()),
            kind: Some("Pod".into()),
            name: Some("api-1".into()),
            target: Some("Pod shop/api-1".into()),
            remediation: Some(RemediationKind::DeletePod),
            route: Some("crashloop".into()),
            source: SourceKind::Alert,
            signal: "KubePodCrashLooping".into(),
            result: "acted".into(),
            reason: None,
            title: "Done: delete pod shop/api-1".into(),
            message: "deleted".into(),
            evidence: BTreeMap::from([
                ("reason".to_string(), "CrashLoopBackOff".to_string()),
                ("restarts".to_string(), "7".to_string()),
            ]),
            links: Links {
                pull_request: None,
                runbook: Some("https://runbooks.example/crashloop".into()),
                source: Some("http://prometheus.example:9090/graph?g0.expr=up&g0.tab=1".into()),
                record: Some("https://heal8s.example/#rem-api-1".into()),
            },
            record: Some("rem-api-1".into()),
            key: "Deployment/shop/api".into(),
            count: 1,
            examples: Vec::new(),
        }
    }

    fn hostile() -> Notice {
        let mut n = notice(Event::Failed);
        n.title = format!("Failed: {HOSTILE}");
        n.signal = HOSTILE.into();
        n.message = HOSTILE.into();
        n.target = Some(format!("Pod {HOSTILE}"));
        n.namespace = Some(HOSTILE.into());
        n.cluster = Some(HOSTILE.into());
        n.route = Some(HOSTILE.into());
        n.evidence = BTreeMap::from([(HOSTILE.to_string(), HOSTILE.to_string())]);
        n.count = 3;
        n.examples = vec![HOSTILE.into(), "Pod shop/api-2".into()];
        n
    }

    /// Every string in `v`, with the key it is under.
    fn strings<'a>(v: &'a Value, key: &'a str, out: &mut Vec<(&'a str, &'a str)>) {
        match v {
            Value::String(s) => out.push((key, s)),
            Value::Array(a) => a.iter().for_each(|x| strings(x, key, out)),
            Value::Object(o) => o.iter().for_each(|(k, x)| strings(x, k, out)),
            _ => {}
        }
    }

    /// Every text object (`{"type": .., "text": ..}`) in `v`.
    fn text_objects<'a>(v: &'a Value, out: &mut Vec<(&'a str, &'a str)>) {
        match v {
            Value::Array(a) => a.iter().for_each(|x| text_objects(x, out)),
            Value::Object(o) => {
                if let (Some(Value::String(t)), Some(Value::String(s))) =
                    (o.get("type"), o.get("text"))
                {
                    out.push((t, s));
                }
                o.values().for_each(|x| text_objects(x, out));
            }
            _ => {}
        }
    }

    #[test]
    fn markdown_escapes_what_could_format_link_or_start_a_block() {
        assert_eq!(markdown("plain text, ok."), "plain text, ok.");
        assert_eq!(
            markdown("*x* [a](http://evil)"),
            "\\*x\\* \\[a\\]\\(http://evil\\)"
        );
        assert_eq!(
            markdown("![i](u) <b> `c` _i_ ~s~ #h |t|"),
            "\\!\\[i\\]\\(u\\) \\<b\\> \\`c\\` \\_i\\_ \\~s\\~ \\#h \\|t\\|"
        );
        assert_eq!(markdown("- item"), "\\- item");
        assert_eq!(markdown("  + item"), "  \\+ item");
        assert_eq!(markdown("=== "), "\\=== ");
        assert_eq!(markdown("1986. a year"), "1986\\. a year");
        assert_eq!(markdown("2) b"), "2\\) b");
        assert_eq!(markdown("a - b 1. c"), "a - b 1. c");
        assert_eq!(markdown("a\\*"), "a\\\\\\*");
        assert_eq!(
            markdown("{{DATE(2017-02-14T06:08:00Z)}}"),
            "\\{\\{DATE\\(2017-02-14T06:08:00Z\\)\\}\\}"
        );
    }

    #[test]
    fn mrkdwn_escapes_its_three_control_characters() {
        assert_eq!(
            mrkdwn("<!channel> & <@U1> <http://x|y>"),
            "&lt;!channel&gt; &amp; &lt;@U1&gt; &lt;http://x|y&gt;"
        );
    }

    #[test]
    fn slack_shows_the_notice_in_blocks_with_a_fallback() {
        let v = slack(&notice(Event::Acted));
        assert_eq!(v["text"], "[high] Done: delete pod shop/api-1");
        assert_eq!(v["unfurl_links"], false);
        assert_eq!(v["mrkdwn"], false);
        let blocks = v["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(blocks[0]["text"]["type"], "plain_text");
        assert_eq!(blocks[0]["text"]["text"], "Done: delete pod shop/api-1");
        let fields: Vec<&str> = blocks[1]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["text"].as_str().unwrap())
            .collect();
        assert_eq!(
            fields,
            [
                "Severity: high",
                "Cluster: prod",
                "Namespace: shop",
                "Target: Pod shop/api-1",
                "Remediation: delete-pod",
                "Signal: alert KubePodCrashLooping",
                "Result: acted",
                "Route: crashloop",
            ]
        );
        assert_eq!(blocks[2]["text"]["text"], "deleted");
        assert_eq!(blocks[3]["type"], "context");
        assert_eq!(blocks[3]["elements"][0]["text"], "reason: CrashLoopBackOff");
        assert_eq!(
            blocks[4]["text"],
            json!({
                "type": "mrkdwn",
                "verbatim": true,
                "text": "<https://runbooks.example/crashloop|Runbook> · <http://prometheus.example:9090/graph?g0.expr=up&amp;g0.tab=1|Source> · <https://heal8s.example/#rem-api-1|Record>",
            })
        );
        assert_eq!(blocks.len(), 5);
    }

    #[test]
    fn slack_shows_only_the_links_there_are() {
        let mut n = notice(Event::PullRequest);
        n.links = Links {
            pull_request: Some("https://github.example/o/r/pull/7".into()),
            runbook: Some("javascript:alert(1)".into()),
            ..Links::default()
        };
        let v = slack(&n);
        let last = v["blocks"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(
            last["text"]["text"],
            "<https://github.example/o/r/pull/7|Pull request>"
        );
        n.links = Links::default();
        let v = slack(&n);
        let mut texts = Vec::new();
        text_objects(&v, &mut texts);
        assert!(texts.iter().all(|(t, _)| *t == "plain_text"), "{texts:?}");
    }

    #[test]
    fn slack_keeps_hostile_text_inert() {
        let v = slack(&hostile());
        let text = v["text"].as_str().unwrap();
        assert!(!text.contains('<') && !text.contains('>'), "{text}");
        assert!(text.contains("&lt;!channel&gt;"), "{text}");
        let mut texts = Vec::new();
        text_objects(&v["blocks"], &mut texts);
        for (kind, s) in &texts {
            match *kind {
                "plain_text" => {}
                "mrkdwn" => {
                    // only our own links, whose text is a fixed label
                    assert!(!s.contains("evil"), "{s}");
                    assert!(!s.contains("<!") && !s.contains("<@"), "{s}");
                }
                other => panic!("unexpected text type {other}"),
            }
        }
        // the hostile text is there, shown as it is, in plain text only
        assert!(
            texts
                .iter()
                .any(|(k, s)| *k == "plain_text" && s.contains(HOSTILE)),
            "{texts:?}"
        );
        let examples = texts
            .iter()
            .find(|(_, s)| s.starts_with("Examples: "))
            .unwrap();
        assert_eq!(examples.0, "plain_text");
    }

    #[test]
    fn slack_respects_block_kit_limits() {
        let mut n = hostile();
        n.title = "t".repeat(5000);
        n.message = "m".repeat(5000);
        n.evidence = (0..20)
            .map(|i| (format!("k{i:02}{}", "k".repeat(300)), "v".repeat(300)))
            .collect();
        n.links.source = Some(format!("https://x.example/?{}", "a=1&".repeat(500)));
        let v = slack(&n);
        let blocks = v["blocks"].as_array().unwrap();
        assert!(blocks.len() <= SLACK_BLOCKS);
        assert_eq!(
            blocks[0]["text"]["text"].as_str().unwrap().chars().count(),
            SLACK_HEADER
        );
        for b in blocks {
            if let Some(f) = b["fields"].as_array() {
                assert!(f.len() <= SLACK_FIELDS);
                assert!(
                    f.iter()
                        .all(|f| f["text"].as_str().unwrap().chars().count() <= SLACK_FIELD)
                );
            }
            if let Some(t) = b["text"]["text"].as_str() {
                assert!(t.chars().count() <= SLACK_SECTION);
            }
            if let Some(e) = b["elements"].as_array() {
                assert!(e.len() <= SLACK_CONTEXT, "{}", e.len());
            }
        }
        // the source link is too long for a section once escaped: left out
        let last = blocks.last().unwrap()["text"]["text"].as_str().unwrap();
        assert!(!last.contains("x.example"), "{last}");
        assert!(last.contains("|Runbook>"), "{last}");
    }

    #[test]
    fn teams_sends_one_adaptive_card_with_facts_and_actions() {
        let v = teams(&notice(Event::Failed));
        assert_eq!(v["type"], "message");
        let a = &v["attachments"][0];
        assert_eq!(a["contentType"], "application/vnd.microsoft.card.adaptive");
        assert_eq!(a["contentUrl"], Value::Null);
        let card = &a["content"];
        assert_eq!(card["type"], "AdaptiveCard");
        assert_eq!(card["version"], "1.4");
        let title = &card["body"][0]["inlines"][0];
        assert_eq!(title["text"], "Done: delete pod shop/api-1");
        assert_eq!(
            (&title["weight"], &title["size"], &title["color"]),
            (&json!("Bolder"), &json!("Medium"), &json!("Attention"))
        );
        assert_eq!(card["body"][1]["type"], "FactSet");
        assert_eq!(
            card["body"][1]["facts"][3],
            json!({"title": "Target", "value": "Pod shop/api-1"})
        );
        let actions = card["actions"].as_array().unwrap();
        assert_eq!(actions.len(), 3);
        assert_eq!(
            actions[0],
            json!({"type": "Action.OpenUrl", "title": "Runbook", "url": "https://runbooks.example/crashloop"})
        );
    }

    #[test]
    fn teams_keeps_hostile_text_inert() {
        let v = teams(&hostile());
        let escaped = markdown(HOSTILE);
        assert!(
            escaped.contains("\\<\\!channel\\> \\*x\\* \\[a\\]\\(http://evil\\)"),
            "{escaped}"
        );
        let mut all = Vec::new();
        strings(&v, "", &mut all);
        for (key, s) in &all {
            match *key {
                // TextRuns are never Markdown: shown as they are
                "text" => {}
                "title" | "value" if s.contains("evil") => {
                    assert!(s.contains(&escaped), "{key}: {s}");
                }
                "url" => assert!(!s.contains("evil"), "{s}"),
                _ => {}
            }
        }
        assert!(!serde_json::to_string(&v).unwrap().contains("entities"));
        // the untrusted texts outside facts are TextRuns only
        let card = &v["attachments"][0]["content"];
        for b in card["body"].as_array().unwrap() {
            assert!(
                b["type"] == "RichTextBlock" || b["type"] == "FactSet",
                "{b}"
            );
        }
    }

    #[test]
    fn dingtalk_sends_escaped_markdown_and_mentions_nobody() {
        let v = dingtalk(&notice(Event::Acted));
        assert_eq!(v["msgtype"], "markdown");
        assert_eq!(
            v["markdown"]["title"],
            "heal8s [high] Done: delete pod shop/api-1"
        );
        let text = v["markdown"]["text"].as_str().unwrap();
        assert!(
            text.starts_with("#### Done: delete pod shop/api-1\n\n- **Severity**: high\n"),
            "{text}"
        );
        assert!(
            text.contains("- **Signal**: alert KubePodCrashLooping\n"),
            "{text}"
        );
        assert!(text.contains("[Runbook](https://runbooks.example/crashloop) · [Source](http://prometheus.example:9090/graph?g0.expr=up&g0.tab=1)"), "{text}");
        assert!(v.get("at").is_none());

        let v = dingtalk(&hostile());
        let text = v["markdown"]["text"].as_str().unwrap();
        assert!(!text.contains("[a](http://evil)"), "{text}");
        assert!(!text.contains("![img]"), "{text}");
        assert!(!text.contains("<!channel>"), "{text}");
        assert!(!text.contains(" *x* "), "{text}");
        assert!(text.contains(&markdown(HOSTILE)), "{text}");
        assert!(text.contains("**Examples**: "), "{text}");
        assert!(v.get("at").is_none());
        // only the escaped parenthesis of a link survives in a link target
        let mut n = notice(Event::Acted);
        n.links.runbook = Some("https://x.example/a_(b)".into());
        let text = dingtalk(&n)["markdown"]["text"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            text.contains("[Runbook](https://x.example/a_%28b%29)"),
            "{text}"
        );
    }

    #[test]
    fn the_dingtalk_signature_matches_an_independent_computation() {
        // python3: base64.b64encode(hmac.new(secret, f"{ts}\n{secret}",
        // sha256).digest()), then urllib.parse.quote_plus
        let url = dingtalk_signed_url(
            "https://oapi.dingtalk.com/robot/send?access_token=abc",
            "SECtest0123456789abcdef",
            1_700_000_000_000,
        );
        assert_eq!(
            url,
            "https://oapi.dingtalk.com/robot/send?access_token=abc&timestamp=1700000000000&sign=%2FlfnxUUu80FwVTsIlv2F1cMGBb%2BPxEKAwYh%2FbsRxXcc%3D"
        );
        let secret = "SEC2f4e8a9c1b0d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1";
        assert_eq!(
            dingtalk_signed_url("http://127.0.0.1:9/robot/send", secret, 1_577_808_000_000),
            "http://127.0.0.1:9/robot/send?timestamp=1577808000000&sign=dlPvD%2BU9OYiOeglKlxxxb2Ld%2BVIRMhplQilgUG%2FKJc0%3D"
        );
        assert!(
            dingtalk_signed_url("http://h/x?", secret, 1)
                .starts_with("http://h/x?timestamp=1&sign=")
        );
        assert!(dingtalk_signed_url("http://h/x?a=1#f", secret, 1).ends_with("#f"));
    }

    #[test]
    fn bark_levels_follow_severity_and_a_recovery_stays_active() {
        let mut n = notice(Event::Failed);
        for (s, level) in [
            (Severity::Critical, "critical"),
            (Severity::High, "timeSensitive"),
            (Severity::Warning, "active"),
            (Severity::Info, "active"),
        ] {
            n.severity = s;
            assert_eq!(bark(&n)["level"], level);
        }
        n.event = Event::Recovered;
        n.severity = Severity::Critical;
        assert_eq!(bark(&n)["level"], "active");
    }

    #[test]
    fn bark_is_plain_text_with_the_pull_request_or_record_link() {
        let mut n = notice(Event::PullRequest);
        let v = bark(&n);
        assert_eq!(v["title"], "Done: delete pod shop/api-1");
        assert_eq!(v["group"], "heal8s");
        assert_eq!(v["url"], "https://heal8s.example/#rem-api-1");
        assert_eq!(
            v["body"],
            "Pod shop/api-1 · cluster prod\nalert KubePodCrashLooping → acted\ndeleted"
        );
        n.links.pull_request = Some("https://github.example/o/r/pull/7".into());
        assert_eq!(bark(&n)["url"], "https://github.example/o/r/pull/7");
        n.links = Links::default();
        assert!(bark(&n).get("url").is_none());
    }

    #[test]
    fn bark_stays_within_an_apns_payload() {
        let mut n = hostile();
        n.title = "\"".repeat(5000);
        n.message = "界".repeat(5000);
        n.links.pull_request = Some(format!("https://x.example/{}", "p".repeat(2000)));
        let v = bark(&n);
        let bytes = serde_json::to_vec(&v).unwrap().len();
        assert!(bytes <= BARK_BYTES + 200, "{bytes}");
        assert!(v["body"].as_str().unwrap().ends_with('…'));
    }

    #[test]
    fn pagerduty_triggers_with_the_documented_fields_and_resolves_a_recovery() {
        let n = notice(Event::Failed);
        let v = pagerduty(&n, "R0UTINGKEY");
        assert_eq!(v["routing_key"], "R0UTINGKEY");
        assert_eq!(v["event_action"], "trigger");
        assert_eq!(v["dedup_key"], "heal8s/prod/Deployment/shop/api");
        assert_eq!(v["client"], "heal8s");
        assert_eq!(v["client_url"], "https://heal8s.example/#rem-api-1");
        let p = &v["payload"];
        assert_eq!(p["summary"], "Done: delete pod shop/api-1");
        assert_eq!(p["source"], "prod");
        assert_eq!(p["severity"], "error");
        assert_eq!(p["timestamp"], "2027-01-15T08:00:00Z");
        assert_eq!(p["component"], "Pod shop/api-1");
        assert_eq!(p["group"], "shop");
        assert_eq!(p["class"], "delete-pod/failed");
        assert_eq!(p["custom_details"]["evidence"]["restarts"], "7");
        assert_eq!(p["custom_details"]["message"], "deleted");
        assert_eq!(
            v["links"][0],
            json!({"href": "https://runbooks.example/crashloop", "text": "Runbook"})
        );

        let mut r = n.clone();
        r.event = Event::Recovered;
        assert_eq!(
            pagerduty(&r, "R0UTINGKEY"),
            json!({"routing_key": "R0UTINGKEY", "event_action": "resolve", "dedup_key": v["dedup_key"]})
        );
    }

    #[test]
    fn pagerduty_maps_severity_and_bounds_its_keys() {
        let mut n = notice(Event::Escalated);
        for (s, pd) in [
            (Severity::Critical, "critical"),
            (Severity::High, "error"),
            (Severity::Warning, "warning"),
            (Severity::Info, "info"),
        ] {
            n.severity = s;
            assert_eq!(pagerduty(&n, "k")["payload"]["severity"], pd);
        }
        n.cluster = None;
        n.namespace = None;
        n.target = None;
        n.remediation = None;
        n.reason = Some(RefusalReason::GlobalBudget);
        let v = pagerduty(&n, "k");
        assert_eq!(v["payload"]["source"], "heal8s");
        assert_eq!(v["payload"]["class"], "escalated");
        assert!(v["payload"].get("component").is_none());
        assert_eq!(v["payload"]["custom_details"]["reason"], "global_budget");

        n.key = "k".repeat(400);
        n.title = "t".repeat(5000);
        let a = pagerduty(&n, "k");
        let key = a["dedup_key"].as_str().unwrap();
        assert_eq!(key.chars().count(), PD_DEDUP_KEY);
        assert!(key.starts_with("heal8s/-/kkk"), "{key}");
        n.key.push('x');
        let b = pagerduty(&n, "k");
        assert_ne!(
            a["dedup_key"], b["dedup_key"],
            "distinct keys stay distinct"
        );
        assert_eq!(
            pagerduty(&n, "k")["dedup_key"],
            b["dedup_key"],
            "and stable"
        );
        assert!(a["payload"]["summary"].as_str().unwrap().chars().count() <= PD_SUMMARY);
    }

    #[test]
    fn the_webhook_sends_the_notice_itself() {
        let n = hostile();
        let v = webhook(&n);
        assert_eq!(v["version"], "1");
        let back: Notice = serde_json::from_value(v["notice"].clone()).unwrap();
        assert_eq!(back, n);
    }

    #[test]
    fn a_mail_has_a_one_line_subject_and_labelled_lines() {
        let (subject, body) = email(&notice(Event::Failed));
        assert_eq!(subject, "[heal8s][high] Done: delete pod shop/api-1");
        for line in [
            "What: Done: delete pod shop/api-1\n",
            "Severity: high\n",
            "Where: Pod shop/api-1, namespace shop, cluster prod\n",
            "Why: alert KubePodCrashLooping (route crashloop)\n",
            "Remediation: delete-pod\n",
            "Result: acted\n",
            "Details: deleted\n",
            "Evidence:\n  reason: CrashLoopBackOff\n  restarts: 7\n",
            "Links:\n  Runbook: https://runbooks.example/crashloop\n",
            "  Record: https://heal8s.example/#rem-api-1\n",
            "Record: rem-api-1\n",
            "When: 2027-01-15T08:00:00Z\n",
        ] {
            assert!(body.contains(line), "{line:?} in {body}");
        }

        let mut n = hostile();
        n.title = format!("a\r\nBcc: x@evil.example\u{2028}{}", "y".repeat(500));
        n.message = "line\nBreak".into();
        let (subject, body) = email(&n);
        assert!(
            !subject.chars().any(receiver_core::text::hazardous),
            "{subject:?}"
        );
        assert!(subject.chars().count() <= SUBJECT);
        assert!(body.contains("Details: line\\nBreak\n"), "{body}");
        assert!(body.contains("Count: 3\nExamples: "), "{body}");
        assert!(body.lines().all(|l| !l.starts_with("Bcc:")));
    }

    #[test]
    fn a_summary_shows_its_examples_everywhere() {
        let mut n = notice(Event::Acted);
        n.count = 12;
        n.title = "12 more delete-pod acted in shop in the last 1m".into();
        n.examples = vec!["Pod shop/api-1".into(), "Pod shop/api-2".into()];
        let s = serde_json::to_string(&slack(&n)).unwrap();
        assert!(
            s.contains("Examples: Pod shop/api-1, Pod shop/api-2"),
            "{s}"
        );
        assert!(s.contains("Latest target: Pod shop/api-1"), "{s}");
        assert!(s.contains("Count: 12"), "{s}");
        let t = serde_json::to_string(&teams(&n)).unwrap();
        assert!(t.contains("Pod shop/api-1, Pod shop/api-2"), "{t}");
        let d = dingtalk(&n)["markdown"]["text"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            d.contains("**Examples**: Pod shop/api-1, Pod shop/api-2"),
            "{d}"
        );
        assert!(
            bark(&n)["body"]
                .as_str()
                .unwrap()
                .contains("Examples: Pod shop/api-1, Pod shop/api-2")
        );
        assert_eq!(pagerduty(&n, "k")["payload"]["custom_details"]["count"], 12);
        // a single notice shows none, even if it carries some
        n.count = 1;
        assert!(
            !serde_json::to_string(&slack(&n))
                .unwrap()
                .contains("Examples")
        );
    }
}
