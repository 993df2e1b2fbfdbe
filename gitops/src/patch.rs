//! What a remediation changes in a file: find the document (a workload
//! manifest, an entry of a `kind: List`, or a component of a Helm values
//! file), find the container, compute the new values with the remediation
//! arithmetic, and hand the fields to the minimal-diff editor.

use crate::arith::{self, BumpRule, MemoryBump, MemoryNow, ScaleUp};
use crate::edit::{self, Change, EditError, Scalar};
use crate::quantity::{Quantity, QuantityError};
use crate::yaml::{self, Kind, NodeId, Seg, Tree};

/// The change a remediation asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Edit {
    /// Set the memory limit and request to this quantity.
    Memory(String),
    /// Raise the memory limit (and the request, per the rule) after OOM kills.
    BumpMemory(BumpRule),
    /// Set the replica count (a HorizontalPodAutoscaler: its `maxReplicas`).
    Replicas(u32),
    /// Raise the replica count (an HPA: `maxReplicas`) by a percentage.
    ScaleUp { percent: u32, cap: u32 },
    /// Set a container's image to this reference, as given (tag or digest).
    Image(String),
}

/// Which object in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A manifest document: kind, name, and the namespace when known (a
    /// document without one matches any).
    Manifest {
        kind: String,
        name: String,
        namespace: Option<String>,
        container: Option<String>,
    },
    /// A component of a Helm values file, by its values path (`a.b.0`, or
    /// empty for the top level).
    HelmValues { path: Vec<String> },
}

/// One field the patch changes, for the pull request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldChange {
    pub path: String,
    pub before: Option<String>,
    pub after: String,
}

/// A patched file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patched {
    pub text: String,
    /// Index of the edited document in the file.
    pub doc: usize,
    pub changes: Vec<FieldChange>,
    /// Why these values (the rule that produced them), when computed.
    pub why: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    #[error(transparent)]
    Edit(#[from] EditError),
    #[error("no {what} in the file{}", found_list(.available))]
    NotFound {
        what: String,
        available: Vec<String>,
    },
    #[error("{what} is ambiguous: {}", .candidates.join("; "))]
    Ambiguous {
        what: String,
        candidates: Vec<String>,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: {current} is already at or above the cap {cap}; escalate instead")]
    AtCap {
        path: String,
        current: String,
        cap: String,
    },
    #[error("{path}: the new value {new} would lower the current {current}; heal8s never lowers")]
    WouldLower {
        path: String,
        current: String,
        new: String,
    },
    #[error("nothing to change: {0}")]
    NoChange(String),
}

fn found_list(list: &[String]) -> String {
    if list.is_empty() {
        String::new()
    } else {
        format!(" (found: {})", list.join(", "))
    }
}

impl From<QuantityError> for PatchError {
    fn from(e: QuantityError) -> PatchError {
        PatchError::Invalid(e.to_string())
    }
}

impl From<yaml::ParseError> for PatchError {
    fn from(e: yaml::ParseError) -> PatchError {
        PatchError::Edit(EditError::Parse(e))
    }
}

/// Patch `text`: the new text and what changed, or why not.
pub fn patch(text: &str, target: &Target, edit: &Edit) -> Result<Patched, PatchError> {
    let tree = Tree::parse(text)?;
    let (doc, plan) = match target {
        Target::Manifest {
            kind,
            name,
            namespace,
            container,
        } => {
            let (doc, prefix, node) = find_manifest(&tree, kind, name, namespace.as_deref())?;
            (
                doc,
                manifest_plan(&tree, prefix, node, kind, container.as_deref(), edit)?,
            )
        }
        Target::HelmValues { path } => {
            let root = match tree.docs.as_slice() {
                [one] => one.root,
                [] => return Err(PatchError::Invalid("the values file is empty".to_string())),
                _ => {
                    return Err(PatchError::Invalid(
                        "a Helm values file has one document; this one has several".to_string(),
                    ));
                }
            };
            (0, values_plan(&tree, root, path, edit)?)
        }
    };
    let mut fields = Vec::new();
    let mut changes = Vec::new();
    for (path, value) in plan.changes {
        let before = current(&tree, tree.docs[doc].root, &path);
        let after = value.to_string();
        if before.as_deref() == Some(after.as_str()) && !is_quoted_int(&tree, doc, &path, &value) {
            continue;
        }
        fields.push(FieldChange {
            path: yaml::show_path(&path),
            before,
            after,
        });
        changes.push(Change { path, value });
    }
    if changes.is_empty() {
        return Err(PatchError::NoChange(
            "every field already has the new value".to_string(),
        ));
    }
    let text = edit::apply_parsed(&tree, doc, &changes)?;
    Ok(Patched {
        text,
        doc,
        changes: fields,
        why: plan.why,
    })
}

/// `replicas: "3"` set to 3 is still a change (the type).
fn is_quoted_int(tree: &Tree<'_>, doc: usize, path: &[Seg], value: &Scalar) -> bool {
    matches!(value, Scalar::Int(_))
        && node_at(tree, tree.docs[doc].root, path)
            .is_some_and(|n| !matches!(tree.value(n), Ok(yaml::Value::Int(_))))
}

struct Plan {
    changes: Vec<(Vec<Seg>, Scalar)>,
    why: Option<String>,
}

/// The node at a path, if the whole path exists.
pub(crate) fn node_at(tree: &Tree<'_>, root: NodeId, path: &[Seg]) -> Option<NodeId> {
    let mut node = root;
    for seg in path {
        node = match (&tree.nodes[tree.resolve(node)].kind, seg) {
            (Kind::Map { .. }, Seg::Key(k)) => tree.get(node, k)?.1,
            (Kind::Seq { items, .. }, Seg::Index(i)) => *items.get(*i)?,
            _ => return None,
        };
    }
    Some(tree.resolve(node))
}

/// The current scalar text at a path (None when absent or null).
fn current(tree: &Tree<'_>, root: NodeId, path: &[Seg]) -> Option<String> {
    let node = node_at(tree, root, path)?;
    if tree.is_null(node) {
        return None;
    }
    tree.scalar(node).map(str::to_string)
}

fn join(prefix: &[Seg], rest: &[&str]) -> Vec<Seg> {
    prefix
        .iter()
        .cloned()
        .chain(rest.iter().map(|k| Seg::key(k)))
        .collect()
}

/// An object a file declares: a document, or an item of a `kind: List`.
#[derive(Debug, Clone)]
pub(crate) struct Declared {
    pub(crate) doc: usize,
    /// The path of a `kind: List` item inside its document (empty otherwise).
    pub(crate) prefix: Vec<Seg>,
    pub(crate) node: NodeId,
    pub(crate) kind: String,
    pub(crate) name: String,
    pub(crate) namespace: Option<String>,
}

/// Every object with a kind and a name that `tree` declares, in order.
pub(crate) fn declared(tree: &Tree<'_>) -> Vec<Declared> {
    let mut all = Vec::new();
    for (i, doc) in tree.docs.iter().enumerate() {
        let mut objects = vec![(Vec::new(), doc.root)];
        let doc_kind = tree.get(doc.root, "kind").and_then(|(_, k)| tree.scalar(k));
        if doc_kind.is_some_and(|k| k.ends_with("List"))
            && let Some((_, items)) = tree.get(doc.root, "items")
            && let Some(items) = tree.items(items)
        {
            objects = items
                .iter()
                .enumerate()
                .map(|(j, &item)| (vec![Seg::key("items"), Seg::Index(j)], item))
                .collect();
        }
        for (prefix, node) in objects {
            let text = |path: &[&str]| {
                node_at(tree, node, &join(&[], path))
                    .and_then(|n| tree.scalar(n).map(str::to_string))
            };
            if let (Some(kind), Some(name)) = (text(&["kind"]), text(&["metadata", "name"])) {
                all.push(Declared {
                    doc: i,
                    prefix,
                    node,
                    kind,
                    name,
                    namespace: text(&["metadata", "namespace"]).filter(|n| !n.is_empty()),
                });
            }
        }
    }
    all
}

/// Documents (or `kind: List` items) that declare kind/name[/namespace].
fn find_manifest(
    tree: &Tree<'_>,
    kind: &str,
    name: &str,
    namespace: Option<&str>,
) -> Result<(usize, Vec<Seg>, NodeId), PatchError> {
    let all = declared(tree);
    let describe = |f: &Declared| {
        let ns = f
            .namespace
            .as_deref()
            .map(|n| format!(" in namespace {n}"))
            .unwrap_or_default();
        let item = if f.prefix.is_empty() {
            String::new()
        } else {
            format!(" at {}", yaml::show_path(&f.prefix))
        };
        format!("{} {}{ns} (document {}{item})", f.kind, f.name, f.doc + 1)
    };
    let same = |f: &&Declared| f.kind.eq_ignore_ascii_case(kind) && f.name == name;
    let mut matching: Vec<&Declared> = all.iter().filter(same).collect();
    if let Some(ns) = namespace {
        let exact: Vec<&Declared> = matching
            .iter()
            .copied()
            .filter(|f| f.namespace.as_deref() == Some(ns))
            .collect();
        matching = if exact.is_empty() {
            matching
                .into_iter()
                .filter(|f| f.namespace.is_none())
                .collect()
        } else {
            exact
        };
    }
    let ns = namespace
        .map(|n| format!(" in namespace {n}"))
        .unwrap_or_default();
    match matching.as_slice() {
        [one] => Ok((one.doc, one.prefix.clone(), one.node)),
        [] => Err(PatchError::NotFound {
            what: format!("{kind} {name}{ns}"),
            available: all.iter().map(describe).collect(),
        }),
        many => Err(PatchError::Ambiguous {
            what: format!("{kind} {name}{ns}"),
            candidates: many.iter().map(|f| describe(f)).collect(),
        }),
    }
}

/// Where the pod spec sits in a workload of this kind.
pub(crate) fn pod_spec_path(kind: &str) -> &'static [&'static str] {
    match kind.to_ascii_lowercase().as_str() {
        "pod" => &["spec"],
        "cronjob" => &["spec", "jobTemplate", "spec", "template", "spec"],
        _ => &["spec", "template", "spec"],
    }
}

fn manifest_plan(
    tree: &Tree<'_>,
    prefix: Vec<Seg>,
    object: NodeId,
    kind: &str,
    container: Option<&str>,
    edit: &Edit,
) -> Result<Plan, PatchError> {
    let is_hpa = kind.eq_ignore_ascii_case("HorizontalPodAutoscaler");
    match edit {
        Edit::Replicas(_) | Edit::ScaleUp { .. } => {
            let field = if is_hpa { "maxReplicas" } else { "replicas" };
            if !is_hpa
                && matches!(
                    kind.to_ascii_lowercase().as_str(),
                    "daemonset" | "pod" | "job" | "cronjob"
                )
            {
                return Err(PatchError::Invalid(format!(
                    "a {kind} has no replica count"
                )));
            }
            let rel = ["spec", field];
            let path = join(&prefix, &rel);
            replicas_plan(
                tree,
                object,
                &join(&[], &rel),
                path,
                edit,
                if is_hpa { None } else { Some(1) },
            )
        }
        Edit::Memory(_) | Edit::BumpMemory(_) | Edit::Image(_) => {
            if is_hpa {
                return Err(PatchError::Invalid(
                    "a HorizontalPodAutoscaler has no containers".to_string(),
                ));
            }
            let spec = pod_spec_path(kind);
            let (list, index) = find_container(tree, object, spec, container)?;
            let mut base = join(&prefix, spec);
            base.push(Seg::key(list));
            base.push(Seg::Index(index));
            let mut rel = join(&[], spec);
            rel.push(Seg::key(list));
            rel.push(Seg::Index(index));
            let node = node_at(tree, object, &rel).ok_or_else(|| PatchError::NotFound {
                what: "container".to_string(),
                available: Vec::new(),
            })?;
            container_plan(tree, node, base, edit)
        }
    }
}

pub(crate) fn find_container(
    tree: &Tree<'_>,
    object: NodeId,
    spec: &[&str],
    wanted: Option<&str>,
) -> Result<(&'static str, usize), PatchError> {
    let mut names = Vec::new();
    for list in ["containers", "initContainers"] {
        let Some(node) = node_at(tree, object, &join(&[], &[spec, &[list]].concat())) else {
            continue;
        };
        let Kind::Seq { items, .. } = &tree.nodes[node].kind else {
            continue;
        };
        for (i, &item) in items.iter().enumerate() {
            let name = tree
                .get(item, "name")
                .and_then(|(_, n)| tree.scalar(n))
                .unwrap_or("")
                .to_string();
            names.push((list, i, name));
        }
    }
    match wanted {
        Some(w) => names
            .iter()
            .find(|(_, _, n)| n == w)
            .map(|&(l, i, _)| (l, i))
            .ok_or_else(|| PatchError::NotFound {
                what: format!("container {w}"),
                available: names.iter().map(|(_, _, n)| n.clone()).collect(),
            }),
        None => {
            let main: Vec<_> = names
                .iter()
                .filter(|(l, _, _)| *l == "containers")
                .collect();
            match main.as_slice() {
                [one] => Ok((one.0, one.1)),
                [] => Err(PatchError::NotFound {
                    what: "container".to_string(),
                    available: Vec::new(),
                }),
                many => Err(PatchError::Ambiguous {
                    what: "which container (name one)".to_string(),
                    candidates: many.iter().map(|(_, _, n)| n.clone()).collect(),
                }),
            }
        }
    }
}

fn int_at(
    tree: &Tree<'_>,
    node: NodeId,
    path: &[Seg],
    shown: &[Seg],
) -> Result<Option<u32>, PatchError> {
    let Some(n) = node_at(tree, node, path) else {
        return Ok(None);
    };
    if tree.is_null(n) {
        return Ok(None);
    }
    match tree.value(n)? {
        yaml::Value::Int(i) => u32::try_from(i).map(Some).map_err(|_| {
            PatchError::Invalid(format!(
                "{}: {i} is not a replica count",
                yaml::show_path(shown)
            ))
        }),
        yaml::Value::Str(s) => s.trim().parse::<u32>().map(Some).map_err(|_| {
            PatchError::Invalid(format!(
                "{}: {s:?} is not a number (a template?)",
                yaml::show_path(shown)
            ))
        }),
        _ => Err(PatchError::Invalid(format!(
            "{}: not a replica count",
            yaml::show_path(shown)
        ))),
    }
}

/// Replicas at `rel` (relative to `node`), written at `path`.
fn replicas_plan(
    tree: &Tree<'_>,
    node: NodeId,
    rel: &[Seg],
    path: Vec<Seg>,
    edit: &Edit,
    default: Option<u32>,
) -> Result<Plan, PatchError> {
    let now = int_at(tree, node, rel, &path)?;
    let shown = yaml::show_path(&path);
    let (new, why) = match edit {
        Edit::Replicas(n) => (*n, None),
        Edit::ScaleUp { percent, cap } => {
            let cur = now.or(default).ok_or_else(|| {
                PatchError::Invalid(format!("{shown} is not set; give --replicas"))
            })?;
            match arith::scale_up(cur, *percent, *cap) {
                ScaleUp::To(n) => (
                    n,
                    Some(format!("{cur} + {percent}% (at least +1), capped at {cap}")),
                ),
                ScaleUp::AtCap { current, cap } => {
                    return Err(PatchError::AtCap {
                        path: shown,
                        current: current.to_string(),
                        cap: cap.to_string(),
                    });
                }
            }
        }
        _ => return Err(PatchError::Invalid("not a replica edit".to_string())),
    };
    if let Some(cur) = now
        && new < cur
    {
        return Err(PatchError::WouldLower {
            path: shown,
            current: cur.to_string(),
            new: new.to_string(),
        });
    }
    Ok(Plan {
        changes: vec![(path, Scalar::Int(i64::from(new)))],
        why,
    })
}

fn quantity_at(
    tree: &Tree<'_>,
    node: NodeId,
    rel: &[&str],
    shown: &[Seg],
) -> Result<Option<Quantity>, PatchError> {
    let Some(n) = node_at(tree, node, &join(&[], rel)) else {
        return Ok(None);
    };
    if tree.is_null(n) {
        return Ok(None);
    }
    match tree.value(n)? {
        yaml::Value::Str(s) | yaml::Value::Float(s) => Quantity::parse(&s)
            .map(Some)
            .map_err(|e| PatchError::Invalid(format!("{}: {e}", yaml::show_path(shown)))),
        yaml::Value::Int(i) => Quantity::parse(&i.to_string())
            .map(Some)
            .map_err(PatchError::from),
        _ => Err(PatchError::Invalid(format!(
            "{}: not a memory quantity",
            yaml::show_path(shown)
        ))),
    }
}

/// Memory and image edits on a container-like mapping (a container, or a
/// Helm values component) at `base`.
fn container_plan(
    tree: &Tree<'_>,
    node: NodeId,
    base: Vec<Seg>,
    edit: &Edit,
) -> Result<Plan, PatchError> {
    let limit_rel = ["resources", "limits", "memory"];
    let request_rel = ["resources", "requests", "memory"];
    let limit_path = join(&base, &limit_rel);
    let request_path = join(&base, &request_rel);
    match edit {
        Edit::Memory(q) => {
            let new = Quantity::parse(q)?;
            let mut changes = Vec::new();
            for (rel, path) in [(limit_rel, limit_path), (request_rel, request_path)] {
                if let Some(cur) = quantity_at(tree, node, &rel, &path)?
                    && cur.bytes > new.bytes
                {
                    return Err(PatchError::WouldLower {
                        path: yaml::show_path(&path),
                        current: cur.to_string(),
                        new: q.trim().to_string(),
                    });
                }
                changes.push((path, Scalar::Str(q.trim().to_string())));
            }
            Ok(Plan { changes, why: None })
        }
        Edit::BumpMemory(rule) => {
            let now = MemoryNow {
                limit: quantity_at(tree, node, &limit_rel, &limit_path)?,
                request: quantity_at(tree, node, &request_rel, &request_path)?,
                peak: None,
            };
            match arith::bump_memory(now, *rule) {
                MemoryBump::Change {
                    limit,
                    request,
                    why,
                } => {
                    let mut changes = vec![(limit_path, Scalar::Str(limit.to_string()))];
                    if let Some(r) = request {
                        changes.push((request_path, Scalar::Str(r.to_string())));
                    }
                    Ok(Plan {
                        changes,
                        why: Some(why),
                    })
                }
                MemoryBump::AtCap { limit, max } => Err(PatchError::AtCap {
                    path: yaml::show_path(&limit_path),
                    current: format!("{limit} bytes"),
                    cap: format!("{max} bytes"),
                }),
            }
        }
        Edit::Image(image) => {
            let image = check_image(image)?;
            let mut path = base;
            path.push(Seg::key("image"));
            Ok(Plan {
                changes: vec![(path, Scalar::Str(image.to_string()))],
                why: None,
            })
        }
        _ => Err(PatchError::Invalid("not a container edit".to_string())),
    }
}

/// A container image reference: no spaces, no template, not empty.
fn check_image(image: &str) -> Result<&str, PatchError> {
    let image = image.trim();
    if image.is_empty()
        || image.chars().any(|c| c.is_whitespace() || c.is_control())
        || image.contains("{{")
    {
        return Err(PatchError::Invalid(format!(
            "{image:?} is not an image reference"
        )));
    }
    Ok(image)
}

/// An image reference split: name (registry/path), tag, digest.
pub(crate) struct ImageRef<'a> {
    pub(crate) name: &'a str,
    pub(crate) tag: Option<&'a str>,
    pub(crate) digest: Option<&'a str>,
}

pub(crate) fn split_image(image: &str) -> ImageRef<'_> {
    let (rest, digest) = match image.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (image, None),
    };
    let slash = rest.rfind('/').map_or(0, |i| i + 1);
    match rest[slash..].rfind(':') {
        Some(c) => ImageRef {
            name: &rest[..slash + c],
            tag: Some(&rest[slash + c + 1..]),
            digest,
        },
        None => ImageRef {
            name: rest,
            tag: None,
            digest,
        },
    }
}

/// `docker.io/library/nginx` and `nginx` name the same repository.
fn normalize_repo(name: &str) -> String {
    let name = name.strip_prefix("docker.io/").unwrap_or(name);
    let name = name.strip_prefix("index.docker.io/").unwrap_or(name);
    name.strip_prefix("library/").unwrap_or(name).to_string()
}

fn values_plan(
    tree: &Tree<'_>,
    root: NodeId,
    path: &[String],
    edit: &Edit,
) -> Result<Plan, PatchError> {
    // walk the values path; a number indexes a list
    let mut node = root;
    let mut base = Vec::new();
    for seg in path {
        let resolved = tree.resolve(node);
        let next = match &tree.nodes[resolved].kind {
            Kind::Seq { items, .. } => seg.parse::<usize>().ok().and_then(|i| {
                base.push(Seg::Index(i));
                items.get(i).copied()
            }),
            Kind::Map { .. } => {
                base.push(Seg::key(seg));
                tree.get(node, seg).map(|(_, v)| v)
            }
            _ => None,
        };
        node = next.ok_or_else(|| PatchError::NotFound {
            what: format!("values path {}", path.join(".")),
            available: Vec::new(),
        })?;
    }
    let node = tree.resolve(node);
    if !matches!(tree.nodes[node].kind, Kind::Map { .. }) {
        return Err(PatchError::Invalid(format!(
            "values path {}: not a mapping",
            path.join(".")
        )));
    }
    match edit {
        Edit::Replicas(_) | Edit::ScaleUp { .. } => {
            let key = ["replicaCount", "replicas"]
                .into_iter()
                .find(|k| tree.get(node, k).is_some())
                .ok_or_else(|| PatchError::NotFound {
                    what: format!(
                        "replicaCount or replicas under values path {}",
                        show_values_path(path)
                    ),
                    available: Vec::new(),
                })?;
            replicas_plan(
                tree,
                node,
                &[Seg::key(key)],
                join(&base, &[key]),
                edit,
                None,
            )
        }
        Edit::Image(image) => {
            let image = check_image(image)?;
            let Some((_, img)) = tree.get(node, "image") else {
                return Err(PatchError::NotFound {
                    what: format!("image under values path {}", show_values_path(path)),
                    available: Vec::new(),
                });
            };
            let img = tree.resolve(img);
            if tree.scalar(img).is_some() {
                return Ok(Plan {
                    changes: vec![(join(&base, &["image"]), Scalar::Str(image.to_string()))],
                    why: None,
                });
            }
            image_map_plan(tree, img, join(&base, &["image"]), image)
        }
        _ => container_plan(tree, node, base, edit),
    }
}

fn show_values_path(path: &[String]) -> String {
    if path.is_empty() {
        "(top level)".to_string()
    } else {
        path.join(".")
    }
}

/// The keys charts name an image's repository with in a values image
/// mapping (`repository`, as most charts; `repo`; `name`, as in
/// `image: {name, tag}`; `image`), beside an optional `registry`.
pub const REPOSITORY_KEYS: [&str; 4] = ["repository", "repo", "name", "image"];

/// The one key of the image mapping `img` that names its repository, or
/// why heal8s cannot tell (no such key, or more than one): a key the chart
/// does not read would make a rollback silently do nothing.
fn repository_key(tree: &Tree<'_>, img: NodeId, base: &[Seg]) -> Result<&'static str, PatchError> {
    let keys: Vec<&str> = match &tree.nodes[img].kind {
        Kind::Map { entries, .. } => entries
            .iter()
            .filter_map(|&(k, _)| tree.scalar(k))
            .collect(),
        _ => Vec::new(),
    };
    let named: Vec<&'static str> = REPOSITORY_KEYS
        .into_iter()
        .filter(|k| keys.contains(k))
        .collect();
    let found = if keys.is_empty() {
        "no keys".to_string()
    } else {
        format!("keys {}", keys.join(", "))
    };
    let key = match named.as_slice() {
        [k] => *k,
        [] => {
            return Err(PatchError::Invalid(format!(
                "{}: the image mapping has {found} and none names the repository ({}): heal8s does not guess which key the chart reads",
                yaml::show_path(base),
                REPOSITORY_KEYS.join(", ")
            )));
        }
        several => {
            return Err(PatchError::Invalid(format!(
                "{}: the image mapping has {found}: {} could each name the repository; heal8s does not guess which one the chart reads",
                yaml::show_path(base),
                several.join(" and ")
            )));
        }
    };
    match tree.get(img, key) {
        Some((_, v)) if tree.scalar(v).is_some() => Ok(key),
        _ => Err(PatchError::Invalid(format!(
            "{}: {key} is not a plain value (the image mapping has {found})",
            yaml::show_path(base)
        ))),
    }
}

/// `image: {registry, repository, tag, digest}` in the chart's own fields
/// (the repository under any of [`REPOSITORY_KEYS`]).
fn image_map_plan(
    tree: &Tree<'_>,
    img: NodeId,
    base: Vec<Seg>,
    image: &str,
) -> Result<Plan, PatchError> {
    let field = |k: &str| {
        tree.get(img, k)
            .and_then(|(_, v)| {
                if tree.is_null(v) {
                    None
                } else {
                    tree.scalar(v)
                }
            })
            .map(str::to_string)
    };
    let has = |k: &str| tree.get(img, k).is_some();
    let new = split_image(image);
    let repo_key = repository_key(tree, img, &base)?;
    let registry = field("registry").filter(|r| !r.is_empty());
    let repository = field(repo_key).unwrap_or_default();
    let current = match &registry {
        Some(r) if !repository.is_empty() => format!("{r}/{repository}"),
        _ => repository.clone(),
    };
    let mut changes = Vec::new();
    let same = normalize_repo(new.name) == normalize_repo(&current)
        || (registry.is_none()
            && !repository.is_empty()
            && new.name.ends_with(&format!("/{repository}")));
    if !same {
        if registry.is_some() {
            let (reg, repo) = match new.name.split_once('/') {
                Some((r, p)) if r.contains(['.', ':']) || r == "localhost" => (r, p),
                _ => ("docker.io", new.name),
            };
            changes.push((join(&base, &["registry"]), Scalar::Str(reg.to_string())));
            changes.push((join(&base, &[repo_key]), Scalar::Str(repo.to_string())));
        } else {
            changes.push((join(&base, &[repo_key]), Scalar::Str(new.name.to_string())));
        }
    }
    if let Some(tag) = new.tag {
        changes.push((join(&base, &["tag"]), Scalar::Str(tag.to_string())));
    }
    match new.digest {
        Some(d) if has("digest") => {
            changes.push((join(&base, &["digest"]), Scalar::Str(d.to_string())))
        }
        Some(_) => {
            return Err(PatchError::Invalid(format!(
                "{}: the values have no digest field for {image}",
                yaml::show_path(&base)
            )));
        }
        None if field("digest").is_some_and(|d| !d.is_empty()) => {
            // a digest would win over the new tag
            changes.push((join(&base, &["digest"]), Scalar::Str(String::new())));
        }
        None => {}
    }
    Ok(Plan { changes, why: None })
}
