//! ValidatingAdmissionPolicy (`admissionregistration.k8s.io/v1`): policies
//! and bindings checked and defaulted when written, as the API server's
//! validation does (CEL expressions must compile, fields must be valid), and
//! HTTP creates and updates admitted against them, their CEL expressions
//! evaluated with the `cel` crate. Pure: the store hands in the stored
//! policies, bindings and namespace; no storage, no HTTP.
//!
//! Evaluated: `matchConstraints` and a binding's `matchResources`
//! (`resourceRules` with `resourceNames` and `scope`,
//! `excludeResourceRules`, `namespaceSelector`, `objectSelector`),
//! `matchConditions`, `variables`, `validations` (`expression`, `message`,
//! `messageExpression`, `reason`), `failurePolicy` and `validationActions`,
//! with the variables `object`, `oldObject`, `request`, `namespaceObject`
//! and `variables`. Not: `paramKind` (a policy with one is refused),
//! `authorizer` (there is no authorization; an expression using it does not
//! compile), `auditAnnotations` (there is no audit log; accepted, never
//! evaluated), `matchPolicy: Equivalent` (rules match the version the
//! request used, as `Exact`), type checking (expressions are parsed and
//! their identifiers checked; a type error shows when evaluated), and the
//! Kubernetes CEL libraries beyond the standard ones and `ext.Strings`
//! (quantities, URLs, IPs, sets, `lists`, `format`, `timestamp` and
//! `duration`: calling one is an evaluation error).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use cel::common::ast::{EntryExpr, Expr, IdedExpr};
use cel::objects::{Key, Map as CelMap};
use cel::{Context, Env, ExecutionError, Program, Value as Cel};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::auth::UserInfo;
use super::error::ApiError;
use super::object;
use super::resources::ResourceDef;
use super::selectors::LabelSelector;

/// The policies' API group.
pub(crate) const GROUP: &str = "admissionregistration.k8s.io";
/// The policies' resource.
pub(crate) const POLICIES: &str = "validatingadmissionpolicies";
/// The bindings' resource.
pub(crate) const BINDINGS: &str = "validatingadmissionpolicybindings";

const POLICY_KIND: &str = "ValidatingAdmissionPolicy";
const BINDING_KIND: &str = "ValidatingAdmissionPolicyBinding";

/// What a request does, as admission sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    Create,
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
        }
    }

    fn options_kind(self) -> &'static str {
        match self {
            Operation::Create => "CreateOptions",
            Operation::Update => "UpdateOptions",
        }
    }
}

/// One write to admit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attributes<'a> {
    /// The resource written (for a subresource, the resource it belongs to).
    pub def: &'a ResourceDef,
    /// `""`, `status`, `scale`, `eviction`...
    pub subresource: &'a str,
    /// Group, version and kind of `object` (`autoscaling`, `v1`, `Scale` for a scale write).
    pub kind: (&'a str, &'a str, &'a str),
    pub operation: Operation,
    /// The namespace; `""` for cluster-scoped objects, the name for a namespace itself.
    pub namespace: &'a str,
    pub name: &'a str,
    /// The object as it would be stored.
    pub object: &'a Value,
    /// The stored object an update replaces.
    pub old: Option<&'a Value>,
    pub dry_run: bool,
}

/// What admission decided: warnings for the response, and the refusal, if any.
#[derive(Debug, Default)]
pub(crate) struct Admission {
    pub warnings: Vec<String>,
    pub denied: Option<ApiError>,
}

// ---------------------------------------------------------------------------
// The API types, as far as they are read. Every field is optional so that a
// missing or null one is told apart from a wrong type (a 400, as Go's
// decoding gives); unknown fields are ignored.

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PolicySpec {
    failure_policy: Option<String>,
    param_kind: Option<Value>,
    match_constraints: Option<MatchResources>,
    validations: Option<Vec<Validation>>,
    audit_annotations: Option<Vec<Value>>,
    match_conditions: Option<Vec<NamedExpression>>,
    variables: Option<Vec<NamedExpression>>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MatchResources {
    namespace_selector: Option<Value>,
    object_selector: Option<Value>,
    resource_rules: Option<Vec<Rule>>,
    exclude_resource_rules: Option<Vec<Rule>>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    api_groups: Option<Vec<String>>,
    api_versions: Option<Vec<String>>,
    resources: Option<Vec<String>>,
    operations: Option<Vec<String>>,
    resource_names: Option<Vec<String>>,
    scope: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Validation {
    expression: Option<String>,
    message: Option<String>,
    message_expression: Option<String>,
    reason: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NamedExpression {
    name: Option<String>,
    expression: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BindingSpec {
    policy_name: Option<String>,
    match_resources: Option<MatchResources>,
    validation_actions: Option<Vec<String>>,
}

/// `spec` of a policy or binding, decoded; a field of the wrong type is the
/// API server's 400 for a body it cannot decode.
fn spec_of<T: DeserializeOwned + Default>(obj: &Value, kind: &str) -> Result<T, ApiError> {
    match obj.get("spec") {
        None | Some(Value::Null) => Ok(T::default()),
        Some(spec) => serde_path_to_error::deserialize(spec).map_err(|e| {
            ApiError::bad_request(format!(
                "{kind} in version \"v1\" cannot be handled as a {kind}: spec.{}: {}",
                e.path(),
                e.inner()
            ))
        }),
    }
}

// ---------------------------------------------------------------------------
// Field errors, worded as the API server's `field.Error`s.

#[derive(Debug)]
struct FieldError {
    field: String,
    reason: &'static str,
    body: String,
}

impl FieldError {
    fn required(field: impl Into<String>, detail: &str) -> FieldError {
        FieldError {
            field: field.into(),
            reason: "FieldValueRequired",
            body: with_detail("Required value".into(), detail),
        }
    }

    /// `value` as Go prints it (quoted for a string).
    fn invalid(field: impl Into<String>, value: String, detail: &str) -> FieldError {
        FieldError {
            field: field.into(),
            reason: "FieldValueInvalid",
            body: with_detail(format!("Invalid value: {value}"), detail),
        }
    }

    fn not_supported(field: impl Into<String>, value: &str, supported: &[&str]) -> FieldError {
        let list: Vec<String> = supported.iter().map(|s| go_quote(s)).collect();
        FieldError {
            field: field.into(),
            reason: "FieldValueNotSupported",
            body: format!(
                "Unsupported value: {}: supported values: {}",
                go_quote(value),
                list.join(", ")
            ),
        }
    }

    fn duplicate(field: impl Into<String>, value: &str) -> FieldError {
        FieldError {
            field: field.into(),
            reason: "FieldValueDuplicate",
            body: format!("Duplicate value: {}", go_quote(value)),
        }
    }

    fn forbidden(field: impl Into<String>, detail: &str) -> FieldError {
        FieldError {
            field: field.into(),
            reason: "FieldValueForbidden",
            body: with_detail("Forbidden".into(), detail),
        }
    }
}

fn with_detail(mut body: String, detail: &str) -> String {
    if !detail.is_empty() {
        body.push_str(": ");
        body.push_str(detail);
    }
    body
}

/// A string as Go's `%q` prints it (JSON's escaping is the same for what names hold).
fn go_quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// A string list as Go's `%#v` prints a `[]string`.
fn go_strings(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| go_quote(s)).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

/// 422 `<Kind>.admissionregistration.k8s.io "<name>" is invalid: <errors>`.
fn invalid(kind: &str, name: &str, errs: &[FieldError]) -> ApiError {
    let texts: Vec<String> = errs
        .iter()
        .map(|e| format!("{}: {}", e.field, e.body))
        .collect();
    let all = match texts.as_slice() {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    };
    let causes: Vec<Value> = errs
        .iter()
        .map(|e| json!({"reason": e.reason, "message": e.body, "field": e.field}))
        .collect();
    ApiError::new(
        422,
        "Invalid",
        format!("{kind}.{GROUP} \"{name}\" is invalid: {all}"),
    )
    .with_details(json!({"name": name, "group": GROUP, "kind": kind, "causes": causes}))
}

// ---------------------------------------------------------------------------
// CEL.

/// The CEL environment: the standard library and `ext.Strings`, as far as
/// the Kubernetes one goes with them.
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| {
    let mut env = Env::stdlib();
    // a conflict here would only lose the string extension, never panic
    let _ = env.add_extension(cel::extensions::strings);
    Arc::new(env)
});

/// The variables a policy's expressions may use.
const VARIABLES: &[&str] = &[
    "object",
    "oldObject",
    "request",
    "namespaceObject",
    "variables",
];

/// Identifiers CEL resolves itself (type names, namespaces of functions).
const BUILTIN_IDENTS: &[&str] = &[
    "bool",
    "bytes",
    "double",
    "dyn",
    "int",
    "list",
    "map",
    "null_type",
    "string",
    "type",
    "uint",
    "optional",
    "strings",
];

/// An expression compiled, or why not (the API server's wording:
/// `compilation failed: ERROR: <input>:L:C: ...`).
fn compile(expression: &str) -> Result<Program, String> {
    let program = ENV
        .compile(expression)
        .map_err(|e| format!("compilation failed: {e}"))?;
    let mut scope = Vec::new();
    if let Some((name, id)) = undeclared(program.expression(), &mut scope) {
        let (line, column) = program
            .source_info()
            .offset_for(id)
            .map(|(start, _)| line_column(expression, start))
            .unwrap_or((1, 1));
        // `params` is undeclared too, as the API server has it without a paramKind
        let why = if name == "authorizer" {
            "the Kubernetes emulation has no authorization: 'authorizer' is not supported".into()
        } else {
            format!("undeclared reference to '{name}' (in container '')")
        };
        return Err(format!(
            "compilation failed: ERROR: <input>:{line}:{column}: {why}"
        ));
    }
    Ok(program)
}

/// 1-based line and column of character offset `at` in `text`.
fn line_column(text: &str, at: u32) -> (usize, usize) {
    let mut line = 1;
    let mut column = 1;
    for c in text.chars().take(at as usize) {
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    (line, column)
}

/// The first identifier that is neither declared nor bound by a comprehension.
fn undeclared<'e>(e: &'e IdedExpr, scope: &mut Vec<&'e str>) -> Option<(&'e str, u64)> {
    match &e.expr {
        Expr::Ident(name) => {
            let known = name.starts_with('@')
                || scope.contains(&name.as_str())
                || VARIABLES.contains(&name.as_str())
                || BUILTIN_IDENTS.contains(&name.as_str());
            (!known).then_some((name.as_str(), e.id))
        }
        Expr::Call(call) => call
            .target
            .as_deref()
            .and_then(|t| undeclared(t, scope))
            .or_else(|| call.args.iter().find_map(|a| undeclared(a, scope))),
        Expr::Comprehension(c) => {
            if let Some(found) =
                undeclared(&c.iter_range, scope).or_else(|| undeclared(&c.accu_init, scope))
            {
                return Some(found);
            }
            let depth = scope.len();
            scope.push(&c.iter_var);
            if let Some(v) = &c.iter_var2 {
                scope.push(v);
            }
            scope.push(&c.accu_var);
            let found = undeclared(&c.loop_cond, scope)
                .or_else(|| undeclared(&c.loop_step, scope))
                .or_else(|| undeclared(&c.result, scope));
            scope.truncate(depth);
            found
        }
        Expr::List(l) => l.elements.iter().find_map(|x| undeclared(x, scope)),
        Expr::Map(m) => m.entries.iter().find_map(|x| match &x.expr {
            EntryExpr::MapEntry(me) => {
                undeclared(&me.key, scope).or_else(|| undeclared(&me.value, scope))
            }
            EntryExpr::StructField(f) => undeclared(&f.value, scope),
        }),
        Expr::Struct(s) => s.entries.iter().find_map(|x| match &x.expr {
            EntryExpr::MapEntry(me) => {
                undeclared(&me.key, scope).or_else(|| undeclared(&me.value, scope))
            }
            EntryExpr::StructField(f) => undeclared(&f.value, scope),
        }),
        Expr::Select(s) => undeclared(&s.operand, scope),
        Expr::Literal(_) | Expr::Unspecified => None,
    }
}

/// A JSON value as CEL sees an unstructured object: maps, lists, `int`
/// (or `uint` past `int`'s range), `double`, strings, booleans, `null`.
pub(crate) fn to_cel(v: &Value) -> Cel {
    match v {
        Value::Null => Cel::Null,
        Value::Bool(b) => Cel::Bool(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Cel::Int(i)
            } else if let Some(u) = n.as_u64() {
                Cel::UInt(u)
            } else {
                Cel::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => Cel::String(Arc::new(s.clone())),
        Value::Array(a) => Cel::List(Arc::new(a.iter().map(to_cel).collect())),
        Value::Object(m) => Cel::Map(CelMap {
            map: Arc::new(
                m.iter()
                    .map(|(k, v)| (Key::String(Arc::new(k.clone())), to_cel(v)))
                    .collect(),
            ),
        }),
    }
}

/// An evaluation error as cel-go words the common ones.
fn eval_error(e: &ExecutionError) -> String {
    match e {
        ExecutionError::NoSuchKey(k) => format!("no such key: {k}"),
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------------------
// Validation and defaulting of policies and bindings.

/// Whether `def` is one of the two types this module checks.
pub(crate) fn is_policy_type(def: &ResourceDef) -> bool {
    def.group == GROUP && (def.plural == POLICIES || def.plural == BINDINGS)
}

/// Fill in what the API server defaults in a policy or binding (a failure
/// policy of `Fail`, selectors matching everything, rules of any scope,
/// `Equivalent` matching).
pub(crate) fn apply_defaults(def: &ResourceDef, obj: &mut Value) {
    let Some(spec) = object::child_map(obj, "spec") else {
        return;
    };
    let resources = if def.plural == POLICIES {
        spec.entry("failurePolicy").or_insert_with(|| json!("Fail"));
        spec.get_mut("matchConstraints")
    } else {
        spec.get_mut("matchResources")
    };
    let Some(Value::Object(m)) = resources else {
        return;
    };
    m.entry("matchPolicy")
        .or_insert_with(|| json!("Equivalent"));
    for sel in ["namespaceSelector", "objectSelector"] {
        m.entry(sel).or_insert_with(|| json!({}));
    }
    for rules in ["resourceRules", "excludeResourceRules"] {
        if let Some(Value::Array(rs)) = m.get_mut(rules) {
            for r in rs.iter_mut().filter_map(Value::as_object_mut) {
                r.entry("scope").or_insert_with(|| json!("*"));
            }
        }
    }
}

/// Check a policy or binding as the API server validates one on create and update.
pub(crate) fn validate(def: &ResourceDef, obj: &Value) -> Result<(), ApiError> {
    let name = object::name(obj).unwrap_or("");
    if def.plural == POLICIES {
        let spec: PolicySpec = spec_of(obj, POLICY_KIND)?;
        let errs = policy_errors(&spec);
        if !errs.is_empty() {
            return Err(invalid(POLICY_KIND, name, &errs));
        }
    } else if def.plural == BINDINGS {
        let spec: BindingSpec = spec_of(obj, BINDING_KIND)?;
        let errs = binding_errors(&spec);
        if !errs.is_empty() {
            return Err(invalid(BINDING_KIND, name, &errs));
        }
    }
    Ok(())
}

const OPERATIONS: &[&str] = &["*", "CONNECT", "CREATE", "DELETE", "UPDATE"];
const SCOPES: &[&str] = &["*", "Cluster", "Namespaced"];
const REASONS: &[&str] = &[
    "Forbidden",
    "Invalid",
    "RequestEntityTooLarge",
    "Unauthorized",
];
const ACTIONS: &[&str] = &["Audit", "Deny", "Warn"];

fn policy_errors(spec: &PolicySpec) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(f) = &spec.failure_policy
        && f != "Fail"
        && f != "Ignore"
    {
        errs.push(FieldError::not_supported(
            "spec.failurePolicy",
            f,
            &["Fail", "Ignore"],
        ));
    }
    if spec.param_kind.as_ref().is_some_and(|p| !p.is_null()) {
        errs.push(FieldError::forbidden(
            "spec.paramKind",
            "the Kubernetes emulation does not support policy parameters",
        ));
    }
    match &spec.match_constraints {
        None => errs.push(FieldError::required("spec.matchConstraints", "")),
        Some(m) => {
            match_resources_errors(m, "spec.matchConstraints", &mut errs);
            if m.resource_rules.as_ref().is_none_or(Vec::is_empty) {
                errs.push(FieldError::required(
                    "spec.matchConstraints.resourceRules",
                    "",
                ));
            }
        }
    }
    for (i, c) in spec.match_conditions.iter().flatten().enumerate() {
        named_expression_errors(c, &format!("spec.matchConditions[{i}]"), &mut errs);
    }
    for (i, v) in spec.variables.iter().flatten().enumerate() {
        named_expression_errors(v, &format!("spec.variables[{i}]"), &mut errs);
    }
    let validations = spec.validations.as_deref().unwrap_or_default();
    if validations.is_empty() && spec.audit_annotations.as_ref().is_none_or(Vec::is_empty) {
        errs.push(FieldError::required(
            "spec.validations",
            "validations or auditAnnotations must contain at least one item",
        ));
    }
    for (i, v) in validations.iter().enumerate() {
        let at = format!("spec.validations[{i}]");
        let expression = v.expression.as_deref().unwrap_or("");
        if expression.trim().is_empty() {
            errs.push(FieldError::required(
                format!("{at}.expression"),
                "expression is not specified",
            ));
        } else if let Err(why) = compile(expression) {
            errs.push(FieldError::invalid(
                format!("{at}.expression"),
                go_quote(expression),
                &why,
            ));
        }
        if let Some(me) = &v.message_expression {
            if me.trim().is_empty() {
                if !me.is_empty() {
                    errs.push(FieldError::invalid(
                        format!("{at}.messageExpression"),
                        go_quote(me),
                        "must be non-empty if specified",
                    ));
                }
            } else if let Err(why) = compile(me) {
                errs.push(FieldError::invalid(
                    format!("{at}.messageExpression"),
                    go_quote(me),
                    &why,
                ));
            }
        }
        if let Some(m) = &v.message {
            let trimmed = m.trim();
            if !m.is_empty() && trimmed.is_empty() {
                errs.push(FieldError::invalid(
                    format!("{at}.message"),
                    go_quote(m),
                    "message must be non-empty if specified",
                ));
            } else if trimmed.contains(['\n', '\r']) {
                errs.push(FieldError::invalid(
                    format!("{at}.message"),
                    go_quote(m),
                    "message must not contain line breaks",
                ));
            }
        }
        if let Some(r) = &v.reason
            && !REASONS.contains(&r.as_str())
        {
            errs.push(FieldError::not_supported(
                format!("{at}.reason"),
                r,
                REASONS,
            ));
        }
    }
    errs
}

fn named_expression_errors(e: &NamedExpression, at: &str, errs: &mut Vec<FieldError>) {
    if e.name.as_deref().is_none_or(|n| n.trim().is_empty()) {
        errs.push(FieldError::required(format!("{at}.name"), ""));
    }
    let expression = e.expression.as_deref().unwrap_or("");
    if expression.trim().is_empty() {
        errs.push(FieldError::required(format!("{at}.expression"), ""));
    } else if let Err(why) = compile(expression) {
        errs.push(FieldError::invalid(
            format!("{at}.expression"),
            go_quote(expression),
            &why,
        ));
    }
}

fn match_resources_errors(m: &MatchResources, at: &str, errs: &mut Vec<FieldError>) {
    for sel in ["namespaceSelector", "objectSelector"] {
        let v = match sel {
            "namespaceSelector" => &m.namespace_selector,
            _ => &m.object_selector,
        };
        if let Some(v) = v.as_ref().filter(|v| !v.is_null())
            && let Err(e) = LabelSelector::from_object(Some(v))
        {
            errs.push(FieldError::invalid(
                format!("{at}.{sel}"),
                go_quote(&v.to_string()),
                &e.message,
            ));
        }
    }
    for (list, rules) in [
        ("resourceRules", &m.resource_rules),
        ("excludeResourceRules", &m.exclude_resource_rules),
    ] {
        for (i, r) in rules.iter().flatten().enumerate() {
            rule_errors(r, &format!("{at}.{list}[{i}]"), errs);
        }
    }
}

fn rule_errors(r: &Rule, at: &str, errs: &mut Vec<FieldError>) {
    let ops = r.operations.as_deref().unwrap_or_default();
    if ops.is_empty() {
        errs.push(FieldError::required(format!("{at}.operations"), ""));
    } else if ops.len() > 1 && ops.iter().any(|o| o == "*") {
        errs.push(FieldError::invalid(
            format!("{at}.operations"),
            go_strings(ops),
            "if '*' is present, must not specify other operations",
        ));
    }
    for (i, op) in ops.iter().enumerate() {
        if !OPERATIONS.contains(&op.as_str()) {
            errs.push(FieldError::not_supported(
                format!("{at}.operations[{i}]"),
                op,
                OPERATIONS,
            ));
        }
    }
    for (field, what, list) in [
        ("apiGroups", "API groups", &r.api_groups),
        ("apiVersions", "API versions", &r.api_versions),
    ] {
        let items = list.as_deref().unwrap_or_default();
        if items.is_empty() {
            errs.push(FieldError::required(format!("{at}.{field}"), ""));
        } else if items.len() > 1 && items.iter().any(|x| x == "*") {
            errs.push(FieldError::invalid(
                format!("{at}.{field}"),
                go_strings(items),
                &format!("if '*' is present, must not specify other {what}"),
            ));
        }
    }
    for (i, v) in r.api_versions.iter().flatten().enumerate() {
        if v.is_empty() {
            errs.push(FieldError::required(format!("{at}.apiVersions[{i}]"), ""));
        }
    }
    let resources = r.resources.as_deref().unwrap_or_default();
    if resources.is_empty() {
        errs.push(FieldError::required(format!("{at}.resources"), ""));
    }
    for (i, res) in resources.iter().enumerate() {
        if res.is_empty() {
            errs.push(FieldError::required(format!("{at}.resources[{i}]"), ""));
        }
    }
    if let Some(s) = &r.scope
        && !SCOPES.contains(&s.as_str())
    {
        errs.push(FieldError::not_supported(format!("{at}.scope"), s, SCOPES));
    }
}

fn binding_errors(spec: &BindingSpec) -> Vec<FieldError> {
    let mut errs = Vec::new();
    match spec.policy_name.as_deref().unwrap_or("") {
        "" => errs.push(FieldError::required("spec.policyName", "")),
        n if !object::is_dns_subdomain(n) => errs.push(FieldError::invalid(
            "spec.policyName",
            go_quote(n),
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        )),
        _ => {}
    }
    if let Some(m) = &spec.match_resources {
        // sic: the API server's field path has this typo
        match_resources_errors(m, "spec.matchResouces", &mut errs);
    }
    let actions = spec.validation_actions.as_deref().unwrap_or_default();
    let mut seen: Vec<&str> = Vec::new();
    for (i, a) in actions.iter().enumerate() {
        if !ACTIONS.contains(&a.as_str()) {
            errs.push(FieldError::not_supported(
                format!("spec.validationActions[{i}]"),
                a,
                ACTIONS,
            ));
        }
        if seen.contains(&a.as_str()) {
            errs.push(FieldError::duplicate(
                format!("spec.validationActions[{i}]"),
                a,
            ));
        }
        seen.push(a);
    }
    if seen.contains(&"Deny") && seen.contains(&"Warn") {
        errs.push(FieldError::invalid(
            "spec.validationActions",
            go_strings(actions),
            "must not contain both Deny and Warn (repeating the same validation failure information in the API response and headers serves no purpose)",
        ));
    }
    if seen.is_empty() {
        errs.push(FieldError::required(
            "spec.validationActions",
            "at least one validation action is required",
        ));
    }
    errs
}

// ---------------------------------------------------------------------------
// Matching.

fn contains_or_any(list: Option<&Vec<String>>, value: &str) -> bool {
    list.into_iter().flatten().any(|x| x == "*" || x == value)
}

impl Rule {
    fn matches(&self, a: &Attributes<'_>) -> bool {
        let is_namespace = a.def.group.is_empty() && a.def.plural == "namespaces";
        let scope = match self.scope.as_deref() {
            None | Some("*") => true,
            Some("Namespaced") => !is_namespace && !a.namespace.is_empty(),
            Some("Cluster") => is_namespace || a.namespace.is_empty(),
            Some(_) => false,
        };
        let resource = self.resources.iter().flatten().any(|r| {
            let (res, sub) = r.split_once('/').unwrap_or((r.as_str(), ""));
            (res == "*" || res == a.def.plural) && (sub == "*" || sub == a.subresource)
        });
        let named = match self.resource_names.as_deref() {
            None | Some([]) => true,
            Some(names) => names.iter().any(|n| n == a.name),
        };
        scope
            && contains_or_any(self.operations.as_ref(), a.operation.as_str())
            && contains_or_any(self.api_groups.as_ref(), &a.def.group)
            && contains_or_any(self.api_versions.as_ref(), &a.def.version)
            && resource
            && named
    }
}

/// A selector of `matchResources`: absent, null or `{}` selects everything.
fn selector(v: Option<&Value>) -> Option<LabelSelector> {
    let v = v.filter(|v| !v.is_null())?;
    LabelSelector::from_object(Some(v))
        .ok()
        .filter(|s| !s.is_everything())
}

impl MatchResources {
    /// Whether a request is in scope; `namespace` is the request's namespace object.
    fn matches(&self, a: &Attributes<'_>, namespace: Option<&Value>) -> bool {
        let is_namespace = a.def.group.is_empty() && a.def.plural == "namespaces";
        if let Some(sel) = selector(self.namespace_selector.as_ref())
            && (!a.namespace.is_empty() || is_namespace)
        {
            // a namespace written is matched by its own new labels
            let ns_obj = if is_namespace && a.subresource.is_empty() {
                Some(a.object)
            } else {
                namespace
            };
            let Some(ns_obj) = ns_obj else {
                return false;
            };
            let labels = object::labels(ns_obj);
            // every namespace of a real cluster has this label
            let matched = sel.matches_with(|k| {
                labels
                    .and_then(|m| m.get(k))
                    .and_then(Value::as_str)
                    .or((k == "kubernetes.io/metadata.name").then_some(a.namespace))
            });
            if !matched {
                return false;
            }
        }
        if let Some(sel) = selector(self.object_selector.as_ref())
            && !sel.matches_object(a.object)
            && !a.old.is_some_and(|o| sel.matches_object(o))
        {
            return false;
        }
        if self
            .exclude_resource_rules
            .iter()
            .flatten()
            .any(|r| r.matches(a))
        {
            return false;
        }
        match self.resource_rules.as_deref() {
            None | Some([]) => true,
            Some(rules) => rules.iter().any(|r| r.matches(a)),
        }
    }
}

// ---------------------------------------------------------------------------
// Admission.

/// One validation's outcome when it does not admit.
struct Failure {
    message: String,
    /// `Invalid` unless the validation names another.
    reason: String,
}

/// The variables every expression of one request sees.
struct Activation {
    object: Cel,
    old_object: Cel,
    request: Cel,
    namespace_object: Cel,
}

impl Activation {
    fn new(a: &Attributes<'_>, namespace: Option<&Value>, user: &UserInfo) -> Activation {
        let (kg, kv, kk) = a.kind;
        let kind = json!({"group": kg, "version": kv, "kind": kk});
        let resource =
            json!({"group": a.def.group, "version": a.def.version, "resource": a.def.plural});
        let request = json!({
            "uid": object::new_uid(),
            "kind": kind,
            "resource": resource,
            "subResource": a.subresource,
            "requestKind": kind,
            "requestResource": resource,
            "requestSubResource": a.subresource,
            "name": a.name,
            "namespace": a.namespace,
            "operation": a.operation.as_str(),
            "userInfo": {"username": user.username, "uid": "", "groups": user.groups, "extra": {}},
            "dryRun": a.dry_run,
            "options": {"kind": a.operation.options_kind(), "apiVersion": "meta.k8s.io/v1"},
        });
        Activation {
            object: to_cel(a.object),
            old_object: a.old.map_or(Cel::Null, to_cel),
            request: to_cel(&request),
            namespace_object: namespace
                .filter(|_| a.def.namespaced)
                .map_or(Cel::Null, to_cel),
        }
    }

    fn context(&self, variables: &HashMap<Key, Cel>) -> Context<'static, 'static> {
        let mut ctx = Context::with_env(ENV.clone());
        ctx.add_variable_from_value("object", self.object.clone());
        ctx.add_variable_from_value("oldObject", self.old_object.clone());
        ctx.add_variable_from_value("request", self.request.clone());
        ctx.add_variable_from_value("namespaceObject", self.namespace_object.clone());
        ctx.add_variable_from_value(
            "variables",
            Cel::Map(CelMap {
                map: Arc::new(variables.clone()),
            }),
        );
        ctx
    }
}

/// Evaluate `expression`: its value, or the error as the API server words it.
fn evaluate(expression: &str, ctx: &Context<'_, '_>) -> Result<Cel, String> {
    let program = compile(expression)?;
    program.execute(ctx).map_err(|e| {
        format!(
            "expression '{expression}' resulted in error: {}",
            eval_error(&e)
        )
    })
}

/// The failures of one policy for one binding (none: admitted).
fn evaluate_policy(spec: &PolicySpec, act: &Activation) -> Vec<Failure> {
    let ignore = spec.failure_policy.as_deref() == Some("Ignore");
    let on_error = |message: String| -> Vec<Failure> {
        if ignore {
            Vec::new()
        } else {
            vec![Failure {
                message,
                reason: "Invalid".into(),
            }]
        }
    };
    // composited variables, in order; one that fails is left out (using it fails)
    let mut vars: HashMap<Key, Cel> = HashMap::new();
    for v in spec.variables.iter().flatten() {
        let (Some(name), Some(expression)) = (&v.name, &v.expression) else {
            continue;
        };
        if let Ok(value) = evaluate(expression, &act.context(&vars)) {
            vars.insert(Key::String(Arc::new(name.clone())), value);
        }
    }
    let ctx = act.context(&vars);
    for c in spec.match_conditions.iter().flatten() {
        let expression = c.expression.as_deref().unwrap_or("");
        match evaluate(expression, &ctx) {
            Ok(Cel::Bool(true)) => {}
            Ok(Cel::Bool(false)) => return Vec::new(),
            Ok(_) => {
                return on_error(format!(
                    "matchCondition '{}' must evaluate to bool",
                    c.name.as_deref().unwrap_or("")
                ));
            }
            Err(e) => return on_error(e),
        }
    }
    let mut failures = Vec::new();
    for v in spec.validations.iter().flatten() {
        let expression = v.expression.as_deref().unwrap_or("");
        match evaluate(expression, &ctx) {
            Ok(Cel::Bool(true)) => {}
            Ok(_) => {
                let from_expression = v
                    .message_expression
                    .as_deref()
                    .filter(|m| !m.trim().is_empty())
                    .and_then(|m| match evaluate(m, &ctx) {
                        Ok(Cel::String(s)) => Some(s.trim().to_string()),
                        _ => None,
                    })
                    .filter(|m| !m.is_empty() && !m.contains(['\n', '\r']));
                let message = from_expression
                    .or_else(|| {
                        v.message
                            .as_deref()
                            .map(str::trim)
                            .filter(|m| !m.is_empty())
                            .map(str::to_string)
                    })
                    .unwrap_or_else(|| format!("failed expression: {}", expression.trim()));
                failures.push(Failure {
                    message,
                    reason: v.reason.clone().unwrap_or_else(|| "Invalid".into()),
                });
            }
            Err(e) => failures.extend(on_error(e)),
        }
    }
    failures
}

/// The HTTP status the API server gives a policy's `reason`.
fn reason_code(reason: &str) -> u16 {
    match reason {
        "Forbidden" => 403,
        "Unauthorized" => 401,
        "RequestEntityTooLarge" => 413,
        _ => 422,
    }
}

/// The API server's refusal: `admission.NewForbidden`'s message
/// (`<resource> "<name>" is forbidden: <cause>`) with the validation's
/// reason and its code, and the cause as the one listed.
fn denial(a: &Attributes<'_>, policy: &str, binding: &str, f: &Failure) -> ApiError {
    let cause = format!(
        "ValidatingAdmissionPolicy '{policy}' with binding '{binding}' denied request: {}",
        f.message
    );
    let name = object::name(a.object)
        .filter(|n| !n.is_empty())
        .or_else(|| object::meta_str(a.object, "generateName").filter(|n| !n.is_empty()))
        .unwrap_or("Unknown");
    let mut e = ApiError::forbidden(&a.def.group, &a.def.plural, name, &cause);
    e.code = reason_code(&f.reason);
    e.reason = f.reason.clone();
    if let Some(Value::Object(d)) = &mut e.details {
        d.insert("causes".into(), json!([{"message": cause}]));
    }
    e
}

/// Admit a write: every binding (in name order) of an existing policy
/// (in name order) whose constraints and own match resources select the
/// request evaluates the policy; its failures deny, warn or are only
/// audited as the binding's `validationActions` say. The first denial is
/// the answer; warnings are kept either way.
pub(crate) fn admit(
    policies: &[Value],
    bindings: &[Value],
    namespace: Option<&Value>,
    a: &Attributes<'_>,
    user: &UserInfo,
) -> Admission {
    let mut out = Admission::default();
    if bindings.is_empty() || policies.is_empty() {
        return out;
    }
    let bindings: Vec<(&str, BindingSpec)> = bindings
        .iter()
        .filter_map(|b| {
            let spec: BindingSpec = spec_of(b, BINDING_KIND).ok()?;
            Some((object::name(b).unwrap_or(""), spec))
        })
        .collect();
    let mut activation: Option<Activation> = None;
    for p in policies {
        let policy_name = object::name(p).unwrap_or("");
        let mine: Vec<&(&str, BindingSpec)> = bindings
            .iter()
            .filter(|(_, b)| b.policy_name.as_deref() == Some(policy_name))
            .collect();
        if mine.is_empty() {
            continue;
        }
        let Ok(spec) = spec_of::<PolicySpec>(p, POLICY_KIND) else {
            continue;
        };
        let constraints = spec.match_constraints.clone().unwrap_or_default();
        if spec.resource_rules_missing() || !constraints.matches(a, namespace) {
            continue;
        }
        for (binding_name, binding) in mine {
            if let Some(m) = &binding.match_resources
                && !m.matches(a, namespace)
            {
                continue;
            }
            let act = activation.get_or_insert_with(|| Activation::new(a, namespace, user));
            for f in evaluate_policy(&spec, act) {
                for action in binding.validation_actions.iter().flatten() {
                    match action.as_str() {
                        "Deny" if out.denied.is_none() => {
                            out.denied = Some(denial(a, policy_name, binding_name, &f));
                        }
                        "Warn" => out.warnings.push(format!(
                            "Validation failed for ValidatingAdmissionPolicy '{policy_name}' with binding '{binding_name}': {}",
                            f.message
                        )),
                        _ => {}
                    }
                }
            }
        }
    }
    out
}

impl PolicySpec {
    /// A policy without resource rules matches nothing (validation refuses one).
    fn resource_rules_missing(&self) -> bool {
        self.match_constraints
            .as_ref()
            .and_then(|m| m.resource_rules.as_ref())
            .is_none_or(Vec::is_empty)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::kube::Emulator;

    /// The policy heal8s installs (docs: approvals name their author), verbatim.
    const HEAL8S_POLICY: &str = r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: heal8s-approvals}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - apiGroups: ["heal8s.io"]
      apiVersions: ["*"]
      operations: ["CREATE", "UPDATE"]
      resources: ["remediations"]
  validations:
  - expression: >-
      !has(object.spec.approval) ||
      (oldObject != null && has(oldObject.spec.approval) && object.spec.approval == oldObject.spec.approval) ||
      ((!has(object.spec.approval.approvedBy) || object.spec.approval.approvedBy == request.userInfo.username) &&
       (!has(object.spec.approval.rejectedBy) || object.spec.approval.rejectedBy == request.userInfo.username))
    message: spec.approval may only name the user who makes the change
    reason: Forbidden
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: heal8s-approvals}
spec:
  policyName: heal8s-approvals
  validationActions: [Deny]
"#;

    const DENIED: &str = "remediations.heal8s.io \"r1\" is forbidden: ValidatingAdmissionPolicy 'heal8s-approvals' with binding 'heal8s-approvals' denied request: spec.approval may only name the user who makes the change";

    fn yaml_docs(text: &str) -> Vec<Value> {
        text.split("\n---\n")
            .map(|d| serde_saphyr::from_str::<Value>(d).unwrap())
            .collect()
    }

    fn remediation(name: &str, spec: Value) -> Value {
        json!({"apiVersion": "heal8s.io/v1alpha1", "kind": "Remediation",
               "metadata": {"name": name, "namespace": "default"}, "spec": spec})
    }

    fn spec() -> Value {
        json!({"trigger": {"alert": "PodCrashLooping", "labels": {"pod": "web-1"}},
               "target": {"kind": "Deployment", "name": "web"},
               "remediation": {"action": "RestartPod", "params": {"count": 1, "ratio": 0.5}},
               "mode": "approve"})
    }

    /// An HTTP answer: status, body, `Warning` header values.
    #[derive(Debug)]
    struct Answer {
        code: u16,
        body: Value,
        warnings: Vec<String>,
    }

    struct Cluster {
        emu: Emulator,
        http: reqwest::Client,
    }

    const REMEDIATIONS: &str = "/apis/heal8s.io/v1alpha1/namespaces/default/remediations";

    impl Cluster {
        async fn start() -> Cluster {
            let emu = Emulator::start().await.unwrap();
            emu.add_user("alice-token", "alice", &["sre"]);
            emu.add_user("bob-token", "bob", &[]);
            Cluster {
                emu,
                http: reqwest::Client::new(),
            }
        }

        /// With the heal8s policy and binding, created through the API.
        async fn with_heal8s_policy() -> Cluster {
            let c = Cluster::start().await;
            for doc in yaml_docs(HEAL8S_POLICY) {
                c.install(doc).await;
            }
            c
        }

        /// Create a policy or binding through the HTTP API (it must succeed).
        async fn install(&self, doc: Value) {
            let plural = if doc["kind"] == "ValidatingAdmissionPolicy" {
                POLICIES
            } else {
                BINDINGS
            };
            let a = self
                .send(
                    "POST",
                    &format!("/apis/{GROUP}/v1/{plural}"),
                    None,
                    "application/json",
                    &doc,
                )
                .await;
            assert_eq!(a.code, 201, "{a:?}");
        }

        async fn send(
            &self,
            method: &str,
            path: &str,
            token: Option<&str>,
            content_type: &str,
            body: &Value,
        ) -> Answer {
            let mut r = self
                .http
                .request(method.parse().unwrap(), format!("{}{path}", self.emu.url()))
                .header("Content-Type", content_type)
                .body(body.to_string());
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            let resp = r.send().await.unwrap();
            let code = resp.status().as_u16();
            let warnings = resp
                .headers()
                .get_all("warning")
                .iter()
                .map(|v| v.to_str().unwrap().to_string())
                .collect();
            let body = resp.json().await.unwrap_or(Value::Null);
            Answer {
                code,
                body,
                warnings,
            }
        }

        async fn create_as(&self, token: &str, obj: &Value) -> Answer {
            self.send("POST", REMEDIATIONS, Some(token), "application/json", obj)
                .await
        }

        async fn merge_patch_as(&self, token: &str, name: &str, patch: &Value) -> Answer {
            self.send(
                "PATCH",
                &format!("{REMEDIATIONS}/{name}"),
                Some(token),
                "application/merge-patch+json",
                patch,
            )
            .await
        }
    }

    fn assert_denied(a: &Answer, code: u16, reason: &str, message: &str) {
        assert_eq!(a.code, code, "{a:?}");
        assert_eq!(a.body["reason"], reason, "{a:?}");
        assert_eq!(a.body["message"], message, "{a:?}");
    }

    #[tokio::test]
    async fn the_heal8s_policy_lets_approvals_name_only_their_author_on_create() {
        let c = Cluster::with_heal8s_policy().await;
        // no approval: anyone
        let a = c.create_as("bob-token", &remediation("r0", spec())).await;
        assert_eq!(a.code, 201, "{a:?}");
        // an approval naming its author
        let mut s = spec();
        s["approval"] = json!({"approvedBy": "alice"});
        let a = c
            .create_as("alice-token", &remediation("r1", s.clone()))
            .await;
        assert_eq!(a.code, 201, "{a:?}");
        // ... or someone else: the real 403, the cause listed as the API server lists it
        let a = c.create_as("bob-token", &remediation("r1", s)).await;
        assert_denied(&a, 403, "Forbidden", DENIED);
        assert_eq!(
            a.body["details"],
            json!({"name": "r1", "group": "heal8s.io", "kind": "remediations", "causes": [{
                "message": "ValidatingAdmissionPolicy 'heal8s-approvals' with binding 'heal8s-approvals' denied request: spec.approval may only name the user who makes the change"
            }]})
        );
        // a rejection too; and the admin (no token) is no exception
        let mut s = spec();
        s["approval"] = json!({"rejectedBy": "alice"});
        let a = c
            .send(
                "POST",
                REMEDIATIONS,
                None,
                "application/json",
                &remediation("r1", s.clone()),
            )
            .await;
        assert_denied(&a, 403, "Forbidden", DENIED);
        // dry runs are admitted as the real thing
        let a = c
            .send(
                "POST",
                &format!("{REMEDIATIONS}?dryRun=All"),
                Some("bob-token"),
                "application/json",
                &remediation("r1", s),
            )
            .await;
        assert_eq!(a.code, 403, "{a:?}");
        assert!(
            c.emu
                .get("heal8s.io/v1alpha1", "Remediation", "default", "r1")
                .is_some()
        );
    }

    #[tokio::test]
    async fn the_heal8s_policy_judges_every_kind_of_update() {
        let c = Cluster::with_heal8s_policy().await;
        assert_eq!(
            c.create_as("bob-token", &remediation("r1", spec()))
                .await
                .code,
            201
        );
        // merge patch: bob may not approve in alice's name, alice may
        let approve = json!({"spec": {"approval": {"approvedBy": "alice"}}});
        assert_denied(
            &c.merge_patch_as("bob-token", "r1", &approve).await,
            403,
            "Forbidden",
            DENIED,
        );
        let a = c.merge_patch_as("alice-token", "r1", &approve).await;
        assert_eq!(a.code, 200, "{a:?}");
        // an approval already there may stay while others change other fields
        let a = c
            .merge_patch_as(
                "bob-token",
                "r1",
                &json!({"metadata": {"labels": {"seen": "yes"}}}),
            )
            .await;
        assert_eq!(a.code, 200, "{a:?}");
        // but not be changed by another
        let a = c
            .merge_patch_as(
                "bob-token",
                "r1",
                &json!({"spec": {"approval": {"note": "x"}}}),
            )
            .await;
        assert_denied(&a, 403, "Forbidden", DENIED);
        // JSON patch, strategic-merge-less custom resources' apply, and PUT
        let a = c
            .send(
                "PATCH",
                &format!("{REMEDIATIONS}/r1"),
                Some("bob-token"),
                "application/json-patch+json",
                &json!([{"op": "replace", "path": "/spec/approval", "value": {"approvedBy": "carol"}}]),
            )
            .await;
        assert_denied(&a, 403, "Forbidden", DENIED);
        let mut applied = remediation("r1", spec());
        applied["spec"]["approval"] = json!({"approvedBy": "carol"});
        let a = c
            .send(
                "PATCH",
                &format!("{REMEDIATIONS}/r1?fieldManager=bob"),
                Some("bob-token"),
                "application/apply-patch+yaml",
                &applied,
            )
            .await;
        assert_denied(&a, 403, "Forbidden", DENIED);
        let mut put = c
            .emu
            .get("heal8s.io/v1alpha1", "Remediation", "default", "r1")
            .unwrap();
        put["spec"]["approval"] = json!({"approvedBy": "bob"});
        let a = c
            .send(
                "PUT",
                &format!("{REMEDIATIONS}/r1"),
                Some("alice-token"),
                "application/json",
                &put,
            )
            .await;
        assert_denied(&a, 403, "Forbidden", DENIED);
        let a = c
            .send(
                "PUT",
                &format!("{REMEDIATIONS}/r1"),
                Some("bob-token"),
                "application/json",
                &put,
            )
            .await;
        assert_eq!(a.code, 200, "{a:?}");
        // an apply patch that creates is a CREATE
        let mut new = remediation("r2", spec());
        new["spec"]["approval"] = json!({"approvedBy": "alice"});
        let a = c
            .send(
                "PATCH",
                &format!("{REMEDIATIONS}/r2?fieldManager=bob"),
                Some("bob-token"),
                "application/apply-patch+yaml",
                &new,
            )
            .await;
        assert_denied(&a, 403, "Forbidden", &DENIED.replace("\"r1\"", "\"r2\""));
    }

    #[tokio::test]
    async fn a_rule_without_the_status_subresource_does_not_see_status_writes() {
        let c = Cluster::start().await;
        for (name, resource) in [("main", "remediations"), ("status", "remediations/status")] {
            c.install(json!({"apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingAdmissionPolicy", "metadata": {"name": name},
                "spec": {"matchConstraints": {"resourceRules": [{"apiGroups": ["heal8s.io"],
                    "apiVersions": ["v1alpha1"], "operations": ["UPDATE"], "resources": [resource]}]},
                    "validations": [{"expression": "!has(object.status) || object.status.phase != 'Bad'",
                                     "message": format!("{name} says no")}]}}))
                .await;
        }
        c.install(json!({"apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding", "metadata": {"name": "main"},
            "spec": {"policyName": "main", "validationActions": ["Deny"]}}))
            .await;
        assert_eq!(
            c.create_as("bob-token", &remediation("r1", spec()))
                .await
                .code,
            201
        );
        let phase = |p: &str| json!({"status": {"phase": p}});
        let status = format!("{REMEDIATIONS}/r1/status");
        let a = c
            .send(
                "PATCH",
                &status,
                None,
                "application/merge-patch+json",
                &phase("Bad"),
            )
            .await;
        assert_eq!(a.code, 200, "the rule names remediations only: {a:?}");
        // a spec update carries the stored status, which the main policy sees
        let a = c
            .merge_patch_as("bob-token", "r1", &json!({"spec": {"mode": "auto"}}))
            .await;
        assert_denied(
            &a,
            422,
            "Invalid",
            "remediations.heal8s.io \"r1\" is forbidden: ValidatingAdmissionPolicy 'main' with binding 'main' denied request: main says no",
        );
        // once a binding puts the status rule in force, status writes are judged
        c.install(json!({"apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding", "metadata": {"name": "status"},
            "spec": {"policyName": "status", "validationActions": ["Deny"]}}))
            .await;
        let a = c
            .send(
                "PATCH",
                &status,
                None,
                "application/merge-patch+json",
                &phase("Good"),
            )
            .await;
        assert_eq!(a.code, 200, "{a:?}");
        let a = c
            .send(
                "PATCH",
                &status,
                None,
                "application/merge-patch+json",
                &phase("Bad"),
            )
            .await;
        assert_denied(
            &a,
            422,
            "Invalid",
            "remediations.heal8s.io \"r1\" is forbidden: ValidatingAdmissionPolicy 'status' with binding 'status' denied request: status says no",
        );
    }

    #[tokio::test]
    async fn an_unchanged_spec_rule_compares_nested_maps_and_lists() {
        let c = Cluster::start().await;
        c.install(json!({"apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy", "metadata": {"name": "frozen"},
            "spec": {"matchConstraints": {"resourceRules": [{"apiGroups": ["heal8s.io"],
                "apiVersions": ["*"], "operations": ["CREATE", "UPDATE"], "resources": ["remediations"]}]},
                "validations": [{"expression": "oldObject == null || (object.spec.trigger == oldObject.spec.trigger && object.spec.target == oldObject.spec.target && object.spec.remediation == oldObject.spec.remediation && object.spec.mode == oldObject.spec.mode)"}]}}))
            .await;
        c.install(json!({"apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding", "metadata": {"name": "frozen"},
            "spec": {"policyName": "frozen", "validationActions": ["Deny"]}}))
            .await;
        let mut s = spec();
        s["trigger"]["list"] = json!([1, "two", {"three": 3.0}]);
        assert_eq!(
            c.create_as("bob-token", &remediation("r1", s)).await.code,
            201
        );
        // other fields may change; the same values written again are equal
        let a = c
            .merge_patch_as(
                "bob-token",
                "r1",
                &json!({"spec": {"approval": {"approvedBy": "bob"},
                "trigger": {"list": [1, "two", {"three": 3.0}]}, "mode": "approve"}}),
            )
            .await;
        assert_eq!(a.code, 200, "{a:?}");
        let failed = "remediations.heal8s.io \"r1\" is forbidden: ValidatingAdmissionPolicy 'frozen' with binding 'frozen' denied request: failed expression: oldObject == null || (object.spec.trigger == oldObject.spec.trigger && object.spec.target == oldObject.spec.target && object.spec.remediation == oldObject.spec.remediation && object.spec.mode == oldObject.spec.mode)";
        for change in [
            json!({"spec": {"mode": "auto"}}),
            json!({"spec": {"target": {"name": "db"}}}),
            json!({"spec": {"remediation": {"params": {"count": 2}}}}),
            json!({"spec": {"trigger": {"list": [1, "two"]}}}),
            json!({"spec": {"trigger": {"labels": {"extra": "x"}}}}),
        ] {
            let a = c.merge_patch_as("bob-token", "r1", &change).await;
            assert_denied(&a, 422, "Invalid", failed);
        }
        // a field that disappears is an error in CEL, not false: failurePolicy Fail refuses
        let a = c
            .merge_patch_as("bob-token", "r1", &json!({"spec": {"mode": null}}))
            .await;
        assert_eq!(a.code, 422, "{a:?}");
        let message = a.body["message"].as_str().unwrap();
        assert!(
            message.starts_with("remediations.heal8s.io \"r1\" is forbidden: ValidatingAdmissionPolicy 'frozen' with binding 'frozen' denied request: expression 'oldObject == null || ")
                && message.ends_with("' resulted in error: no such key: mode"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn failure_policy_decides_what_an_expression_that_errs_does() {
        let c = Cluster::start().await;
        for (name, failure) in [("strict", "Fail"), ("lenient", "Ignore")] {
            c.install(json!({"apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingAdmissionPolicy", "metadata": {"name": name},
                "spec": {"failurePolicy": failure, "matchConstraints": {"resourceRules": [{"apiGroups": [""],
                    "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["configmaps"]}]},
                    "validations": [{"expression": format!("object.data.{name} == 'yes'")}]}}))
                .await;
            c.install(json!({"apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingAdmissionPolicyBinding", "metadata": {"name": name},
                "spec": {"policyName": name, "validationActions": ["Deny"]}}))
                .await;
        }
        let cm = |data: Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": data});
        let path = "/api/v1/namespaces/default/configmaps";
        // strict's field is missing: an error, refused; lenient's missing too: ignored
        let a = c
            .send("POST", path, None, "application/json", &cm(json!({})))
            .await;
        assert_denied(
            &a,
            422,
            "Invalid",
            "configmaps \"c\" is forbidden: ValidatingAdmissionPolicy 'strict' with binding 'strict' denied request: expression 'object.data.strict == 'yes'' resulted in error: no such key: strict",
        );
        // strict satisfied, lenient errs: admitted
        let a = c
            .send(
                "POST",
                path,
                None,
                "application/json",
                &cm(json!({"strict": "yes"})),
            )
            .await;
        assert_eq!(a.code, 201, "{a:?}");
    }

    #[tokio::test]
    async fn warn_bindings_warn_audit_ones_do_nothing_and_bindings_of_no_policy_nothing() {
        let c = Cluster::start().await;
        c.install(json!({"apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy", "metadata": {"name": "no-latest"},
            "spec": {"matchConstraints": {"resourceRules": [{"apiGroups": [""],
                "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": ["configmaps"]}]},
                "validations": [{"expression": "object.data.tag != 'latest'", "message": "no \"latest\" tags"}]}}))
            .await;
        for (name, policy, actions) in [
            ("warn", "no-latest", json!(["Warn"])),
            ("audit", "no-latest", json!(["Audit"])),
            ("orphan", "missing", json!(["Deny"])),
        ] {
            c.install(json!({"apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingAdmissionPolicyBinding", "metadata": {"name": name},
                "spec": {"policyName": policy, "validationActions": actions}}))
                .await;
        }
        let a = c
            .send(
                "POST",
                "/api/v1/namespaces/default/configmaps",
                None,
                "application/json",
                &json!({"metadata": {"name": "c"}, "data": {"tag": "latest"}}),
            )
            .await;
        assert_eq!(a.code, 201, "{a:?}");
        assert_eq!(
            a.warnings,
            [
                "299 - \"Validation failed for ValidatingAdmissionPolicy 'no-latest' with binding 'warn': no \\\"latest\\\" tags\""
            ]
        );
        // and through kube::Client, the object is stored
        assert!(c.emu.get("v1", "ConfigMap", "default", "c").is_some());
    }

    #[tokio::test]
    async fn store_api_writes_skip_admission_but_policies_are_validated() {
        let c = Cluster::with_heal8s_policy().await;
        let mut s = spec();
        s["approval"] = json!({"approvedBy": "someone-else"});
        c.emu.create(remediation("r1", s)).unwrap();
        c.emu
            .modify("heal8s.io/v1alpha1", "Remediation", "default", "r1", |o| {
                o["spec"]["approval"]["approvedBy"] = json!("yet-another");
            })
            .unwrap();
        let mut o = c
            .emu
            .get("heal8s.io/v1alpha1", "Remediation", "default", "r1")
            .unwrap();
        o["spec"]["approval"]["rejectedBy"] = json!("nobody");
        c.emu.update(o).unwrap();
        // a policy scripted through the store API is checked all the same
        let e = c
            .emu
            .create(json!({"apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingAdmissionPolicy", "metadata": {"name": "broken"},
                "spec": {"matchConstraints": {"resourceRules": [{"apiGroups": ["*"],
                    "apiVersions": ["*"], "operations": ["*"], "resources": ["*"]}]},
                    "validations": [{"expression": "object.("}]}}))
            .unwrap_err();
        assert_eq!(e.code, 422);
        assert!(
            e.message.starts_with("ValidatingAdmissionPolicy.admissionregistration.k8s.io \"broken\" is invalid: spec.validations[0].expression: Invalid value: \"object.(\": compilation failed: ERROR: <input>:1:"),
            "{}",
            e.message
        );
    }

    #[tokio::test]
    async fn policies_and_bindings_are_validated_as_the_api_server_does() {
        let c = Cluster::start().await;
        let post = |plural: &str, obj: Value| {
            let path = format!("/apis/{GROUP}/v1/{plural}");
            let c = &c;
            async move { c.send("POST", &path, None, "application/json", &obj).await }
        };
        let policy = |validations: Value| {
            json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
                "metadata": {"name": "p"}, "spec": {"matchConstraints": {"resourceRules": [{"apiGroups": ["apps"],
                "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["deployments"]}]},
                "validations": validations}})
        };
        let a = post(
            POLICIES,
            policy(
                json!([{"expression": "object.spec.replicas <= 5"}, {"expression": "foo == 1"}]),
            ),
        )
        .await;
        assert_eq!(a.code, 422, "{a:?}");
        assert_eq!(
            a.body["message"],
            "ValidatingAdmissionPolicy.admissionregistration.k8s.io \"p\" is invalid: spec.validations[1].expression: Invalid value: \"foo == 1\": compilation failed: ERROR: <input>:1:1: undeclared reference to 'foo' (in container '')"
        );
        assert_eq!(
            a.body["details"]["causes"][0]["field"],
            "spec.validations[1].expression"
        );
        // comprehension variables are declared; authorizer (no RBAC) is not
        let a = post(POLICIES, policy(json!([{"expression": "object.spec.template.spec.containers.all(c, c.image != '')"}]))).await;
        assert_eq!(a.code, 201, "{a:?}");
        assert_eq!(a.body["spec"]["failurePolicy"], "Fail", "defaulted");
        assert_eq!(
            a.body["spec"]["matchConstraints"]["resourceRules"][0]["scope"],
            "*"
        );
        let mut p = policy(
            json!([{"expression": "authorizer.group('').resource('pods').check('get').allowed()"}]),
        );
        p["metadata"]["name"] = json!("q");
        let a = post(POLICIES, p).await;
        assert_eq!(a.code, 422, "{a:?}");
        assert!(
            a.body["message"]
                .as_str()
                .unwrap()
                .contains("'authorizer' is not supported"),
            "{a:?}"
        );
        let mut p = policy(json!([{"expression": "true", "reason": "Teapot"}]));
        p["spec"]["failurePolicy"] = json!("Sometimes");
        p["metadata"]["name"] = json!("r");
        let a = post(POLICIES, p).await;
        assert_eq!(
            a.body["message"],
            "ValidatingAdmissionPolicy.admissionregistration.k8s.io \"r\" is invalid: [spec.failurePolicy: Unsupported value: \"Sometimes\": supported values: \"Fail\", \"Ignore\", spec.validations[0].reason: Unsupported value: \"Teapot\": supported values: \"Forbidden\", \"Invalid\", \"RequestEntityTooLarge\", \"Unauthorized\"]"
        );
        // a wrong type is a body the API server cannot decode
        let mut p = policy(json!("all of them"));
        p["metadata"]["name"] = json!("s");
        let a = post(POLICIES, p).await;
        assert_eq!(a.code, 400, "{a:?}");
        assert!(
            a.body["message"].as_str().unwrap().starts_with(
                "ValidatingAdmissionPolicy in version \"v1\" cannot be handled as a ValidatingAdmissionPolicy: spec.validations: invalid type"
            ),
            "{a:?}"
        );
        let binding = |spec: Value| {
            json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
                "metadata": {"name": "b"}, "spec": spec})
        };
        let a = post(
            BINDINGS,
            binding(json!({"policyName": "p", "validationActions": ["Deny", "Warn"]})),
        )
        .await;
        assert_eq!(
            a.body["message"],
            "ValidatingAdmissionPolicyBinding.admissionregistration.k8s.io \"b\" is invalid: spec.validationActions: Invalid value: []string{\"Deny\", \"Warn\"}: must not contain both Deny and Warn (repeating the same validation failure information in the API response and headers serves no purpose)"
        );
        let a = post(BINDINGS, binding(json!({"validationActions": []}))).await;
        assert_eq!(
            a.body["message"],
            "ValidatingAdmissionPolicyBinding.admissionregistration.k8s.io \"b\" is invalid: [spec.policyName: Required value, spec.validationActions: Required value: at least one validation action is required]"
        );
        // an update is validated too
        let a = post(
            BINDINGS,
            binding(json!({"policyName": "p", "validationActions": ["Audit"]})),
        )
        .await;
        assert_eq!(a.code, 201, "{a:?}");
        let a = c
            .send(
                "PATCH",
                &format!("/apis/{GROUP}/v1/{BINDINGS}/b"),
                None,
                "application/merge-patch+json",
                &json!({"spec": {"validationActions": ["Block"]}}),
            )
            .await;
        assert_eq!(
            a.body["message"],
            "ValidatingAdmissionPolicyBinding.admissionregistration.k8s.io \"b\" is invalid: spec.validationActions[0]: Unsupported value: \"Block\": supported values: \"Audit\", \"Deny\", \"Warn\""
        );
    }

    #[tokio::test]
    async fn expressions_see_object_old_object_request_and_namespace_object() {
        let c = Cluster::start().await;
        // each validation checks one variable; a failing one names itself
        let checks = [
            (
                "create",
                "request.operation != 'CREATE' || (oldObject == null && object.metadata.name == 'r1')",
            ),
            (
                "update",
                "request.operation != 'UPDATE' || (oldObject.spec.mode == 'approve' && object.spec.mode == 'auto')",
            ),
            (
                "user",
                "request.userInfo.username == 'alice' && 'sre' in request.userInfo.groups && 'system:authenticated' in request.userInfo.groups",
            ),
            (
                "request",
                "request.namespace == 'default' && request.name == 'r1' && request.resource.resource == 'remediations' && request.kind.kind == 'Remediation' && request.subResource == '' && !request.dryRun",
            ),
            (
                "namespace",
                "namespaceObject.metadata.name == 'default' && namespaceObject.status.phase == 'Active'",
            ),
            (
                "numbers",
                "object.spec.remediation.params.count == 1 && object.spec.remediation.params.ratio == 0.5 && object.spec.remediation.params.count < 2",
            ),
            (
                "strings",
                "object.spec.target.name.startsWith('we') && object.spec.target.name.upperAscii() == 'WEB' && object.spec.trigger.alert.matches('^Pod')",
            ),
            ("variables", "variables.target == 'Deployment/web'"),
        ];
        let validations: Vec<Value> = checks
            .iter()
            .map(|(m, e)| json!({"expression": e, "message": m}))
            .collect();
        c.install(json!({"apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy", "metadata": {"name": "vars"},
            "spec": {"matchConstraints": {"resourceRules": [{"apiGroups": ["heal8s.io"],
                "apiVersions": ["v1alpha1"], "operations": ["*"], "resources": ["remediations"]}],
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "default"}}},
                "variables": [{"name": "target", "expression": "object.spec.target.kind + '/' + object.spec.target.name"}],
                "validations": validations}}))
            .await;
        c.install(json!({"apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding", "metadata": {"name": "vars"},
            "spec": {"policyName": "vars", "validationActions": ["Warn"]}}))
            .await;
        let a = c.create_as("alice-token", &remediation("r1", spec())).await;
        assert_eq!(
            (a.code, a.warnings.as_slice()),
            (201, &[] as &[String]),
            "{a:?}"
        );
        let a = c
            .merge_patch_as("alice-token", "r1", &json!({"spec": {"mode": "auto"}}))
            .await;
        assert_eq!(
            (a.code, a.warnings.as_slice()),
            (200, &[] as &[String]),
            "{a:?}"
        );
        // bob, updating again: the user and update checks fail
        let a = c
            .merge_patch_as("bob-token", "r1", &json!({"spec": {"mode": "manual"}}))
            .await;
        assert_eq!(a.code, 200, "{a:?}");
        let failed: Vec<&str> = a
            .warnings
            .iter()
            .map(|w| w.rsplit(": ").next().unwrap().trim_end_matches('"'))
            .collect();
        assert_eq!(failed, ["update", "user"], "{a:?}");
    }

    #[test]
    fn cel_sees_json_as_kubernetes_does() {
        let obj = json!({"spec": {"a": {"x": [1, 2.5, "s", null, true]}, "n": 3, "big": u64::MAX}});
        let run = |e: &str| {
            let act = Activation {
                object: to_cel(&obj),
                old_object: Cel::Null,
                request: to_cel(&json!({"userInfo": {"username": "alice"}})),
                namespace_object: Cel::Null,
            };
            evaluate(e, &act.context(&HashMap::new()))
        };
        for yes in [
            "has(object.spec.a)",
            "!has(object.spec.b)",
            "object.spec.a == {'x': [1, 2.5, 's', null, true]}",
            "object.spec.a != {'x': [1, 2.5, 's', null]}",
            "oldObject == null && object != null",
            "request.userInfo.username == 'alice' && request.userInfo.username < 'bob'",
            "object.spec.n == 3 && object.spec.n > 2 && object.spec.big == 18446744073709551615u",
            "size(object.spec.a.x) == 5 && object.spec.a.x[3] == null",
            "!(false || false) && (true || object.spec.missing)",
            "has(object.spec.b) == has(object.spec.c) && has(object.spec.a) != has(object.spec.c)",
            "object.spec.a.x.exists(v, v == 's') && object.spec.a.x.all(v, v != 'z')",
        ] {
            assert_eq!(run(yes), Ok(Cel::Bool(true)), "{yes}");
        }
        assert_eq!(
            run("object.spec.missing == 1"),
            Err(
                "expression 'object.spec.missing == 1' resulted in error: no such key: missing"
                    .into()
            )
        );
        assert!(run("oldObject.spec").is_err());
    }
}
