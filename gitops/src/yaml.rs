//! A YAML stream as a tree of nodes that remember where they are in the text,
//! the plain values they mean, and how to write a new scalar so it means what
//! we intend under both YAML 1.1 (PyYAML, kubectl's older paths) and 1.2.
//!
//! Owns: parsing with byte spans (granit-parser, the parser serde-saphyr uses),
//! alias bookkeeping, value comparison. No editing policy: see `edit`.

use std::collections::HashMap;

use granit_parser::{Event, Parser, ScalarStyle, StructureStyle};

/// Index of a node in [`Tree::nodes`].
pub type NodeId = usize;

/// Most nodes a document may expand to through aliases (a "billion laughs"
/// file is refused, not expanded).
pub const MAX_EXPANDED_NODES: usize = 250_000;

/// Deepest nesting accepted.
pub const MAX_DEPTH: usize = 256;

/// Largest text read as YAML. A real manifest or values file is well below;
/// a hostile one is refused before it is parsed.
pub const MAX_FILE_BYTES: usize = 4 << 20;

/// Most nodes (scalars, mappings, sequences, aliases) one text may hold.
pub const MAX_NODES: usize = 250_000;

/// Most anchors one text may define, and most aliases it may use.
pub const MAX_ANCHORS: usize = 10_000;

/// Longest scalar.
pub const MAX_SCALAR_BYTES: usize = 1 << 20;

/// Why text could not be read as YAML, or was not read at all (a limit:
/// `line` 0, the message names the limit).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", show_parse_error(self))]
pub struct ParseError {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

fn show_parse_error(e: &ParseError) -> String {
    if e.line == 0 {
        e.message.clone()
    } else {
        format!("line {}, column {}: {}", e.line, e.col, e.message)
    }
}

impl ParseError {
    /// A limit reached at `line` (0: the whole text).
    fn limit(line: usize, what: String) -> ParseError {
        ParseError {
            line,
            col: 1,
            message: format!("{what}; heal8s does not edit such a file"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Plain,
    Single,
    Double,
    Literal,
    Folded,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Scalar {
        value: String,
        style: Style,
        tagged: Option<String>,
    },
    Map {
        flow: bool,
        entries: Vec<(NodeId, NodeId)>,
    },
    Seq {
        flow: bool,
        items: Vec<NodeId>,
    },
    /// An alias to the node that defined the anchor.
    Alias(NodeId),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: Kind,
    /// Byte offset where the node's content starts (after any anchor or tag).
    pub start: usize,
    /// Byte offset just past the node's content (a block collection ends
    /// where its last descendant ends).
    pub end: usize,
    /// The anchor this node defines (0: none).
    pub anchor: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doc {
    pub root: NodeId,
    /// Byte offset where the document starts (its `---`, or its first
    /// token); it runs to the next document's start or the end of the text.
    pub start: usize,
}

/// A parsed YAML stream.
#[derive(Debug, Clone)]
pub struct Tree<'t> {
    pub text: &'t str,
    pub nodes: Vec<Node>,
    pub docs: Vec<Doc>,
    /// How many aliases point at each node.
    pub alias_uses: HashMap<NodeId, usize>,
    /// Anchor names by the node that defines them.
    pub anchor_names: HashMap<NodeId, String>,
    /// Byte offset of each line's start.
    line_starts: Vec<usize>,
}

enum Frame {
    Map(NodeId, Option<NodeId>),
    Seq(NodeId),
}

fn too_many_anchors(line: usize) -> ParseError {
    ParseError::limit(
        line,
        format!("more than {MAX_ANCHORS} anchors, the limit on anchors"),
    )
}

/// Just past the `:` that follows a key ending at `key_end` (spaces and
/// tabs between), if one does.
fn after_colon(text: &str, key_end: usize) -> Option<usize> {
    let rest = text.get(key_end..)?;
    let skipped = rest.len() - rest.trim_start_matches([' ', '\t']).len();
    (rest.as_bytes().get(skipped) == Some(&b':')).then_some(key_end + skipped + 1)
}

impl<'t> Tree<'t> {
    pub fn parse(text: &'t str) -> Result<Tree<'t>, ParseError> {
        if text.len() > MAX_FILE_BYTES {
            return Err(ParseError::limit(
                0,
                format!(
                    "the file is {} bytes, more than the {} MiB limit on file size",
                    text.len(),
                    MAX_FILE_BYTES >> 20
                ),
            ));
        }
        let (mut anchors_defined, mut aliases_used) = (0usize, 0usize);
        let mut tree = Tree {
            text,
            nodes: Vec::new(),
            docs: Vec::new(),
            alias_uses: HashMap::new(),
            anchor_names: HashMap::new(),
            line_starts: std::iter::once(0)
                .chain(text.match_indices('\n').map(|(i, _)| i + 1))
                .collect(),
        };
        let mut options = granit_parser::Options::default();
        options.emit_anchor_events = true;
        let mut stack: Vec<Frame> = Vec::new();
        let mut anchors: HashMap<usize, NodeId> = HashMap::new();
        let mut doc_root: Option<NodeId> = None;
        let mut doc_start = 0;
        for item in Parser::new_from_str_with_options(text, options) {
            let (event, span) = item.map_err(|e| ParseError {
                line: e.marker().line(),
                col: e.marker().col() + 1,
                message: e.info().to_string(),
            })?;
            let at = |m: &granit_parser::Marker| -> Result<usize, ParseError> {
                m.byte_offset().ok_or_else(|| ParseError {
                    line: m.line(),
                    col: m.col() + 1,
                    message: "the parser gave no byte offset".to_string(),
                })
            };
            let (start, end) = (at(&span.start)?, at(&span.end)?);
            if tree.nodes.len() >= MAX_NODES {
                return Err(ParseError::limit(
                    span.start.line(),
                    format!("more than {MAX_NODES} nodes, the limit on nodes"),
                ));
            }
            let new_node = match event {
                Event::DocumentStart(..) => {
                    anchors.clear();
                    doc_root = None;
                    doc_start = start;
                    None
                }
                Event::Anchor(id, name) => {
                    if let Some(&node) = anchors.get(&id) {
                        tree.anchor_names.insert(node, name.into_owned());
                    }
                    None
                }
                Event::DocumentEnd => {
                    let root = match doc_root.take() {
                        Some(root) => root,
                        // an empty document holds a null
                        None => tree.push(Node {
                            kind: Kind::Scalar {
                                value: String::new(),
                                style: Style::Plain,
                                tagged: None,
                            },
                            start,
                            end: start,
                            anchor: 0,
                        }),
                    };
                    tree.docs.push(Doc {
                        root,
                        start: doc_start,
                    });
                    None
                }
                Event::Scalar(value, _, _, _) if value.len() > MAX_SCALAR_BYTES => {
                    return Err(ParseError::limit(
                        span.start.line(),
                        format!(
                            "a scalar of {} bytes, more than the {} MiB limit on scalar size",
                            value.len(),
                            MAX_SCALAR_BYTES >> 20
                        ),
                    ));
                }
                Event::Scalar(value, style, anchor, tag) => {
                    // an empty value (`tag:` with nothing after the colon)
                    // is reported where its key ends, before the colon:
                    // it is just after the colon, where a value would go
                    let (mut start, mut end) = (start, end);
                    // (the parser reads it as `~`, and gives it no width)
                    if style == ScalarStyle::Plain
                        && tag.is_none()
                        && start == end
                        && let Some(Frame::Map(_, Some(key))) = stack.last()
                        && let Some(after) = after_colon(text, tree.nodes[*key].end)
                    {
                        (start, end) = (after, after);
                    }
                    Some(Node {
                        kind: Kind::Scalar {
                            value: value.into_owned(),
                            style: match style {
                                ScalarStyle::Plain => Style::Plain,
                                ScalarStyle::SingleQuoted => Style::Single,
                                ScalarStyle::DoubleQuoted => Style::Double,
                                ScalarStyle::Literal => Style::Literal,
                                _ => Style::Folded,
                            },
                            tagged: tag.map(|t| t.to_string()),
                        },
                        start,
                        end,
                        anchor,
                    })
                }
                Event::Alias(id) => {
                    let target = anchors.get(&id).copied().ok_or_else(|| ParseError {
                        line: span.start.line(),
                        col: span.start.col() + 1,
                        message: "alias to an unknown anchor".to_string(),
                    })?;
                    *tree.alias_uses.entry(target).or_insert(0) += 1;
                    Some(Node {
                        kind: Kind::Alias(target),
                        start,
                        end,
                        anchor: 0,
                    })
                }
                Event::MappingStart(style, anchor, _) | Event::SequenceStart(style, anchor, _) => {
                    if stack.len() >= MAX_DEPTH {
                        return Err(ParseError {
                            line: span.start.line(),
                            col: span.start.col() + 1,
                            message: format!("nested deeper than {MAX_DEPTH} levels"),
                        });
                    }
                    let flow = style == StructureStyle::Flow;
                    let is_map = matches!(event, Event::MappingStart(..));
                    let id = tree.push(Node {
                        kind: if is_map {
                            Kind::Map {
                                flow,
                                entries: Vec::new(),
                            }
                        } else {
                            Kind::Seq {
                                flow,
                                items: Vec::new(),
                            }
                        },
                        start,
                        end: start,
                        anchor,
                    });
                    if anchor != 0 {
                        anchors_defined += 1;
                        if anchors_defined > MAX_ANCHORS {
                            return Err(too_many_anchors(span.start.line()));
                        }
                        anchors.insert(anchor, id);
                    }
                    tree.attach(&mut stack, &mut doc_root, id);
                    stack.push(if is_map {
                        Frame::Map(id, None)
                    } else {
                        Frame::Seq(id)
                    });
                    None
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    let id = match stack.pop() {
                        Some(Frame::Map(id, _)) | Some(Frame::Seq(id)) => id,
                        None => continue,
                    };
                    let flow = matches!(
                        tree.nodes[id].kind,
                        Kind::Map { flow: true, .. } | Kind::Seq { flow: true, .. }
                    );
                    let last = match &tree.nodes[id].kind {
                        Kind::Map { entries, .. } => entries.last().map(|&(_, v)| v),
                        Kind::Seq { items, .. } => items.last().copied(),
                        _ => None,
                    };
                    tree.nodes[id].end = if flow {
                        end
                    } else {
                        last.map_or(tree.nodes[id].start, |l| tree.nodes[l].end)
                    };
                    None
                }
                _ => None,
            };
            if let Some(node) = new_node {
                if matches!(node.kind, Kind::Alias(_)) {
                    aliases_used += 1;
                    if aliases_used > MAX_ANCHORS {
                        return Err(ParseError::limit(
                            span.start.line(),
                            format!("more than {MAX_ANCHORS} aliases, the limit on aliases"),
                        ));
                    }
                }
                let anchor = node.anchor;
                let id = tree.push(node);
                if anchor != 0 {
                    anchors_defined += 1;
                    if anchors_defined > MAX_ANCHORS {
                        return Err(too_many_anchors(span.start.line()));
                    }
                    anchors.insert(anchor, id);
                }
                tree.attach(&mut stack, &mut doc_root, id);
            }
        }
        Ok(tree)
    }

    fn push(&mut self, node: Node) -> NodeId {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    fn attach(&mut self, stack: &mut [Frame], doc_root: &mut Option<NodeId>, id: NodeId) {
        match stack.last_mut() {
            None => *doc_root = Some(id),
            Some(Frame::Seq(seq)) => {
                if let Kind::Seq { items, .. } = &mut self.nodes[*seq].kind {
                    items.push(id);
                }
            }
            Some(Frame::Map(map, pending)) => match pending.take() {
                None => *pending = Some(id),
                Some(key) => {
                    if let Kind::Map { entries, .. } = &mut self.nodes[*map].kind {
                        entries.push((key, id));
                    }
                }
            },
        }
    }

    /// The node an alias points at, or the node itself.
    pub fn resolve(&self, id: NodeId) -> NodeId {
        match self.nodes[id].kind {
            Kind::Alias(target) => target,
            _ => id,
        }
    }

    /// The value of `key` in a mapping (the last one when a key repeats, as
    /// loaders do), with the key node.
    pub fn get(&self, map: NodeId, key: &str) -> Option<(NodeId, NodeId)> {
        match &self.nodes[self.resolve(map)].kind {
            Kind::Map { entries, .. } => entries
                .iter()
                .rev()
                .find(|&&(k, _)| self.scalar(k) == Some(key))
                .copied(),
            _ => None,
        }
    }

    /// The items of a sequence node (through an alias).
    pub fn items(&self, id: NodeId) -> Option<&[NodeId]> {
        match &self.nodes[self.resolve(id)].kind {
            Kind::Seq { items, .. } => Some(items),
            _ => None,
        }
    }

    /// The text of a scalar node (through an alias).
    pub fn scalar(&self, id: NodeId) -> Option<&str> {
        match &self.nodes[self.resolve(id)].kind {
            Kind::Scalar { value, .. } => Some(value),
            _ => None,
        }
    }

    /// A scalar that means null: empty, `~` or `null`, plain and untagged.
    pub fn is_null(&self, id: NodeId) -> bool {
        matches!(&self.nodes[self.resolve(id)].kind,
            Kind::Scalar { value, style: Style::Plain, tagged: None }
                if matches!(value.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// The value a node means, aliases expanded.
    pub fn value(&self, id: NodeId) -> Result<Value, ParseError> {
        let mut budget = MAX_EXPANDED_NODES;
        self.value_within(id, &mut budget, 0)
    }

    fn value_within(
        &self,
        id: NodeId,
        budget: &mut usize,
        depth: usize,
    ) -> Result<Value, ParseError> {
        if *budget == 0 || depth > MAX_DEPTH {
            return Err(ParseError {
                line: self.line_of(self.nodes[id].start) + 1,
                col: 1,
                message: "aliases expand to too large a document".to_string(),
            });
        }
        *budget -= 1;
        Ok(match &self.nodes[id].kind {
            Kind::Scalar {
                value,
                style,
                tagged,
            } => Value::scalar(value, *style, tagged.as_deref()),
            Kind::Alias(target) => self.value_within(*target, budget, depth + 1)?,
            Kind::Seq { items, .. } => Value::Seq(
                items
                    .iter()
                    .map(|&i| self.value_within(i, budget, depth + 1))
                    .collect::<Result<_, _>>()?,
            ),
            Kind::Map { entries, .. } => Value::Map(
                entries
                    .iter()
                    .map(|&(k, v)| {
                        Ok((
                            self.value_within(k, budget, depth + 1)?,
                            self.value_within(v, budget, depth + 1)?,
                        ))
                    })
                    .collect::<Result<_, ParseError>>()?,
            ),
        })
    }

    /// The text of document `i`, from its start to the next one's.
    pub fn doc_text(&self, i: usize) -> &'t str {
        let start = self.docs.get(i).map_or(self.text.len(), |d| d.start);
        let end = self.docs.get(i + 1).map_or(self.text.len(), |d| d.start);
        self.text.get(start..end.max(start)).unwrap_or("")
    }

    /// Every document's value.
    pub fn values(&self) -> Result<Vec<Value>, ParseError> {
        self.docs.iter().map(|d| self.value(d.root)).collect()
    }

    /// 0-based line of a byte offset.
    pub fn line_of(&self, at: usize) -> usize {
        self.line_starts
            .partition_point(|&s| s <= at)
            .saturating_sub(1)
    }

    /// Byte offset where the line holding `at` starts.
    pub fn line_start(&self, at: usize) -> usize {
        self.line_starts.get(self.line_of(at)).copied().unwrap_or(0)
    }

    /// Column (in bytes) of an offset.
    pub fn col(&self, at: usize) -> usize {
        at - self.line_start(at)
    }

    /// Whether a node is an anchor some alias uses, or lies inside one.
    pub fn is_shared(&self, id: NodeId) -> bool {
        self.alias_uses.get(&id).is_some_and(|&n| n > 0)
    }
}

/// What a node means: the data, not the presentation.
#[derive(Debug, Clone)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i128),
    /// Kept as text: compared by spelling, which is all an edit needs.
    Float(String),
    Str(String),
    /// An explicitly tagged scalar.
    Tagged(String, String),
    Seq(Vec<Value>),
    Map(Vec<(Value, Value)>),
}

impl Value {
    /// Resolve a scalar the way YAML 1.1 loaders (PyYAML) do, which is also
    /// a superset of what YAML 1.2's core schema treats as non-strings.
    pub fn scalar(text: &str, style: Style, tag: Option<&str>) -> Value {
        if let Some(tag) = tag {
            return Value::Tagged(tag.to_string(), text.to_string());
        }
        if style != Style::Plain {
            return Value::Str(text.to_string());
        }
        match text {
            "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
            "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
                return Value::Bool(true);
            }
            "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off"
            | "OFF" => {
                return Value::Bool(false);
            }
            _ => {}
        }
        if let Some(i) = parse_int(text) {
            return Value::Int(i);
        }
        if looks_numeric(text) {
            return Value::Float(text.to_string());
        }
        Value::Str(text.to_string())
    }

    /// The value at a path of mapping keys and sequence indexes.
    pub fn at(&self, path: &[Seg]) -> Option<&Value> {
        let Some((first, rest)) = path.split_first() else {
            return Some(self);
        };
        let child = match (self, first) {
            (Value::Map(entries), Seg::Key(k)) => entries
                .iter()
                .rev()
                .find(|(key, _)| key.as_str() == Some(k))
                .map(|(_, v)| v),
            (Value::Seq(items), Seg::Index(i)) => items.get(*i),
            _ => None,
        }?;
        child.at(rest)
    }

    /// Set the value at a path, creating mappings where keys are missing or
    /// null (new keys go last).
    pub fn set(&mut self, path: &[Seg], new: Value) -> bool {
        let Some((first, rest)) = path.split_first() else {
            *self = new;
            return true;
        };
        if matches!(self, Value::Null) && matches!(first, Seg::Key(_)) {
            *self = Value::Map(Vec::new());
        }
        match (self, first) {
            (Value::Map(entries), Seg::Key(k)) => {
                match entries.iter().rposition(|(key, _)| key.as_str() == Some(k)) {
                    Some(i) => entries[i].1.set(rest, new),
                    None => {
                        let mut child = Value::Null;
                        let ok = child.set(rest, new);
                        entries.push((Value::Str(k.clone()), child));
                        ok
                    }
                }
            }
            (Value::Seq(items), Seg::Index(i)) => match items.get_mut(*i) {
                Some(item) => item.set(rest, new),
                None => false,
            },
            _ => false,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

impl PartialEq for Value {
    /// Data equality: scalar types must match; mapping key order is ignored
    /// here (see [`order_violations`]), and a key a mapping repeats means its
    /// last value, as YAML readers that accept repeats take it.
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Float(a), Value::Float(b)) | (Value::Str(a), Value::Str(b)) => a == b,
            (Value::Tagged(t, a), Value::Tagged(u, b)) => t == u && a == b,
            (Value::Seq(a), Value::Seq(b)) => a == b,
            (Value::Map(a), Value::Map(b)) => {
                // what a reader sees: a repeated key means its last value
                if let (Some(ia), Some(ib)) = (last_index(a), last_index(b)) {
                    // scalar keys (all real ones): by hash, linear in the keys
                    return ia.len() == ib.len()
                        && ia
                            .iter()
                            .all(|(k, &i)| ib.get(k).is_some_and(|&j| a[i].1 == b[j].1));
                }
                fn last<'m>(m: &'m [(Value, Value)], k: &Value) -> Option<&'m Value> {
                    m.iter().rev().find(|(mk, _)| mk == k).map(|(_, v)| v)
                }
                a.iter().all(|(k, _)| last(a, k) == last(b, k))
                    && b.iter().all(|(k, _)| last(a, k).is_some())
            }
            _ => false,
        }
    }
}

/// A scalar mapping key, hashable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key<'v> {
    Null,
    Bool(bool),
    Int(i128),
    Float(&'v str),
    Str(&'v str),
    Tagged(&'v str, &'v str),
}

fn key_of(v: &Value) -> Option<Key<'_>> {
    Some(match v {
        Value::Null => Key::Null,
        Value::Bool(b) => Key::Bool(*b),
        Value::Int(i) => Key::Int(*i),
        Value::Float(f) => Key::Float(f),
        Value::Str(s) => Key::Str(s),
        Value::Tagged(t, s) => Key::Tagged(t, s),
        Value::Seq(_) | Value::Map(_) => return None,
    })
}

/// Each key of a mapping with the index of its last entry; `None` when a
/// key is a collection (compared the slow way, as it is rare). Comparing
/// mappings by hash keeps a mapping of many keys linear, not quadratic.
fn last_index(m: &[(Value, Value)]) -> Option<HashMap<Key<'_>, usize>> {
    let mut out = HashMap::with_capacity(m.len());
    for (i, (k, _)) in m.iter().enumerate() {
        out.insert(key_of(k)?, i);
    }
    Some(out)
}

/// Paths (as text) of mappings whose common keys changed relative order.
pub fn order_violations(
    before: &Value,
    after: &Value,
    path: &mut Vec<String>,
    out: &mut Vec<String>,
) {
    match (before, after) {
        (Value::Map(a), Value::Map(b)) => {
            let (ia, ib) = (last_index(a), last_index(b));
            let in_map =
                |m: &[(Value, Value)], idx: &Option<HashMap<Key<'_>, usize>>, k: &Value| {
                    match (idx, key_of(k)) {
                        (Some(idx), Some(key)) => idx.contains_key(&key),
                        // a collection key: compared the slow way
                        _ => m.iter().any(|(mk, _)| mk == k),
                    }
                };
            let common_a: Vec<&Value> = a
                .iter()
                .map(|(k, _)| k)
                .filter(|k| in_map(b, &ib, k))
                .collect();
            let common_b: Vec<&Value> = b
                .iter()
                .map(|(k, _)| k)
                .filter(|k| in_map(a, &ia, k))
                .collect();
            if common_a != common_b {
                out.push(path.join("."));
            }
            for (k, v) in a {
                let last_b = match (&ib, key_of(k)) {
                    (Some(idx), Some(key)) => idx.get(&key).map(|&j| &b[j]),
                    _ => b.iter().rev().find(|(bk, _)| bk == k),
                };
                if let Some((_, bv)) = last_b {
                    path.push(k.as_str().unwrap_or("?").to_string());
                    order_violations(v, bv, path, out);
                    path.pop();
                }
            }
        }
        (Value::Seq(a), Value::Seq(b)) => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                path.push(i.to_string());
                order_violations(x, y, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

/// One step of a path into a document.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Seg {
    Key(String),
    Index(usize),
}

impl Seg {
    pub fn key(k: &str) -> Seg {
        Seg::Key(k.to_string())
    }
}

impl std::fmt::Display for Seg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Seg::Key(k) => f.write_str(k),
            Seg::Index(i) => write!(f, "{i}"),
        }
    }
}

/// A path as `a.b.0.c`.
pub fn show_path(path: &[Seg]) -> String {
    path.iter()
        .map(Seg::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// An integer as YAML 1.1 or 1.2 would read it (decimal, 0x, 0o, 0b, old
/// octal, underscores).
fn parse_int(text: &str) -> Option<i128> {
    let (neg, body) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if body.is_empty() {
        return None;
    }
    let clean: String = body.chars().filter(|&c| c != '_').collect();
    let parsed = if let Some(hex) = clean.strip_prefix("0x") {
        i128::from_str_radix(hex, 16).ok()
    } else if let Some(oct) = clean.strip_prefix("0o") {
        i128::from_str_radix(oct, 8).ok()
    } else if let Some(bin) = clean.strip_prefix("0b") {
        i128::from_str_radix(bin, 2).ok()
    } else if clean.len() > 1 && clean.starts_with('0') {
        i128::from_str_radix(&clean, 8).ok()
    } else if clean.bytes().all(|b| b.is_ascii_digit()) {
        clean.parse::<i128>().ok()
    } else {
        None
    }?;
    Some(if neg { -parsed } else { parsed })
}

/// Text some YAML loader might read as a number, date or special float.
fn looks_numeric(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    let body = lower.trim_start_matches(['-', '+']);
    if matches!(body, ".inf" | ".nan") {
        return true;
    }
    let first = body.chars().next();
    matches!(first, Some('0'..='9') | Some('.'))
        && body.chars().any(|c| c.is_ascii_digit())
        && body
            .chars()
            .all(|c| c.is_ascii_hexdigit() || "._:+-xobt ".contains(c))
}

/// Whether `s` can be written as a plain scalar and still be read back as
/// this very string by YAML 1.1 and 1.2 loaders, in block (or, with `flow`,
/// flow) context: printable ASCII, no indicator or space first (`-?:,[]{}#&*!|>'"%@`
/// and the backquote), no `: ` or ` #` inside, no `:` or space at the end, no
/// flow indicator or `:` at all in flow context, and not a null, boolean or
/// number to either loader. So a placeholder such as `${REGISTRY}/app:v2`
/// or `<image>` stays plain, as it was written.
pub fn plain_safe(s: &str, flow: bool) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    !"-?:,[]{}#&*!|>'\"%@`".contains(first)
        && s.chars().all(|c| c.is_ascii_graphic() || c == ' ')
        && first != ' '
        && !s.ends_with([' ', ':'])
        && !s.contains(": ")
        && !s.contains(" #")
        && !(flow && s.contains([',', '[', ']', '{', '}', ':']))
        && matches!(Value::scalar(s, Style::Plain, None), Value::Str(_))
        && !looks_numeric(s)
}

/// Write a string as a YAML scalar: in `style` when given and possible,
/// plain when that reads back as the same string, else double-quoted.
pub fn render_str(s: &str, style: Option<Style>, flow: bool) -> String {
    match style {
        Some(Style::Single) if !s.contains(['\n', '\r']) => format!("'{}'", s.replace('\'', "''")),
        Some(Style::Double) => double_quoted(s),
        _ if plain_safe(s, flow) => s.to_string(),
        _ => double_quoted(s),
    }
}

fn double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
