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
use gitops::locate::{self, SourceEditError, Workload};
use gitops::patch::{Edit, FieldChange, PatchError, Target, patch};
use receiver_core::remediation::{BumpMemory, Remediation, ScaleUp};

/// Flags of `heal8s patch`.
#[derive(Debug, Clone, Args)]
pub struct PatchArgs {
    /// The manifest or Helm values file (`-`: standard input).
    #[arg(required_unless_present = "repo")]
    pub file: Option<PathBuf>,
    /// Instead of FILE: a manifest repository checkout. heal8s finds where the
    /// workload (--kind/--name/--namespace) is declared (rules from --sources,
    /// then --source-annotation, then a search, kustomize included), edits the
    /// file the field belongs in, and prints the diff (or writes it with --in-place).
    #[arg(long, conflicts_with_all = ["file", "values_path"], requires = "kind")]
    pub repo: Option<PathBuf>,
    /// With --repo: a sources file (`sources:` rules: namespace, name, kind
    /// globs; path and valuesPath templates with {namespace}, {name}, {kind}).
    #[arg(long, requires = "repo")]
    pub sources: Option<PathBuf>,
    /// With --repo: the live object's `heal8s.io/source` annotation
    /// (`<repo>//<path>`: a manifest or kustomization; one naming a Helm
    /// values file, `#<values path>`, is refused: only --sources rules name those).
    #[arg(long, requires = "repo")]
    pub source_annotation: Option<String>,
    /// With --repo: this repository's name, checked against the annotation's.
    #[arg(long, requires = "repo")]
    pub repo_name: Option<String>,
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
    if let Some(repo) = &args.repo {
        return run_repo(args, repo);
    }
    let Some(file) = args.file.as_deref() else {
        return Ok(usage("give FILE or --repo DIR"));
    };
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
    let Some(text) = read(file)? else {
        eprintln!(
            "heal8s patch: {}: larger than the {} MiB limit on file size; heal8s does not edit such a file",
            file.display(),
            gitops::yaml::MAX_FILE_BYTES >> 20
        );
        return Ok(ExitCode::from(1));
    };
    let patched = match patch(&text, &target, &edit) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("heal8s patch: {}: {e}", file.display());
            return Ok(refused(&e));
        }
    };
    summarize(file, &patched.changes, patched.why.as_deref());
    if args.in_place {
        write_in_place(file, &patched.text)?;
    } else if args.diff {
        print!("{}", diff(file, &text, &patched.text));
    } else {
        print!("{}", patched.text);
    }
    Ok(ExitCode::SUCCESS)
}

fn refused(e: &PatchError) -> ExitCode {
    ExitCode::from(match e {
        PatchError::NoChange(_) => 3,
        PatchError::AtCap { .. } => 4,
        _ => 1,
    })
}

fn diff(file: &Path, before: &str, after: &str) -> String {
    let name = file.display().to_string();
    let (a, b) = if file.is_relative() {
        (format!("a/{name}"), format!("b/{name}"))
    } else {
        (name.clone(), name)
    };
    similar::TextDiff::from_lines(before, after)
        .unified_diff()
        .context_radius(3)
        .header(&a, &b)
        .to_string()
}

/// `--repo DIR`: locate, edit the right file, print the diff or write it.
fn run_repo(args: &PatchArgs, repo: &Path) -> anyhow::Result<ExitCode> {
    let (Some(kind), Some(name)) = (&args.kind, &args.name) else {
        return Ok(usage("--repo needs --kind and --name"));
    };
    let edit = match edit(args) {
        Ok(edit) => edit,
        Err(e) => return Ok(usage(&format!("{e:#}"))),
    };
    let rules = match &args.sources {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            match locate::parse_rules(&text) {
                Ok(rules) => rules,
                Err(e) => return Ok(usage(&format!("--sources {}: {e}", path.display()))),
            }
        }
        None => Vec::new(),
    };
    let files = locate::load_dir(repo)
        .with_context(|| format!("cannot read the repository {}", repo.display()))?;
    let workload = Workload {
        kind: kind.clone(),
        namespace: args.namespace.clone(),
        name: name.clone(),
        source_annotation: args.source_annotation.clone(),
    };
    let source = match locate::locate(&files, &workload, &rules, args.repo_name.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("heal8s patch: {}: {e}", repo.display());
            return Ok(ExitCode::FAILURE);
        }
    };
    let edited = match locate::edit_source(&files, &source, args.container.as_deref(), &edit) {
        Ok(e) => e,
        Err(SourceEditError::Patch { file, error }) => {
            eprintln!("heal8s patch: {file}: {error}");
            return Ok(refused(&error));
        }
        Err(e) => {
            eprintln!("heal8s patch: {}: {e}", repo.display());
            return Ok(ExitCode::FAILURE);
        }
    };
    let rel = Path::new(&edited.file);
    summarize(rel, &edited.changes, edited.why.as_deref());
    for note in &edited.notes {
        eprintln!("{}: note: {note}", edited.file);
    }
    if args.in_place {
        write_in_place(&repo.join(rel), &edited.text)?;
    } else {
        let before = files.get(&edited.file).map(String::as_str).unwrap_or("");
        print!("{}", diff(rel, before, &edited.text));
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
    let policy = crate::args::load_policy(args.policy.as_deref())?;
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

/// The file's text (`-`: standard input), or `None` when it is larger than
/// the patcher reads: at most one byte past the limit is read, whatever the
/// file's size.
fn read(file: &Path) -> anyhow::Result<Option<String>> {
    let limit = u64::try_from(gitops::yaml::MAX_FILE_BYTES).unwrap_or(u64::MAX);
    let mut bytes = Vec::new();
    if file == Path::new("-") {
        std::io::stdin()
            .take(limit + 1)
            .read_to_end(&mut bytes)
            .context("cannot read standard input")?;
    } else {
        std::fs::File::open(file)
            .and_then(|f| f.take(limit + 1).read_to_end(&mut bytes))
            .with_context(|| format!("cannot read {}", file.display()))?;
    }
    if bytes.len() > gitops::yaml::MAX_FILE_BYTES {
        return Ok(None);
    }
    String::from_utf8(bytes)
        .map(Some)
        .with_context(|| format!("{} is not UTF-8 text", file.display()))
}

fn summarize(file: &Path, changes: &[FieldChange], why: Option<&str>) {
    for c in changes {
        eprintln!(
            "{}: {} {} -> {}",
            file.display(),
            c.path,
            c.before.as_deref().unwrap_or("(unset)"),
            c.after
        );
    }
    if let Some(why) = why {
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
