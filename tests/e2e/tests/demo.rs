//! The README's first command: `heal8s-demo` seeds the emulated cluster,
//! runs heal8s, and narrates. Run here to the end (`--exit-when-done`), once
//! posting the captured payload itself and once through a real Alertmanager.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::process::Command;

use testkit::{demo_bin, free_port};

fn demo(extra: &[&str]) -> String {
    let port = free_port().to_string();
    let out = Command::new(demo_bin())
        .args(["--exit-when-done", "--timeout", "90", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .args(extra)
        .env_remove("HEAL8S_WEBHOOK_TOKEN")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the demo failed:\n{text}");
    text
}

fn assert_narrated(text: &str) {
    for want in [
        "ACTED     delete-pod",
        "REFUSED   delete-pod (detector Heal8sPodCrashLooping) for Pod kube-system/coredns-6d4b-k2",
        "ACTED     drain-node",
        "ACTED     cleanup-resource",
        "ACTED     delete-namespace",
        "PR        opened acme/manifests#",
        "+              memory: 384Mi # raise with care: the node pool is small",
        "VERIFIED  delete-pod Pod shop/api-7d9c-x2",
        // the team chat heard of the delete (a webhook receiver on loopback)
        "TOLD      team-chat [info] Done: delete Pod shop/api-7d9c-x2",
        // a destructive janitor action is announced before it starts
        "TOLD      team-chat [info] About to delete Namespace e2e-run-4711",
        "Every problem is handled",
        "heal8s stopped cleanly.",
        // the demo plays the controllers and kubelets the emulation lacks, and
        // says so (the test-cluster profile force-deletes crash-looping pods,
        // with grace 0: no kubelet confirms those)
        "(the demo, as the namespace controller, finalizes the empty namespace e2e-run-4711; it is gone)",
        "(the demo, as w2's kubelet after a restart, reports Ready",
        "(the demo, as the kubelet of w2, confirms that pod shop/web-66f1-b2 has stopped; the pod is gone)",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    // nothing in kube-system was touched
    assert!(
        !text.contains(
            "ACTED     delete-pod (detector Heal8sPodCrashLooping): deleted pod kube-system"
        ),
        "{text}"
    );
}

#[test]
fn the_demo_handles_every_problem_with_captured_payloads() {
    let text = demo(&["--no-alertmanager"]);
    assert_narrated(&text);
    assert!(
        text.contains("posted a captured Alertmanager webhook (KubePodCrashLooping): HTTP 200"),
        "{text}"
    );
}

#[test]
fn real_alertmanager_demo_handles_every_problem() {
    testkit::alertmanager_bin().unwrap();
    let text = demo(&[]);
    assert_narrated(&text);
    assert!(
        text.contains("(real, routing to heal8s with a bearer token)"),
        "{text}"
    );
}

#[test]
fn the_demo_says_what_was_not_handled_and_fails_when_time_runs_out() {
    let port = free_port().to_string();
    let out = Command::new(demo_bin())
        .args(["--exit-when-done", "--no-alertmanager", "--timeout", "0"])
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("Not handled in time:"), "{text}");
    assert!(text.contains("heal8s stopped cleanly."), "{text}");
    // the printed reads carry the token /outcomes and /policy need
    for path in ["outcomes", "policy"] {
        let line = format!(
            "curl -s -H 'Authorization: Bearer heal8s-demo-token' http://127.0.0.1:{port}/{path}"
        );
        assert!(text.contains(&line), "{line} not in:\n{text}");
    }
}

#[test]
fn the_demo_refuses_a_busy_port_with_a_clear_error() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let out = Command::new(demo_bin())
        .args(["--exit-when-done", "--no-alertmanager", "--listen", &addr])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
    assert!(err.contains("pass --listen 127.0.0.1:PORT"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
