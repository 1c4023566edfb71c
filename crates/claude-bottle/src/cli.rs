//! The command line: every command, flag and help text, and nothing else.

use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand, ValueEnum};
use clap_complete::ArgValueCandidates;

use bottle::settings;

/// Run Claude Code agents in bottles: isolated containers holding exactly
/// what their manifest grants, whose only way out is an allowlisting egress
/// gate.
///
/// Agents and bottles are defined in claude-bottle.json, in the working
/// directory and in your home directory (the working directory's entries
/// win). `claude-bottle info AGENT` shows what an agent gets;
/// `claude-bottle start AGENT --dry-run` shows what a start would create.
#[derive(Debug, Parser)]
#[command(name = "claude-bottle", version, max_term_width = 100)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Start an agent in a new bottle and run Claude Code in it.
    ///
    /// Shows a preflight summary of what the bottle gets (egress hosts, SSH
    /// hosts, skills, environment names, runtime) and asks before creating
    /// anything. Secrets marked "?" in the manifest are asked after that.
    /// When claude exits, the bottle and everything in it are removed, and
    /// claude-bottle exits with claude's exit code.
    ///
    /// Without CLAUDE_BOTTLE_IMAGE the first start builds the default image:
    /// Claude Code's native binary, downloaded once from the npm registry
    /// (CLAUDE_BOTTLE_NPM_REGISTRY) and checked against the integrity pinned
    /// for its version, on debian:bookworm-slim (CLAUDE_BOTTLE_BASE_IMAGE).
    /// Later starts reuse it.
    ///
    /// Examples:
    ///
    ///   claude-bottle start
    ///
    ///   claude-bottle start implementer --cwd
    ///
    ///   claude-bottle start implementer --dry-run --format json | jq .egress
    ///
    ///   echo "fix the build" | claude-bottle start implementer --yes -- -p
    Start(StartArgs),

    /// List bottle instances: name, agent, age, runtime, state and owner.
    ///
    /// Instances are found by their labels on the engine. An owner is
    /// "live" while the claude-bottle process that started the instance
    /// runs, "dead" once it is gone, and "unknown" when it ran on another
    /// host or before a reboot.
    List {
        /// `text` (a table) or `json` (for scripts).
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },

    /// Print a running instance's egress decisions, one JSON line each.
    ///
    /// Each line holds the method, host, port, verdict and the rule that
    /// decided; never a path, query or header. Refused hosts appear as
    /// their registrable domain and a short hash.
    Logs {
        /// The instance, as `list` names it.
        instance: String,
    },

    /// Bring a running instance's new commits home now, into the
    /// repository of the working directory, as branches under
    /// claude-bottle/<instance>/ (a start with --cwd does this itself
    /// when the session ends). Your own branches never move.
    Fetch {
        /// The instance, as `list` names it.
        instance: String,
    },

    /// Remove what bottle instances left behind.
    ///
    /// Without names, removes every instance whose owner is dead (its
    /// containers, then its networks) and the stage directories of dead
    /// instances. Live instances are kept unless named or --include-live is
    /// given. Without names, also offers the default and gate images that
    /// are no longer current (a new base, version or claude-bottle made
    /// others). Shows the plan and asks first.
    ///
    /// Examples:
    ///
    ///   claude-bottle cleanup --dry-run
    ///
    ///   claude-bottle cleanup claude-bottle-implementer-x1y2z3 --yes
    Cleanup(CleanupArgs),

    /// Run the egress gate (inside a bottle's gate container).
    #[command(hide = true)]
    Gate(GateArgs),

    /// Relay the bottle's ssh-agent socket to the key holder outside it
    /// (inside a bottle, started by claude-bottle).
    #[command(hide = true)]
    SshRelay {
        /// The socket to listen on.
        #[arg(long)]
        socket: std::path::PathBuf,
    },

    /// Bind the gate's port on this network namespace's loopback and hand
    /// the listener to the gate over a Unix socket (inside a bottle's
    /// agent namespace, on engines whose networks reach the host).
    #[command(hide = true)]
    GateHandoff {
        /// Where the agent's processes reach the gate.
        #[arg(long)]
        listen: std::net::SocketAddr,
        /// The Unix socket the gate comes to for the listener.
        #[arg(long)]
        socket: std::path::PathBuf,
    },

    /// Print what the gate refused, names in full (inside a gate
    /// container, run by claude-bottle at the end of a session).
    #[command(hide = true)]
    GateReport,

    /// Tunnel stdin and stdout through the gate to HOST:PORT (the
    /// ProxyCommand of a bottle's SSH hosts).
    #[command(hide = true)]
    Connect {
        /// The gate, as host:port.
        #[arg(long)]
        proxy: String,
        host: String,
        port: u16,
    },

    /// Create claude-bottle.json, or add an agent (and its bottle) to it.
    ///
    /// On a terminal without --agent, asks for the agent's name, its
    /// bottle, the hosts it may reach and its prompt. The entries already in
    /// the file are not changed, reordered or reformatted: the new ones are
    /// added after them, in the file's own layout. The result is checked as
    /// `start` would check it before it is written, and written whole or
    /// not at all.
    ///
    /// Examples:
    ///
    ///   claude-bottle init
    ///
    ///   claude-bottle init --agent reviewer --allow github.com --prompt "You review pull requests."
    Init(InitArgs),

    /// Open an agent's prompt in $VISUAL or $EDITOR, and save it back.
    ///
    /// The prompt is written back in place, in the file that defines the
    /// agent (the working directory's before the home one); nothing else in
    /// the file changes. An editor that fails, text that is not UTF-8, or a
    /// file changed meanwhile leaves the file as it was.
    Edit {
        /// The agent, as named under "agents" in claude-bottle.json.
        #[arg(add = ArgValueCandidates::new(crate::completions::agents))]
        agent: String,
    },

    /// Print the JSON Schema of claude-bottle.json, for editors.
    ///
    /// Save it beside the manifest and name it there, and editors complete
    /// and check the file as you type:
    ///
    ///   claude-bottle schema > claude-bottle.schema.json
    ///
    /// then add "$schema": "./claude-bottle.schema.json" to the manifest.
    /// The schema knows the file's shape; claude-bottle itself checks the
    /// rest (host patterns, variable names) when it loads it.
    Schema,

    /// Show what an agent gets: its bottle, prompt, skills, environment
    /// names, SSH hosts and egress allowlist. Never asks for or shows a
    /// secret value.
    Info {
        /// The agent, as named under "agents" in claude-bottle.json.
        #[arg(add = ArgValueCandidates::new(crate::completions::agents))]
        agent: String,
    },

    /// Check what a start needs, and say how to fix what is missing.
    ///
    /// Checks that an engine answers (its kind, version, API version and
    /// address), whether gVisor is registered, that the default image is
    /// built or can be built (its base and Claude Code's binary can be had),
    /// the engine's free disk space, that the manifests load, that every
    /// agent's skills, SSH keys and host variables are found, that claude
    /// has a credential, and what the terminal can do. Creates, pulls and
    /// downloads nothing.
    ///
    /// Exits 0 when `start` can work (warnings included), 1 when something
    /// must be fixed first.
    ///
    /// Examples:
    ///
    ///   claude-bottle doctor
    ///
    ///   claude-bottle doctor --format json | jq '.checks[] | select(.verdict != "ok")'
    Doctor {
        /// `text` (for you) or `json` (for scripts).
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },

    /// Print the shell script that completes claude-bottle's commands,
    /// flags and agent names.
    ///
    /// Agent names come from the manifests of the directory you are in
    /// when you press Tab. The script asks this very executable, so
    /// re-source it after moving the executable. To load it in every new
    /// shell:
    ///
    ///   bash: echo 'source <(claude-bottle completions bash)' >> ~/.bashrc
    ///
    ///   zsh:  echo 'source <(claude-bottle completions zsh)' >> ~/.zshrc
    ///
    ///   fish: claude-bottle completions fish > ~/.config/fish/completions/claude-bottle.fish
    Completions {
        /// The shell to complete in.
        shell: Shell,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// The agent to add (asked for on a terminal when not given).
    #[arg(long)]
    pub(crate) agent: Option<String>,

    /// The bottle it runs in, added when no manifest defines it
    /// (default `dev`).
    #[arg(long)]
    pub(crate) bottle: Option<String>,

    /// A host the new bottle may reach, as an egress.allowlist entry
    /// (`github.com`, `*.example.com`, `host:8443`); repeat for more.
    #[arg(long = "allow", value_name = "HOST")]
    pub(crate) allow: Vec<String>,

    /// A skill folder under ~/.claude/skills/ for the agent; repeat for more.
    #[arg(long = "skill", value_name = "FOLDER")]
    pub(crate) skills: Vec<String>,

    /// The agent's system prompt.
    #[arg(long)]
    pub(crate) prompt: Option<String>,

    /// Mark the agent "default": true, the one `start` runs when given no name.
    #[arg(long)]
    pub(crate) default: bool,

    /// Write ~/claude-bottle.json instead of the working directory's.
    #[arg(long)]
    pub(crate) home: bool,
}

#[derive(Debug, Args)]
#[allow(
    clippy::struct_excessive_bools,
    reason = "each is one independent flag"
)]
pub(crate) struct StartArgs {
    /// The agent, as named under "agents" in claude-bottle.json. Without
    /// it: the agent marked "default": true, or the only one; with no
    /// manifest at all, a built-in agent with no prompt, skills or secrets
    /// that reaches only the hosts Claude Code itself needs.
    #[arg(add = ArgValueCandidates::new(crate::completions::agents))]
    pub(crate) agent: Option<String>,

    /// Copy the git repository of the working directory into the bottle's
    /// /workspace (its branches, the checked-out one, and uncommitted
    /// changes to tracked files); when the session ends, the agent's new
    /// commits come home as branches under claude-bottle/<instance>/.
    #[arg(long)]
    pub(crate) cwd: bool,

    /// With --cwd: copy the untracked files too, those .gitignore does not
    /// exclude. Symbolic links go in as links, never as what they point
    /// to; repositories nested in the work tree stay out.
    #[arg(long, requires = "cwd")]
    pub(crate) include_untracked: bool,

    /// Show the plan and stop; create nothing and ask nothing.
    #[arg(long, env = settings::DRY_RUN.name, value_parser = BoolishValueParser::new())]
    pub(crate) dry_run: bool,

    /// How to print the plan: `text` (on stderr) or `json` (on stdout; needs
    /// --dry-run).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub(crate) format: Format,

    /// Start Claude Code with --remote-control, reachable from claude.ai and
    /// the mobile app. You log in inside the bottle with /login; the OAuth
    /// token is not forwarded.
    #[arg(long)]
    pub(crate) remote_control: bool,

    /// Start without asking (needed when there is no terminal to ask on).
    #[arg(short, long)]
    pub(crate) yes: bool,

    /// Arguments passed to claude as they are, after `--`.
    #[arg(last = true, value_name = "CLAUDE_ARGS")]
    pub(crate) claude_args: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct CleanupArgs {
    /// Instances to remove, live or not (names as `list` shows them).
    pub(crate) instances: Vec<String>,

    /// Also remove instances whose owner is alive, or cannot be checked.
    #[arg(long)]
    pub(crate) include_live: bool,

    /// Remove without asking (needed when there is no terminal to ask on).
    #[arg(short, long)]
    pub(crate) yes: bool,

    /// Show what would be removed; remove nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
}

/// The gate's policy and bounds. It exits when its stdin closes.
#[derive(Debug, Args)]
pub(crate) struct GateArgs {
    /// Where to listen.
    #[arg(long, default_value = "0.0.0.0:3128")]
    pub(crate) listen: std::net::SocketAddr,

    /// Take the listener from the helper at this Unix socket instead
    /// (`gate-handoff`).
    #[arg(long, value_name = "SOCKET", conflicts_with = "listen")]
    pub(crate) listen_from: Option<std::path::PathBuf>,

    /// An allowlist entry (repeatable).
    #[arg(long = "allow", value_name = "ENTRY")]
    pub(crate) allow: Vec<String>,

    /// An allowlist entry whose names may resolve to private addresses.
    #[arg(long = "private", value_name = "ENTRY")]
    pub(crate) private: Vec<String>,

    /// An SSH host, admitted for CONNECT at its port (repeatable).
    #[arg(long = "ssh", value_name = "HOST:PORT")]
    pub(crate) ssh: Vec<String>,

    /// A name Claude Code itself calls that is refused as expected
    /// (repeatable).
    #[arg(long = "expected", value_name = "NAME")]
    pub(crate) expected: Vec<String>,

    /// The DNS server the gate asks (default: the container's resolver).
    #[arg(long, env = bottle::settings::GATE_DNS.name, value_name = "ADDR:PORT")]
    pub(crate) dns: Option<std::net::SocketAddr>,

    /// Connections served at once; more get a 503.
    #[arg(long, default_value_t = 256)]
    pub(crate) max_connections: usize,

    /// Seconds a request head may take to arrive.
    #[arg(long, default_value_t = 30)]
    pub(crate) header_timeout: u64,

    /// Seconds without traffic either way after which a connection closes.
    #[arg(long, default_value_t = 3600)]
    pub(crate) idle_timeout: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    Text,
    Json,
}
