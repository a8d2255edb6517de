//! Reconcile errors, with a fixed category for metrics and a transient/permanent split for retries.

use crate::leader::NotLeader;
use crate::token::RandomError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes api request failed")]
    Kube(#[from] kube::Error),
    #[error("finalizer failed")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error("could not generate a token")]
    Random(#[from] RandomError),
    #[error("apitoken has no namespace")]
    NoNamespace,
    /// The API server refused the Secret we built as invalid; only a spec change can fix it.
    #[error("secret rejected: {0}")]
    SecretRejected(String),
    /// The shell create found a Secret of that name that the cache does not hold (409): the
    /// next reconcile reads it. Not a failure.
    #[error("a secret of that name exists")]
    SecretExists,
    /// The watch feeding a cache ended (only at shutdown).
    #[error("the apitoken cache is closed")]
    StoreClosed,
}

impl Error {
    /// A fixed, low-cardinality label for metrics and logs.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Kube(e) if NotLeader::is(e) => "not_leader",
            Self::Kube(_) => "kube_api",
            Self::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e)
                | kube::runtime::finalizer::Error::CleanupFailed(e) => e.category(),
                kube::runtime::finalizer::Error::AddFinalizer(e)
                | kube::runtime::finalizer::Error::RemoveFinalizer(e)
                    if NotLeader::is(e) =>
                {
                    "not_leader"
                }
                _ => "finalizer",
            },
            Self::Random(_) => "random",
            Self::SecretExists => "kube_api",
            Self::StoreClosed => "shutdown",
            Self::NoNamespace | Self::SecretRejected(_) => "invalid_object",
        }
    }

    /// The error a reconcile's own step failed with, also when the finalizer helper wrapped it.
    pub fn of_step(&self) -> &Self {
        match self {
            Self::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e)
                | kube::runtime::finalizer::Error::CleanupFailed(e) => e.of_step(),
                _ => self,
            },
            _ => self,
        }
    }

    /// Transient errors are retried soon; the rest wait longer (or for a change of the object).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::NoNamespace | Self::SecretRejected(_) => false,
            Self::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e)
                | kube::runtime::finalizer::Error::CleanupFailed(e) => e.is_transient(),
                _ => true,
            },
            Self::Kube(_) | Self::Random(_) | Self::SecretExists | Self::StoreClosed => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::finalizer;

    #[test]
    fn the_step_error_is_found_inside_the_finalizer_helper() {
        let applied =
            Error::Finalizer(Box::new(finalizer::Error::ApplyFailed(Error::SecretExists)));
        assert!(matches!(applied.of_step(), Error::SecretExists));
        let cleaned = Error::Finalizer(Box::new(finalizer::Error::CleanupFailed(
            Error::NoNamespace,
        )));
        assert!(matches!(cleaned.of_step(), Error::NoNamespace));
        let unnamed = Error::Finalizer(Box::new(finalizer::Error::UnnamedObject));
        assert!(matches!(unnamed.of_step(), Error::Finalizer(_)));
        assert!(matches!(Error::SecretExists.of_step(), Error::SecretExists));
    }
}
