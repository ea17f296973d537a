//! The byte stream under the tar reader: picks the decompressor, hashes the
//! uncompressed bytes into the diff_id and enforces the byte ceilings.
//!
//! Counting happens below the tar parser, so bytes the parser consumes on its own
//! (headers, PAX records, GNU long names, padding) are charged as well as file data.

use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;

use sha2::{Digest, Sha256};

use super::UnpackError;

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar stream.
    None,
    /// gzip, possibly several members.
    Gzip,
    /// zstd, possibly several frames.
    Zstd,
}

impl Compression {
    /// Maps an OCI or Docker layer media type to its compression, so callers holding a
    /// manifest need not rely on magic-byte sniffing.
    pub fn from_media_type(media_type: &str) -> Result<Self, UnpackError> {
        const OCI: &str = "application/vnd.oci.image.layer.v1.tar";
        const OCI_NONDIST: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar";
        const DOCKER: &str = "application/vnd.docker.image.rootfs.diff.tar";
        const DOCKER_FOREIGN: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar";
        for base in [OCI, OCI_NONDIST] {
            match media_type.strip_prefix(base) {
                Some("") => return Ok(Self::None),
                Some("+gzip") => return Ok(Self::Gzip),
                Some("+zstd") => return Ok(Self::Zstd),
                _ => {}
            }
        }
        for base in [DOCKER, DOCKER_FOREIGN] {
            match media_type.strip_prefix(base) {
                Some("") => return Ok(Self::None),
                Some(".gzip") => return Ok(Self::Gzip),
                _ => {}
            }
        }
        Err(UnpackError::UnsupportedMediaType(media_type.to_owned()))
    }

    /// Recognises gzip and zstd by their magic; anything else is taken for plain tar
    /// (the tar parser rejects it if it is not), except bzip2 and xz, which are named.
    fn sniff(magic: &[u8]) -> Result<Self, UnpackError> {
        if magic.starts_with(&[0x1f, 0x8b]) {
            Ok(Self::Gzip)
        } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Ok(Self::Zstd)
        } else if magic.starts_with(b"BZh") {
            Err(UnpackError::UnsupportedCompression("bzip2"))
        } else if magic.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Err(UnpackError::UnsupportedCompression("xz"))
        } else {
            Ok(Self::None)
        }
    }
}

/// Wraps `layer` in the decompressor `compression` names, or the one its magic bytes
/// name when `compression` is `None`.
pub(super) fn decompress<'a>(
    mut layer: impl Read + 'a,
    compression: Option<Compression>,
) -> Result<Box<dyn Read + 'a>, UnpackError> {
    let read_err = |source| UnpackError::Read {
        at: "at its start".to_owned(),
        source,
    };
    let mut magic = [0u8; 6];
    let mut filled = 0;
    while filled < magic.len() {
        match layer.read(&mut magic[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(read_err(e)),
        }
    }
    let head = io::Cursor::new(magic).take(filled as u64);
    let compression = match compression {
        Some(c) => c,
        None => Compression::sniff(&magic[..filled])?,
    };
    let whole = head.chain(layer);
    Ok(match compression {
        Compression::None => Box::new(whole),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(whole)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(whole).map_err(read_err)?),
    })
}

/// Shared between the apply loop and the [`MeteredReader`] buried inside the tar parser.
#[derive(Debug)]
pub(super) struct Meter {
    consumed: Cell<u64>,
    ceiling: Cell<u64>,
    tripped: Cell<bool>,
}

impl Meter {
    pub(super) fn new(ceiling: u64) -> Rc<Self> {
        Rc::new(Self {
            consumed: Cell::new(0),
            ceiling: Cell::new(ceiling),
            tripped: Cell::new(false),
        })
    }

    /// Uncompressed bytes read so far.
    pub(super) fn consumed(&self) -> u64 {
        self.consumed.get()
    }

    /// Reading past `ceiling` (absolute, in uncompressed bytes) fails from now on.
    pub(super) fn set_ceiling(&self, ceiling: u64) {
        self.ceiling.set(ceiling);
    }

    /// Whether a read failed because it hit the ceiling (rather than a real I/O error).
    pub(super) fn tripped(&self) -> bool {
        self.tripped.get()
    }
}

/// Counts and hashes every uncompressed byte, and refuses to read past the ceiling.
pub(super) struct MeteredReader<R> {
    inner: R,
    hasher: Sha256,
    meter: Rc<Meter>,
}

impl<R: Read> MeteredReader<R> {
    pub(super) fn new(inner: R, meter: Rc<Meter>) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            meter,
        }
    }

    /// Reads the rest of the stream (trailing zero blocks and padding belong to the
    /// diff_id too) and returns `"sha256:<hex>"`.
    pub(super) fn finish(mut self) -> io::Result<String> {
        io::copy(&mut self, &mut io::sink())?;
        let digest = self.hasher.finalize();
        let mut out = String::with_capacity(7 + 64);
        out.push_str("sha256:");
        for byte in digest {
            out.push_str(&format!("{byte:02x}"));
        }
        Ok(out)
    }
}

impl<R: Read> Read for MeteredReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let meter = &self.meter;
        let room = meter.ceiling.get().saturating_sub(meter.consumed.get());
        let n = if room == 0 {
            // At the ceiling only a clean end of stream is acceptable.
            let mut probe = [0u8; 1];
            if buf.is_empty() || self.inner.read(&mut probe)? == 0 {
                return Ok(0);
            }
            meter.tripped.set(true);
            return Err(io::Error::other("layer stream exceeds its byte ceiling"));
        } else {
            let len = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
            self.inner.read(&mut buf[..len])?
        };
        self.hasher.update(&buf[..n]);
        meter.consumed.set(meter.consumed.get() + n as u64);
        Ok(n)
    }
}
