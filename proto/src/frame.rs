//! The wire frame: a fixed 24-byte header followed by a protobuf body.
//!
//! ```text
//! offset size field
//!      0    2 magic "HT" (0x48 0x54)
//!      2    1 version (1)
//!      3    1 flags: bit 0 = RESPONSE, bit 1 = UNSOLICITED (only with
//!             RESPONSE: 0x03), other bits must be 0
//!      4    2 msg_type
//!      6    2 reserved, must be 0
//!      8    8 correlation_id (chosen by the client, echoed in the response)
//!     16    4 body_len (bytes after the header)
//!     20    4 CRC-32C (Castagnoli) of the body
//! ```
//!
//! All integers are big-endian. Encoding and decoding of the header lives in
//! [`crate::codec`]; this module only describes a frame.

use crate::v1::{Code, ErrorResponse};
use bytes::Bytes;
use prost::Message;

/// Length of the fixed frame header in bytes.
pub const HEADER_LEN: usize = 24;
/// The two magic bytes every frame starts with ("HT").
pub const MAGIC: [u8; 2] = *b"HT";
/// The only protocol version this gateway speaks.
pub const VERSION: u8 = 1;
/// Flag bit set on every frame the gateway sends.
pub const FLAG_RESPONSE: u8 = 1;
/// Flag bit set (with [`FLAG_RESPONSE`]) on every frame the gateway sends
/// that answers no request (a pushed `OrderUpdate`); such frames carry
/// correlation id 0. Clients never set it.
pub const FLAG_UNSOLICITED: u8 = 2;
/// The flag combinations a frame may carry: 0 (request), RESPONSE, and
/// RESPONSE | UNSOLICITED.
pub fn flags_valid(flags: u8) -> bool {
    matches!(flags, 0 | FLAG_RESPONSE) || flags == FLAG_RESPONSE | FLAG_UNSOLICITED
}
/// Default upper bound of `body_len` (64 KiB).
pub const DEFAULT_MAX_BODY_LEN: usize = 64 * 1024;

/// The kinds of frames the protocol knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum MsgType {
    /// Authenticate the connection (`LoginRequest` / `LoginResponse`).
    Login = 1,
    /// Place an order (`PlaceOrderRequest` / `PlaceOrderResponse`).
    PlaceOrder = 2,
    /// Cancel an order (`CancelOrderRequest` / `CancelOrderResponse`).
    CancelOrder = 3,
    /// Look up an order (`QueryOrderRequest` / `QueryOrderResponse`).
    QueryOrder = 4,
    /// Keep-alive, echoed back by the gateway (`Heartbeat`).
    Heartbeat = 5,
    /// Change a working order's price or quantity (`ReplaceOrderRequest` /
    /// `ReplaceOrderResponse`).
    ReplaceOrder = 6,
    /// Cancel every open order of the account, or of one symbol
    /// (`MassCancelRequest` / `MassCancelResponse`).
    MassCancel = 7,
    /// List the account's orders (`ListOrdersRequest` /
    /// `ListOrdersResponse`).
    ListOrders = 8,
    /// The account's balances and positions (`PositionsRequest` /
    /// `PositionsResponse`).
    GetPositions = 9,
    /// A pushed change of one of the account's orders (`OrderUpdate`), only
    /// from the gateway, flags RESPONSE | UNSOLICITED, correlation id 0.
    OrderUpdate = 16,
    /// Error sent only by the gateway (`ErrorResponse`).
    Error = 255,
}

impl MsgType {
    /// Maps a raw wire value to a known message type.
    pub fn from_u16(value: u16) -> Option<MsgType> {
        match value {
            1 => Some(MsgType::Login),
            2 => Some(MsgType::PlaceOrder),
            3 => Some(MsgType::CancelOrder),
            4 => Some(MsgType::QueryOrder),
            5 => Some(MsgType::Heartbeat),
            6 => Some(MsgType::ReplaceOrder),
            7 => Some(MsgType::MassCancel),
            8 => Some(MsgType::ListOrders),
            9 => Some(MsgType::GetPositions),
            16 => Some(MsgType::OrderUpdate),
            255 => Some(MsgType::Error),
            _ => None,
        }
    }

    /// The raw wire value.
    pub fn as_u16(self) -> u16 {
        self as u16
    }
}

/// One decoded frame. `msg_type` stays raw so that unknown types pass the
/// codec and are rejected (recoverably) by the connection's dispatcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Raw message type (see [`MsgType`]).
    pub msg_type: u16,
    /// Header flags: [`FLAG_RESPONSE`], [`FLAG_UNSOLICITED`].
    pub flags: u8,
    /// Client-chosen correlation id, echoed in the response.
    pub correlation_id: u64,
    /// Protobuf-encoded body.
    pub body: Bytes,
}

impl Frame {
    /// A request frame (flags 0) carrying `body`.
    pub fn request(msg_type: MsgType, correlation_id: u64, body: &impl Message) -> Frame {
        Frame {
            msg_type: msg_type.as_u16(),
            flags: 0,
            correlation_id,
            body: Bytes::from(body.encode_to_vec()),
        }
    }

    /// A response frame (RESPONSE flag set) carrying `body`.
    pub fn response(msg_type: MsgType, correlation_id: u64, body: &impl Message) -> Frame {
        Frame {
            msg_type: msg_type.as_u16(),
            flags: FLAG_RESPONSE,
            correlation_id,
            body: Bytes::from(body.encode_to_vec()),
        }
    }

    /// A pushed frame (RESPONSE | UNSOLICITED, correlation id 0) carrying
    /// `body`.
    pub fn unsolicited(msg_type: MsgType, body: &impl Message) -> Frame {
        Frame {
            msg_type: msg_type.as_u16(),
            flags: FLAG_RESPONSE | FLAG_UNSOLICITED,
            correlation_id: 0,
            body: Bytes::from(body.encode_to_vec()),
        }
    }

    /// Whether the UNSOLICITED flag is set (a push, answering no request).
    pub fn is_unsolicited(&self) -> bool {
        self.flags & FLAG_UNSOLICITED != 0
    }

    /// An ERROR (255) response frame with an [`ErrorResponse`] body.
    pub fn error(correlation_id: u64, code: Code, message: impl Into<String>) -> Frame {
        let body = ErrorResponse {
            code: code as i32,
            message: message.into(),
            retry_after_ms: 0,
        };
        Frame::response(MsgType::Error, correlation_id, &body)
    }

    /// Whether the RESPONSE flag is set.
    pub fn is_response(&self) -> bool {
        self.flags & FLAG_RESPONSE != 0
    }

    /// The message type, if it is one the protocol knows.
    pub fn kind(&self) -> Option<MsgType> {
        MsgType::from_u16(self.msg_type)
    }

    /// Decodes the body as protobuf message `M`.
    pub fn decode_body<M: Message + Default>(&self) -> Result<M, prost::DecodeError> {
        M::decode(self.body.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::Heartbeat;

    #[test]
    fn msg_type_round_trips() {
        for t in [
            MsgType::Login,
            MsgType::PlaceOrder,
            MsgType::CancelOrder,
            MsgType::QueryOrder,
            MsgType::Heartbeat,
            MsgType::ReplaceOrder,
            MsgType::MassCancel,
            MsgType::ListOrders,
            MsgType::GetPositions,
            MsgType::OrderUpdate,
            MsgType::Error,
        ] {
            assert_eq!(MsgType::from_u16(t.as_u16()), Some(t));
        }
        assert_eq!(MsgType::from_u16(0), None);
        assert_eq!(MsgType::from_u16(10), None);
        assert_eq!(MsgType::from_u16(15), None);
        assert_eq!(MsgType::from_u16(17), None);
        assert_eq!(MsgType::from_u16(254), None);
    }

    #[test]
    fn request_and_response_flags() {
        let hb = Heartbeat {
            sent_at_unix_nanos: 7,
        };
        let req = Frame::request(MsgType::Heartbeat, 9, &hb);
        assert!(!req.is_response());
        assert_eq!(req.kind(), Some(MsgType::Heartbeat));
        let resp = Frame::response(MsgType::Heartbeat, 9, &hb);
        assert!(resp.is_response());
        assert_eq!(resp.decode_body::<Heartbeat>().ok(), Some(hb));
    }

    #[test]
    fn error_frame_carries_code() {
        let f = Frame::error(3, Code::ProtocolError, "bad");
        assert_eq!(f.msg_type, 255);
        assert!(f.is_response());
        let e: ErrorResponse = f.decode_body().unwrap();
        assert_eq!(e.code, Code::ProtocolError as i32);
        assert_eq!(e.message, "bad");
    }
}
