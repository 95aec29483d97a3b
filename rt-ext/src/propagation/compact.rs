//! The compact form: a two-byte header, the entry count, then per entry its
//! name, wire version and value, each length-prefixed, values in postcard.
//!
//! ```text
//! input   = MAGIC FORMAT count:varint entry*
//! entry   = name_len:varint name version:varint value_len:varint value
//! ```
//!
//! Lengths are checked against what is left of the input before anything is
//! sliced, and nothing is allocated from a declared length: a value is
//! decoded from its slice of the input, which the size limit bounds, and
//! the lengths inside a value are kept to what its bytes can hold (see
//! `bounded`).

use spawn_hooks::Snapshot;

use super::codec::{Codec, Payload, MAX_NAME_LEN};
use super::report::{DecodeError, Decoded, SkipReason, Skipped};

const MAGIC: u8 = 0xC7;
const FORMAT: u8 = 1;

impl Codec {
    /// The compact encoding of the codec's variables that are bound in
    /// `snapshot`. A value that fails to serialize, or that would take the
    /// output over [`max_bytes`](Codec::max_bytes) or
    /// [`max_entries`](Codec::max_entries), is left out.
    ///
    /// # Examples
    ///
    /// ```
    /// use rt_ext::{self as ctx, propagation::Codec};
    /// static ID: ctx::Variable<u64> = ctx::Variable::new("id");
    /// let codec = Codec::builder().var(&ID).build().unwrap();
    /// let bytes = codec.encode(&ctx::Snapshot::empty().with(&ID, 300));
    /// assert_eq!(bytes.len(), 10);
    /// assert_eq!(codec.decode(&bytes).unwrap().get(&ID), Some(300));
    /// ```
    pub fn encode(&self, snapshot: &Snapshot) -> Vec<u8> {
        let max_bytes = self.inner.max_bytes;
        let mut body = Vec::new();
        let mut count = 0u64;
        for entry in &self.inner.entries {
            if count as usize >= self.inner.max_entries {
                break;
            }
            let Some(value) = entry.to_bytes(snapshot) else {
                continue;
            };
            let start = body.len();
            let name = entry.name().as_bytes();
            put_varint(&mut body, name.len() as u64);
            body.extend_from_slice(name);
            put_varint(&mut body, u64::from(entry.version()));
            put_varint(&mut body, value.len() as u64);
            body.extend_from_slice(&value);
            // header + count's varint (at most 10 bytes) + body
            if 2 + varint_len(count + 1) + body.len() > max_bytes {
                body.truncate(start);
                continue;
            }
            count += 1;
        }
        let mut out = Vec::with_capacity(2 + varint_len(count) + body.len());
        out.push(MAGIC);
        out.push(FORMAT);
        put_varint(&mut out, count);
        out.extend_from_slice(&body);
        out
    }

    /// Decodes a context from the compact form; an empty input is an empty
    /// context. Entries that cannot be decoded are skipped (see
    /// [`decode_onto`](Codec::decode_onto) for the report).
    ///
    /// # Errors
    ///
    /// [`DecodeError`] if the input is over the size limit, declares more
    /// entries than the limit, or does not start with the format's header.
    ///
    /// # Examples
    ///
    /// ```
    /// use rt_ext::{self as ctx, propagation::{Codec, DecodeError}};
    /// static ID: ctx::Variable<u64> = ctx::Variable::new("id");
    /// let codec = Codec::builder().var(&ID).build().unwrap();
    /// let bytes = codec.encode(&ctx::Snapshot::empty().with(&ID, 1));
    /// assert_eq!(codec.decode(&bytes).unwrap().get(&ID), Some(1));
    /// assert_eq!(codec.decode(b"{\"id\":1}").unwrap_err(), DecodeError::BadHeader);
    /// ```
    pub fn decode(&self, bytes: &[u8]) -> Result<Snapshot, DecodeError> {
        self.decode_onto(&Snapshot::empty(), bytes)
            .map(|decoded| decoded.snapshot)
    }

    /// Decodes the compact form onto `base` (a received value replaces the
    /// base's), and reports each skipped entry: unknown, corrupt, of the
    /// wrong type or an unreadable version. A damaged entry never fails the
    /// entries that are fine; where the framing itself is cut or corrupt,
    /// the entries before it are kept and the rest is reported as
    /// [`SkipReason::Malformed`].
    ///
    /// # Errors
    ///
    /// As [`decode`](Codec::decode).
    ///
    /// # Examples
    ///
    /// ```
    /// use rt_ext::{self as ctx, propagation::{Codec, SkipReason}};
    /// static ID: ctx::Variable<u64> = ctx::Variable::new("id");
    /// static NAME: ctx::Variable<String> = ctx::Variable::new("name");
    /// let codec = Codec::builder().var(&ID).var(&NAME).build().unwrap();
    /// let mut bytes = codec.encode(&ctx::Snapshot::empty().with(&ID, 1).with(&NAME, "n".into()));
    /// bytes.truncate(bytes.len() - 1); // cut inside the second entry
    /// let decoded = codec.decode_onto(&ctx::Snapshot::empty(), &bytes).unwrap();
    /// assert_eq!(decoded.snapshot().get(&ID), Some(1));
    /// assert!(matches!(decoded.skipped()[0].reason(), SkipReason::Malformed(_)));
    /// ```
    pub fn decode_onto(&self, base: &Snapshot, bytes: &[u8]) -> Result<Decoded, DecodeError> {
        let max = self.inner.max_bytes;
        if bytes.len() > max {
            return Err(DecodeError::TooLarge {
                len: bytes.len(),
                max,
            });
        }
        let mut decoded = Decoded {
            snapshot: base.clone(),
            skipped: Vec::new(),
        };
        if bytes.is_empty() {
            return Ok(decoded);
        }
        let mut input = Reader { rest: bytes };
        if input.take(2) != Some(&[MAGIC, FORMAT][..]) {
            return Err(DecodeError::BadHeader);
        }
        let count = input.varint().ok_or(DecodeError::BadHeader)?;
        if count > self.inner.max_entries as u64 {
            return Err(DecodeError::TooManyEntries {
                max: self.inner.max_entries,
            });
        }
        // Which of the codec's variables were decoded: a later entry of one
        // is skipped, but an entry that failed does not hide a good one.
        let mut seen = vec![false; self.inner.entries.len()];
        for _ in 0..count {
            let (name, version, value) = match input.entry() {
                Ok(entry) => entry,
                Err((name, what)) => {
                    decoded.skipped.push(Skipped {
                        name,
                        reason: SkipReason::Malformed(what),
                    });
                    return Ok(decoded);
                }
            };
            let mut skip = |reason| {
                decoded.skipped.push(Skipped {
                    name: Some(name.to_owned()),
                    reason,
                })
            };
            let Some((index, var)) = self.lookup(name) else {
                skip(SkipReason::Unknown);
                continue;
            };
            if seen[index] {
                skip(SkipReason::Duplicate);
                continue;
            }
            let Ok(version) = u32::try_from(version) else {
                skip(SkipReason::Version {
                    found: u32::MAX,
                    current: var.version(),
                });
                continue;
            };
            match var.decode(&decoded.snapshot, version, Payload::Bytes(value)) {
                Ok(snapshot) => {
                    decoded.snapshot = snapshot;
                    seen[index] = true;
                }
                Err(reason) => skip(reason),
            }
        }
        if !input.rest.is_empty() {
            decoded.skipped.push(Skipped {
                name: None,
                reason: SkipReason::Malformed("bytes after the last entry"),
            });
        }
        Ok(decoded)
    }
}

/// Reads the compact form, never past the end and never panicking.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.rest.len() {
            return None;
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Some(head)
    }

    /// A LEB128 varint of at most 10 bytes that fits in a u64.
    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for i in 0..10 {
            let byte = *self.take(1)?.first()?;
            let bits = u64::from(byte & 0x7f);
            if i == 9 && bits > 1 {
                return None;
            }
            value |= bits << (7 * i);
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    /// A length that must fit in what is left of the input.
    fn len(&mut self) -> Option<usize> {
        let len = self.varint()?;
        usize::try_from(len)
            .ok()
            .filter(|&len| len <= self.rest.len())
    }

    #[allow(clippy::type_complexity)]
    fn entry(&mut self) -> Result<(&'a str, u64, &'a [u8]), (Option<String>, &'static str)> {
        let name_len = self
            .len()
            .ok_or((None, "an entry's name length is cut or runs past the end"))?;
        if name_len > MAX_NAME_LEN {
            return Err((None, "an entry's name is over 256 bytes"));
        }
        let name = self
            .take(name_len)
            .ok_or((None, "an entry's name is cut"))?;
        let name = std::str::from_utf8(name).map_err(|_| (None, "an entry's name is not UTF-8"))?;
        let named = |what| (Some(name.to_owned()), what);
        let version = self
            .varint()
            .ok_or(named("the entry's version is cut or overlong"))?;
        let value_len = self.len().ok_or(named(
            "the entry's value length is cut or runs past the end",
        ))?;
        let value = self
            .take(value_len)
            .ok_or(named("the entry's value is cut"))?;
        Ok((name, version, value))
    }
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn varint_len(value: u64) -> usize {
    let bits = 64 - value.leading_zeros() as usize;
    bits.div_ceil(7).max(1)
}
