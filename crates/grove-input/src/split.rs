//! One unit of input work ([`InputSplit`]): a file, an object, a URI or inline data,
//! optionally a byte range of it, and how to open it as a stream of decompressed bytes.

use std::fmt;
use std::io::{BufRead, Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::common::{DataFusionError, Result};

use crate::format::ReadEnv;
use crate::remote::{self, CloudObject, HttpObject};

/// Where a split's bytes are.
#[derive(Clone, Debug)]
pub enum Location {
    /// Inline data.
    Inline(Arc<str>),
    /// A local file.
    File(PathBuf),
    /// An HTTP(S) URI.
    Http(Arc<HttpObject>),
    /// An object in a cloud object store.
    Object(Arc<CloudObject>),
}

/// Compression of a split, from its name's extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Plain bytes.
    None,
    /// `.gz` (concatenated members allowed).
    Gzip,
    /// `.bz2`.
    Bzip2,
    /// `.xz`.
    Xz,
    /// `.zst`.
    Zstd,
    /// `.sz` / `.snappy` (Snappy framing format).
    Snappy,
}

impl Compression {
    /// The compression a file name's extension implies.
    pub fn from_name(name: &str) -> Result<Self> {
        let ext = name
            .rsplit_once('.')
            .map(|(_, e)| e.to_ascii_lowercase())
            .unwrap_or_default();
        Ok(match ext.as_str() {
            "gz" => Self::Gzip,
            "bz2" => Self::Bzip2,
            "xz" => Self::Xz,
            "zst" => Self::Zstd,
            "sz" | "snappy" => Self::Snappy,
            "zip" => {
                return Err(DataFusionError::NotImplemented(format!(
                    "Input [{name}]: .zip archives are not supported by Grove; supported \
                     compressions are .gz, .bz2, .xz, .zst, .sz and .snappy"
                )));
            }
            _ => Self::None,
        })
    }

    fn wrap(self, raw: Box<dyn Read + Send>) -> Result<Box<dyn Read + Send>> {
        Ok(match self {
            Self::None => raw,
            Self::Gzip => Box::new(flate2::read::MultiGzDecoder::new(raw)),
            Self::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(raw)),
            Self::Xz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(raw)),
            Self::Zstd => Box::new(
                zstd::stream::read::Decoder::new(raw)
                    .map_err(|e| DataFusionError::Execution(format!("zstd: {e}")))?,
            ),
            Self::Snappy => Box::new(snap::read::FrameDecoder::new(raw)),
        })
    }
}

/// One unit of input work: a whole file, object or URI, a byte range of one, or inline
/// data.
#[derive(Clone, Debug)]
pub struct InputSplit {
    /// Where the bytes are.
    pub location: Location,
    /// Size in bytes of the whole file or object, when known.
    pub size: Option<u64>,
    /// The byte range `[start, end)` this split covers; `None` for all of it. A range split
    /// owns the lines that *start* inside it.
    pub range: Option<(u64, u64)>,
}

/// The bytes after which a split is worth cutting into ranges.
pub const MIN_RANGE_BYTES: u64 = 16 << 20;

impl InputSplit {
    /// A split covering all of `location`.
    pub fn whole(location: Location, size: Option<u64>) -> Self {
        Self {
            location,
            size,
            range: None,
        }
    }

    /// Bytes this split covers, for spreading splits across workers (0 when unknown).
    pub fn weight(&self) -> u64 {
        match self.range {
            Some((s, e)) => e - s,
            None => self.size.unwrap_or(0),
        }
    }

    /// The file or object name (last path segment), used to detect compression.
    pub fn name(&self) -> String {
        match &self.location {
            Location::Inline(_) => String::new(),
            Location::File(p) => p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            Location::Http(h) => remote::uri_file_name(&h.url),
            Location::Object(o) => o.path.filename().unwrap_or_default().to_string(),
        }
    }

    /// Compression detected from the name.
    pub fn compression(&self) -> Result<Compression> {
        Compression::from_name(&self.name())
    }

    /// Cuts an uncompressed file or object of known size into ranges of about `target`
    /// bytes (never below [`MIN_RANGE_BYTES`]). Others come back whole.
    pub fn cut(self, target: u64) -> Vec<InputSplit> {
        let target = target.max(MIN_RANGE_BYTES);
        let cuttable = matches!(self.location, Location::File(_) | Location::Object(_))
            && self.range.is_none()
            && matches!(self.compression(), Ok(Compression::None));
        let size = self.size.unwrap_or(0);
        if !cuttable || size < 2 * target {
            return vec![self];
        }
        let pieces = size.div_ceil(target);
        let step = size.div_ceil(pieces);
        (0..pieces)
            .map(|i| InputSplit {
                location: self.location.clone(),
                size: self.size,
                range: Some((i * step, ((i + 1) * step).min(size))),
            })
            .collect()
    }

    /// Opens the raw (still compressed) bytes from `offset`, counting them in `bytes_read`.
    fn open_raw(&self, env: &ReadEnv, offset: u64) -> Result<Box<dyn Read + Send>> {
        let raw: Box<dyn Read + Send> = match &self.location {
            Location::Inline(data) => {
                let bytes = data.as_bytes();
                let from = usize::try_from(offset)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                Box::new(std::io::Cursor::new(bytes[from..].to_vec()))
            }
            Location::File(path) => {
                let mut file = std::fs::File::open(path).map_err(|e| {
                    DataFusionError::Execution(format!(
                        "Cannot open input file [{}]: {e}",
                        path.display()
                    ))
                })?;
                if offset > 0 {
                    file.seek(SeekFrom::Start(offset)).map_err(|e| {
                        DataFusionError::Execution(format!(
                            "Cannot seek in input file [{}]: {e}",
                            path.display()
                        ))
                    })?;
                }
                Box::new(file)
            }
            Location::Http(h) => remote::open_http(env, h)?,
            Location::Object(o) => remote::open_object(env, o, offset)?,
        };
        Ok(Box::new(CountingReader {
            inner: raw,
            count: Arc::clone(&env.bytes_read),
        }))
    }

    /// Opens the split as a buffered stream of decompressed bytes. A range split starts at
    /// its first whole line and ends with the line that crosses its end. Raw bytes read are
    /// added to `env.bytes_read`.
    pub fn open(&self, env: &ReadEnv) -> Result<Box<dyn BufRead + Send>> {
        let compression = self.compression()?;
        match self.range {
            None => {
                let raw = self.open_raw(env, 0)?;
                let reader = compression.wrap(raw)?;
                Ok(Box::new(std::io::BufReader::with_capacity(1 << 20, reader)))
            }
            Some((start, end)) => {
                // Start one byte early: if that byte ends a line, the first line is ours.
                let from = start.saturating_sub(1);
                let raw = self.open_raw(env, from)?;
                let mut reader = std::io::BufReader::with_capacity(1 << 20, raw);
                let mut pos = from;
                if start > 0 {
                    let mut skipped = Vec::new();
                    pos += reader
                        .read_until(b'\n', &mut skipped)
                        .map_err(|e| DataFusionError::Execution(format!("{self}: {e}")))?
                        as u64;
                }
                Ok(Box::new(LineRange {
                    inner: reader,
                    pos,
                    end,
                    at_line_start: true,
                }))
            }
        }
    }

    /// The split as a local file with random access (Parquet and ORC need one): a local
    /// uncompressed file is opened in place; anything else is streamed, decompressed, into
    /// an anonymous temporary file (gone when closed).
    pub fn open_file(&self, env: &ReadEnv) -> Result<std::fs::File> {
        if let Location::File(path) = &self.location
            && self.compression()? == Compression::None
        {
            let file = std::fs::File::open(path).map_err(|e| {
                DataFusionError::Execution(format!(
                    "Cannot open input file [{}]: {e}",
                    path.display()
                ))
            })?;
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            env.bytes_read.fetch_add(len, Ordering::Relaxed);
            return Ok(file);
        }
        let mut reader = self.open(env)?;
        let mut file = tempfile::tempfile().map_err(|e| {
            DataFusionError::Execution(format!("Cannot create a temporary file: {e}"))
        })?;
        std::io::copy(&mut reader, &mut file)
            .map_err(|e| DataFusionError::Execution(format!("Cannot read input [{self}]: {e}")))?;
        file.seek(SeekFrom::Start(0))
            .map_err(|e| DataFusionError::Execution(format!("Temporary file: {e}")))?;
        Ok(file)
    }
}

/// A reader that ends after the line crossing `end` (positions count raw bytes).
struct LineRange<R> {
    inner: R,
    pos: u64,
    end: u64,
    at_line_start: bool,
}

impl<R: BufRead> Read for LineRange<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for LineRange<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.pos >= self.end && self.at_line_start {
            return Ok(&[]);
        }
        let (pos, end) = (self.pos, self.end);
        let buf = self.inner.fill_buf()?;
        let n = if pos < end {
            buf.len()
                .min(usize::try_from(end - pos).unwrap_or(usize::MAX))
        } else {
            buf.iter()
                .position(|b| *b == b'\n')
                .map_or(buf.len(), |i| i + 1)
        };
        Ok(&buf[..n])
    }

    fn consume(&mut self, amt: usize) {
        if amt == 0 {
            return;
        }
        if let Ok(buf) = self.inner.fill_buf()
            && let Some(&last) = buf.get(amt - 1)
        {
            self.at_line_start = last == b'\n';
        }
        self.inner.consume(amt);
        self.pos += amt as u64;
    }
}

/// Counts bytes as they are read.
struct CountingReader<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl fmt::Display for InputSplit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Location::Inline(_) => f.write_str("inline data")?,
            Location::File(path) => write!(f, "{}", path.display())?,
            Location::Http(h) => f.write_str(&h.url)?,
            Location::Object(o) => f.write_str(&o.uri)?,
        }
        if let Some((s, e)) = self.range {
            write!(f, " (bytes {s}..{e})")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(split: &InputSplit) -> Vec<String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let reader = split.open(&ReadEnv::new(rt.handle().clone())).unwrap();
        reader.lines().map(|l| l.unwrap()).collect()
    }

    #[test]
    fn ranges_partition_lines_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.json");
        let mut text = String::new();
        for i in 0..1000 {
            text.push_str(&format!(
                "{{\"n\":{i},\"pad\":\"{}\"}}\n",
                "x".repeat(i % 37)
            ));
        }
        std::fs::write(&path, &text).unwrap();
        let size = text.len() as u64;
        for pieces in [1u64, 2, 3, 7, 64, 997] {
            let step = size.div_ceil(pieces);
            let mut all = Vec::new();
            for i in 0..pieces {
                let split = InputSplit {
                    location: Location::File(path.clone()),
                    size: Some(size),
                    range: Some((i * step, ((i + 1) * step).min(size))),
                };
                all.extend(lines_of(&split));
            }
            let expected: Vec<String> = text.lines().map(String::from).collect();
            assert_eq!(all, expected, "{pieces} pieces");
        }
    }

    #[test]
    fn cut_only_uncompressed_known_sizes() {
        let whole = InputSplit::whole(Location::File("/x/a.json".into()), Some(100 << 20));
        let parts = whole.clone().cut(30 << 20);
        assert_eq!(parts.len(), 4);
        assert_eq!(parts.iter().map(InputSplit::weight).sum::<u64>(), 100 << 20);
        let gz = InputSplit::whole(Location::File("/x/a.json.gz".into()), Some(100 << 20));
        assert_eq!(gz.cut(30 << 20).len(), 1);
        assert_eq!(whole.cut(80 << 20).len(), 1);
    }

    #[test]
    fn compression_by_extension() {
        assert_eq!(
            Compression::from_name("a.json.GZ").unwrap(),
            Compression::Gzip
        );
        assert_eq!(Compression::from_name("a.bz2").unwrap(), Compression::Bzip2);
        assert_eq!(Compression::from_name("a.xz").unwrap(), Compression::Xz);
        assert_eq!(Compression::from_name("a.zst").unwrap(), Compression::Zstd);
        assert_eq!(Compression::from_name("a.sz").unwrap(), Compression::Snappy);
        assert_eq!(
            Compression::from_name("a.snappy").unwrap(),
            Compression::Snappy
        );
        assert_eq!(Compression::from_name("a.json").unwrap(), Compression::None);
        assert!(Compression::from_name("a.zip").is_err());
    }
}
