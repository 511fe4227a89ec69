//! A strict reader for the MessagePack that rmp-serde writes for nucypher-core's messages.
//!
//! It hands out the raw bytes of nested values (capsules, kfrags) instead of decoding them, so
//! that the umbral objects can be parsed by the strict codec of `umbrald-core` and signed
//! messages can be rebuilt from exactly the bytes that were received.

use crate::NucypherError;

/// Deepest nesting [`Reader::value`] follows (nucypher-core's messages need 3).
const MAX_DEPTH: usize = 16;

/// A cursor over one MessagePack document.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], NucypherError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| malformed(field, "truncated"))?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn byte(&mut self, field: &'static str) -> Result<u8, NucypherError> {
        Ok(self.take(1, field)?[0])
    }

    fn uint(&mut self, width: usize, field: &'static str) -> Result<usize, NucypherError> {
        let raw = self.take(width, field)?;
        let value = raw.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        usize::try_from(value).map_err(|_| malformed(field, "length does not fit in memory"))
    }

    /// Reads an array header and returns the element count.
    pub(crate) fn array_len(&mut self, field: &'static str) -> Result<usize, NucypherError> {
        let marker = self.byte(field)?;
        let len = match marker {
            0x90..=0x9f => usize::from(marker & 0x0f),
            0xdc => self.uint(2, field)?,
            0xdd => self.uint(4, field)?,
            other => return Err(wrong_type(field, "an array", other)),
        };
        // Every element takes at least one byte: reject impossible counts before allocating.
        if len > self.bytes.len() - self.pos {
            return Err(malformed(field, "array longer than the message"));
        }
        Ok(len)
    }

    /// Reads an array header with exactly `len` elements.
    pub(crate) fn array_exact(
        &mut self,
        field: &'static str,
        len: usize,
    ) -> Result<(), NucypherError> {
        let got = self.array_len(field)?;
        if got != len {
            return Err(malformed(
                field,
                format!("array of {got} elements, expected {len}"),
            ));
        }
        Ok(())
    }

    /// Reads a byte string (`bin8/16/32`).
    pub(crate) fn bin(&mut self, field: &'static str) -> Result<&'a [u8], NucypherError> {
        let marker = self.byte(field)?;
        let len = match marker {
            0xc4 => self.uint(1, field)?,
            0xc5 => self.uint(2, field)?,
            0xc6 => self.uint(4, field)?,
            other => return Err(wrong_type(field, "a byte string", other)),
        };
        self.take(len, field)
    }

    /// Reads a byte string of exactly `N` bytes.
    pub(crate) fn bin_exact<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<[u8; N], NucypherError> {
        let bytes = self.bin(field)?;
        bytes
            .try_into()
            .map_err(|_| malformed(field, format!("{} bytes, expected {N}", bytes.len())))
    }

    /// Reads `nil` (as `None`) or a UTF-8 string.
    pub(crate) fn opt_str(
        &mut self,
        field: &'static str,
    ) -> Result<Option<&'a str>, NucypherError> {
        let marker = self.byte(field)?;
        let len = match marker {
            0xc0 => return Ok(None),
            0xa0..=0xbf => usize::from(marker & 0x1f),
            0xd9 => self.uint(1, field)?,
            0xda => self.uint(2, field)?,
            0xdb => self.uint(4, field)?,
            other => return Err(wrong_type(field, "nil or a string", other)),
        };
        let raw = self.take(len, field)?;
        std::str::from_utf8(raw)
            .map(Some)
            .map_err(|_| malformed(field, "string is not UTF-8"))
    }

    /// Skips one complete value of any type and returns its raw bytes.
    pub(crate) fn value(&mut self, field: &'static str) -> Result<&'a [u8], NucypherError> {
        let start = self.pos;
        self.skip(field, 0)?;
        Ok(&self.bytes[start..self.pos])
    }

    fn skip(&mut self, field: &'static str, depth: usize) -> Result<(), NucypherError> {
        if depth > MAX_DEPTH {
            return Err(malformed(field, "nested too deeply"));
        }
        let marker = self.byte(field)?;
        let (skip_bytes, children) = match marker {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (0, 0),
            0x80..=0x8f => (0, 2 * usize::from(marker & 0x0f)),
            0x90..=0x9f => (0, usize::from(marker & 0x0f)),
            0xa0..=0xbf => (usize::from(marker & 0x1f), 0),
            0xc4 | 0xd9 => (self.uint(1, field)?, 0),
            0xc5 | 0xda => (self.uint(2, field)?, 0),
            0xc6 | 0xdb => (self.uint(4, field)?, 0),
            0xcc | 0xd0 => (1, 0),
            0xcd | 0xd1 => (2, 0),
            0xce | 0xd2 | 0xca => (4, 0),
            0xcf | 0xd3 | 0xcb => (8, 0),
            0xdc => (0, self.uint(2, field)?),
            0xdd => (0, self.uint(4, field)?),
            0xde => (0, 2 * self.uint(2, field)?),
            0xdf => (0, 2 * self.uint(4, field)?),
            other => return Err(wrong_type(field, "a MessagePack value", other)),
        };
        self.take(skip_bytes, field)?;
        if children > self.bytes.len() - self.pos {
            return Err(malformed(field, "container longer than the message"));
        }
        for _ in 0..children {
            self.skip(field, depth + 1)?;
        }
        Ok(())
    }

    /// Fails unless every byte was read.
    pub(crate) fn finish(&self, what: &'static str) -> Result<(), NucypherError> {
        let extra = self.bytes.len() - self.pos;
        if extra != 0 {
            return Err(malformed(what, format!("{extra} trailing bytes")));
        }
        Ok(())
    }
}

/// Appends a MessagePack array header for `len` elements.
pub(crate) fn write_array_len(out: &mut Vec<u8>, len: usize) {
    if len < 16 {
        out.push(0x90 | len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        out.push(0xdc);
        out.extend_from_slice(&len.to_be_bytes());
    } else {
        out.push(0xdd);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
}

/// Appends a MessagePack `bin` of `bytes` (at most 255 bytes here).
pub(crate) fn write_bin8(out: &mut Vec<u8>, bytes: &[u8]) {
    debug_assert!(bytes.len() <= 255);
    out.push(0xc4);
    out.push(bytes.len() as u8);
    out.extend_from_slice(bytes);
}

pub(crate) fn malformed(field: &'static str, detail: impl Into<String>) -> NucypherError {
    NucypherError::Malformed {
        field,
        detail: detail.into(),
    }
}

fn wrong_type(field: &'static str, expected: &str, marker: u8) -> NucypherError {
    malformed(
        field,
        format!("expected {expected}, found marker 0x{marker:02x}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_nested_values_and_reports_truncation() {
        // [1, "ab", {"k": nil}, bin(2)]
        let doc = [
            0x94, 0x01, 0xa2, b'a', b'b', 0x81, 0xa1, b'k', 0xc0, 0xc4, 0x02, 9, 9,
        ];
        let mut r = Reader::new(&doc);
        assert_eq!(r.value("x").expect("value"), &doc[..]);
        r.finish("doc").expect("all read");
        let mut r = Reader::new(&doc[..doc.len() - 1]);
        assert!(matches!(r.value("x"), Err(NucypherError::Malformed { .. })));
    }

    #[test]
    fn huge_declared_lengths_do_not_allocate_or_panic() {
        let doc = [0xdd, 0xff, 0xff, 0xff, 0xff];
        assert!(Reader::new(&doc).array_len("a").is_err());
        assert!(Reader::new(&doc).value("a").is_err());
        let doc = [0xc6, 0xff, 0xff, 0xff, 0xff, 0];
        assert!(Reader::new(&doc).bin("b").is_err());
        let deep = vec![0x91; 100];
        assert!(Reader::new(&deep).value("d").is_err());
    }

    #[test]
    fn array_headers_round_trip() {
        for len in [0usize, 15, 16, 65_535, 65_536] {
            let mut out = Vec::new();
            write_array_len(&mut out, len);
            out.resize(out.len() + len, 0xc0);
            assert_eq!(Reader::new(&out).array_len("a").expect("len"), len);
        }
    }
}
