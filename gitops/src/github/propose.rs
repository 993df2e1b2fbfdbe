//! From a declarative remediation to a pull request: read the repository's
//! YAML at the base branch, find where the workload is declared, edit the file
//! the field belongs in, and describe it; then open or update the one pull
//! request for that workload and remediation.

use std::collections::BTreeMap;
use std::time::Duration;

use super::client::{Github, GithubError, Repo};
use super::pr::{NewFile, PrOutcome, PrRequest};
use super::text::{self, Evidence, FileChanges};
use crate::locate::{self, Files, Source, SourceEditError, SourceRule, Workload};
use crate::patch::{Edit, PatchError};

/// Where and how pull requests are made (one manifest repository).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequestSettings {
    pub repo: Repo,
    /// The base branch; the repository's default when `None`.
    pub base: Option<String>,
    /// Directories heal8s may read and write (empty: the whole repository).
    pub roots: Vec<String>,
    /// Source rules, tried before the annotation and the search.
    pub sources: Vec<SourceRule>,
    /// The `env:` label.
    pub environment: Option<String>,
    pub reviewers: Vec<String>,
    pub assignees: Vec<String>,
    pub ignore_closed_for: Duration,
    /// Most YAML files read from the repository.
    pub max_files: usize,
    pub max_new_per_hour: Option<u32>,
    pub max_open: Option<u32>,
}

/// One declarative fix to propose.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    /// `bump-memory`, `scale-up`, `rollback-image`.
    pub remediation: String,
    pub workload: Workload,
    pub container: Option<String>,
    pub edit: Edit,
    pub evidence: Evidence,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    #[error(transparent)]
    Github(#[from] GithubError),
    #[error("{0}")]
    Source(#[from] SourceEditError),
    #[error("{0}")]
    Outside(String),
}

impl ProposeError {
    /// The patcher said there is nothing to change (3) or the value is at its
    /// cap (4): not failures of the pull request machinery.
    pub fn patch_error(&self) -> Option<&PatchError> {
        match self {
            ProposeError::Source(SourceEditError::Patch { error, .. }) => Some(error),
            _ => None,
        }
    }
}

/// A pull request ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    pub request: PrRequest,
    pub source: Source,
    pub changes: Vec<FileChanges>,
    /// For the apply workflow: `-f FILE` or `-k DIR`.
    pub apply: Vec<String>,
}

/// Build the pull request for `p` from the base branch's files. Pure.
pub fn prepare(
    files: &Files,
    settings: &PullRequestSettings,
    p: &Proposal,
) -> Result<Prepared, ProposeError> {
    let source = locate::locate(
        files,
        &p.workload,
        &settings.sources,
        Some(&settings.repo.to_string()),
    )
    .map_err(SourceEditError::from)?;
    let edited = locate::edit_source(files, &source, p.container.as_deref(), &p.edit)?;
    text::check_path(&edited.file, &settings.roots).map_err(ProposeError::Outside)?;
    let apply = match &source {
        Source::Manifest { levels, file, .. } => match levels.last() {
            Some(top) => {
                let dir = top.file.rsplit_once('/').map_or(".", |(d, _)| d);
                vec![format!("-k {dir}")]
            }
            None => vec![format!("-f {file}")],
        },
        // a values file is applied by whatever runs Helm
        Source::HelmValues { .. } => Vec::new(),
    };
    let changes = vec![FileChanges {
        path: edited.file.clone(),
        fields: edited.changes.clone(),
        notes: edited.notes.clone(),
    }];
    let title = text::title(&p.remediation, &p.evidence, &changes);
    let body = text::body(
        &p.remediation,
        &p.evidence,
        &changes,
        edited.why.as_deref(),
        &apply,
    );
    let branch = text::branch_name(
        &p.remediation,
        p.workload.namespace.as_deref(),
        &p.workload.name,
    );
    Ok(Prepared {
        request: PrRequest {
            repo: settings.repo.clone(),
            base: settings.base.clone(),
            branch,
            files: vec![NewFile {
                path: edited.file,
                text: edited.text,
            }],
            commit_message: title.clone(),
            title,
            body,
            labels: text::labels(&p.remediation, settings.environment.as_deref()),
            reviewers: settings.reviewers.clone(),
            assignees: settings.assignees.clone(),
            ignore_closed_for: settings.ignore_closed_for,
            max_new_per_hour: settings.max_new_per_hour,
            max_open: settings.max_open,
        },
        source,
        changes,
        apply,
    })
}

/// Read the base branch and prepare the pull request, writing nothing (what
/// a dry run shows). `cache` keeps blob texts between calls (blob sha → text).
pub async fn prepare_from_base(
    github: &Github,
    settings: &PullRequestSettings,
    p: &Proposal,
    cache: &mut BTreeMap<String, String>,
) -> Result<Prepared, ProposeError> {
    let base = match &settings.base {
        Some(b) => b.clone(),
        None => github.default_branch(&settings.repo).await?,
    };
    let files = github
        .yaml_files(
            &settings.repo,
            &base,
            &settings.roots,
            cache,
            settings.max_files,
        )
        .await?;
    let mut prepared = prepare(&files, settings, p)?;
    prepared.request.base = Some(base);
    Ok(prepared)
}

/// Read the base branch, prepare, and open or update the pull request.
pub async fn propose(
    github: &Github,
    settings: &PullRequestSettings,
    p: &Proposal,
    cache: &mut BTreeMap<String, String>,
) -> Result<(Prepared, PrOutcome), ProposeError> {
    let prepared = prepare_from_base(github, settings, p, cache).await?;
    let outcome = github.ensure_pull_request(&prepared.request).await?;
    Ok((prepared, outcome))
}
