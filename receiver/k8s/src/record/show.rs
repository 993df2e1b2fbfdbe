//! `heal8s show-deleted`'s side of the records: finding a record, and
//! printing the object it kept (`status.deleted`) as YAML ready for
//! `kubectl apply`, headed by comments that say what it is.
//!
//! Owns: reading a record by name and the rendering. Must not change a
//! record, nor decide what is kept (`receiver_core::deleted`).

use kube::Api;

use super::crd::Remediation;

/// The Remediation `name` in the first of `namespaces` that holds one.
pub async fn find(
    client: &kube::Client,
    name: &str,
    namespaces: &[String],
) -> Result<Option<Remediation>, kube::Error> {
    for ns in namespaces {
        let api: Api<Remediation> = Api::namespaced(client.clone(), ns);
        if let Some(r) = api.get_opt(name).await? {
            return Ok(Some(r));
        }
    }
    Ok(None)
}

/// One line of comment: what a record says can hold anything, and a line
/// break in it must not end the comment (the rest would be YAML).
fn comment(out: &mut String, text: &str) {
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    out.push_str("# ");
    out.push_str(line.trim_end());
    out.push('\n');
}

/// The object record `rem` kept, as YAML for `kubectl apply`, after
/// comments saying what was deleted, when, by which remediation, and what
/// was left out; an error saying so when the record kept none.
pub fn deleted_yaml(rem: &Remediation) -> Result<String, String> {
    let ns = rem.metadata.namespace.as_deref().unwrap_or("");
    let name = rem.metadata.name.as_deref().unwrap_or("");
    let spec = &rem.spec;
    let Some(d) = rem.status.as_ref().and_then(|s| s.deleted.as_ref()) else {
        return Err(format!(
            "Remediation {ns}/{name} ({} on {}) holds no deleted object: heal8s keeps one only when it deletes an object or removes its finalizers (delete-pod, evict-pod, delete-node, cleanup-resource, delete-namespace), never in a dry run",
            spec.remediation, spec.target.key
        ));
    };
    let yaml = serde_saphyr::to_string(&d.manifest).map_err(|e| e.to_string())?;
    let mut out = String::new();
    let what = if d.finalizers_removed.is_empty() {
        "deleted"
    } else {
        "removed the finalizers of"
    };
    let when = if d.at.is_empty() {
        String::new()
    } else {
        format!(" at {}", d.at)
    };
    comment(&mut out, &format!("heal8s {what} {}{when}", d.describe()));
    comment(
        &mut out,
        &format!(
            "by remediation {} (record {ns}/{name}, triggered by {} {})",
            spec.remediation, spec.trigger.source, spec.trigger.alertname
        ),
    );
    if !d.finalizers_removed.is_empty() {
        comment(
            &mut out,
            &format!(
                "finalizers removed: {} (the manifest lists them as they were)",
                d.finalizers_removed.join(", ")
            ),
        );
    }
    for n in &d.notes {
        comment(&mut out, &format!("note: {n}"));
    }
    if d.truncated {
        comment(
            &mut out,
            "TRUNCATED: only the object's identity was kept; this cannot re-create it",
        );
    } else {
        comment(
            &mut out,
            "re-create it with `kubectl apply -f` (server-set metadata, owner references and status are not kept)",
        );
    }
    out.push_str(&yaml);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::record::{RemediationSpec, RemediationStatus, TargetSpec, TriggerSpec};

    fn record(deleted: Option<receiver_core::deleted::Deleted>) -> Remediation {
        let mut r = Remediation::new(
            "delete-pod-pod-api-1-0123456789",
            RemediationSpec {
                trigger: TriggerSpec {
                    source: "detector".into(),
                    alertname: "Heal8sPodCrashLooping".into(),
                    fingerprint: "f".into(),
                    labels: Default::default(),
                    first_seen: "2026-01-01T00:00:00Z".into(),
                },
                target: TargetSpec {
                    api_version: "v1".into(),
                    kind: "Pod".into(),
                    namespace: Some("shop".into()),
                    name: "api-1".into(),
                    container: None,
                    workload: None,
                    key: "Pod/shop/api-1".into(),
                },
                remediation: "delete-pod".into(),
                parameters: Value::Null,
                mode: "direct".into(),
                approval: None,
            },
        );
        r.metadata.namespace = Some("shop".into());
        r.status = Some(RemediationStatus {
            deleted,
            ..RemediationStatus::default()
        });
        r
    }

    fn pod() -> Value {
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "api-1", "namespace": "shop", "uid": "u", "labels": {"app": "api"}},
               "spec": {"nodeName": "w1", "containers": [{"name": "api", "image": "registry/app:2"}]},
               "status": {"phase": "Running"}})
    }

    fn body(text: &str) -> Value {
        serde_saphyr::from_str(text).unwrap()
    }

    #[test]
    fn the_kept_object_prints_as_yaml_under_comments_saying_what_it_was() {
        let mut d = receiver_core::deleted::keep(&pod(), receiver_core::deleted::MAX_BYTES);
        d.at = "2026-01-01T00:05:00Z".into();
        let text = deleted_yaml(&record(Some(d.clone()))).unwrap();
        let comments: Vec<&str> = text.lines().take_while(|l| l.starts_with('#')).collect();
        assert_eq!(
            comments[..2],
            [
                "# heal8s deleted Pod shop/api-1 at 2026-01-01T00:05:00Z",
                "# by remediation delete-pod (record shop/delete-pod-pod-api-1-0123456789, triggered by detector Heal8sPodCrashLooping)",
            ],
            "{text}"
        );
        assert_eq!(body(&text), d.manifest, "{text}");
        assert!(
            !text.contains("uid") && !text.contains("nodeName"),
            "{text}"
        );
    }

    #[test]
    fn notes_finalizers_and_truncation_are_comments_that_stay_comments() {
        let mut d = receiver_core::deleted::keep(&pod(), 40);
        d.finalizers_removed = vec!["example.com/f".into()];
        d.notes.push("evil\nkind: Secret\r\nmore".into());
        let text = deleted_yaml(&record(Some(d.clone()))).unwrap();
        assert!(
            text.contains("# finalizers removed: example.com/f"),
            "{text}"
        );
        assert!(text.contains("# TRUNCATED"), "{text}");
        assert!(
            text.starts_with("# heal8s removed the finalizers of Pod shop/api-1\n"),
            "{text}"
        );
        assert!(
            text.lines()
                .all(|l| l.starts_with('#') || !l.contains("kind: Secret")),
            "{text}"
        );
        assert_eq!(body(&text), d.manifest);
    }

    #[test]
    fn a_record_without_a_deleted_object_is_a_clear_error() {
        let e = deleted_yaml(&record(None)).unwrap_err();
        assert!(
            e.starts_with("Remediation shop/delete-pod-pod-api-1-0123456789 (delete-pod on Pod/shop/api-1) holds no deleted object"),
            "{e}"
        );
        let mut r = record(None);
        r.status = None;
        assert!(deleted_yaml(&r).is_err());
    }
}
