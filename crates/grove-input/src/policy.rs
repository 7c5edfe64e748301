//! Guard rails on what an input source may read: local directories, HTTP protocols and
//! addresses, and the environment variables a password provider may read.
//!
//! `grove serve` installs a restrictive policy (local files only under allowed directories,
//! HTTP only over allowed protocols); `grove sql` and embedded use default to
//! [`InputPolicy::default`], which allows any local path. Whatever the policy, a Grove
//! context's own data directory (metadata store, segments, spill files, stored results)
//! is never input: [`InputPolicy::protecting`] adds it, and no allowed directory opens it
//! again. Sources are checked when they are planned and again when they are listed, before
//! any byte is read.

use std::path::{Component, Path, PathBuf};

use datafusion::common::{DataFusionError, Result};

use crate::address::{AddressRule, AllowedHost};

/// What input sources may read. Stored as a session-config extension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputPolicy {
    /// Directories `local` sources may read under (canonical paths); `None` allows any.
    local_dirs: Option<Vec<PathBuf>>,
    /// URI schemes `http` sources may use (lower case).
    http_protocols: Vec<String>,
    /// Directories no source may read under, whatever `local_dirs` says (canonical
    /// paths): the server's own files.
    protected_dirs: Vec<PathBuf>,
    /// Which addresses `http` sources (and S3 endpoints) may reach.
    addresses: AddressRule,
    /// Environment variables an `environment` password provider may read; `None`: any.
    env_vars: Option<Vec<String>>,
}

impl Default for InputPolicy {
    fn default() -> Self {
        Self {
            local_dirs: None,
            http_protocols: vec!["http".into(), "https".into()],
            protected_dirs: Vec::new(),
            addresses: AddressRule::default(),
            env_vars: None,
        }
    }
}

impl InputPolicy {
    /// A policy allowing local reads only under `dirs` (canonicalized; a directory that
    /// does not exist is an error), HTTP only over `protocols` (Druid's default, http
    /// and https, when empty) and only to public addresses (see
    /// [`InputPolicy::with_allowed_hosts`]), and no environment variable to a password
    /// provider (see [`InputPolicy::with_allowed_env_vars`]).
    pub fn restricted(dirs: &[PathBuf], protocols: &[String]) -> Result<Self> {
        let mut local_dirs = Vec::with_capacity(dirs.len());
        for d in dirs {
            let canonical = d.canonicalize().map_err(|e| {
                DataFusionError::Configuration(format!(
                    "Allowed local directory [{}] cannot be used: {e}",
                    d.display()
                ))
            })?;
            local_dirs.push(canonical);
        }
        let http_protocols = if protocols.is_empty() {
            Self::default().http_protocols
        } else {
            protocols.iter().map(|p| p.to_ascii_lowercase()).collect()
        };
        Ok(Self {
            local_dirs: Some(local_dirs),
            http_protocols,
            protected_dirs: Vec::new(),
            addresses: AddressRule {
                restrict: true,
                allowed: Vec::new(),
            },
            env_vars: Some(Vec::new()),
        })
    }

    /// This policy, letting `http` inputs reach these hosts although they are not
    /// public: names, addresses or CIDR networks (`--allow-host`).
    pub fn with_allowed_hosts(mut self, hosts: &[String]) -> Result<Self> {
        for h in hosts {
            self.addresses.allowed.push(AllowedHost::parse(h)?);
        }
        Ok(self)
    }

    /// This policy, letting `environment` password providers read these variables
    /// (`--allow-env-var`); a policy that allows any keeps allowing any.
    pub fn with_allowed_env_vars(mut self, names: &[String]) -> Self {
        if let Some(vars) = &mut self.env_vars {
            vars.extend(names.iter().cloned());
        }
        self
    }

    /// The rule on the addresses `http` inputs reach.
    pub fn address_rule(&self) -> &AddressRule {
        &self.addresses
    }

    /// Refuses an environment variable the operator did not list.
    pub fn check_env_var(&self, name: &str) -> Result<()> {
        match &self.env_vars {
            Some(vars) if !vars.iter().any(|v| v == name) => Err(DataFusionError::Plan(format!(
                "Reading environment variable [{name}] for a password is not allowed: this \
                 server gives password providers only the variables it lists (start it with \
                 --allow-env-var {name} to allow it)"
            ))),
            _ => Ok(()),
        }
    }

    /// This policy, with nothing under `dir` readable (a data directory: its metadata
    /// store, segments, spill files and results), whichever directories it allows.
    pub fn protecting(mut self, dir: &Path) -> Self {
        let dir = resolve(dir);
        if !self.protected_dirs.contains(&dir) {
            self.protected_dirs.push(dir);
        }
        self
    }

    /// The directories no source may read under.
    pub fn protected_dirs(&self) -> &[PathBuf] {
        &self.protected_dirs
    }

    /// Whether `path` (links and `..` resolved) is under a protected directory. A
    /// directory listing skips such files; naming one is refused.
    pub fn is_protected(&self, path: &Path) -> bool {
        let resolved = resolve(path);
        self.protected_dirs.iter().any(|d| resolved.starts_with(d))
    }

    /// The allowed local directories (`None`: any).
    pub fn local_dirs(&self) -> Option<&[PathBuf]> {
        self.local_dirs.as_deref()
    }

    /// The allowed HTTP protocols.
    pub fn http_protocols(&self) -> &[String] {
        &self.http_protocols
    }

    /// Refuses a local path outside the allowed directories (after resolving links and
    /// `..`).
    pub fn check_local(&self, path: &Path) -> Result<()> {
        let resolved = resolve(path);
        if self.protected_dirs.iter().any(|d| resolved.starts_with(d)) {
            return Err(DataFusionError::Plan(format!(
                "Reading local path [{}] is not allowed: it is inside this server's data \
                 directory, whose files are never input",
                path.display()
            )));
        }
        let Some(dirs) = &self.local_dirs else {
            return Ok(());
        };
        if dirs.iter().any(|d| resolved.starts_with(d)) {
            return Ok(());
        }
        let allowed: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        Err(DataFusionError::Plan(format!(
            "Reading local path [{}] is not allowed: this server reads local files only under \
             [{}] (start it with --allow-local-dir DIR to allow more)",
            path.display(),
            allowed.join(", ")
        )))
    }

    /// Refuses a URI whose scheme is not an allowed protocol, or whose host is an
    /// address the policy refuses.
    pub fn check_http(&self, uri: &str) -> Result<()> {
        let scheme = uri
            .split_once("://")
            .map(|(s, _)| s.to_ascii_lowercase())
            .unwrap_or_default();
        if self.http_protocols.contains(&scheme) {
            // An address in the URI is checked now; a name when it is resolved.
            return match reqwest::Url::parse(uri) {
                Ok(url) => self.addresses.check_url(&url),
                Err(_) => Ok(()),
            };
        }
        Err(DataFusionError::Plan(format!(
            "Only [{}] protocols are allowed for the http input source, got URI [{uri}]",
            self.http_protocols.join(", ")
        )))
    }
}

/// The canonical form of `path`: walked a component at a time, each prefix that exists
/// resolved (links included), `..` taken lexically where the prefix does not exist.
fn resolve(path: &Path) -> PathBuf {
    if let Ok(p) = path.canonicalize() {
        return p;
    }
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    let mut out = PathBuf::new();
    for c in absolute.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => {
                out.push(other);
                if let Ok(real) = out.canonicalize() {
                    out = real;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_dirs_are_enforced_through_dot_dot_and_links() {
        let root = tempfile::tempdir().unwrap();
        let allowed = root.path().join("allowed");
        let other = root.path().join("other");
        std::fs::create_dir_all(&allowed).unwrap();
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(other.join("secret.json"), "{}").unwrap();
        let policy = InputPolicy::restricted(std::slice::from_ref(&allowed), &[]).unwrap();
        policy.check_local(&allowed.join("a.json")).unwrap();
        policy.check_local(&allowed.join("sub/new.json")).unwrap();
        let e = policy
            .check_local(&allowed.join("../other/secret.json"))
            .unwrap_err();
        assert!(e.to_string().contains("is not allowed"), "{e}");
        assert!(policy.check_local(&allowed.join("../../etc")).is_err());
        // `..` after a folder that does not exist still climbs (it was dropped once).
        assert!(
            policy
                .check_local(&allowed.join("nope/../../other/secret.json"))
                .is_err()
        );
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(&other, allowed.join("link")).unwrap();
            assert!(
                policy
                    .check_local(&allowed.join("link/secret.json"))
                    .is_err()
            );
        }
        InputPolicy::default()
            .check_local(Path::new("/etc/passwd"))
            .unwrap();
        assert!(InputPolicy::restricted(&[root.path().join("missing")], &[]).is_err());
    }

    /// A data directory stays closed under any policy: named, reached through `..` or a
    /// link, or inside an allowed directory.
    #[test]
    fn a_protected_directory_is_never_input() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("var");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("metadata.db"), "x").unwrap();
        std::fs::write(root.path().join("input.json"), "{}").unwrap();
        for (i, policy) in [
            InputPolicy::default(),
            InputPolicy::restricted(&[root.path().to_path_buf()], &[]).unwrap(),
            InputPolicy::restricted(std::slice::from_ref(&data), &[]).unwrap(),
        ]
        .into_iter()
        .enumerate()
        {
            let policy = policy.protecting(&data);
            let e = policy.check_local(&data.join("metadata.db")).unwrap_err();
            assert!(e.to_string().contains("data directory"), "{e}");
            assert!(policy.check_local(&data).is_err());
            assert!(
                policy
                    .check_local(&root.path().join("x/../var/metadata.db"))
                    .is_err()
            );
            assert!(policy.check_local(&data.join("not/yet/there")).is_err());
            assert!(policy.is_protected(&data.join("metadata.db")));
            #[cfg(unix)]
            {
                let link = root.path().join(format!("link{i}"));
                std::os::unix::fs::symlink(&data, &link).unwrap();
                assert!(policy.check_local(&link.join("metadata.db")).is_err());
            }
        }
        let open = InputPolicy::default().protecting(&data);
        open.check_local(&root.path().join("input.json")).unwrap();
        assert!(!open.is_protected(&root.path().join("input.json")));
        assert!(!open.is_protected(&root.path().join("var2/a.json")));
        assert_eq!(open.clone().protecting(&data), open, "added once");
    }

    #[test]
    fn protocols_are_enforced() {
        let p = InputPolicy::default();
        p.check_http("http://x/a").unwrap();
        p.check_http("HTTPS://x/a").unwrap();
        let e = p.check_http("file:///etc/passwd").unwrap_err();
        assert!(
            e.to_string().contains("Only [http, https] protocols"),
            "{e}"
        );
        let https_only = InputPolicy::restricted(&[], &["https".into()]).unwrap();
        assert!(https_only.check_http("http://x/a").is_err());
    }
}
