//! Big-endian reading and writing of the message's primitive fields.
//!
//! All reads go through [`Reader`], which checks bounds before touching the input, so no
//! input can make the parser index out of range or allocate more than the input's size.

use crate::error::{Error, Field};

/// A bounds-checked cursor over an input slice.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// When set, the slice is a length-delimited region inside a larger message (the
    /// encryption context). Running past its end then means that the region's length field
    /// is wrong, not that the message is cut short.
    region: Option<&'static str>,
}

impl<'a> Reader<'a> {
    /// A reader over a whole message: running out of bytes is [`Error::Truncated`].
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader {
            buf,
            pos: 0,
            region: None,
        }
    }

    /// A reader over a length-delimited region: running out of bytes is
    /// [`Error::Malformed`] with `reason`, reported on the field being read.
    pub(crate) fn region(buf: &'a [u8], reason: &'static str) -> Self {
        Reader {
            buf,
            pos: 0,
            region: Some(reason),
        }
    }

    fn short(&self, field: Field) -> Error {
        match self.region {
            None => Error::Truncated { field },
            Some(reason) => Error::Malformed { field, reason },
        }
    }

    /// Bytes consumed so far.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// Bytes not yet consumed.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Takes the next `n` bytes.
    pub(crate) fn take(&mut self, n: usize, field: Field) -> Result<&'a [u8], Error> {
        let end = self.pos.checked_add(n).ok_or_else(|| self.short(field))?;
        let bytes = self
            .buf
            .get(self.pos..end)
            .ok_or_else(|| self.short(field))?;
        self.pos = end;
        Ok(bytes)
    }

    /// Takes the next `N` bytes as an array.
    pub(crate) fn array<const N: usize>(&mut self, field: Field) -> Result<[u8; N], Error> {
        let bytes = self.take(N, field)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, field: Field) -> Result<u8, Error> {
        Ok(u8::from_be_bytes(self.array(field)?))
    }

    pub(crate) fn u16(&mut self, field: Field) -> Result<u16, Error> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    pub(crate) fn u32(&mut self, field: Field) -> Result<u32, Error> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    pub(crate) fn u64(&mut self, field: Field) -> Result<u64, Error> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    /// Takes a u16 length (reported as `len_field`) and then that many bytes (`field`).
    pub(crate) fn u16_prefixed(
        &mut self,
        len_field: Field,
        field: Field,
    ) -> Result<&'a [u8], Error> {
        let len = self.u16(len_field)?;
        self.take(usize::from(len), field)
    }
}

/// Appends `bytes` preceded by their length as a big-endian u16; `None` if too long.
pub(crate) fn put_u16_prefixed(out: &mut Vec<u8>, bytes: &[u8]) -> Option<()> {
    let len = u16::try_from(bytes.len()).ok()?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_big_endian_and_stops_at_the_end() {
        let mut r = Reader::new(&[0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07]);
        assert_eq!(r.u8(Field::Version), Ok(1));
        assert_eq!(r.u16(Field::SuiteId), Ok(0x0203));
        assert_eq!(r.u32(Field::FrameLength), Ok(0x0405_0607));
        assert_eq!(r.remaining(), 0);
        assert_eq!(
            r.u8(Field::ContentType),
            Err(Error::Truncated {
                field: Field::ContentType
            })
        );
        // A failed read consumes nothing.
        assert_eq!(r.position(), 7);
    }

    #[test]
    fn huge_take_is_an_error_not_a_panic() {
        let mut r = Reader::new(&[0u8; 4]);
        assert!(r.take(usize::MAX, Field::FrameContent).is_err());
        assert_eq!(r.take(4, Field::FrameContent).map(<[u8]>::len), Ok(4));
    }

    #[test]
    fn region_overrun_is_malformed() {
        let mut r = Reader::region(&[0x00, 0x05, b'a'], "overruns");
        assert_eq!(
            r.u16_prefixed(Field::ContextKeyLength, Field::ContextKey),
            Err(Error::Malformed {
                field: Field::ContextKey,
                reason: "overruns"
            })
        );
    }

    #[test]
    fn put_u16_prefixed_rejects_long_input() {
        let mut out = Vec::new();
        assert_eq!(put_u16_prefixed(&mut out, b"ab"), Some(()));
        assert_eq!(out, [0, 2, b'a', b'b']);
        assert_eq!(put_u16_prefixed(&mut out, &vec![0u8; 65_536]), None);
    }
}
