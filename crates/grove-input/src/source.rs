//! Druid input sources (`inputSource` JSON of EXTERN and the input table functions) and
//! the listing that turns one into [`InputSplit`]s.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::common::{DataFusionError, Result, plan_err};
use serde::{Deserialize, Serialize};

use crate::policy::InputPolicy;
use crate::remote::{self, CloudKind, CloudUri};
use crate::split::{InputSplit, Location};

/// A Druid input source.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum InputSource {
    /// `{"type":"inline","data":"..."}`: the data itself.
    Inline {
        /// The whole payload.
        data: String,
    },
    /// `{"type":"local","baseDir":..,"filter":..,"files":[..]}`: files on this machine.
    Local {
        /// Directory searched recursively for files whose name matches `filter`.
        #[serde(rename = "baseDir", default, skip_serializing_if = "Option::is_none")]
        base_dir: Option<String>,
        /// Wildcard on file names (required with `baseDir`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        filter: Option<String>,
        /// Explicit files (absolute, or relative to the working directory).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        files: Vec<String>,
    },
    /// `{"type":"http","uris":[..],"httpAuthenticationUsername":..,
    /// "httpAuthenticationPassword":..}`: one split per URI.
    Http {
        /// The URIs read, one split each.
        uris: Vec<String>,
        /// Basic-auth user name.
        // Serialized as null when absent, as Druid's task payloads show it.
        #[serde(rename = "httpAuthenticationUsername", default)]
        username: Option<String>,
        /// Basic-auth password: a string or a password provider.
        #[serde(rename = "httpAuthenticationPassword", default)]
        password: Option<PasswordProvider>,
    },
    /// `{"type":"s3",...}`: objects in S3 or an S3-compatible store.
    S3(CloudSource),
    /// `{"type":"google",...}`: objects in Google Cloud Storage.
    Google(CloudSource),
    /// `{"type":"azureStorage",...}` (or the legacy `azure`): blobs in Azure storage.
    #[serde(rename = "azureStorage", alias = "azure")]
    Azure(CloudSource),
}

/// A password: inline, or one of Druid's password providers.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PasswordProvider {
    /// The password itself.
    Plain(String),
    /// `{"type":"default","password":..}` or `{"type":"environment","variable":..}`.
    Provider(ProviderSpec),
}

/// Druid's password provider objects.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ProviderSpec {
    /// The password, inline.
    Default {
        /// The password.
        password: String,
    },
    /// The password is in an environment variable of the Grove process.
    Environment {
        /// The variable's name.
        variable: String,
    },
}

impl PasswordProvider {
    /// The password, reading the environment if the provider says so.
    pub fn resolve(&self) -> Result<String> {
        match self {
            Self::Plain(p) | Self::Provider(ProviderSpec::Default { password: p }) => Ok(p.clone()),
            Self::Provider(ProviderSpec::Environment { variable }) => std::env::var(variable)
                .map_err(|_| {
                    DataFusionError::Plan(format!(
                        "Password environment variable [{variable}] is not set"
                    ))
                }),
        }
    }
}

/// Refuses an `environment` password provider whose variable the policy does not list.
fn check_provider(policy: &InputPolicy, provider: Option<&PasswordProvider>) -> Result<()> {
    match provider {
        Some(PasswordProvider::Provider(ProviderSpec::Environment { variable })) => {
            policy.check_env_var(variable)
        }
        _ => Ok(()),
    }
}

/// The fields shared by the cloud object-store sources (`s3`, `google`, `azureStorage`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloudSource {
    /// Object URIs, e.g. `s3://bucket/path/file.json`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uris: Vec<String>,
    /// URI prefixes; every object under them is read (empty objects skipped).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefixes: Vec<String>,
    /// Objects as bucket and path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<CloudObjectSpec>,
    /// Glob on the object path (e.g. `**.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_glob: Option<String>,
    /// Credentials and account settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<CloudProperties>,
    /// Endpoint (S3-compatible stores): `url`, `signingRegion`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_config: Option<EndpointConfig>,
    /// Client settings: `protocol`, `enablePathStyleAccess`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_config: Option<ClientConfig>,
}

/// One object of a cloud source's `objects` list.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CloudObjectSpec {
    /// Bucket (S3, GCS) or container (Azure).
    pub bucket: String,
    /// Key of the object.
    pub path: String,
}

/// `properties` of a cloud source.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloudProperties {
    /// S3 access key id (string or password provider).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<PasswordProvider>,
    /// S3 secret access key (string or password provider).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<PasswordProvider>,
    /// S3 session token (string or password provider).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token: Option<PasswordProvider>,
    /// Role to assume (not supported by Grove; refused when set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assume_role_arn: Option<String>,
    /// Azure storage account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Azure shared key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_access_storage_key: Option<PasswordProvider>,
    /// Azure shared key (alternative name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PasswordProvider>,
}

/// `endpointConfig` of an S3 source.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointConfig {
    /// Endpoint URL of an S3-compatible store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Region used to sign requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_region: Option<String>,
}

/// `clientConfig` of an S3 source.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientConfig {
    /// `http` or `https` (for endpoints given without a scheme).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Path-style (`endpoint/bucket/key`) instead of virtual-hosted requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_path_style_access: Option<bool>,
}

/// Input source types Druid has that Grove does not read.
const KNOWN_UNSUPPORTED: &[&str] = &["hdfs", "druid", "combining", "iceberg", "delta", "sql"];

impl InputSource {
    /// Parses the `inputSource` JSON, with clear errors for unsupported types.
    pub fn from_json(text: &str) -> Result<Self> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            DataFusionError::Plan(format!("Invalid inputSource JSON [{text}]: {e}"))
        })?;
        let type_name = value.get("type").and_then(|t| t.as_str()).unwrap_or("");
        if KNOWN_UNSUPPORTED.contains(&type_name) {
            return Err(DataFusionError::NotImplemented(format!(
                "inputSource type [{type_name}] is not supported by Grove; supported: inline, \
                 local, http, s3, google, azureStorage"
            )));
        }
        let source: InputSource = serde_json::from_value(value)
            .map_err(|e| DataFusionError::Plan(format!("Invalid inputSource [{text}]: {e}")))?;
        source.validate()?;
        Ok(source)
    }

    fn validate(&self) -> Result<()> {
        match self {
            Self::Inline { .. } => Ok(()),
            Self::Local {
                base_dir,
                filter,
                files,
            } => {
                if base_dir.is_none() && files.is_empty() {
                    return plan_err!(
                        "Invalid inputSource [local]: at least one of [baseDir] and [files] must be specified"
                    );
                }
                if base_dir.is_some() && filter.is_none() && files.is_empty() {
                    return plan_err!(
                        "Invalid inputSource [local]: [filter] is required with [baseDir]"
                    );
                }
                Ok(())
            }
            Self::Http {
                uris,
                username,
                password,
            } => {
                if uris.is_empty() {
                    return plan_err!("Invalid inputSource [http]: [uris] must not be empty");
                }
                for uri in uris {
                    remote::parse_http_uri(uri)?;
                }
                if password.is_some() && username.is_none() {
                    return plan_err!(
                        "Invalid inputSource [http]: [httpAuthenticationPassword] needs \
                         [httpAuthenticationUsername]"
                    );
                }
                Ok(())
            }
            Self::S3(c) | Self::Google(c) | Self::Azure(c) => {
                let kind = self.cloud_kind().unwrap_or(CloudKind::S3);
                c.validate(kind)
            }
        }
    }

    /// Druid's type name.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Inline { .. } => "inline",
            Self::Local { .. } => "local",
            Self::Http { .. } => "http",
            Self::S3(_) => "s3",
            Self::Google(_) => "google",
            Self::Azure(_) => "azureStorage",
        }
    }

    fn cloud_kind(&self) -> Option<CloudKind> {
        match self {
            Self::S3(_) => Some(CloudKind::S3),
            Self::Google(_) => Some(CloudKind::Google),
            Self::Azure(_) => Some(CloudKind::Azure),
            _ => None,
        }
    }

    /// Checks the source against the operator's guard rails, before anything is read.
    pub fn check_policy(&self, policy: &InputPolicy) -> Result<()> {
        match self {
            Self::Local {
                base_dir, files, ..
            } => {
                let base = base_dir.as_deref().map(Path::new);
                if let Some(base) = base {
                    policy.check_local(base)?;
                }
                for f in files {
                    let path = match base {
                        Some(b) => b.join(f),
                        None => PathBuf::from(f),
                    };
                    policy.check_local(&path)?;
                }
                Ok(())
            }
            Self::Http { uris, password, .. } => {
                uris.iter().try_for_each(|u| policy.check_http(u))?;
                check_provider(policy, password.as_ref())
            }
            Self::S3(c) | Self::Google(c) | Self::Azure(c) => {
                if let Some(url) = c.endpoint_config.as_ref().and_then(|e| e.url.as_deref())
                    && let Ok(url) = reqwest::Url::parse(url)
                {
                    policy.address_rule().check_url(&url)?;
                }
                if let Some(p) = &c.properties {
                    for provider in [
                        &p.access_key_id,
                        &p.secret_access_key,
                        &p.session_token,
                        &p.shared_access_storage_key,
                        &p.key,
                    ] {
                        check_provider(policy, provider.as_ref())?;
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Lists the splits: one per file or object (empty files are skipped, as Druid does);
    /// inline data is one split. Nothing is read yet.
    pub async fn splits(&self, policy: &InputPolicy) -> Result<Vec<InputSplit>> {
        self.check_policy(policy)?;
        match self {
            Self::Inline { data } => Ok(vec![InputSplit::whole(
                Location::Inline(Arc::from(data.as_str())),
                Some(data.len() as u64),
            )]),
            Self::Local {
                base_dir,
                filter,
                files,
            } => {
                let mut out = Vec::new();
                if let Some(dir) = base_dir {
                    let base = Path::new(dir);
                    if files.is_empty() {
                        list_dir(base, filter.as_deref().unwrap_or("*"), &mut out)?;
                        // A listing passes over the server's own files (a baseDir above
                        // its data directory); naming one is refused below.
                        out.retain(|path| !policy.is_protected(path));
                    } else {
                        for f in files {
                            out.push(base.join(f));
                        }
                    }
                } else {
                    out.extend(files.iter().map(PathBuf::from));
                }
                let mut splits = Vec::with_capacity(out.len());
                for path in out {
                    // Files found under an allowed baseDir may still be links leading out.
                    policy.check_local(&path)?;
                    let meta = std::fs::metadata(&path).map_err(|e| {
                        DataFusionError::Execution(format!(
                            "Cannot read input file [{}]: {e}",
                            path.display()
                        ))
                    })?;
                    if !meta.is_file() {
                        return Err(DataFusionError::Execution(format!(
                            "Input path [{}] is not a file",
                            path.display()
                        )));
                    }
                    if meta.len() > 0 {
                        splits.push(InputSplit::whole(Location::File(path), Some(meta.len())));
                    }
                }
                Ok(splits)
            }
            Self::Http { uris, .. } => {
                let auth = self.http_auth()?;
                let client = remote::http_client(policy)?;
                Ok(uris
                    .iter()
                    .map(|uri| {
                        InputSplit::whole(
                            Location::Http(Arc::new(remote::HttpObject {
                                url: uri.clone(),
                                auth: auth.clone(),
                                client: client.clone(),
                            })),
                            None,
                        )
                    })
                    .collect())
            }
            Self::S3(c) | Self::Google(c) | Self::Azure(c) => {
                let kind = self.cloud_kind().unwrap_or(CloudKind::S3);
                remote::list_cloud(kind, c).await
            }
        }
    }
}

impl InputSource {
    /// Basic-auth user and resolved password of an `http` source.
    fn http_auth(&self) -> Result<Option<(String, Option<String>)>> {
        let Self::Http {
            username: Some(user),
            password,
            ..
        } = self
        else {
            return Ok(None);
        };
        let password = password
            .as_ref()
            .map(PasswordProvider::resolve)
            .transpose()?;
        Ok(Some((user.clone(), password)))
    }

    /// The location of one URI of this `http` source (credentials resolved again),
    /// read under `policy`.
    pub(crate) fn http_location(&self, url: &str, policy: &InputPolicy) -> Result<Location> {
        policy.check_http(url)?;
        Ok(Location::Http(Arc::new(remote::HttpObject {
            url: url.to_string(),
            auth: self.http_auth()?,
            client: remote::http_client(policy)?,
        })))
    }

    /// The location of one object of this cloud source, by URI.
    pub(crate) fn object_location(&self, uri: &str) -> Result<Location> {
        let (Self::S3(c) | Self::Google(c) | Self::Azure(c)) = self else {
            return Err(DataFusionError::Plan(format!(
                "[{uri}] is not an object of a cloud input source"
            )));
        };
        let kind = self.cloud_kind().unwrap_or(CloudKind::S3);
        remote::object_location(kind, c, uri)
    }
}

impl CloudSource {
    fn validate(&self, kind: CloudKind) -> Result<()> {
        let given = [
            !self.uris.is_empty(),
            !self.prefixes.is_empty(),
            !self.objects.is_empty(),
        ]
        .iter()
        .filter(|g| **g)
        .count();
        if given != 1 {
            return plan_err!(
                "Invalid inputSource [{}]: exactly one of [uris], [prefixes] and [objects] must be specified",
                kind.type_name()
            );
        }
        for uri in self.uris.iter().chain(&self.prefixes) {
            CloudUri::parse(kind, uri)?;
        }
        if let Some(glob) = &self.object_glob {
            remote::object_glob(glob)?;
        }
        if let Some(p) = &self.properties {
            if p.access_key_id.is_some() != p.secret_access_key.is_some() {
                return plan_err!(
                    "Invalid inputSource [{}]: [accessKeyId] and [secretAccessKey] must be given together",
                    kind.type_name()
                );
            }
            if p.assume_role_arn.is_some() {
                return Err(DataFusionError::NotImplemented(
                    "assumeRoleArn is not supported by Grove; pass accessKeyId and \
                     secretAccessKey, or the AWS_* environment of the Grove process"
                        .into(),
                ));
            }
        }
        Ok(())
    }
}

fn list_dir(dir: &Path, filter: &str, out: &mut Vec<PathBuf>) -> Result<()> {
    let pattern = glob::Pattern::new(filter).map_err(|e| {
        DataFusionError::Plan(format!(
            "Invalid filter [{filter}] of local inputSource: {e}"
        ))
    })?;
    let mut stack = vec![dir.to_path_buf()];
    let mut found = Vec::new();
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| {
            DataFusionError::Execution(format!("Cannot list baseDir [{}]: {e}", d.display()))
        })?;
        for entry in entries {
            let entry = entry.map_err(|e| {
                DataFusionError::Execution(format!("Cannot list baseDir [{}]: {e}", d.display()))
            })?;
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if entry
                .file_name()
                .to_str()
                .is_some_and(|name| pattern.matches(name))
            {
                found.push(path);
            }
        }
    }
    found.sort();
    out.extend(found);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sources() {
        let s = InputSource::from_json(r#"{"type":"inline","data":"a\nb"}"#).unwrap();
        assert_eq!(s.type_name(), "inline");
        let s = InputSource::from_json(
            r#"{"type":"http","uris":["http://x/a.json"],"httpAuthenticationUsername":"u",
                "httpAuthenticationPassword":{"type":"environment","variable":"P"}}"#,
        )
        .unwrap();
        assert_eq!(s.type_name(), "http");
        let e = InputSource::from_json(r#"{"type":"hdfs","paths":"/x"}"#).unwrap_err();
        assert!(e.to_string().contains("[hdfs] is not supported"));
        let e = InputSource::from_json(r#"{"type":"local"}"#).unwrap_err();
        assert!(
            e.to_string()
                .contains("at least one of [baseDir] and [files]")
        );
        let e = InputSource::from_json("not json").unwrap_err();
        assert!(e.to_string().contains("Invalid inputSource JSON"));
        let e = InputSource::from_json(r#"{"type":"http","uris":["not a url"]}"#).unwrap_err();
        assert!(e.to_string().contains("not a url"), "{e}");
        let e =
            InputSource::from_json(r#"{"type":"s3","uris":["s3://b/k"],"prefixes":["s3://b/"]}"#)
                .unwrap_err();
        assert!(e.to_string().contains("exactly one of"), "{e}");
        let s = InputSource::from_json(r#"{"type":"azure","uris":["azure://c/k.json"]}"#).unwrap();
        assert_eq!(s.type_name(), "azureStorage");
    }

    #[test]
    fn password_providers() {
        let p: PasswordProvider = serde_json::from_str(r#""secret""#).unwrap();
        assert_eq!(p.resolve().unwrap(), "secret");
        let p: PasswordProvider =
            serde_json::from_str(r#"{"type":"default","password":"pw"}"#).unwrap();
        assert_eq!(p.resolve().unwrap(), "pw");
        let p: PasswordProvider = serde_json::from_str(
            r#"{"type":"environment","variable":"GROVE_TEST_SURELY_UNSET_VAR"}"#,
        )
        .unwrap();
        assert!(
            p.resolve()
                .unwrap_err()
                .to_string()
                .contains("GROVE_TEST_SURELY_UNSET_VAR")
        );
    }

    #[tokio::test]
    async fn lists_base_dir_with_filter_and_skips_empty_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("a.json"), "{}\n").unwrap();
        std::fs::write(dir.path().join("sub/b.json"), "{}\n").unwrap();
        std::fs::write(dir.path().join("c.csv"), "x\n").unwrap();
        std::fs::write(dir.path().join("empty.json"), "").unwrap();
        let src = InputSource::Local {
            base_dir: Some(dir.path().to_string_lossy().into()),
            filter: Some("*.json".into()),
            files: vec![],
        };
        let open = InputPolicy::default();
        let splits = src.splits(&open).await.unwrap();
        assert_eq!(splits.len(), 2);
        let missing = InputSource::Local {
            base_dir: None,
            filter: None,
            files: vec!["/nonexistent/x.json".into()],
        };
        assert!(
            missing
                .splits(&open)
                .await
                .unwrap_err()
                .to_string()
                .contains("/nonexistent/x.json")
        );
    }
}
