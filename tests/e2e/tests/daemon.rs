//! Daemon mode with real processes: `heal8s start` runs a detached `heal8s
//! serve` (with --no-cluster and a token file, on a free loopback port),
//! `status` reads its PID file, a second `start` is refused, `logs` prints
//! and follows its log, the log rotates by size, `stop` drains it with
//! SIGTERM, a stale PID file is cleaned up and `restart` gives a new PID.
//! Every file lives in a temporary directory; `$XDG_STATE_HOME` points into
//! it, so no test touches the real state directory.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use testkit::{TempDir, free_port, heal8s_bin};

const TOKEN: &str = "daemon-e2e-token";

struct Daemon {
    dir: TempDir,
    port: u16,
    token_file: PathBuf,
}

/// What a command said: exit code, stdout, stderr.
#[derive(Debug)]
struct Said {
    code: i32,
    out: String,
    err: String,
}

impl Daemon {
    fn new(prefix: &str) -> Daemon {
        let dir = TempDir::new(prefix);
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
        Daemon {
            dir,
            port: free_port(),
            token_file,
        }
    }

    fn pid_file(&self) -> PathBuf {
        self.dir.path().join("run/heal8s.pid")
    }

    fn log_file(&self) -> PathBuf {
        self.dir.path().join("logs/heal8s.log")
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `heal8s ARGS` with a clean environment: no HEAL8S_* variable of the
    /// caller's, and the state directory inside the test's.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(heal8s_bin());
        cmd.args(args)
            .env("XDG_STATE_HOME", self.dir.path().join("state"))
            .stdin(Stdio::null());
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("HEAL8S_") {
                cmd.env_remove(k);
            }
        }
        cmd
    }

    fn run(&self, args: &[&str]) -> Said {
        let out = self.command(args).output().unwrap();
        Said {
            code: out.status.code().unwrap_or(-1),
            out: String::from_utf8_lossy(&out.stdout).into(),
            err: String::from_utf8_lossy(&out.stderr).into(),
        }
    }

    /// `start` and `restart`'s flags: the serve flags, and the files (named
    /// explicitly unless `defaults`).
    fn serve_flags(&self, defaults: bool, extra: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = vec![
            "--no-cluster".into(),
            "--webhook-token-file".into(),
            self.token_file.display().to_string(),
            "--listen".into(),
            format!("127.0.0.1:{}", self.port),
        ];
        if !defaults {
            v.extend([
                "--pid-file".into(),
                self.pid_file().display().to_string(),
                "--log-file".into(),
                self.log_file().display().to_string(),
            ]);
        }
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    }

    fn start(&self, extra: &[&str]) -> Said {
        self.cmd_with_flags("start", false, extra)
    }

    fn cmd_with_flags(&self, cmd: &str, defaults: bool, extra: &[&str]) -> Said {
        let flags = self.serve_flags(defaults, extra);
        let mut args = vec![cmd];
        args.extend(flags.iter().map(String::as_str));
        self.run(&args)
    }

    fn files(&self) -> Vec<String> {
        let (p, l) = (self.pid_file(), self.log_file());
        vec![
            "--pid-file".into(),
            p.display().to_string(),
            "--log-file".into(),
            l.display().to_string(),
        ]
    }

    fn status(&self) -> Said {
        let f = self.files();
        self.run(&["status", &f[0], &f[1]])
    }

    fn stop(&self) -> Said {
        let f = self.files();
        self.run(&["stop", &f[0], &f[1], "--timeout", "20s"])
    }

    fn logs(&self, lines: &str) -> Said {
        let f = self.files();
        self.run(&["logs", &f[2], &f[3], "-n", lines])
    }

    fn pid_in(file: &Path) -> u32 {
        std::fs::read_to_string(file)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    async fn post_alert(&self, n: usize) -> u16 {
        let alert = json!({"version": "4", "status": "firing", "receiver": "heal8s", "groupKey": "{}",
            "alerts": [{"status": "firing", "startsAt": "2024-01-01T00:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z", "fingerprint": format!("fp-{n}"),
                "labels": {"alertname": "KubePodCrashLooping", "namespace": "shop",
                    "pod": format!("api-{n}"), "container": "api"}}]});
        reqwest::Client::new()
            .post(format!("{}/webhook/alertmanager", self.url()))
            .bearer_auth(TOKEN)
            .json(&alert)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // never leave a daemon behind, whatever failed
        for pid_file in [
            self.pid_file(),
            self.dir.path().join("state/heal8s/heal8s.pid"),
        ] {
            if pid_file.exists() {
                let _ = self
                    .command(&[
                        "stop",
                        "--pid-file",
                        pid_file.to_str().unwrap(),
                        "--timeout",
                        "5s",
                    ])
                    .output();
            }
        }
    }
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| !matches!(s.rsplit_once(") ").map(|(_, r)| &r[..1]), Some("Z")))
}

async fn healthz(url: &str) -> u16 {
    reqwest::get(format!("{url}/healthz"))
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_started_daemon_serves_refuses_a_second_start_and_stops_on_sigterm() {
    let d = Daemon::new("daemon-life");
    let started = d.start(&[]);
    assert_eq!(started.code, 0, "{started:?}");
    let pid = Daemon::pid_in(&d.pid_file());
    assert!(
        started.out.contains(&format!("heal8s started: pid {pid}")),
        "{started:?}"
    );
    assert!(alive(pid));

    let status = d.status();
    assert_eq!(status.code, 0, "{status:?}");
    assert!(
        status
            .out
            .contains(&format!("heal8s is running (pid {pid}, up ")),
        "{status:?}"
    );
    assert_eq!(healthz(&d.url()).await, 200);

    // a second daemon on the same PID file is refused, naming the live one
    let second = d.start(&[]);
    assert_eq!(second.code, 1, "{second:?}");
    assert!(
        second
            .err
            .contains(&format!("heal8s is already running (pid {pid}")),
        "{second:?}"
    );
    assert_eq!(Daemon::pid_in(&d.pid_file()), pid);

    let logs = d.logs("1000");
    assert_eq!(logs.code, 0, "{logs:?}");
    assert!(logs.out.contains("heal8s is serving."), "{logs:?}");
    assert!(
        logs.out.contains("Cluster: none (--no-cluster)"),
        "the summary is in the log: {logs:?}"
    );
    let last = d.logs("1");
    assert_eq!(last.out.lines().count(), 1, "{last:?}");

    let t = Instant::now();
    let stopped = d.stop();
    assert_eq!(stopped.code, 0, "{stopped:?}");
    assert!(
        stopped.out.contains(&format!("heal8s stopped (pid {pid}")),
        "SIGTERM was enough, no SIGKILL: {stopped:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(20));
    assert!(!alive(pid), "pid {pid} is still there");
    assert!(!d.pid_file().exists());
    let log = std::fs::read_to_string(d.log_file()).unwrap();
    assert!(
        log.contains("Shutdown requested") && log.contains("Shutdown complete."),
        "{log}"
    );

    let status = d.status();
    assert_eq!(status.code, 3, "{status:?}");
    assert!(status.out.contains("heal8s is not running"), "{status:?}");
    // stopping a stopped daemon is no error
    assert_eq!(d.stop().code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_follow_new_lines_and_the_log_rotates_by_size() {
    let d = Daemon::new("daemon-logs");
    let started = d.start(&[
        "--log-max-size",
        "2KiB",
        "--log-keep",
        "5",
        "--log-format",
        "json",
    ]);
    assert_eq!(started.code, 0, "{started:?}");

    let f = d.files();
    let mut follower = d
        .command(&["logs", "-f", "-n", "0", &f[2], &f[3]])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let seen = Arc::new(Mutex::new(String::new()));
    let mut out = follower.stdout.take().unwrap();
    let sink = seen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !seen.lock().unwrap().contains("heal8s is serving."),
        "-n 0 prints no old line"
    );

    // each alert logs its outcomes (two lines of about 650 bytes): the log
    // passes 2 KiB many times over, a rotation every alert or two
    let rotated = |n: u32| PathBuf::from(format!("{}.{n}", d.log_file().display()));
    for n in 0..30 {
        assert_eq!(d.post_alert(n).await, 200);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while !seen.lock().unwrap().contains("\"pod\":\"api-29\"")
        && !seen.lock().unwrap().contains("Pod shop/api-29")
    {
        assert!(
            Instant::now() < deadline,
            "the follower never showed the last alert's line: {}",
            seen.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let followed = seen.lock().unwrap().clone();
    for n in [0, 15, 29] {
        assert!(
            followed.contains(&format!("Pod shop/api-{n} ")),
            "alert {n} missing from the followed lines (across rotations):\n{followed}"
        );
    }
    for line in followed.lines() {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("a followed line is not whole JSON ({e}): {line:?}"));
        assert!(v["message"].is_string());
    }
    assert!(rotated(1).exists() && rotated(5).exists(), "no rotation");
    assert!(!rotated(6).exists(), "--log-keep 5 keeps 5 rotated files");
    for p in [d.log_file(), rotated(1), rotated(5)] {
        let len = std::fs::metadata(&p).unwrap().len();
        assert!(len <= 2048, "{} is {len} bytes", p.display());
    }
    let _ = follower.kill();
    let _ = follower.wait();
    assert_eq!(d.stop().code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_pid_file_is_cleaned_up_and_restart_gives_a_new_pid() {
    let d = Daemon::new("daemon-stale");
    // the default files, in $XDG_STATE_HOME/heal8s, a directory made private
    let state = d.dir.path().join("state/heal8s");
    let pid_file = state.join("heal8s.pid");
    let status = d.run(&["status"]);
    assert_eq!(status.code, 3, "{status:?}");
    assert!(!state.exists(), "status creates nothing");
    let started = d.cmd_with_flags("start", true, &[]);
    assert_eq!(started.code, 0, "{started:?}");
    assert!(state.join("heal8s.log").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&state).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "the state directory is private");
    }
    let killed = Daemon::pid_in(&pid_file);
    assert_eq!(d.run(&["stop"]).code, 0);

    // a PID file naming a dead process
    let mut dead = Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    std::fs::write(&pid_file, format!("{dead_pid}\n")).unwrap();
    let status = d.run(&["status"]);
    assert_eq!(status.code, 1, "{status:?}");
    assert!(status.out.contains("stale"), "{status:?}");

    let started = d.cmd_with_flags("start", true, &[]);
    assert_eq!(started.code, 0, "{started:?}");
    assert!(
        started.err.contains("removed the stale pid file"),
        "{started:?}"
    );
    let first = Daemon::pid_in(&pid_file);
    assert_ne!(first, dead_pid);
    assert_ne!(first, killed);
    assert_eq!(healthz(&d.url()).await, 200);

    let restarted = d.cmd_with_flags("restart", true, &["--timeout", "20s"]);
    assert_eq!(restarted.code, 0, "{restarted:?}");
    assert!(
        restarted
            .out
            .contains(&format!("heal8s stopped (pid {first}")),
        "{restarted:?}"
    );
    let second = Daemon::pid_in(&pid_file);
    assert_ne!(second, first);
    assert!(!alive(first));
    let status = d.run(&["status"]);
    assert_eq!(status.code, 0, "{status:?}");
    assert!(
        status.out.contains(&format!("(pid {second}, up")),
        "{status:?}"
    );
    assert_eq!(healthz(&d.url()).await, 200);
    let stopped = d.run(&["stop"]);
    assert_eq!(stopped.code, 0, "{stopped:?}");
    assert_eq!(d.run(&["status"]).code, 3);
}

#[test]
fn a_start_that_cannot_serve_fails_with_the_log_and_leaves_no_pid_file() {
    let d = Daemon::new("daemon-busy");
    // the port is taken
    let _holder = std::net::TcpListener::bind(("127.0.0.1", d.port)).unwrap();
    let started = d.start(&[]);
    assert_eq!(started.code, 1, "{started:?}");
    assert!(started.err.contains("cannot listen on"), "{started:?}");
    assert!(!d.pid_file().exists());
    // and what serve refuses at once never forks
    let no_token = d.run(&[
        "start",
        "--no-cluster",
        "--pid-file",
        d.pid_file().to_str().unwrap(),
    ]);
    assert_eq!(no_token.code, 1, "{no_token:?}");
    assert!(
        no_token.err.contains("no webhook token configured"),
        "{no_token:?}"
    );
    assert!(!d.pid_file().exists());
}
