//! A git object database: blobs, trees and commits with real git object ids
//! (SHA-1 of `<type> <len>\0<body>`), plus the tree and history operations
//! the API needs: flattening, rebuilding from paths, ancestry, merge bases
//! and a file-level three-way merge.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use jiff::Timestamp;

use super::sha1;

/// Mode of a subdirectory as the API shows it (git itself writes `40000`).
pub(crate) const MODE_TREE: &str = "040000";
/// Mode of a regular file.
pub(crate) const MODE_FILE: &str = "100644";

/// One entry of a tree object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TreeEntry {
    pub name: String,
    /// `100644`, `100755`, `120000` (symlink), `040000` (tree), `160000` (submodule).
    pub mode: String,
    pub sha: String,
}

impl TreeEntry {
    /// `blob`, `tree` or `commit` (submodule).
    pub fn kind(&self) -> &'static str {
        kind_of_mode(&self.mode)
    }
}

/// The object type an entry mode points at.
pub(crate) fn kind_of_mode(mode: &str) -> &'static str {
    match mode {
        MODE_TREE => "tree",
        "160000" => "commit",
        _ => "blob",
    }
}

/// Author or committer of a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Signature {
    pub name: String,
    pub email: String,
    pub date: Timestamp,
}

/// A commit object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Commit {
    pub tree: String,
    pub parents: Vec<String>,
    pub message: String,
    pub author: Signature,
    pub committer: Signature,
}

/// A stored git object.
#[derive(Debug, Clone)]
pub(crate) enum Object {
    Blob(Vec<u8>),
    Tree(Vec<TreeEntry>),
    Commit(Commit),
}

/// A leaf of a flattened tree: everything but subdirectories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Leaf {
    pub mode: String,
    pub sha: String,
}

/// Paths (slash-separated) to leaves.
pub(crate) type Flat = BTreeMap<String, Leaf>;

/// Why a three-way merge failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Conflict(pub Vec<String>);

/// The result of a clean merge: an existing tree, or leaves still to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Merged {
    Tree(String),
    Flat(Flat),
}

/// One repository's objects.
#[derive(Debug, Default)]
pub(crate) struct Odb {
    objects: HashMap<String, Object>,
}

fn hash_object(kind: &str, body: &[u8]) -> String {
    let mut data = format!("{kind} {}\0", body.len()).into_bytes();
    data.extend_from_slice(body);
    sha1::hex_digest(&data)
}

/// Git's tree order: names compared bytewise, subtrees as if followed by `/`.
fn tree_sort_key(e: &TreeEntry) -> Vec<u8> {
    let mut k = e.name.as_bytes().to_vec();
    if e.mode == MODE_TREE {
        k.push(b'/');
    }
    k
}

fn signature_line(sig: &Signature) -> String {
    format!(
        "{} <{}> {} +0000",
        sig.name,
        sig.email,
        sig.date.as_second()
    )
}

impl Odb {
    /// Store a blob; its id.
    pub fn put_blob(&mut self, data: Vec<u8>) -> String {
        let sha = hash_object("blob", &data);
        self.objects
            .entry(sha.clone())
            .or_insert(Object::Blob(data));
        sha
    }

    /// Store a tree (entries are sorted in git order); its id.
    pub fn put_tree(&mut self, mut entries: Vec<TreeEntry>) -> String {
        entries.sort_by_key(tree_sort_key);
        let mut body = Vec::new();
        for e in &entries {
            let mode = e.mode.trim_start_matches('0');
            body.extend_from_slice(format!("{mode} {}\0", e.name).as_bytes());
            body.extend_from_slice(&sha1::unhex(&e.sha).unwrap_or([0; 20]));
        }
        let sha = hash_object("tree", &body);
        self.objects
            .entry(sha.clone())
            .or_insert(Object::Tree(entries));
        sha
    }

    /// Store a commit; its id.
    pub fn put_commit(&mut self, c: Commit) -> String {
        let mut text = format!("tree {}\n", c.tree);
        for p in &c.parents {
            text.push_str(&format!("parent {p}\n"));
        }
        text.push_str(&format!("author {}\n", signature_line(&c.author)));
        text.push_str(&format!("committer {}\n\n", signature_line(&c.committer)));
        text.push_str(&c.message);
        let sha = hash_object("commit", text.as_bytes());
        self.objects.entry(sha.clone()).or_insert(Object::Commit(c));
        sha
    }

    pub fn blob(&self, sha: &str) -> Option<&[u8]> {
        match self.objects.get(sha) {
            Some(Object::Blob(b)) => Some(b),
            _ => None,
        }
    }

    pub fn tree(&self, sha: &str) -> Option<&[TreeEntry]> {
        match self.objects.get(sha) {
            Some(Object::Tree(t)) => Some(t),
            _ => None,
        }
    }

    pub fn commit(&self, sha: &str) -> Option<&Commit> {
        match self.objects.get(sha) {
            Some(Object::Commit(c)) => Some(c),
            _ => None,
        }
    }

    /// Every leaf below `tree` with its full path.
    pub fn flatten(&self, tree: &str) -> Flat {
        self.list(tree, true)
            .into_iter()
            .filter(|(_, e)| e.mode != MODE_TREE)
            .map(|(path, e)| {
                let TreeEntry { mode, sha, .. } = e;
                (path, Leaf { mode, sha })
            })
            .collect()
    }

    /// Store the trees for `flat`; the root tree's id. Directories without
    /// leaves disappear, as in git.
    pub fn build(&mut self, flat: &Flat) -> String {
        let items: Vec<(&str, &Leaf)> = flat.iter().map(|(p, l)| (p.as_str(), l)).collect();
        self.build_level(&items)
    }

    fn build_level(&mut self, items: &[(&str, &Leaf)]) -> String {
        let mut entries = Vec::new();
        let mut dirs: BTreeMap<&str, Vec<(&str, &Leaf)>> = BTreeMap::new();
        for (path, leaf) in items {
            match path.split_once('/') {
                Some((dir, rest)) => dirs.entry(dir).or_default().push((rest, leaf)),
                None => entries.push(TreeEntry {
                    name: path.to_string(),
                    mode: leaf.mode.clone(),
                    sha: leaf.sha.clone(),
                }),
            }
        }
        for (dir, sub) in dirs {
            let sha = self.build_level(&sub);
            entries.push(TreeEntry {
                name: dir.to_string(),
                mode: MODE_TREE.to_string(),
                sha,
            });
        }
        self.put_tree(entries)
    }

    /// The entries of `tree` (every level with full paths when `recursive`,
    /// parents before children, in git order).
    pub fn list(&self, tree: &str, recursive: bool) -> Vec<(String, TreeEntry)> {
        let mut out = Vec::new();
        self.list_into(tree, "", recursive, &mut out);
        out
    }

    fn list_into(
        &self,
        tree: &str,
        prefix: &str,
        recursive: bool,
        out: &mut Vec<(String, TreeEntry)>,
    ) {
        for e in self.tree(tree).unwrap_or(&[]) {
            let path = format!("{prefix}{}", e.name);
            out.push((path.clone(), e.clone()));
            if recursive && e.mode == MODE_TREE {
                self.list_into(&e.sha, &format!("{path}/"), true, out);
            }
        }
    }

    /// The entry at `path` below `tree` ("" = the tree itself, as a directory entry).
    pub fn lookup(&self, tree: &str, path: &str) -> Option<TreeEntry> {
        let path = path.trim_matches('/');
        if path.is_empty() {
            return self.tree(tree).map(|_| TreeEntry {
                name: String::new(),
                mode: MODE_TREE.to_string(),
                sha: tree.to_string(),
            });
        }
        let mut current = tree.to_string();
        let mut segments = path.split('/').peekable();
        while let Some(seg) = segments.next() {
            let entry = self.tree(&current)?.iter().find(|e| e.name == seg)?.clone();
            if segments.peek().is_none() {
                return Some(entry);
            }
            if entry.mode != MODE_TREE {
                return None;
            }
            current = entry.sha;
        }
        None
    }

    /// Commits reachable from `head` (itself included), breadth-first,
    /// not walking into those `stop` picks.
    fn walk(&self, head: &str, stop: impl Fn(&str) -> bool) -> Vec<String> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut queue = VecDeque::from([head.to_string()]);
        while let Some(s) = queue.pop_front() {
            if stop(&s) || !seen.insert(s.clone()) {
                continue;
            }
            if let Some(c) = self.commit(&s) {
                queue.extend(c.parents.iter().cloned());
                out.push(s);
            }
        }
        out
    }

    /// Every commit reachable from `sha` (itself included).
    pub fn ancestors(&self, sha: &str) -> HashSet<String> {
        self.walk(sha, |_| false).into_iter().collect()
    }

    /// Whether `ancestor` is reachable from `descendant` (or equal to it).
    pub fn is_ancestor(&self, ancestor: &str, descendant: &str) -> bool {
        self.ancestors(descendant).contains(ancestor)
    }

    /// The nearest common ancestor of `a` and `b` (breadth-first from `b`).
    pub fn merge_base(&self, a: &str, b: &str) -> Option<String> {
        let of_a = self.ancestors(a);
        self.walk(b, |_| false)
            .into_iter()
            .find(|s| of_a.contains(s))
    }

    /// Commits reachable from `head` but not from `base`, newest first (breadth-first).
    pub fn commits_between(&self, base: &str, head: &str) -> Vec<String> {
        let exclude = self.ancestors(base);
        self.walk(head, |s| exclude.contains(s))
    }

    /// The tree of a commit.
    pub fn commit_tree(&self, sha: &str) -> Option<String> {
        self.commit(sha).map(|c| c.tree.clone())
    }

    /// Merge `head` into `base` file by file: a path changed on one side
    /// only (relative to their merge base) takes that side; changed on both
    /// sides to different results is a conflict. Stores nothing.
    pub fn merge_plan(&self, base: &str, head: &str) -> Result<Merged, Conflict> {
        let tree_of = |c: &str| self.commit_tree(c).unwrap_or_default();
        let Some(mb) = self.merge_base(base, head) else {
            return Err(Conflict(vec!["(no common history)".to_string()]));
        };
        if mb == head {
            return Ok(Merged::Tree(tree_of(base)));
        }
        if mb == base {
            return Ok(Merged::Tree(tree_of(head)));
        }
        let (o, b, h) = (
            self.flatten(&tree_of(&mb)),
            self.flatten(&tree_of(base)),
            self.flatten(&tree_of(head)),
        );
        let mut merged = Flat::new();
        let mut conflicts = Vec::new();
        let paths: std::collections::BTreeSet<&String> =
            o.keys().chain(b.keys()).chain(h.keys()).collect();
        for p in paths {
            let (ov, bv, hv) = (o.get(p), b.get(p), h.get(p));
            let pick = if hv == ov {
                bv
            } else if bv == ov || bv == hv {
                hv
            } else {
                conflicts.push(p.clone());
                continue;
            };
            if let Some(l) = pick {
                merged.insert(p.clone(), l.clone());
            }
        }
        if conflicts.is_empty() {
            Ok(Merged::Flat(merged))
        } else {
            Err(Conflict(conflicts))
        }
    }

    /// [`Odb::merge_plan`], storing the merged tree; its id.
    pub fn merge(&mut self, base: &str, head: &str) -> Result<String, Conflict> {
        Ok(match self.merge_plan(base, head)? {
            Merged::Tree(t) => t,
            Merged::Flat(flat) => self.build(&flat),
        })
    }

    /// Files that differ between two trees, with added and deleted line
    /// counts (lines compared as multisets, not a real diff).
    pub fn diff_stats(&self, old_tree: &str, new_tree: &str) -> (usize, usize, usize) {
        let (old, new) = (self.flatten(old_tree), self.flatten(new_tree));
        let paths: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
        let (mut files, mut adds, mut dels) = (0, 0, 0);
        for p in paths {
            let (a, b) = (old.get(p), new.get(p));
            if a == b {
                continue;
            }
            files += 1;
            let lines = |l: Option<&Leaf>| -> HashMap<Vec<u8>, usize> {
                let mut m = HashMap::new();
                if let Some(data) = l.and_then(|l| self.blob(&l.sha)) {
                    for line in data.split(|c| *c == b'\n').filter(|s| !s.is_empty()) {
                        *m.entry(line.to_vec()).or_insert(0) += 1;
                    }
                }
                m
            };
            let (la, lb) = (lines(a), lines(b));
            for (line, n) in &lb {
                adds += n.saturating_sub(*la.get(line).unwrap_or(&0));
            }
            for (line, n) in &la {
                dels += n.saturating_sub(*lb.get(line).unwrap_or(&0));
            }
        }
        (files, adds, dels)
    }
}

/// Put `leaf` at `path`, replacing a subdirectory there and files where its
/// parent directories go.
pub(crate) fn place(flat: &mut Flat, path: &str, leaf: Leaf) {
    remove(flat, path);
    let mut dir = path;
    while let Some((parent, _)) = dir.rsplit_once('/') {
        flat.remove(parent);
        dir = parent;
    }
    flat.insert(path.to_string(), leaf);
}

/// Remove the file or directory at `path`.
pub(crate) fn remove(flat: &mut Flat, path: &str) {
    let prefix = format!("{path}/");
    flat.retain(|p, _| p != path && !p.starts_with(&prefix));
}

/// Whether `path` is a usable repository path: non-empty segments, no `.`/`..`, no `.git`.
pub(crate) fn valid_path(path: &str) -> bool {
    !path.is_empty()
        && path
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != ".." && s != ".git" && !s.contains('\0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig() -> Signature {
        Signature {
            name: "A U Thor".into(),
            email: "author@example.com".into(),
            date: Timestamp::from_second(1_112_911_993).unwrap(),
        }
    }

    #[test]
    fn ids_match_git() {
        let mut odb = Odb::default();
        assert_eq!(
            odb.put_tree(Vec::new()),
            "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
        );
        let blob = odb.put_blob(b"hello\n".to_vec());
        assert_eq!(blob, "ce013625030ba8dba906f756967f9e9ca394464a");
        // printf 'hello\n' > a; mkdir d; cp a d/b; git add .; git write-tree
        let mut flat = Flat::new();
        for p in ["a", "d/b"] {
            flat.insert(
                p.into(),
                Leaf {
                    mode: MODE_FILE.into(),
                    sha: blob.clone(),
                },
            );
        }
        let tree = odb.build(&flat);
        assert_eq!(tree, "289e1b814b92c9a9efb807b9ec4afa28cfa0fb64");
        assert_eq!(odb.flatten(&tree), flat);
        assert_eq!(odb.lookup(&tree, "d/b").unwrap().sha, blob);
        assert_eq!(odb.lookup(&tree, "d").unwrap().kind(), "tree");
        assert!(odb.lookup(&tree, "a/x").is_none());
        let listed: Vec<String> = odb.list(&tree, true).into_iter().map(|(p, _)| p).collect();
        assert_eq!(listed, ["a", "d", "d/b"]);
        // `git commit-tree <empty tree> -m x` with these identities and dates
        let c = odb.put_commit(Commit {
            tree: "4b825dc642cb6eb9a060e54bf8d69288fbee4904".into(),
            parents: vec![],
            message: "x\n".into(),
            author: sig(),
            committer: sig(),
        });
        assert_eq!(c, "f633de7ef6c130d08d5f3ab8c2573ca4b29c8291");
    }

    #[test]
    fn merge_takes_one_sided_changes_and_detects_conflicts() {
        let mut odb = Odb::default();
        let commit = |odb: &mut Odb, files: &[(&str, &str)], parents: Vec<String>| {
            let mut flat = Flat::new();
            for (p, c) in files {
                let sha = odb.put_blob(c.as_bytes().to_vec());
                flat.insert(
                    p.to_string(),
                    Leaf {
                        mode: MODE_FILE.into(),
                        sha,
                    },
                );
            }
            let tree = odb.build(&flat);
            odb.put_commit(Commit {
                tree,
                parents,
                message: "m".into(),
                author: sig(),
                committer: sig(),
            })
        };
        let root = commit(&mut odb, &[("a", "1"), ("b", "1")], vec![]);
        let base = commit(&mut odb, &[("a", "2"), ("b", "1")], vec![root.clone()]);
        let head = commit(&mut odb, &[("a", "1"), ("b", "2")], vec![root.clone()]);
        let merged = odb.merge(&base, &head).unwrap();
        let flat = odb.flatten(&merged);
        assert_eq!(odb.blob(&flat["a"].sha).unwrap(), b"2");
        assert_eq!(odb.blob(&flat["b"].sha).unwrap(), b"2");
        let clash = commit(&mut odb, &[("a", "3"), ("b", "1")], vec![root.clone()]);
        assert_eq!(odb.merge(&base, &clash), Err(Conflict(vec!["a".into()])));
        assert!(odb.is_ancestor(&root, &head));
        assert!(!odb.is_ancestor(&head, &base));
        assert_eq!(odb.commits_between(&base, &head), vec![head.clone()]);
        let tree = |odb: &Odb, c: &str| odb.commit_tree(c).unwrap();
        assert_eq!(
            odb.diff_stats(&tree(&odb, &root), &tree(&odb, &head)),
            (1, 1, 1)
        );
    }
}
