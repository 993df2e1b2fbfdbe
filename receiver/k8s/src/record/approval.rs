//! Approvals on Remediation records (routes in mode `approve`): finding the
//! decisions people wrote (`spec.approval`, by `heal8s approve` / `reject`)
//! on the requests heal8s made (`status.approval`), and watching for them.
//! Whether a decision counts is receiver-core's (`status::apply` takes it
//! once; the guard's approval rules decide whether the plan may act).

use jiff::Timestamp;

use super::crd::Remediation;
use receiver_core::status::Phase;

/// A person's decision on the open request of a record.
#[derive(Debug, Clone)]
pub struct Decision {
    /// The record: `namespace/name`.
    pub record: String,
    /// The request decided on.
    pub request: String,
    /// Who decided (the name the API server gave them when they wrote it;
    /// the chart's admission policy refuses any other).
    pub by: String,
    /// When they said they decided (else when heal8s read it).
    pub at: Option<Timestamp>,
    pub approved: bool,
    /// The plan as heal8s made it (from the status, which only heal8s writes).
    pub plan: receiver_core::Plan,
}

/// The decision a person wrote on `r` that heal8s has yet to act on: its
/// request is the record's open one (awaiting approval, or approved by the
/// same person and not acted on yet).
pub fn decision_of(r: &Remediation) -> Option<Decision> {
    let status = r.status.as_ref()?;
    let asked = status.approval.as_ref()?;
    let given = r.spec.approval.as_ref()?;
    if given.request != asked.request {
        return None;
    }
    let (by, approved, at) = given.decision()?;
    let open = match status.phase {
        Some(Phase::AwaitingApproval) => true,
        Some(Phase::Approved) => approved && asked.approved_by.as_deref() == Some(by),
        _ => false,
    };
    if !open {
        return None;
    }
    Some(Decision {
        record: format!(
            "{}/{}",
            r.metadata.namespace.as_deref()?,
            r.metadata.name.as_deref()?
        ),
        request: given.request.clone(),
        by: by.to_string(),
        at: at.and_then(|t| t.parse().ok()),
        approved,
        plan: asked.plan()?,
    })
}
