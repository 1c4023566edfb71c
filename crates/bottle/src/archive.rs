//! Tar archives of files: how files go into a bottle (streamed into
//! `tar -x` through exec) and into an image's build context.

use std::io::{self, Read, Write};
use std::path::Path;

/// Appends a regular file of `size` bytes read from `data`, with `mode`.
pub(crate) fn append_file<W: Write>(
    archive: &mut tar::Builder<W>,
    path: impl AsRef<Path>,
    mode: u32,
    size: u64,
    data: impl Read,
) -> io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(size);
    header.set_mode(mode);
    archive.append_data(&mut header, path, data)
}

/// Appends a directory with `mode` (tar would otherwise make it with the
/// unpacking user's default).
pub(crate) fn append_dir<W: Write>(
    archive: &mut tar::Builder<W>,
    path: impl AsRef<Path>,
    mode: u32,
) -> io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_size(0);
    header.set_mode(mode);
    archive.append_data(&mut header, path, io::empty())
}
