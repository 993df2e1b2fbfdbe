//! How objects go on the wire: whole and in the requested version, as
//! `PartialObjectMetadata` (kube's `*_metadata` calls and metadata watchers
//! ask for it), or as a kubectl `Table`; single objects and lists alike.

use serde_json::{Value, json};

use super::resources::ResourceDef;
use super::store::ListPage;
use super::stored::Stored;
use super::table;

/// The representation a request's `Accept` header asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    Full,
    Metadata,
    Table,
}

impl Shape {
    /// From the first media type of an `Accept` header.
    pub(crate) fn from_accept(accept: &str) -> Shape {
        let first = accept.split(',').next().unwrap_or("");
        let params: Vec<&str> = first.split(';').map(str::trim).collect();
        if params.contains(&"as=Table") {
            Shape::Table
        } else if params
            .iter()
            .any(|p| *p == "as=PartialObjectMetadata" || *p == "as=PartialObjectMetadataList")
        {
            Shape::Metadata
        } else {
            Shape::Full
        }
    }
}

fn partial(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// One object, serialized.
pub(crate) fn object(def: &ResourceDef, obj: &Value, shape: Shape) -> String {
    match shape {
        Shape::Metadata => partial(obj).to_string(),
        Shape::Table => table::render(
            def,
            std::slice::from_ref(obj),
            super::object::resource_version(obj),
            None,
        )
        .to_string(),
        Shape::Full => {
            let av = def.api_version();
            if obj.get("apiVersion").and_then(Value::as_str) == Some(av.as_str()) {
                serde_json::to_string(obj).unwrap_or_default()
            } else {
                let mut o = obj.clone();
                super::object::set_field(&mut o, "apiVersion", Value::String(av));
                serde_json::to_string(&o).unwrap_or_default()
            }
        }
    }
}

/// A stored object, serialized (its stored text when the version matches).
pub(crate) fn stored(def: &ResourceDef, obj: &Stored, shape: Shape) -> String {
    if shape == Shape::Full && obj.api_version() == def.api_version() {
        obj.json().to_string()
    } else {
        object(def, &obj.value(), shape)
    }
}

/// A list page, serialized (built as a string so large lists are not copied into one `Value`).
pub(crate) fn list(def: &ResourceDef, page: &ListPage, shape: Shape) -> String {
    if shape == Shape::Table {
        let items: Vec<Value> = page.items.iter().map(|o| o.value()).collect();
        return table::render(
            def,
            &items,
            page.resource_version,
            page.continue_token.as_deref(),
        )
        .to_string();
    }
    let mut meta = json!({"resourceVersion": page.resource_version.to_string()});
    if let Some(m) = meta.as_object_mut() {
        if let Some(c) = &page.continue_token {
            m.insert("continue".into(), json!(c));
        }
        if let Some(n) = page.remaining {
            m.insert("remainingItemCount".into(), json!(n));
        }
    }
    let (kind, api_version) = match shape {
        Shape::Metadata => (
            "PartialObjectMetadataList".to_string(),
            "meta.k8s.io/v1".to_string(),
        ),
        _ => (format!("{}List", def.kind), def.api_version()),
    };
    let mut out = format!(
        "{{\"kind\":\"{kind}\",\"apiVersion\":\"{api_version}\",\"metadata\":{meta},\"items\":["
    );
    for (i, item) in page.items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&stored(def, item, shape));
    }
    out.push_str("]}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_headers_pick_the_representation() {
        assert_eq!(
            Shape::from_accept("application/json;as=Table;v=v1;g=meta.k8s.io,application/json"),
            Shape::Table
        );
        assert_eq!(
            Shape::from_accept("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"),
            Shape::Metadata
        );
        assert_eq!(Shape::from_accept("application/json, */*"), Shape::Full);
    }
}
