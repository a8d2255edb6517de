//! Asking for a rotation the GitOps-safe way: a new value of the `apitoken.dev/rotate` annotation.
//!
//! The operator rotates once per distinct value and never removes the annotation, so a GitOps tool
//! re-applying a manifest that carries an old value changes nothing.

use kube::api::{Patch, PatchParams};
use kube::{Api, Client};

use crate::api::{ApiToken, INVALIDATE_ANNOTATION, ROTATE_ANNOTATION};

/// Field manager of CLI requests; it shows up as the actor in the audit log.
pub const CLI_MANAGER: &str = "apitoken-operator-cli";

/// Sets the rotate annotation to the current time (nanoseconds, so two requests never collide)
/// and sets or clears the invalidate-previous flag. Returns the request value.
pub async fn request(
    client: &Client,
    namespace: &str,
    name: &str,
    invalidate_previous: bool,
) -> kube::Result<String> {
    let value = jiff::Timestamp::now().to_string();
    let patch = serde_json::json!({
        "metadata": {"annotations": {
            ROTATE_ANNOTATION: value,
            INVALIDATE_ANNOTATION: invalidate_previous.then_some("true"),
        }}
    });
    let api: Api<ApiToken> = Api::namespaced(client.clone(), namespace);
    let params = PatchParams {
        field_manager: Some(CLI_MANAGER.into()),
        ..PatchParams::default()
    };
    api.patch(name, &params, &Patch::Merge(&patch)).await?;
    Ok(value)
}
