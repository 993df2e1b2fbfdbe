//! The standalone `testkit kube` server: prints its URL, writes a usable
//! kubeconfig, serves the API, and exits cleanly on SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use testkit::KubeProcess;

fn get(url: &str, path: &str) -> String {
    let addr = url.strip_prefix("http://").unwrap();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn standalone_server_serves_the_api_and_exits_on_sigterm() {
    let mut k = KubeProcess::start().unwrap();
    let kubeconfig = std::fs::read_to_string(&k.kubeconfig).unwrap();
    assert!(
        kubeconfig.contains(&format!("server: {}", k.url)),
        "{kubeconfig}"
    );
    let version = get(&k.url, "/version");
    assert!(version.starts_with("HTTP/1.1 200"), "{version}");
    assert!(version.contains("\"gitVersion\":\"v1.33.0"), "{version}");
    let ns = get(&k.url, "/api/v1/namespaces/default");
    assert!(ns.contains("\"kind\":\"Namespace\""), "{ns}");
    assert!(
        k.log().contains("GET /api/v1/namespaces/default -> 200"),
        "{}",
        k.log()
    );
    k.proc.terminate();
    assert_eq!(
        k.proc.wait_exit(Duration::from_secs(10)),
        Some(0),
        "{}",
        k.log()
    );
}
