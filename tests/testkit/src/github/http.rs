//! The HTTP face of the GitHub emulation: one axum fallback handler that
//! applies injected faults, authenticates, routes GitHub REST paths onto the
//! store, adds GitHub's headers (rate limits, ETags, Link, Location) and
//! logs the exchange. Holds no state of its own.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Query, Request, State as AxumState};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use jiff::Timestamp;
use serde_json::{Value, json};

use super::Shared;
use super::auth;
use super::error::ApiError;
use super::faults::{Fault, RequestRecord};
use super::git::{self, Commit, Flat, Leaf, MODE_TREE, Signature, TreeEntry};
use super::render::{self, Urls};
use super::sha1;
use super::store::{
    Identity, MergeRequest, NewPull, PullUpdate, RateWindow, Repo, State, default_permissions, now,
    signature_of, valid_ref,
};

const MAX_BODY: usize = 32 * 1024 * 1024;
const API_VERSION: &str = "2022-11-28";

/// The emulation's router.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .fallback(handle)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(shared)
}

/// An answer before GitHub's common headers are added.
#[derive(Debug)]
struct Reply {
    status: u16,
    body: Option<Value>,
    raw: Option<(Vec<u8>, &'static str)>,
    headers: Vec<(String, String)>,
}

impl Reply {
    fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            body: Some(body),
            raw: None,
            headers: Vec::new(),
        }
    }

    fn empty(status: u16) -> Reply {
        Reply {
            status,
            body: None,
            raw: None,
            headers: Vec::new(),
        }
    }

    /// 201 with `v`, located at its `url`.
    fn created(v: Value) -> Reply {
        let location = v["url"].as_str().unwrap_or_default().to_string();
        Reply::json(201, v).header("location", location)
    }

    fn header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    fn error(e: &ApiError) -> Reply {
        let mut r = Reply::json(e.status, e.body());
        r.headers.extend(e.headers.iter().cloned());
        r
    }
}

type Result<T> = std::result::Result<T, ApiError>;

/// Query parameters (decoded).
#[derive(Debug, Default)]
struct Params(Vec<(String, String)>);

impl Params {
    fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }

    fn has(&self, k: &str) -> bool {
        self.0.iter().any(|(key, _)| key == k)
    }

    fn number(&self, k: &str, default: u64, max: u64) -> Result<u64> {
        match self.get(k).filter(|v| !v.is_empty()) {
            None => Ok(default),
            Some(v) => v
                .parse::<u64>()
                .map(|n| n.clamp(1, max))
                .map_err(|_| ApiError::invalid(format!("For '{k}', \"{v}\" is not an integer."))),
        }
    }
}

/// Everything a handler may look at.
struct Req<'a> {
    shared: &'a Shared,
    method: &'a Method,
    path: &'a str,
    params: &'a Params,
    headers: &'a HeaderMap,
    body: &'a [u8],
}

impl Req<'_> {
    fn urls(&self) -> &Urls {
        &self.shared.urls
    }

    /// The body as JSON (`{}` when empty); 400 when malformed.
    fn json(&self) -> Result<Value> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(json!({}));
        }
        serde_json::from_slice(self.body).map_err(|_| ApiError::bad_json())
    }

    /// The body as a JSON object.
    fn object(&self) -> Result<Value> {
        let v = self.json()?;
        if v.is_object() {
            Ok(v)
        } else {
            Err(ApiError::bad_json())
        }
    }
}

fn type_error(k: &str, v: &Value, what: &str) -> ApiError {
    ApiError::invalid(format!("For 'properties/{k}', {v} is not {what}."))
}

/// An optional string field (null counts as absent).
fn opt_str(b: &Value, k: &str) -> Result<Option<String>> {
    match b.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(type_error(k, v, "a string")),
    }
}

/// A required string field.
fn req_str(b: &Value, k: &str) -> Result<String> {
    opt_str(b, k)?.ok_or_else(|| ApiError::missing(k))
}

fn opt_bool(b: &Value, k: &str) -> Result<Option<bool>> {
    match b.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(x)) => Ok(Some(*x)),
        Some(v) => Err(type_error(k, v, "a boolean")),
    }
}

/// An optional array of strings.
fn opt_strings(b: &Value, k: &str) -> Result<Option<Vec<String>>> {
    match b.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| type_error(k, x, "a string"))
            })
            .collect::<Result<Vec<_>>>()
            .map(Some),
        Some(v) => Err(type_error(k, v, "an array")),
    }
}

/// Percent-decode a path tail (`%2F` included); invalid escapes stay as they are.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (
                (b[i + 1] as char).to_digit(16),
                (b[i + 2] as char).to_digit(16),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A parsed request path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    RateLimit,
    AccessTokens(String),
    /// `/_raw/{owner}/{repo}/{commit}/{path}`: file bytes behind `download_url`.
    Raw {
        repo: String,
        commit: String,
        path: String,
    },
    Repo {
        repo: String,
        rest: Vec<String>,
    },
    Unknown,
}

fn parse_route(path: &str) -> Route {
    let mut segs: Vec<&str> = path.split('/').skip(1).collect();
    while segs.len() > 1 && segs.last() == Some(&"") {
        segs.pop();
    }
    match segs.as_slice() {
        ["rate_limit"] => Route::RateLimit,
        ["app", "installations", id, "access_tokens"] => Route::AccessTokens(id.to_string()),
        ["_raw", owner, name, commit, rest @ ..] if !rest.is_empty() => Route::Raw {
            repo: format!("{owner}/{name}"),
            commit: commit.to_string(),
            path: percent_decode(&rest.join("/")),
        },
        ["repos", owner, name, rest @ ..] if !owner.is_empty() && !name.is_empty() => Route::Repo {
            repo: format!("{}/{}", percent_decode(owner), percent_decode(name)),
            rest: rest.iter().map(|s| s.to_string()).collect(),
        },
        _ => Route::Unknown,
    }
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Who the `Authorization` header says the caller is.
fn authenticate(shared: &Shared, st: &mut State, headers: &HeaderMap) -> Result<Identity> {
    let Some(value) = header_str(headers, "authorization") else {
        return Ok(Identity::Anonymous);
    };
    let value = value.trim();
    let credential = value
        .split_once(' ')
        .filter(|(scheme, _)| {
            scheme.eq_ignore_ascii_case("token") || scheme.eq_ignore_ascii_case("bearer")
        })
        .map(|(_, c)| c.trim())
        .ok_or_else(ApiError::bad_credentials)?;
    let t = Timestamp::now();
    if let Some(tok) = st.tokens.get(credential) {
        if tok.expires_at <= t {
            return Err(ApiError::bad_credentials());
        }
        return Ok(Identity::Installation {
            id: tok.installation_id,
            repos: tok.repos.clone(),
        });
    }
    if shared.options.pats.iter().any(|p| p == credential) {
        return Ok(Identity::Pat {
            login: shared.options.pat_login.clone(),
        });
    }
    if credential.split('.').count() == 3 && value.to_ascii_lowercase().starts_with("bearer ") {
        let key = shared
            .app_key
            .as_ref()
            .ok_or_else(|| ApiError::new(401, "A JSON web token could not be decoded"))?;
        auth::verify_app_jwt(credential, key, shared.options.app_id, t.as_second())?;
        return Ok(Identity::App);
    }
    Err(ApiError::bad_credentials())
}

/// The login an identity acts as.
fn login_of(shared: &Shared, id: &Identity) -> Option<String> {
    match id {
        Identity::Anonymous => None,
        Identity::App => Some(format!("app:{}", shared.options.app_id)),
        Identity::Installation { .. } => Some(format!("{}[bot]", shared.options.app_slug)),
        Identity::Pat { login } => Some(login.clone()),
    }
}

/// The rate-limit subject and limit of an identity.
fn rate_subject(shared: &Shared, id: &Identity) -> (String, u64) {
    match id {
        Identity::Anonymous => ("anonymous".into(), 60),
        Identity::App => ("app".into(), shared.options.rate_limit),
        Identity::Installation { id, .. } => {
            (format!("installation:{id}"), shared.options.rate_limit)
        }
        Identity::Pat { login } => (format!("user:{login}"), shared.options.rate_limit),
    }
}

fn rate_headers(w: &RateWindow) -> Vec<(String, String)> {
    vec![
        ("x-ratelimit-limit".into(), w.limit.to_string()),
        ("x-ratelimit-remaining".into(), w.remaining().to_string()),
        ("x-ratelimit-reset".into(), w.reset.to_string()),
        ("x-ratelimit-used".into(), w.used.to_string()),
        ("x-ratelimit-resource".into(), "core".into()),
    ]
}

/// Strong or weak, quoted or not: the opaque part of an entity tag.
fn etag_core(tag: &str) -> &str {
    tag.trim().trim_start_matches("W/").trim_matches('"')
}

async fn handle(AxumState(shared): AxumState<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let method = parts.method.clone();
    let path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    let params = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
        .map(|q| Params(q.0))
        .unwrap_or_default();
    let fault = shared.faults.decide(method.as_str(), &path, &raw_query);
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => Bytes::new(),
    };
    let r = Req {
        shared: &shared,
        method: &method,
        path: &path,
        params: &params,
        headers: &parts.headers,
        body: &bytes,
    };
    let (reply, who) = match fault {
        Some(f) => serve_fault(&r, f),
        None => serve(&r),
    };
    let faulted = reply.1;
    let response = finish(&shared, &method, reply.0);
    let status = response.status().as_u16();
    if shared.options.log_requests {
        let q = if raw_query.is_empty() {
            String::new()
        } else {
            format!("?{raw_query}")
        };
        eprintln!(
            "{method} {path}{q} -> {status} [{}]",
            who.as_deref().unwrap_or("anonymous")
        );
    }
    shared.faults.log.record(RequestRecord {
        method: method.to_string(),
        path,
        status,
        mutating: matches!(
            method,
            Method::POST | Method::PUT | Method::PATCH | Method::DELETE
        ),
        faulted,
        auth: who,
        user_agents: parts
            .headers
            .get_all(axum::http::header::USER_AGENT)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect(),
    });
    response
}

/// An injected answer, with the caller's rate-limit headers unless the fault sets its own.
fn serve_fault(r: &Req, f: Fault) -> ((Reply, bool), Option<String>) {
    let mut st = r.shared.lock();
    let id = authenticate(r.shared, &mut st, r.headers).unwrap_or(Identity::Anonymous);
    let (subject, limit) = rate_subject(r.shared, &id);
    let w = *st.window(&subject, limit, Timestamp::now().as_second());
    let mut reply = match f.body {
        Some(b) => Reply::json(f.status, b),
        None => Reply::empty(f.status),
    };
    reply.headers = rate_headers(&w);
    for (name, value) in f.headers {
        reply
            .headers
            .retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
        reply.headers.push((name, value));
    }
    ((reply, true), login_of(r.shared, &id))
}

fn serve(r: &Req) -> ((Reply, bool), Option<String>) {
    let route = parse_route(r.path);
    if route == Route::Unknown {
        return ((Reply::error(&ApiError::not_found()), false), None);
    }
    if let Route::Raw { repo, commit, path } = &route {
        let st = r.shared.lock();
        let file = st
            .repo(repo)
            .ok()
            .and_then(|rp| rp.file_at(commit, path).map(|(_, d)| d));
        let reply = match file {
            Some(data) if *r.method == Method::GET => Reply {
                raw: Some((data, "text/plain; charset=utf-8")),
                ..Reply::empty(200)
            },
            _ => Reply::error(&ApiError::not_found()),
        };
        return ((reply, false), None);
    }
    let mut st = r.shared.lock();
    let identity = match authenticate(r.shared, &mut st, r.headers) {
        Ok(i) => i,
        Err(e) => return ((Reply::error(&e), false), None),
    };
    let who = login_of(r.shared, &identity);
    let now_secs = Timestamp::now().as_second();
    let (subject, limit) = rate_subject(r.shared, &identity);
    let counted = route != Route::RateLimit;
    let exhausted = st.window(&subject, limit, now_secs).remaining() == 0;
    let mut reply = if counted && exhausted {
        let w = *st.window(&subject, limit, now_secs);
        Reply::error(
            &ApiError::new(
                403,
                format!("API rate limit exceeded for {}.", who.as_deref().unwrap_or("this client")),
            )
            .doc("https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-the-primary-rate-limit"),
        )
        .header("x-ratelimit-reset", w.reset.to_string())
    } else {
        match dispatch(r, &mut st, &identity, &route) {
            Ok(reply) => reply,
            Err(e) => Reply::error(&e),
        }
    };
    // Conditional requests: an unchanged GET answers 304 and is not counted.
    let mut not_modified = false;
    if *r.method == Method::GET
        && reply.status == 200
        && let Some(body) = &reply.body
    {
        let tag = format!("W/\"{}\"", sha1::hex_digest(body.to_string().as_bytes()));
        if let Some(inm) = header_str(r.headers, "if-none-match")
            && inm
                .split(',')
                .any(|t| t.trim() == "*" || etag_core(t) == etag_core(&tag))
        {
            reply = Reply::empty(304);
            not_modified = true;
        }
        reply.headers.push(("etag".into(), tag));
        reply.headers.push((
            "cache-control".into(),
            "private, max-age=60, s-maxage=60".into(),
        ));
    }
    let w = st.window(&subject, limit, now_secs);
    if counted && !not_modified && !(exhausted && reply.status == 403) {
        w.used += 1;
    }
    let w = *w;
    let mut headers = rate_headers(&w);
    headers.retain(|(n, _)| !reply.headers.iter().any(|(m, _)| m == n));
    reply.headers.extend(headers);
    ((reply, false), who)
}

/// Add GitHub's common headers and build the HTTP response.
fn finish(shared: &Shared, method: &Method, reply: Reply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (body, ctype) = match (reply.raw, reply.body) {
        (Some((raw, ctype)), _) => (Body::from(raw), Some(ctype)),
        (None, Some(v)) if *method != Method::HEAD => (
            Body::from(serde_json::to_vec(&v).unwrap_or_default()),
            Some("application/json; charset=utf-8"),
        ),
        _ => (Body::empty(), None),
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    if let Some(ct) = ctype {
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    h.insert(
        "x-github-api-version-selected",
        HeaderValue::from_static(API_VERSION),
    );
    h.insert(
        "x-github-media-type",
        HeaderValue::from_static("github.v3; format=json"),
    );
    let n = shared.request_seq.fetch_add(1, Ordering::Relaxed);
    if let Ok(v) = HeaderValue::from_str(&format!("E1A8:{n:X}:{:X}", std::process::id())) {
        h.insert("x-github-request-id", v);
    }
    for (name, value) in reply.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            h.insert(n, v);
        }
    }
    resp
}

fn require_app(identity: &Identity) -> Result<()> {
    match identity {
        Identity::App => Ok(()),
        _ => Err(ApiError::new(401, "A JSON web token could not be decoded")),
    }
}

fn dispatch(r: &Req, st: &mut State, identity: &Identity, route: &Route) -> Result<Reply> {
    let m = r.method;
    match route {
        Route::RateLimit => {
            let (subject, limit) = rate_subject(r.shared, identity);
            let w = *st.window(&subject, limit, Timestamp::now().as_second());
            match *m {
                Method::GET => Ok(Reply::json(200, render::rate_limit(&w))),
                _ => Err(ApiError::not_found()),
            }
        }
        Route::AccessTokens(id) if *m == Method::POST => {
            require_app(identity)?;
            let id = installation_id(r, st, id)?;
            access_token(r, st, id)
        }
        Route::Repo { repo, rest } => {
            let segs: Vec<&str> = rest.iter().map(String::as_str).collect();
            if segs.as_slice() == ["installation"] {
                if *m != Method::GET {
                    return Err(ApiError::not_found());
                }
                require_app(identity)?;
                let rp = st.repo(repo)?;
                let (iid, owner, created) = (rp.installation_id, rp.owner.clone(), rp.created_at);
                let o = &r.shared.options;
                return Ok(Reply::json(
                    200,
                    render::installation(r.urls(), iid, o.app_id, &o.app_slug, &owner, created),
                ));
            }
            match identity {
                Identity::Anonymous => {
                    return Err(ApiError::new(401, "Requires authentication"));
                }
                Identity::App => return Err(ApiError::bad_credentials()),
                _ => {}
            }
            let rp = st.repo(repo)?;
            if !State::can_access(identity, rp) {
                return Err(ApiError::not_found());
            }
            repo_route(r, st, identity, repo, &segs)
        }
        _ => Err(ApiError::not_found()),
    }
}

fn installation_id(r: &Req, st: &State, raw: &str) -> Result<u64> {
    let id: u64 = raw.parse().map_err(|_| ApiError::not_found())?;
    if st
        .installations(r.shared.options.default_installation_id)
        .contains(&id)
    {
        Ok(id)
    } else {
        Err(ApiError::not_found())
    }
}

fn access_token(r: &Req, st: &mut State, installation: u64) -> Result<Reply> {
    let b = r.object()?;
    let names = opt_strings(&b, "repositories")?;
    let ids: Option<Vec<u64>> = match b.get("repository_ids") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(|x| {
                    x.as_u64()
                        .ok_or_else(|| type_error("repository_ids", x, "an integer"))
                })
                .collect::<Result<Vec<_>>>()?,
        ),
        Some(v) => return Err(type_error("repository_ids", v, "an array")),
    };
    let permissions = match b.get("permissions") {
        None | Some(Value::Null) => default_permissions(),
        Some(p @ Value::Object(_)) => p.clone(),
        Some(v) => return Err(type_error("permissions", v, "an object")),
    };
    let mut selected: Option<BTreeSet<String>> = None;
    let mut rendered = Vec::new();
    if names.is_some() || ids.is_some() {
        let inaccessible = || {
            ApiError::unprocessable(
                "There is at least one repository that does not exist or is not accessible to the parent installation.",
            )
        };
        let mut set = BTreeSet::new();
        let mut chosen: Vec<&Repo> = Vec::new();
        let in_installation = || st.repos().filter(|rp| rp.installation_id == installation);
        for name in names.iter().flatten() {
            let rp = in_installation()
                .find(|rp| rp.name.eq_ignore_ascii_case(name))
                .ok_or_else(inaccessible)?;
            chosen.push(rp);
        }
        for id in ids.iter().flatten() {
            let rp = in_installation()
                .find(|rp| rp.id == *id)
                .ok_or_else(inaccessible)?;
            chosen.push(rp);
        }
        for rp in chosen {
            if set.insert(rp.name.to_ascii_lowercase()) {
                rendered.push(render::repository(r.urls(), rp));
            }
        }
        selected = Some(set);
    }
    st.tokens_issued += 1;
    let seed = format!(
        "{installation}:{}:{}:{}",
        st.tokens_issued,
        Timestamp::now().as_nanosecond(),
        std::process::id()
    );
    let lifetime = r.shared.options.token_lifetime;
    let (token, expires_at) = st.issue_token(&seed, lifetime, installation, selected.clone());
    let repos = selected.map(|_| rendered);
    Ok(Reply::json(
        201,
        render::installation_token(&token, expires_at, &permissions, repos),
    ))
}

/// The signature commits made by `identity` carry.
fn signature(r: &Req, identity: &Identity) -> Signature {
    signature_of(&acting_login(r, identity), now())
}

fn acting_login(r: &Req, identity: &Identity) -> String {
    login_of(r.shared, identity).unwrap_or_else(|| "ghost".into())
}

fn pull_number(s: &str) -> Result<u64> {
    s.parse().map_err(|_| ApiError::not_found())
}

fn repo_route(
    r: &Req,
    st: &mut State,
    identity: &Identity,
    repo: &str,
    segs: &[&str],
) -> Result<Reply> {
    let m = r.method.clone();
    let tail = |n: usize| percent_decode(&segs[n..].join("/"));
    match (m, segs) {
        (Method::GET, []) => {
            let rp = st.repo(repo)?;
            Ok(Reply::json(200, render::full_repository(r.urls(), rp)))
        }
        (Method::GET, ["git", "ref", _, ..]) => get_ref(r, st.repo(repo)?, &tail(2)),
        (Method::GET, ["git", "matching-refs", ..]) => matching_refs(r, st.repo(repo)?, &tail(2)),
        (Method::GET, ["git", "refs", _, ..]) => get_ref(r, st.repo(repo)?, &tail(2)),
        (Method::POST, ["git", "refs"]) => create_ref(r, st.repo_mut(repo)?),
        (Method::PATCH, ["git", "refs", _, ..]) => update_ref(r, st.repo_mut(repo)?, &tail(2)),
        (Method::DELETE, ["git", "refs", _, ..]) => {
            st.repo_mut(repo)?
                .delete_ref(&format!("refs/{}", tail(2)))?;
            Ok(Reply::empty(204))
        }
        (Method::GET, ["git", "trees", _, ..]) => get_tree(r, st.repo(repo)?, &tail(2)),
        (Method::POST, ["git", "trees"]) => create_tree(r, st.repo_mut(repo)?),
        (Method::POST, ["git", "blobs"]) => create_blob(r, st.repo_mut(repo)?),
        (Method::GET, ["git", "blobs", sha]) => {
            let rp = st.repo(repo)?;
            let data = rp.odb.blob(sha).ok_or_else(ApiError::not_found)?;
            Ok(Reply::json(200, render::blob(r.urls(), rp, sha, data)))
        }
        (Method::POST, ["git", "commits"]) => {
            let sig = signature(r, identity);
            create_commit(r, st.repo_mut(repo)?, sig)
        }
        (Method::GET, ["git", "commits", sha]) => {
            let rp = st.repo(repo)?;
            let c = rp.odb.commit(sha).ok_or_else(ApiError::not_found)?;
            Ok(Reply::json(200, render::git_commit(r.urls(), rp, sha, c)))
        }
        (Method::GET, ["contents", ..]) => get_contents(r, st.repo(repo)?, &tail(1)),
        (Method::PUT, ["contents", _, ..]) => {
            let sig = signature(r, identity);
            put_contents(r, st.repo_mut(repo)?, &tail(1), sig)
        }
        (Method::GET, ["pulls"]) => list_pulls(r, st.repo(repo)?),
        (Method::POST, ["pulls"]) => {
            let id = st.next_id();
            create_pull(r, st.repo_mut(repo)?, &acting_login(r, identity), id)
        }
        (Method::GET, ["pulls", n]) => {
            let rp = st.repo(repo)?;
            let p = rp.pull(pull_number(n)?)?;
            Ok(Reply::json(200, render::pull(r.urls(), rp, p, true)))
        }
        (Method::PATCH, ["pulls", n]) => update_pull(r, st.repo_mut(repo)?, pull_number(n)?),
        (Method::GET, ["pulls", n, "merge"]) => {
            let rp = st.repo(repo)?;
            if rp.pull(pull_number(n)?)?.merged {
                Ok(Reply::empty(204))
            } else {
                Err(ApiError::not_found())
            }
        }
        (Method::PUT, ["pulls", n, "merge"]) => {
            let b = r.object()?;
            let req = MergeRequest {
                commit_title: opt_str(&b, "commit_title")?,
                commit_message: opt_str(&b, "commit_message")?,
                sha: opt_str(&b, "sha")?,
                method: opt_str(&b, "merge_method")?,
            };
            let login = acting_login(r, identity);
            let sha = st
                .repo_mut(repo)?
                .merge_pull(pull_number(n)?, &login, req)?;
            Ok(Reply::json(
                200,
                json!({"sha": sha, "merged": true, "message": "Pull Request successfully merged"}),
            ))
        }
        (Method::POST, ["pulls", n, "requested_reviewers"]) => {
            request_reviewers(r, st.repo_mut(repo)?, pull_number(n)?)
        }
        (Method::GET, ["labels", name]) => {
            let rp = st.repo(repo)?;
            let l = rp
                .label(&percent_decode(name))
                .ok_or_else(ApiError::not_found)?;
            Ok(Reply::json(200, render::label(r.urls(), rp, l)))
        }
        (Method::POST, ["labels"]) => {
            let b = r.object()?;
            let name = req_str(&b, "name")?;
            let color = opt_str(&b, "color")?;
            let description = opt_str(&b, "description")?;
            let id = st.next_id();
            let rp = st.repo_mut(repo)?;
            let l = rp.create_label(&name, color.as_deref(), description.as_deref(), id)?;
            let rp = st.repo(repo)?;
            Ok(Reply::created(render::label(r.urls(), rp, &l)))
        }
        (Method::POST, ["issues", n, "labels"]) => add_labels(r, st, repo, pull_number(n)?),
        (Method::POST, ["issues", n, "comments"]) => {
            let b = r.object()?;
            let body = req_str(&b, "body")?;
            let id = st.next_id();
            let login = acting_login(r, identity);
            let rp = st.repo_mut(repo)?;
            let number = pull_number(n)?;
            let t = now();
            let p = rp.pull_mut(number)?;
            p.comments.push(super::store::Comment {
                id,
                body,
                user: login,
                created_at: t,
                updated_at: t,
            });
            p.updated_at = t;
            let rp = st.repo(repo)?;
            let p = rp.pull(number)?;
            let c = p.comments.last().ok_or_else(ApiError::not_found)?;
            Ok(Reply::created(render::comment(r.urls(), rp, number, c)))
        }
        (Method::POST, ["issues", n, "assignees"]) => {
            let b = r.object()?;
            let add = opt_strings(&b, "assignees")?.unwrap_or_default();
            let rp = st.repo_mut(repo)?;
            let number = pull_number(n)?;
            let p = rp.pull_mut(number)?;
            for a in add {
                if !p.assignees.iter().any(|x| x.eq_ignore_ascii_case(&a)) && p.assignees.len() < 10
                {
                    p.assignees.push(a);
                }
            }
            p.updated_at = now();
            let rp = st.repo(repo)?;
            Ok(Reply::json(
                201,
                render::issue(r.urls(), rp, rp.pull(number)?),
            ))
        }
        _ => Err(ApiError::not_found()),
    }
}

fn empty_repo() -> ApiError {
    ApiError::new(409, "Git Repository is empty.")
}

fn get_ref(r: &Req, rp: &Repo, reference: &str) -> Result<Reply> {
    if rp.refs.is_empty() {
        return Err(empty_repo());
    }
    let full = format!("refs/{reference}");
    let sha = rp.refs.get(&full).ok_or_else(|| {
        ApiError::not_found().doc("https://docs.github.com/rest/git/refs#get-a-reference")
    })?;
    Ok(Reply::json(200, render::git_ref(r.urls(), rp, &full, sha)))
}

fn matching_refs(r: &Req, rp: &Repo, prefix: &str) -> Result<Reply> {
    let prefix = format!("refs/{prefix}");
    let list: Vec<Value> = rp
        .refs
        .iter()
        .filter(|(name, _)| name.starts_with(&prefix))
        .map(|(name, sha)| render::git_ref(r.urls(), rp, name, sha))
        .collect();
    Ok(Reply::json(200, Value::Array(list)))
}

fn create_ref(r: &Req, rp: &mut Repo) -> Result<Reply> {
    let b = r.object()?;
    let name = req_str(&b, "ref")?;
    let sha = req_str(&b, "sha")?;
    if !valid_ref(&name) {
        return Err(
            ApiError::unprocessable(format!("{name} is not a valid ref name."))
                .doc("https://docs.github.com/rest/git/refs#create-a-reference"),
        );
    }
    if rp.refs.contains_key(&name) {
        return Err(ApiError::unprocessable("Reference already exists")
            .doc("https://docs.github.com/rest/git/refs#create-a-reference"));
    }
    if rp.odb.commit(&sha).is_none() {
        return Err(ApiError::unprocessable("Object does not exist")
            .doc("https://docs.github.com/rest/git/refs#create-a-reference"));
    }
    rp.set_ref(&name, &sha);
    Ok(Reply::created(render::git_ref(r.urls(), rp, &name, &sha)))
}

fn update_ref(r: &Req, rp: &mut Repo, reference: &str) -> Result<Reply> {
    let b = r.object()?;
    let sha = req_str(&b, "sha")?;
    let force = opt_bool(&b, "force")?.unwrap_or(false);
    let full = format!("refs/{reference}");
    let doc = "https://docs.github.com/rest/git/refs#update-a-reference";
    let Some(old) = rp.refs.get(&full).cloned() else {
        return Err(ApiError::unprocessable("Reference does not exist").doc(doc));
    };
    if rp.odb.commit(&sha).is_none() {
        return Err(ApiError::unprocessable("Object does not exist").doc(doc));
    }
    if !force && !rp.odb.is_ancestor(&old, &sha) {
        return Err(ApiError::unprocessable("Update is not a fast forward").doc(doc));
    }
    rp.set_ref(&full, &sha);
    Ok(Reply::json(200, render::git_ref(r.urls(), rp, &full, &sha)))
}

fn get_tree(r: &Req, rp: &Repo, what: &str) -> Result<Reply> {
    let tree = if rp.odb.tree(what).is_some() {
        what.to_string()
    } else {
        rp.resolve_commit(what)
            .and_then(|c| rp.odb.commit_tree(&c))
            .ok_or_else(|| {
                if rp.refs.is_empty() {
                    empty_repo()
                } else {
                    ApiError::not_found()
                }
            })?
    };
    let entries = rp.odb.list(&tree, r.params.has("recursive"));
    Ok(Reply::json(
        200,
        render::tree(r.urls(), rp, &tree, &entries),
    ))
}

const MODES: [&str; 5] = ["100644", "100755", MODE_TREE, "160000", "120000"];

fn create_tree(r: &Req, rp: &mut Repo) -> Result<Reply> {
    let b = r.object()?;
    let items = match b.get("tree") {
        Some(Value::Array(items)) => items.clone(),
        None | Some(Value::Null) => return Err(ApiError::missing("tree")),
        Some(v) => return Err(type_error("tree", v, "an array")),
    };
    let mut flat: Flat = match opt_str(&b, "base_tree")? {
        None => Flat::new(),
        Some(base) => {
            let tree = if rp.odb.tree(&base).is_some() {
                base
            } else {
                rp.odb.commit_tree(&base).ok_or_else(|| {
                    ApiError::unprocessable(format!("base_tree {base} is not a valid tree oid"))
                })?
            };
            rp.odb.flatten(&tree)
        }
    };
    for (i, item) in items.iter().enumerate() {
        if !item.is_object() {
            return Err(type_error(&format!("tree/{i}"), item, "an object"));
        }
        let path = req_str(item, "path")?;
        let mode = req_str(item, "mode")?;
        let kind = req_str(item, "type")?;
        if !MODES.contains(&mode.as_str()) {
            return Err(ApiError::invalid(format!(
                "For 'items/mode', \"{mode}\" is not one of [\"100644\", \"100755\", \"040000\", \"160000\", \"120000\"]."
            )));
        }
        if !["blob", "tree", "commit"].contains(&kind.as_str()) || git::kind_of_mode(&mode) != kind
        {
            return Err(ApiError::unprocessable(format!(
                "GitRPC::BadObjectState: tree entry {path} has type {kind} and mode {mode}"
            )));
        }
        if !git::valid_path(&path) {
            return Err(ApiError::unprocessable(format!(
                "tree.path contains a malformed path component: {path}"
            )));
        }
        let content = opt_str(item, "content")?;
        let sha = match item.get("sha") {
            Some(Value::Null) => {
                if content.is_some() {
                    return Err(both_sha_and_content());
                }
                git::remove(&mut flat, &path);
                continue;
            }
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(v) => return Err(type_error("sha", v, "a string")),
        };
        match (sha, content) {
            (Some(_), Some(_)) | (None, None) => return Err(both_sha_and_content()),
            (None, Some(text)) => {
                if kind != "blob" {
                    return Err(ApiError::unprocessable("tree.content requires type blob"));
                }
                let sha = rp.odb.put_blob(text.into_bytes());
                git::place(&mut flat, &path, Leaf { mode, sha });
            }
            (Some(sha), None) => match kind.as_str() {
                "blob" if rp.odb.blob(&sha).is_some() => {
                    git::place(&mut flat, &path, Leaf { mode, sha })
                }
                "tree" if rp.odb.tree(&sha).is_some() => {
                    git::remove(&mut flat, &path);
                    for (sub, leaf) in rp.odb.flatten(&sha) {
                        git::place(&mut flat, &format!("{path}/{sub}"), leaf);
                    }
                }
                "commit" if sha1::unhex(&sha).is_some() => {
                    git::place(&mut flat, &path, Leaf { mode, sha })
                }
                _ => {
                    return Err(ApiError::unprocessable(format!(
                        "tree.sha {sha} is not a valid {kind}"
                    )));
                }
            },
        }
    }
    let tree = rp.odb.build(&flat);
    let entries = rp.odb.list(&tree, false);
    Ok(Reply::created(render::tree(r.urls(), rp, &tree, &entries)))
}

fn both_sha_and_content() -> ApiError {
    ApiError::unprocessable(
        "Must supply either tree.sha or tree.content. Request will be rejected if both are present.",
    )
}

fn create_blob(r: &Req, rp: &mut Repo) -> Result<Reply> {
    let b = r.object()?;
    let content = req_str(&b, "content")?;
    let encoding = opt_str(&b, "encoding")?.unwrap_or_else(|| "utf-8".into());
    let data = match encoding.to_ascii_lowercase().as_str() {
        "utf-8" | "utf8" => content.into_bytes(),
        "base64" => render::decode_base64(&content)
            .ok_or_else(|| ApiError::unprocessable("content is not valid Base64"))?,
        other => {
            return Err(ApiError::unprocessable(format!(
                "encoding must be utf-8 or base64, not {other}"
            )));
        }
    };
    let sha = rp.odb.put_blob(data);
    Ok(Reply::created(render::short_blob(r.urls(), rp, &sha)))
}

/// `{name, email, date?}` of a commit body.
fn person(b: &Value, k: &str, default: &Signature) -> Result<Signature> {
    match b.get(k) {
        None | Some(Value::Null) => Ok(default.clone()),
        Some(p @ Value::Object(_)) => {
            let date = match opt_str(p, "date")? {
                None => default.date,
                Some(d) => d.parse::<Timestamp>().map_err(|_| {
                    ApiError::invalid(format!(
                        "For 'properties/date', \"{d}\" is not a date-time."
                    ))
                })?,
            };
            Ok(Signature {
                name: req_str(p, "name")?,
                email: req_str(p, "email")?,
                date,
            })
        }
        Some(v) => Err(type_error(k, v, "an object")),
    }
}

fn create_commit(r: &Req, rp: &mut Repo, sig: Signature) -> Result<Reply> {
    let b = r.object()?;
    let message = req_str(&b, "message")?;
    let tree = req_str(&b, "tree")?;
    let parents = opt_strings(&b, "parents")?.unwrap_or_default();
    if rp.odb.tree(&tree).is_none() {
        return Err(ApiError::unprocessable("Tree SHA does not exist")
            .doc("https://docs.github.com/rest/git/commits#create-a-commit"));
    }
    if let Some(bad) = parents.iter().find(|p| rp.odb.commit(p).is_none()) {
        return Err(ApiError::unprocessable(format!(
            "Parent SHA does not exist or is not a commit object ({bad})"
        ))
        .doc("https://docs.github.com/rest/git/commits#create-a-commit"));
    }
    let author = person(&b, "author", &sig)?;
    let committer = person(&b, "committer", &author)?;
    let c = Commit {
        tree,
        parents,
        message,
        author,
        committer,
    };
    let sha = rp.odb.put_commit(c.clone());
    Ok(Reply::created(render::git_commit(r.urls(), rp, &sha, &c)))
}

fn get_contents(r: &Req, rp: &Repo, path: &str) -> Result<Reply> {
    let path = path.trim_matches('/');
    let reference = r
        .params
        .get("ref")
        .filter(|s| !s.is_empty())
        .unwrap_or(&rp.default_branch)
        .to_string();
    let commit = rp.commit_for(Some(&reference))?;
    let tree = rp.odb.commit_tree(&commit).unwrap_or_default();
    let not_found = || {
        ApiError::not_found()
            .doc("https://docs.github.com/rest/repos/contents#get-repository-content")
    };
    let entry = rp.odb.lookup(&tree, path).ok_or_else(not_found)?;
    let u = r.urls();
    if entry.mode == MODE_TREE {
        let list: Vec<Value> = rp
            .odb
            .tree(&entry.sha)
            .unwrap_or(&[])
            .iter()
            .map(|e| {
                let p = if path.is_empty() {
                    e.name.clone()
                } else {
                    format!("{path}/{}", e.name)
                };
                render::content_entry(u, rp, &p, &reference, &commit, e)
            })
            .collect();
        return Ok(Reply::json(200, Value::Array(list)));
    }
    match rp.odb.blob(&entry.sha) {
        Some(data) if entry.mode != "120000" => Ok(Reply::json(
            200,
            render::content_file(u, rp, path, &reference, &commit, &entry, data),
        )),
        _ => Ok(Reply::json(
            200,
            render::content_entry(u, rp, path, &reference, &commit, &entry),
        )),
    }
}

/// The entry for `path` on a commit, if any.
fn entry_at(rp: &Repo, commit: Option<&String>, path: &str) -> Option<TreeEntry> {
    let tree = rp.odb.commit_tree(commit?)?;
    rp.odb.lookup(&tree, path)
}

fn target_branch(rp: &Repo, b: &Value) -> Result<String> {
    let branch = opt_str(b, "branch")?.unwrap_or_else(|| rp.default_branch.clone());
    let branch = branch
        .strip_prefix("refs/heads/")
        .unwrap_or(&branch)
        .to_string();
    let creating_first = rp.refs.is_empty() && branch == rp.default_branch;
    if rp.branch(&branch).is_none() && !creating_first {
        return Err(ApiError::new(404, format!("Branch {branch} not found"))
            .doc("https://docs.github.com/rest/repos/contents#create-or-update-file-contents"));
    }
    Ok(branch)
}

fn put_contents(r: &Req, rp: &mut Repo, path: &str, sig: Signature) -> Result<Reply> {
    let b = r.object()?;
    let message = req_str(&b, "message")?;
    let content = req_str(&b, "content")?;
    let data = render::decode_base64(&content)
        .ok_or_else(|| ApiError::invalid("content is not valid Base64"))?;
    let given_sha = opt_str(&b, "sha")?;
    let path = path.trim_matches('/').to_string();
    if !git::valid_path(&path) {
        return Err(ApiError::not_found());
    }
    let branch = target_branch(rp, &b)?;
    let author = person(&b, "author", &sig)?;
    let current = entry_at(rp, rp.branch(&branch), &path);
    if let Some(e) = &current {
        if e.mode == MODE_TREE {
            return Err(ApiError::unprocessable(format!("{path} is a directory")));
        }
        match &given_sha {
            None => return Err(ApiError::missing("sha")),
            Some(s) if *s != e.sha => {
                return Err(ApiError::new(409, format!("{path} does not match {s}")).doc(
                    "https://docs.github.com/rest/repos/contents#create-or-update-file-contents",
                ));
            }
            Some(_) => {}
        }
    }
    let sha = rp.commit_changes(&branch, &[(path.clone(), Some(data))], &message, author)?;
    file_commit_reply(
        r,
        rp,
        &path,
        &branch,
        &sha,
        if current.is_some() { 200 } else { 201 },
    )
}

fn file_commit_reply(
    r: &Req,
    rp: &Repo,
    path: &str,
    branch: &str,
    commit: &str,
    status: u16,
) -> Result<Reply> {
    let c = rp.odb.commit(commit).ok_or_else(ApiError::not_found)?;
    let content = entry_at(rp, Some(&commit.to_string()), path)
        .map(|e| render::content_entry(r.urls(), rp, path, branch, commit, &e));
    Ok(Reply::json(
        status,
        render::file_commit(r.urls(), rp, content, commit, c),
    ))
}

/// `Link` header for page `page` of `total` items.
fn link_header(r: &Req, page: u64, per_page: u64, total: usize) -> Option<String> {
    let last = (total as u64).div_ceil(per_page).max(1);
    if last <= 1 {
        return None;
    }
    let base: Vec<(String, String)> = r
        .params
        .0
        .iter()
        .filter(|(k, _)| k != "page")
        .cloned()
        .collect();
    let url = |p: u64| {
        let mut q: Vec<String> = base
            .iter()
            .map(|(k, v)| format!("{}={}", render::escape(k, false), render::escape(v, false)))
            .collect();
        q.push(format!("page={p}"));
        format!("<{}{}?{}>", r.shared.urls.api, r.path, q.join("&"))
    };
    let mut links = Vec::new();
    if page > 1 {
        links.push(format!("{}; rel=\"prev\"", url(page - 1)));
    }
    if page < last {
        links.push(format!("{}; rel=\"next\"", url(page + 1)));
        links.push(format!("{}; rel=\"last\"", url(last)));
    }
    if page > 1 {
        links.push(format!("{}; rel=\"first\"", url(1)));
    }
    Some(links.join(", "))
}

fn paginate<T: Clone>(r: &Req, items: &[T]) -> Result<(Vec<T>, Option<String>)> {
    let per_page = r.params.number("per_page", 30, 100)?;
    let page = r.params.number("page", 1, u64::MAX)?;
    let start = usize::try_from((page - 1).saturating_mul(per_page)).unwrap_or(usize::MAX);
    let chunk: Vec<T> = items
        .iter()
        .skip(start)
        .take(per_page as usize)
        .cloned()
        .collect();
    Ok((chunk, link_header(r, page, per_page, items.len())))
}

fn list_pulls(r: &Req, rp: &Repo) -> Result<Reply> {
    let state = r.params.get("state").unwrap_or("open");
    if !matches!(state, "open" | "closed" | "all") {
        return Err(ApiError::validation(
            json!({"resource": "Search", "field": "state", "code": "invalid"}),
        ));
    }
    let head = r
        .params
        .get("head")
        .filter(|h| !h.is_empty())
        .map(|h| match h.split_once(':') {
            Some((owner, branch)) => (Some(owner.to_string()), branch.to_string()),
            None => (None, h.to_string()),
        });
    let base = r.params.get("base").filter(|b| !b.is_empty());
    let mut pulls: Vec<&super::store::Pull> = rp
        .pulls
        .values()
        .filter(|p| match state {
            "open" => p.open,
            "closed" => !p.open,
            _ => true,
        })
        .filter(|p| match &head {
            None => true,
            Some((owner, branch)) => {
                owner
                    .as_deref()
                    .is_none_or(|o| o.eq_ignore_ascii_case(&rp.owner))
                    && p.head_ref == *branch
            }
        })
        .filter(|p| base.is_none_or(|b| p.base_ref == b))
        .collect();
    let sort = r.params.get("sort").unwrap_or("created");
    match sort {
        "updated" => pulls.sort_by_key(|p| (p.updated_at, p.number)),
        _ => pulls.sort_by_key(|p| (p.created_at, p.number)),
    }
    let default_dir = if sort == "created" || sort == "updated" {
        "desc"
    } else {
        "asc"
    };
    if r.params.get("direction").unwrap_or(default_dir) == "desc" {
        pulls.reverse();
    }
    let (page, link) = paginate(r, &pulls)?;
    let list: Vec<Value> = page
        .iter()
        .map(|p| render::pull(r.urls(), rp, p, false))
        .collect();
    let mut reply = Reply::json(200, Value::Array(list));
    if let Some(l) = link {
        reply = reply.header("link", l);
    }
    Ok(reply)
}

fn create_pull(r: &Req, rp: &mut Repo, login: &str, id: u64) -> Result<Reply> {
    let b = r.object()?;
    let head = req_str(&b, "head")?;
    let base = req_str(&b, "base")?;
    let new = NewPull {
        title: opt_str(&b, "title")?.unwrap_or_default(),
        body: opt_str(&b, "body")?,
        head,
        base,
        draft: opt_bool(&b, "draft")?.unwrap_or(false),
        maintainer_can_modify: opt_bool(&b, "maintainer_can_modify")?.unwrap_or(true),
    };
    let number = rp.create_pull(login, new, id)?;
    Ok(Reply::created(render::pull(
        r.urls(),
        rp,
        rp.pull(number)?,
        true,
    )))
}

fn update_pull(r: &Req, rp: &mut Repo, number: u64) -> Result<Reply> {
    let b = r.object()?;
    let open = match opt_str(&b, "state")?.as_deref() {
        None => None,
        Some("open") => Some(true),
        Some("closed") => Some(false),
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "For 'properties/state', \"{other}\" is not one of [\"open\", \"closed\"]."
            )));
        }
    };
    let u = PullUpdate {
        title: opt_str(&b, "title")?,
        body: match b.get("body") {
            None => None,
            Some(Value::Null) => Some(None),
            Some(_) => Some(opt_str(&b, "body")?),
        },
        open,
        base: opt_str(&b, "base")?,
        maintainer_can_modify: opt_bool(&b, "maintainer_can_modify")?,
    };
    rp.update_pull(number, u)?;
    Ok(Reply::json(
        200,
        render::pull(r.urls(), rp, rp.pull(number)?, true),
    ))
}

fn request_reviewers(r: &Req, rp: &mut Repo, number: u64) -> Result<Reply> {
    let b = r.object()?;
    let reviewers = opt_strings(&b, "reviewers")?.unwrap_or_default();
    let teams = opt_strings(&b, "team_reviewers")?.unwrap_or_default();
    if reviewers.is_empty() && teams.is_empty() {
        return Err(ApiError::invalid(
            "No subschema in \"anyOf\" matched.\n\"reviewers\" wasn't supplied.\n\"team_reviewers\" wasn't supplied.",
        ));
    }
    let p = rp.pull_mut(number)?;
    if reviewers.iter().any(|x| x.eq_ignore_ascii_case(&p.user)) {
        return Err(ApiError::unprocessable(
            "Review cannot be requested from pull request author.",
        ));
    }
    for x in reviewers {
        if !p
            .requested_reviewers
            .iter()
            .any(|y| y.eq_ignore_ascii_case(&x))
        {
            p.requested_reviewers.push(x);
        }
    }
    p.updated_at = now();
    Ok(Reply::json(
        201,
        render::pull(r.urls(), rp, rp.pull(number)?, false),
    ))
}

fn add_labels(r: &Req, st: &mut State, repo: &str, number: u64) -> Result<Reply> {
    let body = r.json()?;
    let items = match &body {
        Value::Array(items) => items.clone(),
        Value::Object(_) => match body.get("labels") {
            Some(Value::Array(items)) => items.clone(),
            None | Some(Value::Null) => return Err(ApiError::missing("labels")),
            Some(v) => return Err(type_error("labels", v, "an array")),
        },
        _ => return Err(ApiError::bad_json()),
    };
    let names = items
        .iter()
        .map(|x| match x {
            Value::String(s) => Ok(s.clone()),
            Value::Object(_) => req_str(x, "name"),
            other => Err(type_error("labels", other, "a string")),
        })
        .collect::<Result<Vec<_>>>()?;
    let mut ids = Vec::new();
    for _ in &names {
        ids.push(st.next_id());
    }
    let mut ids = ids.into_iter();
    let mut next = || ids.next().unwrap_or(0);
    let rp = st.repo_mut(repo)?;
    let labels = rp.add_labels(number, &names, &mut next)?;
    let rp = st.repo(repo)?;
    let list: Vec<Value> = labels
        .iter()
        .map(|l| render::label(r.urls(), rp, l))
        .collect();
    Ok(Reply::json(200, Value::Array(list)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_decoding() {
        assert_eq!(parse_route("/rate_limit"), Route::RateLimit);
        assert_eq!(
            parse_route("/app/installations/7/access_tokens"),
            Route::AccessTokens("7".into())
        );
        assert_eq!(
            parse_route("/repos/a/b/git/ref/heads/x%2Fy"),
            Route::Repo {
                repo: "a/b".into(),
                rest: vec!["git".into(), "ref".into(), "heads".into(), "x%2Fy".into()],
            }
        );
        assert_eq!(
            parse_route("/repos/a/b/contents/"),
            Route::Repo {
                repo: "a/b".into(),
                rest: vec!["contents".into()],
            }
        );
        assert_eq!(parse_route("/nope"), Route::Unknown);
        assert_eq!(parse_route("/repos//x"), Route::Unknown);
        assert_eq!(percent_decode("heads%2Fa%2Fb"), "heads/a/b");
        assert_eq!(percent_decode("bad%zz%2"), "bad%zz%2");
        assert_eq!(etag_core("W/\"abc\""), "abc");
        assert_eq!(etag_core("\"abc\""), "abc");
    }
}
