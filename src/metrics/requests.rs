//! Counting API writes where they leave the process: a tower layer on the kube Client's service
//! stack, so no write (Secret, status, finalizer, Event, Lease) can bypass the count.

use std::task::{Context, Poll};

use http::{Method, Request};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tower::{Layer, Service};

/// The labels of `apitoken_api_writes_total`: the resource (with its subresource, e.g.
/// `apitokens/status`) and the Kubernetes verb. Never an object's name or namespace.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Write {
    pub resource: String,
    pub verb: &'static str,
}

/// The write a request makes, or None for reads (get, list, watch).
pub fn classify(method: &Method, path: &str) -> Option<Write> {
    let verb = match *method {
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        Method::GET | Method::HEAD | Method::OPTIONS => return None,
        _ => "other",
    };
    let mut segments = path
        .split('?')
        .next()
        .unwrap_or_default()
        .split('/')
        .filter(|s| !s.is_empty());
    // /api/{version}/... or /apis/{group}/{version}/...
    match segments.next() {
        Some("api") => segments.next(),
        Some("apis") => segments.nth(1),
        _ => None,
    }?;
    let mut rest: Vec<&str> = segments.collect();
    // namespaces/{ns}/{resource}... is a namespaced resource; namespaces[/{name}] is itself one.
    if rest.first() == Some(&"namespaces") && rest.len() >= 3 {
        rest.drain(..2);
    }
    let resource = match rest.as_slice() {
        [resource] => {
            let verb = if verb == "delete" {
                "deletecollection"
            } else {
                verb
            };
            return Some(Write {
                resource: (*resource).to_owned(),
                verb,
            });
        }
        [resource, _name] => (*resource).to_owned(),
        [resource, _name, subresource, ..] => format!("{resource}/{subresource}"),
        [] => return None,
    };
    Some(Write { resource, verb })
}

/// Counts every write request passing through into `apitoken_api_writes_total`, when it is sent
/// (also those the API server then refuses).
#[derive(Clone)]
pub struct CountWrites {
    writes: Family<Write, Counter>,
}

impl CountWrites {
    pub(super) fn new(writes: Family<Write, Counter>) -> Self {
        Self { writes }
    }
}

impl<S> Layer<S> for CountWrites {
    type Service = CountWritesService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CountWritesService {
            inner,
            writes: self.writes.clone(),
        }
    }
}

#[derive(Clone)]
pub struct CountWritesService<S> {
    inner: S,
    writes: Family<Write, Counter>,
}

impl<S, B> Service<Request<B>> for CountWritesService<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if let Some(write) = classify(request.method(), request.uri().path()) {
            self.writes.get_or_create(&write).inc();
        }
        self.inner.call(request)
    }
}
