//! The object store: every object (compact, see `stored`) keyed by
//! (resource, namespace, name), one global resourceVersion counter, the
//! bounded change history watches replay from, and the write rules of the API
//! server (create/update/patch/delete, status subresource, generation,
//! finalizers, namespace termination, CRD registration). No HTTP here.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use super::auth::UserInfo;
use super::error::ApiError;
use super::object::{self, meta_mut, set_meta};
use super::patch::{self, PatchType};
use super::policies::{self, Attributes, Operation};
use super::resources::{Registry, ResourceDef, StorageKey, defs_from_crd};
use super::selectors::{FieldSelector, LabelSelector};
use super::stored::Stored;

/// (namespace, name); namespace is "" for cluster-scoped objects.
pub(crate) type ObjKey = (String, String);

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

/// One stored change, replayed to watches.
#[derive(Debug)]
pub(crate) struct Change {
    pub rv: u64,
    pub kind: ChangeKind,
    pub storage: StorageKey,
    pub namespace: String,
    pub object: Arc<Stored>,
    /// The previous version, for MODIFIED (selector transitions).
    pub old: Option<Arc<Stored>>,
}

/// How a write was asked for.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct WriteOpts<'a> {
    /// `dryRun=All`: validate and answer, store nothing.
    pub dry_run: bool,
    /// A test scripting the cluster through the store API (not the HTTP API):
    /// `.status` is written as given.
    pub direct: bool,
    /// Who asks, through the HTTP API (or a played controller): their
    /// writes go through the ValidatingAdmissionPolicies. `None` skips them.
    pub by: Option<Requester<'a>>,
}

/// The requester of a write that admission policies judge.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Requester<'a> {
    pub user: &'a UserInfo,
    /// Where admission's warnings go (the response's `Warning` headers).
    pub warnings: &'a RefCell<Vec<String>>,
}

/// Which part of an object a write targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    Main,
    Status,
    /// `pods/resize`: only `spec.containers[*].resources` change.
    Resize,
    /// `namespaces/finalize`: only `spec.finalizers` change.
    Finalize,
}

/// Options of a delete.
#[derive(Debug, Clone, Default)]
pub(crate) struct DeleteOpts {
    pub dry_run: bool,
    pub grace_period_seconds: Option<i64>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
}

impl DeleteOpts {
    /// From a `DeleteOptions` object (`dryRun`, `gracePeriodSeconds`,
    /// `preconditions`), if any; `dry_run` (the query's) adds to its `dryRun`.
    pub(crate) fn from_options(options: Option<&Value>, dry_run: bool) -> DeleteOpts {
        let field = |at: &str| options.and_then(|o| o.pointer(at));
        let text = |at: &str| field(at).and_then(Value::as_str).map(str::to_string);
        DeleteOpts {
            dry_run: dry_run
                || field("/dryRun")
                    .and_then(Value::as_array)
                    .is_some_and(|a| a.iter().any(|v| v == "All")),
            grace_period_seconds: field("/gracePeriodSeconds").and_then(Value::as_i64),
            precondition_uid: text("/preconditions/uid"),
            precondition_rv: text("/preconditions/resourceVersion"),
        }
    }
}

/// A list query.
#[derive(Debug, Clone, Default)]
pub(crate) struct ListQuery {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
}

/// One page of a list.
#[derive(Debug)]
pub(crate) struct ListPage {
    pub items: Vec<Arc<Stored>>,
    pub resource_version: u64,
    pub continue_token: Option<String>,
    pub remaining: Option<usize>,
}

/// Where a watch starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WatchFrom {
    /// Synthetic ADDED for the current state, then live.
    Now,
    /// Replay changes after this resourceVersion, then live.
    After(u64),
}

/// A started watch: what to send first, then the live feed.
#[derive(Debug)]
pub(crate) struct Subscription {
    pub initial: Vec<(ChangeKind, Arc<Stored>)>,
    pub start_rv: u64,
    pub live: broadcast::Receiver<Arc<Change>>,
    /// `Some(message)` when the requested resourceVersion is too old (410 Gone).
    pub gone: Option<String>,
}

/// Everything stored, behind the emulator's one lock.
#[derive(Debug)]
pub(crate) struct State {
    pub registry: Registry,
    objects: HashMap<StorageKey, BTreeMap<ObjKey, Arc<Stored>>>,
    rv: u64,
    history: VecDeque<Arc<Change>>,
    history_limit: usize,
    compacted_rv: u64,
    changes: broadcast::Sender<Arc<Change>>,
}

fn ns_storage() -> StorageKey {
    (String::new(), "namespaces".into())
}

/// The object without `metadata` and `status`: what `generation` tracks.
fn spec_part(obj: &Value) -> Value {
    match obj {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "metadata" | "status"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<String> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

fn encode_continue(key: &ObjKey) -> String {
    format!("c1.{}.{}", hex(&key.0), hex(&key.1))
}

fn decode_continue(token: &str) -> Result<ObjKey, ApiError> {
    let bad = || ApiError::bad_request(format!("continue key is not valid: {token}"));
    let rest = token.strip_prefix("c1.").ok_or_else(bad)?;
    let (ns, name) = rest.split_once('.').ok_or_else(bad)?;
    Ok((unhex(ns).ok_or_else(bad)?, unhex(name).ok_or_else(bad)?))
}

impl State {
    /// An empty store with the built-in types and the usual namespaces.
    pub fn new(history_limit: usize) -> State {
        let (changes, _) = broadcast::channel(history_limit.clamp(1024, 1 << 17));
        let mut s = State {
            registry: Registry::with_builtins(),
            objects: HashMap::new(),
            rv: 0,
            history: VecDeque::new(),
            history_limit: history_limit.max(1),
            compacted_rv: 0,
            changes,
        };
        let direct = WriteOpts {
            dry_run: false,
            direct: true,
            by: None,
        };
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let _ = s.create_object(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
                direct,
            );
            // The cluster has run before: the ServiceAccount controller made these.
            let _ = s.create_object(
                json!({"apiVersion": "v1", "kind": "ServiceAccount",
                       "metadata": {"name": "default", "namespace": ns}}),
                direct,
            );
        }
        s
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    /// Forget the change history: watches from any older resourceVersion get 410 Gone.
    pub fn compact_history(&mut self) {
        self.history.clear();
        self.compacted_rv = self.rv;
    }

    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn emit(
        &mut self,
        kind: ChangeKind,
        def: &ResourceDef,
        namespace: &str,
        object: Arc<Stored>,
        old: Option<Arc<Stored>>,
    ) {
        let change = Arc::new(Change {
            rv: self.rv,
            kind,
            storage: def.storage(),
            namespace: namespace.to_string(),
            object,
            old,
        });
        self.history.push_back(change.clone());
        while self.history.len() > self.history_limit {
            if let Some(c) = self.history.pop_front() {
                self.compacted_rv = c.rv;
            }
        }
        let _ = self.changes.send(change);
    }

    /// The object key for `namespace`/`name` of `def`.
    fn key(def: &ResourceDef, namespace: Option<&str>, name: &str) -> Result<ObjKey, ApiError> {
        if def.namespaced {
            match namespace {
                Some(ns) if !ns.is_empty() => Ok((ns.to_string(), name.to_string())),
                _ => Err(ApiError::bad_request(format!(
                    "the namespace of the object is required for {}",
                    def.plural
                ))),
            }
        } else {
            Ok((String::new(), name.to_string()))
        }
    }

    fn stored(&self, def: &ResourceDef, key: &ObjKey) -> Option<&Arc<Stored>> {
        self.objects.get(&def.storage()).and_then(|m| m.get(key))
    }

    /// One object.
    pub fn get(
        &self,
        def: &ResourceDef,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Arc<Stored>, ApiError> {
        self.existing(def, namespace, name).map(|(_, o)| o)
    }

    /// The key and stored version of an object that must exist (404 otherwise).
    fn existing(
        &self,
        def: &ResourceDef,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<(ObjKey, Arc<Stored>), ApiError> {
        let key = State::key(def, namespace, name)?;
        let obj = self
            .stored(def, &key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&def.group, &def.plural, name))?;
        Ok((key, obj))
    }

    /// Every object of a type in a namespace (or all namespaces with `None`).
    pub fn objects_in(&self, storage: &StorageKey, namespace: Option<&str>) -> Vec<Arc<Stored>> {
        self.iter_in(storage, namespace).cloned().collect()
    }

    /// The stored objects of a type, in a namespace or everywhere, borrowed.
    fn iter_in<'a>(
        &'a self,
        storage: &StorageKey,
        namespace: Option<&'a str>,
    ) -> Box<dyn Iterator<Item = &'a Arc<Stored>> + 'a> {
        let Some(map) = self.objects.get(storage) else {
            return Box::new(std::iter::empty());
        };
        match namespace {
            Some(ns) => Box::new(
                map.range((ns.to_string(), String::new())..)
                    .take_while(move |((n, _), _)| n == ns)
                    .map(|(_, v)| v),
            ),
            None => Box::new(map.values()),
        }
    }

    /// A page of a list.
    pub fn list(
        &self,
        def: &ResourceDef,
        namespace: Option<&str>,
        q: &ListQuery,
    ) -> Result<ListPage, ApiError> {
        let after = q
            .continue_token
            .as_deref()
            .filter(|t| !t.is_empty())
            .map(decode_continue)
            .transpose()?;
        let empty = BTreeMap::new();
        let map = self.objects.get(&def.storage()).unwrap_or(&empty);
        let start = match (&after, namespace) {
            (Some(k), _) => std::ops::Bound::Excluded(k.clone()),
            (None, Some(ns)) => std::ops::Bound::Included((ns.to_string(), String::new())),
            (None, None) => std::ops::Bound::Unbounded,
        };
        let in_scope = |k: &ObjKey| namespace.is_none_or(|ns| k.0 == ns);
        let mut iter = map
            .range((start, std::ops::Bound::Unbounded))
            .take_while(|(k, _)| in_scope(k))
            .filter(|(_, v)| v.matches(&q.labels, &q.fields));
        let limit = q.limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
        let mut items = Vec::new();
        let mut last: Option<&ObjKey> = None;
        for (k, v) in iter.by_ref() {
            items.push(v.clone());
            last = Some(k);
            if items.len() >= limit {
                break;
            }
        }
        let mut continue_token = None;
        let mut remaining = None;
        if items.len() >= limit {
            // Counting the rest is only cheap (and only reported) without selectors.
            let unfiltered = q.labels.is_everything() && q.fields.is_everything();
            let rest = if unfiltered {
                iter.count()
            } else {
                usize::from(iter.next().is_some())
            };
            if rest > 0 {
                continue_token = last.map(encode_continue);
                remaining = unfiltered.then_some(rest);
            }
        }
        Ok(ListPage {
            items,
            resource_version: self.rv,
            continue_token,
            remaining,
        })
    }

    /// Start a watch; everything after `start_rv` arrives on `live`.
    pub fn subscribe(
        &self,
        def: &ResourceDef,
        namespace: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
        from: WatchFrom,
    ) -> Subscription {
        let live = self.changes.subscribe();
        let storage = def.storage();
        let mut initial = Vec::new();
        let mut gone = None;
        match from {
            WatchFrom::Now => {
                for obj in self.objects_in(&storage, namespace) {
                    if obj.matches(labels, fields) {
                        initial.push((ChangeKind::Added, obj));
                    }
                }
            }
            WatchFrom::After(rv) if rv < self.compacted_rv => {
                gone = Some(format!(
                    "too old resource version: {rv} ({})",
                    self.compacted_rv + 1
                ));
            }
            WatchFrom::After(rv) => {
                let first = self.history.partition_point(|c| c.rv <= rv);
                for c in self.history.range(first..) {
                    if c.storage != storage || namespace.is_some_and(|ns| ns != c.namespace) {
                        continue;
                    }
                    if let Some(ev) = filter_change(c, labels, fields) {
                        initial.push(ev);
                    }
                }
            }
        }
        let start_rv = match from {
            WatchFrom::After(rv) if rv > self.rv => rv,
            _ => self.rv,
        };
        Subscription {
            initial,
            start_rv,
            live,
            gone,
        }
    }

    /// Check that `ns` exists and accepts new objects.
    fn check_namespace(&self, ns: &str) -> Result<(), ApiError> {
        let key = (String::new(), ns.to_string());
        match self.objects.get(&ns_storage()).and_then(|m| m.get(&key)) {
            None => Err(ApiError::not_found("", "namespaces", ns)),
            Some(n) if object::is_terminating(&n.value()) => Err(ApiError::new(
                403,
                "Forbidden",
                format!(
                    "unable to create new content in namespace {ns} because it is being terminated"
                ),
            )
            .with_details(json!({"name": ns, "kind": "namespaces"}))),
            Some(_) => Ok(()),
        }
    }

    pub(crate) fn check_type(def: &ResourceDef, obj: &mut Value) -> Result<(), ApiError> {
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be a JSON object",
            ));
        }
        let want = def.api_version();
        if let Some(av) = obj.get("apiVersion").and_then(Value::as_str) {
            let group_of = |s: &str| {
                s.split_once('/')
                    .map(|(g, _)| g.to_string())
                    .unwrap_or_default()
            };
            if !av.is_empty() && group_of(av) != def.group {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({av}) does not match the expected API version ({want})"
                )));
            }
        }
        if let Some(k) = obj.get("kind").and_then(Value::as_str)
            && !k.is_empty()
            && k != def.kind
        {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                def.kind
            )));
        }
        object::set_field(obj, "apiVersion", Value::String(want));
        object::set_field(obj, "kind", Value::String(def.kind.clone()));
        Ok(())
    }

    /// Create from an object carrying apiVersion/kind/metadata.namespace (the store API).
    pub fn create_object(&mut self, obj: Value, opts: WriteOpts) -> Result<Value, ApiError> {
        let def = self.def_of(&obj)?;
        let ns = object::meta_str(&obj, "namespace")
            .filter(|s| !s.is_empty())
            .unwrap_or("default")
            .to_string();
        self.create(&def, Some(&ns), obj, opts)
    }

    /// The definition for an object's apiVersion and kind.
    pub fn def_of(&self, obj: &Value) -> Result<ResourceDef, ApiError> {
        let av = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
        self.registry.find_kind(av, kind).cloned().ok_or_else(|| {
            ApiError::new(
                404,
                "NotFound",
                format!("the server could not find the requested resource (kind {kind} in {av})"),
            )
        })
    }

    /// Create an object.
    pub fn create(
        &mut self,
        def: &ResourceDef,
        namespace: Option<&str>,
        mut obj: Value,
        opts: WriteOpts,
    ) -> Result<Value, ApiError> {
        State::check_type(def, &mut obj)?;
        let ns = if def.namespaced {
            let ns = namespace.unwrap_or("");
            if let Some(body_ns) = object::meta_str(&obj, "namespace")
                && !body_ns.is_empty()
                && body_ns != ns
            {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            set_meta(&mut obj, "namespace", Value::String(ns.to_string()));
            ns.to_string()
        } else {
            meta_mut(&mut obj).remove("namespace");
            String::new()
        };
        let name = match object::name(&obj).filter(|n| !n.is_empty()) {
            Some(n) => n.to_string(),
            None => match object::meta_str(&obj, "generateName").filter(|n| !n.is_empty()) {
                Some(prefix) => {
                    let mut name = format!("{prefix}{}", object::name_suffix());
                    while self.stored(def, &(ns.clone(), name.clone())).is_some() {
                        name = format!("{prefix}{}", object::name_suffix());
                    }
                    set_meta(&mut obj, "name", Value::String(name.clone()));
                    name
                }
                None => {
                    return Err(ApiError::invalid(
                        &def.group,
                        &def.kind,
                        "",
                        "metadata.name",
                        "Required value: name or generateName is required",
                    ));
                }
            },
        };
        object::validate_name(&def.group, &def.kind, &name)?;
        object::validate_meta(&def.group, &def.kind, &obj)?;
        if def.namespaced {
            if ns.is_empty() {
                return Err(ApiError::bad_request("namespace is required"));
            }
            self.check_namespace(&ns)?;
        }
        if !opts.direct {
            self.admit_create(def, &ns, &name, &mut obj)?;
        }
        {
            let m = meta_mut(&mut obj);
            m.insert("uid".into(), Value::String(object::new_uid()));
            // A test scripting the past (a namespace created an hour ago) may
            // set creationTimestamp through the store API; the HTTP API never can.
            let backdated = opts.direct
                && m.get("creationTimestamp")
                    .and_then(Value::as_str)
                    .is_some_and(|t| t.parse::<jiff::Timestamp>().is_ok());
            if !backdated {
                m.insert(
                    "creationTimestamp".into(),
                    Value::String(object::now_rfc3339()),
                );
            }
            m.insert("generation".into(), json!(1));
            for f in [
                "resourceVersion",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "selfLink",
            ] {
                m.remove(f);
            }
        }
        if def.has_subresource("status")
            && !opts.direct
            && !def.is("", "nodes")
            && let Some(m) = obj.as_object_mut()
        {
            m.remove("status");
        }
        self.defaults_on_create(def, &mut obj)?;
        if let Some(by) = opts.by.filter(|_| !opts.direct) {
            self.admit_policies(
                &Attributes {
                    def,
                    subresource: "",
                    kind: (&def.group, &def.version, &def.kind),
                    operation: Operation::Create,
                    namespace: if def.is("", "namespaces") { &name } else { &ns },
                    name: &name,
                    object: &obj,
                    old: None,
                    dry_run: opts.dry_run,
                },
                by,
            )?;
        }
        // as the registry: validation and admission come before storage finds the name taken
        let key = (ns.clone(), name.clone());
        if self.stored(def, &key).is_some() {
            return Err(ApiError::already_exists(&def.group, &def.plural, &name));
        }
        if opts.dry_run {
            return Ok(obj);
        }
        if def.is("apiextensions.k8s.io", "customresourcedefinitions") {
            self.register_crd(&obj)?;
        }
        let rv = self.next_rv();
        set_meta(&mut obj, "resourceVersion", Value::String(rv.to_string()));
        let arc = self.put(def, key, &obj);
        self.emit(ChangeKind::Added, def, &ns, arc, None);
        Ok(obj)
    }

    /// Type-specific defaults the API server fills in on create.
    fn defaults_on_create(&self, def: &ResourceDef, obj: &mut Value) -> Result<(), ApiError> {
        if policies::is_policy_type(def) {
            policies::apply_defaults(def, obj);
            policies::validate(def, obj)?;
        } else if def.is("", "pods") {
            if let Some(s) = object::child_map(obj, "status") {
                s.entry("phase").or_insert(json!("Pending"));
            }
        } else if def.is("", "namespaces") {
            if let Some(s) = object::child_map(obj, "spec") {
                // as the namespace strategy: the kubernetes finalizer is always added
                let fs = s.entry("finalizers").or_insert(json!([]));
                if !fs.is_array() {
                    *fs = json!([]);
                }
                if let Some(a) = fs.as_array_mut()
                    && !a.iter().any(|f| f == "kubernetes")
                {
                    a.push(json!("kubernetes"));
                }
            }
            if let Some(s) = object::child_map(obj, "status") {
                s.entry("phase").or_insert(json!("Active"));
            }
        } else if def.is("apiextensions.k8s.io", "customresourcedefinitions") {
            let name = object::name(obj).unwrap_or("").to_string();
            let defs = defs_from_crd(obj)
                .map_err(|e| ApiError::invalid(&def.group, &def.kind, &name, "spec", &e))?;
            let first = defs.first().ok_or_else(|| {
                ApiError::invalid(
                    &def.group,
                    &def.kind,
                    &name,
                    "spec.versions",
                    "Invalid value: must have at least one served version",
                )
            })?;
            let want = format!("{}.{}", first.plural, first.group);
            if name != want {
                return Err(ApiError::invalid(
                    &def.group,
                    &def.kind,
                    &name,
                    "metadata.name",
                    &format!(
                        "Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"
                    ),
                ));
            }
            let names = obj.pointer("/spec/names").cloned().unwrap_or(Value::Null);
            let stored: Vec<Value> = obj
                .pointer("/spec/versions")
                .and_then(Value::as_array)
                .map(|vs| {
                    vs.iter()
                        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                        .filter_map(|v| v.get("name").cloned())
                        .collect()
                })
                .unwrap_or_default();
            let now = object::now_rfc3339();
            object::set_field(
                obj,
                "status",
                json!({
                    "acceptedNames": names,
                    "storedVersions": stored,
                    "conditions": [
                        {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                         "message": "no conflicts found", "lastTransitionTime": now},
                        {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                         "message": "the initial names have been accepted", "lastTransitionTime": now},
                    ],
                }),
            );
        }
        Ok(())
    }

    fn register_crd(&mut self, crd: &Value) -> Result<(), ApiError> {
        let defs = defs_from_crd(crd).map_err(ApiError::bad_request)?;
        if let Some(first) = defs.first() {
            let (g, p) = (first.group.clone(), first.plural.clone());
            self.registry.unregister_all(&g, &p);
        }
        for d in defs {
            self.registry.register(d);
        }
        Ok(())
    }

    /// Replace an object (PUT), or its status (PUT .../status).
    pub fn update(
        &mut self,
        def: &ResourceDef,
        namespace: Option<&str>,
        name: &str,
        mut body: Value,
        part: Part,
        opts: WriteOpts,
    ) -> Result<Value, ApiError> {
        let (key, old) = self.existing(def, namespace, name)?;
        let old_v = old.value();
        State::check_type(def, &mut body)?;
        check_url_name(&body, name)?;
        if def.namespaced
            && let Some(n) = object::meta_str(&body, "namespace")
            && !n.is_empty()
            && n != key.0
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        if object::stale(&body, &old_v) {
            return Err(ApiError::stale(&def.group, &def.plural, name));
        }
        let new = self.compose(def, &old_v, body, part, opts);
        self.commit(def, key, (old, old_v), new, opts, part)
    }

    /// Combine a written object with the stored one according to the part written.
    fn compose(
        &self,
        def: &ResourceDef,
        old: &Value,
        written: Value,
        part: Part,
        opts: WriteOpts,
    ) -> Value {
        match part {
            Part::Main if opts.direct || !def.has_subresource("status") => written,
            Part::Main => {
                let mut new = written;
                if let Some(m) = new.as_object_mut() {
                    match old.get("status") {
                        Some(s) => m.insert("status".into(), s.clone()),
                        None => m.remove("status"),
                    };
                }
                if def.is("", "namespaces") {
                    // only `namespaces/finalize` changes spec.finalizers
                    set_spec_finalizers(&mut new, old.pointer("/spec/finalizers").cloned());
                }
                new
            }
            Part::Finalize => {
                let mut new = old.clone();
                set_spec_finalizers(&mut new, written.pointer("/spec/finalizers").cloned());
                new
            }
            Part::Status => {
                let mut new = old.clone();
                if let Some(m) = new.as_object_mut() {
                    match written.get("status") {
                        Some(s) => m.insert("status".into(), s.clone()),
                        None => m.remove("status"),
                    };
                }
                new
            }
            Part::Resize => {
                let mut new = old.clone();
                let wanted = written
                    .pointer("/spec/containers")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                if let Some(Value::Array(cs)) = new.pointer_mut("/spec/containers") {
                    for c in cs.iter_mut() {
                        let w = wanted
                            .iter()
                            .find(|w| w.get("name").is_some() && w.get("name") == c.get("name"));
                        if let (Some(w), Some(cm)) = (w, c.as_object_mut()) {
                            match w.get("resources") {
                                Some(r) => cm.insert("resources".into(), r.clone()),
                                None => cm.remove("resources"),
                            };
                        }
                    }
                }
                new
            }
        }
    }

    /// Patch an object or its status; an apply patch creates an absent object.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &mut self,
        def: &ResourceDef,
        namespace: Option<&str>,
        name: &str,
        kind: PatchType,
        patch_body: &Value,
        part: Part,
        opts: WriteOpts,
    ) -> Result<(Value, bool), ApiError> {
        let key = State::key(def, namespace, name)?;
        let Some(old) = self.stored(def, &key).cloned() else {
            if kind == PatchType::Apply && part == Part::Main {
                let mut obj = patch_body.clone();
                check_url_name(&obj, name)?;
                set_meta(&mut obj, "name", Value::String(name.to_string()));
                return self.create(def, namespace, obj, opts).map(|o| (o, true));
            }
            return Err(ApiError::not_found(&def.group, &def.plural, name));
        };
        let old_v = old.value();
        if kind == PatchType::Apply {
            check_url_name(patch_body, name)?;
            let mut check = patch_body.clone();
            State::check_type(def, &mut check)?;
        }
        if kind != PatchType::Json
            && let Some(rv) = patch_body
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
            && rv.parse::<u64>().ok() != Some(object::resource_version(&old_v))
        {
            return Err(ApiError::stale(&def.group, &def.plural, name));
        }
        let patched = patch::apply_patch(kind, &old_v, patch_body, def.is_builtin_type())?;
        let new = self.compose(def, &old_v, patched, part, opts);
        self.commit(def, key, (old, old_v), new, opts, part)
            .map(|o| (o, false))
    }

    /// Change an object in place with `f` (the store API's read-modify-write).
    pub fn modify(
        &mut self,
        def: &ResourceDef,
        namespace: Option<&str>,
        name: &str,
        f: impl FnOnce(&mut Value),
    ) -> Result<Value, ApiError> {
        let (key, old) = self.existing(def, namespace, name)?;
        let old_v = old.value();
        let mut new = old_v.clone();
        f(&mut new);
        let opts = WriteOpts {
            dry_run: false,
            direct: true,
            by: None,
        };
        self.commit(def, key, (old, old_v), new, opts, Part::Main)
    }

    /// Store a new version of an existing object (or finish its deletion).
    fn commit(
        &mut self,
        def: &ResourceDef,
        key: ObjKey,
        (old, old_v): (Arc<Stored>, Value),
        mut new: Value,
        opts: WriteOpts,
        part: Part,
    ) -> Result<Value, ApiError> {
        let name = key.1.clone();
        let resize = part == Part::Resize;
        if policies::is_policy_type(def) {
            // defaulted as decoded: before generation and no-op checks
            policies::apply_defaults(def, &mut new);
        }
        object::set_field(&mut new, "apiVersion", Value::String(def.api_version()));
        object::set_field(&mut new, "kind", Value::String(def.kind.clone()));
        let old_meta = object::meta(&old_v).cloned().unwrap_or_default();
        {
            let m = meta_mut(&mut new);
            for f in [
                "name",
                "namespace",
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
            ] {
                match old_meta.get(f) {
                    Some(v) => m.insert(f.into(), v.clone()),
                    None => m.remove(f),
                };
            }
            m.remove("selfLink");
        }
        if !opts.direct && !resize {
            self.check_immutable(def, &old_v, &new, &name)?;
        }
        object::validate_meta(&def.group, &def.kind, &new)?;
        let old_gen = old_meta
            .get("generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let gen_now = if spec_part(&old_v) != spec_part(&new) {
            old_gen + 1
        } else {
            old_gen
        };
        set_meta(&mut new, "generation", json!(gen_now));
        set_meta(
            &mut new,
            "resourceVersion",
            Value::String(object::resource_version(&old_v).to_string()),
        );
        if policies::is_policy_type(def) {
            policies::validate(def, &new)?;
        }
        if let Some(by) = opts.by.filter(|_| !opts.direct) {
            let subresource = match part {
                Part::Main => "",
                Part::Status => "status",
                Part::Resize => "resize",
                Part::Finalize => "finalize",
            };
            // a namespace is its own namespace, as the API server's RequestInfo has it
            let namespace = if def.is("", "namespaces") {
                name.as_str()
            } else {
                key.0.as_str()
            };
            self.admit_policies(
                &Attributes {
                    def,
                    subresource,
                    kind: (&def.group, &def.version, &def.kind),
                    operation: Operation::Update,
                    namespace,
                    name: &name,
                    object: &new,
                    old: Some(&old_v),
                    dry_run: opts.dry_run,
                },
                by,
            )?;
        }
        if new == old_v {
            return Ok(new);
        }
        let is_crd = def.is("apiextensions.k8s.io", "customresourcedefinitions");
        if is_crd {
            defs_from_crd(&new)
                .map_err(|e| ApiError::invalid(&def.group, &def.kind, &name, "spec", &e))?;
        }
        let finished = State::deletion_finished(def, &new);
        if opts.dry_run {
            return Ok(new);
        }
        if finished {
            return Ok(self.remove(def, key, new));
        }
        if is_crd {
            self.register_crd(&new)?;
        }
        let rv = self.next_rv();
        set_meta(&mut new, "resourceVersion", Value::String(rv.to_string()));
        let ns = key.0.clone();
        let arc = self.put(def, key, &new);
        self.emit(ChangeKind::Modified, def, &ns, arc, Some(old));
        Ok(new)
    }

    /// Store `obj` under `key`; the stored form, for the change event.
    fn put(&mut self, def: &ResourceDef, key: ObjKey, obj: &Value) -> Arc<Stored> {
        let arc = Arc::new(Stored::new(obj, &def.group, &def.plural));
        self.objects
            .entry(def.storage())
            .or_default()
            .insert(key, arc.clone());
        arc
    }

    /// Fields the API server refuses to change through the API.
    fn check_immutable(
        &self,
        def: &ResourceDef,
        old: &Value,
        new: &Value,
        name: &str,
    ) -> Result<(), ApiError> {
        if def.is("", "pods") {
            let mut allowed = old.get("spec").cloned().unwrap_or(Value::Null);
            let new_spec = new.get("spec").cloned().unwrap_or(Value::Null);
            for list in ["containers", "initContainers"] {
                if let (Some(Value::Array(a)), Some(Value::Array(b))) =
                    (allowed.get_mut(list), new_spec.get(list))
                    && a.len() == b.len()
                {
                    for (x, y) in a.iter_mut().zip(b) {
                        if let (Some(xm), Some(img)) = (x.as_object_mut(), y.get("image")) {
                            xm.insert("image".into(), img.clone());
                        }
                    }
                }
            }
            if let Some(m) = allowed.as_object_mut() {
                for f in ["activeDeadlineSeconds", "tolerations"] {
                    match new_spec.get(f) {
                        Some(v) => m.insert(f.into(), v.clone()),
                        None => m.remove(f),
                    };
                }
            }
            if allowed != new_spec {
                return Err(ApiError::invalid(
                    "",
                    "Pod",
                    name,
                    "spec",
                    "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
                ));
            }
        }
        if def.group == "apps"
            && matches!(
                def.plural.as_str(),
                "deployments" | "replicasets" | "statefulsets" | "daemonsets"
            )
            && old.pointer("/spec/selector") != new.pointer("/spec/selector")
        {
            return Err(ApiError::invalid(
                &def.group,
                &def.kind,
                name,
                "spec.selector",
                "Invalid value: field is immutable",
            ));
        }
        Ok(())
    }

    /// Whether a write leaves a terminating object ready to go, as the API
    /// server's `ShouldDeleteDuringUpdate`: no finalizers, no graceful
    /// deletion pending (a kubelet has not confirmed), and for a namespace
    /// an empty `spec.finalizers` (its controller has finalized it).
    fn deletion_finished(def: &ResourceDef, new: &Value) -> bool {
        object::is_terminating(new)
            && object::finalizers(new).is_empty()
            && deletion_grace(new) == 0
            && (!def.is("", "namespaces") || spec_finalizers(new).is_empty())
    }

    /// Remove a terminating object whose deletion nothing holds any more
    /// (what the namespace controller's status write does to a finalized
    /// namespace). Whether it was removed.
    pub(crate) fn remove_if_finished(&mut self, def: &ResourceDef, key: ObjKey) -> bool {
        let Some(obj) = self.stored(def, &key).map(|o| o.value()) else {
            return false;
        };
        if !State::deletion_finished(def, &obj) {
            return false;
        }
        self.remove(def, key, obj);
        true
    }

    /// Stored objects of a type being deleted (`deletionTimestamp` set), in a
    /// namespace or everywhere.
    pub(crate) fn deleting_in(
        &self,
        storage: &StorageKey,
        namespace: Option<&str>,
    ) -> Vec<Arc<Stored>> {
        // only those are copied: a controller asks on every change, and
        // copying every object of the type each time made the emulation's
        // cost grow with the number of objects
        self.iter_in(storage, namespace)
            .filter(|o| o.deleting())
            .cloned()
            .collect()
    }

    /// Run the ValidatingAdmissionPolicies on a write through the HTTP API:
    /// their warnings go to the requester, a denial is the error.
    pub(crate) fn admit_policies(
        &self,
        a: &Attributes<'_>,
        by: Requester<'_>,
    ) -> Result<(), ApiError> {
        let bindings_key = (policies::GROUP.to_string(), policies::BINDINGS.to_string());
        let Some(bindings) = self.objects.get(&bindings_key).filter(|m| !m.is_empty()) else {
            return Ok(());
        };
        let bindings: Vec<Value> = bindings.values().map(|b| b.value()).collect();
        let policies: Vec<Value> = self
            .iter_in(
                &(policies::GROUP.to_string(), policies::POLICIES.to_string()),
                None,
            )
            .map(|p| p.value())
            .collect();
        let namespace = (a.def.namespaced && !a.namespace.is_empty())
            .then(|| {
                self.objects
                    .get(&ns_storage())
                    .and_then(|m| m.get(&(String::new(), a.namespace.to_string())))
                    .map(|n| n.value())
            })
            .flatten();
        let admission = policies::admit(&policies, &bindings, namespace.as_ref(), a, by.user);
        by.warnings.borrow_mut().extend(admission.warnings);
        match admission.denied {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Admission on a create through the HTTP API (the store API scripts
    /// state and skips it): the ServiceAccount plugin refuses a pod whose
    /// service account does not exist; the NodeTaint plugin taints a new
    /// node `node.kubernetes.io/not-ready:NoSchedule`.
    fn admit_create(
        &self,
        def: &ResourceDef,
        ns: &str,
        name: &str,
        obj: &mut Value,
    ) -> Result<(), ApiError> {
        if def.is("", "pods") {
            let sa = obj
                .pointer("/spec/serviceAccountName")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .unwrap_or("default")
                .to_string();
            let sa_key = (ns.to_string(), sa.clone());
            let exists = self
                .objects
                .get(&(String::new(), "serviceaccounts".to_string()))
                .is_some_and(|m| m.contains_key(&sa_key));
            if !exists {
                return Err(ApiError::forbidden(
                    "",
                    "pods",
                    name,
                    &format!(
                        "error looking up service account {ns}/{sa}: serviceaccount \"{sa}\" not found"
                    ),
                ));
            }
            if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
                spec.entry("serviceAccountName").or_insert(json!(sa));
            }
        } else if def.is("", "nodes") {
            let root = obj
                .as_object_mut()
                .ok_or_else(|| ApiError::bad_request("a Node must be a JSON object"))?;
            let spec = root
                .entry("spec")
                .or_insert_with(|| Value::Object(Map::new()));
            if !spec.is_object() {
                *spec = Value::Object(Map::new());
            }
            if let Some(spec) = spec.as_object_mut() {
                let taints = spec.entry("taints").or_insert_with(|| json!([]));
                if !taints.is_array() {
                    *taints = json!([]);
                }
                if let Some(ts) = taints.as_array_mut()
                    && !ts
                        .iter()
                        .any(|t| t["key"] == NOT_READY_TAINT && t["effect"] == "NoSchedule")
                {
                    ts.push(json!({"key": NOT_READY_TAINT, "effect": "NoSchedule"}));
                }
            }
        }
        Ok(())
    }

    /// Remove an object for good: new resourceVersion, DELETED event, cascades.
    fn remove(&mut self, def: &ResourceDef, key: ObjKey, mut last: Value) -> Value {
        let rv = self.next_rv();
        set_meta(&mut last, "resourceVersion", Value::String(rv.to_string()));
        let old = self
            .objects
            .get_mut(&def.storage())
            .and_then(|m| m.remove(&key));
        let arc = Arc::new(Stored::new(&last, &def.group, &def.plural));
        self.emit(ChangeKind::Deleted, def, &key.0, arc, old);
        if def.is("apiextensions.k8s.io", "customresourcedefinitions")
            && let Ok(defs) = defs_from_crd(&last)
            && let Some(first) = defs.first()
        {
            let storage = first.storage();
            let keys: Vec<ObjKey> = self
                .objects
                .get(&storage)
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            for k in keys {
                if let Some(obj) = self.objects.get(&storage).and_then(|m| m.get(&k)).cloned() {
                    self.remove(first, k, obj.value());
                }
            }
            self.registry.unregister_all(&first.group, &first.plural);
        }
        last
    }

    /// Delete an object: immediately, or mark it terminating while finalizers remain.
    pub fn delete(
        &mut self,
        def: &ResourceDef,
        namespace: Option<&str>,
        name: &str,
        opts: &DeleteOpts,
    ) -> Result<Value, ApiError> {
        let (key, old) = self.existing(def, namespace, name)?;
        let old_v = old.value();
        if let Some(uid) = &opts.precondition_uid {
            let have = object::meta_str(&old_v, "uid").unwrap_or("");
            if uid != have {
                return Err(ApiError::conflict(
                    &def.group,
                    &def.plural,
                    name,
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {have}"
                    ),
                ));
            }
        }
        if let Some(rv) = &opts.precondition_rv {
            let have = object::resource_version(&old_v).to_string();
            if *rv != have {
                return Err(ApiError::conflict(
                    &def.group,
                    &def.plural,
                    name,
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {have}"
                    ),
                ));
            }
        }
        if def.is("", "namespaces") {
            return self.delete_namespace(def, key, old, old_v, opts);
        }
        Ok(self.delete_key(def, key, old, old_v, opts))
    }

    /// Delete one object as the generic registry does. A pod is deleted
    /// gracefully: bound to a node and not finished, it stays with
    /// `deletionTimestamp` (now + grace) and `deletionGracePeriodSeconds`
    /// until a delete with a shorter grace (its kubelet's, with 0) removes
    /// it; unbound or finished pods, and a grace of 0, go at once. Other
    /// types go at once. Finalizers hold any of them, terminating.
    fn delete_key(
        &mut self,
        def: &ResourceDef,
        key: ObjKey,
        old: Arc<Stored>,
        old_v: Value,
        opts: &DeleteOpts,
    ) -> Value {
        let mut new = old_v;
        let held = !object::finalizers(&new).is_empty();
        let pod = def.is("", "pods");
        let requested = opts.grace_period_seconds.map(|g| if g < 0 { 1 } else { g });
        if object::is_terminating(&new) {
            let pending = deletion_grace(&new);
            if !pod || pending <= 0 {
                // nothing graceful pending: finalizers hold it, or it goes now
                if held || opts.dry_run {
                    return new;
                }
                return self.remove(def, key, new);
            }
            // graceful deletion pending: only a shorter grace period changes it
            let Some(period) = requested.filter(|p| *p < pending) else {
                return new;
            };
            let since = object::meta_str(&new, "deletionTimestamp")
                .and_then(|t| object::rfc3339_shift(t, period - pending))
                .unwrap_or_else(|| object::rfc3339_in(period));
            mark_deleting(&mut new, since, period);
            if opts.dry_run {
                return new;
            }
            if period == 0 && !held {
                return self.remove(def, key, new);
            }
            return self.store_terminating(def, key, old, new);
        }
        if pod {
            let period = pod_grace_period(&new, requested);
            mark_deleting(&mut new, object::rfc3339_in(period), period);
            if opts.dry_run {
                return new;
            }
            if period == 0 && !held {
                return self.remove(def, key, new);
            }
            bump_generation(&mut new);
            return self.store_terminating(def, key, old, new);
        }
        if held {
            mark_deleting(&mut new, object::now_rfc3339(), 0);
            bump_generation(&mut new);
            if opts.dry_run {
                return new;
            }
            return self.store_terminating(def, key, old, new);
        }
        if let Some(g) = requested {
            mark_deleting(&mut new, object::now_rfc3339(), g);
        }
        if opts.dry_run {
            return new;
        }
        self.remove(def, key, new)
    }

    /// Store an object marked for deletion (MODIFIED).
    fn store_terminating(
        &mut self,
        def: &ResourceDef,
        key: ObjKey,
        old: Arc<Stored>,
        mut new: Value,
    ) -> Value {
        let rv = self.next_rv();
        set_meta(&mut new, "resourceVersion", Value::String(rv.to_string()));
        let ns = key.0.clone();
        let arc = self.put(def, key, &new);
        self.emit(ChangeKind::Modified, def, &ns, arc, Some(old));
        new
    }

    /// Delete a namespace as its registry does: the first delete only marks
    /// it `Terminating` (its contents and removal are the namespace
    /// controller's work); while `spec.finalizers` is not empty a repeated
    /// delete is a 409; once finalized, an ordinary delete.
    fn delete_namespace(
        &mut self,
        def: &ResourceDef,
        key: ObjKey,
        old: Arc<Stored>,
        old_v: Value,
        opts: &DeleteOpts,
    ) -> Result<Value, ApiError> {
        if object::is_terminating(&old_v) {
            if !spec_finalizers(&old_v).is_empty() {
                return Err(ApiError::conflict(
                    "",
                    "namespaces",
                    &key.1,
                    "The system is ensuring all content is removed from this namespace.  Upon completion, this namespace will automatically be purged by the system.",
                ));
            }
            return Ok(self.delete_key(def, key, old, old_v, opts));
        }
        let mut new = old_v;
        set_meta(
            &mut new,
            "deletionTimestamp",
            Value::String(object::now_rfc3339()),
        );
        if let Some(s) = object::child_map(&mut new, "status") {
            s.insert("phase".into(), json!("Terminating"));
        }
        if opts.dry_run {
            return Ok(new);
        }
        Ok(self.store_terminating(def, key, old, new))
    }
}

/// A body naming another object than the URL is a 400.
fn check_url_name(body: &Value, name: &str) -> Result<(), ApiError> {
    match object::name(body) {
        Some(n) if n != name => Err(ApiError::bad_request(format!(
            "the name of the object ({n}) does not match the name on the URL ({name})"
        ))),
        _ => Ok(()),
    }
}

/// The `node.kubernetes.io/not-ready` taint key.
pub(crate) const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";

/// `metadata.deletionGracePeriodSeconds` (0 when absent).
pub(crate) fn deletion_grace(obj: &Value) -> i64 {
    obj.pointer("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// Set `metadata.deletionTimestamp` and `deletionGracePeriodSeconds`.
fn mark_deleting(obj: &mut Value, at: String, grace: i64) {
    let m = meta_mut(obj);
    m.insert("deletionTimestamp".into(), Value::String(at));
    m.insert("deletionGracePeriodSeconds".into(), json!(grace));
}

/// `metadata.generation` + 1 (a delete that marks the object changes it).
fn bump_generation(obj: &mut Value) {
    let m = meta_mut(obj);
    let generation = m.get("generation").and_then(Value::as_i64).unwrap_or(1) + 1;
    m.insert("generation".into(), json!(generation));
}

/// A namespace's `spec.finalizers`.
pub(crate) fn spec_finalizers(obj: &Value) -> Vec<String> {
    object::strings_at(obj, "/spec/finalizers")
}

fn set_spec_finalizers(obj: &mut Value, finalizers: Option<Value>) {
    if let Some(s) = object::child_map(obj, "spec") {
        match finalizers {
            Some(f) => s.insert("finalizers".into(), f),
            None => s.remove("finalizers"),
        };
    }
}

/// The grace period of a pod's deletion, as the pod strategy decides it:
/// the one asked for, else the pod's `terminationGracePeriodSeconds` (30 by
/// default); 0 for a pod bound to no node or already finished; negative as 1.
fn pod_grace_period(pod: &Value, requested: Option<i64>) -> i64 {
    let mut period = requested.unwrap_or_else(|| {
        pod.pointer("/spec/terminationGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(30)
    });
    let unbound = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty);
    let finished = matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    );
    if unbound || finished {
        period = 0;
    }
    if period < 0 { 1 } else { period }
}

/// A stored change as a watch with these selectors sees it: selector
/// transitions turn MODIFIED into ADDED or DELETED, as the real API does.
pub(crate) fn filter_change(
    c: &Change,
    labels: &LabelSelector,
    fields: &FieldSelector,
) -> Option<(ChangeKind, Arc<Stored>)> {
    let m = |o: &Stored| o.matches(labels, fields);
    let now = m(&c.object);
    match c.kind {
        ChangeKind::Added | ChangeKind::Deleted => now.then(|| (c.kind, c.object.clone())),
        ChangeKind::Modified => {
            let before = c.old.as_deref().is_some_and(m);
            match (before, now) {
                (true, true) => Some((ChangeKind::Modified, c.object.clone())),
                (false, true) => Some((ChangeKind::Added, c.object.clone())),
                (true, false) => Some((ChangeKind::Deleted, c.object.clone())),
                (false, false) => None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn state() -> State {
        State::new(100)
    }

    fn pod_def(s: &State) -> ResourceDef {
        s.registry.find_kind("v1", "Pod").unwrap().clone()
    }

    fn api() -> WriteOpts<'static> {
        WriteOpts::default()
    }

    #[test]
    fn create_fills_metadata_and_counts_resource_versions() {
        let mut s = state();
        let d = pod_def(&s);
        let rv0 = s.resource_version();
        let p = s
            .create(
                &d,
                Some("default"),
                json!({"metadata": {"name": "a"}, "status": {"phase": "Running"}}),
                api(),
            )
            .unwrap();
        assert_eq!(p["apiVersion"], "v1");
        assert_eq!(p["kind"], "Pod");
        assert_eq!(p["metadata"]["resourceVersion"], (rv0 + 1).to_string());
        assert_eq!(p["metadata"]["generation"], 1);
        assert_eq!(p["status"]["phase"], "Pending", "API create drops status");
        let err = s
            .create(
                &d,
                Some("default"),
                json!({"metadata": {"name": "a"}}),
                api(),
            )
            .unwrap_err();
        assert_eq!(err.code, 409);
        let err = s
            .create(&d, Some("nope"), json!({"metadata": {"name": "b"}}), api())
            .unwrap_err();
        assert_eq!(
            (err.code, err.message.as_str()),
            (404, "namespaces \"nope\" not found")
        );
    }

    #[test]
    fn continue_tokens_round_trip() {
        let k = ("ns-1".to_string(), "pod.x".to_string());
        assert_eq!(decode_continue(&encode_continue(&k)).unwrap(), k);
        assert!(decode_continue("garbage").is_err());
    }

    #[test]
    fn modified_events_become_added_or_deleted_across_selectors() {
        let sel = LabelSelector::parse("app=web").unwrap();
        let c = Change {
            rv: 1,
            kind: ChangeKind::Modified,
            storage: ("".into(), "pods".into()),
            namespace: "default".into(),
            object: Arc::new(Stored::new(
                &json!({"metadata": {"labels": {"app": "db"}}}),
                "",
                "pods",
            )),
            old: Some(Arc::new(Stored::new(
                &json!({"metadata": {"labels": {"app": "web"}}}),
                "",
                "pods",
            ))),
        };
        let (kind, _) = filter_change(&c, &sel, &FieldSelector::default()).unwrap();
        assert_eq!(kind, ChangeKind::Deleted);
    }
}
