//! Passing a verified request upstream: the key header and any client-sent identity headers go,
//! the verified identity comes in.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use apitoken_verify::Identity;

pub const API_KEY: &str = "x-api-key";
pub const NAMESPACE_HEADER: &str = "x-apitoken-namespace";
pub const NAME_HEADER: &str = "x-apitoken-name";
pub const SCOPES_HEADER: &str = "x-apitoken-scopes";
/// Every header with this prefix comes from the proxy, never from the client.
const IDENTITY_PREFIX: &str = "x-apitoken-";

/// Hop-by-hop headers (RFC 9110 section 7.6.1): meaningful for one connection only.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
];

pub struct Upstream {
    client: Client<HttpConnector, Body>,
    base: Uri,
}

impl Upstream {
    /// `base`: `http://host:port`, optionally with a path prefix.
    pub fn new(base: Uri) -> anyhow::Result<Self> {
        anyhow::ensure!(
            base.scheme_str() == Some("http") && base.authority().is_some(),
            "--upstream must be an http:// URL with a host, e.g. http://127.0.0.1:8080"
        );
        let client = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        Ok(Self { client, base })
    }

    /// Forwards `request` as `identity`; 502 when the upstream cannot be reached.
    pub async fn forward(
        &self,
        mut request: Request<Body>,
        identity: &Identity,
        remote: std::net::IpAddr,
    ) -> Response<Body> {
        let uri = match self.target(request.uri()) {
            Ok(uri) => uri,
            Err(_) => return plain(StatusCode::BAD_REQUEST, "bad request target"),
        };
        *request.uri_mut() = uri;
        rewrite_headers(request.headers_mut(), identity, remote);
        match self.client.request(request).await {
            Ok(response) => {
                let (mut parts, body) = response.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                Response::from_parts(parts, Body::new(body))
            }
            Err(error) => {
                tracing::warn!(error = %error, "upstream request failed");
                plain(StatusCode::BAD_GATEWAY, "upstream unavailable")
            }
        }
    }

    fn target(&self, incoming: &Uri) -> Result<Uri, axum::http::Error> {
        let prefix = self.base.path().trim_end_matches('/');
        let rest = incoming.path_and_query().map_or("/", |p| p.as_str());
        Uri::builder()
            .scheme("http")
            .authority(self.base.authority().expect("checked in new").clone())
            .path_and_query(format!("{prefix}{rest}"))
            .build()
    }
}

/// Removes the key, hop-by-hop headers and client-sent identity headers; adds the identity and
/// `X-Forwarded-For`.
pub fn rewrite_headers(headers: &mut HeaderMap, identity: &Identity, remote: std::net::IpAddr) {
    strip_hop_by_hop(headers);
    headers.remove(API_KEY);
    let spoofed: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with(IDENTITY_PREFIX))
        .cloned()
        .collect();
    for name in spoofed {
        headers.remove(name);
    }
    let mut set = |name: &'static str, value: &str| {
        // Names, namespaces and scopes are restricted by the API to header-safe characters.
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };
    set(NAMESPACE_HEADER, &identity.namespace);
    set(NAME_HEADER, &identity.name);
    set(SCOPES_HEADER, &identity.scopes.join(" "));
    let forwarded = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(earlier) => format!("{earlier}, {remote}"),
        None => remote.to_string(),
    };
    if let Ok(value) = HeaderValue::from_str(&forwarded) {
        headers.insert("x-forwarded-for", value);
    }
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<String> = headers
        .get_all("connection")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    for name in HOP_BY_HOP
        .iter()
        .copied()
        .chain(listed.iter().map(String::as_str))
    {
        headers.remove(name);
    }
}

pub fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::from(text));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use apitoken_verify::State;

    #[test]
    fn the_key_and_spoofed_identity_go_and_the_verified_identity_comes() {
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", HeaderValue::from_static("ak_secret"));
        headers.insert("x-apitoken-name", HeaderValue::from_static("admin"));
        headers.insert("x-apitoken-revision", HeaderValue::from_static("99"));
        headers.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-custom"),
        );
        headers.insert("x-custom", HeaderValue::from_static("1"));
        headers.insert("accept", HeaderValue::from_static("application/json"));
        headers.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        let identity = Identity {
            namespace: "payments".into(),
            name: "billing".into(),
            revision: 3,
            state: State::Current,
            scopes: vec!["orders:read".into(), "orders:write".into()],
        };
        rewrite_headers(&mut headers, &identity, "127.0.0.1".parse().unwrap());
        let get = |k: &str| headers.get(k).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(get("x-api-key"), None);
        assert_eq!(get("x-apitoken-revision"), None);
        assert_eq!(get("connection"), None);
        assert_eq!(get("x-custom"), None);
        assert_eq!(get("x-apitoken-namespace").as_deref(), Some("payments"));
        assert_eq!(get("x-apitoken-name").as_deref(), Some("billing"));
        assert_eq!(
            get("x-apitoken-scopes").as_deref(),
            Some("orders:read orders:write")
        );
        assert_eq!(get("accept").as_deref(), Some("application/json"));
        assert_eq!(
            get("x-forwarded-for").as_deref(),
            Some("10.0.0.1, 127.0.0.1")
        );
    }

    #[test]
    fn targets_keep_path_and_query_under_the_upstream_prefix() {
        let up = Upstream::new("http://127.0.0.1:8080/api/".parse().unwrap()).unwrap();
        let t = up.target(&"/orders?page=2".parse().unwrap()).unwrap();
        assert_eq!(t.to_string(), "http://127.0.0.1:8080/api/orders?page=2");
        assert!(Upstream::new("https://example.test".parse().unwrap()).is_err());
    }
}
