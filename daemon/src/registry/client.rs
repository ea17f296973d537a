//! The HTTP side of the OCI distribution API for one repository: manifests (negotiated
//! through `Accept`) and blobs (streamed chunk by chunk, never held whole), with anonymous,
//! bearer-token and basic authentication. Runs on the daemon's tokio runtime.

use std::sync::Mutex;

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::{Method, Response, StatusCode, Url};
use serde::Deserialize;

use super::auth::{parse_challenge, Challenge, Credentials};
use super::reference::Reference;
use super::RegistryError;
use crate::oci;

/// Every manifest kind berth reads, preferred first.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// The error text of `e` and its causes ("connection refused" is a few levels down).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut at = e.source();
    while let Some(s) = at {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        at = s.source();
    }
    out
}

/// The shared HTTP client (connection pool, TLS roots), built once.
pub fn http_client() -> Result<reqwest::Client, RegistryError> {
    reqwest::Client::builder()
        .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| RegistryError::Internal(format!("building the HTTP client: {}", chain(&e))))
}

/// A manifest or index as the registry served it.
pub struct Document {
    pub bytes: Vec<u8>,
    /// The `Content-Type` (or the document's own `mediaType`).
    pub media_type: String,
}

/// A blob's body, read chunk by chunk.
pub struct Body {
    response: Response,
    what: String,
    read: u64,
}

impl Body {
    /// The next chunk, `None` at the end. A connection that breaks mid-body is `Truncated`.
    pub async fn chunk(&mut self) -> Result<Option<impl AsRef<[u8]>>, RegistryError> {
        match self.response.chunk().await {
            Ok(Some(c)) => {
                self.read += c.len() as u64;
                Ok(Some(c))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(RegistryError::Truncated {
                what: self.what.clone(),
                got: self.read,
                detail: chain(&e),
            }),
        }
    }

    /// What the registry announced (`Content-Length`).
    pub fn announced(&self) -> Option<u64> {
        self.response.content_length()
    }
}

/// Talks to one repository of one registry for the length of a pull.
pub struct Session {
    http: reqwest::Client,
    base: String,
    host: String,
    repo: String,
    creds: Option<Credentials>,
    /// The `Authorization` value that worked last (a bearer token or basic credentials).
    auth: Mutex<Option<String>>,
    /// What a token is asked for: `pull`, or `pull,push` for a push.
    actions: &'static str,
}

#[derive(Deserialize)]
struct Token {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ErrorEntry>,
}

#[derive(Deserialize)]
struct ErrorEntry {
    #[serde(default)]
    code: String,
}

impl Session {
    pub fn new(
        http: reqwest::Client,
        reference: &Reference,
        plain_http: bool,
        creds: Option<Credentials>,
    ) -> Session {
        let scheme = if plain_http { "http" } else { "https" };
        Session {
            http,
            base: format!("{scheme}://{}", reference.api_host()),
            host: reference.domain.clone(),
            repo: reference.path.clone(),
            creds,
            auth: Mutex::new(None),
            actions: "pull",
        }
    }

    /// The same repository, with tokens asked for pushing too.
    pub fn for_push(mut self) -> Session {
        self.actions = "pull,push";
        self
    }

    /// The URL of `/v2/<repo>/<path>`.
    pub(super) fn url(&self, path: &str) -> String {
        format!("{}/v2/{}/{path}", self.base, self.repo)
    }

    /// `location` (a registry's Location header, absolute or relative) as a URL.
    pub(super) fn resolve(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_owned()
        } else {
            format!("{}{location}", self.base)
        }
    }

    fn current_auth(&self) -> Option<String> {
        self.auth.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn unreachable(&self, e: &reqwest::Error) -> RegistryError {
        RegistryError::Unreachable {
            host: self.host.clone(),
            detail: chain(e),
        }
    }

    /// GETs `/v2/<repo>/<path>`, answering one authentication challenge on the way.
    async fn get(
        &self,
        path: &str,
        accept: Option<&str>,
        what: &str,
    ) -> Result<Response, RegistryError> {
        let url = self.url(path);
        let headers: Vec<_> = accept.map(|a| (ACCEPT, a.to_owned())).into_iter().collect();
        self.send(Method::GET, &url, &headers, None, what).await
    }

    /// Sends one request (its body again after one authentication challenge); a non-success
    /// answer is the error it means.
    pub(super) async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(reqwest::header::HeaderName, String)],
        body: Option<&[u8]>,
        what: &str,
    ) -> Result<Response, RegistryError> {
        let mut challenged = false;
        loop {
            let mut req = self.http.request(method.clone(), url);
            for (k, v) in headers {
                req = req.header(k, v);
            }
            if let Some(b) = body {
                req = req.body(b.to_vec());
            }
            if let Some(auth) = self.current_auth() {
                req = req.header(AUTHORIZATION, auth);
            }
            let resp = req.send().await.map_err(|e| self.unreachable(&e))?;
            let status = resp.status();
            if status.is_success() {
                return Ok(resp);
            }
            if status == StatusCode::UNAUTHORIZED && !challenged {
                challenged = true;
                let challenge = resp
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_challenge);
                self.authorize(challenge).await?;
                continue;
            }
            return Err(self.refusal(resp, what).await);
        }
    }

    /// The error for a non-success answer.
    async fn refusal(&self, resp: Response, what: &str) -> RegistryError {
        let status = resp.status();
        let body = resp.bytes().await.unwrap_or_default();
        let codes: Vec<String> = serde_json::from_slice::<ErrorBody>(&body)
            .map(|b| b.errors.into_iter().map(|e| e.code).collect())
            .unwrap_or_default();
        match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => RegistryError::Denied {
                host: self.host.clone(),
                repo: self.repo.clone(),
                detail: if self.creds.is_some() {
                    "the credentials were refused".into()
                } else {
                    "it needs credentials and none are configured for this registry".into()
                },
            },
            StatusCode::NOT_FOUND => RegistryError::NotFound {
                host: self.host.clone(),
                what: if codes.iter().any(|c| c == "NAME_UNKNOWN") {
                    format!("repository \"{}\"", self.repo)
                } else {
                    what.to_owned()
                },
            },
            _ => RegistryError::Status {
                host: self.host.clone(),
                status: status.as_u16(),
                what: what.to_owned(),
                detail: codes.join(", "),
            },
        }
    }

    /// Answers a 401: fetches a bearer token (with basic credentials when configured), or
    /// sends the basic credentials themselves.
    async fn authorize(&self, challenge: Option<Challenge>) -> Result<(), RegistryError> {
        let denied = |detail: &str| RegistryError::Denied {
            host: self.host.clone(),
            repo: self.repo.clone(),
            detail: detail.to_owned(),
        };
        let value = match challenge {
            Some(Challenge::Basic) | None => match &self.creds {
                Some(c) => c.basic(),
                None => {
                    return Err(denied(
                        "it needs credentials and none are configured for this registry",
                    ))
                }
            },
            Some(Challenge::Bearer {
                realm,
                service,
                scope,
            }) => {
                let mut url = Url::parse(&realm).map_err(|e| {
                    denied(&format!("its token realm \"{realm}\" is not a URL: {e}"))
                })?;
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(s) = &service {
                        q.append_pair("service", s);
                    }
                    let scope = scope
                        .unwrap_or_else(|| format!("repository:{}:{}", self.repo, self.actions));
                    q.append_pair("scope", &scope);
                }
                let mut req = self.http.get(url);
                if let Some(c) = &self.creds {
                    req = req.header(AUTHORIZATION, c.basic());
                }
                let resp = req.send().await.map_err(|e| self.unreachable(&e))?;
                if !resp.status().is_success() {
                    return Err(denied(&format!(
                        "its token service answered {} {}",
                        resp.status().as_u16(),
                        if self.creds.is_some() {
                            "to the configured credentials"
                        } else {
                            "to an anonymous request"
                        }
                    )));
                }
                let body = resp.bytes().await.map_err(|e| self.unreachable(&e))?;
                let token: Token = serde_json::from_slice(&body)
                    .map_err(|e| denied(&format!("its token answer is not JSON: {e}")))?;
                match token.token.or(token.access_token) {
                    Some(t) if !t.is_empty() => format!("Bearer {t}"),
                    _ => return Err(denied("its token answer holds no token")),
                }
            }
        };
        *self.auth.lock().unwrap_or_else(|p| p.into_inner()) = Some(value);
        Ok(())
    }

    /// The manifest or index `object` (a tag or a digest) names, at most `MAX_DOCUMENT`.
    pub async fn manifest(&self, object: &str, what: &str) -> Result<Document, RegistryError> {
        let mut resp = self
            .get(&format!("manifests/{object}"), Some(MANIFEST_ACCEPT), what)
            .await?;
        let media_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned())
            .unwrap_or_default();
        let mut bytes = Vec::new();
        while let Some(c) = resp.chunk().await.map_err(|e| RegistryError::Truncated {
            what: what.to_owned(),
            got: bytes.len() as u64,
            detail: chain(&e),
        })? {
            bytes.extend_from_slice(&c);
            if bytes.len() as u64 > oci::MAX_DOCUMENT {
                return Err(RegistryError::Invalid {
                    what: what.to_owned(),
                    detail: format!(
                        "larger than the {} bytes a manifest may be",
                        oci::MAX_DOCUMENT
                    ),
                });
            }
        }
        Ok(Document { bytes, media_type })
    }

    /// Starts reading blob `digest`; `what` names it in errors.
    pub async fn blob(&self, digest: &str, what: &str) -> Result<Body, RegistryError> {
        let response = self.get(&format!("blobs/{digest}"), None, what).await?;
        Ok(Body {
            response,
            what: what.to_owned(),
            read: 0,
        })
    }
}
