//! The hex test vectors of docs/protocol.md, checked against the gateway's codec
//! in both directions. The vectors were computed independently of this codebase.

use bytes::BytesMut;
use hts_gateway::codec::FrameCodec;
use hts_gateway::frame::Frame;
use tokio_util::codec::{Decoder, Encoder};

/// (name, msg_type, flags, correlation_id, full frame hex)
const VECTORS: &[(&str, u16, u8, u64, &str)] = &[
    ("heartbeat request", 5, 0, 1, "48540100000500000000000000000001000000029e1e37690801"),
    ("heartbeat response", 5, 1, 1, "48540101000500000000000000000001000000029e1e37690801"),
    (
        "login request",
        1,
        0,
        2,
        "485401000001000000000000000000020000000db74ad7f30a084143432d30303031120174",
    ),
    (
        "login response",
        1,
        1,
        2,
        "485401010001000000000000000000020000000783f4159308011a03732d31",
    ),
    (
        "place request",
        2,
        0,
        3,
        "48540100000200000000000000000003000000174948306d0a03722d311a063030353933302001280130f0a204380a",
    ),
    (
        "error response",
        255,
        1,
        0,
        "4854010100ff000000000000000000000000000bcfadb0ac080c120762616420637263",
    ),
    (
        "empty query",
        4,
        0,
        0x0102030405060708,
        "485401000004000001020304050607080000000000000000",
    ),
    (
        "place refused with a retry-after hint",
        2,
        1,
        3,
        "485401010002000000000000000000030000000f26f75e0708081204627573791a03722d313828",
    ),
    (
        "pushed order update (UNSOLICITED)",
        16,
        3,
        0,
        "48540103001000000000000000000000000000210b0432a5080710021a036f2d3128043004380640f0a2044804520a3030353933302d312d42",
    ),
    (
        "list orders request",
        8,
        0,
        4,
        "4854010000080000000000000000000400000004686bb12008011832",
    ),
    (
        "login with resume and cancel-on-disconnect",
        1,
        0,
        5,
        "4854010000010000000000000000000500000012b939e5230a084143432d30303031120174200528d00f",
    ),
];

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn codec_encodes_the_documented_bytes() {
    for (name, msg_type, flags, corr, hex) in VECTORS {
        let bytes = unhex(hex);
        let frame = Frame {
            msg_type: *msg_type,
            flags: *flags,
            correlation_id: *corr,
            body: bytes::Bytes::copy_from_slice(&bytes[24..]),
        };
        let mut out = BytesMut::new();
        FrameCodec::default().encode(frame, &mut out).unwrap();
        assert_eq!(out.as_ref(), bytes.as_slice(), "{name}");
    }
}

#[test]
fn codec_decodes_the_documented_bytes() {
    for (name, msg_type, flags, corr, hex) in VECTORS {
        let bytes = unhex(hex);
        let mut buf = BytesMut::from(bytes.as_slice());
        let frame = FrameCodec::default()
            .decode(&mut buf)
            .unwrap()
            .unwrap_or_else(|| panic!("{name}: incomplete"));
        assert_eq!(frame.msg_type, *msg_type, "{name}");
        assert_eq!(frame.flags, *flags, "{name}");
        assert_eq!(frame.correlation_id, *corr, "{name}");
        assert_eq!(frame.body.as_ref(), &bytes[24..], "{name}");
        assert!(buf.is_empty());
    }
}

#[test]
fn documented_bodies_are_the_documented_messages() {
    use hts_proto::v1::{Code, LoginRequest, PlaceOrderRequest, Side};
    use prost::Message;
    let login = LoginRequest::decode(&unhex(VECTORS[2].4)[24..]).unwrap();
    assert_eq!(
        (login.account_id.as_str(), login.token.as_str()),
        ("ACC-0001", "t")
    );
    let place = PlaceOrderRequest::decode(&unhex(VECTORS[4].4)[24..]).unwrap();
    assert_eq!(place.symbol, "005930");
    assert_eq!(place.side, Side::Buy as i32);
    assert_eq!((place.price, place.quantity), (70_000, 10));
    let error = hts_proto::v1::ErrorResponse::decode(&unhex(VECTORS[5].4)[24..]).unwrap();
    assert_eq!(error.code, Code::ProtocolError as i32);
    let refused = hts_proto::v1::PlaceOrderResponse::decode(&unhex(VECTORS[7].4)[24..]).unwrap();
    assert_eq!(refused.code, Code::ServiceUnavailable as i32);
    assert_eq!(refused.message, "busy");
    assert_eq!(refused.request_id, "r-1");
    assert_eq!(refused.retry_after_ms, 40);
    let update = hts_proto::v1::OrderUpdate::decode(&unhex(VECTORS[8].4)[24..]).unwrap();
    assert_eq!(update.seq, 7);
    assert_eq!(update.kind, hts_proto::v1::UpdateKind::Fill as i32);
    assert_eq!(update.order_id, "o-1");
    assert_eq!(
        update.status,
        hts_proto::v1::OrderStatus::PartiallyFilled as i32
    );
    assert_eq!((update.filled_quantity, update.leaves_quantity), (4, 6));
    assert_eq!(
        (update.last_fill_price, update.last_fill_quantity),
        (70_000, 4)
    );
    assert_eq!(update.execution_id, "005930-1-B");
    let list = hts_proto::v1::ListOrdersRequest::decode(&unhex(VECTORS[9].4)[24..]).unwrap();
    assert!(list.open_only);
    assert_eq!(list.limit, 50);
    let resume = LoginRequest::decode(&unhex(VECTORS[10].4)[24..]).unwrap();
    assert_eq!(resume.resume_from_seq, 5);
    assert_eq!(resume.cancel_on_disconnect_ms, 2_000);
}
