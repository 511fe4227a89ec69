//! The node umbrald fronts (`[nucypher] upstream`, the operator's Ursula): HTTPS requests that
//! umbrald does not answer itself are forwarded to it, and with `policy_check = "upstream"` it
//! decides which policies umbrald may serve.
//!
//! An `https://` upstream is reached only when its certificate holds the public key whose
//! SHA-256 is configured: an Ursula's certificate is self-signed and made anew at every start,
//! from a key derived from its keystore, so the key is what stays the same. The forwarded request
//! keeps its method, path, query, headers (less the hop-by-hop ones) and body; the answer is
//! relayed as the upstream gave it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::tls;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Body of the requests and responses that pass through.
pub(crate) type Body = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// Longest wait for the upstream's response head.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
/// Most policies remembered as accepted; the memory is cleared when it is full.
const POLICY_CACHE: usize = 65_536;

/// Headers that belong to one connection and are not passed on (RFC 9110, 7.6.1).
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Why the upstream cannot be configured or reached.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamError {
    /// `[nucypher] upstream` is not an `http://` or `https://` URL with a host.
    #[error("nucypher.upstream {0:?} is not an http:// or https:// URL with a host")]
    BadUrl(String),
    /// `[nucypher] upstream_public_key_sha256` is not a SHA-256 in hex.
    #[error("nucypher.upstream_public_key_sha256 {0:?} is not 64 hex digits (colons allowed)")]
    BadFingerprint(String),
    /// The TLS client configuration could not be built.
    #[error("TLS configuration for the upstream: {0}")]
    Tls(#[source] rustls::Error),
    /// The upstream did not answer: refused connection, TLS failure (an unexpected
    /// certificate), broken connection.
    #[error("the upstream node did not answer: {0}")]
    Unreachable(#[source] hyper_util::client::legacy::Error),
    /// The upstream did not send its response head in time.
    #[error("the upstream node did not answer within {} s", RESPONSE_TIMEOUT.as_secs())]
    Timeout,
}

/// The upstream node: where to reach it, and the policies it accepted recently.
pub(crate) struct Upstream {
    /// Scheme and authority of the upstream, e.g. `https://127.0.0.1:9151`.
    base: Uri,
    client: Client<HttpsConnector<HttpConnector>, Body>,
    /// Whether a policy must be accepted by the upstream before umbrald serves it.
    checks_policies: bool,
    /// How long an acceptance holds.
    policy_ttl: Duration,
    /// HRAC → when the upstream last answered one of the policy's requests with 200.
    accepted: Mutex<HashMap<[u8; 16], Instant>>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("base", &self.base)
            .field("checks_policies", &self.checks_policies)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// The upstream at `url`, whose certificate (for `https://`) holds the public key with the
    /// SHA-256 `key_sha256`.
    pub(crate) fn new(
        url: &str,
        key_sha256: Option<&str>,
        checks_policies: bool,
        policy_ttl: Duration,
    ) -> Result<Self, UpstreamError> {
        let bad_url = || UpstreamError::BadUrl(url.to_owned());
        let uri: Uri = url.trim().parse().map_err(|_| bad_url())?;
        let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
            return Err(bad_url());
        };
        if scheme != &hyper::http::uri::Scheme::HTTP && scheme != &hyper::http::uri::Scheme::HTTPS {
            return Err(bad_url());
        }
        let base = Uri::builder()
            .scheme(scheme.clone())
            .authority(authority.clone())
            .path_and_query("/")
            .build()
            .map_err(|_| bad_url())?;
        let pin = match key_sha256 {
            Some(text) => tls::parse_fingerprint(text)
                .ok_or_else(|| UpstreamError::BadFingerprint(text.to_owned()))?,
            // Only an http:// upstream has no pin (the configuration is checked before): no
            // certificate holds a key with this hash, so TLS is never accepted.
            None => [0; 32],
        };
        // The connector sets ALPN itself (HTTP/1.1: what an Ursula speaks).
        let tls = rustls::ClientConfig::builder_with_provider(tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(UpstreamError::Tls)?
            .dangerous()
            .with_custom_certificate_verifier(tls::PinnedVerifier::new(tls::Pin::PublicKey(pin)))
            .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Self {
            base,
            client,
            checks_policies,
            policy_ttl,
            accepted: Mutex::new(HashMap::new()),
        })
    }

    /// The upstream's scheme and authority.
    pub(crate) fn base(&self) -> &Uri {
        &self.base
    }

    /// Whether a request of the policy `hrac` must go to the upstream first: policies are
    /// checked and this one was not accepted within the TTL.
    pub(crate) fn must_vouch_for(&self, hrac: &[u8; 16]) -> bool {
        if !self.checks_policies {
            return false;
        }
        let Ok(accepted) = self.accepted.lock() else {
            return true;
        };
        !accepted
            .get(hrac)
            .is_some_and(|at| at.elapsed() < self.policy_ttl)
    }

    /// Records that the upstream answered a request of the policy `hrac` with 200.
    pub(crate) fn vouched_for(&self, hrac: [u8; 16]) {
        if !self.checks_policies {
            return;
        }
        if let Ok(mut accepted) = self.accepted.lock() {
            if accepted.len() >= POLICY_CACHE {
                accepted.clear();
            }
            accepted.insert(hrac, Instant::now());
        }
    }

    /// Sends `request` (whose URI holds at least the path) to the upstream on behalf of
    /// `peer`, and returns its answer.
    pub(crate) async fn forward(
        &self,
        request: Request<Body>,
        peer: SocketAddr,
    ) -> Result<Response<Body>, UpstreamError> {
        let (mut parts, body) = request.into_parts();
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let mut uri = self.base.clone().into_parts();
        uri.path_and_query = path.parse().ok();
        parts.uri = Uri::from_parts(uri).unwrap_or_else(|_| self.base.clone());
        parts.version = hyper::Version::HTTP_11;
        strip_hop_by_hop(&mut parts.headers);
        parts.headers.remove(header::HOST);
        if let Ok(value) = HeaderValue::from_str(&peer.ip().to_string()) {
            parts.headers.append("x-forwarded-for", value);
        }
        let sent = self.client.request(Request::from_parts(parts, body));
        let response = match tokio::time::timeout(RESPONSE_TIMEOUT, sent).await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => return Err(UpstreamError::Unreachable(e)),
            Err(_) => return Err(UpstreamError::Timeout),
        };
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        Ok(Response::from_parts(parts, incoming_body(body)))
    }
}

/// An incoming body as a pass-through body.
pub(crate) fn incoming_body(body: Incoming) -> Body {
    body.map_err(Into::into).boxed()
}

/// Removes the headers that only concern one connection, including those named by
/// `Connection`.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in HOP_BY_HOP.iter().chain(named.iter()) {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_http_or_https_with_a_host() {
        for bad in ["ftp://x:1", "127.0.0.1:9151", "https://", "not a url"] {
            assert!(
                matches!(
                    Upstream::new(bad, None, false, Duration::ZERO),
                    Err(UpstreamError::BadUrl(_))
                ),
                "{bad}"
            );
        }
        let up = Upstream::new(
            "https://127.0.0.1:9151/ignored",
            Some(&"ab".repeat(32)),
            false,
            Duration::ZERO,
        )
        .expect("upstream");
        assert_eq!(up.base().to_string(), "https://127.0.0.1:9151/");
        assert!(matches!(
            Upstream::new("https://127.0.0.1:9151", Some("xyz"), false, Duration::ZERO),
            Err(UpstreamError::BadFingerprint(_))
        ));
    }

    #[test]
    fn policies_are_vouched_for_until_the_ttl_passes() {
        let hrac = [7; 16];
        let unchecked =
            Upstream::new("http://127.0.0.1:1", None, false, Duration::ZERO).expect("upstream");
        assert!(!unchecked.must_vouch_for(&hrac));
        let checked = Upstream::new("http://127.0.0.1:1", None, true, Duration::from_secs(60))
            .expect("upstream");
        assert!(checked.must_vouch_for(&hrac));
        checked.vouched_for(hrac);
        assert!(!checked.must_vouch_for(&hrac));
        assert!(checked.must_vouch_for(&[8; 16]));
        let expiring =
            Upstream::new("http://127.0.0.1:1", None, true, Duration::ZERO).expect("upstream");
        expiring.vouched_for(hrac);
        assert!(expiring.must_vouch_for(&hrac));
    }

    #[test]
    fn hop_by_hop_headers_are_dropped() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-private"),
        );
        headers.insert("x-private", HeaderValue::from_static("1"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key(header::CONTENT_TYPE));
    }
}
