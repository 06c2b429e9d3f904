//! [`FrameCodec`]: tokio-util `Decoder`/`Encoder` for [`Frame`]s.
//!
//! The decoder validates the header as soon as [`HEADER_LEN`] bytes are
//! buffered, so an oversized `body_len` is rejected before any body byte
//! arrives, and checks the CRC-32C once the body is complete. On error the
//! buffer is left untouched, so the caller can still read the offending
//! header (see [`peek_correlation_id`]). A stream that produced an error
//! cannot be resynchronised and must be closed.

use bytes::{Buf, BufMut, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::frame::{flags_valid, Frame, DEFAULT_MAX_BODY_LEN, HEADER_LEN, MAGIC, VERSION};

/// Why a byte stream is not a valid sequence of frames.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The first two bytes are not "HT".
    #[error("bad magic bytes {0:02x?}, expected \"HT\" (48 54)")]
    BadMagic([u8; 2]),
    /// Unsupported protocol version.
    #[error("unsupported protocol version {0}, expected 1")]
    BadVersion(u8),
    /// Undefined flag bits are set.
    #[error("undefined flag bits set: {0:#04x}")]
    BadFlags(u8),
    /// The reserved header field is not zero.
    #[error("reserved header field must be 0, got {0:#06x}")]
    NonZeroReserved(u16),
    /// `body_len` is above the configured maximum.
    #[error("body_len {len} exceeds the maximum of {max} bytes")]
    BodyTooLarge {
        /// Length announced (or, when encoding, requested).
        len: u32,
        /// Configured maximum.
        max: usize,
    },
    /// The body's CRC-32C does not match the header.
    #[error("CRC-32C mismatch: header says {expected:#010x}, body has {actual:#010x}")]
    BadCrc {
        /// CRC carried in the header.
        expected: u32,
        /// CRC computed over the received body.
        actual: u32,
    },
    /// I/O error of the underlying transport.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// Header fields, parsed but not yet validated against the body.
#[derive(Debug, Clone, Copy)]
struct Header {
    flags: u8,
    msg_type: u16,
    correlation_id: u64,
    body_len: u32,
    crc: u32,
}

/// Codec for the 24-byte-header frame protocol.
#[derive(Debug, Clone, Copy)]
pub struct FrameCodec {
    max_body_len: usize,
}

impl FrameCodec {
    /// A codec rejecting bodies longer than `max_body_len` bytes.
    pub fn new(max_body_len: usize) -> FrameCodec {
        FrameCodec { max_body_len }
    }

    /// The configured maximum body length.
    pub fn max_body_len(&self) -> usize {
        self.max_body_len
    }

    fn parse_header(&self, b: &[u8]) -> Result<Header, FrameError> {
        let magic = [b[0], b[1]];
        if magic != MAGIC {
            return Err(FrameError::BadMagic(magic));
        }
        if b[2] != VERSION {
            return Err(FrameError::BadVersion(b[2]));
        }
        let flags = b[3];
        if !flags_valid(flags) {
            return Err(FrameError::BadFlags(flags));
        }
        let reserved = u16::from_be_bytes([b[6], b[7]]);
        if reserved != 0 {
            return Err(FrameError::NonZeroReserved(reserved));
        }
        let body_len = u32::from_be_bytes([b[16], b[17], b[18], b[19]]);
        if body_len as usize > self.max_body_len {
            return Err(FrameError::BodyTooLarge {
                len: body_len,
                max: self.max_body_len,
            });
        }
        let mut id = [0u8; 8];
        id.copy_from_slice(&b[8..16]);
        Ok(Header {
            flags,
            msg_type: u16::from_be_bytes([b[4], b[5]]),
            correlation_id: u64::from_be_bytes(id),
            body_len,
            crc: u32::from_be_bytes([b[20], b[21], b[22], b[23]]),
        })
    }
}

impl Default for FrameCodec {
    fn default() -> FrameCodec {
        FrameCodec::new(DEFAULT_MAX_BODY_LEN)
    }
}

/// The correlation id of the header at the start of `buf`, if at least a
/// whole header is buffered and its magic and version are valid (that is,
/// the layout of the rest of the header can be trusted). Used to address the
/// ERROR frame sent for a frame the codec rejected.
pub fn peek_correlation_id(buf: &[u8]) -> Option<u64> {
    if buf.len() < HEADER_LEN || buf[0..2] != MAGIC || buf[2] != VERSION {
        return None;
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&buf[8..16]);
    Some(u64::from_be_bytes(id))
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if src.len() < HEADER_LEN {
            return Ok(None);
        }
        let header = self.parse_header(&src[..HEADER_LEN])?;
        let total = HEADER_LEN + header.body_len as usize;
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }
        let actual = crc32c::crc32c(&src[HEADER_LEN..total]);
        if actual != header.crc {
            return Err(FrameError::BadCrc {
                expected: header.crc,
                actual,
            });
        }
        src.advance(HEADER_LEN);
        let body = src.split_to(header.body_len as usize).freeze();
        Ok(Some(Frame {
            msg_type: header.msg_type,
            flags: header.flags,
            correlation_id: header.correlation_id,
            body,
        }))
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        let len = frame.body.len();
        if len > self.max_body_len {
            return Err(FrameError::BodyTooLarge {
                len: u32::try_from(len).unwrap_or(u32::MAX),
                max: self.max_body_len,
            });
        }
        if !flags_valid(frame.flags) {
            return Err(FrameError::BadFlags(frame.flags));
        }
        // `len <= max_body_len`; a max above u32::MAX is still refused here.
        let body_len = u32::try_from(len).map_err(|_| FrameError::BodyTooLarge {
            len: u32::MAX,
            max: self.max_body_len,
        })?;
        dst.reserve(HEADER_LEN + len);
        dst.put_slice(&MAGIC);
        dst.put_u8(VERSION);
        dst.put_u8(frame.flags);
        dst.put_u16(frame.msg_type);
        dst.put_u16(0);
        dst.put_u64(frame.correlation_id);
        dst.put_u32(body_len);
        dst.put_u32(crc32c::crc32c(&frame.body));
        dst.put_slice(&frame.body);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{MsgType, FLAG_RESPONSE, FLAG_UNSOLICITED};
    use crate::v1::{Heartbeat, LoginRequest};
    use bytes::Bytes;
    use proptest::prelude::*;

    fn encode(frame: Frame) -> BytesMut {
        let mut buf = BytesMut::new();
        FrameCodec::default().encode(frame, &mut buf).unwrap();
        buf
    }

    fn heartbeat_bytes() -> BytesMut {
        encode(Frame::request(
            MsgType::Heartbeat,
            1,
            &Heartbeat {
                sent_at_unix_nanos: 1,
            },
        ))
    }

    fn to_hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    // Test vectors, copied verbatim into docs/protocol.md.
    //
    // HEARTBEAT request, correlation_id 1, Heartbeat { sent_at_unix_nanos: 1 }:
    const HEARTBEAT_REQUEST_HEX: &str = "48540100000500000000000000000001000000029e1e37690801";
    // HEARTBEAT response (RESPONSE flag) to the request above:
    const HEARTBEAT_RESPONSE_HEX: &str = "48540101000500000000000000000001000000029e1e37690801";
    // LOGIN request, correlation_id 2,
    // LoginRequest { account_id: "ACC-1", token: "tok" }:
    const LOGIN_REQUEST_HEX: &str =
        "485401000001000000000000000000020000000c2777e0b30a054143432d311203746f6b";
    // ERROR frame, correlation_id 0, ErrorResponse { code: PROTOCOL_ERROR, message: "bad" }:
    const ERROR_HEX: &str = "4854010100ff0000000000000000000000000007e6ee1f28080c1203626164";

    #[test]
    fn hex_test_vectors() {
        let hb = Heartbeat {
            sent_at_unix_nanos: 1,
        };
        let cases = [
            (
                "heartbeat request",
                Frame::request(MsgType::Heartbeat, 1, &hb),
                HEARTBEAT_REQUEST_HEX,
            ),
            (
                "heartbeat response",
                Frame::response(MsgType::Heartbeat, 1, &hb),
                HEARTBEAT_RESPONSE_HEX,
            ),
            (
                "login request",
                Frame::request(
                    MsgType::Login,
                    2,
                    &LoginRequest {
                        account_id: "ACC-1".into(),
                        token: "tok".into(),
                        ..Default::default()
                    },
                ),
                LOGIN_REQUEST_HEX,
            ),
            (
                "error",
                Frame::error(0, crate::v1::Code::ProtocolError, "bad"),
                ERROR_HEX,
            ),
        ];
        for (name, frame, hex) in cases {
            let bytes = encode(frame.clone());
            println!("{name}: {}", to_hex(&bytes));
            assert_eq!(to_hex(&bytes), hex, "{name}");
            let mut buf = bytes;
            assert_eq!(FrameCodec::default().decode(&mut buf).unwrap(), Some(frame));
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn partial_input_waits() {
        let full = heartbeat_bytes();
        let mut codec = FrameCodec::default();
        for cut in 0..full.len() {
            let mut buf = BytesMut::from(&full[..cut]);
            assert!(codec.decode(&mut buf).unwrap().is_none(), "cut {cut}");
            assert_eq!(buf.len(), cut, "partial input must not be consumed");
        }
    }

    fn decode_err(bytes: &[u8]) -> FrameError {
        let mut buf = BytesMut::from(bytes);
        let before = buf.len();
        let err = FrameCodec::default().decode(&mut buf).unwrap_err();
        assert_eq!(buf.len(), before, "error must leave the buffer intact");
        err
    }

    #[test]
    fn bad_magic() {
        let mut b = heartbeat_bytes();
        b[0] = b'X';
        assert!(matches!(decode_err(&b), FrameError::BadMagic([b'X', b'T'])));
        assert_eq!(peek_correlation_id(&b), None);
    }

    #[test]
    fn bad_version() {
        let mut b = heartbeat_bytes();
        b[2] = 2;
        assert!(matches!(decode_err(&b), FrameError::BadVersion(2)));
    }

    #[test]
    fn bad_flags() {
        let mut b = heartbeat_bytes();
        b[3] = 0x02;
        assert!(matches!(decode_err(&b), FrameError::BadFlags(2)));
        b[3] = 0x81;
        assert!(matches!(decode_err(&b), FrameError::BadFlags(0x81)));
        b[3] = 0x07;
        assert!(matches!(decode_err(&b), FrameError::BadFlags(0x07)));
        assert_eq!(peek_correlation_id(&b), Some(1));
    }

    #[test]
    fn response_flag_is_accepted_by_codec() {
        let mut b = heartbeat_bytes();
        b[3] = FLAG_RESPONSE;
        let f = FrameCodec::default().decode(&mut b).unwrap().unwrap();
        assert!(f.is_response());
        assert!(!f.is_unsolicited());
    }

    #[test]
    fn unsolicited_needs_the_response_flag() {
        let mut b = heartbeat_bytes();
        b[3] = FLAG_RESPONSE | FLAG_UNSOLICITED;
        let f = FrameCodec::default().decode(&mut b).unwrap().unwrap();
        assert!(f.is_response() && f.is_unsolicited());
        let mut b = heartbeat_bytes();
        b[3] = FLAG_UNSOLICITED;
        assert!(matches!(decode_err(&b), FrameError::BadFlags(2)));
    }

    #[test]
    fn nonzero_reserved() {
        let mut b = heartbeat_bytes();
        b[7] = 1;
        assert!(matches!(decode_err(&b), FrameError::NonZeroReserved(1)));
    }

    #[test]
    fn body_too_large_rejected_from_header_alone() {
        let mut b = heartbeat_bytes();
        b[16..20].copy_from_slice(&(DEFAULT_MAX_BODY_LEN as u32 + 1).to_be_bytes());
        // Only the header is buffered: the error must come without the body.
        let err = decode_err(&b[..HEADER_LEN]);
        assert!(matches!(
            err,
            FrameError::BodyTooLarge { len, max } if len == 65537 && max == DEFAULT_MAX_BODY_LEN
        ));
        assert_eq!(peek_correlation_id(&b), Some(1));
    }

    #[test]
    fn max_body_len_exactly_is_accepted() {
        let body = Bytes::from(vec![0u8; 16]);
        let mut codec = FrameCodec::new(16);
        let mut buf = BytesMut::new();
        let frame = Frame {
            msg_type: 2,
            flags: 0,
            correlation_id: 5,
            body,
        };
        codec.encode(frame.clone(), &mut buf).unwrap();
        assert_eq!(codec.decode(&mut buf).unwrap(), Some(frame));
    }

    #[test]
    fn encoder_refuses_oversized_body() {
        let mut codec = FrameCodec::new(4);
        let frame = Frame {
            msg_type: 2,
            flags: 0,
            correlation_id: 5,
            body: Bytes::from_static(b"12345"),
        };
        let err = codec.encode(frame, &mut BytesMut::new()).unwrap_err();
        assert!(matches!(err, FrameError::BodyTooLarge { len: 5, max: 4 }));
    }

    #[test]
    fn bad_crc() {
        let mut b = heartbeat_bytes();
        let last = b.len() - 1;
        b[last] ^= 0xff;
        assert!(matches!(decode_err(&b), FrameError::BadCrc { .. }));
    }

    #[test]
    fn io_error_converts() {
        let e: FrameError = std::io::Error::other("boom").into();
        assert!(matches!(e, FrameError::Io(_)));
        assert!(e.to_string().contains("boom"));
    }

    fn arb_frame() -> impl Strategy<Value = Frame> {
        (
            any::<u16>(),
            prop_oneof![
                Just(0u8),
                Just(FLAG_RESPONSE),
                Just(FLAG_RESPONSE | FLAG_UNSOLICITED)
            ],
            any::<u64>(),
            proptest::collection::vec(any::<u8>(), 0..512),
        )
            .prop_map(|(msg_type, flags, correlation_id, body)| Frame {
                msg_type,
                flags,
                correlation_id,
                body: Bytes::from(body),
            })
    }

    proptest! {
        #[test]
        fn round_trip(frame in arb_frame()) {
            let mut codec = FrameCodec::default();
            let mut buf = BytesMut::new();
            codec.encode(frame.clone(), &mut buf).unwrap();
            prop_assert_eq!(buf.len(), HEADER_LEN + frame.body.len());
            prop_assert_eq!(codec.decode(&mut buf).unwrap(), Some(frame));
            prop_assert!(buf.is_empty());
        }

        #[test]
        fn any_split_decodes_the_same(
            frames in proptest::collection::vec(arb_frame(), 1..6),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
        ) {
            let mut codec = FrameCodec::default();
            let mut stream = BytesMut::new();
            for f in &frames {
                codec.encode(f.clone(), &mut stream).unwrap();
            }
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
            points.push(0);
            points.push(stream.len());
            points.sort_unstable();
            points.dedup();
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            for w in points.windows(2) {
                buf.extend_from_slice(&stream[w[0]..w[1]]);
                while let Some(f) = codec.decode(&mut buf).unwrap() {
                    out.push(f);
                }
            }
            prop_assert_eq!(out, frames);
            prop_assert!(buf.is_empty());
        }

        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let mut codec = FrameCodec::new(1024);
            let mut buf = BytesMut::from(&data[..]);
            while let Ok(Some(_)) = codec.decode(&mut buf) {}
            let _ = peek_correlation_id(&data);
        }

        #[test]
        fn garbage_after_valid_header_never_panics(
            frame in arb_frame(),
            flip in any::<prop::sample::Index>(),
            xor in 1u8..=255,
        ) {
            let mut codec = FrameCodec::default();
            let mut buf = BytesMut::new();
            codec.encode(frame, &mut buf).unwrap();
            let i = flip.index(buf.len());
            buf[i] ^= xor;
            // A single corrupted byte is always detected or yields a frame
            // that differs only in a header field; it never panics.
            let _ = codec.decode(&mut buf);
        }
    }
}
