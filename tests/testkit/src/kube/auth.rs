//! Authentication as kube-apiserver's bearer-token authenticator does it,
//! with a static token table (as `--token-auth-file`): a request with
//! `Authorization: Bearer <token>` is the user the token was added for, an
//! unknown token gets the real 401 Status, and every authenticated user is in
//! `system:authenticated`. A request without a bearer token is the cluster
//! admin (`kubernetes-admin` in `system:masters`), as if every client without
//! a token presented the admin's client certificate. Also the
//! `SelfSubjectReview` answer (`kubectl auth whoami`). No authorization.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::{Value, json};

use super::error::ApiError;

/// The group every authenticated user is in.
const AUTHENTICATED: &str = "system:authenticated";

/// The admin's bearer token, known from the start: the kubeconfigs of an
/// emulator serving HTTPS carry it (over TLS, kubectl asks for a user name
/// and password when a kubeconfig's user has no credentials).
pub const ADMIN_TOKEN: &str = "heal8s-emulator-admin";

/// Who made a request, as the authenticator found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// `metadata.name`-like user name (`kubernetes-admin`, `alice`).
    pub username: String,
    /// Groups, `system:authenticated` last unless it was given.
    pub groups: Vec<String>,
}

impl UserInfo {
    /// A user with these groups, `system:authenticated` added if missing
    /// (as the API server's authenticated-group adder does).
    pub fn new(username: &str, groups: &[&str]) -> UserInfo {
        let mut groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        if !groups.iter().any(|g| g == AUTHENTICATED) {
            groups.push(AUTHENTICATED.to_string());
        }
        UserInfo {
            username: username.to_string(),
            groups,
        }
    }

    /// The user of requests without a bearer token: the cluster admin of a
    /// kubeadm cluster's admin.conf.
    pub fn admin() -> UserInfo {
        UserInfo::new("kubernetes-admin", &["system:masters"])
    }

    /// `authentication.k8s.io/v1` `UserInfo` as JSON (`uid` and `extra`
    /// are never set, so left out as the API server leaves them out).
    pub(crate) fn to_json(&self) -> Value {
        json!({"username": self.username, "groups": self.groups})
    }
}

/// The token table: bearer token -> user.
#[derive(Debug)]
pub(crate) struct Users {
    tokens: Mutex<HashMap<String, UserInfo>>,
}

impl Default for Users {
    /// The table with the admin's token.
    fn default() -> Users {
        Users {
            tokens: Mutex::new(HashMap::from([(
                ADMIN_TOKEN.to_string(),
                UserInfo::admin(),
            )])),
        }
    }
}

impl Users {
    /// Make `token` authenticate as `user` (replacing what it was).
    pub(crate) fn add(&self, token: &str, user: UserInfo) {
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token.to_string(), user);
    }

    /// The user of a request with this `Authorization` header value (none:
    /// the admin). Only `Bearer` credentials are read, as the API server
    /// reads them: the scheme in any case, the token up to the next space;
    /// an empty token or another scheme is no credential at all. A bearer
    /// token not in the table is the 401 Unauthorized.
    pub(crate) fn authenticate(&self, authorization: Option<&str>) -> Result<UserInfo, ApiError> {
        let Some(header) = authorization.map(str::trim).filter(|h| !h.is_empty()) else {
            return Ok(UserInfo::admin());
        };
        let mut parts = header.splitn(3, ' ');
        let scheme = parts.next().unwrap_or("");
        let token = parts.next().unwrap_or("");
        if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
            return Ok(UserInfo::admin());
        }
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(token)
            .cloned()
            .ok_or_else(unauthorized)
    }
}

/// The API server's answer to a request whose credentials are not valid.
pub(crate) fn unauthorized() -> ApiError {
    ApiError::new(401, "Unauthorized", "Unauthorized")
}

/// The `SelfSubjectReview` the API server answers a create with: the
/// requester's user info; nothing is stored.
pub(crate) fn self_subject_review(user: &UserInfo) -> Value {
    json!({
        "kind": "SelfSubjectReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "status": {"userInfo": user.to_json()},
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::kube::Emulator;
    use k8s_openapi::api::authentication::v1::SelfSubjectReview;
    use kube::api::{Api, PostParams};

    async fn whoami(client: kube::Client) -> Result<(String, Vec<String>), kube::Error> {
        let review = Api::<SelfSubjectReview>::all(client)
            .create(&PostParams::default(), &SelfSubjectReview::default())
            .await?;
        let user = review.status.unwrap().user_info.unwrap();
        Ok((user.username.unwrap(), user.groups.unwrap()))
    }

    #[tokio::test]
    async fn a_token_user_is_who_a_self_subject_review_names() {
        let emu = Emulator::start().await.unwrap();
        emu.add_user("s3cret", "alice", &["sre", "heal8s:approvers"]);
        let (name, groups) = whoami(emu.client_as("s3cret").await.unwrap())
            .await
            .unwrap();
        assert_eq!(name, "alice");
        assert_eq!(groups, ["sre", "heal8s:approvers", "system:authenticated"]);
        // without a token: the admin, as a client with the admin's certificate
        let (name, groups) = whoami(emu.client().await.unwrap()).await.unwrap();
        assert_eq!(name, "kubernetes-admin");
        assert_eq!(groups, ["system:masters", "system:authenticated"]);
        // the token user reads and writes like anyone (no RBAC)
        let cms = Api::<k8s_openapi::api::core::v1::ConfigMap>::default_namespaced(
            emu.client_as("s3cret").await.unwrap(),
        );
        cms.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "c"}})).unwrap(),
        )
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn over_tls_too_the_token_names_the_user() {
        let emu = Emulator::start_with(crate::kube::EmulatorOptions {
            tls: true,
            ..Default::default()
        })
        .await
        .unwrap();
        assert!(emu.url().starts_with("https://127.0.0.1:"));
        emu.add_user("s3cret", "alice", &[]);
        let (name, _) = whoami(emu.client_as("s3cret").await.unwrap())
            .await
            .unwrap();
        assert_eq!(name, "alice");
        let (name, _) = whoami(emu.client().await.unwrap()).await.unwrap();
        assert_eq!(name, "kubernetes-admin");
        assert!(matches!(
            whoami(emu.client_as("nope").await.unwrap()).await,
            Err(kube::Error::Api(s)) if s.code == 401
        ));
    }

    #[tokio::test]
    async fn an_unknown_token_gets_401_everywhere() {
        let emu = Emulator::start().await.unwrap();
        emu.add_user("good", "alice", &[]);
        match whoami(emu.client_as("bad").await.unwrap()).await {
            Err(kube::Error::Api(s)) => {
                assert_eq!(
                    (s.code, s.reason.as_str(), s.message.as_str()),
                    (401, "Unauthorized", "Unauthorized")
                );
            }
            other => panic!("{other:?}"),
        }
        let http = reqwest::Client::new();
        for path in ["/api/v1/namespaces/default/pods", "/version", "/apis"] {
            let r = http
                .get(format!("{}{path}", emu.url()))
                .bearer_auth("bad")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 401, "{path}");
            assert_eq!(
                r.json::<Value>().await.unwrap(),
                json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                       "message": "Unauthorized", "reason": "Unauthorized", "code": 401})
            );
        }
        assert_eq!(emu.requests().last().unwrap().status, 401);
    }

    #[tokio::test]
    async fn self_subject_reviews_are_create_only_and_discovered() {
        let emu = Emulator::start().await.unwrap();
        let http = reqwest::Client::new();
        let url = format!(
            "{}/apis/authentication.k8s.io/v1/selfsubjectreviews",
            emu.url()
        );
        let r = http
            .post(&url)
            .json(&json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        assert_eq!(
            r.json::<Value>().await.unwrap(),
            json!({"kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1",
                   "metadata": {"creationTimestamp": null},
                   "status": {"userInfo": {"username": "kubernetes-admin",
                                           "groups": ["system:masters", "system:authenticated"]}}})
        );
        let r = http
            .post(&url)
            .json(&json!({"apiVersion": "v1", "kind": "Pod"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        for (method, path, code, reason) in [
            ("GET", url.clone(), 405, "MethodNotAllowed"),
            ("GET", format!("{url}?watch=true"), 405, "MethodNotAllowed"),
            ("DELETE", url.clone(), 405, "MethodNotAllowed"),
            ("GET", format!("{url}/me"), 404, "NotFound"),
        ] {
            let r = http
                .request(method.parse().unwrap(), &path)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), code, "{method} {path}");
            assert_eq!(r.json::<Value>().await.unwrap()["reason"], reason);
        }
        assert!(
            emu.list("authentication.k8s.io/v1", "SelfSubjectReview", "")
                .is_empty()
        );
        // legacy and aggregated discovery list it with its one verb
        let list: Value = http
            .get(format!("{}/apis/authentication.k8s.io/v1", emu.url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            list["resources"],
            json!([{"name": "selfsubjectreviews", "singularName": "selfsubjectreview",
                    "namespaced": false, "kind": "SelfSubjectReview", "verbs": ["create"],
                    "shortNames": [], "categories": []}])
        );
        let agg: Value = http
            .get(format!("{}/apis", emu.url()))
            .header(
                "Accept",
                "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let group = agg["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["metadata"]["name"] == "authentication.k8s.io")
            .unwrap();
        assert_eq!(
            group["versions"][0]["resources"][0]["verbs"],
            json!(["create"])
        );
        assert!(
            agg["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|g| g["metadata"]["name"] == "admissionregistration.k8s.io")
        );
    }

    #[test]
    fn bearer_tokens_name_users_and_anything_else_is_the_admin() {
        let users = Users::default();
        users.add("t0k3n", UserInfo::new("alice", &["ops"]));
        let alice = users.authenticate(Some("Bearer t0k3n")).unwrap();
        assert_eq!(alice.username, "alice");
        assert_eq!(alice.groups, ["ops", "system:authenticated"]);
        assert_eq!(users.authenticate(Some("bearer t0k3n")).unwrap(), alice);
        let e = users.authenticate(Some("Bearer nope")).unwrap_err();
        assert_eq!(
            e.to_status(),
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "message": "Unauthorized", "reason": "Unauthorized", "code": 401})
        );
        for none in [
            None,
            Some(""),
            Some("Bearer "),
            Some("Basic YTpi"),
            Some("Bearer heal8s-emulator-admin"),
        ] {
            assert_eq!(users.authenticate(none).unwrap(), UserInfo::admin());
        }
        assert_eq!(
            UserInfo::admin().groups,
            ["system:masters", "system:authenticated"]
        );
        // given explicitly, the group is not repeated
        assert_eq!(
            UserInfo::new("bob", &["system:authenticated", "x"]).groups,
            ["system:authenticated", "x"]
        );
    }
}
