//! The two doors' error tables agree: every error kind has an HTTP status
//! and a gRPC code, and the status is the one the gRPC code stands for
//! (google.rpc.Code's HTTP mapping), except where HTTP has a more precise
//! status in the same class, each listed here with why.

use confstrata_core::ErrorKind;
use confstrata_http_api::problem::status_of;
use tonic::Code;

/// google.rpc.Code's HTTP mapping (googleapis `google/rpc/code.proto`).
fn http_of(code: Code) -> u16 {
    match code {
        Code::Ok => 200,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => 400,
        Code::Unauthenticated => 401,
        Code::PermissionDenied => 403,
        Code::NotFound => 404,
        Code::Aborted | Code::AlreadyExists => 409,
        Code::ResourceExhausted => 429,
        Code::Cancelled => 499,
        Code::Unimplemented => 501,
        Code::Unavailable => 503,
        Code::DeadlineExceeded => 504,
        Code::Unknown | Code::Internal | Code::DataLoss => 500,
    }
}

#[test]
fn every_error_kind_has_an_http_status_that_agrees_with_its_grpc_code() {
    // Refinements: (kind, status, why).
    let refined = [
        (
            ErrorKind::TooLarge,
            413,
            "a size limit: 413 says so; 429 (RESOURCE_EXHAUSTED) means slow down",
        ),
        (
            ErrorKind::ValidationFailed,
            422,
            "well-formed content that fails the namespace's rules",
        ),
    ];
    for kind in ErrorKind::ALL {
        let code = confstrata_grpc_api::code_of(kind);
        let status = status_of(kind).as_u16();
        match refined.iter().find(|(k, _, _)| *k == kind) {
            Some((_, want, why)) => {
                assert_eq!(status, *want, "{kind}: {why}");
                assert_eq!(
                    status / 100,
                    http_of(code) / 100,
                    "{kind}: a refinement stays in its class"
                );
            }
            None => assert_eq!(status, http_of(code), "{kind}: gRPC {code:?}"),
        }
    }
}
