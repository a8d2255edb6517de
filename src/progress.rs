//! kstatus `Reconciling`: when a write a reconcile needed fails with a transient error, the status
//! says so until a later reconcile finishes, so GitOps tools show the ApiToken as in progress
//! instead of healthy on stale data. Written once per distinct failure, never while healthy.

use jiff::Timestamp;
use kube::ResourceExt;

use crate::api::{ApiToken, ApiTokenStatus};
use crate::controller::Context;
use crate::error::Error;
use crate::reconcile::write_status;
use crate::status;

/// The reason on `Reconciling=True` while a failed write is retried.
pub const RETRYING: &str = "Retrying";

/// Records that this reconcile's Secret write failed and will be retried, then hands the error
/// back for the controller's backoff. Permanent errors are reported elsewhere (Stalled).
pub async fn retrying(
    token: &ApiToken,
    ctx: &Context,
    mut status: ApiTokenStatus,
    error: Error,
    now: Timestamp,
) -> Error {
    if !error.is_transient() {
        return error;
    }
    // A fixed message per Secret and error category: retries of the same failure write nothing.
    let message = format!(
        "writing Secret {} failed ({}); retrying",
        token.secret_name(),
        error.category()
    );
    status::set_reconciling(
        &mut status,
        RETRYING,
        message,
        token.metadata.generation,
        now,
    );
    if let Err(write) = write_status(token, ctx, &status).await {
        tracing::debug!(namespace = token.namespace().as_deref(), name = %token.name_any(), error = %write, "could not record Reconciling");
    }
    error
}
