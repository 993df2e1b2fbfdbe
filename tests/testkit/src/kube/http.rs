//! The HTTP face of the emulator: one axum fallback handler that parses
//! Kubernetes API paths, authenticates the request (`auth`: an unknown
//! bearer token is a 401 before anything else), applies injected faults,
//! logs the request, answers `SelfSubjectReview`s, and maps
//! verbs onto the store, watch, subresource and discovery modules (request
//! bodies through `body`, by their Content-Type). Answers as
//! kube-apiserver does at its edges too: paths of API groups that are not
//! installed get a plain-text `404 page not found`, and warnings (deprecated
//! API versions, unknown formats in a CRD's schema) come back as `Warning`
//! headers. Holds no state of its own.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::Shared;
use super::auth::{self, UserInfo};
use super::body::{self, Expected};
use super::discovery;
use super::error::{ApiError, success_status};
use super::eviction;
use super::faults::{RequestAttrs, RequestRecord, ResourceAttrs};
use super::openapi;
use super::patch::{self, PatchType};
use super::policies::{Attributes, Operation};
use super::present::{self, Shape};
use super::resources::{ResourceDef, unrecognized_formats};
use super::scale::{self, ScaleWrite};
use super::selectors::{FieldSelector, LabelSelector, selectable_fields};
use super::store::{self, DeleteOpts, ListQuery, Part, Requester, WatchFrom, WriteOpts};
use super::stored::Stored;
use super::watch::{self, WatchRequest};

const MAX_BODY: usize = 64 * 1024 * 1024;

/// The emulator's router.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .fallback(handle)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(shared)
}

/// A parsed request path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Version,
    CoreVersions,
    Groups,
    Group(String),
    Resources(String, String),
    OpenApiRoot,
    OpenApiDoc(String),
    Health,
    Object(ObjectPath),
    Unknown,
}

/// `/api/v1/...` or `/apis/{group}/{version}/...` below the version.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ObjectPath {
    group: String,
    version: String,
    namespace: Option<String>,
    plural: String,
    name: Option<String>,
    sub: Option<String>,
}

fn parse_route(path: &str) -> Route {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest): (&str, &str, &[&str]) = match segs.as_slice() {
        ["version"] => return Route::Version,
        ["healthz" | "readyz" | "livez", ..] => return Route::Health,
        ["openapi", "v3"] => return Route::OpenApiRoot,
        ["openapi", "v3", rest @ ..] => return Route::OpenApiDoc(rest.join("/")),
        ["api"] => return Route::CoreVersions,
        ["api", v] => return Route::Resources(String::new(), v.to_string()),
        ["api", v, rest @ ..] => ("", v, rest),
        ["apis"] => return Route::Groups,
        ["apis", g] => return Route::Group(g.to_string()),
        ["apis", g, v] => return Route::Resources(g.to_string(), v.to_string()),
        ["apis", g, v, rest @ ..] => (g, v, rest),
        _ => return Route::Unknown,
    };
    let core = group.is_empty();
    let namespaced_form = rest.first() == Some(&"namespaces")
        && rest.len() >= 3
        && !(core && rest.len() == 3 && matches!(rest[2], "status" | "finalize"));
    let (namespace, rest) = if namespaced_form {
        (Some(rest[1].to_string()), &rest[2..])
    } else {
        (None, rest)
    };
    let (plural, name, sub) = match rest {
        [p] => (*p, None, None),
        [p, n] => (*p, Some(n.to_string()), None),
        [p, n, s] => (*p, Some(n.to_string()), Some(s.to_string())),
        _ => return Route::Unknown,
    };
    if plural.is_empty() || name.as_deref() == Some("") {
        return Route::Unknown;
    }
    Route::Object(ObjectPath {
        group: group.to_string(),
        version: version.to_string(),
        namespace,
        plural: plural.to_string(),
        name,
        sub,
    })
}

/// Query parameters.
#[derive(Debug, Default)]
struct Params(Vec<(String, String)>);

impl Params {
    fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }

    fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true" | "1" | "True"))
    }

    fn dry_run(&self) -> bool {
        self.0.iter().any(|(k, v)| k == "dryRun" && v == "All")
    }

    fn int(&self, k: &str) -> Result<Option<i64>, ApiError> {
        self.get(k)
            .filter(|v| !v.is_empty())
            .map(|v| {
                v.parse()
                    .map_err(|_| ApiError::bad_request(format!("invalid {k}: {v:?}")))
            })
            .transpose()
    }
}

fn verb_of(method: &Method, route: &Route, params: &Params) -> &'static str {
    let Route::Object(p) = route else {
        return "get";
    };
    match *method {
        Method::GET if p.name.is_some() => "get",
        Method::GET if params.flag("watch") => "watch",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if p.name.is_some() => "delete",
        Method::DELETE => "deletecollection",
        _ => "unknown",
    }
}

/// What the API server's catch-all answers for a path no API serves (an API
/// group that is not installed, say): Go's `http.NotFound`, plain text.
fn page_not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        "404 page not found\n",
    )
        .into_response()
}

/// A warning as the API server sends it: `299 - "<text>"`, the text quoted
/// as Go's `strconv.Quote` does.
fn warning_value(text: &str) -> String {
    let mut q = String::with_capacity(text.len() + 8);
    q.push_str("299 - \"");
    for c in text.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            ' '..='~' => q.push(c),
            '\n' => q.push_str("\\n"),
            '\t' => q.push_str("\\t"),
            c if u32::from(c) < 0x10000 => q.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => q.push_str(&format!("\\U{:08x}", u32::from(c))),
        }
    }
    q.push('"');
    q
}

/// The authorizer's view of a request.
fn request_attrs(method: &Method, verb: &str, path: &str, route: &Route) -> RequestAttrs {
    let resource = match route {
        Route::Object(p) => Some(ResourceAttrs {
            group: p.group.clone(),
            resource: p.plural.clone(),
            subresource: p.sub.clone().unwrap_or_default(),
            // a namespace is its own namespace, as the API server's RequestInfo has it
            namespace: match (&p.namespace, &p.name) {
                (Some(ns), _) => ns.clone(),
                (None, Some(n)) if p.group.is_empty() && p.plural == "namespaces" => n.clone(),
                _ => String::new(),
            },
            name: p.name.clone().unwrap_or_default(),
        }),
        _ => None,
    };
    RequestAttrs {
        method: method.to_string(),
        verb: verb.to_string(),
        path: path.to_string(),
        resource,
    }
}

fn json_response(code: u16, body: String) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn value_response(code: u16, v: &Value) -> Response {
    json_response(code, serde_json::to_string(v).unwrap_or_default())
}

fn error_response(e: &ApiError) -> Response {
    let mut r = value_response(e.code, &e.to_status());
    if e.code == 429
        && let Some(secs) = e
            .details
            .as_ref()
            .and_then(|d| d.get("retryAfterSeconds"))
            .and_then(Value::as_u64)
        && let Ok(v) = secs.to_string().parse()
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let at = Instant::now();
    if !shared.faults.is_up() {
        // down: no answer, and nothing served (the connection is being cut)
        return std::future::pending().await;
    }
    let (parts, body) = req.into_parts();
    let method = parts.method.clone();
    let path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    let route = parse_route(&path);
    let params = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
        .map(|q| Params(q.0))
        .unwrap_or_default();
    let verb = verb_of(&method, &route, &params);
    // authentication comes first, as in the API server's filter chain
    let authenticated = shared.users.authenticate(
        parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    );
    let (delay, fault) = match &authenticated {
        Ok(_) => shared
            .faults
            .decide(&request_attrs(&method, verb, &path, &route)),
        Err(e) => (std::time::Duration::ZERO, Some(e.clone())),
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let response = match (fault, authenticated) {
        (Some(e), _) | (None, Err(e)) => error_response(&e),
        (None, Ok(user)) => match axum::body::to_bytes(body, MAX_BODY).await {
            Err(_) => error_response(&ApiError::new(
                413,
                "RequestEntityTooLarge",
                "the request body is too large",
            )),
            Ok(bytes) => {
                let ctx = Ctx {
                    shared: &shared,
                    user,
                    method: &method,
                    headers: &parts.headers,
                    params: &params,
                    body: &bytes,
                    warnings: RefCell::new(Vec::new()),
                };
                let mut r = match dispatch(&ctx, &route) {
                    Ok(r) => r,
                    Err(e) => error_response(&e),
                };
                let mut sent: Vec<String> = Vec::new();
                for w in ctx.warnings.into_inner() {
                    if sent.contains(&w) {
                        continue;
                    }
                    if let Ok(v) = warning_value(&w).parse() {
                        r.headers_mut().append(header::WARNING, v);
                    }
                    sent.push(w);
                }
                r
            }
        },
    };
    if shared.options.log_requests {
        let q = if raw_query.is_empty() {
            String::new()
        } else {
            format!("?{raw_query}")
        };
        let accept = parts
            .headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let ct = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        eprintln!(
            "{method} {path}{q} -> {} [accept: {accept}] [content-type: {ct}]",
            response.status().as_u16()
        );
    }
    shared.faults.log.record(RequestRecord {
        method: method.to_string(),
        verb: verb.to_string(),
        path,
        query: raw_query,
        status: response.status().as_u16(),
        user_agent: parts
            .headers
            .get_all(header::USER_AGENT)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect::<Vec<_>>()
            .join(", "),
        at,
    });
    response
}

/// Everything a handler needs about the request.
struct Ctx<'a> {
    shared: &'a Arc<Shared>,
    /// Who is asking (authenticated).
    user: UserInfo,
    method: &'a Method,
    headers: &'a HeaderMap,
    params: &'a Params,
    body: &'a Bytes,
    /// Warnings for the response's `Warning` headers.
    warnings: RefCell<Vec<String>>,
}

impl Ctx<'_> {
    fn warn(&self, text: impl Into<String>) {
        self.warnings.borrow_mut().push(text.into());
    }

    /// Warn about unknown formats a CRD write brings into its schemas (an
    /// update warns only about formats the old object did not have yet).
    fn warn_crd_formats(&self, def: &ResourceDef, old: Option<&Value>, new: &Value) {
        if !def.is("apiextensions.k8s.io", "customresourcedefinitions") {
            return;
        }
        let before = old.map(unrecognized_formats).unwrap_or_default();
        for f in unrecognized_formats(new) {
            if !before.contains(&f) {
                self.warn(format!("unrecognized format \"{f}\""));
            }
        }
    }

    fn header(&self, name: header::HeaderName) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The body as JSON, decoded by its Content-Type into `expected`.
    fn body_as(&self, expected: &Expected) -> Result<Value, ApiError> {
        body::decode(
            self.header(header::CONTENT_TYPE),
            self.body,
            expected,
            |api_version, kind| {
                self.shared
                    .lock()
                    .registry
                    .find_kind(api_version, kind)
                    .is_some_and(ResourceDef::is_builtin_type)
            },
        )
    }

    /// The body of a write to `def` itself (create, update, a status or finalize write).
    fn object_body(&self, def: &ResourceDef) -> Result<Value, ApiError> {
        self.body_as(&Expected {
            api_version: def.api_version(),
            kind: def.kind.clone(),
            builtin: def.is_builtin_type(),
        })
    }

    fn shape(&self) -> Shape {
        Shape::from_accept(self.header(header::ACCEPT))
    }

    fn write_opts(&self) -> WriteOpts<'_> {
        WriteOpts {
            dry_run: self.params.dry_run(),
            direct: false,
            by: Some(self.requester()),
        }
    }

    fn requester(&self) -> Requester<'_> {
        Requester {
            user: &self.user,
            warnings: &self.warnings,
        }
    }
}

fn dispatch(ctx: &Ctx<'_>, route: &Route) -> Result<Response, ApiError> {
    let get_only = || {
        if *ctx.method == Method::GET {
            Ok(())
        } else {
            Err(ApiError::method_not_allowed(ctx.method.as_str()))
        }
    };
    match route {
        Route::Version => {
            get_only()?;
            Ok(value_response(200, &discovery::version()))
        }
        Route::Health => Ok((StatusCode::OK, "ok").into_response()),
        Route::OpenApiRoot => {
            get_only()?;
            Ok(value_response(
                200,
                &openapi::root(&ctx.shared.lock().registry),
            ))
        }
        Route::OpenApiDoc(rel) => {
            get_only()?;
            openapi::group_version_doc(&ctx.shared.lock().registry, rel)
                .map(|d| value_response(200, &d))
                .ok_or_else(ApiError::no_route)
        }
        Route::CoreVersions => {
            get_only()?;
            if discovery::wants_aggregated(ctx.header(header::ACCEPT)) {
                let doc = discovery::aggregated(&ctx.shared.lock().registry, true);
                return Ok(aggregated_response(&doc));
            }
            Ok(value_response(
                200,
                &discovery::api_versions(&ctx.shared.address),
            ))
        }
        Route::Groups => {
            get_only()?;
            let reg = &ctx.shared.lock().registry;
            if discovery::wants_aggregated(ctx.header(header::ACCEPT)) {
                return Ok(aggregated_response(&discovery::aggregated(reg, false)));
            }
            Ok(value_response(200, &discovery::api_group_list(reg)))
        }
        Route::Group(g) => {
            get_only()?;
            let doc = discovery::api_group(&ctx.shared.lock().registry, g);
            Ok(doc.map_or_else(page_not_found, |d| value_response(200, &d)))
        }
        Route::Resources(g, v) => {
            get_only()?;
            let doc = discovery::api_resource_list(&ctx.shared.lock().registry, g, v);
            Ok(doc.map_or_else(page_not_found, |d| value_response(200, &d)))
        }
        Route::Object(p) => object_route(ctx, p),
        Route::Unknown => Ok(page_not_found()),
    }
}

fn aggregated_response(doc: &Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, discovery::AGGREGATED_V2)],
        serde_json::to_string(doc).unwrap_or_default(),
    )
        .into_response()
}

fn object_route(ctx: &Ctx<'_>, p: &ObjectPath) -> Result<Response, ApiError> {
    let found = {
        let st = ctx.shared.lock();
        match st.registry.find(&p.group, &p.version, &p.plural) {
            Some(d) => Ok(d.clone()),
            // A served built-in group version answers an unknown resource
            // with a Status; a group version not served at all, or a custom
            // resource's group without this resource (the CRD handler
            // delegates), reaches the catch-all: plain text.
            None => Err(!st.registry.resources(&p.group, &p.version).is_empty()
                && ResourceDef::new(&p.group, &p.version, "", "", false).is_builtin_type()),
        }
    };
    let def = match found {
        Ok(d) => d,
        Err(true) => return Err(ApiError::no_route()),
        Err(false) => return Ok(page_not_found()),
    };
    if let Some(w) = &def.deprecation {
        ctx.warn(w.clone());
    }
    if !def.namespaced && p.namespace.is_some() {
        return Err(ApiError::no_route());
    }
    if def.namespaced && p.namespace.is_none() && p.name.is_some() {
        return Err(ApiError::no_route());
    }
    if def.is("authentication.k8s.io", "selfsubjectreviews") {
        return self_subject_review(ctx, &def, p);
    }
    let ns = p.namespace.as_deref();
    match (&p.name, &p.sub) {
        (None, _) => collection(ctx, &def, ns),
        (Some(name), None) => single(ctx, &def, ns, name),
        (Some(name), Some(sub)) => {
            if !def.has_subresource(sub) {
                return Err(ApiError::no_route());
            }
            match sub.as_str() {
                "status" => part_sub(ctx, &def, ns, name, Part::Status),
                "resize" => part_sub(ctx, &def, ns, name, Part::Resize),
                "finalize" if *ctx.method == Method::PUT => {
                    part_sub(ctx, &def, ns, name, Part::Finalize)
                }
                "finalize" => Err(ApiError::method_not_allowed(ctx.method.as_str())),
                "scale" => scale_sub(ctx, &def, ns, name),
                "eviction" => eviction_sub(ctx, ns, name),
                _ => Err(ApiError::no_route()),
            }
        }
    }
}

/// `SelfSubjectReview`, create only, as its REST storage: the collection
/// answers POST with the requester's user info and stores nothing; other
/// methods get 405, paths below the collection 404.
fn self_subject_review(
    ctx: &Ctx<'_>,
    def: &ResourceDef,
    p: &ObjectPath,
) -> Result<Response, ApiError> {
    if p.name.is_some() {
        return Err(ApiError::no_route());
    }
    if *ctx.method != Method::POST {
        return Err(ApiError::method_not_allowed(ctx.method.as_str()));
    }
    let mut body = ctx.object_body(def)?;
    store::State::check_type(def, &mut body)?;
    Ok(value_response(201, &auth::self_subject_review(&ctx.user)))
}

fn list_query(ctx: &Ctx<'_>, def: &ResourceDef) -> Result<ListQuery, ApiError> {
    let labels = LabelSelector::parse(ctx.params.get("labelSelector").unwrap_or(""))?;
    let fields = FieldSelector::parse(
        ctx.params.get("fieldSelector").unwrap_or(""),
        &selectable_fields(&def.group, &def.plural),
    )?;
    let limit = ctx
        .params
        .int("limit")?
        .and_then(|l| usize::try_from(l).ok())
        // Like the API server's watch cache: resourceVersion=0 lists are served
        // whole, `limit` ignored (kube's watcher lists this way by default).
        .filter(|_| ctx.params.get("resourceVersion") != Some("0"));
    Ok(ListQuery {
        labels,
        fields,
        limit,
        continue_token: ctx.params.get("continue").map(str::to_string),
    })
}

fn collection(ctx: &Ctx<'_>, def: &ResourceDef, ns: Option<&str>) -> Result<Response, ApiError> {
    match *ctx.method {
        Method::GET if ctx.params.flag("watch") => watch_collection(ctx, def, ns),
        Method::GET => {
            let q = list_query(ctx, def)?;
            let page = ctx.shared.lock().list(def, ns, &q)?;
            Ok(json_response(200, present::list(def, &page, ctx.shape())))
        }
        Method::POST => {
            if def.namespaced && ns.is_none() {
                return Err(ApiError::method_not_allowed("POST"));
            }
            let body = ctx.object_body(def)?;
            let created = ctx.shared.lock().create(def, ns, body, ctx.write_opts())?;
            ctx.warn_crd_formats(def, None, &created);
            Ok(json_response(
                201,
                present::object(def, &created, Shape::Full),
            ))
        }
        Method::DELETE => {
            let q = list_query(ctx, def)?;
            let opts = delete_opts(ctx)?;
            let mut st = ctx.shared.lock();
            let page = st.list(def, ns, &q)?;
            let mut deleted = Vec::new();
            for obj in &page.items {
                let obj = obj.value();
                let name = super::object::name(&obj).unwrap_or("").to_string();
                let ons = super::object::meta_str(&obj, "namespace").map(str::to_string);
                if let Ok(d) = st.delete(def, ons.as_deref(), &name, &opts) {
                    deleted.push(Arc::new(Stored::new(&d, &def.group, &def.plural)));
                }
            }
            let rv = st.resource_version();
            drop(st);
            let page = super::store::ListPage {
                items: deleted,
                resource_version: rv,
                continue_token: None,
                remaining: None,
            };
            Ok(json_response(200, present::list(def, &page, Shape::Full)))
        }
        _ => Err(ApiError::method_not_allowed(ctx.method.as_str())),
    }
}

fn watch_collection(
    ctx: &Ctx<'_>,
    def: &ResourceDef,
    ns: Option<&str>,
) -> Result<Response, ApiError> {
    let q = list_query(ctx, def)?;
    let send_initial_events = ctx.params.flag("sendInitialEvents");
    let from = match ctx.params.get("resourceVersion").unwrap_or("") {
        "" | "0" => WatchFrom::Now,
        _ if send_initial_events => WatchFrom::Now,
        rv => WatchFrom::After(
            rv.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?,
        ),
    };
    let timeout = ctx
        .params
        .int("timeoutSeconds")?
        .filter(|t| *t > 0)
        .map(|t| std::time::Duration::from_secs(t.unsigned_abs()));
    let body = watch::start(
        ctx.shared,
        WatchRequest {
            def: def.clone(),
            namespace: ns.map(str::to_string),
            labels: q.labels,
            fields: q.fields,
            from,
            bookmarks: ctx.params.flag("allowWatchBookmarks"),
            send_initial_events,
            timeout,
            shape: match ctx.shape() {
                Shape::Metadata => Shape::Metadata,
                _ => Shape::Full,
            },
        },
    );
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

fn delete_opts(ctx: &Ctx<'_>) -> Result<DeleteOpts, ApiError> {
    let body = if ctx.body.is_empty() {
        None
    } else {
        // every type's delete takes meta.k8s.io DeleteOptions, protobuf included
        Some(ctx.body_as(&Expected {
            api_version: "meta.k8s.io/v1".into(),
            kind: "DeleteOptions".into(),
            builtin: true,
        })?)
    };
    let mut opts = DeleteOpts::from_options(body.as_ref(), ctx.params.dry_run());
    if opts.grace_period_seconds.is_none() {
        opts.grace_period_seconds = ctx.params.int("gracePeriodSeconds")?;
    }
    Ok(opts)
}

fn patch_input(ctx: &Ctx<'_>, def: &ResourceDef) -> Result<(PatchType, Value), ApiError> {
    let kind =
        PatchType::from_content_type(ctx.header(header::CONTENT_TYPE), def.is_builtin_type())?;
    if kind == PatchType::Apply && ctx.params.get("fieldManager").is_none_or(str::is_empty) {
        return Err(ApiError::bad_request(
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
        ));
    }
    let body = patch::parse_body(kind, ctx.body)?;
    Ok((kind, body))
}

fn single(
    ctx: &Ctx<'_>,
    def: &ResourceDef,
    ns: Option<&str>,
    name: &str,
) -> Result<Response, ApiError> {
    match *ctx.method {
        Method::GET => {
            let obj = ctx.shared.lock().get(def, ns, name)?;
            Ok(json_response(200, present::stored(def, &obj, ctx.shape())))
        }
        Method::PUT => {
            let body = ctx.object_body(def)?;
            let old = crd_before(ctx, def, ns, name);
            let obj =
                ctx.shared
                    .lock()
                    .update(def, ns, name, body, Part::Main, ctx.write_opts())?;
            ctx.warn_crd_formats(def, old.as_ref(), &obj);
            Ok(json_response(200, present::object(def, &obj, Shape::Full)))
        }
        Method::PATCH => {
            let (kind, body) = patch_input(ctx, def)?;
            let old = crd_before(ctx, def, ns, name);
            let (obj, created) = ctx.shared.lock().patch(
                def,
                ns,
                name,
                kind,
                &body,
                Part::Main,
                ctx.write_opts(),
            )?;
            ctx.warn_crd_formats(def, old.as_ref(), &obj);
            Ok(json_response(
                if created { 201 } else { 200 },
                present::object(def, &obj, Shape::Full),
            ))
        }
        Method::DELETE => {
            let opts = delete_opts(ctx)?;
            let obj = ctx.shared.lock().delete(def, ns, name, &opts)?;
            Ok(json_response(200, present::object(def, &obj, Shape::Full)))
        }
        _ => Err(ApiError::method_not_allowed(ctx.method.as_str())),
    }
}

/// The stored CRD before a write to it (for format-warning ratcheting).
fn crd_before(ctx: &Ctx<'_>, def: &ResourceDef, ns: Option<&str>, name: &str) -> Option<Value> {
    if !def.is("apiextensions.k8s.io", "customresourcedefinitions") {
        return None;
    }
    ctx.shared.lock().get(def, ns, name).ok().map(|o| o.value())
}

/// `status`, `resize` or `finalize`: reads show the whole object, writes change only that part.
fn part_sub(
    ctx: &Ctx<'_>,
    def: &ResourceDef,
    ns: Option<&str>,
    name: &str,
    part: Part,
) -> Result<Response, ApiError> {
    let obj = match *ctx.method {
        Method::GET => ctx.shared.lock().get(def, ns, name)?.value(),
        Method::PUT => {
            let body = ctx.object_body(def)?;
            ctx.shared
                .lock()
                .update(def, ns, name, body, part, ctx.write_opts())?
        }
        Method::PATCH => {
            let (kind, body) = patch_input(ctx, def)?;
            if kind == PatchType::Apply && ctx.shared.lock().get(def, ns, name).is_err() {
                return Err(ApiError::not_found(&def.group, &def.plural, name));
            }
            ctx.shared
                .lock()
                .patch(def, ns, name, kind, &body, part, ctx.write_opts())?
                .0
        }
        _ => return Err(ApiError::method_not_allowed(ctx.method.as_str())),
    };
    Ok(json_response(200, present::object(def, &obj, Shape::Full)))
}

fn scale_sub(
    ctx: &Ctx<'_>,
    def: &ResourceDef,
    ns: Option<&str>,
    name: &str,
) -> Result<Response, ApiError> {
    let scale = match *ctx.method {
        Method::GET => {
            let obj = ctx.shared.lock().get(def, ns, name)?.value();
            scale::to_scale(def, &obj)
        }
        Method::PUT => {
            let body = ctx.body_as(&Expected {
                api_version: "autoscaling/v1".into(),
                kind: "Scale".into(),
                builtin: def.is_builtin_type(),
            })?;
            scale::write_scale(
                &mut ctx.shared.lock(),
                def,
                ns,
                name,
                ScaleWrite::Replace(&body),
                ctx.write_opts(),
            )?
        }
        Method::PATCH => {
            let (kind, body) = patch_input(ctx, def)?;
            scale::write_scale(
                &mut ctx.shared.lock(),
                def,
                ns,
                name,
                ScaleWrite::Patch(kind, &body),
                ctx.write_opts(),
            )?
        }
        _ => return Err(ApiError::method_not_allowed(ctx.method.as_str())),
    };
    Ok(value_response(200, &scale))
}

fn eviction_sub(ctx: &Ctx<'_>, ns: Option<&str>, name: &str) -> Result<Response, ApiError> {
    if *ctx.method != Method::POST {
        return Err(ApiError::method_not_allowed(ctx.method.as_str()));
    }
    let body = ctx.body_as(&Expected {
        api_version: "policy/v1".into(),
        kind: "Eviction".into(),
        builtin: true,
    })?;
    let ns = ns.ok_or_else(ApiError::no_route)?;
    let mut st = ctx.shared.lock();
    // `pods/eviction` is a create of an Eviction, as admission sees it
    if let Some(pods) = st.registry.find("", "v1", "pods").cloned() {
        let mut eviction = body.clone();
        if let Some(m) = eviction.as_object_mut() {
            m.entry("apiVersion").or_insert_with(|| "policy/v1".into());
            m.entry("kind").or_insert_with(|| "Eviction".into());
        }
        super::object::set_meta(&mut eviction, "namespace", ns.into());
        if super::object::name(&eviction).is_none_or(str::is_empty) {
            super::object::set_meta(&mut eviction, "name", name.into());
        }
        st.admit_policies(
            &Attributes {
                def: &pods,
                subresource: "eviction",
                kind: ("policy", "v1", "Eviction"),
                operation: Operation::Create,
                namespace: ns,
                name,
                object: &eviction,
                old: None,
                dry_run: ctx.params.dry_run(),
            },
            ctx.requester(),
        )?;
    }
    eviction::evict(&mut st, ns, name, &body, ctx.params.dry_run())?;
    Ok(value_response(201, &success_status(201)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(g: &str, v: &str, ns: Option<&str>, p: &str, n: Option<&str>, s: Option<&str>) -> Route {
        Route::Object(ObjectPath {
            group: g.into(),
            version: v.into(),
            namespace: ns.map(Into::into),
            plural: p.into(),
            name: n.map(Into::into),
            sub: s.map(Into::into),
        })
    }

    #[test]
    fn paths_parse_like_the_api_server() {
        assert_eq!(parse_route("/api"), Route::CoreVersions);
        assert_eq!(
            parse_route("/api/v1"),
            Route::Resources("".into(), "v1".into())
        );
        assert_eq!(parse_route("/apis/apps"), Route::Group("apps".into()));
        assert_eq!(
            parse_route("/api/v1/pods"),
            obj("", "v1", None, "pods", None, None)
        );
        assert_eq!(
            parse_route("/api/v1/namespaces/a/pods/p/eviction"),
            obj("", "v1", Some("a"), "pods", Some("p"), Some("eviction"))
        );
        assert_eq!(
            parse_route("/api/v1/namespaces/a"),
            obj("", "v1", None, "namespaces", Some("a"), None)
        );
        assert_eq!(
            parse_route("/api/v1/namespaces/a/status"),
            obj("", "v1", None, "namespaces", Some("a"), Some("status"))
        );
        assert_eq!(
            parse_route("/apis/apps/v1/namespaces/a/deployments/d/scale"),
            obj(
                "apps",
                "v1",
                Some("a"),
                "deployments",
                Some("d"),
                Some("scale")
            )
        );
        assert_eq!(parse_route("/api/v1/a/b/c/d"), Route::Unknown);
    }
}
