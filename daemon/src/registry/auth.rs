//! Registry credentials and challenges: where basic credentials come from (berth's
//! `[registries."<host>"]` config, then the Docker client's `config.json` `auths`), and how
//! a `WWW-Authenticate` challenge is read. Secrets never reach `Debug`, logs or errors.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use base64::Engine;
use serde::Deserialize;

use super::reference::DOCKER_HUB;

/// A user name and password for one registry.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Credentials {{ username: {:?}, password: <redacted> }}",
            self.username
        )
    }
}

impl Credentials {
    /// The `Authorization` header value of HTTP basic auth.
    pub fn basic(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// Where berthd looks for credentials; built from its config.
#[derive(Debug, Clone, Default)]
pub struct CredentialSources {
    /// berth's own `[registries."<host>"]` entries, by registry host.
    pub registries: BTreeMap<String, Credentials>,
    /// A Docker client config file; `None`: `$DOCKER_CONFIG/config.json`, else
    /// `$HOME/.docker/config.json`.
    pub docker_config: Option<PathBuf>,
}

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, DockerAuth>,
}

#[derive(Deserialize)]
struct DockerAuth {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// The registry host a `config.json` key names: `https://index.docker.io/v1/` and
/// friends are Docker Hub; schemes and paths are dropped.
fn key_host(key: &str) -> String {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = k.split('/').next().unwrap_or(k);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            DOCKER_HUB.to_owned()
        }
        h => h.to_owned(),
    }
}

fn decode(entry: &DockerAuth) -> Option<Credentials> {
    if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (u, p) = text.split_once(':')?;
        return Some(Credentials {
            username: u.to_owned(),
            password: p.to_owned(),
        });
    }
    Some(Credentials {
        username: entry.username.clone()?,
        password: entry.password.clone()?,
    })
}

impl CredentialSources {
    fn docker_config_path(&self) -> Option<PathBuf> {
        if let Some(p) = &self.docker_config {
            return Some(p.clone());
        }
        if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
            return Some(PathBuf::from(dir).join("config.json"));
        }
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker").join("config.json"))
    }

    /// Credentials for registry `domain` (as a reference names it), if any are configured.
    /// The Docker config is read on every call, so a `docker login` needs no restart.
    pub fn lookup(&self, domain: &str) -> Option<Credentials> {
        if let Some(c) = self.registries.get(domain) {
            return Some(c.clone());
        }
        let text = std::fs::read(self.docker_config_path()?).ok()?;
        let config: DockerConfig = serde_json::from_slice(&text).ok()?;
        config
            .auths
            .iter()
            .find(|(k, _)| key_host(k) == domain)
            .and_then(|(_, v)| decode(v))
    }
}

/// One `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Reads `Bearer realm="...",service="...",scope="..."` or `Basic realm="..."`.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let params = parse_params(rest);
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => Some(Challenge::Bearer {
            realm: params.get("realm")?.clone(),
            service: params.get("service").cloned(),
            scope: params.get("scope").cloned(),
        }),
        _ => None,
    }
}

/// `k="v", k2=v2` (quoted values may hold commas and escaped quotes).
fn parse_params(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.insert(key.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_keep_quoted_commas() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("reg".into()),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge("Bearer service=x"),
            None,
            "realm is required"
        );
    }

    #[test]
    fn docker_config_auths_are_found_by_host_and_never_debug_printed() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"auths": {"https://index.docker.io/v1/": {"auth": "dTE6cDE="},
                          "127.0.0.1:5000": {"username": "u2", "password": "p2"}}}"#,
        )
        .expect("write");
        let mut sources = CredentialSources {
            docker_config: Some(path),
            ..Default::default()
        };
        let hub = sources.lookup("docker.io").expect("hub creds");
        assert_eq!((hub.username.as_str(), hub.password.as_str()), ("u1", "p1"));
        let local = sources.lookup("127.0.0.1:5000").expect("local creds");
        assert_eq!(local.username, "u2");
        assert!(sources.lookup("ghcr.io").is_none());
        assert!(!format!("{local:?}").contains("p2"));
        sources.registries.insert(
            "127.0.0.1:5000".into(),
            Credentials {
                username: "berth".into(),
                password: "x".into(),
            },
        );
        assert_eq!(
            sources.lookup("127.0.0.1:5000").expect("berth's").username,
            "berth"
        );
    }
}
