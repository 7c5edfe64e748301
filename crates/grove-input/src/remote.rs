//! Remote inputs: HTTP(S) URIs (reqwest) and cloud object stores (object_store's S3, GCS
//! and Azure clients). Readers run on blocking threads; they pull the async byte streams
//! through the runtime handle, one chunk at a time, so memory stays flat.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use datafusion::common::{DataFusionError, Result, plan_err};
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, RetryConfig};
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use crate::InputPolicy;
use crate::format::ReadEnv;
use crate::source::{CloudSource, PasswordProvider};
use crate::split::{InputSplit, Location};

/// The runtime that performs all remote input I/O (listing and reading).
///
/// Readers are blocking threads that pull async byte streams with `Handle::block_on`; that
/// only makes progress if some thread drives the I/O driver of the runtime the streams
/// belong to. A caller's current-thread runtime may be busy (or blocked) elsewhere, so
/// remote I/O gets a small multi-threaded runtime of its own, whose workers always drive it.
pub fn io_handle() -> Result<Handle> {
    static IO: std::sync::OnceLock<std::result::Result<tokio::runtime::Runtime, String>> =
        std::sync::OnceLock::new();
    IO.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("grove-input-io")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map(|rt| rt.handle().clone())
    .map_err(|e| DataFusionError::Execution(format!("Cannot start the input I/O runtime: {e}")))
}

/// An HTTP(S) URI to read, with its credentials.
#[derive(Clone, Debug)]
pub struct HttpObject {
    /// The URI.
    pub url: String,
    /// Basic-auth user and password.
    pub auth: Option<(String, Option<String>)>,
    /// The shared client.
    pub client: reqwest::Client,
}

/// An object in a cloud store.
#[derive(Debug)]
pub struct CloudObject {
    /// The store (one per bucket).
    pub store: Arc<dyn ObjectStore>,
    /// Key within the bucket.
    pub path: ObjectPath,
    /// The URI shown in messages, e.g. `s3://bucket/key`.
    pub uri: String,
}

/// Checks that `uri` is an absolute URL with a host.
pub(crate) fn parse_http_uri(uri: &str) -> Result<reqwest::Url> {
    let url = reqwest::Url::parse(uri).map_err(|e| {
        DataFusionError::Plan(format!("Invalid URI [{uri}] in http inputSource: {e}"))
    })?;
    if !url.has_host() {
        return plan_err!("Invalid URI [{uri}] in http inputSource: no host");
    }
    Ok(url)
}

/// The last path segment of a URI (for compression detection).
pub(crate) fn uri_file_name(uri: &str) -> String {
    reqwest::Url::parse(uri)
        .ok()
        .and_then(|u| {
            u.path_segments()
                .and_then(|mut s| s.next_back().map(String::from))
        })
        .unwrap_or_default()
}

/// Most redirects one read follows.
const MAX_REDIRECTS: usize = 10;

/// The HTTP client shared by the splits of one source, under `policy`: every address it
/// connects to passes the policy's address rule (its resolver drops refused ones), and
/// every redirect is checked (scheme and address) before it is followed.
pub(crate) fn http_client(policy: &InputPolicy) -> Result<reqwest::Client> {
    let resolver = crate::address::GuardedResolver::new(
        policy.address_rule().clone(),
        crate::address::system_lookup(),
    );
    let hops = policy.clone();
    let redirects = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= MAX_REDIRECTS {
            let message = format!("more than {MAX_REDIRECTS} redirects");
            return attempt.error(message);
        }
        match hops.check_http(attempt.url().as_str()) {
            Ok(()) => attempt.follow(),
            Err(e) => {
                let message = format!("redirect refused: {}", e.strip_backtrace());
                attempt.error(message)
            }
        }
    });
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(30))
        .read_timeout(Duration::from_secs(300))
        .user_agent(concat!("grove/", env!("CARGO_PKG_VERSION")))
        .dns_resolver(Arc::new(resolver))
        .redirect(redirects)
        .build()
        .map_err(|e| DataFusionError::Execution(format!("Cannot create the HTTP client: {e}")))
}

/// Starts a GET of `obj`; a non-2xx answer is an error naming the URI and status.
pub(crate) fn open_http(env: &ReadEnv, obj: &HttpObject) -> Result<Box<dyn Read + Send>> {
    let handle = &env.handle;
    let mut request = obj.client.get(&obj.url);
    if let Some((user, password)) = &obj.auth {
        request = request.basic_auth(user, password.as_ref());
    }
    let response = handle.block_on(request.send()).map_err(|e| {
        DataFusionError::Execution(format!(
            "Cannot read [{}]: {}",
            obj.url,
            crate::address::with_causes(&e)
        ))
    })?;
    let status = response.status();
    if !status.is_success() {
        return Err(DataFusionError::Execution(format!(
            "Cannot read [{}]: HTTP {status}{}",
            obj.url,
            if status == reqwest::StatusCode::UNAUTHORIZED
                || status == reqwest::StatusCode::FORBIDDEN
            {
                " (check httpAuthenticationUsername and httpAuthenticationPassword)"
            } else {
                ""
            }
        )));
    }
    let url = obj.url.clone();
    let stream = response
        .bytes_stream()
        .map(move |r| r.map_err(|e| std::io::Error::other(format!("[{url}]: {e}"))))
        .boxed();
    Ok(Box::new(StreamRead::new(env, stream)))
}

/// Starts a GET of `obj` from byte `offset`.
pub(crate) fn open_object(
    env: &ReadEnv,
    obj: &CloudObject,
    offset: u64,
) -> Result<Box<dyn Read + Send>> {
    let handle = &env.handle;
    let options = GetOptions {
        range: (offset > 0).then_some(GetRange::Offset(offset)),
        ..Default::default()
    };
    let result = handle
        .block_on(obj.store.get_opts(&obj.path, options))
        .map_err(|e| DataFusionError::Execution(format!("Cannot read [{}]: {e}", obj.uri)))?;
    let uri = obj.uri.clone();
    let stream = result
        .into_stream()
        .map(move |r| r.map_err(|e| std::io::Error::other(format!("[{uri}]: {e}"))))
        .boxed();
    Ok(Box::new(StreamRead::new(env, stream)))
}

/// A blocking reader over an async stream of byte chunks.
struct StreamRead {
    handle: Handle,
    stop: CancellationToken,
    stream: BoxStream<'static, std::io::Result<Bytes>>,
    chunk: Bytes,
}

impl StreamRead {
    fn new(env: &ReadEnv, stream: BoxStream<'static, std::io::Result<Bytes>>) -> Self {
        Self {
            handle: env.handle.clone(),
            stop: env.stop.clone(),
            stream,
            chunk: Bytes::new(),
        }
    }
}

impl Read for StreamRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            // A stalled server must not hold the reader (and its connection) after the
            // query ended: the stop token ends the wait.
            let next = self.handle.block_on(async {
                tokio::select! {
                    biased;
                    () = self.stop.cancelled() => None,
                    next = self.stream.next() => Some(next),
                }
            });
            match next {
                // Not `Interrupted`: std's readers retry that.
                None => return Err(std::io::Error::other("the query ended")),
                Some(Some(Ok(chunk))) => self.chunk = chunk,
                Some(Some(Err(e))) => return Err(e),
                Some(None) => return Ok(0),
            }
        }
        let n = self.chunk.len().min(buf.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        let _ = self.chunk.split_to(n);
        Ok(n)
    }
}

/// The cloud stores Grove reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CloudKind {
    S3,
    Google,
    Azure,
}

impl CloudKind {
    pub(crate) fn type_name(self) -> &'static str {
        match self {
            Self::S3 => "s3",
            Self::Google => "google",
            Self::Azure => "azureStorage",
        }
    }
}

/// A parsed cloud URI: `s3://bucket/key`, `gs://bucket/key`, `azure://container/key` or
/// `azureStorage://account/container/key`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CloudUri {
    pub(crate) account: Option<String>,
    pub(crate) bucket: String,
    pub(crate) key: String,
}

impl CloudUri {
    pub(crate) fn parse(kind: CloudKind, uri: &str) -> Result<Self> {
        let Some((scheme, rest)) = uri.split_once("://") else {
            return plan_err!(
                "Invalid {} URI [{uri}]: expected scheme://bucket/path",
                kind.type_name()
            );
        };
        let scheme = scheme.to_ascii_lowercase();
        let allowed: &[&str] = match kind {
            CloudKind::S3 => &["s3", "s3a", "s3n"],
            CloudKind::Google => &["gs"],
            CloudKind::Azure => &["azure", "azurestorage"],
        };
        if !allowed.contains(&scheme.as_str()) {
            return plan_err!(
                "Invalid {} URI [{uri}]: the scheme must be {}",
                kind.type_name(),
                allowed.join(" or ")
            );
        }
        let (account, rest) = if scheme == "azurestorage" {
            match rest.split_once('/') {
                Some((account, rest)) => (Some(account.to_string()), rest),
                None => {
                    return plan_err!(
                        "Invalid azureStorage URI [{uri}]: expected azureStorage://account/container/path"
                    );
                }
            }
        } else {
            (None, rest)
        };
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return plan_err!("Invalid {} URI [{uri}]: no bucket", kind.type_name());
        }
        Ok(Self {
            account,
            bucket: bucket.to_string(),
            key: key.to_string(),
        })
    }
}

/// Lists the objects a cloud source names.
pub(crate) async fn list_cloud(kind: CloudKind, source: &CloudSource) -> Result<Vec<InputSplit>> {
    let glob = source.object_glob.as_deref().map(object_glob).transpose()?;
    let matches = |key: &str| glob.as_ref().is_none_or(|g| g.is_match(key));
    let mut stores: HashMap<(Option<String>, String), Arc<dyn ObjectStore>> = HashMap::new();
    let mut store_for = |account: &Option<String>, bucket: &str| -> Result<Arc<dyn ObjectStore>> {
        let key = (account.clone(), bucket.to_string());
        if let Some(s) = stores.get(&key) {
            return Ok(Arc::clone(s));
        }
        let store = build_store(kind, account.as_deref(), bucket, source)?;
        stores.insert(key, Arc::clone(&store));
        Ok(store)
    };
    let mut splits = Vec::new();
    let mut exact: Vec<(Option<String>, String, String)> = Vec::new();
    for uri in &source.uris {
        let u = CloudUri::parse(kind, uri)?;
        exact.push((u.account, u.bucket, u.key));
    }
    for o in &source.objects {
        exact.push((None, o.bucket.clone(), o.path.clone()));
    }
    for (account, bucket, key) in exact {
        if !matches(&key) {
            continue;
        }
        let store = store_for(&account, &bucket)?;
        let path = ObjectPath::from(key.as_str());
        let uri = display_uri(kind, account.as_deref(), &bucket, &key);
        let meta = store
            .head(&path)
            .await
            .map_err(|e| DataFusionError::Execution(format!("Cannot read [{uri}]: {e}")))?;
        splits.push(InputSplit::whole(
            Location::Object(Arc::new(CloudObject { store, path, uri })),
            Some(meta.size),
        ));
    }
    for prefix in &source.prefixes {
        let u = CloudUri::parse(kind, prefix)?;
        let store = store_for(&u.account, &u.bucket)?;
        // object_store lists whole path segments (it appends `/` to the prefix); Druid's
        // prefixes are plain string prefixes of the key. List the directory the prefix
        // ends in, and keep the keys that start with the prefix.
        let dir = u.key.rfind('/').map(|i| ObjectPath::from(&u.key[..i]));
        let mut listing = store.list(dir.as_ref());
        let mut found = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta
                .map_err(|e| DataFusionError::Execution(format!("Cannot list [{prefix}]: {e}")))?;
            if meta.size == 0 || !meta.location.as_ref().starts_with(u.key.as_str()) {
                continue;
            }
            if !matches(meta.location.as_ref()) {
                continue;
            }
            found.push(meta);
        }
        found.sort_by(|a, b| a.location.cmp(&b.location));
        for meta in found {
            let uri = display_uri(
                kind,
                u.account.as_deref(),
                &u.bucket,
                meta.location.as_ref(),
            );
            splits.push(InputSplit::whole(
                Location::Object(Arc::new(CloudObject {
                    store: Arc::clone(&store),
                    path: meta.location,
                    uri,
                })),
                Some(meta.size),
            ));
        }
    }
    Ok(splits)
}

/// Compiles an `objectGlob` with Java's glob rules, as Druid applies them to object keys:
/// `*` and `?` stay within a path segment, `**` crosses segments, `{a,b}` alternates,
/// `[...]` and `[!...]` are classes, `\\` escapes.
pub(crate) fn object_glob(glob: &str) -> Result<regex::Regex> {
    let invalid = |why: &str| DataFusionError::Plan(format!("Invalid objectGlob [{glob}]: {why}"));
    let mut re = String::from("^");
    let mut chars = glob.chars().peekable();
    let mut in_group = false;
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                re.push_str(".*");
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '{' if !in_group => {
                in_group = true;
                re.push_str("(?:");
            }
            '{' => return Err(invalid("nested groups")),
            ',' if in_group => re.push('|'),
            '}' if in_group => {
                in_group = false;
                re.push(')');
            }
            '[' => {
                re.push('[');
                if chars.peek() == Some(&'!') {
                    chars.next();
                    re.push('^');
                }
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == ']' {
                        closed = true;
                        break;
                    }
                    if matches!(c, '\\' | '[' | '^' | '&' | '~') {
                        re.push('\\');
                    }
                    re.push(c);
                }
                if !closed {
                    return Err(invalid("unclosed ["));
                }
                re.push(']');
            }
            '\\' => match chars.next() {
                Some(e) => re.push_str(&regex::escape(&e.to_string())),
                None => return Err(invalid("trailing \\")),
            },
            other => re.push_str(&regex::escape(&other.to_string())),
        }
    }
    if in_group {
        return Err(invalid("unclosed {"));
    }
    re.push('$');
    regex::Regex::new(&re).map_err(|e| invalid(&e.to_string()))
}

/// The location of the object at `uri` (as [`display_uri`] writes it) of `source`.
pub(crate) fn object_location(
    kind: CloudKind,
    source: &CloudSource,
    uri: &str,
) -> Result<Location> {
    let u = CloudUri::parse(kind, uri)?;
    let store = build_store(kind, u.account.as_deref(), &u.bucket, source)?;
    Ok(Location::Object(Arc::new(CloudObject {
        store,
        path: ObjectPath::from(u.key.as_str()),
        uri: uri.to_string(),
    })))
}

fn display_uri(kind: CloudKind, account: Option<&str>, bucket: &str, key: &str) -> String {
    match (kind, account) {
        (CloudKind::S3, _) => format!("s3://{bucket}/{key}"),
        (CloudKind::Google, _) => format!("gs://{bucket}/{key}"),
        (CloudKind::Azure, Some(a)) => format!("azureStorage://{a}/{bucket}/{key}"),
        (CloudKind::Azure, None) => format!("azure://{bucket}/{key}"),
    }
}

fn retry() -> RetryConfig {
    RetryConfig {
        max_retries: 3,
        retry_timeout: Duration::from_secs(30),
        ..Default::default()
    }
}

fn resolve(p: &Option<PasswordProvider>) -> Result<Option<String>> {
    p.as_ref().map(PasswordProvider::resolve).transpose()
}

fn build_store(
    kind: CloudKind,
    account: Option<&str>,
    bucket: &str,
    source: &CloudSource,
) -> Result<Arc<dyn ObjectStore>> {
    let props = source.properties.clone().unwrap_or_default();
    let built: object_store::Result<Arc<dyn ObjectStore>> = match kind {
        CloudKind::S3 => {
            use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
            let mut b = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_retry(retry());
            if let Some(id) = resolve(&props.access_key_id)? {
                b = b.with_access_key_id(id);
            }
            if let Some(secret) = resolve(&props.secret_access_key)? {
                b = b.with_secret_access_key(secret);
            }
            if let Some(token) = resolve(&props.session_token)? {
                b = b.with_token(token);
            }
            let endpoint = source.endpoint_config.clone().unwrap_or_default();
            let client = source.client_config.clone().unwrap_or_default();
            if let Some(url) = endpoint.url {
                let url = if url.contains("://") {
                    url
                } else {
                    format!("{}://{url}", client.protocol.as_deref().unwrap_or("https"))
                };
                if url.starts_with("http://") {
                    b = b.with_allow_http(true);
                }
                b = b.with_endpoint(url);
            }
            if let Some(region) = endpoint.signing_region {
                b = b.with_region(region);
            } else if b.get_config_value(&AmazonS3ConfigKey::Region).is_none() {
                b = b.with_region("us-east-1");
            }
            if let Some(path_style) = client.enable_path_style_access {
                b = b.with_virtual_hosted_style_request(!path_style);
            }
            b.build().map(|s| Arc::new(s) as Arc<dyn ObjectStore>)
        }
        CloudKind::Google => object_store::gcp::GoogleCloudStorageBuilder::from_env()
            .with_bucket_name(bucket)
            .with_retry(retry())
            .build()
            .map(|s| Arc::new(s) as Arc<dyn ObjectStore>),
        CloudKind::Azure => {
            let mut b = object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_container_name(bucket)
                .with_retry(retry());
            if let Some(a) = account.map(String::from).or(props.account.clone()) {
                b = b.with_account(a);
            }
            if let Some(k) = resolve(&props.shared_access_storage_key)?.or(resolve(&props.key)?) {
                b = b.with_access_key(k);
            }
            b.build().map(|s| Arc::new(s) as Arc<dyn ObjectStore>)
        }
    };
    built.map_err(|e| {
        DataFusionError::Plan(format!(
            "Cannot access {} bucket [{bucket}]: {e}",
            kind.type_name()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cloud_uris() {
        let u = CloudUri::parse(CloudKind::S3, "s3://bucket/a/b.json").unwrap();
        assert_eq!((u.bucket.as_str(), u.key.as_str()), ("bucket", "a/b.json"));
        let u = CloudUri::parse(CloudKind::Azure, "azureStorage://acct/c/k.json").unwrap();
        assert_eq!(u.account.as_deref(), Some("acct"));
        assert_eq!(u.bucket, "c");
        assert!(CloudUri::parse(CloudKind::S3, "gs://b/k").is_err());
        assert!(CloudUri::parse(CloudKind::Google, "gs:///k").is_err());
        assert_eq!(uri_file_name("http://h/p/wiki.json.gz?x=1"), "wiki.json.gz");
    }

    #[test]
    fn object_globs_follow_java_rules() {
        let g = object_glob("**.json").unwrap();
        assert!(g.is_match("a/b/c.json") && g.is_match("c.json") && !g.is_match("c.csv"));
        let g = object_glob("data/*.json").unwrap();
        assert!(g.is_match("data/a.json") && !g.is_match("data/sub/a.json"));
        let g = object_glob("*.{json,csv}").unwrap();
        assert!(g.is_match("a.csv") && g.is_match("a.json") && !g.is_match("a.tsv"));
        let g = object_glob("part-[!0]?.gz").unwrap();
        assert!(g.is_match("part-12.gz") && !g.is_match("part-01.gz"));
        assert!(object_glob("a[bc").is_err() && object_glob("{a,b").is_err());
    }
}
