//! The five kinds of secret a session uses, and how each is looked for:
//! as it is and base64-encoded at each of the three alignments it can take
//! inside a longer encoding, in both alphabets.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};

/// One secret: its kind, and its value.
#[derive(Debug, Clone)]
pub(crate) struct Secret {
    pub(crate) kind: &'static str,
    pub(crate) value: String,
    /// Allowed in claude's own environment (the SSH key is allowed nowhere).
    pub(crate) in_claude_env: bool,
}

/// The values of one run, unique to it.
#[derive(Debug, Clone)]
pub(crate) struct Secrets {
    pub(crate) prompted: Secret,
    pub(crate) host_variable: Secret,
    pub(crate) literal: Secret,
    pub(crate) oauth: Secret,
    /// The private key's base64 body lines.
    pub(crate) ssh_key: Vec<Secret>,
}

impl Secrets {
    pub(crate) fn new(run: &str) -> Self {
        let tag: String = run
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect::<String>();
        let secret = |kind, value: String| Secret {
            kind,
            value,
            in_claude_env: true,
        };
        Self {
            prompted: secret("the prompted secret", format!("prompted{tag}q7")),
            host_variable: secret("the ${VAR} secret", format!("hostvar{tag}w3")),
            // An API key: Claude Code keeps its last 20 characters.
            literal: secret(
                "the literal (the API key)",
                format!("sk-ant-literal-0123456789-{tag}e5"),
            ),
            oauth: secret("the OAuth token", format!("oauth{tag}r9")),
            ssh_key: Vec::new(),
        }
    }

    pub(crate) fn with_ssh_key(mut self, lines: Vec<String>) -> Self {
        self.ssh_key = lines
            .into_iter()
            .map(|value| Secret {
                kind: "the SSH key",
                value,
                in_claude_env: false,
            })
            .collect();
        self
    }

    /// Every secret, the key's lines last.
    pub(crate) fn all(&self) -> Vec<&Secret> {
        [
            &self.prompted,
            &self.host_variable,
            &self.literal,
            &self.oauth,
        ]
        .into_iter()
        .chain(&self.ssh_key)
        .collect()
    }

    /// The kinds of secret whose value, in any form, `text` holds.
    pub(crate) fn found_in(&self, text: &str) -> Vec<&'static str> {
        let mut found: Vec<_> = self
            .all()
            .into_iter()
            .filter(|s| forms(&s.value).iter().any(|f| text.contains(f.as_str())))
            .map(|s| s.kind)
            .collect();
        found.dedup();
        found
    }

    /// Every form of every value, one per line: for `grep -F -f`.
    pub(crate) fn needles(&self) -> String {
        self.all()
            .iter()
            .flat_map(|s| forms(&s.value))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Which kind a needle (one line of [`Self::needles`]) belongs to.
    pub(crate) fn kind_of_form(&self, form: &str) -> Option<&'static str> {
        self.all()
            .into_iter()
            .find(|s| forms(&s.value).iter().any(|f| f == form))
            .map(|s| s.kind)
    }
}

/// `value` as it is, and the base64 characters it alone decides when it
/// starts at byte 0, 1 or 2 of a group, in the standard and URL alphabets.
pub(crate) fn forms(value: &str) -> Vec<String> {
    let mut forms = vec![value.to_owned()];
    for offset in 0..3 {
        let mut bytes = vec![0u8; offset];
        bytes.extend_from_slice(value.as_bytes());
        let total_bits = bytes.len() * 8;
        // Characters that also hold bits of what comes before or after
        // are left off at both ends.
        let first = (offset * 8).div_ceil(6);
        let last = total_bits / 6;
        for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
            let encoded = engine.encode(&bytes);
            if let Some(inner) = encoded.get(first..last) {
                if inner.len() >= 8 && !forms.iter().any(|f| f == inner) {
                    forms.push(inner.to_owned());
                }
            }
        }
    }
    forms
}

/// The search's own control: an encoded value inside longer encodings,
/// at every alignment, is found, and no encoded form holds the value
/// itself (which would make the plain search do the work).
pub(crate) fn forms_are_found_at_every_alignment() {
    let value = "hostvar-abc-123";
    let forms = forms(value);
    for prefix in ["", "x", "xy", "xyz"] {
        for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
            let text = engine.encode(format!("{prefix}{value}!tail"));
            assert!(
                forms.iter().skip(1).any(|f| text.contains(f.as_str())),
                "{prefix:?}: {text} holds none of {forms:?}"
            );
        }
    }
    assert!(!forms.iter().skip(1).any(|f| f.contains(value)));
}
