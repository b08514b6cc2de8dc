//! The codec of the generated gRPC servers: prost's, except for a request
//! that does not decode. That is the client's fault (a string field that is
//! not UTF-8, a truncated or garbled message), so the server answers
//! INVALID_ARGUMENT and says what failed to decode, e.g. "the request does
//! not decode as protobuf: failed to decode Protobuf message: Event.device_id:
//! invalid string value: data is not UTF-8 encoded". `tonic_prost` answers
//! INTERNAL, which tells a vendor the platform is broken.
//!
//! Clients keep `tonic_prost::ProstCodec`: an answer that does not decode is
//! the server's fault, and INTERNAL is right there (`build.rs` generates the
//! clients in a second pass for this).

use prost::Message;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::{ProstCodec, ProstEncoder};

/// Encodes answers `T` and decodes requests `U` for a generated server.
#[derive(Debug)]
pub struct RequestCodec<T, U> {
    inner: ProstCodec<T, U>,
}

impl<T, U> Default for RequestCodec<T, U> {
    fn default() -> Self {
        Self {
            inner: ProstCodec::default(),
        }
    }
}

impl<T, U> Codec for RequestCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = RequestDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        self.inner.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        RequestDecoder {
            buffer_settings: self.inner.decoder().buffer_settings(),
            _message: std::marker::PhantomData,
        }
    }
}

/// Decodes one request message, refusing an undecodable one as the
/// client's error.
#[derive(Debug)]
pub struct RequestDecoder<U> {
    buffer_settings: BufferSettings,
    _message: std::marker::PhantomData<U>,
}

impl<U: Message + Default> Decoder for RequestDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf).map(Some).map_err(|err| {
            Status::invalid_argument(format!("the request does not decode as protobuf: {err}"))
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.buffer_settings
    }
}
