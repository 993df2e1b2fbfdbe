//! One trace per signal (OpenTelemetry), off unless an OTLP endpoint is set.
//!
//! Each signal's work is a few spans, all in the signal's trace: `receive`
//! (the webhook delivery or the detector's report, a child of the sender's
//! `traceparent` when one came), then, each a child of `receive`: `route`,
//! `recheck` (the live read), `guard`, `act` (or `pull_request`), `verify`,
//! and `approve` when a person decided on it. The signal carries its
//! receive span's context ([`TraceContext`]) through the queue and into
//! every plan made from it, so a stage that runs minutes later, in another
//! task or after an approval, still joins the same trace.
//!
//! Exporting is the opentelemetry SDK's: a batch processor in its own
//! thread, sending OTLP over HTTP/protobuf to the endpoint of
//! `--otlp-endpoint` or the standard `OTEL_EXPORTER_OTLP_ENDPOINT` /
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` variables (with their `_HEADERS`,
//! `_TIMEOUT` and `_COMPRESSION`, `OTEL_SERVICE_NAME`,
//! `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`). Without an endpoint
//! nothing is exported, yet every signal still gets a trace id (the
//! sender's, or a new random one): records, pull requests and log lines
//! name it either way.

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::trace::{
    Span as _, SpanContext, SpanKind, Status, TraceContextExt as _, TraceFlags, TraceState,
    Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue, SpanId, TraceId};
use opentelemetry_sdk::trace::{
    IdGenerator as _, RandomIdGenerator, SdkTracer, SdkTracerProvider, SpanExporter,
};
use receiver_core::TraceContext;

/// The tracer spans go to, once [`install`] set one up; `None`: not exported.
static TRACER: OnceLock<SdkTracer> = OnceLock::new();

/// The OTLP protocol heal8s speaks: HTTP with protobuf bodies.
const PROTOCOL: &str = "http/protobuf";

/// Where traces go, as the flag and the environment say; `None`: tracing
/// is off. `flag` is `--otlp-endpoint` (a base URL, as
/// `OTEL_EXPORTER_OTLP_ENDPOINT`: `/v1/traces` is appended).
pub fn endpoint_from(
    flag: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<Option<Endpoint>> {
    let set = |k: &str| env(k).filter(|v| !v.trim().is_empty());
    if set("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        return Ok(None);
    }
    if let Some(v) = set("OTEL_TRACES_EXPORTER") {
        match v.trim() {
            "none" => return Ok(None),
            "otlp" => {}
            other => anyhow::bail!(
                "OTEL_TRACES_EXPORTER={other:?}: heal8s exports traces with otlp only (or none)"
            ),
        }
    }
    for var in [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ] {
        if let Some(p) = set(var) {
            if p.trim() != PROTOCOL {
                anyhow::bail!(
                    "{var}={p:?}: heal8s sends OTLP as {PROTOCOL} only (point it at a collector's HTTP port, 4318)"
                );
            }
            break;
        }
    }
    let (url, from, full) = if let Some(f) = flag.filter(|f| !f.trim().is_empty()) {
        (f.trim().to_string(), "--otlp-endpoint", false)
    } else if let Some(u) = set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        (
            u.trim().to_string(),
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            true,
        )
    } else if let Some(u) = set("OTEL_EXPORTER_OTLP_ENDPOINT") {
        (u.trim().to_string(), "OTEL_EXPORTER_OTLP_ENDPOINT", false)
    } else {
        return Ok(None);
    };
    let parsed: http::Uri = url
        .parse()
        .map_err(|e| anyhow::anyhow!("{from} {url:?} is not a URL: {e}"))?;
    match parsed.scheme_str() {
        Some("http") => {}
        Some("https") => anyhow::bail!(
            "{from} {url:?}: heal8s exports traces over plain HTTP to a collector beside it (https is not supported; let the collector send on over TLS)"
        ),
        _ => anyhow::bail!("{from} {url:?} must be an http:// URL"),
    }
    if parsed.host().is_none_or(str::is_empty) {
        anyhow::bail!("{from} {url:?} names no host");
    }
    let url = if full {
        url
    } else {
        // the base URL's traces path, as the OTLP specification builds it
        format!("{}/v1/traces", url.trim_end_matches('/'))
    };
    Ok(Some(Endpoint { url, from }))
}

/// The OTLP/HTTP URL traces are sent to, and which setting named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub url: String,
    pub from: &'static str,
}

/// Export traces to `endpoint` from now on (once per process). The returned
/// guard flushes what is left when the service stops ([`Exporting::shutdown`]).
pub fn install(endpoint: &Endpoint) -> anyhow::Result<Exporting> {
    use opentelemetry_otlp::WithExportConfig as _;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(endpoint.url.clone())
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .build()
        .map_err(|e| anyhow::anyhow!("the OTLP exporter for {}: {e}", endpoint.url))?;
    Ok(install_exporter(exporter))
}

/// Export to `exporter` from now on (tests give an in-process one).
pub fn install_exporter(exporter: impl SpanExporter + 'static) -> Exporting {
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(
            std::env::var("OTEL_SERVICE_NAME")
                .ok()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "heal8s".to_string()),
        )
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    let _ = TRACER.set(provider.tracer("heal8s"));
    Exporting { provider }
}

/// Whether spans are exported.
pub fn exporting() -> bool {
    TRACER.get().is_some()
}

/// The exporter's provider: flush and stop it when the service ends.
#[derive(Debug)]
pub struct Exporting {
    provider: SdkTracerProvider,
}

impl Exporting {
    /// Send what is still buffered and stop exporting (within `timeout`).
    /// Blocking: call it from a blocking thread.
    pub fn shutdown(self, timeout: Duration) {
        if let Err(e) = self.provider.force_flush() {
            tracing::warn!(error = %e, "Could not send the last spans to the OTLP endpoint.");
        }
        let _ = self.provider.shutdown_with_timeout(timeout);
    }
}

/// One stage of a signal's work, as a span: ended when dropped.
#[derive(Debug)]
pub struct Stage {
    span: Option<opentelemetry_sdk::trace::Span>,
    context: TraceContext,
}

/// Start stage `name` as a child of `parent` (a server span, the `receive`
/// of a webhook with the sender's context, is `remote`). Without a parent,
/// a new trace starts.
pub fn start(name: &'static str, parent: Option<TraceContext>) -> Stage {
    start_kind(name, parent, SpanKind::Internal)
}

/// [`start`] for the span of a request taken in (`SpanKind::Server`).
pub fn start_server(name: &'static str, parent: Option<TraceContext>) -> Stage {
    start_kind(name, parent, SpanKind::Server)
}

fn start_kind(name: &'static str, parent: Option<TraceContext>, kind: SpanKind) -> Stage {
    let Some(tracer) = TRACER.get() else {
        // not exported: the trace id still names the signal's work
        let ids = RandomIdGenerator::default();
        let context = TraceContext {
            trace_id: parent.map_or_else(|| ids.new_trace_id().to_bytes(), |p| p.trace_id),
            span_id: ids.new_span_id().to_bytes(),
            sampled: parent.is_none_or(|p| p.sampled),
        };
        return Stage {
            span: None,
            context,
        };
    };
    let parent_cx = match parent {
        Some(p) => Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from_bytes(p.trace_id),
            SpanId::from_bytes(p.span_id),
            if p.sampled {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::default()
            },
            true,
            TraceState::default(),
        )),
        None => Context::new(),
    };
    let span = tracer
        .span_builder(name)
        .with_kind(kind)
        .start_with_context(tracer, &parent_cx);
    let sc = span.span_context();
    let context = TraceContext {
        trace_id: sc.trace_id().to_bytes(),
        span_id: sc.span_id().to_bytes(),
        sampled: sc.is_sampled(),
    };
    Stage {
        span: Some(span),
        context,
    }
}

impl Stage {
    /// This span's place: children of it name it as their parent.
    pub fn context(&self) -> TraceContext {
        self.context
    }

    /// Attach `key` = `value` to the span.
    pub fn set(&mut self, key: &'static str, value: impl Into<opentelemetry::Value>) {
        if let Some(s) = &mut self.span {
            s.set_attribute(KeyValue::new(key, value));
        }
    }

    /// Mark the span failed, saying why.
    pub fn fail(&mut self, why: impl Into<String>) {
        if let Some(s) = &mut self.span {
            s.set_status(Status::error(why.into()));
        }
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        if let Some(s) = &mut self.span {
            s.end();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    #[test]
    fn off_unless_an_endpoint_is_set_and_the_standard_variables_are_honoured() {
        assert_eq!(endpoint_from(None, env(&[])).unwrap(), None);
        assert_eq!(
            endpoint_from(None, env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")])).unwrap(),
            None
        );
        let e = endpoint_from(
            None,
            env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(e.url, "http://collector:4318/v1/traces");
        // the per-signal variable is taken as it is, and wins over the base
        let e = endpoint_from(
            None,
            env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
                (
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    "http://other:4318/traces",
                ),
            ]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (e.url.as_str(), e.from),
            (
                "http://other:4318/traces",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
            )
        );
        // the flag wins over both
        let e = endpoint_from(
            Some("http://127.0.0.1:4318"),
            env(&[(
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://other:4318/traces",
            )]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(e.url, "http://127.0.0.1:4318/v1/traces");
        // switched off by the standard variables
        for off in [
            ("OTEL_SDK_DISABLED", "true"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ] {
            assert_eq!(
                endpoint_from(
                    Some("http://127.0.0.1:4318"),
                    env(&[off, ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")])
                )
                .unwrap(),
                None
            );
        }
    }

    #[test]
    fn what_heal8s_cannot_send_is_refused_naming_the_setting() {
        // (flag, environment, what the error names)
        type Case<'a> = (Option<&'a str>, &'a [(&'a str, &'a str)], &'a str);
        let cases: [Case; 6] = [
            (Some("https://c:4318"), &[], "--otlp-endpoint"),
            (Some("c:4318"), &[], "http://"),
            (
                None,
                &[("OTEL_EXPORTER_OTLP_ENDPOINT", "not a url")],
                "OTEL_EXPORTER_OTLP_ENDPOINT",
            ),
            (
                Some("http://c:4318"),
                &[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")],
                "OTEL_EXPORTER_OTLP_PROTOCOL",
            ),
            (
                Some("http://c:4318"),
                &[
                    ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json"),
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", PROTOCOL),
                ],
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            ),
            (
                Some("http://c:4318"),
                &[("OTEL_TRACES_EXPORTER", "zipkin")],
                "OTEL_TRACES_EXPORTER",
            ),
        ];
        for (flag, vars, says) in cases {
            let e = endpoint_from(flag, env(vars)).unwrap_err().to_string();
            assert!(e.contains(says), "{flag:?} {vars:?}: {e}");
        }
        assert!(
            endpoint_from(
                Some("http://c:4318"),
                env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", PROTOCOL)])
            )
            .unwrap()
            .is_some()
        );
    }

    #[test]
    fn without_an_exporter_a_stage_keeps_its_parents_trace_id_or_starts_one() {
        // (no test here installs the process-wide tracer)
        let parent =
            TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        let child = start("route", Some(parent)).context();
        assert_eq!(child.trace_id, parent.trace_id);
        assert_ne!(child.span_id, parent.span_id);
        let (a, b) = (
            start("receive", None).context(),
            start("receive", None).context(),
        );
        assert_ne!(a.trace_id, b.trace_id);
        assert!(a.sampled);
        let unsampled = TraceContext {
            sampled: false,
            ..parent
        };
        assert!(!start("route", Some(unsampled)).context().sampled);
    }
}
