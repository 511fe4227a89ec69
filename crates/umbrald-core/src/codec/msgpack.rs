//! The few MessagePack shapes umbral-pre 0.11 writes (fixarray, bin8, bool), read strictly.
//!
//! umbral-pre serializes its objects with rmp-serde: structs as fixed-length arrays and byte
//! strings as `bin8`. Decoding accepts exactly that canonical encoding; anything else is a
//! typed [`CodecError`], never a panic.

use super::CodecError;

/// A cursor over an encoded object. `what` names the object in errors.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(what: &'static str, bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            offset: 0,
            what,
        }
    }

    fn next_byte(&mut self, field: &'static str) -> Result<u8, CodecError> {
        let byte = *self.bytes.get(self.offset).ok_or(CodecError::Truncated {
            what: self.what,
            field,
        })?;
        self.offset += 1;
        Ok(byte)
    }

    /// Reads a fixarray header with exactly `len` elements.
    pub(crate) fn array(&mut self, field: &'static str, len: u8) -> Result<(), CodecError> {
        let at = self.offset;
        let marker = self.next_byte(field)?;
        if marker & 0xf0 != 0x90 {
            return Err(self.wrong_type(field, at, "array", marker));
        }
        let got = marker & 0x0f;
        if got != len {
            return Err(CodecError::ArrayLength {
                what: self.what,
                field,
                expected: len,
                got,
            });
        }
        Ok(())
    }

    /// Reads a `bin8` byte string of any length.
    pub(crate) fn bin(&mut self, field: &'static str) -> Result<&'a [u8], CodecError> {
        let at = self.offset;
        let marker = self.next_byte(field)?;
        if marker != 0xc4 {
            return Err(self.wrong_type(field, at, "bin8", marker));
        }
        let len = self.next_byte(field)? as usize;
        let end = self.offset + len;
        let out = self
            .bytes
            .get(self.offset..end)
            .ok_or(CodecError::Truncated {
                what: self.what,
                field,
            })?;
        self.offset = end;
        Ok(out)
    }

    /// Reads a `bin8` byte string of exactly `N` bytes.
    pub(crate) fn bin_exact<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<&'a [u8; N], CodecError> {
        let bytes = self.bin(field)?;
        bytes.try_into().map_err(|_| CodecError::FieldLength {
            what: self.what,
            field,
            expected: N,
            got: bytes.len(),
        })
    }

    /// Reads a MessagePack boolean.
    pub(crate) fn boolean(&mut self, field: &'static str) -> Result<bool, CodecError> {
        let at = self.offset;
        match self.next_byte(field)? {
            0xc2 => Ok(false),
            0xc3 => Ok(true),
            other => Err(self.wrong_type(field, at, "bool", other)),
        }
    }

    /// Fails unless every byte was consumed.
    pub(crate) fn finish(self) -> Result<(), CodecError> {
        let extra = self.bytes.len() - self.offset;
        if extra != 0 {
            return Err(CodecError::TrailingBytes {
                what: self.what,
                extra,
            });
        }
        Ok(())
    }

    fn wrong_type(
        &self,
        field: &'static str,
        offset: usize,
        expected: &'static str,
        found: u8,
    ) -> CodecError {
        CodecError::WrongType {
            what: self.what,
            field,
            offset,
            expected,
            found,
        }
    }
}

/// Appends MessagePack encodings to a fixed-size output buffer.
pub(crate) struct Writer<'a> {
    out: &'a mut [u8],
    offset: usize,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(out: &'a mut [u8]) -> Self {
        Self { out, offset: 0 }
    }

    pub(crate) fn array(&mut self, len: u8) {
        self.raw(&[0x90 | len]);
    }

    pub(crate) fn bin(&mut self, bytes: &[u8]) {
        self.raw(&[0xc4, bytes.len() as u8]);
        self.raw(bytes);
    }

    pub(crate) fn boolean(&mut self, value: bool) {
        self.raw(&[if value { 0xc3 } else { 0xc2 }]);
    }

    fn raw(&mut self, bytes: &[u8]) {
        self.out[self.offset..self.offset + bytes.len()].copy_from_slice(bytes);
        self.offset += bytes.len();
    }

    /// Bytes written so far (equals the buffer size for a complete object).
    pub(crate) fn written(&self) -> usize {
        self.offset
    }
}
