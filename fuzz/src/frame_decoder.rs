//! Fuzzes the gateway's frame decoder (`hts_gateway::codec::FrameCodec`)
//! the way a connection drives it.
//!
//! Input layout (so that seeds are readable frames with a one-byte prefix):
//! * byte 0, bits 0-2: the codec's `max_body_len` ([`MAX_BODY_LENS`]);
//! * byte 0, bits 3-7: how many split points follow (0-31);
//! * 2 bytes per split point (big-endian, taken modulo the stream length + 1);
//! * the rest: the byte stream a client sends.
//!
//! The stream arrives in the chunks the split points cut it into. After
//! each chunk the decoder runs until it returns `None` or an error, exactly
//! like `connection.rs`; after an error the connection would close, so the
//! run stops. Checked on every step:
//! * no panic (libFuzzer reports one as a crash);
//! * a decoded frame's body is at most `max_body_len` and re-encodes to the
//!   exact bytes it was decoded from;
//! * an error leaves the buffer untouched (the ERROR frame's correlation id
//!   is read from it);
//! * `Ok(None)` with a whole header buffered reserves room for exactly that
//!   frame, whose declared length is within the maximum;
//! * the buffer never holds more than one maximal frame plus one chunk,
//!   and its capacity stays within four times that (`Vec` doubling on top
//!   of a consumed prefix `BytesMut` has not reclaimed yet): memory per
//!   connection is bounded by the frame limit, not by what the client sends.

use bytes::BytesMut;
use hts_gateway::codec::{peek_correlation_id, FrameCodec};
use hts_gateway::frame::HEADER_LEN;
use tokio_util::codec::{Decoder, Encoder};

/// Maximum body lengths the fuzzer chooses from: the default, the smallest
/// sensible ones and a few in between.
const MAX_BODY_LENS: [usize; 8] = [65_536, 0, 1, 16, 64, 255, 1_024, 4_096];

/// Runs one fuzz input; panics when a property does not hold.
pub fn check(data: &[u8]) {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let max_body_len = MAX_BODY_LENS[usize::from(control & 0x07)];
    let n_cuts = usize::from(control >> 3);
    let cut_bytes = (n_cuts * 2).min(rest.len());
    let (cuts, stream) = rest.split_at(cut_bytes);
    let mut points: Vec<usize> = cuts
        .chunks_exact(2)
        .map(|c| usize::from(u16::from_be_bytes([c[0], c[1]])) % (stream.len() + 1))
        .collect();
    points.push(0);
    points.push(stream.len());
    points.sort_unstable();
    points.dedup();
    let max_chunk = points.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    run(stream, &points, max_body_len, max_chunk);
}

fn run(stream: &[u8], points: &[usize], max_body_len: usize, max_chunk: usize) {
    let mut codec = FrameCodec::new(max_body_len);
    let mut buf = BytesMut::with_capacity(512);
    // Stream offset of the first byte still in `buf`.
    let mut consumed = 0usize;
    let buffered_bound = HEADER_LEN + max_body_len + max_chunk;
    let capacity_bound = 4 * buffered_bound.max(512);
    for w in points.windows(2) {
        buf.extend_from_slice(&stream[w[0]..w[1]]);
        loop {
            assert!(
                buf.len() <= buffered_bound,
                "buffer holds {} bytes",
                buf.len()
            );
            let before = buf.clone();
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => {
                    assert!(frame.body.len() <= max_body_len);
                    let len = HEADER_LEN + frame.body.len();
                    let original = &stream[consumed..consumed + len];
                    assert_eq!(&before[..len], original);
                    assert_eq!(
                        &buf[..],
                        &before[len..],
                        "decode consumed more than a frame"
                    );
                    let mut out = BytesMut::new();
                    codec
                        .encode(frame, &mut out)
                        .expect("a decoded frame re-encodes");
                    assert_eq!(&out[..], original, "encode(decode(x)) != x");
                    consumed += len;
                }
                Ok(None) => {
                    assert_eq!(buf, before, "Ok(None) consumed input");
                    if buf.len() >= HEADER_LEN {
                        let declared =
                            u32::from_be_bytes([buf[16], buf[17], buf[18], buf[19]]) as usize;
                        assert!(declared <= max_body_len, "oversized frame awaited");
                        assert!(
                            buf.len() < HEADER_LEN + declared,
                            "complete frame not decoded"
                        );
                        assert!(
                            buf.capacity() >= HEADER_LEN + declared,
                            "room for the announced frame was not reserved"
                        );
                    }
                    assert!(
                        buf.capacity() <= capacity_bound,
                        "capacity {} above {capacity_bound}",
                        buf.capacity()
                    );
                    break;
                }
                Err(e) => {
                    assert_eq!(buf, before, "an error must leave the buffer intact");
                    let _ = peek_correlation_id(&buf);
                    let _ = e.to_string();
                    // The connection sends one ERROR frame and closes.
                    return;
                }
            }
        }
    }
}
