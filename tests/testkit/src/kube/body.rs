//! Request bodies of creates, updates, evictions and deletes, decoded by
//! their `Content-Type` as kube-apiserver negotiates them: none means JSON;
//! JSON and YAML for every type; protobuf for built-in types only; any
//! other media type is a 415 whose Status names the accepted ones. Patch
//! bodies are `patch`'s. Returns JSON; knows nothing about the store.

use serde_json::Value;

use super::error::ApiError;
use super::protobuf::{self, Undecodable};

/// The type an endpoint decodes its body into.
#[derive(Debug, Clone)]
pub(crate) struct Expected {
    /// `v1`, `apps/v1`, `policy/v1`...
    pub api_version: String,
    /// `Namespace`, `Eviction`, `DeleteOptions`...
    pub kind: String,
    /// Built into Kubernetes (protobuf is served) rather than a custom resource.
    pub builtin: bool,
}

/// How the body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Media {
    Json,
    Yaml,
    Protobuf,
}

/// The media types a request body may have, in the API server's order.
fn accepted(builtin: bool) -> &'static str {
    if builtin {
        "application/json, application/yaml, application/vnd.kubernetes.protobuf"
    } else {
        "application/json, application/yaml"
    }
}

fn media(content_type: &str, builtin: bool) -> Result<Media, ApiError> {
    let base = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match base.as_str() {
        // an absent Content-Type takes the first supported type
        "" | "application/json" => Ok(Media::Json),
        "application/yaml" => Ok(Media::Yaml),
        protobuf::MEDIA_TYPE if builtin => Ok(Media::Protobuf),
        _ => Err(ApiError::unsupported_media_type(format!(
            "the body of the request was in an unknown format - accepted media types include: {}",
            accepted(builtin)
        ))),
    }
}

/// Decode `body` by `content_type` into JSON. `known_builtin` says whether
/// the API server has a built-in type of that apiVersion and kind (to tell
/// a kind it would refuse from one the emulation cannot decode).
pub(crate) fn decode(
    content_type: &str,
    body: &[u8],
    expected: &Expected,
    known_builtin: impl Fn(&str, &str) -> bool,
) -> Result<Value, ApiError> {
    match media(content_type, expected.builtin)? {
        Media::Json => serde_json::from_slice(body).map_err(|e| {
            unrecognized(
                body,
                expected,
                &format!("couldn't get version/kind; json parse error: {e}"),
            )
        }),
        Media::Yaml => {
            let text = std::str::from_utf8(body)
                .map_err(|_| ApiError::bad_request("the YAML body is not UTF-8"))?;
            let v: Value = serde_saphyr::from_str(text).map_err(|e| {
                ApiError::bad_request(format!("error converting YAML to JSON: {e}"))
            })?;
            if v.is_null() {
                return Err(ApiError::bad_request("the request body is empty"));
            }
            Ok(v)
        }
        Media::Protobuf => protobuf::decode(body, &expected.api_version, &expected.kind)
            .map_err(|e| protobuf_error(e, body, expected, known_builtin)),
    }
}

fn protobuf_error(
    e: Undecodable,
    body: &[u8],
    expected: &Expected,
    known_builtin: impl Fn(&str, &str) -> bool,
) -> ApiError {
    match e {
        Undecodable::Malformed(why) => unrecognized(body, expected, &why),
        Undecodable::Kind { api_version, kind } if !known_builtin(&api_version, &kind) => {
            let version = api_version.rsplit('/').next().unwrap_or("");
            ApiError::bad_request(format!(
                "{kind} in version \"{version}\" cannot be handled as a {}: no kind \"{kind}\" is registered for version \"{api_version}\" in scheme \"pkg/api/legacyscheme/scheme.go:30\"",
                expected.kind
            ))
        }
        // A real server decodes these; the emulation says plainly it cannot.
        Undecodable::Kind { api_version, kind } => ApiError::unsupported_media_type(format!(
            "the Kubernetes emulation does not decode protobuf {kind} ({api_version}) bodies; send application/json"
        )),
        Undecodable::Field(path) => ApiError::unsupported_media_type(format!(
            "the Kubernetes emulation does not decode {path} in a protobuf {} body; send application/json",
            expected.kind
        )),
    }
}

/// The API server's 400 for a body it cannot decode (its transformDecodeError).
fn unrecognized(body: &[u8], expected: &Expected, why: &str) -> ApiError {
    ApiError::bad_request(format!(
        "the object provided is unrecognized ({}: {}): {why}",
        expected.kind,
        summarize(body)
    ))
}

/// At most 30 bytes of a body, as the API server quotes one: text if it
/// looks like JSON, hex otherwise.
fn summarize(body: &[u8]) -> String {
    const MAX: usize = 30;
    let (head, more) = if body.len() > MAX {
        (&body[..MAX], " ...")
    } else {
        (body, "")
    };
    if body.is_empty() {
        return "<empty>".into();
    }
    if body[0] == b'{' {
        return format!("{}{more}", String::from_utf8_lossy(head));
    }
    let hex: String = head.iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}{more}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn pods() -> Expected {
        Expected {
            api_version: "v1".into(),
            kind: "Pod".into(),
            builtin: true,
        }
    }

    fn widgets() -> Expected {
        Expected {
            api_version: "example.com/v1".into(),
            kind: "Widget".into(),
            builtin: false,
        }
    }

    fn no_kind(_: &str, _: &str) -> bool {
        false
    }

    #[test]
    fn json_is_the_default_and_yaml_is_accepted() {
        let v = decode("", br#"{"a":1}"#, &pods(), no_kind).unwrap();
        assert_eq!(v, json!({"a": 1}));
        let v = decode(
            "application/json; charset=utf-8",
            br#"{"a":1}"#,
            &pods(),
            no_kind,
        )
        .unwrap();
        assert_eq!(v, json!({"a": 1}));
        let v = decode("application/yaml", b"a: 1\nb: [x]\n", &pods(), no_kind).unwrap();
        assert_eq!(v, json!({"a": 1, "b": ["x"]}));
    }

    #[test]
    fn unknown_media_types_get_415_naming_the_accepted_ones() {
        let e = decode("text/plain", b"hello", &pods(), no_kind).unwrap_err();
        assert_eq!(e.code, 415);
        assert_eq!(e.reason, "UnsupportedMediaType");
        assert_eq!(
            e.message,
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf"
        );
        // custom resources have no protobuf
        let e = decode(protobuf::MEDIA_TYPE, b"k8s\0", &widgets(), no_kind).unwrap_err();
        assert_eq!(e.code, 415);
        assert!(
            e.message
                .ends_with("include: application/json, application/yaml")
        );
    }

    #[test]
    fn protobuf_without_the_magic_is_a_bad_request_quoting_the_body() {
        let e = decode(protobuf::MEDIA_TYPE, b"not protobuf", &pods(), no_kind).unwrap_err();
        assert_eq!(e.code, 400);
        assert_eq!(
            e.message,
            "the object provided is unrecognized (Pod: 6e6f742070726f746f627566): provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]"
        );
    }
}
