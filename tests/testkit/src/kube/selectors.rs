//! Label selectors (query strings and `LabelSelector` objects) and field
//! selectors: parsing and matching against objects. Pure; no storage.

use serde_json::{Map, Value};

use super::error::ApiError;
use super::object;

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Req {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
    Gt(String, i64),
    Lt(String, i64),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    reqs: Vec<Req>,
    /// A `null` selector object (matches nothing, as for PodDisruptionBudgets).
    nothing: bool,
}

impl LabelSelector {
    /// Parse the query-string form (`app=web,tier in (a,b),!canary`).
    pub fn parse(s: &str) -> Result<LabelSelector, ApiError> {
        let mut reqs = Vec::new();
        for part in split_top_level(s) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            reqs.push(parse_req(part)?);
        }
        Ok(LabelSelector {
            reqs,
            nothing: false,
        })
    }

    /// From a `LabelSelector` object (`matchLabels`, `matchExpressions`);
    /// `None`/`null` matches nothing, `{}` everything.
    pub fn from_object(sel: Option<&Value>) -> Result<LabelSelector, ApiError> {
        let Some(Value::Object(sel)) = sel else {
            return Ok(LabelSelector {
                reqs: Vec::new(),
                nothing: true,
            });
        };
        let mut reqs = Vec::new();
        if let Some(Value::Object(ml)) = sel.get("matchLabels") {
            for (k, v) in ml {
                reqs.push(Req::Eq(k.clone(), v.as_str().unwrap_or_default().into()));
            }
        }
        if let Some(Value::Array(exprs)) = sel.get("matchExpressions") {
            for e in exprs {
                let key = e
                    .get("key")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let values = object::strings_at(e, "/values");
                let op = e.get("operator").and_then(Value::as_str).unwrap_or("");
                reqs.push(match op {
                    "In" => Req::In(key, values),
                    "NotIn" => Req::NotIn(key, values),
                    "Exists" => Req::Exists(key),
                    "DoesNotExist" => Req::NotExists(key),
                    other => {
                        return Err(ApiError::bad_request(format!(
                            "\"{other}\" is not a valid label selector operator"
                        )));
                    }
                });
            }
        }
        Ok(LabelSelector {
            reqs,
            nothing: false,
        })
    }

    /// Whether this selector has no requirements (and is not the match-nothing selector).
    pub fn is_everything(&self) -> bool {
        self.reqs.is_empty() && !self.nothing
    }

    /// Whether labels `ls` satisfy every requirement.
    pub fn matches(&self, ls: Option<&Map<String, Value>>) -> bool {
        self.matches_with(|k| ls.and_then(|m| m.get(k)).and_then(Value::as_str))
    }

    /// Whether the labels that `get` looks up satisfy every requirement.
    pub fn matches_with<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        if self.nothing {
            return false;
        }
        self.reqs.iter().all(|r| match r {
            Req::Eq(k, v) => get(k) == Some(v.as_str()),
            Req::NotEq(k, v) => get(k) != Some(v.as_str()),
            Req::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Req::NotIn(k, vs) => !get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Req::Exists(k) => get(k).is_some(),
            Req::NotExists(k) => get(k).is_none(),
            Req::Gt(k, n) => get(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x > *n),
            Req::Lt(k, n) => get(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x < *n),
        })
    }

    /// Whether an object's `metadata.labels` satisfy it.
    pub fn matches_object(&self, obj: &Value) -> bool {
        self.matches(object::labels(obj))
    }

    /// The query-string form (as `Scale.status.selector` shows it).
    pub fn to_query(&self) -> String {
        let set = |vs: &Vec<String>| vs.join(",");
        self.reqs
            .iter()
            .map(|r| match r {
                Req::Eq(k, v) => format!("{k}={v}"),
                Req::NotEq(k, v) => format!("{k}!={v}"),
                Req::In(k, vs) => format!("{k} in ({})", set(vs)),
                Req::NotIn(k, vs) => format!("{k} notin ({})", set(vs)),
                Req::Exists(k) => k.clone(),
                Req::NotExists(k) => format!("!{k}"),
                Req::Gt(k, n) => format!("{k}>{n}"),
                Req::Lt(k, n) => format!("{k}<{n}"),
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Split on commas that are not inside parentheses.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn bad_selector(part: &str, why: &str) -> ApiError {
    ApiError::bad_request(format!(
        "unable to parse requirement: {why}: found '{part}'"
    ))
}

fn check_key(key: &str, part: &str) -> Result<String, ApiError> {
    if object::is_qualified_key(key) {
        Ok(key.to_string())
    } else {
        Err(bad_selector(part, "invalid label key"))
    }
}

fn parse_req(part: &str) -> Result<Req, ApiError> {
    if let Some(key) = part.strip_prefix('!') {
        return Ok(Req::NotExists(check_key(key.trim(), part)?));
    }
    for (op, is_in) in [(" notin ", false), (" in ", true)] {
        if let Some((key, rest)) = part.split_once(op) {
            let key = check_key(key.trim(), part)?;
            let rest = rest.trim();
            let inner = rest
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .ok_or_else(|| bad_selector(part, "expected a set of values in parentheses"))?;
            let values: Vec<String> = inner
                .split(',')
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .collect();
            return Ok(if is_in {
                Req::In(key, values)
            } else {
                Req::NotIn(key, values)
            });
        }
    }
    for op in ["!=", "==", "=", ">", "<"] {
        if let Some((key, value)) = part.split_once(op) {
            let key = check_key(key.trim(), part)?;
            let value = value.trim().to_string();
            if !object::is_label_value(&value) {
                return Err(bad_selector(part, "invalid label value"));
            }
            let num = || {
                value.parse::<i64>().map_err(|_| {
                    bad_selector(
                        part,
                        "for 'Gt', 'Lt' operators, the value must be an integer",
                    )
                })
            };
            return Ok(match op {
                "!=" => Req::NotEq(key, value),
                ">" => Req::Gt(key, num()?),
                "<" => Req::Lt(key, num()?),
                _ => Req::Eq(key, value),
            });
        }
    }
    Ok(Req::Exists(check_key(part, part)?))
}

/// One term of a field selector.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldReq {
    field: String,
    value: String,
    negate: bool,
}

/// A parsed field selector (comma means AND); empty matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    reqs: Vec<FieldReq>,
}

impl FieldSelector {
    /// Parse `metadata.name=x,status.phase!=Running`, accepting only `allowed` fields
    /// (the API server answers 400 for a field it cannot select on).
    pub fn parse(s: &str, allowed: &[&str]) -> Result<FieldSelector, ApiError> {
        let mut reqs = Vec::new();
        for part in split_unescaped_commas(s) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (field, value, negate) = if let Some((f, v)) = part.split_once("!=") {
                (f, v, true)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, v, false)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, v, false)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                )));
            };
            let field = field.trim();
            if !allowed.contains(&field) {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {field}"
                )));
            }
            reqs.push(FieldReq {
                field: field.to_string(),
                value: value.trim().replace("\\,", ",").replace("\\=", "="),
                negate,
            });
        }
        Ok(FieldSelector { reqs })
    }

    /// Whether this selector has no terms.
    pub fn is_everything(&self) -> bool {
        self.reqs.is_empty()
    }

    /// Whether `obj` satisfies every term.
    #[cfg(test)]
    pub fn matches(&self, obj: &Value) -> bool {
        self.matches_with(|f| object::path_string(obj, f))
    }

    /// Whether the field values `get` looks up ("" when unset) satisfy every term.
    pub fn matches_with<S: AsRef<str>>(&self, get: impl Fn(&str) -> S) -> bool {
        self.reqs
            .iter()
            .all(|r| (get(&r.field).as_ref() == r.value) != r.negate)
    }
}

fn split_unescaped_commas(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = s.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b',' && (i == 0 || bytes[i - 1] != b'\\') {
            out.push(&s[start..i]);
            start = i + 1;
        }
    }
    out.push(&s[start..]);
    out
}

/// The fields the real API server lets clients select on, per resource
/// (`group`, `plural`); every resource supports `metadata.name` and `metadata.namespace`.
pub fn selectable_fields(group: &str, plural: &str) -> Vec<&'static str> {
    let mut f = vec!["metadata.name", "metadata.namespace"];
    f.extend_from_slice(match (group, plural) {
        ("", "pods") => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        ("", "nodes") => &["spec.unschedulable"],
        ("", "namespaces") => &["status.phase"],
        ("", "secrets") => &["type"],
        ("", "events") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        ("events.k8s.io", "events") => &[
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
            "regarding.apiVersion",
            "regarding.resourceVersion",
            "regarding.fieldPath",
            "reason",
            "reportingController",
            "type",
        ],
        ("apps", "replicasets") => &["status.replicas"],
        ("batch", "jobs") => &["status.successful"],
        _ => &[],
    });
    f
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn labels(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn label_selector_operators_match_like_kubernetes() {
        let l = labels(json!({"app": "web", "tier": "front", "n": "5"}));
        let m = |s: &str| LabelSelector::parse(s).unwrap().matches(Some(&l));
        assert!(m("app=web"));
        assert!(m("app==web"));
        assert!(!m("app!=web"));
        assert!(m("missing!=x"));
        assert!(m("tier in (front, back)"));
        assert!(!m("tier notin (front,back)"));
        assert!(m("missing notin (a)"));
        assert!(!m("missing in (a)"));
        assert!(m("app"));
        assert!(!m("!app"));
        assert!(m("!missing"));
        assert!(m("app=web,tier in (front),!missing"));
        assert!(!m("app=web,tier=back"));
        assert!(m("n>4") && !m("n<5"));
        assert!(m(""));
        assert!(LabelSelector::parse("a in b").is_err());
        assert!(LabelSelector::parse("a=b c").is_err());
    }

    #[test]
    fn selector_objects_follow_policy_v1_semantics() {
        let l = labels(json!({"app": "web"}));
        assert!(!LabelSelector::from_object(None).unwrap().matches(Some(&l)));
        assert!(
            LabelSelector::from_object(Some(&json!({})))
                .unwrap()
                .matches(Some(&l))
        );
        let s = json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "canary", "operator": "DoesNotExist"}]});
        let sel = LabelSelector::from_object(Some(&s)).unwrap();
        assert!(sel.matches(Some(&l)));
        assert_eq!(sel.to_query(), "app=web,!canary");
    }

    #[test]
    fn field_selectors_compare_strings_and_reject_unknown_fields() {
        let pod = json!({"metadata": {"name": "a"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        let f = |s: &str| {
            FieldSelector::parse(s, &selectable_fields("", "pods"))
                .unwrap()
                .matches(&pod)
        };
        assert!(f("spec.nodeName=n1"));
        assert!(f("spec.nodeName==n1,status.phase!=Pending"));
        assert!(!f("metadata.name=b"));
        let unscheduled = json!({"metadata": {"name": "b"}});
        assert!(
            FieldSelector::parse("spec.nodeName=", &selectable_fields("", "pods"))
                .unwrap()
                .matches(&unscheduled)
        );
        let err = FieldSelector::parse("spec.foo=x", &selectable_fields("", "pods")).unwrap_err();
        assert_eq!(err.code, 400);
    }
}
