//! What every command shares about talking to people and scripts: exit codes, `-o` formats,
//! color (on a terminal only, never with `NO_COLOR`), progress (on a terminal only), and
//! errors that say what to do next.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use provenance_core::UnixTime;

/// The exit codes of every `provenance` command (also in `--help` and the README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: verified, admitted, passed.
    Ok,
    /// 1: a verification or policy check failed (the evidence was read and does not prove
    /// what was asked), or a resource was blocked.
    Failed,
    /// 2: usage or input error (bad flags, unreadable or malformed files).
    Usage,
    /// 3: evidence could not be obtained (network, registry, missing image or layout entry).
    Evidence,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Failed => 1,
            Exit::Usage => 2,
            Exit::Evidence => 3,
        }
    }

    /// The worse of two outcomes (usage beats evidence beats failure beats ok).
    pub fn worst(self, other: Exit) -> Exit {
        let rank = |e: Exit| match e {
            Exit::Ok => 0,
            Exit::Failed => 1,
            Exit::Evidence => 2,
            Exit::Usage => 3,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e.code())
    }
}

/// The exit-code table printed after every command's `--help`.
pub const EXIT_CODES_HELP: &str = "Exit codes:
  0  verified / passed / admitted
  1  verification or policy failure (the evidence does not prove what was asked)
  2  usage or input error (flags, unreadable or malformed files)
  3  evidence could not be obtained (network, registry, image not found)";

/// An error a command stops on: its exit code, what went wrong, and what to do next.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The exit code it maps to.
    pub exit: Exit,
    /// A stable machine code (`cli.usage`, `oci.network`, `verify.identity.mismatch`, ...).
    pub code: String,
    /// What went wrong, with where.
    pub message: String,
    /// What to do about it, when there is something to say.
    pub hint: Option<String>,
}

impl Failure {
    /// A usage or input error (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Failure {
            exit: Exit::Usage,
            code: "cli.usage".into(),
            message: message.into(),
            hint: None,
        }
    }

    /// Evidence that could not be obtained (exit 3), from a `provenance-oci` error.
    pub fn evidence(what: &str, e: &provenance_oci::Error) -> Self {
        use provenance_oci::Error as E;
        let hint = match e {
            E::NotFound { .. } => Some(
                "check the image name and tag; with --registry-layout the layout must list it (`provenance inspect` shows what a layout or registry holds)",
            ),
            E::Network { .. } | E::Timeout { .. } => Some(
                "check that the registry is reachable; for an air-gapped site use `provenance export` where it is reachable and --registry-layout here",
            ),
            E::Auth { .. } => Some(
                "log in (`docker login` writes the credentials provenance reads from ~/.docker/config.json or $DOCKER_CONFIG)",
            ),
            E::InsecureNotAllowed { .. } => {
                Some("pass --allow-http REGISTRY if that registry really only speaks plain HTTP")
            }
            _ => None,
        };
        Failure {
            exit: Exit::Evidence,
            code: e.code().to_owned(),
            message: format!("{what}: {e}"),
            hint: hint.map(str::to_owned),
        }
    }

    /// A failed verification or check (exit 1).
    pub fn failed(code: impl Into<String>, message: impl Into<String>) -> Self {
        Failure {
            exit: Exit::Failed,
            code: code.into(),
            message: message.into(),
            hint: None,
        }
    }

    /// Adds what to do next.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The failure as JSON (`{"code", "message", "hint"}`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "code": self.code,
            "message": self.message,
            "hint": self.hint,
            "exitCode": self.exit.code(),
        })
    }

    /// Prints the failure on stderr (`error[code]: message` and `  hint: ...`).
    pub fn eprint(&self, command: &str) {
        let style = Style::stderr();
        eprintln!(
            "{}: {} [{}]",
            style.red(&format!("provenance {command}")),
            self.message,
            self.code
        );
        if let Some(h) = &self.hint {
            eprintln!("  {} {h}", style.bold("what to do:"));
        }
    }
}

/// The two output formats of the verification commands.
pub const TEXT_OR_JSON: [&str; 2] = ["text", "json"];

/// Colors for one stream: on only when the stream is a terminal and `NO_COLOR` is unset (or
/// empty), as <https://no-color.org> asks.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    on: bool,
}

fn color_allowed() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
}

impl Style {
    /// Styles for stdout.
    pub fn stdout() -> Self {
        Style {
            on: color_allowed() && std::io::stdout().is_terminal(),
        }
    }

    /// Styles for stderr.
    pub fn stderr() -> Self {
        Style {
            on: color_allowed() && std::io::stderr().is_terminal(),
        }
    }

    fn paint(self, s: &str, code: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    }

    /// Green (success).
    pub fn green(self, s: &str) -> String {
        self.paint(s, "32")
    }

    /// Red (failure).
    pub fn red(self, s: &str) -> String {
        self.paint(s, "31")
    }

    /// Yellow (warnings, unverified listings).
    pub fn yellow(self, s: &str) -> String {
        self.paint(s, "33")
    }

    /// Bold.
    pub fn bold(self, s: &str) -> String {
        self.paint(s, "1")
    }
}

/// A spinner on stderr for work that may take long, shown only when stderr is a terminal
/// (never in pipes, logs or tests). Dropping it clears it.
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    /// Starts a spinner with `message` (nothing when stderr is not a terminal).
    pub fn spinner(message: &str) -> Self {
        if !std::io::stderr().is_terminal() {
            return Progress { bar: None };
        }
        let bar = indicatif::ProgressBar::new_spinner();
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed}) {bytes}")
        {
            bar.set_style(style);
        }
        bar.set_message(message.to_owned());
        bar.enable_steady_tick(Duration::from_millis(120));
        Progress { bar: Some(bar) }
    }

    /// Sets the byte count shown.
    pub fn set_bytes(&self, bytes: u64) {
        if let Some(b) = &self.bar {
            b.set_position(bytes);
        }
    }

    /// Whether anything is shown.
    pub fn visible(&self) -> bool {
        self.bar.is_some()
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// The current time from the system clock.
pub fn system_now() -> UnixTime {
    UnixTime(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or_default(),
    )
}

/// `--now` if given (RFC 3339), else the system clock.
pub fn now_from(flag: Option<&str>) -> Result<UnixTime, Failure> {
    match flag {
        Some(s) => UnixTime::parse_rfc3339(s).ok_or_else(|| {
            Failure::usage(format!(
                "--now: not an RFC 3339 timestamp: {s} (example: 2026-01-31T12:00:00Z)"
            ))
        }),
        None => Ok(system_now()),
    }
}

/// A small async runtime for one command.
pub fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::usage(format!("cannot start the async runtime: {e}")))
}
