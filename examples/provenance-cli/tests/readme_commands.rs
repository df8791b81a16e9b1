//! Every command in a fenced block marked ```` ```sh runnable ```` in `README.md`,
//! `examples/README.md`, `examples/*/README.md` and `docs/*.md` runs, from the repository root,
//! with the exit status written next to it.
//!
//! The convention (also described in the README's "Running the tests"):
//! - a block whose info string is `sh runnable` (or `bash runnable`) holds commands that run
//!   offline on the repository's own files;
//! - a command ends at a line that does not end with `\`; blank lines and `#` comment lines
//!   are skipped;
//! - a trailing `# exit N` comment on a command's last line is the exit status it must end
//!   with, 0 when there is none;
//! - `provenance` is the binary this test is built with, and so is
//!   `cargo run [--release] -p provenance-cli --` (the test does not call cargo);
//! - `cargo run -p CRATE [--features F] --example NAME -- ARGS` runs that crate's example
//!   binary, the one `cargo test --workspace` builds beside the test's (the test builds it with
//!   cargo only when it is missing, e.g. under `cargo test -p provenance-cli`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// One command of a runnable block.
#[derive(Debug)]
struct Runnable {
    /// `FILE:LINE` of the command's first line.
    at: String,
    /// For `cargo run -p CRATE [--features F] --example NAME --`: the crate, its features and
    /// the example, whose binary takes the place of [`EXAMPLE`] in `command`.
    example: Option<(String, Option<String>, String)>,
    /// The command with `provenance` as its program.
    command: String,
    /// The exit status it must end with.
    exit: i32,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The Markdown files whose runnable blocks are checked, relative to the repository root.
fn markdown_files(root: &Path) -> Vec<PathBuf> {
    let mut files = vec![
        PathBuf::from("README.md"),
        PathBuf::from("examples/README.md"),
    ];
    for dir in ["examples", "docs"] {
        let mut found: Vec<PathBuf> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .flat_map(|p| {
                if p.is_dir() {
                    vec![p.join("README.md")]
                } else if p.extension().is_some_and(|x| x == "md") && dir == "docs" {
                    vec![p]
                } else {
                    vec![]
                }
            })
            .filter(|p| p.is_file())
            .map(|p| p.strip_prefix(root).unwrap().to_path_buf())
            .collect();
        found.sort();
        files.extend(found);
    }
    files
}

/// Whether a fence's info string marks its block runnable.
fn is_runnable_fence(info: &str) -> bool {
    let mut words = info.split_whitespace();
    matches!(words.next(), Some("sh" | "bash")) && words.any(|w| w == "runnable")
}

/// The commands of the runnable blocks of one Markdown text.
fn runnables(file: &str, text: &str) -> Vec<Runnable> {
    let mut out = Vec::new();
    let mut in_block = false;
    let mut runnable = false;
    let mut pending: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if let Some(info) = trimmed.strip_prefix("```") {
            if in_block {
                assert!(
                    pending.is_none(),
                    "{file}:{}: a runnable block ends inside a command (a trailing `\\`)",
                    i + 1
                );
                in_block = false;
                runnable = false;
            } else {
                in_block = true;
                runnable = is_runnable_fence(info);
            }
            continue;
        }
        if !in_block || !runnable {
            continue;
        }
        if pending.is_none() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        let (start, mut text) = pending.take().unwrap_or((i + 1, String::new()));
        if let Some(head) = trimmed.strip_suffix('\\') {
            text.push_str(head);
            text.push(' ');
            pending = Some((start, text));
            continue;
        }
        text.push_str(trimmed);
        out.push(parse_command(&format!("{file}:{start}"), &text));
    }
    out
}

/// What a crate example's binary path is written as in a parsed command.
const EXAMPLE: &str = "@example@";

/// `-p CRATE [--features F] --example NAME -- REST` (after `cargo run `): the crate, the
/// features, the example and the rest.
fn example_command(args: &str) -> Option<(String, Option<String>, String, String)> {
    let args = args.strip_prefix("-p ")?;
    let (krate, args) = args.split_once(' ')?;
    let (features, args) = match args.strip_prefix("--features ") {
        Some(rest) => {
            let (f, rest) = rest.split_once(' ')?;
            (Some(f.to_owned()), rest)
        }
        None => (None, args),
    };
    let args = args.strip_prefix("--example ")?;
    let (name, rest) = args.split_once(" -- ").unwrap_or((args, ""));
    Some((
        krate.to_owned(),
        features,
        name.trim().to_owned(),
        rest.to_owned(),
    ))
}

/// The binary of example `name` of `krate`, in the profile directory of the test's own
/// binaries; built with cargo (with `features`) when it is not there.
fn example_binary(bin_dir: &Path, krate: &str, features: Option<&str>, name: &str) -> PathBuf {
    let exe = bin_dir.join("examples").join(name);
    if exe.exists() {
        return exe;
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build.args(["build", "-p", krate, "--example", name]);
    if let Some(f) = features {
        build.args(["--features", f]);
    }
    if bin_dir.ends_with("release") {
        build.arg("--release");
    }
    let status = build.current_dir(repo()).status().unwrap();
    assert!(
        status.success(),
        "cargo build -p {krate} --example {name} failed"
    );
    assert!(
        exe.exists(),
        "{} is not where cargo put the example",
        exe.display()
    );
    exe
}

/// Splits off a trailing `# exit N` and puts `provenance` in place of `cargo run`.
fn parse_command(at: &str, text: &str) -> Runnable {
    let (command, exit) = match text.rsplit_once("# exit ") {
        Some((command, code)) => (
            command.trim(),
            code.trim()
                .parse()
                .unwrap_or_else(|_| panic!("{at}: `# exit {code}` is not a number")),
        ),
        None => (text.trim(), 0),
    };
    if let Some((krate, features, name, rest)) =
        command.strip_prefix("cargo run ").and_then(example_command)
    {
        return Runnable {
            at: at.to_owned(),
            command: format!("{EXAMPLE} {rest}"),
            exit,
            example: Some((krate, features, name)),
        };
    }
    let command = command
        .strip_prefix("cargo run --release -p provenance-cli -- ")
        .or_else(|| command.strip_prefix("cargo run -p provenance-cli -- "))
        .map(|rest| format!("provenance {rest}"))
        .unwrap_or_else(|| command.to_owned());
    assert!(
        command.starts_with("provenance "),
        "{at}: a runnable block holds `provenance` (or `cargo run -p provenance-cli --`) \
         commands only: {command}"
    );
    Runnable {
        at: at.to_owned(),
        command,
        exit,
        example: None,
    }
}

#[test]
fn the_convention_is_parsed_as_documented() {
    let text = "\
```sh
provenance not-runnable
```
```sh runnable
# a comment
cargo run --release -p provenance-cli -- apply --policy p \\
  --resource r   # exit 1

provenance test dir
cargo run -p provenance-policy --features oci --example verify_images -- a b \\
  c   # exit 1
```
";
    let r = runnables("X.md", text);
    assert_eq!(r.len(), 3, "{r:?}");
    assert_eq!(r[2].command, format!("{EXAMPLE} a b  c"));
    assert_eq!(r[2].exit, 1);
    assert_eq!(
        r[2].example,
        Some((
            "provenance-policy".to_owned(),
            Some("oci".to_owned()),
            "verify_images".to_owned()
        ))
    );
    assert_eq!(r[0].at, "X.md:6");
    assert_eq!(r[0].command, "provenance apply --policy p  --resource r");
    assert_eq!(r[0].exit, 1);
    assert_eq!(r[1].at, "X.md:9");
    assert_eq!(r[1].command, "provenance test dir");
    assert_eq!(r[1].exit, 0);
}

#[test]
fn every_runnable_command_in_the_docs_runs_with_its_exit_status() {
    let root = repo();
    let mut all = Vec::new();
    for file in markdown_files(&root) {
        let text = std::fs::read_to_string(root.join(&file)).unwrap();
        all.extend(runnables(&file.display().to_string(), &text));
    }
    // The README's main job and the examples' commands are marked; fewer means a marker was
    // lost.
    assert!(
        all.iter().any(|r| r.at.starts_with("README.md:")),
        "README.md has no runnable block"
    );
    assert!(
        all.len() >= 6,
        "only {} runnable commands: {all:?}",
        all.len()
    );

    let bin = PathBuf::from(env!("CARGO_BIN_EXE_provenance"));
    let bin_dir = bin.parent().unwrap();
    let path = std::env::join_paths(std::iter::once(bin_dir.to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap();
    let mut failures = Vec::new();
    for r in &all {
        let command = match &r.example {
            None => r.command.clone(),
            Some((krate, features, name)) => {
                let exe = example_binary(bin_dir, krate, features.as_deref(), name);
                r.command.replacen(EXAMPLE, &exe.display().to_string(), 1)
            }
        };
        let out = Command::new("sh")
            .arg("-c")
            .arg(&command)
            .current_dir(&root)
            .env("PATH", &path)
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let got = out.status.code().unwrap_or(-1);
        if got != r.exit {
            let tail = |b: &[u8]| {
                let s = String::from_utf8_lossy(b);
                let lines: Vec<&str> = s.lines().collect();
                lines[lines.len().saturating_sub(15)..].join("\n")
            };
            failures.push(format!(
                "{}: `{}` exited {got}, the docs say {}\n--- stdout (end)\n{}\n--- stderr (end)\n{}",
                r.at,
                r.command,
                r.exit,
                tail(&out.stdout),
                tail(&out.stderr)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
