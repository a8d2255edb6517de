//! Releasing finalizers without the operator: `apitoken-operator release-finalizers`, run by the
//! chart's `pre-delete` hook (or by hand) so that no ApiToken is left stuck on the
//! `apitoken.dev/cleanup` finalizer once no controller runs to remove it.
//!
//! Each ApiToken's deletionPolicy is applied as far as Kubernetes can finish it alone: `Retain`
//! drops this ApiToken's ownerReference from its Secret (garbage collection then keeps it);
//! `Delete` leaves the ownerReference, so garbage collection deletes the Secret with the ApiToken.
//! Then the finalizer is removed. Values are never read.

use k8s_openapi::api::core::v1::Secret;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};

use crate::api::{ApiToken, DeletionPolicy, FINALIZER};
use crate::secret;

pub mod stop;

/// A merge patch that removes the ownerReference with `uid` from `secret`, guarded by its
/// resourceVersion so a Secret replaced meanwhile is never changed.
pub fn disown_patch(secret: &Secret, uid: &str) -> serde_json::Value {
    let others: Vec<_> = secret
        .owner_references()
        .iter()
        .filter(|r| r.uid != uid)
        .cloned()
        .collect();
    serde_json::json!({
        "metadata": {"resourceVersion": secret.resource_version(), "ownerReferences": others}
    })
}

/// A merge patch that removes our finalizer from `token`, guarded by its resourceVersion.
pub fn unfinalize_patch(token: &ApiToken) -> Option<serde_json::Value> {
    let finalizers = token.finalizers();
    if !finalizers.iter().any(|f| f == FINALIZER) {
        return None;
    }
    let rest: Vec<&String> = finalizers.iter().filter(|f| *f != FINALIZER).collect();
    Some(serde_json::json!({
        "metadata": {"resourceVersion": token.resource_version(), "finalizers": rest}
    }))
}

/// What was done to one ApiToken, for the command's output.
pub struct Released {
    pub namespace: String,
    pub name: String,
    pub policy: DeletionPolicy,
    /// `Retain` and the Secret was ours: its ownerReference was removed.
    pub disowned: bool,
}

/// Applies every ApiToken's deletionPolicy and removes its finalizer, in `namespace` or in all.
pub async fn release_all(
    client: &Client,
    namespace: Option<&str>,
) -> Result<Vec<Released>, kube::Error> {
    let tokens: Api<ApiToken> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let mut done = Vec::new();
    for token in tokens.list(&ListParams::default()).await? {
        if unfinalize_patch(&token).is_none() {
            continue;
        }
        // A conflict means the object changed under us: read it again, a few times.
        let mut attempt = 0;
        loop {
            match release_one(
                client,
                &token.name_any(),
                &token.namespace().unwrap_or_default(),
            )
            .await
            {
                Ok(Some(released)) => {
                    done.push(released);
                    break;
                }
                Ok(None) => break,
                Err(kube::Error::Api(s)) if s.code == 409 && attempt < 5 => attempt += 1,
                Err(e) => return Err(e),
            }
        }
    }
    Ok(done)
}

async fn release_one(
    client: &Client,
    name: &str,
    ns: &str,
) -> Result<Option<Released>, kube::Error> {
    let tokens: Api<ApiToken> = Api::namespaced(client.clone(), ns);
    let Some(token) = tokens.get_opt(name).await? else {
        return Ok(None);
    };
    let Some(unfinalize) = unfinalize_patch(&token) else {
        return Ok(None);
    };
    let policy = token.spec.deletion_policy.unwrap_or_default();
    let mut disowned = false;
    if policy == DeletionPolicy::Retain {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
        let ours = secrets
            .get_opt(&token.secret_name())
            .await?
            .filter(|s| secret::is_ours(s, &token));
        if let Some(s) = ours {
            let patch = disown_patch(&s, &token.uid().unwrap_or_default());
            secrets
                .patch(
                    &s.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await?;
            disowned = true;
        }
    }
    tokens
        .patch(name, &PatchParams::default(), &Patch::Merge(&unfinalize))
        .await?;
    Ok(Some(Released {
        namespace: ns.to_owned(),
        name: name.to_owned(),
        policy,
        disowned,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    fn owner(uid: &str) -> OwnerReference {
        OwnerReference {
            uid: uid.into(),
            controller: Some(uid == "ours"),
            ..OwnerReference::default()
        }
    }

    #[test]
    fn disowning_keeps_other_owners_and_guards_the_version() {
        let mut s = Secret::default();
        s.metadata.resource_version = Some("42".into());
        s.metadata.owner_references = Some(vec![owner("other"), owner("ours")]);
        let patch = disown_patch(&s, "ours");
        assert_eq!(patch["metadata"]["resourceVersion"], "42");
        let refs = patch["metadata"]["ownerReferences"].as_array().unwrap();
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0]["uid"], "other");
        s.metadata.owner_references = Some(vec![owner("ours")]);
        assert_eq!(
            disown_patch(&s, "ours")["metadata"]["ownerReferences"],
            serde_json::json!([])
        );
    }

    #[test]
    fn only_our_finalizer_is_removed() {
        let mut t = ApiToken::new("a", Default::default());
        t.metadata.resource_version = Some("7".into());
        assert!(unfinalize_patch(&t).is_none(), "nothing to release");
        t.metadata.finalizers = Some(vec!["example.com/keep".into(), FINALIZER.into()]);
        let patch = unfinalize_patch(&t).unwrap();
        assert_eq!(
            patch["metadata"],
            serde_json::json!({"resourceVersion": "7", "finalizers": ["example.com/keep"]})
        );
    }
}
