//! Variables, a codec and OpenTelemetry carriers for the tests of the
//! `baggage` header against OpenTelemetry's propagators.

use std::collections::HashMap;

use rt_ext::propagation::{Codec, CodecBuilder};
use rt_ext::{Snapshot, Variable};
use serde::{Deserialize, Serialize};

/// A structured variable (JSON in the header).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Route {
    pub region: String,
    pub shard: u16,
}

pub static TENANT: Variable<String> = Variable::new("tenant");
pub static REQUEST_ID: Variable<u64> = Variable::new("request_id");
pub static ROUTE: Variable<Route> = Variable::new("route");

/// A codec builder with [`TENANT`], [`REQUEST_ID`] and [`ROUTE`], in that
/// order, for a test to add its own to.
pub fn codec_builder() -> CodecBuilder {
    Codec::builder().var(&TENANT).var(&REQUEST_ID).var(&ROUTE)
}

/// A text-map carrier: OpenTelemetry's propagators inject into and extract
/// from it.
pub type Carrier = HashMap<String, String>;

/// A carrier with only a `baggage` header.
pub fn baggage(header: impl Into<String>) -> Carrier {
    [("baggage".to_string(), header.into())].into()
}

/// The `baggage` header that `codec` writes into `http` headers for
/// `snapshot` (what rt-ext's client layer sends), as a carrier.
pub fn written_by(codec: &Codec, snapshot: &Snapshot) -> Carrier {
    let mut headers = http::HeaderMap::new();
    codec.inject(snapshot, &mut headers);
    baggage(headers["baggage"].to_str().unwrap())
}
