//! One reconcile of one ApiToken: gather inputs, call the plan, apply it, report. Decisions live
//! in [`crate::plan`]; building objects in [`crate::secret`] and [`crate::status`].

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use crate::adopt;
use crate::api::{ApiToken, ApiTokenStatus, INVALIDATE_ANNOTATION, IssueReason, ROTATE_ANNOTATION};
use crate::controller::{Context, requeue_at};
use crate::error::Error;
use crate::plan::{self, IssueRecord, Observed};
use crate::policy::Policy;
use crate::progress;
use crate::report::{self, Audit, Reason};
use crate::restore;
use crate::rollout;
use crate::secret::{self, Desired};
use crate::secret_cache::SecretCache;
use crate::status::{self, Readiness};
use crate::{teardown, token};

mod records;
mod writes;

use records::{audit_for, current_issue, issue_report};
use writes::apply_secret;
pub use writes::create_shell;
pub(crate) use writes::write_status;

/// One reconcile of a live ApiToken: gather, plan, apply, report.
/// `token` is as stored, not as cached (see [`crate::controller`]).
pub async fn apply(token: &ApiToken, ctx: &Context, ns: &str) -> Result<Action, Error> {
    // Whole seconds, like every time Kubernetes stores; due times then land on whole seconds too.
    let now = Timestamp::from_second(Timestamp::now().as_second()).expect("the clock is in range");
    let mut status = token.status.clone().unwrap_or_default();
    status.secret_name = Some(token.secret_name());
    let generation = token.metadata.generation;

    let (policy, invalid) = Policy::resolve_lenient(&token.spec);
    if let (Some(invalid), None) = (&invalid, status.revision) {
        // Nothing issued yet: issue nothing for a spec we cannot follow.
        return stall(
            token,
            ctx,
            status,
            Readiness::InvalidSpec,
            invalid.0.clone(),
            now,
        )
        .await;
    }

    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    // An issued token whose Secret left the cache: during a namespace teardown, one read of the
    // namespace (remembered) instead of one of each Secret.
    let lost = status.revision.is_some() && !ctx.secrets.holds(ns, &token.secret_name());
    if lost && ctx.namespaces.terminating(&ctx.client, ns).await? {
        return Ok(Action::requeue(teardown::TERMINATING_FOR));
    }
    let observed_secret = ctx.secrets.get(&secrets, ns, &token.secret_name()).await?;
    if let Some(until) = restore::awaiting_secret(token, observed_secret.is_some(), now) {
        return restore::wait(token, ctx, status, until, now).await;
    }
    // Ours, or ours before a restore or a Retain re-create: see `adopt` for the trust model.
    let trusted = adopt::trusted(observed_secret.as_ref(), token, &policy.format);
    let adopting = matches!(trusted, Ok(Some(s)) if !secret::is_ours(s, token));
    let annotations = token.annotations();
    let rotate_request = annotations.get(ROTATE_ANNOTATION).map(String::as_str);
    let plan = plan::plan(
        &policy,
        &Observed {
            status: token.status.as_ref(),
            rotate_request,
            invalidate_previous: annotations
                .get(INVALIDATE_ANNOTATION)
                .is_some_and(|v| v == "true"),
            secret: trusted.map_or(plan::SecretState::Foreign, secret::observe_trusted),
            now,
        },
    );
    tracing::debug!(namespace = ns, name = %token.name_any(), action = ?plan.action, "planned");

    let creates = teardown::would_create_secret(&plan.action, observed_secret.is_some());
    if creates && ctx.namespaces.terminating(&ctx.client, ns).await? {
        // The namespace controller deleted the Secret; everything here is going. Looked at again
        // once that answer is no longer trusted, in case a namespace of the same name came back.
        return Ok(Action::requeue(teardown::TERMINATING_FOR));
    }
    if plan.action == plan::Action::Conflict {
        let message = format!(
            "Secret {} exists and is not managed by this ApiToken; it is left untouched (not adopted: {})",
            token.secret_name(),
            trusted.err().map_or("-", adopt::Refusal::as_str)
        );
        // The Secret watch brings us back when the foreign Secret changes or goes.
        return stall(token, ctx, status, Readiness::SecretConflict, message, now).await;
    }

    let step = Step {
        token,
        secrets: &secrets,
        cache: &ctx.secrets,
        observed: trusted.ok().flatten(),
        expires_at: plan.expires_at,
        now,
    };
    let report = match step
        .run(&plan.action, &mut status, &policy, rotate_request)
        .await
    {
        Ok(report) => report,
        Err(Error::SecretRejected(message)) => {
            let message = format!("the API server rejected the Secret: {message}");
            return stall(token, ctx, status, Readiness::InvalidSpec, message, now).await;
        }
        // Not a failure to report: the next reconcile reads the Secret that is there.
        Err(Error::SecretExists) => return Err(Error::SecretExists),
        Err(error) => return Err(progress::retrying(token, ctx, status, error, now).await),
    };
    let (why, message) = if let Some(invalid) = &invalid {
        let message = format!("{}; that field is ignored until it is fixed", invalid.0);
        (Readiness::InvalidSpec, message)
    } else if plan.action == plan::Action::Expire {
        let message = "the value expired and autoRenew is false; set the apitoken.dev/rotate annotation to issue a new one";
        (Readiness::Expired, message.to_owned())
    } else {
        let message = format!(
            "revision {} is current ({})",
            status.revision.unwrap_or(0),
            status.fingerprint.as_deref().unwrap_or("-")
        );
        (Readiness::Issued, message)
    };
    let report = if adopting {
        adopt::mark_history(&mut status, token.status.as_ref());
        let (reason, note, audit) = adopt::report(token, &status);
        let related = report.and_then(|r| r.related);
        Some(Report {
            reason,
            note,
            audit,
            related,
        })
    } else {
        report
    };
    let was = status::ready_reason(token.status.as_ref()).map(str::to_owned);
    status::set_ready(&mut status, why, message.clone(), generation, now);
    status.expires_at = plan.expires_at.map(Time);
    status.next_rotation_at = plan.next_rotation.map(Time);
    write_status(token, ctx, &status).await?;

    if why == Readiness::InvalidSpec && was.as_deref() != Some(why.as_str()) {
        report::event(&ctx.events, token, Reason::InvalidSpec, message, None).await;
    }
    if let (Some(revision), false) = (status.revision, plan.action == plan::Action::Expire) {
        rollout::restart_targets(ctx, token, ns, revision, report.is_some()).await?;
    }
    if let Some(Report {
        reason,
        note,
        audit,
        related,
    }) = report
    {
        ctx.audit(&audit);
        report::event(&ctx.events, token, reason, note, related.as_ref()).await;
    }
    Ok(requeue_at(plan.next_due, Timestamp::now()))
}

/// What a step did that is reported once status is written.
struct Report {
    reason: Reason,
    note: String,
    audit: Audit,
    /// The Secret as written, if the step wrote it.
    related: Option<Secret>,
}

/// The Secret-side work of one reconcile, shared by the plan's actions.
struct Step<'a> {
    token: &'a ApiToken,
    secrets: &'a Api<Secret>,
    /// Told about every Secret write, so it never decides on a Secret older than ours.
    cache: &'a SecretCache,
    /// The Secret, when it is ours.
    observed: Option<&'a Secret>,
    expires_at: Option<Timestamp>,
    now: Timestamp,
}

impl Step<'_> {
    async fn run(
        &self,
        action: &plan::Action,
        status: &mut ApiTokenStatus,
        policy: &Policy,
        rotate_request: Option<&str>,
    ) -> Result<Option<Report>, Error> {
        match action {
            plan::Action::Conflict => Ok(None),
            &plan::Action::Issue {
                reason,
                previous_until,
            } => {
                // Any issue handles the pending request: one request, at most one new value.
                // Without a request annotation, keep the last handled one: the Secret's record
                // must match what Keep later rebuilds from status.
                let request = rotate_request
                    .map(str::to_owned)
                    .or_else(|| status.last_rotate_request.clone());
                let report = self
                    .issue(status, policy, reason, previous_until, request)
                    .await?;
                Ok(Some(report))
            }
            plan::Action::Recover(issue) => self.recover(status, policy, issue).await.map(Some),
            plan::Action::Expire => self.expire(status).await,
            &plan::Action::Keep { previous_until } => {
                self.keep(status, previous_until).await?;
                Ok(None)
            }
        }
    }

    fn values(&self) -> secret::Values {
        self.observed.map_or(
            secret::Values {
                current: None,
                previous: None,
            },
            secret::values,
        )
    }

    async fn write(
        &self,
        current: Option<&token::Token>,
        previous: Option<&token::Token>,
        issue: &IssueRecord,
    ) -> Result<Option<Secret>, Error> {
        let desired = Desired {
            current,
            previous,
            issue,
            expires_at: self.expires_at,
        };
        apply_secret(
            self.secrets,
            self.cache,
            self.token,
            self.observed,
            &desired,
        )
        .await
    }

    /// A new value; the current one becomes `token.previous` until `previous_until`, if given.
    async fn issue(
        &self,
        status: &mut ApiTokenStatus,
        policy: &Policy,
        reason: IssueReason,
        previous_until: Option<Timestamp>,
        request: Option<String>,
    ) -> Result<Report, Error> {
        let new = token::generate(&policy.format)?;
        let current = self.values().current;
        let handed_over = previous_until.and(current.as_ref());
        let issue = IssueRecord {
            revision: status.revision.unwrap_or(0) + 1,
            fingerprint: new.fingerprint(),
            issued_at: self.now,
            reason,
            previous_until: handed_over.and(previous_until),
            request,
        };
        let written = self.write(Some(&new), handed_over, &issue).await?;
        crate::failpoint::hit(crate::failpoint::AFTER_SECRET_WRITE);
        let old_fingerprint = status.fingerprint.clone();
        status::record_issue(status, &issue, handed_over.map(token::Token::fingerprint));
        policy.record_format(status);
        let (reason, note, audit) = issue_report(self.token, &issue, old_fingerprint.as_deref());
        Ok(Report {
            reason,
            note,
            audit,
            related: written,
        })
    }

    /// Status was lost after the Secret was written: take the Secret's record as the truth.
    async fn recover(
        &self,
        status: &mut ApiTokenStatus,
        policy: &Policy,
        issue: &IssueRecord,
    ) -> Result<Report, Error> {
        let values = self.values();
        let previous = values
            .previous
            .as_ref()
            .filter(|_| issue.previous_until.is_some_and(|t| t > self.now));
        let written = self.write(values.current.as_ref(), previous, issue).await?;
        let old_fingerprint = status.fingerprint.clone();
        status::record_issue(status, issue, previous.map(token::Token::fingerprint));
        policy.record_format(status);
        tracing::info!(name = %self.token.name_any(), revision = issue.revision, "recovered status from the Secret");
        // The lost status write also lost this issue's Event and audit line: report it now.
        let (reason, note, audit) = issue_report(self.token, issue, old_fingerprint.as_deref());
        Ok(Report {
            reason,
            note,
            audit,
            related: written,
        })
    }

    /// The value expired without renewal: remove it, and report that once.
    async fn expire(&self, status: &mut ApiTokenStatus) -> Result<Option<Report>, Error> {
        let written = match current_issue(status, None) {
            Some(issue) => self.write(None, None, &issue).await?,
            None => None,
        };
        if status
            .history
            .first()
            .is_some_and(|h| h.retired_at.is_some())
        {
            return Ok(None); // reported when it expired
        }
        status::record_expiry(status, self.expires_at.unwrap_or(self.now));
        let note = format!(
            "revision {} ({}) expired; autoRenew is off, so the value was removed",
            status.revision.unwrap_or(0),
            status.fingerprint.as_deref().unwrap_or("-")
        );
        let audit = audit_for(self.token, "expire", status, "Expired", None);
        Ok(Some(Report {
            reason: Reason::Expired,
            note,
            audit,
            related: written,
        }))
    }

    /// Same value; the Secret follows template edits and loses `token.previous` after the grace.
    async fn keep(
        &self,
        status: &mut ApiTokenStatus,
        previous_until: Option<Timestamp>,
    ) -> Result<(), Error> {
        let values = self.values();
        let previous = values
            .previous
            .as_ref()
            .filter(|_| previous_until.is_some());
        if let Some(issue) = current_issue(status, previous_until.filter(|_| previous.is_some())) {
            self.write(values.current.as_ref(), previous, &issue)
                .await?;
        }
        if previous_until.is_none() {
            status.previous = None;
        }
        Ok(())
    }
}

/// Ready=False for a reason only a change of the object (or of the foreign Secret) can fix:
/// report it once, then wait for that change instead of retrying.
async fn stall(
    token: &ApiToken,
    ctx: &Context,
    mut status: ApiTokenStatus,
    why: Readiness,
    message: String,
    now: Timestamp,
) -> Result<Action, Error> {
    status::set_ready(
        &mut status,
        why,
        message.clone(),
        token.metadata.generation,
        now,
    );
    if write_status(token, ctx, &status).await? {
        let reason = match why {
            Readiness::SecretConflict => Reason::SecretConflict,
            _ => Reason::InvalidSpec,
        };
        report::event(&ctx.events, token, reason, message, None).await;
    }
    Ok(Action::await_change())
}
