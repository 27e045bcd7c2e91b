//! Reading inputs: files, folders and stdin opened (`source`), gzip told apart by its
//! magic bytes and inflated (`decode`), and the byte stream cut into blocks of whole
//! lines (`frame`).

pub(crate) mod decode;
pub(crate) mod frame;
pub(crate) mod source;

pub use decode::gzip_reader;
pub use frame::{frame_input, is_blank, Block, FrameConfig};
pub use source::{expand_inputs, open as open_input, Input};
