//! `docs/tutorial.md` runs as written and prints what it shows.
//!
//! The page's ```` ```sh tutorial ```` blocks are run in order, as one shell session in an
//! empty folder (so `cd` and `export` carry over), with the `provenance` binary this test is
//! built with on `PATH` and `REPO` set to the repository. Each command's exit status must be
//! 0, or the `N` of a trailing `# exit N`. The ```` ```text output ```` block that follows a
//! command block is what that block prints (stdout and stderr together), line by line; a `…`
//! in it stands for one run of non-space characters that differ between runs (a new key's
//! fingerprint, signature digests).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// A block of commands and the output the page shows for it.
#[derive(Debug)]
struct Step {
    /// The line of the block's first command in the page.
    line: usize,
    /// Each command (continuation lines joined) and its expected exit status.
    commands: Vec<(String, i32)>,
    /// The output the page shows, when it shows one.
    output: Option<Vec<String>>,
}

fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .canonicalize()
        .unwrap()
}

/// The steps of the page, in order.
fn steps(text: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut block: Option<(String, usize, Vec<String>)> = None;
    for (i, line) in text.lines().enumerate() {
        if let Some(info) = line.trim_start().strip_prefix("```") {
            match block.take() {
                None => block = Some((info.trim().to_owned(), i + 2, Vec::new())),
                Some((kind, start, lines)) => match kind.as_str() {
                    "sh tutorial" => steps.push(Step {
                        line: start,
                        commands: commands(&lines),
                        output: None,
                    }),
                    "text output" => {
                        let last = steps.last_mut().unwrap_or_else(|| {
                            panic!("tutorial.md:{start}: output before any command block")
                        });
                        assert!(
                            last.output.is_none(),
                            "tutorial.md:{start}: two output blocks for one command block"
                        );
                        last.output = Some(lines);
                    }
                    _ => {}
                },
            }
            continue;
        }
        if let Some((_, _, lines)) = block.as_mut() {
            lines.push(line.to_owned());
        }
    }
    assert!(block.is_none(), "tutorial.md: a block is not closed");
    steps
}

/// The commands of a block: continuation lines joined, a heredoc kept with its command, a
/// trailing `# exit N` taken off as the expected status.
fn commands(lines: &[String]) -> Vec<(String, i32)> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut heredoc: Option<String> = None;
    for line in lines {
        if let Some(end) = &heredoc {
            current.push('\n');
            current.push_str(line);
            if line.trim() == end {
                heredoc = None;
                out.push((std::mem::take(&mut current), 0));
            }
            continue;
        }
        if current.is_empty() && (line.trim().is_empty() || line.trim_start().starts_with('#')) {
            continue;
        }
        if let Some(head) = line.strip_suffix('\\') {
            current.push_str(head);
            continue;
        }
        current.push_str(line);
        if let Some((_, tag)) = line.split_once("<<'") {
            heredoc = Some(tag.split('\'').next().unwrap_or_default().to_owned());
            continue;
        }
        let (command, exit) = match current.rsplit_once("# exit ") {
            Some((c, n)) => (c.trim_end().to_owned(), n.trim().parse().unwrap()),
            None => (current.clone(), 0),
        };
        out.push((command, exit));
        current.clear();
    }
    assert!(
        current.is_empty() && heredoc.is_none(),
        "a command is not finished"
    );
    out
}

/// Whether `actual` is `expected`, a `…` in `expected` standing for a run of non-space
/// characters.
fn line_matches(expected: &str, actual: &str) -> bool {
    let mut rest = actual;
    let mut parts = expected.split('…').peekable();
    let mut first = true;
    while let Some(part) = parts.next() {
        if first {
            let Some(r) = rest.strip_prefix(part) else {
                return false;
            };
            rest = r;
            first = false;
            continue;
        }
        // A `…` came before `part`: skip at least one non-space character.
        let skippable = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let found = (1..=skippable)
            .filter(|&n| rest.is_char_boundary(n))
            .find(|&n| {
                rest[n..].starts_with(part)
                    && (parts.peek().is_some() || rest[n..].len() == part.len())
            });
        let Some(n) = found else {
            return false;
        };
        rest = &rest[n + part.len()..];
    }
    rest.is_empty()
}

#[test]
fn wildcards_match_one_run_of_non_space() {
    assert!(line_matches("key sha256:…, NO", "key sha256:ab12, NO"));
    assert!(!line_matches("key sha256:…, NO", "key sha256:, NO"));
    assert!(!line_matches("key sha256:…, NO", "key sha256:a b, NO"));
    assert!(line_matches("a … b", "a x b"));
    assert!(line_matches("ends …", "ends here"));
    assert!(!line_matches("exact", "exactly"));
}

#[test]
fn the_tutorial_runs_and_prints_what_it_shows() {
    let root = repo();
    let text = std::fs::read_to_string(root.join("docs/tutorial.md")).unwrap();
    let steps = steps(&text);
    assert!(steps.len() >= 6, "{steps:?}");
    assert!(steps.iter().all(|s| !s.commands.is_empty()));

    // One shell session; each step's output goes to its own file, each command's status too.
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path();
    let mut script = String::new();
    for (i, step) in steps.iter().enumerate() {
        for (command, _) in &step.commands {
            script.push_str(&format!(
                "{{\n{command}\n}} >>\"$T/out{i}\" 2>&1\necho $? >>\"$T/status{i}\"\n"
            ));
        }
    }
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_provenance"));
    let path = std::env::join_paths(std::iter::once(bin.parent().unwrap().to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap();
    let results = tempfile::tempdir().unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .current_dir(work)
        .env("PATH", path)
        .env("REPO", &root)
        .env("T", results.path())
        .env("NO_COLOR", "1")
        .env_remove("COSIGN_PASSWORD")
        .env_remove("PROVENANCE_PASSWORD")
        .output()
        .unwrap();
    assert!(out.status.success(), "the session failed: {out:?}");

    let mut failures = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let read = |name: &str| -> String {
            std::fs::read_to_string(results.path().join(format!("{name}{i}"))).unwrap_or_default()
        };
        let statuses: Vec<i32> = read("status")
            .lines()
            .map(|l| l.trim().parse().unwrap())
            .collect();
        let printed = read("out");
        for ((command, want), got) in step.commands.iter().zip(&statuses) {
            if want != got {
                failures.push(format!(
                    "tutorial.md:{}: `{command}` exited {got}, the page says {want}\n{printed}",
                    step.line
                ));
            }
        }
        if let Some(expected) = &step.output {
            let actual: Vec<&str> = printed.lines().map(str::trim_end).collect();
            let same = actual.len() == expected.len()
                && expected
                    .iter()
                    .zip(&actual)
                    .all(|(e, a)| line_matches(e.trim_end(), a));
            if !same {
                failures.push(format!(
                    "tutorial.md:{}: the output differs from the page\n--- page\n{}\n--- printed\n{}",
                    step.line,
                    expected.join("\n"),
                    actual.join("\n")
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(Path::new(&work.join("tutorial/policy.yaml")).is_file());
}
