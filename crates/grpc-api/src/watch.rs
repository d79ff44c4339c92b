//! Watch over gRPC: the host's watch feed ([`confstrata_host::watch`]),
//! each model event converted to a `WatchResponse`.

use confstrata_engine::Caller;
use confstrata_host::Host;
use confstrata_host::watch::{self, WatchError, WatchSpec};
use confstrata_proto::v1;
use futures_util::{Stream, StreamExt as _};
use tonic::Status;

use crate::status;

/// One watcher's response stream.
pub(crate) fn stream(
    host: &Host,
    caller: Caller,
    spec: WatchSpec,
) -> impl Stream<Item = Result<v1::WatchResponse, Status>> + Send + 'static {
    watch::stream(host.engine().clone(), host.watches(), caller, spec).map(|item| {
        item.map(|event| v1::WatchResponse::from(&*event))
            .map_err(|WatchError { error, field }| status::from_core(&error, field))
    })
}
