//! Daemon mode, for running heal8s from a laptop or a CI box: `heal8s start`
//! (a detached `heal8s serve` child, its PID in a file, its log in a file
//! rotated by size), `stop`, `status`, `restart` and `logs`; and the
//! size-rotating log file `serve --log-file` writes through.
//!
//! Owns: the PID file, the log file and its rotation, finding out whether a
//! PID is a live heal8s, signalling it. Must not run the service itself (the
//! child is a plain `heal8s serve`) nor be used under a supervisor: systemd
//! and Kubernetes run `heal8s serve` (examples/systemd/heal8s.service).
//!
//! Without unsafe code: the child gets a process group of its own
//! (`process_group(0)`, so a Ctrl-C in the terminal does not reach it), and
//! signals are sent with the shell's `kill`.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use receiver_core::duration::PromDuration;

use crate::args::{LogArgs, ServeArgs};

/// What `serve` logs once it listens; `start` waits for it.
const SERVING: &str = "heal8s is serving.";
/// How long `start` waits for the child to say it serves.
const START_WAIT: Duration = Duration::from_secs(15);
/// How long `stop` waits for the process to go after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// The PID file flag.
#[derive(Debug, Clone, Args)]
pub struct PidFileArg {
    /// The daemon's PID file. Default: heal8s.pid in the state directory
    /// ($XDG_STATE_HOME/heal8s, else ~/.local/state/heal8s).
    #[arg(long, env = "HEAL8S_PID_FILE")]
    pub pid_file: Option<PathBuf>,
}

/// Flags of `heal8s start`: those of `serve`, and the PID file.
#[derive(Debug, Clone, Args)]
pub struct StartArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    #[command(flatten)]
    pub pid: PidFileArg,
}

/// How long `stop` waits after SIGTERM.
#[derive(Debug, Clone, Args)]
pub struct StopTimeout {
    /// How long to wait for heal8s to drain and exit after SIGTERM before
    /// sending SIGKILL.
    #[arg(long, env = "HEAL8S_STOP_TIMEOUT", default_value = "30s")]
    pub timeout: PromDuration,
}

/// Flags of `heal8s stop`.
#[derive(Debug, Clone, Args)]
pub struct StopArgs {
    #[command(flatten)]
    pub pid: PidFileArg,
    #[command(flatten)]
    pub stop: StopTimeout,
}

/// Flags of `heal8s restart`: those of `start`, and the stop timeout.
#[derive(Debug, Clone, Args)]
pub struct RestartArgs {
    #[command(flatten)]
    pub start: StartArgs,
    #[command(flatten)]
    pub stop: StopTimeout,
}

/// Flags of `heal8s logs`.
#[derive(Debug, Clone, Args)]
pub struct LogsArgs {
    /// The daemon's log file. Default: heal8s.log in the state directory.
    #[arg(long, env = "HEAL8S_LOG_FILE")]
    pub log_file: Option<PathBuf>,
    /// Keep printing lines as they are written (across rotations) until interrupted.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// How many of the last lines to print first.
    #[arg(short = 'n', long, default_value_t = 100)]
    pub lines: usize,
}

/// The flags of `start` and `restart` that are not `serve`'s, or that
/// `start` passes to the child itself (resolved).
const NOT_PASSED_ON: &[&str] = &[
    "--pid-file",
    "--timeout",
    "--log-file",
    "--log-max-size",
    "--log-keep",
];

/// The command line after the subcommand, as given (`start` passes it on to
/// `serve`, so the child runs with exactly the flags given).
pub fn raw_args() -> Vec<OsString> {
    std::env::args_os().skip(2).collect()
}

/// Install the logger `serve` writes through: stderr, or `--log-file`.
pub fn init_logging(log: &LogArgs) -> anyhow::Result<()> {
    match &log.log_file {
        None => crate::telemetry::init(log.log_format, &log.log_level),
        Some(path) => {
            let file = LogFile::open(path, log.log_max_size, log.log_keep)
                .with_context(|| format!("cannot open --log-file {}", path.display()))?;
            crate::telemetry::init_to(log.log_format, &log.log_level, file)
        }
    }
}

/// heal8s's state directory: `$XDG_STATE_HOME/heal8s`, else
/// `~/.local/state/heal8s`. Never a shared directory such as /tmp, where
/// another user could plant the PID file.
pub fn state_dir() -> anyhow::Result<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_STATE_HOME").map(PathBuf::from)
        && x.is_absolute()
    {
        return Ok(x.join("heal8s"));
    }
    match std::env::var_os("HOME").map(PathBuf::from) {
        Some(home) if home.is_absolute() => Ok(home.join(".local/state/heal8s")),
        _ => bail!(
            "neither $XDG_STATE_HOME nor $HOME is set: pass --pid-file and --log-file (HEAL8S_PID_FILE, HEAL8S_LOG_FILE)"
        ),
    }
}

/// `given`, absolute, or `name` in the state directory.
fn resolve(given: Option<&Path>, name: &str) -> anyhow::Result<PathBuf> {
    match given {
        Some(p) if p.is_absolute() => Ok(p.to_path_buf()),
        Some(p) => Ok(std::env::current_dir()
            .context("cannot read the current directory")?
            .join(p)),
        None => Ok(state_dir()?.join(name)),
    }
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot restrict {}", dir.display()))?;
    }
    Ok(())
}

fn pid_path(arg: &PidFileArg) -> anyhow::Result<PathBuf> {
    resolve(arg.pid_file.as_deref(), "heal8s.pid")
}

fn log_path(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    resolve(given, "heal8s.log")
}

// ------------------------------------------------------------ processes

/// What a PID is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Process {
    /// No such process (or a zombie).
    Gone,
    /// A live `heal8s serve`, up this long (when known).
    Heal8s { uptime: Option<Duration> },
    /// A live process that is not heal8s (the PID was reused): its command line.
    Other(String),
}

/// Whether a command line (argv) is a `heal8s serve`.
pub fn is_heal8s_serve(argv: &[String]) -> bool {
    let named = argv.first().is_some_and(|a| {
        Path::new(a)
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("heal8s"))
    });
    named && argv.iter().skip(1).any(|a| a == "serve")
}

/// Look `pid` up: `/proc` on Linux, else `ps`.
pub fn inspect(pid: u32) -> Process {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    if Path::new("/proc/self/stat").exists() {
        let Ok(stat) = fs::read_to_string(proc_dir.join("stat")) else {
            return Process::Gone;
        };
        // `pid (comm) S ...`: comm may hold spaces and parentheses
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after.split_whitespace().collect();
        if matches!(fields.first(), Some(&"Z") | Some(&"X") | None) {
            return Process::Gone;
        }
        let argv: Vec<String> = fs::read(proc_dir.join("cmdline"))
            .unwrap_or_default()
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if !is_heal8s_serve(&argv) {
            return Process::Other(argv.join(" "));
        }
        // field 22 of stat (20 after the state) is the start in clock ticks
        // since boot; the kernel reports those at USER_HZ, 100 on Linux
        let started = fields
            .get(19)
            .and_then(|t| t.parse::<u64>().ok())
            .map(|ticks| ticks as f64 / 100.0);
        let now = fs::read_to_string("/proc/uptime")
            .ok()
            .and_then(|u| u.split_whitespace().next()?.parse::<f64>().ok());
        let uptime = match (started, now) {
            (Some(s), Some(n)) if n >= s => Some(Duration::from_secs_f64(n - s)),
            _ => None,
        };
        return Process::Heal8s { uptime };
    }
    inspect_with_ps(pid)
}

/// Without /proc (macOS): `ps -o stat= -o etime= -o command= -p PID`.
fn inspect_with_ps(pid: u32) -> Process {
    let Ok(out) = Command::new("ps")
        .args(["-o", "stat=", "-o", "etime=", "-o", "command=", "-p"])
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .output()
    else {
        return Process::Gone;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace();
    let (Some(state), Some(etime)) = (words.next(), words.next()) else {
        return Process::Gone;
    };
    if state.starts_with('Z') {
        return Process::Gone;
    }
    let argv: Vec<String> = words.map(str::to_string).collect();
    if !is_heal8s_serve(&argv) {
        return Process::Other(argv.join(" "));
    }
    Process::Heal8s {
        uptime: parse_etime(etime),
    }
}

/// `ps`'s elapsed time, `[[dd-]hh:]mm:ss`.
fn parse_etime(s: &str) -> Option<Duration> {
    let (days, rest) = match s.split_once('-') {
        Some((d, r)) => (d.parse::<u64>().ok()?, r),
        None => (0, s),
    };
    let mut secs = 0u64;
    for part in rest.split(':') {
        secs = secs * 60 + part.parse::<u64>().ok()?;
    }
    Some(Duration::from_secs(days * 86_400 + secs))
}

/// Send `signal` (`TERM`, `KILL`) to `pid` with the shell's `kill`.
fn send_signal(pid: u32, signal: &str) -> anyhow::Result<()> {
    let status = Command::new("sh")
        .args(["-c", "kill -s \"$1\" \"$2\"", "sh", signal])
        .arg(pid.to_string())
        .status()
        .context("cannot run sh to send a signal")?;
    if !status.success() {
        bail!("could not send SIG{signal} to pid {pid}");
    }
    Ok(())
}

/// Wait up to `timeout` for `pid` to be gone.
fn wait_gone(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if !matches!(inspect(pid), Process::Heal8s { .. }) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ------------------------------------------------------------ the PID file

/// What the PID file says.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PidFile {
    Missing,
    /// It names this PID.
    Names(u32),
    /// It holds something else.
    Unreadable(String),
}

fn read_pid_file(path: &Path) -> PidFile {
    match fs::read_to_string(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => PidFile::Missing,
        Err(e) => PidFile::Unreadable(e.to_string()),
        Ok(text) => match text.trim().parse::<u32>() {
            Ok(pid) if pid > 1 => PidFile::Names(pid),
            _ => PidFile::Unreadable(format!("{:?} is not a PID", text.trim())),
        },
    }
}

/// Remove the PID file if it still names `pid` (a newer daemon's is kept).
fn remove_pid_file(path: &Path, pid: Option<u32>) {
    let ours = match (read_pid_file(path), pid) {
        (PidFile::Names(p), Some(want)) => p == want,
        (PidFile::Missing, _) => false,
        _ => true,
    };
    if ours {
        let _ = fs::remove_file(path);
    }
}

/// Where a live daemon stands, per its PID file.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Daemon {
    NotRunning,
    Running {
        pid: u32,
        uptime: Option<Duration>,
    },
    /// The PID file names no live heal8s.
    Stale {
        why: String,
    },
}

fn daemon_at(pid_file: &Path) -> Daemon {
    match read_pid_file(pid_file) {
        PidFile::Missing => Daemon::NotRunning,
        PidFile::Unreadable(why) => Daemon::Stale { why },
        PidFile::Names(pid) => match inspect(pid) {
            Process::Heal8s { uptime } => Daemon::Running { pid, uptime },
            Process::Gone => Daemon::Stale {
                why: format!("pid {pid} is not running"),
            },
            Process::Other(cmd) => Daemon::Stale {
                why: format!("pid {pid} is not heal8s but {cmd:?}"),
            },
        },
    }
}

// ------------------------------------------------------------ commands

/// `heal8s start`: start `heal8s serve` detached, with the flags given.
pub fn start(args: &StartArgs, raw: &[OsString]) -> anyhow::Result<ExitCode> {
    let pid_file = pid_path(&args.pid)?;
    let log_file = log_path(args.serve.log.log_file.as_deref())?;
    // what serve would refuse (no token, a bad policy) fails here, in the terminal
    crate::serve::settings(&args.serve)?;
    match daemon_at(&pid_file) {
        Daemon::Running { pid, .. } => bail!(
            "heal8s is already running (pid {pid}, pid file {}); `heal8s stop` or `heal8s restart` it",
            pid_file.display()
        ),
        Daemon::Stale { why } => {
            remove_pid_file(&pid_file, None);
            eprintln!(
                "heal8s: removed the stale pid file {} ({why})",
                pid_file.display()
            );
        }
        Daemon::NotRunning => {}
    }
    let state = state_dir().ok();
    for f in [&pid_file, &log_file] {
        match f.parent() {
            Some(dir) if Some(dir) == state.as_deref() => create_private_dir(dir)?,
            Some(dir) => fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?,
            None => {}
        }
    }
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_file)
        .with_context(|| format!("cannot open the log file {}", log_file.display()))?;
    let offset = log.metadata().map(|m| m.len()).unwrap_or(0);
    let exe = std::env::current_exe().context("cannot find the heal8s binary")?;
    let mut cmd = Command::new(exe);
    cmd.arg("serve")
        .args(pass_on(raw))
        .arg("--log-file")
        .arg(&log_file)
        .arg("--log-max-size")
        .arg(args.serve.log.log_max_size.to_string())
        .arg("--log-keep")
        .arg(args.serve.log.log_keep.to_string())
        .stdin(Stdio::null())
        // early errors and panics, before the logger or outside it
        .stdout(log.try_clone()?)
        .stderr(log);
    detach(&mut cmd);
    let mut child = cmd.spawn().context("cannot start heal8s serve")?;
    let pid = child.id();
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&pid_file)
        .and_then(|mut f| writeln!(f, "{pid}"));
    if let Err(e) = written {
        let _ = child.kill();
        let _ = child.wait();
        bail!(
            "cannot write the pid file {} ({e}); is another heal8s starting?",
            pid_file.display()
        );
    }
    let deadline = Instant::now() + START_WAIT;
    loop {
        if let Some(status) = child.try_wait()? {
            remove_pid_file(&pid_file, Some(pid));
            let tail = read_from(&log_file, offset);
            bail!(
                "heal8s serve exited at once ({status}); its log ({}):\n{}",
                log_file.display(),
                tail.trim_end()
            );
        }
        if read_from(&log_file, offset).contains(SERVING) {
            println!(
                "heal8s started: pid {pid}, log {}, pid file {}",
                log_file.display(),
                pid_file.display()
            );
            return Ok(ExitCode::SUCCESS);
        }
        if Instant::now() >= deadline {
            println!(
                "heal8s started: pid {pid} (not serving yet after {}s; `heal8s logs` tells why), log {}, pid file {}",
                START_WAIT.as_secs(),
                log_file.display(),
                pid_file.display()
            );
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The child's own process group: a Ctrl-C or a closed terminal's SIGHUP
/// reaches the foreground group, not it.
fn detach(cmd: &mut Command) {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    #[cfg(not(unix))]
    let _ = cmd;
}

/// `raw` without the flags `start` handles itself (and their values).
fn pass_on(raw: &[OsString]) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut skip_value = false;
    let mut rest = false;
    for a in raw {
        if rest {
            out.push(a.clone());
            continue;
        }
        if std::mem::take(&mut skip_value) {
            continue;
        }
        let s = a.to_string_lossy();
        if s == "--" {
            rest = true;
            out.push(a.clone());
            continue;
        }
        if NOT_PASSED_ON.contains(&s.as_ref()) {
            skip_value = true;
            continue;
        }
        if NOT_PASSED_ON
            .iter()
            .any(|f| s.starts_with(&format!("{f}=")))
        {
            continue;
        }
        out.push(a.clone());
    }
    out
}

/// The text of `path` from byte `offset` on (lossy), or nothing.
fn read_from(path: &Path, offset: u64) -> String {
    let mut out = Vec::new();
    if let Ok(mut f) = File::open(path)
        && f.seek(SeekFrom::Start(offset)).is_ok()
    {
        let _ = f.read_to_end(&mut out);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `heal8s stop`: SIGTERM, wait (heal8s drains), then SIGKILL.
pub fn stop(args: &StopArgs) -> anyhow::Result<ExitCode> {
    let pid_file = pid_path(&args.pid)?;
    stop_at(&pid_file, args.stop.timeout.get())?;
    Ok(ExitCode::SUCCESS)
}

fn stop_at(pid_file: &Path, timeout: Duration) -> anyhow::Result<()> {
    let pid = match daemon_at(pid_file) {
        Daemon::NotRunning => {
            println!("heal8s is not running (no pid file {})", pid_file.display());
            return Ok(());
        }
        Daemon::Stale { why } => {
            remove_pid_file(pid_file, None);
            println!(
                "heal8s is not running; removed the stale pid file {} ({why})",
                pid_file.display()
            );
            return Ok(());
        }
        Daemon::Running { pid, .. } => pid,
    };
    let started = Instant::now();
    send_signal(pid, "TERM")?;
    if wait_gone(pid, timeout) {
        remove_pid_file(pid_file, Some(pid));
        println!(
            "heal8s stopped (pid {pid}, in {:.1}s)",
            started.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    eprintln!(
        "heal8s: pid {pid} did not exit within {}; sending SIGKILL",
        PromDuration(timeout)
    );
    send_signal(pid, "KILL")?;
    if wait_gone(pid, KILL_WAIT) {
        remove_pid_file(pid_file, Some(pid));
        println!("heal8s killed (pid {pid})");
        return Ok(());
    }
    bail!("pid {pid} is still running after SIGKILL")
}

/// `heal8s status`: 0 running, 1 a stale pid file, 3 not running (as LSB
/// init scripts answer).
pub fn status(args: &PidFileArg) -> anyhow::Result<ExitCode> {
    let pid_file = pid_path(args)?;
    Ok(match daemon_at(&pid_file) {
        Daemon::Running { pid, uptime } => {
            let up = uptime.map_or_else(
                || "unknown".to_string(),
                |u| PromDuration(Duration::from_secs(u.as_secs())).to_string(),
            );
            println!("heal8s is running (pid {pid}, up {up})");
            ExitCode::SUCCESS
        }
        Daemon::Stale { why } => {
            println!(
                "heal8s is not running, but its pid file {} is stale ({why}); `heal8s start` removes it",
                pid_file.display()
            );
            ExitCode::from(1)
        }
        Daemon::NotRunning => {
            println!("heal8s is not running");
            ExitCode::from(3)
        }
    })
}

/// `heal8s restart`: stop, then start with the flags given.
pub fn restart(args: &RestartArgs, raw: &[OsString]) -> anyhow::Result<ExitCode> {
    // check the new settings before stopping the running daemon
    crate::serve::settings(&args.start.serve.clone())?;
    let pid_file = pid_path(&args.start.pid)?;
    stop_at(&pid_file, args.stop.timeout.get())?;
    start(&args.start, raw)
}

/// `heal8s logs`: the last lines of the log file, then (`-f`) what comes.
pub fn logs(args: &LogsArgs) -> anyhow::Result<ExitCode> {
    let path = log_path(args.log_file.as_deref())?;
    let mut file = File::open(&path)
        .with_context(|| format!("cannot open the log file {}", path.display()))?;
    let end = file.seek(SeekFrom::End(0))?;
    let from = tail_start(&mut file, end, args.lines)?;
    let mut out = io::stdout().lock();
    let mut pos = copy_from(&mut file, from, &mut out)?;
    if !args.follow {
        return Ok(ExitCode::SUCCESS);
    }
    let mut id = file_id(&file.metadata()?);
    loop {
        std::thread::sleep(Duration::from_millis(100));
        pos = copy_from(&mut file, pos, &mut out)?;
        let Ok(now) = fs::metadata(&path) else {
            // between the rename and the new file
            continue;
        };
        if file_id(&now) == id {
            if now.len() < pos {
                // truncated in place (--log-keep 0)
                pos = 0;
            }
            continue;
        }
        // rotated, perhaps more than once since we looked: the rest of
        // ours was copied above; then the rotated files newer than ours,
        // oldest first, then the new one from its start
        let Ok(current) = File::open(&path) else {
            continue;
        };
        let current_id = file_id(&current.metadata()?);
        for mut f in rotated_since(&path, id, current_id) {
            copy_from(&mut f, 0, &mut out)?;
        }
        (file, id, pos) = (current, current_id, 0);
    }
}

/// The rotated files (`FILE.1`, `FILE.2`, ...) newer than the one with
/// identity `old`, oldest first, without the one now at `FILE` (`current`).
fn rotated_since(path: &Path, old: u64, current: u64) -> Vec<File> {
    let mut newer = Vec::new();
    for n in 1..=1000 {
        let Ok(f) = File::open(numbered(path, n)) else {
            break;
        };
        let Ok(m) = f.metadata() else {
            break;
        };
        let fid = file_id(&m);
        if fid == old {
            break;
        }
        if fid != current {
            newer.push(f);
        }
    }
    newer.reverse();
    newer
}

/// Copy `file` from `pos` to its end into `out`; the new position.
fn copy_from(file: &mut File, pos: u64, out: &mut impl Write) -> anyhow::Result<u64> {
    file.seek(SeekFrom::Start(pos))?;
    let copied = io::copy(file, out)?;
    out.flush()?;
    Ok(pos + copied)
}

/// Where the last `lines` lines of `file` (of length `end`) start.
fn tail_start(file: &mut File, end: u64, lines: usize) -> anyhow::Result<u64> {
    if lines == 0 {
        return Ok(end);
    }
    let mut pos = end;
    let mut seen = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    // the last line's own newline ends it, it does not start another
    let mut skip_last = true;
    while pos > 0 {
        let n = usize::try_from(pos.min(buf.len() as u64)).unwrap_or(buf.len());
        pos -= n as u64;
        file.seek(SeekFrom::Start(pos))?;
        file.read_exact(&mut buf[..n])?;
        for i in (0..n).rev() {
            if buf[i] != b'\n' {
                skip_last = false;
                continue;
            }
            if std::mem::take(&mut skip_last) {
                continue;
            }
            seen += 1;
            if seen == lines {
                return Ok(pos + i as u64 + 1);
            }
        }
    }
    Ok(0)
}

/// The identity of a file, to notice the log was rotated.
fn file_id(m: &fs::Metadata) -> u64 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        m.ino()
    }
    #[cfg(not(unix))]
    {
        let _ = m;
        0
    }
}

// ------------------------------------------------------------ the log file

/// A log file rotated by size: before a write would take it past
/// `max_size`, `FILE` becomes `FILE.1` (`FILE.1` becomes `FILE.2`, ...,
/// `FILE.<keep>` is dropped) and a new `FILE` is started. A handle: clones
/// write to the same file; each write is one whole log line.
#[derive(Debug, Clone)]
pub struct LogFile(Arc<Mutex<Rotating>>);

#[derive(Debug)]
struct Rotating {
    path: PathBuf,
    max_size: u64,
    keep: u32,
    file: Option<File>,
    size: u64,
}

impl LogFile {
    /// Open (append to) `path`, creating it and its directory.
    pub fn open(path: &Path, max_size: u64, keep: u32) -> io::Result<LogFile> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir)?;
        }
        let file = append(path)?;
        let size = file.metadata()?.len();
        Ok(LogFile(Arc::new(Mutex::new(Rotating {
            path: path.to_path_buf(),
            max_size: max_size.max(1),
            keep,
            file: Some(file),
            size,
        }))))
    }
}

fn append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// `FILE.n`.
fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

impl Rotating {
    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        if self.keep == 0 {
            let f = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .open(&self.path)?;
            drop(f);
        } else {
            let gone = |r: io::Result<()>| match r {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            };
            gone(fs::remove_file(numbered(&self.path, self.keep)))?;
            for n in (1..self.keep).rev() {
                gone(fs::rename(
                    numbered(&self.path, n),
                    numbered(&self.path, n + 1),
                ))?;
            }
            gone(fs::rename(&self.path, numbered(&self.path, 1)))?;
        }
        self.file = Some(append(&self.path)?);
        self.size = 0;
        Ok(())
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let len = buf.len() as u64;
        if self.size > 0 && self.size.saturating_add(len) > self.max_size {
            // a failed rotation (a full disk, a removed directory) must not
            // lose the line: it goes on in the file as it is
            let _ = self.rotate();
        }
        if self.file.is_none() {
            self.file = Some(append(&self.path)?);
        }
        let Some(f) = self.file.as_mut() else {
            return Err(io::ErrorKind::NotFound.into());
        };
        f.write_all(buf)?;
        self.size = self.size.saturating_add(len);
        Ok(buf.len())
    }
}

impl Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut r = self.0.lock().unwrap_or_else(|e| e.into_inner());
        r.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut r = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match r.file.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use super::*;

    fn temp(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("heal8s-daemon-unit-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn the_log_rotates_before_it_passes_its_size_and_keeps_n_files() {
        let dir = temp("rotate");
        let path = dir.join("heal8s.log");
        let mut log = LogFile::open(&path, 100, 2).unwrap();
        for i in 0..10 {
            log.write_all(format!("line {i:02} {}\n", "x".repeat(30)).as_bytes())
                .unwrap();
        }
        let size = |p: &Path| fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        assert!(size(&path) <= 100 && size(&path) > 0);
        assert!(size(&numbered(&path, 1)) <= 100 && size(&numbered(&path, 1)) > 0);
        assert!(numbered(&path, 2).exists());
        assert!(!numbered(&path, 3).exists(), "only 2 rotated files kept");
        let newest = fs::read_to_string(&path).unwrap();
        assert!(newest.contains("line 09"), "{newest}");
        // no line was split across files
        for p in [path.clone(), numbered(&path, 1), numbered(&path, 2)] {
            for l in fs::read_to_string(&p).unwrap().lines() {
                assert!(l.starts_with("line ") && l.len() == 38, "{l:?}");
            }
        }
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn keeping_no_files_truncates() {
        let dir = temp("keep0");
        let path = dir.join("x.log");
        let mut log = LogFile::open(&path, 10, 0).unwrap();
        log.write_all(b"12345678\n").unwrap();
        log.write_all(b"abcdefgh\n").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "abcdefgh\n");
        assert!(!numbered(&path, 1).exists());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_tail_starts_at_the_last_lines() {
        let dir = temp("tail");
        let path = dir.join("t.log");
        fs::write(&path, "a\nb\nc\nd\n").unwrap();
        let mut f = File::open(&path).unwrap();
        let end = f.seek(SeekFrom::End(0)).unwrap();
        assert_eq!(tail_start(&mut f, end, 2).unwrap(), 4);
        assert_eq!(tail_start(&mut f, end, 4).unwrap(), 0);
        assert_eq!(tail_start(&mut f, end, 10).unwrap(), 0);
        assert_eq!(tail_start(&mut f, end, 0).unwrap(), end);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn start_passes_on_serve_flags_and_keeps_its_own() {
        let raw: Vec<OsString> = [
            "--pid-file",
            "/x/p",
            "--listen",
            "127.0.0.1:1",
            "--log-file=/x/l",
            "--timeout",
            "5s",
            "-n",
            "a,b",
            "--log-max-size",
            "1KiB",
            "--no-cluster",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let kept: Vec<String> = pass_on(&raw)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            kept,
            ["--listen", "127.0.0.1:1", "-n", "a,b", "--no-cluster"]
        );
    }

    #[test]
    fn only_a_heal8s_serve_counts_as_the_daemon() {
        let v = |s: &[&str]| s.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        assert!(is_heal8s_serve(&v(&[
            "/usr/bin/heal8s",
            "serve",
            "--no-cluster"
        ])));
        assert!(!is_heal8s_serve(&v(&["/usr/bin/heal8s", "logs", "-f"])));
        assert!(!is_heal8s_serve(&v(&["/bin/sleep", "serve"])));
        assert!(!is_heal8s_serve(&v(&[])));
        assert_eq!(parse_etime("01:02"), Some(Duration::from_secs(62)));
        assert_eq!(
            parse_etime("2-03:04:05"),
            Some(Duration::from_secs(2 * 86_400 + 3 * 3600 + 4 * 60 + 5))
        );
    }

    #[test]
    fn our_own_process_is_live_and_not_heal8s_and_a_dead_pid_is_gone() {
        assert!(matches!(inspect(std::process::id()), Process::Other(_)));
        // pid_max is at most 2^22 on Linux
        assert_eq!(inspect(4_194_305), Process::Gone);
    }

    #[test]
    fn sizes_read_with_their_units() {
        use crate::args::parse_size;
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("2KiB"), Ok(2048));
        assert_eq!(parse_size("10MiB"), Ok(10 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert!(parse_size("0").is_err());
        assert!(parse_size("ten").is_err());
        assert!(parse_size("5XB").is_err());
    }
}
