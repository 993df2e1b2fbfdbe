//! One trace per signal (issue 22, part 7), through a real `heal8s serve`
//! exporting OTLP/HTTP to a receiver that decodes it with the official
//! OpenTelemetry protobuf definitions (tests/support/otlp_receiver.py, PyPI's
//! opentelemetry-proto), on loopback:
//! - a webhook's `traceparent` is honoured: the signal's `receive` span is a
//!   server span under the sender's span, in the sender's trace;
//! - `route`, `recheck`, `guard`, `act` and `verify` are children of it,
//!   with what each decided on the span;
//! - the trace id is in the Remediation record, on `/outcomes` and in the
//!   log lines;
//! - without a `traceparent` (or with a malformed one) a signal starts a
//!   trace of its own, and the delivery is taken all the same.
//!
//! Needs python3 with opentelemetry-proto (`.ci/run` installs it).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use testkit::kube::{Controller, Emulator};
use testkit::{Heal8s, TempDir, eventually};

const TOKEN: &str = "tracing-token";
/// The batch processor sends every 5 s; a verification takes its timeout.
const WAIT: Duration = Duration::from_secs(45);
const SENDER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SENDER_SPAN: &str = "00f067aa0ba902b7";
const INSTALL: &str = "python3 -m pip install opentelemetry-proto (.ci/run installs it)";

const POLICY: &str = r#"
guard:
  cooldown: 1s
routes:
- {name: restart-shop, matchers: ['alertname="KubePodCrashLooping"', 'namespace="shop"'], remediation: delete-pod}
"#;

/// The OTLP receiver as a child process, killed when dropped.
struct Receiver {
    child: Child,
    port: u16,
    out: PathBuf,
}

impl Receiver {
    fn start(dir: &Path) -> Receiver {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/otlp_receiver.py");
        let out = dir.join("spans.jsonl");
        let mut child = Command::new("python3")
            .arg(&script)
            .arg("--out")
            .arg(&out)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("python3 {}: {e}; {INSTALL}", script.display()));
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let Ok(port) = line.trim().parse() else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "otlp_receiver.py did not start (printed {line:?}; its stderr is above): {INSTALL}"
            );
        };
        Receiver { child, port, out }
    }

    /// Every span received so far.
    fn spans(&self) -> Vec<Value> {
        match std::fs::read_to_string(&self.out) {
            Ok(s) => s
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// The spans of `trace_id` once every one of `names` is among them.
    async fn trace(&self, trace_id: &str, names: &[&str], h: &Heal8s) -> Vec<Value> {
        let got = eventually(WAIT, "the trace's spans", || async {
            let spans: Vec<Value> = self
                .spans()
                .into_iter()
                .filter(|s| s["trace_id"] == trace_id)
                .collect();
            names
                .iter()
                .all(|n| spans.iter().any(|s| s["name"] == *n))
                .then_some(spans)
        })
        .await;
        match got {
            Ok(s) => s,
            Err(e) => panic!(
                "{e}\nspans: {:#?}\n--- heal8s ---\n{}",
                self.spans(),
                h.proc.output()
            ),
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn one<'a>(spans: &'a [Value], name: &str) -> &'a Value {
    let found: Vec<&Value> = spans.iter().filter(|s| s["name"] == name).collect();
    assert_eq!(found.len(), 1, "one {name} span: {spans:#?}");
    found[0]
}

async fn post(h: &Heal8s, body: &Value, traceparent: Option<&str>) -> u16 {
    let mut req = reqwest::Client::new()
        .post(format!("{}/webhook/alertmanager", h.url))
        .bearer_auth(TOKEN)
        .json(body);
    if let Some(tp) = traceparent {
        req = req.header("traceparent", tp);
    }
    req.send().await.unwrap().status().as_u16()
}

/// The record of delete-pod on `shop/<pod>` once it has a trace id.
async fn record(emu: &Emulator, h: &Heal8s, pod: &str) -> Value {
    let found = eventually(WAIT, "a record with a trace id", || async {
        emu.list("heal8s.io/v1alpha1", "Remediation", "shop")
            .into_iter()
            .find(|r| r["spec"]["target"]["name"] == pod && r["status"]["traceId"].is_string())
    })
    .await;
    found.unwrap_or_else(|e| panic!("{e}\n--- heal8s ---\n{}", h.proc.output()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_signal_is_one_trace_under_the_senders_and_every_record_names_it() {
    let dir = TempDir::new("tracing");
    let receiver = Receiver::start(dir.path());
    let emu = Emulator::start().await.unwrap();
    testkit::scenario::seed_crash_loops(&emu, &["heal8s", "shop"], &["api-1", "api-2", "api-3"])
        .unwrap();
    let _played = emu.play(&[Controller::Kubelet]);
    let endpoint = format!("http://127.0.0.1:{}", receiver.port);
    let (h, _files) = Heal8s::start_in(
        TOKEN,
        &emu,
        POLICY,
        &[
            "--namespace",
            "heal8s",
            "--otlp-endpoint",
            &endpoint,
            "--verify-timeout",
            "2s",
            "--verify-stable-for",
            "1s",
        ],
    )
    .await
    .unwrap();
    assert!(
        h.proc
            .output()
            .contains("Traces are exported over OTLP/HTTP"),
        "{}",
        h.proc.output()
    );

    // the sender's trace is honoured
    let traceparent = format!("00-{SENDER_TRACE}-{SENDER_SPAN}-01");
    let alert = testkit::scenario::crash_loop_alert("c000000000000001", "shop", "api-1");
    assert_eq!(post(&h, &alert, Some(&traceparent)).await, 200);
    let spans = receiver
        .trace(
            SENDER_TRACE,
            &["receive", "route", "recheck", "guard", "act", "verify"],
            &h,
        )
        .await;
    for s in &spans {
        assert_eq!(s["service"], "heal8s", "{s:#}");
        assert!(
            s["end"].as_u64().unwrap() >= s["start"].as_u64().unwrap(),
            "{s:#}"
        );
    }
    let receive = one(&spans, "receive");
    assert_eq!(receive["parent_span_id"], SENDER_SPAN, "{receive:#}");
    assert_eq!(receive["kind"], "SPAN_KIND_SERVER");
    assert_eq!(
        receive["attributes"]["heal8s.alertname"],
        "KubePodCrashLooping"
    );
    assert_eq!(receive["attributes"]["heal8s.source"], "alert");
    for stage in ["route", "recheck", "guard", "act", "verify"] {
        let s = one(&spans, stage);
        assert_eq!(s["parent_span_id"], receive["span_id"], "{stage}: {s:#}");
        assert_ne!(s["span_id"], receive["span_id"]);
    }
    assert_eq!(
        one(&spans, "route")["attributes"]["heal8s.route"],
        "restart-shop"
    );
    assert_eq!(
        one(&spans, "guard")["attributes"]["heal8s.verdict"],
        "allow"
    );
    let act = one(&spans, "act");
    assert!(
        act["attributes"]["heal8s.action"]
            .as_str()
            .unwrap()
            .contains("shop/api-1"),
        "{act:#}"
    );
    assert_eq!(act["status"], "STATUS_CODE_UNSET", "{act:#}");
    assert!(one(&spans, "verify")["attributes"]["heal8s.verification"].is_string());
    // the pod was really deleted, and the record, /outcomes and the logs name the trace
    assert!(emu.get("v1", "Pod", "shop", "api-1").is_none());
    let r = record(&emu, &h, "api-1").await;
    assert_eq!(r["status"]["traceId"], SENDER_TRACE, "{r:#}");
    let outcomes = h.outcomes().await;
    let acted = outcomes
        .iter()
        .find(|o| o.result == receiver_core::OutcomeKind::Acted)
        .unwrap_or_else(|| panic!("{outcomes:#?}"));
    assert_eq!(acted.trace_id().as_deref(), Some(SENDER_TRACE));
    let log = h.proc.output();
    assert!(
        log.lines().any(|l| l.contains("Remediation carried out.")
            && l.contains(&format!("trace_id={SENDER_TRACE}"))),
        "{log}"
    );

    // no traceparent, or a malformed one: a trace of the signal's own
    let second = testkit::scenario::crash_loop_alert("c000000000000002", "shop", "api-2");
    assert_eq!(post(&h, &second, None).await, 200);
    let third = testkit::scenario::crash_loop_alert("c000000000000003", "shop", "api-3");
    assert_eq!(post(&h, &third, Some("00-not-a-trace-01")).await, 200);
    for pod in ["api-2", "api-3"] {
        let r = record(&emu, &h, pod).await;
        let id = r["status"]["traceId"].as_str().unwrap().to_string();
        assert_eq!(id.len(), 32, "{r:#}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        assert_ne!(id, SENDER_TRACE);
        let spans = receiver.trace(&id, &["receive", "route", "act"], &h).await;
        let receive = one(&spans, "receive");
        // a root span: no parent
        assert_eq!(receive["parent_span_id"], "", "{receive:#}");
        assert_eq!(one(&spans, "act")["parent_span_id"], receive["span_id"]);
    }
}
