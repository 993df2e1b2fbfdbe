//! Kubernetes API emulation for tests: a plain-HTTP (or, with
//! `EmulatorOptions::tls`, HTTPS) API server on loopback, in-process
//! (`Emulator::start`) or standalone (`testkit kube`), that real
//! `kube::Client`s and real `kubectl` talk to. It stores objects and
//! enforces API-server rules, and is as strict as a kube-apiserver running
//! alone (as envtest's is): it refuses and delays what a real one does.
//! - Graceful deletion: a pod bound to a node and not finished, deleted or
//!   evicted, gets `deletionTimestamp` (now + grace) and
//!   `deletionGracePeriodSeconds` and stays until a delete with a shorter
//!   grace (its kubelet's, with 0) removes it; an unbound or finished pod,
//!   and `gracePeriodSeconds: 0` (force), go at once. Finalizers hold any
//!   object, terminating.
//! - Namespaces: a deleted namespace keeps `spec.finalizers: [kubernetes]`,
//!   turns `Terminating` and keeps its contents until the namespace
//!   controller empties and finalizes it (`PUT .../finalize`); a repeated
//!   delete meanwhile is the real 409; `spec.finalizers` only changes
//!   through `finalize`.
//! - Authentication by bearer token, as a `--token-auth-file` does it:
//!   `Emulator::add_user(token, username, groups)` makes
//!   `Authorization: Bearer <token>` that user (every authenticated user is
//!   also in `system:authenticated`); a token never added gets the real 401
//!   `Unauthorized` Status, whatever the path. `SelfSubjectReview`
//!   (`authentication.k8s.io/v1`, create only, stored nowhere, in both
//!   discoveries) names the requester: `kubectl auth whoami` works. kubectl
//!   sends a kubeconfig's token only over TLS: `EmulatorOptions::tls`
//!   serves HTTPS with a built-in test certificate (`CA_PEM` signed it;
//!   the kubeconfigs carry the CA, `write_kubeconfig_as` a token).
//! - Admission on HTTP creates: a pod whose ServiceAccount (`default`
//!   unless named) does not exist is refused with the real 403; a new Node
//!   is tainted `node.kubernetes.io/not-ready:NoSchedule`. The namespaces a
//!   cluster starts with have their `default` ServiceAccount.
//! - ValidatingAdmissionPolicies and their bindings
//!   (`admissionregistration.k8s.io/v1`) are stored like any object, and
//!   validated and defaulted as the API server does (an expression that
//!   does not compile is a 422 naming `spec.validations[i].expression`).
//!   Every HTTP create, update and patch (any patch type, dry runs too;
//!   `status` and other subresources only when a rule names them, as
//!   `remediations/status`; scale writes as `Scale` objects, evictions as
//!   `Eviction` creates) is judged, after the patch is applied and before
//!   anything is stored, by each binding of an existing policy whose
//!   `matchConstraints` and own `matchResources` select it: CEL
//!   validations over `object`, `oldObject` (null on create), `request`
//!   (`operation`, `userInfo`, `name`, `namespace`...), `namespaceObject`
//!   and `variables`. A failed one denies with the real Status (its
//!   `reason`'s code, 422 `Invalid` by default; message `<resource>
//!   "<name>" is forbidden: ValidatingAdmissionPolicy '<policy>' with
//!   binding '<binding>' denied request: <message, or failed expression:
//!   <expression>>`), warns (`Warn`) or is only audited (`Audit`), as the
//!   binding's `validationActions` say; an expression that errs (a missing
//!   field) denies unless the policy's `failurePolicy` is `Ignore`.
//! - Paths of API groups or versions that are not served (an optional
//!   group like kubevirt.io after `unregister`) answer the catch-all's
//!   plain-text `404 page not found`; an unknown resource in a served
//!   built-in group version gets a `Status`.
//! - Warnings come back as `Warning: 299 - "..."` headers: unknown formats
//!   in a CRD's schemas (`unrecognized format "uint64"`, on create, and on
//!   update for formats it brings in), deprecated CRD versions, v1
//!   Endpoints (deprecated in 1.33, the version the emulation claims) and
//!   `Warn` bindings' failed validations.
//!
//! It runs no controllers and no kubelets. Tests script their work through
//! the store API (`create`, `update`, `modify`, `delete`, `delete_now`),
//! which skips admission (ValidatingAdmissionPolicies included; policies
//! written this way are still validated) and keeps `.status` as given, or
//! play them by name
//! (`Controller`; `Emulator::play_once` for one pass, `Emulator::play`,
//! `kubelet` in the background, `testkit kube --play ...`): the kubelets
//! of Ready nodes confirm graceful pod deletions (as kwok's do; pods on
//! other nodes stay Terminating); the namespace controller empties
//! terminating namespaces (pods wait for their kubelets) and finalizes
//! them, with its status conditions; the ServiceAccount controller makes
//! each active namespace's `default` account (a create admission policies
//! judge, as by `system:serviceaccount:kube-system:service-account-controller`);
//! the node lifecycle
//! controller keeps the not-ready / unreachable / unschedulable taints in
//! line with the Ready condition and the cordon. `Faults` inject
//! failures and delays, including the 403s a restarted server answers until
//! its RBAC caches load (`restart_with_cold_rbac`, `forbid_next`), expire
//! open watches with a 410 (`expire_watches`), and take the server down
//! and back (`go_down`, `come_back`: the port closed, connections cut).
//!
//! Deliberate differences from a real API server (no controllers, no etcd):
//! - no garbage collector (`propagationPolicy` is accepted, owners' deletion
//!   leaves dependents), no pod GC (pods of a deleted node stay, the
//!   out-of-service taint frees nothing), no taint-based eviction, no
//!   disruption controller: PodDisruptionBudgets are evaluated from the
//!   pods themselves (expected = selected non-terminal pods, terminating
//!   ones included until they are gone; healthy = ready and not terminating);
//! - authentication by static bearer tokens only (no client certificates,
//!   OIDC or service-account tokens): a request without a bearer token is
//!   the admin, `kubernetes-admin` in `system:masters` and
//!   `system:authenticated`, as if every client without a token presented
//!   the admin's client certificate (the kubeconfigs of an HTTPS emulator
//!   carry `ADMIN_TOKEN` instead, so that kubectl asks no password);
//! - no authorization (no RBAC): every authenticated request is allowed
//!   unless a fault denies it, whoever the user; no admission beyond the
//!   two plugins and the ValidatingAdmissionPolicies above (no defaulting
//!   of tolerations, service-account token volumes, limit ranges or
//!   quotas; no webhooks, no MutatingAdmissionPolicies); namespaces get no
//!   `kubernetes.io/metadata.name` label (policies' `namespaceSelector`s
//!   see it all the same); the played kubelets confirm
//!   at once (containers stop instantly) and never set a terminal phase first;
//! - ValidatingAdmissionPolicies judge creates and updates only (DELETE and
//!   CONNECT rules are accepted, never matched); `paramKind` is refused,
//!   `authorizer` does not compile, `auditAnnotations` are never evaluated,
//!   `matchPolicy: Equivalent` matches as `Exact`, expressions are parsed
//!   and their identifiers checked but not type checked (a type error shows
//!   when evaluated, as an error), and only CEL's standard library and
//!   `ext.Strings` are there (Kubernetes' quantity, URL, IP, set, list,
//!   format libraries and `timestamp`/`duration` are not: calling one errs);
//!   objects are seen as their JSON (no schemas: a field is there or not,
//!   a list compares in order); `status.typeChecking` is never written;
//! - server-side apply merges (maps recursively, known keyed lists by key) but
//!   tracks no field ownership and never removes fields; no `managedFields`;
//! - no schema validation or defaulting beyond metadata, names, labels,
//!   immutable pod specs and workload selectors; unknown fields are kept;
//! - core/v1 and events.k8s.io/v1 Events are stored separately; CRD versions
//!   share storage without conversion; no HTTP/2;
//! - bodies may be JSON, YAML or, for built-in types, protobuf, but protobuf
//!   is decoded only for the kinds kubectl's typed clients send (a body
//!   setting a field the decoder leaves out gets a 415 saying so); answers
//!   are always JSON, even to a client that asks for protobuf only.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod auth;
mod body;
mod controllers;
mod discovery;
mod error;
mod eviction;
mod faults;
mod http;
mod object;
mod openapi;
mod patch;
mod policies;
mod present;
mod protobuf;
mod resources;
mod scale;
mod selectors;
mod store;
mod stored;
mod table;
mod tls;
mod watch;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;

pub use auth::{ADMIN_TOKEN, UserInfo};
pub use controllers::{Controller, ControllerAction};
pub use error::ApiError;
pub use eviction::PDB_VIOLATION;
pub use faults::{Arrivals, FaultId, Faults, RequestMatch, RequestRecord};
pub use resources::{PrinterColumn, ResourceDef, builtin_resources};
pub use tls::CA_PEM;

use auth::Users;
use faults::FaultState;
use store::{DeleteOpts, State, WriteOpts};

/// Tunables of an emulator.
#[derive(Debug, Clone)]
pub struct EmulatorOptions {
    /// Changes kept for watches resuming from a resourceVersion; older ones get 410 Gone.
    pub watch_history: usize,
    /// How often watches that allow bookmarks get a BOOKMARK event.
    pub bookmark_interval: Duration,
    /// Requests kept in the request log (the count keeps going past it).
    pub request_log_capacity: usize,
    /// Print every request (`METHOD path?query -> status`) on stderr.
    pub log_requests: bool,
    /// Serve HTTPS (a built-in test certificate for `127.0.0.1`, signed by
    /// [`CA_PEM`], which the kubeconfigs name) instead of plain HTTP:
    /// kubectl sends a kubeconfig's bearer token only over TLS.
    pub tls: bool,
}

impl Default for EmulatorOptions {
    fn default() -> Self {
        EmulatorOptions {
            watch_history: 100_000,
            bookmark_interval: Duration::from_secs(1),
            request_log_capacity: 200_000,
            log_requests: false,
            tls: false,
        }
    }
}

/// State shared by the HTTP handlers and the emulator handle.
#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<State>,
    faults: Arc<FaultState>,
    /// The bearer tokens the server knows.
    users: Users,
    options: EmulatorOptions,
    address: String,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running Kubernetes API emulation on `127.0.0.1`.
#[derive(Debug)]
pub struct Emulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Emulator {
    /// Start on a free loopback port with default options (in a spawned tokio task).
    pub async fn start() -> anyhow::Result<Emulator> {
        Emulator::start_with(EmulatorOptions::default()).await
    }

    /// Start on a free loopback port.
    pub async fn start_with(options: EmulatorOptions) -> anyhow::Result<Emulator> {
        Emulator::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), options).await
    }

    /// Start on `addr` (port 0 picks a free port).
    pub async fn start_on(addr: SocketAddr, options: EmulatorOptions) -> anyhow::Result<Emulator> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot bind {addr}"))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(options.watch_history)),
            faults: Arc::new(FaultState::new(options.request_log_capacity)),
            users: Users::default(),
            options,
            address: addr.to_string(),
        });
        // a listener that can go down and come back (`Faults::go_down`)
        let listener = faults::Listener::new(listener, shared.faults.clone())?;
        let router = http::router(shared.clone());
        let tx = if shared.options.tls {
            let listener = tls::TlsListener::new(listener)?;
            crate::serve_in_background(listener, router, "Kubernetes emulator")
        } else {
            crate::serve_in_background(listener, router, "Kubernetes emulator")
        };
        tracing::debug!(%addr, "The Kubernetes emulator is listening.");
        Ok(Emulator {
            shared,
            addr,
            shutdown: Some(tx),
        })
    }

    /// `http://127.0.0.1:PORT` (`https://` with [`EmulatorOptions::tls`]).
    pub fn url(&self) -> String {
        let scheme = if self.shared.options.tls {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A kubeconfig for this emulator: one cluster, one user, the admin
    /// (see [`Emulator::add_user`]; without credentials, or with
    /// [`ADMIN_TOKEN`] when serving HTTPS, where kubectl would otherwise
    /// ask for a password), one context (namespace `default`), selected as
    /// current.
    pub fn kubeconfig_yaml(&self) -> String {
        if self.shared.options.tls {
            self.kubeconfig_yaml_as(ADMIN_TOKEN)
        } else {
            self.kubeconfig_with_user("{}")
        }
    }

    /// [`Emulator::kubeconfig_yaml`] whose user sends `token` as its bearer
    /// token: the user [`Emulator::add_user`] added with it (an unknown
    /// token gets 401 Unauthorized).
    pub fn kubeconfig_yaml_as(&self, token: &str) -> String {
        // a JSON string is a YAML double-quoted scalar: any token is safe
        let token = serde_json::to_string(token).unwrap_or_default();
        self.kubeconfig_with_user(&format!("{{token: {token}}}"))
    }

    fn kubeconfig_with_user(&self, user: &str) -> String {
        use base64::Engine as _;
        let url = self.url();
        let ca = if self.shared.options.tls {
            let data = base64::engine::general_purpose::STANDARD.encode(CA_PEM);
            format!("\n    certificate-authority-data: {data}")
        } else {
            String::new()
        };
        format!(
            "apiVersion: v1
kind: Config
clusters:
- name: heal8s-emulator
  cluster:
    server: {url}{ca}
users:
- name: heal8s-emulator
  user: {user}
contexts:
- name: heal8s-emulator
  context:
    cluster: heal8s-emulator
    user: heal8s-emulator
    namespace: default
current-context: heal8s-emulator
preferences: {{}}
"
        )
    }

    /// Write [`Emulator::kubeconfig_yaml`] to `path`.
    pub fn write_kubeconfig(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, self.kubeconfig_yaml())
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// Write [`Emulator::kubeconfig_yaml_as`] (bearer token `token`) to `path`.
    pub fn write_kubeconfig_as(&self, path: &Path, token: &str) -> anyhow::Result<()> {
        std::fs::write(path, self.kubeconfig_yaml_as(token))
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// Make requests with `Authorization: Bearer <token>` authenticate as
    /// `username` in `groups` (and `system:authenticated`, which every
    /// authenticated user is in), as a `--token-auth-file` line does; a token
    /// added again names its new user. Requests without a bearer token stay
    /// the admin (`kubernetes-admin` in `system:masters`); one with a token
    /// never added gets the API server's 401 Unauthorized. Nothing is
    /// authorized or refused by who the user is (there is no RBAC), but
    /// ValidatingAdmissionPolicies see the user as `request.userInfo`, and
    /// `SelfSubjectReview` (`kubectl auth whoami`) names it.
    pub fn add_user(&self, token: &str, username: &str, groups: &[&str]) {
        self.shared
            .users
            .add(token, UserInfo::new(username, groups))
    }

    /// The `kube::Config` production would build from [`Emulator::kubeconfig_yaml`]
    /// (tests may adjust it, e.g. `default_retry = false` to see raw 429/503 answers).
    pub async fn config(&self) -> anyhow::Result<kube::Config> {
        Emulator::config_from(&self.kubeconfig_yaml()).await
    }

    /// [`Emulator::config`] for the user with bearer token `token`.
    pub async fn config_as(&self, token: &str) -> anyhow::Result<kube::Config> {
        Emulator::config_from(&self.kubeconfig_yaml_as(token)).await
    }

    async fn config_from(yaml: &str) -> anyhow::Result<kube::Config> {
        let kc = kube::config::Kubeconfig::from_yaml(yaml)?;
        Ok(
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await?,
        )
    }

    /// A real `kube::Client` built as production builds one from a kubeconfig.
    /// Like production's, it retries 429, 503 and 504 answers (kube's default
    /// retry policy: up to 15 times with exponential backoff from 5 ms, or
    /// `Retry-After`).
    pub async fn client(&self) -> anyhow::Result<kube::Client> {
        Ok(kube::Client::try_from(self.config().await?)?)
    }

    /// [`Emulator::client`] for the user with bearer token `token` (see
    /// [`Emulator::add_user`]).
    pub async fn client_as(&self, token: &str) -> anyhow::Result<kube::Client> {
        Ok(kube::Client::try_from(self.config_as(token).await?)?)
    }

    /// Fault injection for the HTTP API.
    pub fn faults(&self) -> Faults {
        Faults {
            state: self.shared.faults.clone(),
        }
    }

    /// Every request served so far (the most recent [`EmulatorOptions::request_log_capacity`]).
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.faults.log.requests()
    }

    /// Number of requests served since start (not capped).
    pub fn request_count(&self) -> u64 {
        self.shared.faults.log.count()
    }

    /// Empty the request log (the count is kept).
    pub fn clear_requests(&self) {
        self.shared.faults.log.clear()
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().resource_version()
    }

    /// Forget the watch history: every watch resuming from an older
    /// resourceVersion gets a 410 Gone ERROR event (combine with
    /// [`Faults::drop_watches`] to force clients to re-list).
    pub fn compact_history(&self) {
        self.shared.lock().compact_history()
    }

    /// Serve another resource type (replaces one with the same group, version and plural).
    pub fn register(&self, def: ResourceDef) {
        self.shared.lock().registry.register(def)
    }

    /// Stop serving a resource type (every version), as if its CRD were not
    /// installed: discovery no longer lists it and its paths answer 404.
    pub fn unregister(&self, group: &str, plural: &str) {
        self.shared.lock().registry.unregister_all(group, plural)
    }

    fn def(&self, api_version: &str, kind: &str) -> Result<ResourceDef, ApiError> {
        self.shared
            .lock()
            .registry
            .find_kind(api_version, kind)
            .cloned()
            .ok_or_else(|| {
                ApiError::new(
                    404,
                    "NotFound",
                    format!("no resource type {kind} is served in {api_version}"),
                )
            })
    }

    fn ns(def: &ResourceDef, namespace: &str) -> Option<String> {
        def.namespaced.then(|| {
            if namespace.is_empty() {
                "default".to_string()
            } else {
                namespace.to_string()
            }
        })
    }

    /// Store a new object (apiVersion, kind, metadata.name or generateName,
    /// metadata.namespace, defaulting to `default`). Unlike the HTTP API,
    /// `.status` and a valid `metadata.creationTimestamp` (to script old
    /// objects) are kept as given. Emits ADDED.
    pub fn create(&self, obj: Value) -> Result<Value, ApiError> {
        self.shared.lock().create_object(
            obj,
            WriteOpts {
                dry_run: false,
                direct: true,
                by: None,
            },
        )
    }

    /// One object by apiVersion, kind (or plural), namespace ("" for cluster-scoped) and name.
    pub fn get(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let def = self.def(api_version, kind).ok()?;
        let ns = Emulator::ns(&def, namespace);
        self.shared
            .lock()
            .get(&def, ns.as_deref(), name)
            .ok()
            .map(|o| o.value())
    }

    /// Objects of a type in `namespace` ("" = all namespaces, or cluster-scoped), sorted by namespace and name.
    pub fn list(&self, api_version: &str, kind: &str, namespace: &str) -> Vec<Value> {
        let Ok(def) = self.def(api_version, kind) else {
            return Vec::new();
        };
        let ns = (!namespace.is_empty() && def.namespaced).then_some(namespace);
        self.shared
            .lock()
            .objects_in(&def.storage(), ns)
            .into_iter()
            .map(|o| o.value())
            .collect()
    }

    /// Replace an object entirely, `.status` included (a controller's or
    /// kubelet's write). A non-empty metadata.resourceVersion must be current
    /// (409 otherwise). Emits MODIFIED, or DELETED when it leaves a
    /// terminating object nothing to wait for (no finalizers, no graceful
    /// deletion pending; for a namespace, an empty `spec.finalizers`).
    pub fn update(&self, obj: Value) -> Result<Value, ApiError> {
        let mut st = self.shared.lock();
        let def = st.def_of(&obj)?;
        let name = object::name(&obj).unwrap_or("").to_string();
        let ns = Emulator::ns(&def, object::meta_str(&obj, "namespace").unwrap_or(""));
        st.update(
            &def,
            ns.as_deref(),
            &name,
            obj,
            store::Part::Main,
            WriteOpts {
                dry_run: false,
                direct: true,
                by: None,
            },
        )
    }

    /// Read-modify-write one object with `f` (status included); returns the stored result.
    pub fn modify(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
        f: impl FnOnce(&mut Value),
    ) -> Result<Value, ApiError> {
        let def = self.def(api_version, kind)?;
        let ns = Emulator::ns(&def, namespace);
        self.shared.lock().modify(&def, ns.as_deref(), name, f)
    }

    /// Delete as the API does with default options: a pod bound to a node
    /// is left terminating until its kubelet confirms (see [`Controller::Kubelet`]),
    /// finalizers hold any object, and a namespace only turns `Terminating`
    /// (see [`Controller::Namespace`]). Returns the object as deleted or marked.
    pub fn delete(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Value, ApiError> {
        self.delete_with(api_version, kind, namespace, name, DeleteOpts::default())
    }

    /// Delete with grace period 0, as `kubectl delete --grace-period=0
    /// --force` does: a pod goes without waiting for its kubelet (finalizers
    /// still hold it). Returns the object as deleted or marked.
    pub fn delete_now(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Value, ApiError> {
        let opts = DeleteOpts {
            grace_period_seconds: Some(0),
            ..DeleteOpts::default()
        };
        self.delete_with(api_version, kind, namespace, name, opts)
    }

    fn delete_with(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
        opts: DeleteOpts,
    ) -> Result<Value, ApiError> {
        let def = self.def(api_version, kind)?;
        let ns = Emulator::ns(&def, namespace);
        self.shared.lock().delete(&def, ns.as_deref(), name, &opts)
    }

    /// Play one pass of `controller` now: what a real cluster's controller
    /// (or kubelet) would do at this moment. What it did, for narration.
    pub fn play_once(&self, controller: Controller) -> Vec<ControllerAction> {
        self.shared.lock().play(controller)
    }

    /// Play `controllers` in the background (a pass every 20 ms) until the
    /// returned handle is dropped. Needs a tokio runtime.
    pub fn play(&self, controllers: &[Controller]) -> PlayedControllers {
        PlayedControllers::start(self.shared.clone(), controllers)
    }

    /// Play the kubelets of Ready nodes in the background, as kwok does:
    /// graceful pod deletions on those nodes are confirmed.
    pub fn kubelet(&self) -> PlayedControllers {
        self.play(&[Controller::Kubelet])
    }

    /// Stop serving: open watches end, the listener closes.
    pub fn shutdown(&mut self) {
        self.faults().drop_watches();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Controllers played in the background by [`Emulator::play`]; they stop
/// when this is dropped.
#[derive(Debug)]
pub struct PlayedControllers {
    task: tokio::task::JoinHandle<()>,
    actions: Arc<Mutex<Vec<ControllerAction>>>,
}

impl PlayedControllers {
    const PERIOD: Duration = Duration::from_millis(20);

    fn start(shared: Arc<Shared>, controllers: &[Controller]) -> PlayedControllers {
        let controllers = controllers.to_vec();
        let actions = Arc::new(Mutex::new(Vec::new()));
        let log = actions.clone();
        let task = tokio::spawn(async move {
            loop {
                let mut did = Vec::new();
                {
                    let mut st = shared.lock();
                    for c in &controllers {
                        did.extend(st.play(*c));
                    }
                }
                if !did.is_empty() {
                    for a in &did {
                        tracing::debug!(controller = %a.controller, "{a}.");
                    }
                    log.lock().unwrap_or_else(|e| e.into_inner()).extend(did);
                }
                tokio::time::sleep(PlayedControllers::PERIOD).await;
            }
        });
        PlayedControllers { task, actions }
    }

    /// Everything the played controllers did so far.
    pub fn actions(&self) -> Vec<ControllerAction> {
        self.actions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for PlayedControllers {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Run a standalone emulator on `127.0.0.1:port` until SIGTERM or SIGINT:
/// writes the kubeconfig to `kubeconfig_out` (if given), then prints the URL
/// on stdout; with `log_requests`, every request is printed on stderr; the
/// `play`ed controllers run in the background.
pub async fn serve_standalone(
    port: u16,
    kubeconfig_out: Option<&Path>,
    log_requests: bool,
    play: &[Controller],
) -> anyhow::Result<()> {
    let mut emu = Emulator::start_on(
        SocketAddr::from(([127, 0, 0, 1], port)),
        EmulatorOptions {
            log_requests,
            ..EmulatorOptions::default()
        },
    )
    .await?;
    if let Some(path) = kubeconfig_out {
        emu.write_kubeconfig(path)?;
    }
    let _played = (!play.is_empty()).then(|| emu.play(play));
    print_url_and_wait(&emu.url()).await?;
    emu.shutdown();
    Ok(())
}

/// What both standalone emulations do once serving: print `url` on stdout,
/// then wait for SIGTERM or SIGINT.
pub(crate) async fn print_url_and_wait(url: &str) -> anyhow::Result<()> {
    println!("{url}");
    use std::io::Write as _;
    std::io::stdout().flush()?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        r = tokio::signal::ctrl_c() => r?,
    }
    Ok(())
}
