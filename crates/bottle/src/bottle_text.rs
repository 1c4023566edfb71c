//! Text that came out of a bottle, made safe to print.
//!
//! Whatever a bottle says is the agent's word: an exec's stderr, a branch
//! name, git's complaint about a bundle it wrote. Printed raw, an escape
//! sequence in it can set the user's clipboard (OSC 52), clear the screen
//! and paint a question of its own, or hide everything after it; a bidi
//! override makes a name read as another. So such text passes through
//! [`shown`] as it enters this process, and prints as plain text: every
//! control and invisible formatting character appears as a visible escape
//! (`\x1b`, `\u{202e}`) that a terminal does not act on. A line break
//! too: what a bottle says is one line of the host's, and cannot forge the
//! next (a `came home:` of its own making).
//!
//! It is also kept to a bound ([`Tail`]): a bottle can say without end.

use std::fmt::Write as _;

/// `text` with every character a terminal would act on, or that would not
/// show, written as a visible escape.
pub fn shown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '\t' || !acts_or_hides(c) {
            out.push(c);
        } else if c.is_ascii() {
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        } else {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        }
    }
    out
}

/// `bytes` as text (invalid UTF-8 replaced), then [`shown`].
pub fn shown_bytes(bytes: &[u8]) -> String {
    shown(&String::from_utf8_lossy(bytes))
}

/// Controls (C0, DEL, C1), and the characters that reorder, join or hide
/// text: bidi controls, zero-width and other invisible format characters,
/// line and paragraph separators, tags and the byte order mark.
fn acts_or_hides(c: char) -> bool {
    c.is_control()
        || matches!(
            u32::from(c),
            0x00AD
                | 0x034F
                | 0x0600..=0x0605
                | 0x06DD
                | 0x070F
                | 0x08E2
                | 0x061C
                | 0x115F..=0x1160
                | 0x17B4..=0x17B5
                | 0x180B..=0x180F
                | 0x200B..=0x200F
                | 0x2028..=0x202E
                | 0x205F..=0x206F
                | 0x3164
                | 0xFE00..=0xFE0F
                | 0xFEFF
                | 0xFFA0
                | 0xFFF0..=0xFFFB
                | 0x13430..=0x1343F
                | 0x1BCA0..=0x1BCA3
                | 0x1D173..=0x1D17A
                | 0xE0000..=0xE0FFF
        )
}

/// What a message keeps of a text it quotes.
const MESSAGE_KEPT: usize = 4 << 10;

/// The last `limit` bytes of what a bottle said, and how many came before
/// them: what an error needs is at its end.
#[derive(Debug, Clone)]
pub struct Tail {
    limit: usize,
    kept: Vec<u8>,
    dropped: u64,
}

impl Tail {
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            kept: Vec::new(),
            dropped: 0,
        }
    }

    /// What a message shows of `bytes`: its end, trimmed.
    pub fn of(bytes: &[u8]) -> Self {
        let mut tail = Self::new(MESSAGE_KEPT);
        tail.push(bytes.trim_ascii());
        tail
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.kept.extend_from_slice(bytes);
        // Trimmed in halves, so a stream of small chunks costs little.
        if self.kept.len() > self.limit.saturating_mul(2) {
            let over = self.kept.len() - self.limit;
            self.kept.drain(..over);
            self.dropped += over as u64;
        }
    }

    /// What was kept, [`shown`], with a note of what was not.
    pub fn shown(&self) -> String {
        let start = self.kept.len().saturating_sub(self.limit);
        let dropped = self.dropped + start as u64;
        let text = shown_bytes(&self.kept[start..]);
        if dropped == 0 {
            text
        } else {
            format!("[{dropped} bytes before this not kept] {text}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_invisible_characters_show_as_text_and_do_nothing() {
        // OSC 52 (the clipboard), a screen clear, conceal, a carriage return.
        let osc52 = "a\x1b]52;c;cHduZWQ=\x07b";
        assert_eq!(shown(osc52), "a\\x1b]52;c;cHduZWQ=\\x07b");
        assert_eq!(shown("\x1b[2J\x1b[H"), "\\x1b[2J\\x1b[H");
        assert_eq!(shown("x\x1b[8my"), "x\\x1b[8my");
        assert_eq!(shown("over\rwritten"), "over\\x0dwritten");
        // C1 controls: CSI and OSC as one character each.
        assert_eq!(shown("\u{9b}2J\u{9d}52"), "\\u{9b}2J\\u{9d}52");
        // Bidi overrides and invisible characters.
        assert_eq!(shown("main\u{202e}exe.txt"), "main\\u{202e}exe.txt");
        assert_eq!(shown("a\u{200b}b\u{feff}"), "a\\u{200b}b\\u{feff}");
        assert_eq!(shown("x\u{2028}y"), "x\\u{2028}y");
        // Plain text, lines and other scripts stay as they are.
        assert_eq!(
            shown("fatal: bad\tline ünïcödé 日本"),
            "fatal: bad\tline ünïcödé 日本"
        );
        assert_eq!(shown_bytes(b"\xff\x1b"), "\u{fffd}\\x1b");
        // No line of its own: a forged `came home:` stays on the line.
        assert_eq!(shown("bad\ncame home: x"), "bad\\x0acame home: x");
    }

    #[test]
    fn a_tail_keeps_the_end_within_its_bound_and_says_what_it_dropped() {
        let mut tail = Tail::new(8);
        tail.push(b"0123");
        assert_eq!(tail.shown(), "0123");
        for _ in 0..10_000 {
            tail.push(b"abcdefgh");
        }
        tail.push(b"\x1bEND");
        assert!(tail.kept.len() <= 16);
        assert_eq!(
            tail.shown(),
            "[80000 bytes before this not kept] efgh\\x1bEND"
        );
    }
}
