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

/// Appends the file at `source` as `name`: a link as a link (never what it
/// points to), a regular file as exactly the size it had when its header
/// was written, so one that grows or shrinks meanwhile cannot break the
/// archive. Anything else is left out.
pub(crate) fn append_from_disk<W: Write>(
    archive: &mut tar::Builder<W>,
    source: &Path,
    name: &Path,
) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let meta = std::fs::symlink_metadata(source)?;
    let mut header = tar::Header::new_gnu();
    header.set_mode(meta.permissions().mode() & 0o7777);
    header.set_mtime(
        meta.modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs()),
    );
    if meta.file_type().is_symlink() {
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        return archive.append_link(&mut header, name, std::fs::read_link(source)?);
    }
    if !meta.is_file() {
        return Ok(());
    }
    let size = meta.len();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(size);
    let data = std::fs::File::open(source)?
        .take(size)
        .chain(io::repeat(0))
        .take(size);
    archive.append_data(&mut header, name, data)
}
