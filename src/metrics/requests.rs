//! Counting API requests where they leave the process: a tower layer on the kube Client's
//! service stack, so no write (Secret, status, finalizer, Event, Lease) or read can bypass the
//! count.

use std::task::{Context, Poll};

use http::{Method, Request};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tower::{Layer, Service};

/// The labels of `apitoken_api_writes_total` and `apitoken_api_reads_total`: the resource (with its subresource, e.g.
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
    let (resource, named) = target(path.split('?').next().unwrap_or_default())?;
    let verb = if verb == "delete" && !named {
        "deletecollection"
    } else {
        verb
    };
    Some(Write { resource, verb })
}

/// The read a request makes (`get`, `list` or `watch`), or None for writes.
pub fn classify_read(method: &Method, path: &str, query: Option<&str>) -> Option<Write> {
    if *method != Method::GET {
        return None;
    }
    let (resource, named) = target(path)?;
    let watching = query
        .unwrap_or_default()
        .split('&')
        .any(|p| p == "watch=true" || p == "watch=1");
    let verb = match (watching, named) {
        (true, _) => "watch",
        (false, true) => "get",
        (false, false) => "list",
    };
    Some(Write { resource, verb })
}

/// The resource a path names (with its subresource, e.g. `apitokens/status`) and whether it
/// names one object; None for paths that are no resource (discovery, `/version`).
fn target(path: &str) -> Option<(String, bool)> {
    let mut segments = path.split('/').filter(|s| !s.is_empty());
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
    match rest.as_slice() {
        [resource] => Some(((*resource).to_owned(), false)),
        [resource, _name] => Some(((*resource).to_owned(), true)),
        [resource, _name, subresource, ..] => Some((format!("{resource}/{subresource}"), true)),
        [] => None,
    }
}

/// Counts every request passing through into `apitoken_api_writes_total` or
/// `apitoken_api_reads_total`, when it is sent (also those the API server then refuses).
#[derive(Clone)]
pub struct CountRequests {
    writes: Family<Write, Counter>,
    reads: Family<Write, Counter>,
}

impl CountRequests {
    pub(super) fn new(writes: Family<Write, Counter>, reads: Family<Write, Counter>) -> Self {
        Self { writes, reads }
    }
}

impl<S> Layer<S> for CountRequests {
    type Service = CountRequestsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CountRequestsService {
            inner,
            counts: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct CountRequestsService<S> {
    inner: S,
    counts: CountRequests,
}

impl<S, B> Service<Request<B>> for CountRequestsService<S>
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
        let (method, uri) = (request.method(), request.uri());
        if let Some(write) = classify(method, uri.path()) {
            self.counts.writes.get_or_create(&write).inc();
        } else if let Some(read) = classify_read(method, uri.path(), uri.query()) {
            self.counts.reads.get_or_create(&read).inc();
        }
        self.inner.call(request)
    }
}
