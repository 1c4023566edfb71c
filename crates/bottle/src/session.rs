//! The user's side of a session: whether there is a terminal, its size,
//! and raw mode. The command line implements [`Console`] over the real
//! terminal; backends only ask it.

use std::io;

/// Keeps the terminal in raw mode while alive; restores it when dropped.
pub type RawModeGuard = Box<dyn Send>;

pub trait Console: Send + Sync {
    /// Whether claude gets a TTY: stdin and stdout are both terminals.
    fn is_tty(&self) -> bool;
    /// Rows and columns of the user's terminal.
    fn size(&self) -> Option<(u16, u16)>;
    /// Puts the terminal in raw mode for the session.
    fn raw_mode(&self) -> io::Result<RawModeGuard>;
}
