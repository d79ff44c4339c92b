//! The gRPC codec of the generated services: prost's, except that a request
//! body that is not a valid protobuf message (wrong wire types, truncated
//! bytes) is answered with INVALID_ARGUMENT, naming the message type, rather
//! than tonic-prost's INTERNAL: the fault is the caller's, not the server's.
//!
//! [`PreEncoded`] is the codec of a server stream whose messages arrive
//! already encoded: a watch event is encoded once and its bytes shared by
//! every stream that sends it.

use std::marker::PhantomData;

use bytes::{BufMut as _, Bytes};
use prost::Message;
use tonic::Status;
use tonic::codec::{BufferSettings, DecodeBuf, EncodeBuf};
use tonic_prost::ProstEncoder;

/// A [`tonic::codec::Codec`] for prost messages.
#[derive(Debug, Clone, Copy)]
pub struct Codec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for Codec<T, U> {
    fn default() -> Self {
        Codec(PhantomData)
    }
}

impl<T, U> tonic::codec::Codec for Codec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = Decoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        Decoder(PhantomData)
    }
}

/// Decodes prost messages; a malformed body is INVALID_ARGUMENT.
#[derive(Debug, Clone, Copy)]
pub struct Decoder<U>(PhantomData<U>);

impl<U: Message + Default> tonic::codec::Decoder for Decoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf).map(Some).map_err(|e| {
            let name = std::any::type_name::<U>()
                .rsplit("::")
                .next()
                .unwrap_or("message");
            Status::invalid_argument(format!("the body is not a valid {name} message: {e}"))
        })
    }
}

/// A [`tonic::codec::Codec`] whose responses are encoded protobuf messages
/// (`Bytes`, each one message's encoding) and whose requests are prost
/// messages `U`, decoded as [`Codec`] does.
#[derive(Debug, Clone, Copy)]
pub struct PreEncoded<U>(PhantomData<U>);

impl<U> Default for PreEncoded<U> {
    fn default() -> Self {
        PreEncoded(PhantomData)
    }
}

impl<U> tonic::codec::Codec for PreEncoded<U>
where
    U: Message + Default + Send + 'static,
{
    type Encode = Bytes;
    type Decode = U;
    type Encoder = BytesEncoder;
    type Decoder = Decoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        BytesEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        Decoder(PhantomData)
    }
}

/// Hand what is encoded to the connection once this much is waiting
/// (tonic's default).
const YIELD_THRESHOLD: usize = 32 * 1024;

/// Writes already-encoded messages as they are.
#[derive(Debug, Clone, Copy)]
pub struct BytesEncoder;

impl tonic::codec::Encoder for BytesEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }

    /// No buffer until there is something to send: a stream that waits
    /// (a watch, most of its life) holds no buffer of its own; tonic's
    /// default is 8 KiB per stream from the start.
    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::new(0, YIELD_THRESHOLD)
    }
}
