//! The `grpc-timeout` a client sends, enforced: a call whose answer is not
//! ready by then is answered DEADLINE_EXCEEDED (tonic's own server does
//! this in its transport, which the host's listener replaces).
//!
//! As with every gRPC server, the deadline bounds the wait for the answer,
//! not the work: a commit already handed to the store may still land after
//! its caller was told DEADLINE_EXCEEDED (a client that must know reads
//! the revision back, or commits with `expect_revision`). Streams (watch)
//! are bounded until their first message headers only.

use std::time::Duration;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

/// The header gRPC clients send their deadline in.
const HEADER: &str = "grpc-timeout";

/// The middleware: runs the call under the request's deadline, if any.
pub(crate) async fn enforce(req: Request, next: Next) -> Response {
    let Some(timeout) = requested(req.headers()) else {
        return next.run(req).await;
    };
    match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(response) => response,
        Err(_) => tonic::Status::deadline_exceeded(format!(
            "the call's deadline ({timeout:?}, from grpc-timeout) passed before it was answered; \
             a write may still have been applied"
        ))
        .into_http(),
    }
}

/// The deadline in `headers`; `None` when there is none, or it is not
/// the gRPC spec's `TimeoutValue TimeoutUnit` (1–8 digits, then one of
/// `H M S m u n`): an unreadable deadline is ignored, as tonic does.
fn requested(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get(HEADER)?.to_str().ok()?;
    let parsed = parse(value);
    if parsed.is_none() {
        tracing::debug!(value, "ignoring an unreadable grpc-timeout");
    }
    parsed
}

fn parse(value: &str) -> Option<Duration> {
    let split = value.len().checked_sub(1)?;
    let (digits, unit) = value.split_at_checked(split)?;
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::parse;
    use std::time::Duration;

    #[test]
    fn the_spec_s_units_and_nothing_else() {
        assert_eq!(parse("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse("2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse("30S"), Some(Duration::from_secs(30)));
        assert_eq!(parse("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse("99999999u"), Some(Duration::from_micros(99_999_999)));
        assert_eq!(parse("7n"), Some(Duration::from_nanos(7)));
        for bad in [
            "",
            "m",
            "5",
            "123456789m",
            "-5m",
            "5x",
            "5 m",
            "1.5S",
            "5é",
            "é",
            "+5m",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
