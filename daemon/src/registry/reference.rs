//! Image references as Docker reads them: `[host[:port]/]path[:tag][@digest]`, with
//! `docker.io` the default host, `library/` the default path prefix on it, and `latest` the
//! default tag when neither tag nor digest is given.

use std::fmt;
use std::sync::OnceLock;

use regex::Regex;

/// Docker Hub's canonical domain and the host its API lives on.
pub const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// Why a reference is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("\"{reference}\" is not an image reference: {why}")]
pub struct ReferenceError {
    pub reference: String,
    pub why: &'static str,
}

/// A parsed, normalised reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `docker.io`, `ghcr.io`, `127.0.0.1:5000`...
    pub domain: String,
    /// The repository path: `library/busybox`.
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

fn path_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        let component = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*";
        Regex::new(&format!("^{component}(?:/{component})*$")).expect("static regex")
    })
}

fn tag_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$").expect("static regex"))
}

fn domain_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")
            .expect("static regex")
    })
}

impl Reference {
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        let fail = |why| ReferenceError {
            reference: s.to_owned(),
            why,
        };
        if s.is_empty() || s.len() > 4096 {
            return Err(fail("it must be 1..=4096 characters"));
        }
        let (rest, digest) = match s.rsplit_once('@') {
            Some((r, d)) => {
                crate::content::hex_of(d)
                    .map_err(|_| fail("the digest must be sha256:<64 hex digits>"))?;
                (r, Some(d.to_owned()))
            }
            None => (s, None),
        };
        let (name, tag) = match rest.rsplit_once(':') {
            Some((n, t)) if !t.contains('/') => (n, Some(t.to_owned())),
            _ => (rest, None),
        };
        if let Some(t) = &tag {
            if !tag_re().is_match(t) {
                return Err(fail("the tag must match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"));
            }
        }
        let (domain, path) = match name.split_once('/') {
            Some((first, remainder))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_owned(), remainder.to_owned())
            }
            _ => (DOCKER_HUB.to_owned(), name.to_owned()),
        };
        if !domain_re().is_match(&domain) {
            return Err(fail(
                "the registry host is not a host name with an optional port",
            ));
        }
        let domain = if domain == "index.docker.io" {
            DOCKER_HUB.to_owned()
        } else {
            domain
        };
        let path = if domain == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        if path.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(fail("the repository name must be lowercase"));
        }
        if path.len() > 255 || !path_re().is_match(&path) {
            return Err(fail(
                "the repository must be lowercase components [a-z0-9] joined by . _ __ - or /",
            ));
        }
        let tag = match (&tag, &digest) {
            (None, None) => Some("latest".to_owned()),
            _ => tag,
        };
        let r = Reference {
            domain,
            path,
            tag,
            digest,
        };
        // The limit holds for the full name an image is stored under (with `docker.io/`,
        // `library/` or `:latest` added), so every stored name can be given again.
        if r.to_string().len() > 4096 {
            return Err(fail(
                "its full form (with registry and tag) must be at most 4096 characters",
            ));
        }
        Ok(r)
    }

    /// The host the registry's HTTP API answers on.
    pub fn api_host(&self) -> &str {
        if self.domain == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.domain
        }
    }

    /// What `/v2/<path>/manifests/<object>` asks for: the digest when pinned, else the tag.
    pub fn object(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }
}

/// The full name: `docker.io/library/busybox:latest`, `host:5000/a/b@sha256:...`.
impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(s: &str) -> String {
        Reference::parse(s).expect(s).to_string()
    }

    #[test]
    fn docker_defaults_apply_to_short_names() {
        assert_eq!(full("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(full("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(full("user/app"), "docker.io/user/app:latest");
        assert_eq!(full("index.docker.io/user/app:v1"), "docker.io/user/app:v1");
        assert_eq!(
            full("docker.io/busybox"),
            "docker.io/library/busybox:latest"
        );
        let r = Reference::parse("busybox").expect("ref");
        assert_eq!(r.api_host(), "registry-1.docker.io");
    }

    #[test]
    fn hosts_ports_tags_and_digests_are_told_apart() {
        let d = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("127.0.0.1:5000/a/b:t@{d}")).expect("ref");
        assert_eq!(r.domain, "127.0.0.1:5000");
        assert_eq!(r.path, "a/b");
        assert_eq!(r.tag.as_deref(), Some("t"));
        assert_eq!(r.digest.as_deref(), Some(d.as_str()));
        assert_eq!(r.object(), d);
        let r = Reference::parse(&format!("localhost/x@{d}")).expect("ref");
        assert_eq!((r.domain.as_str(), r.tag), ("localhost", None));
        let r = Reference::parse("localhost:5000/x").expect("ref");
        assert_eq!(
            (r.domain.as_str(), r.object()),
            ("localhost:5000", "latest")
        );
        assert_eq!(full("ghcr.io/o/r:1"), "ghcr.io/o/r:1");
    }

    #[test]
    fn malformed_references_are_refused_with_a_reason() {
        for bad in [
            "",
            "Busybox",
            "a//b",
            "a:",
            "a@sha256:xyz",
            "-a",
            "a/b:t:u",
            "host:port/x",
            "a:b@c",
        ] {
            let err = Reference::parse(bad).expect_err(bad);
            assert!(err.to_string().contains("not an image reference"), "{err}");
        }
    }
}
