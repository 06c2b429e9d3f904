//! `hts-bench echo-server`: a trivial frame server, the far end of the L4-proxy comparison.
//!
//! It speaks the gateway's frame protocol but does no work: every LOGIN is
//! accepted, every PLACE/CANCEL/QUERY is answered OK at once (the same
//! answers as `hts order-service --echo`), HEARTBEAT is echoed. Putting
//! HAProxy (TCP mode) in front of it measures a plain L4 hop on our frames.

use std::net::SocketAddr;

use futures::{SinkExt, StreamExt};
use hts_gateway::codec::FrameCodec;
use hts_gateway::frame::{Frame, MsgType};
use hts_proto::v1::{
    CancelOrderRequest, CancelOrderResponse, Code, LoginResponse, Order, OrderStatus,
    PlaceOrderRequest, PlaceOrderResponse, QueryOrderRequest, QueryOrderResponse,
};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;

/// The answer to one request frame.
pub fn answer(frame: &Frame) -> Frame {
    let id = frame.correlation_id;
    match frame.kind() {
        Some(MsgType::Login) => Frame::response(
            MsgType::Login,
            id,
            &LoginResponse {
                code: Code::Ok as i32,
                session_id: "echo".into(),
                ..Default::default()
            },
        ),
        Some(MsgType::PlaceOrder) => match frame.decode_body::<PlaceOrderRequest>() {
            Ok(req) => Frame::response(
                MsgType::PlaceOrder,
                id,
                &PlaceOrderResponse {
                    code: Code::Ok as i32,
                    order_id: format!("echo-{}", req.request_id),
                    request_id: req.request_id,
                    status: OrderStatus::Accepted as i32,
                    ..Default::default()
                },
            ),
            Err(e) => Frame::error(id, Code::InvalidRequest, e.to_string()),
        },
        Some(MsgType::CancelOrder) => match frame.decode_body::<CancelOrderRequest>() {
            Ok(req) => Frame::response(
                MsgType::CancelOrder,
                id,
                &CancelOrderResponse {
                    code: Code::Ok as i32,
                    order_id: req.order_id,
                    status: OrderStatus::Canceled as i32,
                    ..Default::default()
                },
            ),
            Err(e) => Frame::error(id, Code::InvalidRequest, e.to_string()),
        },
        Some(MsgType::QueryOrder) => match frame.decode_body::<QueryOrderRequest>() {
            Ok(req) => Frame::response(
                MsgType::QueryOrder,
                id,
                &QueryOrderResponse {
                    code: Code::Ok as i32,
                    order: Some(Order {
                        order_id: req.order_id,
                        status: OrderStatus::Accepted as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ),
            Err(e) => Frame::error(id, Code::InvalidRequest, e.to_string()),
        },
        Some(MsgType::Heartbeat) => Frame {
            flags: hts_gateway::frame::FLAG_RESPONSE,
            ..frame.clone()
        },
        // The echo server measures the frame path of place/cancel/query only.
        Some(
            MsgType::ReplaceOrder
            | MsgType::MassCancel
            | MsgType::ListOrders
            | MsgType::GetPositions
            | MsgType::OrderUpdate
            | MsgType::Error,
        )
        | None => Frame::error(id, Code::InvalidRequest, "unknown msg_type"),
    }
}

async fn handle(stream: TcpStream, peer: SocketAddr) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%peer, error = %e, "set_nodelay failed");
    }
    let (mut sink, mut frames) = Framed::new(stream, FrameCodec::default()).split();
    while let Some(next) = frames.next().await {
        let Ok(frame) = next else {
            // An invalid stream cannot be resynchronised: drop the connection.
            break;
        };
        if sink.feed(answer(&frame)).await.is_err() {
            return;
        }
        // Batch whatever else is already decoded before flushing.
        while let Some(Some(Ok(more))) = futures::FutureExt::now_or_never(frames.next()) {
            if sink.feed(answer(&more)).await.is_err() {
                return;
            }
        }
        if sink.flush().await.is_err() {
            return;
        }
    }
}

/// Serves the echo protocol on `listener` forever.
pub async fn serve(listener: TcpListener) -> anyhow::Result<()> {
    loop {
        let (stream, peer) = listener.accept().await?;
        tokio::spawn(handle(stream, peer));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_each_kind_ok() {
        let place = Frame::request(
            MsgType::PlaceOrder,
            7,
            &PlaceOrderRequest {
                request_id: "r-1".into(),
                ..Default::default()
            },
        );
        let a = answer(&place);
        assert!(a.is_response());
        assert_eq!(a.correlation_id, 7);
        let body: PlaceOrderResponse = a.decode_body().unwrap();
        assert_eq!(body.code, Code::Ok as i32);
        assert_eq!(body.order_id, "echo-r-1");
        let bad = Frame {
            msg_type: 77,
            flags: 0,
            correlation_id: 8,
            body: Default::default(),
        };
        assert_eq!(answer(&bad).kind(), Some(MsgType::Error));
    }
}
