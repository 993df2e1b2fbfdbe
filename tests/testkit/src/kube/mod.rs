//! Kubernetes API emulation for tests: a plain-HTTP, no-auth API server on
//! loopback, in-process (`Emulator::start`) or standalone (`testkit kube`),
//! that real `kube::Client`s and real `kubectl` talk to. It stores objects and
//! enforces API-server rules, but runs no controllers: tests script what
//! controllers and kubelets would do through the store API (`create`,
//! `update`, `modify`, `delete`).
//!
//! Deliberate differences from a real API server (no controllers, no etcd):
//! - deletion is immediate unless `metadata.finalizers` is non-empty (pods
//!   too: no kubelet confirms graceful deletion; the returned and DELETED
//!   objects carry `deletionTimestamp`/`deletionGracePeriodSeconds`);
//!   `propagationPolicy` is accepted but no garbage collector runs;
//! - namespace deletion runs synchronously inside the DELETE; the namespace's
//!   `spec.finalizers` never block it, `metadata.finalizers` do;
//! - PodDisruptionBudgets are evaluated from the pods themselves (expected =
//!   selected non-terminal pods), not from a disruption controller's status;
//! - server-side apply merges (maps recursively, known keyed lists by key) but
//!   tracks no field ownership and never removes fields; no `managedFields`;
//! - no schema validation or defaulting beyond metadata, names, labels,
//!   immutable pod specs and workload selectors; unknown fields are kept;
//! - core/v1 and events.k8s.io/v1 Events are stored separately; CRD versions
//!   share storage without conversion; JSON only (no protobuf, no HTTP/2).

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod discovery;
mod error;
mod eviction;
mod faults;
mod http;
mod object;
mod openapi;
mod patch;
mod present;
mod resources;
mod scale;
mod selectors;
mod store;
mod stored;
mod table;
mod watch;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;

pub use error::ApiError;
pub use eviction::PDB_VIOLATION;
pub use faults::{FaultId, Faults, RequestMatch, RequestRecord};
pub use resources::{PrinterColumn, ResourceDef, builtin_resources};

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
}

impl Default for EmulatorOptions {
    fn default() -> Self {
        EmulatorOptions {
            watch_history: 100_000,
            bookmark_interval: Duration::from_secs(1),
            request_log_capacity: 200_000,
            log_requests: false,
        }
    }
}

/// State shared by the HTTP handlers and the emulator handle.
#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<State>,
    faults: Arc<FaultState>,
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
            options,
            address: addr.to_string(),
        });
        let tx = crate::serve_in_background(
            listener,
            http::router(shared.clone()),
            "Kubernetes emulator",
        );
        tracing::debug!(%addr, "The Kubernetes emulator is listening.");
        Ok(Emulator {
            shared,
            addr,
            shutdown: Some(tx),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A kubeconfig for this emulator: one cluster, one credential-less user,
    /// one context (namespace `default`), selected as current.
    pub fn kubeconfig_yaml(&self) -> String {
        kubeconfig_for(&self.url())
    }

    /// Write [`Emulator::kubeconfig_yaml`] to `path`.
    pub fn write_kubeconfig(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, self.kubeconfig_yaml())
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// The `kube::Config` production would build from [`Emulator::kubeconfig_yaml`]
    /// (tests may adjust it, e.g. `default_retry = false` to see raw 429/503 answers).
    pub async fn config(&self) -> anyhow::Result<kube::Config> {
        let kc = kube::config::Kubeconfig::from_yaml(&self.kubeconfig_yaml())?;
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

    /// Fault injection for the HTTP API.
    pub fn faults(&self) -> Faults {
        Faults {
            state: self.shared.faults.clone(),
        }
    }

    /// Every request served so far (the most recent [`EmulatorOptions::request_log_capacity`]).
    pub fn requests(&self) -> Vec<RequestRecord> {
        faults::requests(&self.shared.faults)
    }

    /// Number of requests served since start (not capped).
    pub fn request_count(&self) -> u64 {
        faults::request_count(&self.shared.faults)
    }

    /// Empty the request log (the count is kept).
    pub fn clear_requests(&self) {
        faults::clear_requests(&self.shared.faults)
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().resource_version()
    }

    /// Number of objects stored, all types together.
    pub fn object_count(&self) -> usize {
        self.shared.lock().object_count()
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
    /// (409 otherwise). Emits MODIFIED, or DELETED when it empties the
    /// finalizers of a terminating object.
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

    /// Delete as the API does: immediately, or terminating while finalizers
    /// remain; a namespace takes its contents with it. Returns the object as deleted.
    pub fn delete(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Value, ApiError> {
        let def = self.def(api_version, kind)?;
        let ns = Emulator::ns(&def, namespace);
        self.shared
            .lock()
            .delete(&def, ns.as_deref(), name, &DeleteOpts::default())
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

/// A kubeconfig pointing at `url` with no credentials.
pub fn kubeconfig_for(url: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: heal8s-emulator
  cluster:
    server: {url}
users:
- name: heal8s-emulator
  user: {{}}
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

/// Run a standalone emulator on `127.0.0.1:port` until SIGTERM or SIGINT:
/// writes the kubeconfig to `kubeconfig_out` (if given), then prints the URL
/// on stdout; with `log_requests`, every request is printed on stderr.
pub async fn serve_standalone(
    port: u16,
    kubeconfig_out: Option<&Path>,
    log_requests: bool,
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
    println!("{}", emu.url());
    use std::io::Write as _;
    std::io::stdout().flush()?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        r = tokio::signal::ctrl_c() => r?,
    }
    emu.shutdown();
    Ok(())
}
