//! How the library reaches the user: through [`Ui`], which the command line
//! implements over its terminal and its process's streams. The library
//! itself never prints, reads stdin or draws progress, so another front
//! end (a daemon, a test) can run bottles with a `Ui` of its own.

use std::io;
use std::pin::Pin;

use tokio::io::AsyncWrite;
use tokio::sync::mpsc;

/// Keeps the terminal in raw mode while alive; restores it when dropped.
pub type RawModeGuard = Box<dyn Send>;

/// A stream claude's output is written to.
pub type OutputStream = Pin<Box<dyn AsyncWrite + Send>>;

/// What long work is counted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// Bytes, of a total when it is known (a download).
    Bytes { total: Option<u64> },
    /// Steps whose number is not known in advance (a build, a pull).
    Steps,
    /// Work that is usually over within a second (starting a bottle,
    /// asking the engine): shown only while it takes longer, and only on
    /// a terminal.
    Brief,
}

/// Long work under way, as the user sees it.
pub trait Progress: Send + Sync {
    fn advance(&self, bytes: u64);
    /// What the work is doing now (a build step, a layer).
    fn status(&self, status: &str);
    /// Ends the work with a one-word outcome.
    fn finish(&self, outcome: &str);
}

/// A stream whose bytes are counted on `progress` as they are read.
pub(crate) struct Counted<'p, R> {
    pub(crate) inner: R,
    pub(crate) progress: &'p dyn Progress,
}

impl<R: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Counted<'_, R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.progress.advance((buf.filled().len() - before) as u64);
        polled
    }
}

/// claude's streams: the user's input in chunks (ending when it ends),
/// where its output and its errors go, and a tick each time the user's
/// terminal is resized.
pub struct ClaudeStreams {
    pub stdin: mpsc::Receiver<Vec<u8>>,
    pub stdout: OutputStream,
    pub stderr: OutputStream,
    pub resized: mpsc::Receiver<()>,
}

impl std::fmt::Debug for ClaudeStreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClaudeStreams").finish_non_exhaustive()
    }
}

pub trait Ui: std::fmt::Debug + Send + Sync {
    /// Whether claude gets a TTY: stdin and stdout are both terminals.
    fn is_tty(&self) -> bool;
    /// Rows and columns of the user's terminal.
    fn size(&self) -> Option<(u16, u16)>;
    /// Puts the terminal in raw mode for the session.
    fn raw_mode(&self) -> io::Result<RawModeGuard>;
    /// The session's streams; asked once, when claude starts.
    fn claude_streams(&self) -> ClaudeStreams;
    /// Starts showing long work labelled `label`.
    fn progress(&self, label: &str, work: Work) -> Box<dyn Progress>;
    /// Something went wrong that did not stop the command.
    fn warn(&self, message: &str);
    /// A line for the user about what happened (a session's summary).
    fn tell(&self, message: &str);
    /// Whether what `tell` says reaches only the user's own terminal, not
    /// a log or a pipe: then refused names may be shown whole.
    fn tells_a_terminal(&self) -> bool;
    /// Asks a y/N question and waits for the answer; `None` when there is
    /// nobody to ask (no terminal, or its input ended).
    fn confirm(&self, question: &str) -> Option<bool>;
}
