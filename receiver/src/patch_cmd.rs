//! `heal8s patch`: the GitOps patcher on one file, for people and scripts.
//!
//! Exit codes: 0 patched (the new text or the diff printed, or the file
//! written); 1 refused (not found, ambiguous, an unsupported shape, a value
//! that would lower, an invalid file or value, or the edit's proof failed);
//! 2 a command-line error; 3 nothing to change; 4 at the cap (escalate).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use gitops::arith::BumpRule;
use gitops::patch::{Edit, PatchError, Patched, Target, patch};
use receiver_core::remediation::{BumpMemory, Remediation, ScaleUp};

/// Flags of `heal8s patch`.
#[derive(Debug, Clone, Args)]
pub struct PatchArgs {
    /// The manifest or Helm values file (`-`: standard input).
    pub file: PathBuf,
    /// Kind of the manifest document to edit (Deployment, StatefulSet,
    /// DaemonSet, CronJob, Pod, HorizontalPodAutoscaler, ...).
    #[arg(long, requires = "name")]
    pub kind: Option<String>,
    /// Name of the manifest document to edit.
    #[arg(long, requires = "kind")]
    pub name: Option<String>,
    /// Namespace of the workload; documents without a namespace match too.
    #[arg(long)]
    pub namespace: Option<String>,
    /// Container to edit (default: the only container).
    #[arg(long)]
    pub container: Option<String>,
    /// Edit a Helm values file: the component's values path (`metrics`,
    /// `workers.0`), `.` for the top level. Instead of --kind/--name.
    #[arg(long, conflicts_with_all = ["kind", "name", "namespace", "container"])]
    pub values_path: Option<String>,
    #[command(flatten)]
    pub edit: EditArgs,
    /// Policy file whose bump-memory and scale-up parameters to use (default:
    /// the built-in policy's).
    #[arg(long, env = "HEAL8S_POLICY")]
    pub policy: Option<PathBuf>,
    /// Write the result back to FILE instead of printing it.
    #[arg(long, conflicts_with = "diff")]
    pub in_place: bool,
    /// Print a unified diff instead of the new text.
    #[arg(long)]
    pub diff: bool,
}

/// Exactly one edit.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub struct EditArgs {
    /// Set the memory limit and request to this quantity (never lower).
    #[arg(long)]
    pub memory: Option<String>,
    /// Raise the memory limit by the bump-memory rule (and the request, per
    /// its `requests` parameter).
    #[arg(long)]
    pub bump_memory: bool,
    /// Set the replica count (an HPA: maxReplicas; never lower).
    #[arg(long)]
    pub replicas: Option<u32>,
    /// Raise the replica count (an HPA: maxReplicas) by the scale-up rule.
    #[arg(long)]
    pub scale_up: bool,
    /// Set the container's image to this reference, tag or digest as given.
    #[arg(long)]
    pub image: Option<String>,
}

/// Run `heal8s patch`.
pub fn run(args: &PatchArgs) -> anyhow::Result<ExitCode> {
    let target = match (&args.values_path, &args.kind, &args.name) {
        (Some(path), _, _) => Target::HelmValues {
            path: match path.trim() {
                "" | "." => Vec::new(),
                p => p.split('.').map(str::to_string).collect(),
            },
        },
        (None, Some(kind), Some(name)) => Target::Manifest {
            kind: kind.clone(),
            name: name.clone(),
            namespace: args.namespace.clone(),
            container: args.container.clone(),
        },
        _ => {
            return Ok(usage(
                "give --kind and --name (a manifest) or --values-path (a Helm values file)",
            ));
        }
    };
    let edit = match edit(args) {
        Ok(edit) => edit,
        Err(e) => return Ok(usage(&format!("{e:#}"))),
    };
    let text = read(&args.file)?;
    let patched = match patch(&text, &target, &edit) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("heal8s patch: {}: {e}", args.file.display());
            return Ok(ExitCode::from(match e {
                PatchError::NoChange(_) => 3,
                PatchError::AtCap { .. } => 4,
                _ => 1,
            }));
        }
    };
    summarize(&args.file, &patched);
    if args.in_place {
        write_in_place(&args.file, &patched.text)?;
    } else if args.diff {
        let name = args.file.display().to_string();
        let (a, b) = if args.file.is_relative() {
            (format!("a/{name}"), format!("b/{name}"))
        } else {
            (name.clone(), name)
        };
        print!(
            "{}",
            similar::TextDiff::from_lines(&text, &patched.text)
                .unified_diff()
                .context_radius(3)
                .header(&a, &b)
        );
    } else {
        print!("{}", patched.text);
    }
    Ok(ExitCode::SUCCESS)
}

/// A command-line error: exit code 2, like clap's own.
fn usage(message: &str) -> ExitCode {
    eprintln!("heal8s patch: {message}");
    ExitCode::from(2)
}

fn edit(args: &PatchArgs) -> anyhow::Result<Edit> {
    let e = &args.edit;
    if let Some(q) = &e.memory {
        return Ok(Edit::Memory(q.clone()));
    }
    if let Some(n) = e.replicas {
        if n == 0 {
            bail!("--replicas: must be at least 1");
        }
        return Ok(Edit::Replicas(n));
    }
    if let Some(image) = &e.image {
        return Ok(Edit::Image(image.clone()));
    }
    let policy = crate::cli::load_policy(args.policy.as_deref())?;
    let find = |pick: fn(&Remediation) -> bool| {
        policy
            .routes
            .iter()
            .map(|r| &r.remediation)
            .find(|r| pick(r))
            .cloned()
    };
    if e.bump_memory {
        let params = match find(|r| matches!(r, Remediation::BumpMemory(_))) {
            Some(Remediation::BumpMemory(p)) => p,
            _ => BumpMemory::default(),
        };
        return Ok(Edit::BumpMemory(
            BumpRule::from_params(&params).map_err(anyhow::Error::msg)?,
        ));
    }
    let params = match find(|r| matches!(r, Remediation::ScaleUp(_))) {
        Some(Remediation::ScaleUp(p)) => p,
        _ => ScaleUp::default(),
    };
    Ok(Edit::ScaleUp {
        percent: params.percent,
        cap: params.max_replicas,
    })
}

fn read(file: &Path) -> anyhow::Result<String> {
    if file == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read standard input")?;
        return Ok(text);
    }
    std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))
}

fn summarize(file: &Path, patched: &Patched) {
    for c in &patched.changes {
        eprintln!(
            "{}: {} {} -> {}",
            file.display(),
            c.path,
            c.before.as_deref().unwrap_or("(unset)"),
            c.after
        );
    }
    if let Some(why) = &patched.why {
        eprintln!("{}: {why}", file.display());
    }
}

/// Replace the file atomically (a sibling temporary file, then rename),
/// keeping its permissions.
fn write_in_place(file: &Path, text: &str) -> anyhow::Result<()> {
    if file == Path::new("-") {
        bail!("--in-place needs a file, not standard input");
    }
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = file.with_file_name(format!(".{name}.heal8s-tmp"));
    let perms = std::fs::metadata(file)
        .with_context(|| format!("cannot stat {}", file.display()))?
        .permissions();
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::set_permissions(&tmp, perms).ok();
    std::fs::rename(&tmp, file).with_context(|| format!("cannot replace {}", file.display()))?;
    Ok(())
}
