//! Frames between the relay in the bottle and the key holder outside it,
//! over the relay's exec stream: many agent connections on one pipe.
//!
//! A frame is `u32 connection, u8 kind, u32 length, bytes`. The relay sends
//! each agent request whole (the ssh-agent protocol is one request, one
//! answer) and says when a connection closes; the holder answers in kind.
//! Everything the relay sends is treated as hostile: it runs in the bottle.

/// The most a frame may carry: agent messages are small (a sign request
/// holds one SSH userauth request).
pub const MAX_PAYLOAD: usize = 256 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An agent message: a request to the holder, an answer from it.
    Message,
    /// The connection has closed.
    Closed,
    /// The relay listens (connection 0).
    Ready,
}

impl Kind {
    fn byte(self) -> u8 {
        match self {
            Self::Message => 0,
            Self::Closed => 1,
            Self::Ready => 2,
        }
    }

    fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            0 => Some(Self::Message),
            1 => Some(Self::Closed),
            2 => Some(Self::Ready),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub connection: u32,
    pub kind: Kind,
    pub payload: Vec<u8>,
}

const HEADER: usize = 9;

impl Frame {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + self.payload.len());
        out.extend_from_slice(&self.connection.to_be_bytes());
        out.push(self.kind.byte());
        let length = u32::try_from(self.payload.len()).expect("a frame fits in u32");
        out.extend_from_slice(&length.to_be_bytes());
        out.extend_from_slice(&self.payload);
        out
    }
}

/// Why a stream of frames cannot be read on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("an unknown frame kind {0}")]
    UnknownKind(u8),
    #[error("a frame of {0} bytes, more than an agent message may be")]
    TooLarge(usize),
}

/// Collects bytes as they arrive and yields whole frames.
#[derive(Debug, Default)]
pub struct Decoder {
    buffer: Vec<u8>,
}

impl Decoder {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next whole frame, if one has arrived.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if self.buffer.len() < HEADER {
            return Ok(None);
        }
        let connection = u32::from_be_bytes(self.buffer[0..4].try_into().expect("4 bytes"));
        let kind =
            Kind::from_byte(self.buffer[4]).ok_or(FrameError::UnknownKind(self.buffer[4]))?;
        let length = u32::from_be_bytes(self.buffer[5..9].try_into().expect("4 bytes")) as usize;
        if length > MAX_PAYLOAD {
            return Err(FrameError::TooLarge(length));
        }
        if self.buffer.len() < HEADER + length {
            return Ok(None);
        }
        let payload = self.buffer[HEADER..HEADER + length].to_vec();
        self.buffer.drain(..HEADER + length);
        Ok(Some(Frame {
            connection,
            kind,
            payload,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_come_back_whole_however_the_bytes_are_cut() {
        let frames = [
            Frame {
                connection: 0,
                kind: Kind::Ready,
                payload: vec![],
            },
            Frame {
                connection: 7,
                kind: Kind::Message,
                payload: b"\x0b".to_vec(),
            },
            Frame {
                connection: 7,
                kind: Kind::Closed,
                payload: vec![],
            },
        ];
        let bytes: Vec<u8> = frames.iter().flat_map(Frame::encode).collect();
        for cut in 1..bytes.len() {
            let mut decoder = Decoder::default();
            let mut seen = Vec::new();
            for chunk in bytes.chunks(cut) {
                decoder.push(chunk);
                while let Some(frame) = decoder.next_frame().unwrap() {
                    seen.push(frame);
                }
            }
            assert_eq!(seen, frames, "cut every {cut} bytes");
        }
    }

    #[test]
    fn a_hostile_length_or_kind_stops_the_stream() {
        let mut decoder = Decoder::default();
        decoder.push(&[0, 0, 0, 1, 0, 0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(decoder.next_frame(), Err(FrameError::TooLarge(_))));
        let mut decoder = Decoder::default();
        decoder.push(&[0, 0, 0, 1, 9, 0, 0, 0, 0]);
        assert_eq!(decoder.next_frame(), Err(FrameError::UnknownKind(9)));
    }
}
