//! Pure order-domain rules (no I/O).

mod fingerprint;
mod reservation;
mod validation;

pub use fingerprint::fingerprint;
pub use reservation::{reservation_for, ReservationSpec};
pub use validation::{
    validate_order_id, validate_place, validate_request_id, Rejection, ValidOrder,
};
