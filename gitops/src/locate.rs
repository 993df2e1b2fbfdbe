//! Where a live workload is declared in a manifest repository, and which file
//! an edit to it belongs in.
//!
//! Pure: works over a map of file paths to texts ([`Files`]); `load_dir`
//! reads one from disk. Configured rules and the `heal8s.io/source`
//! annotation come first, a search of the tree second; more than one
//! candidate is an error that names them all. A Helm values file is chosen
//! only by a rule: the annotation is written by whoever owns the live object,
//! and a values file, unlike a manifest, does not name the object it declares.
//!
//! Kustomize is modelled as far as these edits need: `resources`/`bases`
//! (files and directories), `namespace`, `namePrefix`/`nameSuffix`, `images`,
//! `replicas`, and strategic-merge patches (`patchesStrategicMerge`, and
//! `patches` entries with a `path`). An image rollback goes to the `images:`
//! entry of the outermost kustomization that has one for the container's
//! image, replicas to its `replicas:` entry, anything else to the outermost
//! overlay patch that sets the field, else to the base.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::edit::{Change, Scalar};
use crate::patch::{self, Edit, PatchError, Target};
use crate::yaml::{NodeId, Seg, Tree};

/// A repository's files: relative path (with `/`) → text.
pub type Files = BTreeMap<String, String>;

/// Largest file read from a repository: what the YAML reader takes at most
/// (a larger one is skipped, never parsed).
const MAX_FILE: u64 = crate::yaml::MAX_FILE_BYTES as u64;
/// Most files read from a repository.
const MAX_FILES: usize = 20_000;
/// Deepest kustomization nesting followed.
const MAX_KUSTOMIZE_DEPTH: usize = 16;

const KUSTOMIZATION_NAMES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Read the YAML files (and kustomizations) below `root`, skipping hidden
/// directories; symbolic links are not followed.
pub fn load_dir(root: &Path) -> std::io::Result<Files> {
    let mut files = Files::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let kind = entry.file_type()?;
            if name.starts_with('.') || kind.is_symlink() {
                continue;
            }
            if kind.is_dir() {
                stack.push(entry.path());
                continue;
            }
            let yaml = name.ends_with(".yaml") || name.ends_with(".yml") || name == "Kustomization";
            if !yaml || entry.metadata()?.len() > MAX_FILE {
                continue;
            }
            if files.len() >= MAX_FILES {
                return Err(std::io::Error::other(format!(
                    "more than {MAX_FILES} YAML files below {}",
                    root.display()
                )));
            }
            let rel = entry
                .path()
                .strip_prefix(root)
                .map_err(std::io::Error::other)?
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            // a file that is not UTF-8 is not a manifest
            if let Ok(text) = std::fs::read_to_string(entry.path()) {
                files.insert(rel, text);
            }
        }
    }
    Ok(files)
}

/// The live object to find.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    /// The value of its `heal8s.io/source` annotation, if any.
    pub source_annotation: Option<String>,
}

/// A configured rule: workloads it matches (`*` globs; absent matches all)
/// and where their source is (`{namespace}`, `{name}`, `{kind}` substituted).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SourceRule {
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub kind: Option<String>,
    /// A manifest file, a directory with a kustomization, or a Helm values file.
    pub path: String,
    /// With a values file: the component's values path (templated too).
    pub values_path: Option<String>,
}

/// A sources file: `sources:`, a list of rules, first match wins.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourcesFile {
    #[serde(default)]
    pub sources: Vec<SourceRule>,
}

/// Parse a sources file; an error names the field.
pub fn parse_rules(text: &str) -> Result<Vec<SourceRule>, String> {
    let doc: serde_json::Value =
        serde_saphyr::from_str(text).map_err(|e| format!("not valid YAML: {e}"))?;
    let file: SourcesFile = serde_path_to_error::deserialize(&doc)
        .map_err(|e| format!("{}: {}", e.path(), e.inner()))?;
    for (i, rule) in file.sources.iter().enumerate() {
        if rule.path.trim().is_empty() {
            return Err(format!("sources[{i}].path: must not be empty"));
        }
        clean_path(&rule.path).map_err(|e| format!("sources[{i}].path: {e}"))?;
    }
    Ok(file.sources)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocateError {
    #[error("{0} is declared nowhere in the repository")]
    NotFound(String),
    #[error("{what} is declared in more than one place: {}", .candidates.join("; "))]
    Ambiguous {
        what: String,
        candidates: Vec<String>,
    },
    #[error("{0}")]
    Invalid(String),
    /// The live object asked for a file that nothing proves is its own.
    #[error("{0}")]
    NotOwned(String),
    #[error("{file}: {error}")]
    File { file: String, error: String },
}

/// One level of kustomization between a base file and the build output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Level {
    /// The kustomization file.
    pub file: String,
    /// The object's name as this level's patches and entries see it.
    pub name: String,
}

/// Where a workload is declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A manifest document, possibly built through kustomizations (innermost
    /// first).
    Manifest {
        file: String,
        kind: String,
        /// Name and namespace as written in the file.
        name: String,
        namespace: Option<String>,
        levels: Vec<Level>,
        /// Other top-level kustomizations that also build this base file.
        shared_with: Vec<String>,
    },
    /// A component of a Helm values file.
    HelmValues {
        file: String,
        values_path: Vec<String>,
    },
}

impl Source {
    /// The file where the object itself is declared.
    pub fn file(&self) -> &str {
        match self {
            Source::Manifest { file, .. } | Source::HelmValues { file, .. } => file,
        }
    }

    fn describe(&self) -> String {
        match self {
            Source::Manifest { file, levels, .. } => match levels.last() {
                Some(top) => format!("{file} built by {}", top.file),
                None => file.clone(),
            },
            Source::HelmValues { file, values_path } => {
                format!("{file} at {}", show_values(values_path))
            }
        }
    }
}

fn show_values(path: &[String]) -> String {
    if path.is_empty() {
        "(top level)".to_string()
    } else {
        path.join(".")
    }
}

fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, tail)) => {
            text.starts_with(head)
                && (head.len()..=text.len())
                    .filter(|&i| text.is_char_boundary(i))
                    .any(|i| glob(tail, &text[i..]))
        }
    }
}

fn template(t: &str, w: &Workload) -> String {
    t.replace("{namespace}", w.namespace.as_deref().unwrap_or(""))
        .replace("{name}", &w.name)
        .replace("{kind}", &w.kind)
}

/// Refuse paths that leave the repository.
fn clean_path(path: &str) -> Result<String, LocateError> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(LocateError::Invalid(format!(
                        "{path:?} leaves the repository"
                    )));
                }
            }
            p => parts.push(p),
        }
    }
    if path.starts_with('/') && path.len() > 1 && parts.is_empty() {
        return Err(LocateError::Invalid(format!("{path:?} is not a file")));
    }
    Ok(parts.join("/"))
}

fn join_dir(dir: &str, rel: &str) -> Result<String, LocateError> {
    if rel.starts_with('/') || rel.contains("://") {
        return Err(LocateError::Invalid(format!(
            "{rel:?} is not a path inside the repository"
        )));
    }
    clean_path(&if dir.is_empty() {
        rel.to_string()
    } else {
        format!("{dir}/{rel}")
    })
}

fn dir_of(file: &str) -> &str {
    file.rfind('/').map_or("", |i| &file[..i])
}

fn kustomization_in(files: &Files, dir: &str) -> Option<String> {
    KUSTOMIZATION_NAMES
        .iter()
        .map(|n| {
            if dir.is_empty() {
                n.to_string()
            } else {
                format!("{dir}/{n}")
            }
        })
        .find(|p| files.contains_key(p))
}

fn is_kustomization(path: &str) -> bool {
    KUSTOMIZATION_NAMES
        .iter()
        .any(|n| path == *n || path.ends_with(&format!("/{n}")))
}

/// Find where `w` is declared: rules first, then its annotation, then a
/// search of the repository.
pub fn locate(
    files: &Files,
    w: &Workload,
    rules: &[SourceRule],
    repo: Option<&str>,
) -> Result<Source, LocateError> {
    let what = describe_workload(w);
    for rule in rules {
        let matches = |p: &Option<String>, v: Option<&str>| {
            p.as_deref().is_none_or(|p| glob(p, v.unwrap_or("")))
        };
        if matches(&rule.namespace, w.namespace.as_deref())
            && matches(&rule.name, Some(&w.name))
            && matches(&rule.kind, Some(&w.kind))
        {
            let path = clean_path(&template(&rule.path, w))?;
            if let Some(vp) = &rule.values_path {
                return values_source(files, &path, &template(vp, w));
            }
            return at_path(files, w, &path, &what);
        }
    }
    if let Some(annotation) = &w.source_annotation {
        let (named_repo, rest) = annotation.split_once("//").ok_or_else(|| {
            LocateError::Invalid(format!(
                "annotation heal8s.io/source {annotation:?}: expected <repo>//<path>"
            ))
        })?;
        if let Some(repo) = repo
            && !named_repo.is_empty()
            && named_repo.trim_end_matches(".git") != repo.trim_end_matches(".git")
        {
            return Err(LocateError::Invalid(format!(
                "annotation heal8s.io/source names the repository {named_repo}, not {repo}"
            )));
        }
        let (path, values) = match rest.split_once('#') {
            Some((p, v)) => (p, Some(v)),
            None => (rest, None),
        };
        let path = clean_path(path)?;
        return match values {
            // a values file does not say whose component it is (a manifest
            // names its object, checked below), and whoever owns the live
            // object writes its annotations: only a rule proves ownership
            Some(vp) => Err(LocateError::NotOwned(format!(
                "annotation heal8s.io/source names the Helm values file {path} at {}, \
                 which nothing ties to {what}: a values file is edited only when a \
                 pullRequests.sources rule for the workload names it (path and valuesPath)",
                show_values(&split_values(vp))
            ))),
            None => at_path(files, w, &path, &what),
        };
    }
    search(files, w, None, &what)
}

fn describe_workload(w: &Workload) -> String {
    match &w.namespace {
        Some(ns) => format!("{} {ns}/{}", w.kind, w.name),
        None => format!("{} {}", w.kind, w.name),
    }
}

fn values_source(files: &Files, path: &str, values_path: &str) -> Result<Source, LocateError> {
    if !files.contains_key(path) {
        return Err(LocateError::NotFound(format!("the values file {path}")));
    }
    Ok(Source::HelmValues {
        file: path.to_string(),
        values_path: split_values(values_path),
    })
}

fn split_values(values_path: &str) -> Vec<String> {
    match values_path.trim() {
        "" | "." => Vec::new(),
        p => p.split('.').map(str::to_string).collect(),
    }
}

/// A rule or annotation named a file or a directory: search only there.
fn at_path(files: &Files, w: &Workload, path: &str, what: &str) -> Result<Source, LocateError> {
    if files.contains_key(path) && !is_kustomization(path) {
        return search(files, w, Some(Scope::File(path)), what);
    }
    let dir = if is_kustomization(path) {
        dir_of(path)
    } else {
        path
    };
    if kustomization_in(files, dir).is_some() {
        return search(files, w, Some(Scope::Kustomization(dir)), what);
    }
    let prefix = format!("{}/", dir.trim_end_matches('/'));
    if files.keys().any(|f| f.starts_with(&prefix)) {
        return search(files, w, Some(Scope::Dir(&prefix)), what);
    }
    Err(LocateError::NotFound(format!("{path} (named for {what})")))
}

#[derive(Debug, Clone, Copy)]
enum Scope<'a> {
    File(&'a str),
    Dir(&'a str),
    Kustomization(&'a str),
}

/// An object a build produces.
#[derive(Debug, Clone)]
struct Built {
    file: String,
    kind: String,
    /// As written in the file.
    name: String,
    namespace: Option<String>,
    /// After every level's transformations.
    final_name: String,
    final_namespace: Option<String>,
    levels: Vec<Level>,
}

/// The declared objects of a manifest file: (kind, name, namespace).
fn objects(
    files: &Files,
    file: &str,
) -> Result<Vec<(String, String, Option<String>)>, LocateError> {
    let text = files.get(file).ok_or_else(|| LocateError::File {
        file: file.to_string(),
        error: "no such file".to_string(),
    })?;
    let tree = Tree::parse(text).map_err(|e| LocateError::File {
        file: file.to_string(),
        error: e.to_string(),
    })?;
    Ok(patch::declared(&tree)
        .into_iter()
        .map(|d| (d.kind, d.name, d.namespace))
        .collect())
}

/// A kustomization's fields that matter here.
#[derive(Debug, Default)]
struct Kustomization {
    resources: Vec<String>,
    namespace: Option<String>,
    prefix: String,
    suffix: String,
    patches: Vec<String>,
}

fn read_kustomization(files: &Files, file: &str) -> Result<Kustomization, LocateError> {
    let text = files.get(file).map(String::as_str).unwrap_or("");
    let err = |error: String| LocateError::File {
        file: file.to_string(),
        error,
    };
    let tree = Tree::parse(text).map_err(|e| err(e.to_string()))?;
    let Some(doc) = tree.docs.first() else {
        return Ok(Kustomization::default());
    };
    let root = doc.root;
    let scalar = |k: &str| {
        tree.get(root, k)
            .filter(|&(_, v)| !tree.is_null(v))
            .and_then(|(_, v)| tree.scalar(v))
            .map(str::to_string)
    };
    let list = |k: &str| -> Vec<NodeId> {
        tree.get(root, k)
            .and_then(|(_, v)| tree.items(v))
            .map(<[NodeId]>::to_vec)
            .unwrap_or_default()
    };
    let dir = dir_of(file);
    let mut k = Kustomization {
        namespace: scalar("namespace").filter(|n| !n.is_empty()),
        prefix: scalar("namePrefix").unwrap_or_default(),
        suffix: scalar("nameSuffix").unwrap_or_default(),
        ..Kustomization::default()
    };
    for item in list("resources").into_iter().chain(list("bases")) {
        if let Some(r) = tree.scalar(item) {
            // remote bases (URLs) are not in this repository
            if r.contains("://") || r.starts_with("github.com/") {
                continue;
            }
            k.resources
                .push(join_dir(dir, r).map_err(|e| err(e.to_string()))?);
        }
    }
    for item in list("patchesStrategicMerge") {
        if let Some(p) = tree.scalar(item)
            && !p.contains('\n')
        {
            k.patches
                .push(join_dir(dir, p).map_err(|e| err(e.to_string()))?);
        }
    }
    for item in list("patches") {
        if let Some((_, p)) = tree.get(item, "path")
            && let Some(p) = tree.scalar(p)
        {
            k.patches
                .push(join_dir(dir, p).map_err(|e| err(e.to_string()))?);
        }
    }
    Ok(k)
}

/// Every object a kustomization directory builds, with its levels.
fn build(
    files: &Files,
    dir: &str,
    depth: usize,
    seen: &mut BTreeSet<String>,
) -> Result<Vec<Built>, LocateError> {
    let Some(file) = kustomization_in(files, dir) else {
        return Err(LocateError::NotFound(format!("a kustomization in {dir}/")));
    };
    if depth > MAX_KUSTOMIZE_DEPTH || !seen.insert(file.clone()) {
        return Err(LocateError::File {
            file,
            error: "kustomizations include each other in a cycle, or nest too deep".to_string(),
        });
    }
    let k = read_kustomization(files, &file)?;
    let mut out = Vec::new();
    for r in &k.resources {
        if files.contains_key(r) {
            for (kind, name, namespace) in objects(files, r)? {
                out.push(Built {
                    file: r.clone(),
                    kind,
                    final_name: name.clone(),
                    final_namespace: namespace.clone(),
                    name,
                    namespace,
                    levels: Vec::new(),
                });
            }
        } else if kustomization_in(files, r).is_some() {
            out.extend(build(files, r, depth + 1, seen)?);
        } else {
            return Err(LocateError::File {
                file: file.clone(),
                error: format!("resource {r} is neither a file nor a kustomization directory here"),
            });
        }
    }
    for b in &mut out {
        b.levels.push(Level {
            file: file.clone(),
            name: b.final_name.clone(),
        });
        b.final_name = format!("{}{}{}", k.prefix, b.final_name, k.suffix);
        if k.namespace.is_some() {
            b.final_namespace = k.namespace.clone();
        }
    }
    seen.remove(&file);
    Ok(out)
}

fn search(
    files: &Files,
    w: &Workload,
    scope: Option<Scope<'_>>,
    what: &str,
) -> Result<Source, LocateError> {
    // every kustomization, and which files and directories each includes
    let kustomizations: Vec<&String> = files.keys().filter(|f| is_kustomization(f)).collect();
    let mut included: BTreeSet<String> = BTreeSet::new();
    let mut built = Vec::new();
    let mut problems = Vec::new();
    for kf in &kustomizations {
        match read_kustomization(files, kf) {
            Ok(k) => {
                for r in &k.resources {
                    included.insert(kustomization_in(files, r).unwrap_or_else(|| r.clone()));
                }
                included.extend(k.patches);
            }
            Err(e) => problems.push(e),
        }
    }
    let in_scope = |file: &str| match scope {
        None => true,
        Some(Scope::File(f)) => file == f,
        Some(Scope::Dir(d)) => file.starts_with(d),
        Some(Scope::Kustomization(_)) => false,
    };
    // top-level kustomizations build what is deployed
    let tops: Vec<&String> = match scope {
        Some(Scope::Kustomization(dir)) => kustomizations
            .iter()
            .copied()
            .filter(|k| dir_of(k) == dir)
            .collect(),
        Some(Scope::File(_)) => Vec::new(),
        _ => kustomizations
            .iter()
            .copied()
            .filter(|k| !included.contains(*k) && in_scope(k))
            .collect(),
    };
    for top in &tops {
        match build(files, dir_of(top), 0, &mut BTreeSet::new()) {
            Ok(objects) => built.extend(objects),
            Err(e) => problems.push(e),
        }
    }
    // plain files no kustomization includes
    for file in files.keys() {
        if is_kustomization(file) || included.contains(file) || !in_scope(file) {
            continue;
        }
        // a file that does not parse is not a candidate, and not a failure
        let Ok(objs) = objects(files, file) else {
            continue;
        };
        for (kind, name, namespace) in objs {
            built.push(Built {
                file: file.clone(),
                kind,
                final_name: name.clone(),
                final_namespace: namespace.clone(),
                name,
                namespace,
                levels: Vec::new(),
            });
        }
    }
    let same = |b: &&Built| b.kind.eq_ignore_ascii_case(&w.kind) && b.final_name == w.name;
    let mut found: Vec<&Built> = built.iter().filter(same).collect();
    if let Some(ns) = &w.namespace {
        let exact: Vec<&Built> = found
            .iter()
            .copied()
            .filter(|b| b.final_namespace.as_deref() == Some(ns))
            .collect();
        found = if exact.is_empty() {
            found
                .into_iter()
                .filter(|b| b.final_namespace.is_none())
                .collect()
        } else {
            exact
        };
    }
    let source = |b: &Built| {
        let base_users: Vec<String> = built
            .iter()
            .filter(|o| o.file == b.file && o.levels.last() != b.levels.last())
            .filter_map(|o| o.levels.last().map(|l| l.file.clone()))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        Source::Manifest {
            file: b.file.clone(),
            kind: b.kind.clone(),
            name: b.name.clone(),
            namespace: b.namespace.clone(),
            levels: b.levels.clone(),
            shared_with: base_users,
        }
    };
    match found.as_slice() {
        [one] => Ok(source(one)),
        [] => match problems.into_iter().next() {
            // a broken kustomization may be what hides it
            Some(p) => Err(LocateError::Invalid(format!("{what} not found; {p}"))),
            None => Err(LocateError::NotFound(what.to_string())),
        },
        many => Err(LocateError::Ambiguous {
            what: what.to_string(),
            candidates: many.iter().map(|b| source(b).describe()).collect(),
        }),
    }
}

/// A file to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEdit {
    pub file: String,
    pub text: String,
    pub changes: Vec<patch::FieldChange>,
    pub why: Option<String>,
    /// What a reviewer should know (a shared base, for one).
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceEditError {
    #[error(transparent)]
    Locate(#[from] LocateError),
    #[error("{file}: {error}")]
    Patch { file: String, error: PatchError },
}

/// Apply an edit to the workload's source: the file the field belongs in.
pub fn edit_source(
    files: &Files,
    source: &Source,
    container: Option<&str>,
    edit: &Edit,
) -> Result<FileEdit, SourceEditError> {
    let text_of = |file: &str| -> Result<&String, SourceEditError> {
        files.get(file).ok_or_else(|| {
            SourceEditError::Locate(LocateError::NotFound(format!("the file {file}")))
        })
    };
    let done = |file: &str, p: patch::Patched, notes: Vec<String>| FileEdit {
        file: file.to_string(),
        text: p.text,
        changes: p.changes,
        why: p.why,
        notes,
    };
    let perr = |file: &str| {
        let file = file.to_string();
        move |error| SourceEditError::Patch { file, error }
    };
    let (file, kind, name, namespace, levels, shared_with) = match source {
        Source::HelmValues { file, values_path } => {
            let target = Target::HelmValues {
                path: values_path.clone(),
            };
            let p = patch::patch(text_of(file)?, &target, edit).map_err(perr(file))?;
            return Ok(done(file, p, Vec::new()));
        }
        Source::Manifest {
            file,
            kind,
            name,
            namespace,
            levels,
            shared_with,
        } => (file, kind, name, namespace, levels, shared_with),
    };
    // the outermost kustomization level that sets the field wins
    for level in levels.iter().rev() {
        if let Some(found) = kustomize_entry(files, level, file, kind, name, container, edit)? {
            return Ok(found);
        }
        if let Some(found) = overlay_patch(files, level, kind, container, edit)? {
            return Ok(found);
        }
    }
    let target = Target::Manifest {
        kind: kind.clone(),
        name: name.clone(),
        namespace: namespace.clone(),
        container: container.map(str::to_string),
    };
    let p = patch::patch(text_of(file)?, &target, edit).map_err(perr(file))?;
    let notes = if shared_with.is_empty() {
        Vec::new()
    } else {
        vec![format!(
            "{file} is a base that {} also build{}: they change too",
            shared_with.join(", "),
            if shared_with.len() == 1 { "s" } else { "" }
        )]
    };
    Ok(done(file, p, notes))
}

/// An `images:` or `replicas:` entry of a kustomization that the edit goes to.
fn kustomize_entry(
    files: &Files,
    level: &Level,
    base_file: &str,
    kind: &str,
    base_name: &str,
    container: Option<&str>,
    edit: &Edit,
) -> Result<Option<FileEdit>, SourceEditError> {
    let Some(text) = files.get(&level.file) else {
        return Ok(None);
    };
    let perr = |error| SourceEditError::Patch {
        file: level.file.clone(),
        error,
    };
    let tree = Tree::parse(text).map_err(|e| perr(e.into()))?;
    let Some(root) = tree.docs.first().map(|d| d.root) else {
        return Ok(None);
    };
    let entries = |key: &str| -> Vec<NodeId> {
        tree.get(root, key)
            .and_then(|(_, v)| tree.items(v))
            .map(<[NodeId]>::to_vec)
            .unwrap_or_default()
    };
    let field = |item: NodeId, k: &str| {
        tree.get(item, k)
            .filter(|&(_, v)| !tree.is_null(v))
            .and_then(|(_, v)| tree.scalar(v))
            .map(str::to_string)
    };
    let mut changes = Vec::new();
    let mut shown = Vec::new();
    match edit {
        Edit::Replicas(_) | Edit::ScaleUp { .. } => {
            let Some((i, item)) = entries("replicas")
                .into_iter()
                .enumerate()
                .find(|&(_, item)| {
                    field(item, "name").is_some_and(|n| n == level.name || n == base_name)
                })
            else {
                return Ok(None);
            };
            let count = field(item, "count").and_then(|c| c.parse::<u32>().ok());
            let new = match edit {
                Edit::Replicas(n) => *n,
                Edit::ScaleUp { percent, cap } => {
                    let cur = count.unwrap_or(1);
                    match crate::arith::scale_up(cur, *percent, *cap) {
                        crate::arith::ScaleUp::To(n) => n,
                        crate::arith::ScaleUp::AtCap { current, cap } => {
                            return Err(perr(PatchError::AtCap {
                                path: format!("replicas.{i}.count"),
                                current: current.to_string(),
                                cap: cap.to_string(),
                            }));
                        }
                    }
                }
                _ => return Ok(None),
            };
            if let Some(cur) = count
                && new <= cur
            {
                return Err(perr(if new == cur {
                    PatchError::NoChange(format!("replicas.{i}.count is already {cur}"))
                } else {
                    PatchError::WouldLower {
                        path: format!("replicas.{i}.count"),
                        current: cur.to_string(),
                        new: new.to_string(),
                    }
                }));
            }
            shown.push(patch::FieldChange {
                path: format!("replicas.{i}.count"),
                before: count.map(|c| c.to_string()),
                after: new.to_string(),
            });
            changes.push(Change {
                path: vec![Seg::key("replicas"), Seg::Index(i), Seg::key("count")],
                value: Scalar::Int(i64::from(new)),
            });
        }
        Edit::Image(image) => {
            let Some(current) = container_image(files, base_file, kind, base_name, container)?
            else {
                return Ok(None);
            };
            let current_name = patch::split_image(&current).name;
            let Some((i, item)) = entries("images")
                .into_iter()
                .enumerate()
                .find(|&(_, item)| field(item, "name").is_some_and(|n| n == current_name))
            else {
                return Ok(None);
            };
            let new = patch::split_image(image.trim());
            let (name, tag, digest) = (new.name, new.tag, new.digest);
            let effective = field(item, "newName").unwrap_or_else(|| current_name.to_string());
            let mut set = |k: &str, v: &str| {
                if field(item, k).as_deref() != Some(v) {
                    shown.push(patch::FieldChange {
                        path: format!("images.{i}.{k}"),
                        before: field(item, k),
                        after: v.to_string(),
                    });
                    changes.push(Change {
                        path: vec![Seg::key("images"), Seg::Index(i), Seg::key(k)],
                        value: Scalar::Str(v.to_string()),
                    });
                }
            };
            if name != effective {
                set("newName", name);
            }
            match (tag, digest) {
                (_, Some(d)) => set("digest", d),
                (Some(t), None) => {
                    if field(item, "digest").is_some() {
                        return Err(perr(PatchError::Invalid(format!(
                            "images.{i} pins a digest; give the new image by digest"
                        ))));
                    }
                    set("newTag", t);
                }
                (None, None) => {}
            }
        }
        _ => return Ok(None),
    }
    if changes.is_empty() {
        return Err(perr(PatchError::NoChange(
            "the kustomization already sets these values".to_string(),
        )));
    }
    let text = crate::edit::apply_parsed(&tree, 0, &changes).map_err(|e| perr(e.into()))?;
    Ok(Some(FileEdit {
        file: level.file.clone(),
        text,
        changes: shown,
        why: None,
        notes: Vec::new(),
    }))
}

/// A strategic-merge patch of this level that already sets the edited field
/// for this object: the edit goes there.
fn overlay_patch(
    files: &Files,
    level: &Level,
    kind: &str,
    container: Option<&str>,
    edit: &Edit,
) -> Result<Option<FileEdit>, SourceEditError> {
    let k = read_kustomization(files, &level.file)?;
    for file in k.patches.iter().rev() {
        let Some(text) = files.get(file) else {
            continue;
        };
        let Ok(tree) = Tree::parse(text) else {
            continue;
        };
        let sets = tree.docs.iter().any(|d| {
            let s = |n: NodeId, k: &str| tree.get(n, k).and_then(|(_, v)| tree.scalar(v));
            let meta = tree.get(d.root, "metadata").map(|(_, m)| m);
            s(d.root, "kind").is_some_and(|k| k.eq_ignore_ascii_case(kind))
                && meta.and_then(|m| s(m, "name")) == Some(level.name.as_str())
                && patch_sets(&tree, d.root, kind, container, edit)
        });
        if !sets {
            continue;
        }
        let target = Target::Manifest {
            kind: kind.to_string(),
            name: level.name.clone(),
            namespace: None,
            container: container.map(str::to_string),
        };
        let p = patch::patch(text, &target, edit).map_err(|error| SourceEditError::Patch {
            file: file.clone(),
            error,
        })?;
        return Ok(Some(FileEdit {
            file: file.clone(),
            text: p.text,
            changes: p.changes,
            why: p.why,
            notes: vec![format!("an overlay patch of {}", level.file)],
        }));
    }
    Ok(None)
}

/// Whether a patch document sets the field the edit changes.
fn patch_sets(
    tree: &Tree<'_>,
    root: NodeId,
    kind: &str,
    container: Option<&str>,
    edit: &Edit,
) -> bool {
    let at = |node: NodeId, path: &[&str]| {
        let mut n = node;
        for k in path {
            n = tree.get(n, k)?.1;
        }
        Some(n)
    };
    match edit {
        Edit::Replicas(_) | Edit::ScaleUp { .. } => {
            let field = if kind.eq_ignore_ascii_case("HorizontalPodAutoscaler") {
                "maxReplicas"
            } else {
                "replicas"
            };
            at(root, &["spec", field]).is_some()
        }
        Edit::Memory(_) | Edit::BumpMemory(_) | Edit::Image(_) => {
            let spec = patch::pod_spec_path(kind);
            let Some(list) = at(root, &[spec, &["containers"]].concat()) else {
                return false;
            };
            let Some(items) = tree.items(list) else {
                return false;
            };
            items.iter().any(|&c| {
                let name = tree.get(c, "name").and_then(|(_, v)| tree.scalar(v));
                let ours = match container {
                    Some(want) => name == Some(want),
                    None => items.len() == 1,
                };
                ours && match edit {
                    Edit::Image(_) => at(c, &["image"]).is_some(),
                    _ => {
                        at(c, &["resources", "limits", "memory"]).is_some()
                            || at(c, &["resources", "requests", "memory"]).is_some()
                    }
                }
            })
        }
    }
}

/// The image a container has in the base file.
fn container_image(
    files: &Files,
    file: &str,
    kind: &str,
    name: &str,
    container: Option<&str>,
) -> Result<Option<String>, SourceEditError> {
    let Some(text) = files.get(file) else {
        return Ok(None);
    };
    let Ok(tree) = Tree::parse(text) else {
        return Ok(None);
    };
    let Some(object) = patch::declared(&tree)
        .into_iter()
        .find(|d| d.kind.eq_ignore_ascii_case(kind) && d.name == name)
    else {
        return Ok(None);
    };
    let spec = patch::pod_spec_path(kind);
    let (list, index) = match patch::find_container(&tree, object.node, spec, container) {
        Ok(found) => found,
        Err(error @ PatchError::Ambiguous { .. }) => {
            return Err(SourceEditError::Patch {
                file: file.to_string(),
                error,
            });
        }
        Err(_) => return Ok(None),
    };
    let mut path: Vec<Seg> = spec.iter().map(|k| Seg::key(k)).collect();
    path.extend([Seg::key(list), Seg::Index(index), Seg::key("image")]);
    Ok(patch::node_at(&tree, object.node, &path)
        .and_then(|n| tree.scalar(n))
        .map(str::to_string))
}
