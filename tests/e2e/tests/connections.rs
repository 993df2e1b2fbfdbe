//! A receiver that cannot be starved: a real `heal8s serve` with an
//! open-file limit of 256 (as low as some containers get), and more held
//! connections than that, half of them sending half a request head and
//! going quiet, half idle. Probes still answer at once, and the held
//! connections are closed within the header timeout.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::process::Command;
use std::time::{Duration, Instant};

use testkit::{Proc, TempDir, free_port, heal8s_bin};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HELD: usize = 300;

/// `GET path` on a fresh connection, within `within`: the status code.
async fn get(addr: &str, path: &str, within: Duration) -> Option<u16> {
    let attempt = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: heal8s\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        let head = String::from_utf8_lossy(&buf);
        head.split_whitespace().nth(1)?.parse().ok()
    };
    tokio::time::timeout(within, attempt).await.ok().flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_answer_while_more_connections_than_the_open_file_limit_are_held() {
    let dir = TempDir::new("conns");
    let token = dir.path().join("token");
    std::fs::write(&token, "t\n").unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"ulimit -n 256 && exec "$0" "$@""#)
        .arg(heal8s_bin())
        .args([
            "serve",
            "--no-cluster",
            "--listen",
            &addr,
            "--header-timeout",
            "2s",
        ])
        .arg("--webhook-token-file")
        .arg(&token);
    let proc = Proc::spawn(cmd, dir.path().join("heal8s.log")).unwrap();
    let started = Instant::now();
    while get(&addr, "/healthz", Duration::from_secs(1)).await != Some(200) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "heal8s never came up:\n{}",
            proc.output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // more connections than heal8s may open: half send half a head, half nothing
    let mut held = Vec::new();
    for i in 0..HELD {
        let Ok(mut s) = TcpStream::connect(&addr).await else {
            continue;
        };
        if i % 2 == 0 {
            let _ = s
                .write_all(b"POST /webhook/alertmanager HTTP/1.1\r\nHost: heal8s\r\nContent-Le")
                .await;
        }
        held.push(s);
    }
    assert!(held.len() >= 256, "only {} connections opened", held.len());

    // the probes answer at once, repeatedly, while those are held
    for _ in 0..5 {
        let t = Instant::now();
        assert_eq!(
            get(&addr, "/healthz", Duration::from_secs(1)).await,
            Some(200),
            "/healthz did not answer within 1s with {} connections held\n{}",
            held.len(),
            proc.output()
        );
        assert_eq!(
            get(&addr, "/readyz", Duration::from_secs(1)).await,
            Some(200)
        );
        println!("healthz answered in {:?}", t.elapsed());
    }

    // every held connection is closed within the header timeout (2s), by
    // the timeout or to make room
    let deadline = Instant::now() + Duration::from_secs(6);
    let mut open = 0;
    for s in &mut held {
        let mut b = [0u8; 256];
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left.max(Duration::from_millis(10)), s.read(&mut b)).await {
            // EOF, an error, or an answer (408/400) then EOF: closed
            Ok(Ok(0) | Err(_)) => {}
            Ok(Ok(_)) => {
                let mut rest = Vec::new();
                let _ =
                    tokio::time::timeout(Duration::from_secs(1), s.read_to_end(&mut rest)).await;
            }
            Err(_) => open += 1,
        }
    }
    assert_eq!(
        open, 0,
        "{open} held connections still open after the header timeout"
    );
    assert_eq!(
        get(&addr, "/healthz", Duration::from_secs(1)).await,
        Some(200)
    );
}
