//! Druid input sources (`inputSource` JSON of EXTERN) and the splits they produce.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::common::{DataFusionError, Result, plan_err};
use serde::{Deserialize, Serialize};

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
}

/// Input source types Druid has that Grove does not read yet.
const KNOWN_UNSUPPORTED: &[&str] = &[
    "http",
    "s3",
    "google",
    "azure",
    "azureStorage",
    "hdfs",
    "druid",
    "combining",
    "iceberg",
    "delta",
    "sql",
];

impl InputSource {
    /// Parses the `inputSource` JSON, with clear errors for unsupported types.
    pub fn from_json(text: &str) -> Result<Self> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            DataFusionError::Plan(format!("Invalid inputSource JSON [{text}]: {e}"))
        })?;
        let type_name = value.get("type").and_then(|t| t.as_str()).unwrap_or("");
        if KNOWN_UNSUPPORTED.contains(&type_name) {
            return Err(DataFusionError::NotImplemented(format!(
                "inputSource type [{type_name}] is not supported by Grove yet; supported: inline, local"
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
        }
    }

    /// Druid's type name.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Inline { .. } => "inline",
            Self::Local { .. } => "local",
        }
    }

    /// Lists the splits (one per file; inline data is one split). Empty files are skipped,
    /// as Druid does.
    pub fn splits(&self) -> Result<Vec<InputSplit>> {
        match self {
            Self::Inline { data } => Ok(vec![InputSplit::Inline(Arc::from(data.as_str()))]),
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
                        splits.push(InputSplit::File {
                            path,
                            size: meta.len(),
                        });
                    }
                }
                Ok(splits)
            }
        }
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

/// Compression of one split, from its file name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Plain bytes.
    None,
    /// `.gz`.
    Gzip,
}

/// One unit of input work: a file or an inline payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InputSplit {
    /// Inline data.
    Inline(Arc<str>),
    /// A local file.
    File {
        /// Where.
        path: PathBuf,
        /// Size in bytes.
        size: u64,
    },
}

impl InputSplit {
    /// Size in bytes (for spreading splits across workers).
    pub fn size(&self) -> u64 {
        match self {
            Self::Inline(data) => data.len() as u64,
            Self::File { size, .. } => *size,
        }
    }

    /// Compression detected from the file extension.
    pub fn compression(&self) -> Compression {
        match self {
            Self::File { path, .. }
                if path
                    .extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("gz")) =>
            {
                Compression::Gzip
            }
            _ => Compression::None,
        }
    }

    /// Opens the split for reading, decompressing as needed. Raw (compressed) bytes read
    /// are added to `bytes_read`.
    pub fn open(&self, bytes_read: Arc<AtomicU64>) -> Result<Box<dyn std::io::BufRead + Send>> {
        let raw: Box<dyn std::io::Read + Send> = match self {
            Self::Inline(data) => Box::new(std::io::Cursor::new(data.as_bytes().to_vec())),
            Self::File { path, .. } => Box::new(std::fs::File::open(path).map_err(|e| {
                DataFusionError::Execution(format!(
                    "Cannot open input file [{}]: {e}",
                    path.display()
                ))
            })?),
        };
        let raw: Box<dyn std::io::Read + Send> = Box::new(CountingReader {
            inner: raw,
            count: bytes_read,
        });
        let reader: Box<dyn std::io::Read + Send> = match self.compression() {
            Compression::None => raw,
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(raw)),
        };
        Ok(Box::new(std::io::BufReader::with_capacity(1 << 20, reader)))
    }
}

/// Counts bytes as they are read.
struct CountingReader<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: std::io::Read> std::io::Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl fmt::Display for InputSplit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Inline(_) => f.write_str("inline data"),
            Self::File { path, .. } => write!(f, "{}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sources() {
        let s = InputSource::from_json(r#"{"type":"inline","data":"a\nb"}"#).unwrap();
        assert_eq!(s.type_name(), "inline");
        let e = InputSource::from_json(r#"{"type":"http","uris":["http://x"]}"#).unwrap_err();
        assert!(
            e.to_string()
                .contains("inputSource type [http] is not supported")
        );
        let e = InputSource::from_json(r#"{"type":"local"}"#).unwrap_err();
        assert!(
            e.to_string()
                .contains("at least one of [baseDir] and [files]")
        );
        let e = InputSource::from_json("not json").unwrap_err();
        assert!(e.to_string().contains("Invalid inputSource JSON"));
    }

    #[test]
    fn lists_base_dir_with_filter_and_skips_empty_files() {
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
        let splits = src.splits().unwrap();
        assert_eq!(splits.len(), 2);
        let missing = InputSource::Local {
            base_dir: None,
            filter: None,
            files: vec!["/nonexistent/x.json".into()],
        };
        assert!(
            missing
                .splits()
                .unwrap_err()
                .to_string()
                .contains("/nonexistent/x.json")
        );
    }
}
