//! Everything that touches the user's terminal.
//!
//! Questions are asked only where the user can see and answer them: stdin
//! and stderr both terminals. `/dev/tty` is never opened behind the user's
//! back, so a piped or scripted run never blocks on a hidden prompt.

use std::io::{self, BufRead, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use bottle::env::{Secret, SecretPrompt};
use bottle::ui::{ClaudeStreams, Progress, RawModeGuard, Ui, Work};
use rustix::termios::{self, LocalModes, OptionalActions};
use tokio::sync::mpsc;

use crate::progress::Shown;

/// Whether questions can be asked.
pub(crate) fn can_ask() -> bool {
    io::stdin().is_terminal() && io::stderr().is_terminal()
}

/// Runs a blocking exchange with the user on a thread of its own, so that
/// a signal can end the wait (a read of stdin cannot be cancelled). The
/// thread is left behind if so; the process is ending anyway.
pub(crate) async fn off_thread<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    let (answer, answered) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = answer.send(work());
    });
    answered
        .await
        .expect("the terminal thread answers unless it panicked")
}

/// The terminal's mode when the command started, to put back when a
/// signal ends it in the middle of a question (echo off) or a session.
#[derive(Debug)]
pub(crate) struct TerminalState(Option<termios::Termios>);

impl TerminalState {
    pub(crate) fn save() -> Self {
        Self(termios::tcgetattr(io::stdin()).ok())
    }

    pub(crate) fn restore(&self) {
        if let Some(saved) = &self.0 {
            let _ = termios::tcsetattr(io::stdin(), OptionalActions::Now, saved);
        }
    }
}

/// Asks a y/N question on stderr; only y, Y, yes and YES mean yes. An
/// input that ended answers nothing.
pub(crate) fn ask(question: &str) -> io::Result<Option<bool>> {
    eprint!("{question} [y/N] ");
    io::stderr().flush()?;
    let mut answer = String::new();
    if io::stdin().lock().read_line(&mut answer)? == 0 {
        return Ok(None);
    }
    Ok(Some(is_yes(&answer)))
}

/// Asks `question` on stderr; the line typed, trimmed, or `None` once the
/// input has ended.
pub(crate) fn ask_line(question: &str) -> io::Result<Option<String>> {
    eprint!("{question} ");
    io::stderr().flush()?;
    let mut answer = String::new();
    if io::stdin().lock().read_line(&mut answer)? == 0 {
        return Ok(None);
    }
    Ok(Some(answer.trim().to_owned()))
}

/// [`ask`], where an ended input is a no.
pub(crate) fn confirm(question: &str) -> io::Result<bool> {
    Ok(ask(question)?.unwrap_or(false))
}

fn is_yes(answer: &str) -> bool {
    matches!(
        answer.trim_end_matches(['\r', '\n']),
        "y" | "Y" | "yes" | "YES"
    )
}

/// Reads secrets from stdin with echo off.
#[derive(Debug)]
pub(crate) struct TerminalPrompt;

impl SecretPrompt for TerminalPrompt {
    fn ask(&mut self, name: &str, question: Option<&str>) -> io::Result<Secret> {
        let stdin = io::stdin();
        let line = {
            // Echo goes off before the question shows, so nothing typed in
            // answer to it is ever echoed; it comes back on every path.
            let _echo_off = EchoOff::new(&stdin)?;
            match question {
                Some(question) => eprint!("{question} ({name}): "),
                None => eprint!("{name}: "),
            }
            io::stderr().flush()?;
            let mut line = String::new();
            stdin.lock().read_line(&mut line)?;
            line
        };
        eprintln!();
        Ok(Secret::new(line.trim_end_matches(['\r', '\n'])))
    }
}

/// Terminal echo switched off for as long as this lives.
struct EchoOff<'a> {
    stdin: &'a io::Stdin,
    saved: termios::Termios,
}

impl<'a> EchoOff<'a> {
    fn new(stdin: &'a io::Stdin) -> io::Result<Self> {
        let saved = termios::tcgetattr(stdin)?;
        let mut silent = saved.clone();
        silent.local_modes -= LocalModes::ECHO;
        termios::tcsetattr(stdin, OptionalActions::Now, &silent)?;
        Ok(Self { stdin, saved })
    }
}

impl Drop for EchoOff<'_> {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(self.stdin, OptionalActions::Now, &self.saved);
    }
}

/// The user's real terminal and this process's streams.
#[derive(Debug)]
pub(crate) struct TerminalUi;

impl Ui for TerminalUi {
    fn is_tty(&self) -> bool {
        io::stdin().is_terminal() && io::stdout().is_terminal()
    }

    fn size(&self) -> Option<(u16, u16)> {
        let size = termios::tcgetwinsize(io::stdout()).ok()?;
        (size.ws_row > 0 && size.ws_col > 0).then_some((size.ws_row, size.ws_col))
    }

    fn raw_mode(&self) -> io::Result<RawModeGuard> {
        let saved = termios::tcgetattr(io::stdin())?;
        let mut raw = saved.clone();
        raw.make_raw();
        termios::tcsetattr(io::stdin(), OptionalActions::Now, &raw)?;
        Ok(Box::new(RawMode { saved }))
    }

    fn claude_streams(&self) -> ClaudeStreams {
        ClaudeStreams {
            stdin: stdin_chunks(),
            stdout: Box::pin(ScreenWatch::new(tokio::io::stdout())),
            stderr: Box::pin(tokio::io::stderr()),
            resized: resizes(),
        }
    }

    fn progress(&self, label: &str, work: Work) -> Box<dyn Progress> {
        Box::new(Shown::new(label, work))
    }

    fn warn(&self, message: &str) {
        crate::progress::eprintln_above(&format!("warning: {message}"));
    }

    fn tell(&self, message: &str) {
        crate::progress::eprintln_above(message);
    }

    fn tells_a_terminal(&self) -> bool {
        io::stderr().is_terminal()
    }

    fn confirm(&self, question: &str) -> Option<bool> {
        if !can_ask() {
            return None;
        }
        ask(question).ok().flatten()
    }
}

/// The user's stdin, read on its own thread (reads of stdin cannot be
/// cancelled); the channel closes once it ends. The thread reads only
/// while the session listens, so what is typed after it (the answer to a
/// question) is not swallowed.
fn stdin_chunks() -> mpsc::Receiver<Vec<u8>> {
    let (sender, receiver) = mpsc::channel(16);
    std::thread::spawn(move || {
        let mut stdin = io::stdin().lock();
        let mut buf = vec![0u8; 8192];
        loop {
            if !wait_readable(&stdin, || sender.is_closed()) {
                break;
            }
            match io::Read::read(&mut stdin, &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if sender.blocking_send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    receiver
}

/// Waits until `input` can be read without blocking; false once `gone`
/// says nobody listens any more.
fn wait_readable(input: &impl std::os::fd::AsFd, gone: impl Fn() -> bool) -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let tick = Timespec {
        tv_sec: 0,
        tv_nsec: 100_000_000,
    };
    loop {
        if gone() {
            return false;
        }
        let mut fds = [PollFd::new(input, PollFlags::IN)];
        match poll(&mut fds, Some(&tick)) {
            Ok(0) | Err(rustix::io::Errno::INTR) => {}
            // Readable, hung up or in error: the read says which.
            Ok(_) | Err(_) => return !gone(),
        }
    }
}

/// A tick on each SIGWINCH: the terminal was resized.
fn resizes() -> mpsc::Receiver<()> {
    let (sender, receiver) = mpsc::channel(1);
    if let Ok(mut signal) =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
    {
        tokio::spawn(async move {
            while signal.recv().await.is_some() {
                // One pending tick is enough: the size is read afresh.
                let _ = sender.try_send(());
                if sender.is_closed() {
                    break;
                }
            }
        });
    }
    receiver
}

/// Restores the terminal's mode when dropped.
struct RawMode {
    saved: termios::Termios,
}

/// What a program in the bottle may have left the terminal in, undone, so
/// that what follows the session (its summary, a question) shows as it
/// is: attributes off (conceal among them), the cursor shown, the default
/// colours (OSC 104, 110-112), the ASCII character set, autowrap on and
/// reverse video off, the whole screen as the scroll region (the cursor
/// kept where it is), mouse, focus and paste reports off, the keypad,
/// cursor keys and keyboard protocols as usual.
const TERMINAL_RESET: &str = concat!(
    "\x1b[0m\x1b[?25h",
    "\x1b]104\x07\x1b]110\x07\x1b]111\x07\x1b]112\x07",
    "\x1b(B\x0f\x1b[?7h\x1b[?5l\x1b7\x1b[r\x1b8",
    "\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1006l\x1b[?1004l\x1b[?2004l",
    "\x1b[?1l\x1b>\x1b[=0;1u\x1b[>4;0m",
);
/// Back to the main screen: only said when the session left the terminal
/// on the other one, since some terminals move the cursor on it anyway.
const MAIN_SCREEN: &str = "\x1b[?1049l";

/// Whether the session's output last switched the terminal to its
/// alternate screen (one session per process).
static ON_ALTERNATE_SCREEN: AtomicBool = AtomicBool::new(false);

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(io::stdin(), OptionalActions::Now, &self.saved);
    }
}

/// claude's stdout, watched for switches between the main and the
/// alternate screen as the bytes pass (a sequence split between writes,
/// with other modes beside it, or as a C1 control, included); when the
/// session's streams go, a terminal there is reset ([`TERMINAL_RESET`]),
/// whether claude had a TTY or not.
struct ScreenWatch<W> {
    inner: W,
    /// The end of the last write: the start of a sequence it may have cut.
    carry: Vec<u8>,
}

impl<W> ScreenWatch<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            carry: Vec::new(),
        }
    }

    fn watch(&mut self, bytes: &[u8]) {
        /// Longer than any private mode sequence that names a screen.
        const LONGEST: usize = 64;
        let mut seen = std::mem::take(&mut self.carry);
        seen.extend_from_slice(bytes);
        let mut last = None;
        let mut at = 0;
        while at < seen.len() {
            let start = match &seen[at..] {
                // CSI, as ESC [ or as a C1 control in UTF-8.
                [0x1b, b'[', b'?', ..] | [0xc2, 0x9b, b'?', ..] => 3,
                _ => {
                    at += 1;
                    continue;
                }
            };
            let params_at = at + start;
            let params_len = seen[params_at..]
                .iter()
                .take_while(|b| b.is_ascii_digit() || **b == b';')
                .count();
            let on = match seen.get(params_at + params_len) {
                Some(b'h') => true,
                Some(b'l') => false,
                _ => {
                    at += 1;
                    continue;
                }
            };
            let params = &seen[params_at..params_at + params_len];
            if params
                .split(|b| *b == b';')
                .any(|p| matches!(p, b"1049" | b"1047" | b"47"))
            {
                last = Some(on);
            }
            at = params_at + params_len + 1;
        }
        if let Some(on) = last {
            ON_ALTERNATE_SCREEN.store(on, Ordering::Relaxed);
        }
        self.carry = seen[seen.len().saturating_sub(LONGEST)..].to_vec();
    }
}

impl<W> Drop for ScreenWatch<W> {
    fn drop(&mut self) {
        let mut stdout = io::stdout();
        if !stdout.is_terminal() {
            return;
        }
        let _ = stdout.write_all(TERMINAL_RESET.as_bytes());
        if ON_ALTERNATE_SCREEN.swap(false, Ordering::Relaxed) {
            let _ = stdout.write_all(MAIN_SCREEN.as_bytes());
        }
        let _ = stdout.flush();
    }
}

impl<W: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for ScreenWatch<W> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        let written = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if let std::task::Poll::Ready(Ok(n)) = written {
            self.watch(&buf[..n]);
        }
        written
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_alternate_screen_is_followed_across_writes() {
        let mut watch = super::ScreenWatch::new(Vec::<u8>::new());
        watch.watch(b"text\x1b[?104");
        watch.watch(b"9hmore");
        assert!(super::ON_ALTERNATE_SCREEN.load(super::Ordering::Relaxed));
        watch.watch(b"\x1b[?1049lback\x1b[?47h\x1b[?4");
        assert!(super::ON_ALTERNATE_SCREEN.load(super::Ordering::Relaxed));
        watch.watch(b"7l");
        assert!(!super::ON_ALTERNATE_SCREEN.load(super::Ordering::Relaxed));
        // Beside other modes, and as a C1 CSI.
        watch.watch(b"\x1b[?1;1049h");
        assert!(super::ON_ALTERNATE_SCREEN.load(super::Ordering::Relaxed));
        watch.watch("\u{9b}?1049;1l".as_bytes());
        assert!(!super::ON_ALTERNATE_SCREEN.load(super::Ordering::Relaxed));
    }

    use super::is_yes;

    #[test]
    fn only_the_four_spellings_of_yes_mean_yes() {
        for yes in ["y\n", "Y\n", "yes\n", "YES\r\n"] {
            assert!(is_yes(yes), "{yes:?}");
        }
        for no in ["", "\n", "n\n", "Yes\n", "yes please\n", " y\n", "ja\n"] {
            assert!(!is_yes(no), "{no:?}");
        }
    }
}
