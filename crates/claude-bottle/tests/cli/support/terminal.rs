//! The one pseudo-terminal driver: the binary in a tmux window of its own
//! (100x30, `TERM=xterm-256color`), typed at like a user would, resized,
//! signalled, its mode read with `stty`, and both what the screen shows
//! (rendered) and every byte the binary wrote (raw) at hand.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use super::label::run_label;
use super::sandbox::{BIN, Sandbox};

/// A tmux server of its own running `claude-bottle ARGS` in one window.
/// The server is killed when dropped.
pub(crate) struct Terminal {
    socket: String,
    raw: PathBuf,
}

/// How long anything awaited on the screen may take to show.
const SHOWS_WITHIN: Duration = Duration::from_secs(40);

/// How long claude-bottle may take to end: as a run off a terminal, it may
/// hold a whole build, which under a parallel test run takes minutes.
const ENDS_WITHIN: Duration = Duration::from_secs(300);

impl Terminal {
    pub(crate) fn start(sandbox: &Sandbox, args: &[&str]) -> Self {
        let socket = run_label("cb-tty");
        let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
        let env: Vec<String> = sandbox
            .command(&[])
            .get_envs()
            .filter_map(|(k, v)| Some(format!("{}={}", k.to_str()?, quote(v?.to_str()?))))
            .chain(["TERM=xterm-256color".to_owned()])
            .collect();
        let args: Vec<String> = args.iter().map(|a| quote(a)).collect();
        let dir = sandbox.cwd.parent().unwrap().join(&socket);
        std::fs::create_dir_all(&dir).unwrap();
        let go = dir.join("go");
        let raw = dir.join("raw");
        // The inner shell shows its pid, then becomes claude-bottle; the
        // outer one waits until the raw capture runs, shows how the inner
        // one exited and keeps the pane open for `stty`.
        let inner = dir.join("inner.sh");
        std::fs::write(
            &inner,
            format!(
                "echo pid=$$\nexec env -i {} {BIN} {}\n",
                env.join(" "),
                args.join(" ")
            ),
        )
        .unwrap();
        let outer = dir.join("outer.sh");
        std::fs::write(
            &outer,
            format!(
                "trap : INT\nwhile [ ! -e '{}' ]; do sleep 0.02; done\ncd '{}'\nsh '{}'\necho exit=$?\nsleep 600\n",
                go.display(),
                sandbox.cwd.display(),
                inner.display()
            ),
        )
        .unwrap();
        let terminal = Self { socket, raw };
        terminal.tmux(&[
            "new-session",
            "-d",
            "-s",
            "s",
            "-x",
            "100",
            "-y",
            "30",
            &format!("sh '{}'", outer.display()),
        ]);
        terminal.tmux(&[
            "pipe-pane",
            "-t",
            "s",
            &format!("cat >> '{}'", terminal.raw.display()),
        ]);
        std::fs::write(go, "").unwrap();
        terminal
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The window as rendered, its history included, wrapped lines joined.
    pub(crate) fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-J", "-S", "-", "-t", "s"])
    }

    /// The window as rendered, with its attributes as escape sequences.
    pub(crate) fn screen_with_attributes(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-e", "-J", "-t", "s"])
    }

    /// Whether the window shows its alternate screen.
    pub(crate) fn on_alternate_screen(&self) -> bool {
        self.tmux(&["display", "-p", "-t", "s", "#{alternate_on}"])
            .trim()
            == "1"
    }

    /// The screen, once it shows `what`.
    #[track_caller]
    pub(crate) fn wait_for(&self, what: &str) -> String {
        self.wait_for_within(what, SHOWS_WITHIN)
    }

    #[track_caller]
    fn wait_for_within(&self, what: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let screen = self.screen();
            if screen.contains(what) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "`{what}` never showed:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Types `text` as it is; each `\n` is the Enter key.
    pub(crate) fn type_text(&self, text: &str) {
        for (i, line) in text.split('\n').enumerate() {
            if i > 0 {
                self.keys(&["Enter"]);
            }
            if !line.is_empty() {
                self.tmux(&["send-keys", "-t", "s", "-l", line]);
            }
        }
    }

    /// Presses keys by their tmux names (`C-c`, `Enter`).
    pub(crate) fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "s"];
        args.extend(keys);
        self.tmux(&args);
    }

    pub(crate) fn resize(&self, rows: u16, cols: u16) {
        let (rows, cols) = (rows.to_string(), cols.to_string());
        self.tmux(&["resize-window", "-t", "s", "-x", &cols, "-y", &rows]);
    }

    /// The terminal's mode as `stty` sees it from outside.
    pub(crate) fn stty(&self) -> String {
        let tty = self.tmux(&["display", "-p", "-t", "s", "#{pane_tty}"]);
        let out = Command::new("sh")
            .args(["-c", &format!("stty -a < {}", tty.trim())])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Whether the terminal is in raw mode (no line editing, no echo).
    pub(crate) fn is_raw(&self) -> bool {
        let stty = self.stty();
        let flags: Vec<&str> = stty.split_whitespace().collect();
        flags.contains(&"-icanon") && flags.contains(&"-echo")
    }

    /// claude-bottle's pid.
    pub(crate) fn pid(&self) -> u32 {
        let screen = self.wait_for("pid=");
        screen
            .lines()
            .find_map(|l| l.strip_prefix("pid="))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// Sends `signal` (`TERM`, `HUP`) to claude-bottle.
    pub(crate) fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -{signal}");
    }

    /// claude-bottle's exit status, once it has ended.
    #[track_caller]
    pub(crate) fn exit_status(&self) -> i32 {
        let screen = self.wait_for_within("exit=", ENDS_WITHIN);
        // `exit=` may follow an echoed `^C` on its line.
        screen
            .lines()
            .find_map(|l| l.split("exit=").nth(1))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// Every byte the window received, once claude-bottle has ended.
    pub(crate) fn output(&self) -> Vec<u8> {
        self.exit_status();
        let deadline = Instant::now() + SHOWS_WITHIN;
        loop {
            let bytes = std::fs::read(&self.raw).unwrap_or_default();
            if bytes.windows(5).any(|w| w == b"exit=") {
                return bytes;
            }
            assert!(Instant::now() < deadline, "the raw capture never ended");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        self.tmux(&["kill-server"]);
    }
}

impl Sandbox {
    /// Runs `claude-bottle ARGS` on a terminal of its own, untouched; its
    /// exit code and every byte it wrote.
    pub(crate) fn run_on_terminal(&self, args: &[&str]) -> (i32, Vec<u8>) {
        let terminal = Terminal::start(self, args);
        let bytes = terminal.output();
        (terminal.exit_status(), bytes)
    }
}
