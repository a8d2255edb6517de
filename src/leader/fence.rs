//! The write fence: a tower layer on the kube Client that refuses every write request while this
//! replica's claim is not current, so no code path can write without asking.

use std::task::{Context, Poll};

use futures::FutureExt;
use futures::future::BoxFuture;
use http::{Method, Request};
use tower::{BoxError, Layer, Service};

use super::Leadership;

/// The error a fenced write fails with (inside `kube::Error::Service`).
#[derive(Debug, thiserror::Error)]
#[error("this replica does not hold the leader lease")]
pub struct NotLeader;

impl NotLeader {
    /// Whether a kube error is a write this fence refused.
    pub fn is(error: &kube::Error) -> bool {
        matches!(error, kube::Error::Service(e) if e.is::<NotLeader>())
    }
}

#[derive(Clone)]
pub struct Fence {
    leadership: Leadership,
}

impl Fence {
    pub fn new(leadership: Leadership) -> Self {
        Self { leadership }
    }
}

impl<S> Layer<S> for Fence {
    type Service = FenceService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        FenceService {
            inner,
            leadership: self.leadership.clone(),
        }
    }
}

#[derive(Clone)]
pub struct FenceService<S> {
    inner: S,
    leadership: Leadership,
}

impl<S, B> Service<Request<B>> for FenceService<S>
where
    S: Service<Request<B>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<S::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let read = matches!(
            *request.method(),
            Method::GET | Method::HEAD | Method::OPTIONS
        );
        if !read && !self.leadership.is_current() {
            tracing::debug!(method = %request.method(), path = request.uri().path(), "write refused: not the leader");
            return futures::future::ready(Err(NotLeader.into())).boxed();
        }
        self.inner
            .call(request)
            .map(|r| r.map_err(Into::into))
            .boxed()
    }
}
