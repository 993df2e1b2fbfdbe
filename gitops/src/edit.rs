//! Minimal-diff edits: set scalars at paths in one document of a YAML file by
//! splicing the text, so that exactly the lines carrying the new values change.
//! Comments, quoting, indentation, anchors, line endings, a missing final
//! newline and the other documents stay byte for byte as they were.
//!
//! Every edit is proven: the result is parsed again and must mean the intended
//! object (the target fields have the new values, every other field of every
//! document is unchanged, no key moved); otherwise the edit is refused.

use crate::yaml::{self, Kind, NodeId, ParseError, Seg, Style, Tree, Value};

/// A new scalar value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scalar {
    Str(String),
    Int(i64),
}

impl Scalar {
    fn value(&self) -> Value {
        match self {
            Scalar::Str(s) => Value::Str(s.clone()),
            Scalar::Int(i) => Value::Int(i128::from(*i)),
        }
    }
}

impl std::fmt::Display for Scalar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scalar::Str(s) => f.write_str(s),
            Scalar::Int(i) => write!(f, "{i}"),
        }
    }
}

/// One field to set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub path: Vec<Seg>,
    pub value: Scalar,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("the file cannot be read as YAML: {0}")]
    Parse(#[from] ParseError),
    #[error("the file has {docs} document(s); there is no document {index}")]
    NoDocument { index: usize, docs: usize },
    #[error("{path}: not found")]
    NotFound { path: String },
    #[error("{path}: {why}")]
    Unsupported { path: String, why: String },
    #[error(
        "{path}: the value is shared through the anchor &{anchor}; editing it would also change \
         the {uses} place(s) that refer to it with *{anchor}"
    )]
    SharedAnchor {
        path: String,
        anchor: String,
        uses: usize,
    },
    #[error("the edited text does not mean what was intended ({0}); nothing was changed")]
    Verify(String),
}

/// Apply `changes` to document `doc` of `text`, one after the other, and
/// prove the result.
pub fn apply(text: &str, doc: usize, changes: &[Change]) -> Result<String, EditError> {
    apply_parsed(&Tree::parse(text)?, doc, changes)
}

/// [`apply`] on a file already parsed.
pub fn apply_parsed(
    before: &Tree<'_>,
    doc: usize,
    changes: &[Change],
) -> Result<String, EditError> {
    let docs = before.docs.len();
    let root = before
        .docs
        .get(doc)
        .ok_or(EditError::NoDocument { index: doc, docs })?
        .root;
    let original = before.value(root)?;
    let mut expected = original.clone();
    for change in changes {
        expected.set(&change.path, change.value.value());
    }
    let mut current = before.text.to_string();
    for (i, change) in changes.iter().enumerate() {
        let splices = if i == 0 {
            plan(before, root, change)?
        } else {
            let tree =
                Tree::parse(&current).map_err(|e| EditError::Verify(format!("re-parse: {e}")))?;
            let root = tree.docs.get(doc).map_or(root, |d| d.root);
            plan(&tree, root, change)?
        };
        current = splice(&current, splices);
    }
    verify(before, &current, doc, &original, &expected)?;
    Ok(current)
}

/// The new text must hold as many documents, every other document byte for
/// byte, and the edited one must mean exactly the intended object with no key
/// moved.
fn verify(
    before: &Tree<'_>,
    text: &str,
    doc: usize,
    original: &Value,
    expected: &Value,
) -> Result<(), EditError> {
    let after = Tree::parse(text).map_err(|e| EditError::Verify(format!("re-parse: {e}")))?;
    if after.docs.len() != before.docs.len() {
        return Err(EditError::Verify(format!(
            "{} documents became {}",
            before.docs.len(),
            after.docs.len()
        )));
    }
    for i in (0..after.docs.len()).filter(|&i| i != doc) {
        if after.doc_text(i) != before.doc_text(i) {
            return Err(EditError::Verify(format!("document {} changed", i + 1)));
        }
    }
    let have = after
        .value(after.docs[doc].root)
        .map_err(|e| EditError::Verify(format!("re-parse: {e}")))?;
    if &have != expected {
        return Err(EditError::Verify(
            "the edited document differs from the intended object".to_string(),
        ));
    }
    let mut bad = Vec::new();
    yaml::order_violations(original, &have, &mut Vec::new(), &mut bad);
    if !bad.is_empty() {
        return Err(EditError::Verify(format!(
            "keys moved at {}",
            bad.join(", ")
        )));
    }
    Ok(())
}

/// A replacement of `text[start..end]`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Splice {
    start: usize,
    end: usize,
    with: String,
}

fn splice(text: &str, mut splices: Vec<Splice>) -> String {
    splices.sort_by_key(|s| std::cmp::Reverse((s.start, s.end)));
    let mut out = text.to_string();
    for s in splices {
        out.replace_range(s.start..s.end, &s.with);
    }
    out
}

/// Where the path stops existing.
struct Walk {
    /// The deepest existing node on the path.
    node: NodeId,
    /// The key node whose value `node` is, when it is a mapping value.
    key: Option<NodeId>,
    /// How many path segments were found.
    found: usize,
    /// Inside a flow collection.
    flow: bool,
}

fn walk(tree: &Tree<'_>, root: NodeId, path: &[Seg]) -> Result<Walk, EditError> {
    let mut w = Walk {
        node: root,
        key: None,
        found: 0,
        flow: false,
    };
    loop {
        let shown = || yaml::show_path(&path[..w.found]);
        if let Kind::Alias(target) = tree.nodes[w.node].kind {
            return Err(shared(tree, target, shown()));
        }
        if tree.is_shared(w.node) {
            return Err(shared(tree, w.node, shown()));
        }
        let Some(seg) = path.get(w.found) else {
            return Ok(w);
        };
        let next = match (&tree.nodes[w.node].kind, seg) {
            (Kind::Map { flow, .. }, Seg::Key(k)) => {
                w.flow |= *flow;
                let found = tree.get(w.node, k);
                if found.is_none() && tree.get(w.node, "<<").is_some() {
                    return Err(EditError::Unsupported {
                        path: shown(),
                        why: format!(
                            "the mapping takes keys from a merge (<<); {k} may come from there, \
                             edit the merged source by hand"
                        ),
                    });
                }
                found
            }
            (Kind::Seq { items, flow }, Seg::Index(i)) => {
                w.flow |= *flow;
                match items.get(*i) {
                    Some(&item) => Some((usize::MAX, item)),
                    None => {
                        return Err(EditError::NotFound {
                            path: yaml::show_path(&path[..=w.found]),
                        });
                    }
                }
            }
            _ if tree.is_null(w.node) && matches!(seg, Seg::Key(_)) => None,
            (Kind::Scalar { value, .. }, _) => {
                return Err(EditError::Unsupported {
                    path: shown(),
                    why: format!(
                        "expected a mapping here, found the scalar {:?}",
                        truncate(value)
                    ),
                });
            }
            (Kind::Map { .. }, Seg::Index(_)) => {
                return Err(EditError::Unsupported {
                    path: shown(),
                    why: "expected a list here, found a mapping".to_string(),
                });
            }
            _ => {
                return Err(EditError::Unsupported {
                    path: shown(),
                    why: "expected a mapping here, found a list".to_string(),
                });
            }
        };
        match next {
            Some((key, value)) => {
                w.key = (key != usize::MAX).then_some(key);
                w.node = value;
                w.found += 1;
            }
            None => return Ok(w),
        }
    }
}

fn truncate(s: &str) -> String {
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(40).collect::<String>())
    } else {
        s.to_string()
    }
}

fn shared(tree: &Tree<'_>, anchored: NodeId, path: String) -> EditError {
    let anchor = tree
        .anchor_names
        .get(&anchored)
        .cloned()
        .unwrap_or_else(|| "anchor".to_string());
    EditError::SharedAnchor {
        path,
        anchor,
        uses: tree.alias_uses.get(&anchored).copied().unwrap_or(0),
    }
}

/// The line ending the file uses.
fn eol(text: &str) -> &'static str {
    match text.find('\n') {
        Some(i) if i > 0 && text.as_bytes()[i - 1] == b'\r' => "\r\n",
        _ => "\n",
    }
}

fn plan(tree: &Tree<'_>, root: NodeId, change: &Change) -> Result<Vec<Splice>, EditError> {
    let w = walk(tree, root, &change.path)?;
    let path = &change.path;
    let missing: Vec<&str> = path[w.found..]
        .iter()
        .map(|s| match s {
            Seg::Key(k) => Ok(k.as_str()),
            Seg::Index(_) => Err(EditError::NotFound {
                path: yaml::show_path(path),
            }),
        })
        .collect::<Result<_, _>>()?;
    let node = &tree.nodes[w.node];
    if missing.is_empty() {
        return replace_scalar(tree, w.node, w.flow, change);
    }
    match &node.kind {
        Kind::Map {
            flow: true,
            entries,
        } => {
            let close = node.end.saturating_sub(1);
            let inner = nested_flow(&missing, &change.value);
            let (at, with) = match entries.last() {
                Some(&(_, last)) => (tree.nodes[last].end, format!(", {inner}")),
                None => (close, inner),
            };
            Ok(vec![Splice {
                start: at,
                end: at,
                with,
            }])
        }
        Kind::Map {
            flow: false,
            entries,
        } => insert_into_block_map(tree, w.node, entries, &missing, &change.value, path),
        Kind::Scalar { .. } if w.flow => {
            // `{resources: }` or `{resources: null}` in flow context
            let lead = if node.start == node.end { " " } else { "" };
            Ok(vec![Splice {
                start: node.start,
                end: node.end,
                with: format!("{lead}{}", nested_flow(&missing, &change.value)),
            }])
        }
        Kind::Scalar { .. } => {
            let Some(key) = w.key else {
                return Err(EditError::Unsupported {
                    path: yaml::show_path(&path[..w.found]),
                    why: "a null list item cannot take keys".to_string(),
                });
            };
            let key_col = tree.col(tree.nodes[key].start);
            let step = indent_step(tree, root);
            let mut splices = Vec::new();
            // `resources: null` → `resources:` (whitespace and the null go)
            if node.end > node.start {
                let ws = tree.text[..node.start].trim_end_matches([' ', '\t']).len();
                splices.push(Splice {
                    start: ws,
                    end: node.end,
                    with: String::new(),
                });
            }
            let lines = block_lines(&missing, &change.value, key_col + step, step);
            splices.push(insert_after_line(
                tree,
                node.end.max(tree.nodes[key].end),
                &lines,
            ));
            Ok(splices)
        }
        _ => Err(EditError::Unsupported {
            path: yaml::show_path(&path[..w.found]),
            why: "expected a mapping here, found a list".to_string(),
        }),
    }
}

fn replace_scalar(
    tree: &Tree<'_>,
    id: NodeId,
    flow: bool,
    change: &Change,
) -> Result<Vec<Splice>, EditError> {
    let node = &tree.nodes[id];
    let Kind::Scalar { style, tagged, .. } = &node.kind else {
        return Err(EditError::Unsupported {
            path: yaml::show_path(&change.path),
            why: "expected a scalar here, found a mapping or a list".to_string(),
        });
    };
    if tagged.is_some() {
        return Err(EditError::Unsupported {
            path: yaml::show_path(&change.path),
            why: "the value has an explicit tag".to_string(),
        });
    }
    let keep = match style {
        Style::Single | Style::Double => Some(*style),
        _ => None,
    };
    let text = match &change.value {
        Scalar::Int(i) => i.to_string(),
        Scalar::Str(s) => yaml::render_str(s, keep, flow),
    };
    if matches!(style, Style::Literal | Style::Folded) {
        // the indicator becomes the value, the content lines go; a comment on
        // the header line and what follows the content stay
        let Some(b) = block_scalar(tree.text, node.start, node.end) else {
            return Err(EditError::Unsupported {
                path: yaml::show_path(&change.path),
                why: "cannot find the block scalar's header".to_string(),
            });
        };
        return Ok(vec![
            Splice {
                start: b.header.0,
                end: b.header.1,
                with: text,
            },
            Splice {
                start: b.header_line_end,
                end: b.end,
                with: String::new(),
            },
        ]);
    }
    let lead = if node.start == node.end { " " } else { "" };
    Ok(vec![Splice {
        start: node.start,
        end: node.end,
        with: format!("{lead}{text}"),
    }])
}

fn render_leaf(value: &Scalar, flow: bool) -> String {
    match value {
        Scalar::Int(i) => i.to_string(),
        Scalar::Str(s) => yaml::render_str(s, None, flow),
    }
}

/// `a: {b: value}` for keys [a, b].
fn nested_flow(keys: &[&str], value: &Scalar) -> String {
    let mut out = render_leaf(value, true);
    for (i, k) in keys.iter().enumerate().rev() {
        out = if i + 1 == keys.len() {
            format!("{k}: {out}")
        } else {
            format!("{k}: {{{out}}}")
        };
    }
    out
}

/// One line per key, nested by `step`, the last carrying the value.
fn block_lines(keys: &[&str], value: &Scalar, col: usize, step: usize) -> Vec<String> {
    keys.iter()
        .enumerate()
        .map(|(i, k)| {
            let pad = " ".repeat(col + i * step);
            if i + 1 == keys.len() {
                format!("{pad}{k}: {}", render_leaf(value, false))
            } else {
                format!("{pad}{k}:")
            }
        })
        .collect()
}

/// Insert whole lines after the line holding `at`. At the end of a file
/// without a final newline the lines go after a new line break, and the file
/// still ends without one.
fn insert_after_line(tree: &Tree<'_>, at: usize, lines: &[String]) -> Splice {
    let nl = eol(tree.text);
    let text = tree.text;
    let pos = if at > 0 && text.as_bytes()[at - 1] == b'\n' {
        Some(at)
    } else {
        text[at..].find('\n').map(|i| at + i + 1)
    };
    match pos {
        Some(pos) => Splice {
            start: pos,
            end: pos,
            with: lines.iter().map(|l| format!("{l}{nl}")).collect(),
        },
        None => Splice {
            start: text.len(),
            end: text.len(),
            with: lines.iter().map(|l| format!("{nl}{l}")).collect(),
        },
    }
}

/// Whether a line break follows `at` (on its line or later).
fn has_line_after(text: &str, at: usize) -> bool {
    (at > 0 && text.as_bytes()[at - 1] == b'\n') || text[at..].contains('\n')
}

fn insert_into_block_map(
    tree: &Tree<'_>,
    map: NodeId,
    entries: &[(NodeId, NodeId)],
    keys: &[&str],
    value: &Scalar,
    path: &[Seg],
) -> Result<Vec<Splice>, EditError> {
    let Some(&(first_key, _)) = entries.first() else {
        return Err(EditError::Unsupported {
            path: yaml::show_path(path),
            why: "an empty block mapping".to_string(),
        });
    };
    let col = tree.col(tree.nodes[first_key].start);
    let step = indent_step(tree, map);
    let lines = block_lines(keys, value, col, step);
    // After the last entry; if the file ends there without a line break, after
    // an earlier entry, so the last line (and the missing newline) stay as
    // they are.
    for &(_, v) in entries.iter().rev() {
        let end = value_end(tree, v);
        if has_line_after(tree.text, end) {
            return Ok(vec![insert_after_line(tree, end, &lines)]);
        }
    }
    let start = tree.nodes[first_key].start;
    let line_start = tree.line_start(start);
    if tree.text[line_start..start].chars().all(|c| c == ' ') {
        let nl = eol(tree.text);
        return Ok(vec![Splice {
            start: line_start,
            end: line_start,
            with: lines.iter().map(|l| format!("{l}{nl}")).collect(),
        }]);
    }
    let last = entries.last().map_or(start, |&(_, v)| value_end(tree, v));
    Ok(vec![insert_after_line(tree, last, &lines)])
}

/// Where an entry's value ends in the text (block scalars end before their
/// trailing line breaks).
fn value_end(tree: &Tree<'_>, id: NodeId) -> usize {
    let node = &tree.nodes[id];
    match &node.kind {
        Kind::Scalar {
            style: Style::Literal | Style::Folded,
            ..
        } => block_scalar(tree.text, node.start, node.end).map_or(node.end, |b| b.end),
        Kind::Map {
            flow: false,
            entries,
        } => entries
            .last()
            .map_or(node.end, |&(_, v)| value_end(tree, v)),
        Kind::Seq { flow: false, items } => items.last().map_or(node.end, |&v| value_end(tree, v)),
        _ => node.end,
    }
}

/// Where a block scalar (`|`, `>-`, ...) sits: the parser's span starts at
/// its content, so the header is found on the line before.
struct BlockScalar {
    /// The indicator token (`>-`): start and end.
    header: (usize, usize),
    /// End of the header line (before its line break).
    header_line_end: usize,
    /// End of the last content line (before its line break).
    end: usize,
}

/// Content lines are indented at least as deep as the first non-blank one;
/// anything after (blank lines, a less indented comment) is not part of it.
fn block_scalar(text: &str, start: usize, end: usize) -> Option<BlockScalar> {
    let before = text[..start].trim_end_matches([' ', '\t', '\n', '\r']);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = &before[line_start..];
    let code = match line.find(" #") {
        Some(c) => &line[..c],
        None => line,
    };
    let at = line_start + code.rfind(['|', '>'])?;
    let token = text[at + 1..]
        .find(|c: char| !(c == '-' || c == '+' || c.is_ascii_digit()))
        .map_or(text.len(), |n| at + 1 + n);
    let header_line_end = text[at..].find('\n').map_or(text.len(), |i| at + i);
    let header_line_end = header_line_end - usize::from(text[..header_line_end].ends_with('\r'));
    let mut last = header_line_end;
    let mut indent = None;
    let mut pos = text[at..].find('\n').map_or(text.len(), |i| at + i + 1);
    while pos < end.max(start) && pos < text.len() {
        let line_end = text[pos..].find('\n').map_or(text.len(), |i| pos + i);
        let line = text[pos..line_end].trim_end_matches('\r');
        if !line.trim().is_empty() {
            let ind = line.len() - line.trim_start_matches(' ').len();
            match indent {
                None => indent = Some(ind),
                Some(i) if ind < i => break,
                Some(_) => {}
            }
            last = pos + line.len();
        }
        pos = line_end + 1;
    }
    Some(BlockScalar {
        header: (at, token),
        header_line_end,
        end: last,
    })
}

/// The file's indentation step: how much deeper a nested block mapping's keys
/// sit than its parent's, the most common such step in the document (2 when
/// there is none).
fn indent_step(tree: &Tree<'_>, _near: NodeId) -> usize {
    let mut counts = [0usize; 9];
    for node in &tree.nodes {
        if let Kind::Map {
            flow: false,
            entries,
        } = &node.kind
        {
            let Some(&(first, _)) = entries.first() else {
                continue;
            };
            let col = tree.col(tree.nodes[first].start);
            for &(k, v) in entries {
                if let Kind::Map {
                    flow: false,
                    entries: inner,
                } = &tree.nodes[v].kind
                    && let Some(&(ik, _)) = inner.first()
                    && tree.line_of(tree.nodes[ik].start) > tree.line_of(tree.nodes[k].start)
                {
                    let step = tree.col(tree.nodes[ik].start).saturating_sub(col);
                    if (1..counts.len()).contains(&step) {
                        counts[step] += 1;
                    }
                }
            }
        }
    }
    counts
        .iter()
        .enumerate()
        .max_by_key(|&(step, &n)| (n, std::cmp::Reverse(step)))
        .filter(|&(_, &n)| n > 0)
        .map_or(2, |(step, _)| step)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    const TEXT: &str = "a: 1\n---\nkind: X\nspec:\n  b: 1\n  c: 2\n---\nz: 3\n";

    fn check(after: &str) -> Result<(), EditError> {
        let before = Tree::parse(TEXT).unwrap();
        let root = before.docs[1].root;
        let original = before.value(root).unwrap();
        let mut expected = original.clone();
        expected.set(&[Seg::key("spec"), Seg::key("b")], Value::Int(5));
        verify(&before, after, 1, &original, &expected)
    }

    fn set(text: &str, path: &[&str], value: Scalar) -> Result<String, EditError> {
        let path: Vec<Seg> = path.iter().map(|k| Seg::key(k)).collect();
        apply(text, 0, &[Change { path, value }])
    }

    #[test]
    fn an_empty_value_is_filled_in_after_its_colon_keeping_what_follows() {
        let v2 = || Scalar::Str("v2".into());
        for (before, path, after) in [
            // end of a line, before a comment, end of the file, CRLF
            (
                "image:\n  tag:\n  pullPolicy: Always\n",
                &["image", "tag"][..],
                "image:\n  tag: v2\n  pullPolicy: Always\n",
            ),
            (
                "image:\n  tag:   # set by CI\n  x: 1\n",
                &["image", "tag"],
                "image:\n  tag: v2   # set by CI\n  x: 1\n",
            ),
            (
                "image:\n  repository: app\n  tag:",
                &["image", "tag"],
                "image:\n  repository: app\n  tag: v2",
            ),
            (
                "image:\r\n  tag:\r\n",
                &["image", "tag"],
                "image:\r\n  tag: v2\r\n",
            ),
            ("tag:\n", &["tag"], "tag: v2\n"),
            ("tag :\n", &["tag"], "tag : v2\n"),
            ("'tag':\n", &["tag"], "'tag': v2\n"),
            // flow context
            (
                "image: {repository: app, tag: }\n",
                &["image", "tag"],
                "image: {repository: app, tag: v2 }\n",
            ),
            (
                "image: {tag: , repository: app}\n",
                &["image", "tag"],
                "image: {tag: v2 , repository: app}\n",
            ),
        ] {
            let got = set(before, path, v2());
            assert_eq!(got.as_deref(), Ok(after), "{before:?}");
        }
        // numbers and quantities too
        assert_eq!(
            set(
                "spec:\n  replicas:\n",
                &["spec", "replicas"],
                Scalar::Int(3)
            )
            .unwrap(),
            "spec:\n  replicas: 3\n"
        );
        assert_eq!(
            set(
                "resources:\n  limits:\n    memory: # raise me\n    cpu: 1\n",
                &["resources", "limits", "memory"],
                Scalar::Str("512Mi".into())
            )
            .unwrap(),
            "resources:\n  limits:\n    memory: 512Mi # raise me\n    cpu: 1\n"
        );
        // a value that must be quoted is quoted
        assert_eq!(
            set("tag:\n", &["tag"], Scalar::Str("1.10".into())).unwrap(),
            "tag: \"1.10\"\n"
        );
    }

    #[test]
    fn a_plain_value_stays_plain_whenever_the_new_one_can_be() {
        let s = |v: &str| Scalar::Str(v.into());
        for (before, value, after) in [
            (
                "image: ${REGISTRY}/app:v2\n",
                "${REGISTRY}/app:v1",
                "image: ${REGISTRY}/app:v1\n",
            ),
            ("image: $IMAGE\n", "$IMAGE_OLD", "image: $IMAGE_OLD\n"),
            ("image: <image>\n", "<image>:v1", "image: <image>:v1\n"),
            (
                "image: app # pinned\n",
                "registry.local:5000/app@sha256:ab12",
                "image: registry.local:5000/app@sha256:ab12 # pinned\n",
            ),
            // quoted stays quoted in its own style
            ("image: '${IMAGE}'\n", "${OLD}", "image: '${OLD}'\n"),
            ("image: \"${IMAGE}\"\n", "${OLD}", "image: \"${OLD}\"\n"),
            // in flow context a brace would end the mapping: quoted
            (
                "spec: {image: app}\n",
                "${IMAGE}",
                "spec: {image: \"${IMAGE}\"}\n",
            ),
        ] {
            let path: &[&str] = if before.starts_with("spec") {
                &["spec", "image"]
            } else {
                &["image"]
            };
            assert_eq!(
                set(before, path, s(value)).as_deref(),
                Ok(after),
                "{before:?}"
            );
        }
        // what cannot be plain, or would read back as something else, is quoted
        for value in [
            "yes",
            "on",
            "null",
            "~",
            "1.10",
            "0x1F",
            "a: b",
            "- x",
            "#x",
            "x #y",
            "*x",
            "&x",
            "!x",
            "%x",
            "@x",
            "`x",
            "x:",
            "x ",
            " x",
            "'x",
            "\"x",
            "[x",
            "{x",
            "|x",
            ">x",
            "?x",
            ",x",
            "tab\there",
            "ünï",
        ] {
            let out = set("image: app\n", &["image"], s(value))
                .unwrap_or_else(|e| panic!("{value:?}: {e}"));
            assert!(out.starts_with("image: \""), "{value:?} gave {out:?}");
        }
    }

    #[test]
    fn what_is_written_plain_reads_back_as_the_same_string() {
        let samples = [
            "${A}", "$A", "<a>", "a b", "a#b", "a:b", "a-b", "/a", ".a", "a,b", "a]b", "a}b",
            "(a)", "=a", "a=", "a'b", "a\"b", "a!b", "a%b", "~a", "a~", "+a", "1a", "a.1",
        ];
        for s in samples {
            for flow in [false, true] {
                if !yaml::plain_safe(s, flow) {
                    continue;
                }
                let text = if flow {
                    format!("{{k: {s}}}\n")
                } else {
                    format!("k: {s}\n")
                };
                let tree = Tree::parse(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
                let root = tree.docs[0].root;
                let (_, v) = tree.get(root, "k").unwrap();
                assert_eq!(
                    tree.value(v).unwrap(),
                    Value::Str(s.to_string()),
                    "{text:?}"
                );
            }
        }
    }

    #[test]
    fn the_proof_accepts_exactly_the_intended_result() {
        check(&TEXT.replace("b: 1", "b: 5")).unwrap();
        // same data, other spelling in the edited document: still the object
        check(
            &TEXT
                .replace("  b: 1\n  c: 2", "  {b: 5, c: 2}")
                .replace("spec:\n  {", "spec: {"),
        )
        .unwrap();
    }

    #[test]
    fn the_proof_refuses_anything_else() {
        for (bad, why) in [
            (TEXT.replace("b: 1", "b: 4"), "intended"),
            (TEXT.replace("b: 1", "b: \"5\""), "intended"),
            (TEXT.replace("b: 1\n  c: 2", "b: 5\n  c: 3"), "intended"),
            (TEXT.replace("b: 1\n  c: 2", "c: 2\n  b: 5"), "moved"),
            (
                TEXT.replace("b: 1", "b: 5")
                    .replace("a: 1\n", "a: 1 # new\n"),
                "document 1 changed",
            ),
            (
                TEXT.replace("b: 1", "b: 5")
                    .replace("z: 3\n", "z: 3\n---\n"),
                "documents became",
            ),
            (TEXT.replace("b: 1", "b: [5"), "re-parse"),
        ] {
            match check(&bad) {
                Err(EditError::Verify(msg)) => assert!(msg.contains(why), "{msg} for {bad:?}"),
                other => panic!("{other:?} for {bad:?}"),
            }
        }
    }
}
