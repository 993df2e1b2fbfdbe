//! Store and HTTP behaviour of the GitHub emulation (fast, in-process, PAT auth).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};

use super::*;

const REPO: &str = "acme/manifests";
const PAT: &str = "ghp_unit";

struct T {
    emu: GithubEmulator,
    c: reqwest::Client,
}

impl T {
    async fn new(options: GithubOptions) -> T {
        let emu = GithubEmulator::start_with(GithubOptions {
            pats: vec![PAT.into()],
            ..options
        })
        .await
        .unwrap();
        emu.create_repo("acme", "manifests", 1).unwrap();
        emu.put_files(
            REPO,
            "main",
            &[("apps/a.yaml", "a: 1\n"), ("apps/b.yaml", "b: 1\n")],
            "init",
        )
        .unwrap();
        T {
            emu,
            c: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
        }
    }

    async fn req(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut r = self
            .c
            .request(m, format!("{}{path}", self.emu.url()))
            .header("authorization", format!("token {PAT}"));
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let h = resp.headers().clone();
        let text = resp.text().await.unwrap();
        (
            status,
            h,
            serde_json::from_str(&text).unwrap_or(Value::Null),
        )
    }

    async fn status(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let (s, _, v) = self.req(method, path, body, &[]).await;
        (s, v)
    }
}

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test]
async fn contents_refs_trees_and_blobs() {
    let t = T::new(GithubOptions::default()).await;
    let r = |p: &str| format!("/repos/{REPO}{p}");

    let (s, file) = t.status("GET", &r("/contents/apps/a.yaml"), None).await;
    assert_eq!(s, 200);
    assert_eq!(
        render::decode_base64(file["content"].as_str().unwrap()).unwrap(),
        b"a: 1\n"
    );
    let sha = file["sha"].as_str().unwrap().to_string();
    // the real git blob id of "a: 1\n"
    assert_eq!(sha, sha1::hex_digest(b"blob 5\0a: 1\n"));
    let (s, dir) = t.status("GET", &r("/contents/apps"), None).await;
    assert_eq!((s, dir.as_array().unwrap().len()), (200, 2));
    let (s, root) = t.status("GET", &r("/contents/"), None).await;
    assert_eq!((s, root[0]["type"].as_str()), (200, Some("dir")));
    assert_eq!(
        t.status("GET", &r("/contents/nope.yaml"), None).await.0,
        404
    );
    assert_eq!(
        t.status("GET", &r("/contents/apps/a.yaml?ref=nope"), None)
            .await
            .0,
        404
    );

    // PUT: sha required for existing files, and must match.
    let put = |sha: Option<&str>, branch: &str| {
        let mut b = json!({"message": "m", "content": b64("a: 2\n"), "branch": branch});
        if let Some(s) = sha {
            b["sha"] = json!(s);
        }
        b
    };
    let (s, v) = t
        .status("PUT", &r("/contents/apps/a.yaml"), Some(put(None, "main")))
        .await;
    assert_eq!(s, 422);
    assert_eq!(v["message"], "Invalid request.\n\n\"sha\" wasn't supplied.");
    let (s, v) = t
        .status(
            "PUT",
            &r("/contents/apps/a.yaml"),
            Some(put(Some(&"0".repeat(40)), "main")),
        )
        .await;
    assert_eq!(s, 409);
    assert!(v["message"].as_str().unwrap().contains("does not match"));
    let (s, _) = t
        .status(
            "PUT",
            &r("/contents/apps/a.yaml"),
            Some(put(Some(&sha), "nope")),
        )
        .await;
    assert_eq!(s, 404);
    let (s, v) = t
        .status(
            "PUT",
            &r("/contents/apps/a.yaml"),
            Some(put(Some(&sha), "main")),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["content"]["path"], "apps/a.yaml");
    let (s, _) = t
        .status(
            "PUT",
            &r("/contents/apps/new/c.yaml"),
            Some(put(None, "main")),
        )
        .await;
    assert_eq!(s, 201);
    assert_eq!(t.emu.file(REPO, "main", "apps/a.yaml").unwrap(), "a: 2\n");
    assert_eq!(
        t.emu.files(REPO, "main"),
        ["apps/a.yaml", "apps/b.yaml", "apps/new/c.yaml"]
    );
    assert_eq!(t.emu.commits_on(REPO, "main").len(), 3);
    assert_eq!(t.emu.commits_on(REPO, "main")[0].author, "heal8s-dev");

    // Refs.
    let main = t.emu.branch_sha(REPO, "main").unwrap();
    let first = t.emu.commits_on(REPO, "main").last().unwrap().sha.clone();
    let branch = "heal8s/x/y";
    let mk = json!({"ref": format!("refs/heads/{branch}"), "sha": first});
    assert_eq!(
        t.status("POST", &r("/git/refs"), Some(mk.clone())).await.0,
        201
    );
    let (s, v) = t.status("POST", &r("/git/refs"), Some(mk)).await;
    assert_eq!(
        (s, v["message"].as_str()),
        (422, Some("Reference already exists"))
    );
    let bad = json!({"ref": "refs/heads/z", "sha": "1".repeat(40)});
    assert_eq!(t.status("POST", &r("/git/refs"), Some(bad)).await.0, 422);
    let (s, v) = t
        .status("GET", &r("/git/ref/heads/heal8s%2Fx%2Fy"), None)
        .await;
    assert_eq!(
        (s, v["object"]["sha"].as_str()),
        (200, Some(first.as_str()))
    );
    let (_, v) = t
        .status("GET", &r("/git/matching-refs/heads/heal8s/"), None)
        .await;
    assert_eq!(v.as_array().unwrap().len(), 1);
    // main -> first is not a fast forward
    let (s, v) = t
        .status(
            "PATCH",
            &r("/git/refs/heads/main"),
            Some(json!({"sha": first})),
        )
        .await;
    assert_eq!(
        (s, v["message"].as_str()),
        (422, Some("Update is not a fast forward"))
    );
    let (s, _) = t
        .status(
            "PATCH",
            &r(&format!("/git/refs/heads/{branch}")),
            Some(json!({"sha": main})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = t
        .status(
            "PATCH",
            &r("/git/refs/heads/main"),
            Some(json!({"sha": first, "force": true})),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(t.emu.branch_sha(REPO, "main").unwrap(), first);
    assert_eq!(
        t.status("DELETE", &r(&format!("/git/refs/heads/{branch}")), None)
            .await
            .0,
        204
    );
    assert_eq!(
        t.status("DELETE", &r(&format!("/git/refs/heads/{branch}")), None)
            .await
            .0,
        422
    );
    assert_eq!(t.emu.branches(REPO), ["main"]);

    // Blobs and trees: nested paths, deletion, lookups by branch name.
    let (s, blob) = t
        .status(
            "POST",
            &r("/git/blobs"),
            Some(json!({"content": b64(&"x".repeat(100)), "encoding": "base64"})),
        )
        .await;
    assert_eq!(s, 201);
    let blob_sha = blob["sha"].as_str().unwrap().to_string();
    let (_, got) = t
        .status("GET", &r(&format!("/git/blobs/{blob_sha}")), None)
        .await;
    let content = got["content"].as_str().unwrap();
    assert!(content.lines().all(|l| l.len() <= 60) && content.lines().count() == 3);
    let (_, commit) = t
        .status("GET", &r(&format!("/git/commits/{first}")), None)
        .await;
    let tree_sha = commit["tree"]["sha"].as_str().unwrap();
    let (s, tree) = t
        .status(
            "POST",
            &r("/git/trees"),
            Some(json!({"base_tree": tree_sha, "tree": [
                {"path": "deep/er/x.txt", "mode": "100644", "type": "blob", "sha": blob_sha},
                {"path": "apps/b.yaml", "mode": "100644", "type": "blob", "sha": null},
                {"path": "inline.txt", "mode": "100644", "type": "blob", "content": "hi\n"},
            ]})),
        )
        .await;
    assert_eq!(s, 201);
    let new_tree = tree["sha"].as_str().unwrap();
    let (_, listing) = t
        .status(
            "GET",
            &r(&format!("/git/trees/{new_tree}?recursive=1")),
            None,
        )
        .await;
    let paths: Vec<&str> = listing["tree"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "apps",
            "apps/a.yaml",
            "deep",
            "deep/er",
            "deep/er/x.txt",
            "inline.txt"
        ]
    );
    let (s, c) = t
        .status(
            "POST",
            &r("/git/commits"),
            Some(json!({"message": "m", "tree": new_tree, "parents": [first]})),
        )
        .await;
    assert_eq!(s, 201);
    assert_eq!(c["parents"][0]["sha"], first.as_str());
    let bad_tree = json!({"tree": [{"path": "a", "mode": "100644", "type": "blob"}]});
    assert_eq!(
        t.status("POST", &r("/git/trees"), Some(bad_tree)).await.0,
        422
    );
    t.emu
        .put_files(REPO, "feature/one", &[("f.txt", "f\n")], "f")
        .unwrap();
    let (s, v) = t.status("GET", &r("/git/trees/feature/one"), None).await;
    assert_eq!(s, 200);
    assert!(
        v["tree"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["path"] == "f.txt")
    );
}

#[tokio::test]
async fn pull_request_lifecycle() {
    let t = T::new(GithubOptions::default()).await;
    let r = |p: &str| format!("/repos/{REPO}{p}");
    let pr = |head: &str| json!({"title": "t", "head": head, "base": "main", "body": "b"});

    assert_eq!(
        t.status("POST", &r("/pulls"), Some(pr("nope"))).await.0,
        422
    );
    // a branch whose commits are all on main already
    let main = t.emu.branch_sha(REPO, "main").unwrap();
    let mk = json!({"ref": "refs/heads/behind", "sha": main});
    t.status("POST", &r("/git/refs"), Some(mk)).await;
    let (s, v) = t.status("POST", &r("/pulls"), Some(pr("behind"))).await;
    assert_eq!(s, 422);
    assert_eq!(
        v["errors"][0]["message"],
        "No commits between main and behind"
    );

    t.emu
        .put_files(REPO, "fix/a", &[("apps/a.yaml", "a: 2\n")], "fix a")
        .unwrap();
    let (s, v) = t.status("POST", &r("/pulls"), Some(pr("acme:fix/a"))).await;
    assert_eq!(s, 201);
    let n = v["number"].as_u64().unwrap();
    assert_eq!(
        (v["commits"].as_u64(), v["changed_files"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(v["mergeable"], true);
    let (s, v) = t.status("POST", &r("/pulls"), Some(pr("fix/a"))).await;
    assert_eq!(s, 422);
    assert_eq!(
        v["errors"][0]["message"],
        "A pull request already exists for acme:fix/a."
    );

    // The head follows its branch.
    let moved = t
        .emu
        .put_files(REPO, "fix/a", &[("apps/a.yaml", "a: 3\n")], "again")
        .unwrap();
    assert_eq!(t.emu.pull(REPO, n).unwrap().head_sha, moved);

    // Issue-side decorations.
    let (s, v) = t
        .status(
            "POST",
            &r(&format!("/issues/{n}/labels")),
            Some(json!({"labels": ["x", "y"]})),
        )
        .await;
    assert_eq!((s, v.as_array().unwrap().len()), (200, 2));
    let (s, _) = t
        .status(
            "POST",
            &r(&format!("/issues/{n}/labels")),
            Some(json!(["X", "z"])),
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = t
        .status(
            "POST",
            &r(&format!("/issues/{n}/comments")),
            Some(json!({"body": "c1"})),
        )
        .await;
    assert_eq!(s, 201);
    let (s, v) = t
        .status(
            "POST",
            &r(&format!("/issues/{n}/assignees")),
            Some(json!({"assignees": ["alice"]})),
        )
        .await;
    assert_eq!((s, v["assignee"]["login"].as_str()), (201, Some("alice")));
    let (s, _) = t
        .status(
            "POST",
            &r(&format!("/pulls/{n}/requested_reviewers")),
            Some(json!({"reviewers": ["heal8s-dev"]})),
        )
        .await;
    assert_eq!(s, 422, "the author cannot review");
    let (s, _) = t
        .status(
            "POST",
            &r(&format!("/pulls/{n}/requested_reviewers")),
            Some(json!({"reviewers": ["bob"]})),
        )
        .await;
    assert_eq!(s, 201);
    let snap = t.emu.pull(REPO, n).unwrap();
    assert_eq!(snap.labels, ["x", "y", "z"]);
    assert_eq!(snap.comments, ["c1"]);
    assert_eq!(
        (snap.assignees.len(), snap.requested_reviewers.len()),
        (1, 1)
    );
    assert_eq!(snap.user, "heal8s-dev");

    // Lists: filters, pagination, ETags.
    t.emu
        .put_files(REPO, "fix/b", &[("apps/b.yaml", "b: 2\n")], "fix b")
        .unwrap();
    let (s, _) = t.status("POST", &r("/pulls"), Some(pr("fix/b"))).await;
    assert_eq!(s, 201);
    let (_, v) = t.status("GET", &r("/pulls?head=acme:fix/b"), None).await;
    assert_eq!(v.as_array().unwrap().len(), 1);
    let (_, h, v) = t.req("GET", &r("/pulls?per_page=1"), None, &[]).await;
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["number"], n + 1, "newest first");
    let link = h["link"].to_str().unwrap();
    assert!(link.contains("page=2>; rel=\"next\""), "{link}");
    let etag = h["etag"].to_str().unwrap().to_string();
    let (s, _, _) = t
        .req(
            "GET",
            &r("/pulls?per_page=1"),
            None,
            &[("if-none-match", &etag)],
        )
        .await;
    assert_eq!(s, 304);

    // Close, reopen, merge.
    let (s, v) = t
        .status(
            "PATCH",
            &r(&format!("/pulls/{n}")),
            Some(json!({"state": "closed"})),
        )
        .await;
    assert_eq!((s, v["state"].as_str()), (200, Some("closed")));
    assert_eq!(
        t.status("GET", &r("/pulls"), None)
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        t.status("PUT", &r(&format!("/pulls/{n}/merge")), None)
            .await
            .0,
        405
    );
    t.emu.reopen_pull(REPO, n).unwrap();
    let (s, v) = t
        .status(
            "PUT",
            &r(&format!("/pulls/{n}/merge")),
            Some(json!({"sha": "0".repeat(40)})),
        )
        .await;
    assert_eq!(
        (s, v["message"].as_str().map(|m| m.contains("modified"))),
        (409, Some(true))
    );
    let (s, v) = t
        .status(
            "PUT",
            &r(&format!("/pulls/{n}/merge")),
            Some(json!({"merge_method": "squash"})),
        )
        .await;
    assert_eq!((s, v["merged"].as_bool()), (200, Some(true)));
    assert_eq!(t.emu.file(REPO, "main", "apps/a.yaml").unwrap(), "a: 3\n");
    assert_eq!(
        t.status("GET", &r(&format!("/pulls/{n}/merge")), None)
            .await
            .0,
        204
    );
    assert_eq!(
        t.status("PUT", &r(&format!("/pulls/{n}/merge")), None)
            .await
            .0,
        405
    );
    let (_, v) = t.status("GET", &r(&format!("/pulls/{n}")), None).await;
    assert_eq!(
        (v["merged"].as_bool(), v["mergeable"].is_null()),
        (Some(true), true)
    );
    assert_eq!(v["merged_by"]["login"], "heal8s-dev");

    // fix/b still merges cleanly (other file); a conflicting PR does not.
    t.emu
        .put_files(REPO, "clash", &[("apps/a.yaml", "a: clash\n")], "clash")
        .unwrap();
    t.emu
        .put_files(REPO, "main", &[("apps/a.yaml", "a: main\n")], "main moves")
        .unwrap();
    let (s, v) = t.status("POST", &r("/pulls"), Some(pr("clash"))).await;
    assert_eq!((s, v["mergeable"].as_bool()), (201, Some(false)));
    let clash = v["number"].as_u64().unwrap();
    assert_eq!(
        t.status("PUT", &r(&format!("/pulls/{clash}/merge")), None)
            .await
            .0,
        405
    );
    let b = t
        .emu
        .pulls(REPO)
        .into_iter()
        .find(|p| p.head_ref == "fix/b")
        .unwrap();
    t.emu.merge_pull(REPO, b.number).unwrap();
    assert_eq!(t.emu.file(REPO, "main", "apps/b.yaml").unwrap(), "b: 2\n");
    assert_eq!(
        t.emu.file(REPO, "main", "apps/a.yaml").unwrap(),
        "a: main\n"
    );
    assert_eq!(t.emu.commits_on(REPO, "main")[0].parents.len(), 2);

    // Deleting the head branch closes the PR; it cannot be reopened.
    let (s, _) = t.status("DELETE", &r("/git/refs/heads/clash"), None).await;
    assert_eq!(s, 204);
    assert_eq!(t.emu.pull(REPO, clash).unwrap().state, "closed");
    assert!(t.emu.reopen_pull(REPO, clash).is_err());
}

#[tokio::test]
async fn bad_input_auth_and_rate_limits() {
    let t = T::new(GithubOptions {
        rate_limit: 6,
        ..GithubOptions::default()
    })
    .await;
    let r = |p: &str| format!("/repos/{REPO}{p}");
    let resp =
        t.c.post(format!("{}{}", t.emu.url(), r("/pulls")))
            .header("authorization", format!("token {PAT}"))
            .body("{\"title\": ")
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["message"], "Problems parsing JSON");
    let (s, v) = t
        .status("POST", &r("/pulls"), Some(json!({"head": "x"})))
        .await;
    assert_eq!(
        (s, v["message"].as_str()),
        (422, Some("Invalid request.\n\n\"base\" wasn't supplied."))
    );
    let (s, v) = t.status("GET", "/nope", None).await;
    assert_eq!((s, v["message"].as_str()), (404, Some("Not Found")));
    assert_eq!(t.status("GET", "/repos/acme/missing", None).await.0, 404);
    assert_eq!(t.status("DELETE", &r(""), None).await.0, 404);

    // Six requests an hour: the seventh is refused; 304s and /rate_limit are free.
    let (s, h, _) = t.req("GET", &r("/pulls"), None, &[]).await;
    assert_eq!(s, 200);
    assert_eq!(h["x-ratelimit-used"], "5");
    assert_eq!(h["x-ratelimit-remaining"], "1");
    let etag = h["etag"].to_str().unwrap().to_string();
    let (s, _, _) = t
        .req("GET", &r("/pulls"), None, &[("if-none-match", &etag)])
        .await;
    assert_eq!(s, 304);
    let (s, v) = t.status("GET", "/rate_limit", None).await;
    assert_eq!((s, v["resources"]["core"]["used"].as_u64()), (200, Some(5)));
    assert_eq!(t.status("GET", &r(""), None).await.0, 200);
    let (s, h, v) = t.req("GET", &r(""), None, &[]).await;
    assert_eq!(s, 403);
    assert!(v["message"].as_str().unwrap().contains("rate limit"));
    assert_eq!(h["x-ratelimit-remaining"], "0");

    let log = t.emu.requests();
    assert_eq!(log.len(), 10);
    assert_eq!(log.iter().filter(|x| x.mutating).count(), 3);
    assert!(
        log.iter()
            .all(|x| x.auth.as_deref() == Some("heal8s-dev") || x.status == 404)
    );
    t.emu.clear_requests();
    assert!(t.emu.requests().is_empty());
    assert_eq!(t.emu.request_count(), 10);
}

#[tokio::test]
async fn installation_tokens_can_be_scoped_to_repositories() {
    let t = T::new(GithubOptions::default()).await;
    t.emu.create_repo("acme", "other", 1).unwrap();
    let jwt = app_jwt(TEST_APP_ID, TEST_APP_KEY_PEM).unwrap();
    let post = |body: Value| {
        t.c.post(format!("{}/app/installations/1/access_tokens", t.emu.url()))
            .bearer_auth(&jwt)
            .json(&body)
            .send()
    };
    let resp = post(json!({"repositories": ["nope"]})).await.unwrap();
    assert_eq!(resp.status(), 422);
    let v: Value = post(json!({"repositories": ["manifests"]}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["repository_selection"], "selected");
    assert_eq!(v["repositories"][0]["full_name"], REPO);
    let token = v["token"].as_str().unwrap();
    let get = |repo: &str| {
        t.c.get(format!("{}/repos/{repo}", t.emu.url()))
            .header("authorization", format!("token {token}"))
            .send()
    };
    assert_eq!(get(REPO).await.unwrap().status(), 200);
    assert_eq!(get("acme/other").await.unwrap().status(), 404);
    assert_eq!(t.emu.tokens_issued(), 1);
    let store_token = t.emu.installation_token(1);
    let resp =
        t.c.get(format!("{}/repos/acme/other", t.emu.url()))
            .header("authorization", format!("Bearer {store_token}"))
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(t.emu.tokens_issued(), 1);
}

#[test]
fn yaml_seed_files() {
    let dir = crate::TempDir::new("gh-seed");
    std::fs::create_dir_all(dir.path().join("apps/shop")).unwrap();
    std::fs::create_dir_all(dir.path().join(".git")).unwrap();
    std::fs::write(dir.path().join("apps/shop/web.yaml"), "a: 1\n").unwrap();
    std::fs::write(dir.path().join("apps/README.md"), "no\n").unwrap();
    std::fs::write(dir.path().join(".git/x.yaml"), "no\n").unwrap();
    std::fs::write(dir.path().join("root.yml"), "b: 1\n").unwrap();
    let files = yaml_files(dir.path()).unwrap();
    assert_eq!(
        files,
        [
            ("apps/shop/web.yaml".to_string(), "a: 1\n".to_string()),
            ("root.yml".to_string(), "b: 1\n".to_string()),
        ]
    );
}
