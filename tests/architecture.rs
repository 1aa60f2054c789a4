//! Tidy tests, in the spirit of rust-analyzer's: they read `src/` and fail when the architecture written in
//! docs/architecture.md (section "Layering") stops being true. The import graph between top-level modules
//! follows one table and has no cycle, each outside crate with a framework's reach stays in its module, only
//! the command line prints and exits, and every file opens with a `//!` line saying what it is for.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Modules that import nothing from the crate, so any module may import them. A new leaf module (one with
/// no `crate::` import) goes here and nowhere else.
const LEAVES: &[&str] = &["clock", "kind", "markdown", "process", "worker"];

/// Which top-level modules each module may import, besides the `LEAVES`, from the top of the graph down. It
/// mirrors the layering section of docs/architecture.md: change both together. A module missing here, or an
/// import missing from its row, fails `imports_follow_the_layering`; the table must stay acyclic.
const LAYERING: &[(&str, &[&str])] = &[
    // The binary: `main.rs` only parses the command line (`hale::cli`).
    ("main", &["cli"]),
    // The command line: the only module that prints a command's result and picks its exit status.
    (
        "cli",
        &[
            "answers",
            "app",
            "auth",
            "config",
            "export",
            "history",
            "mcp",
            "ops",
            "probe",
            "services",
            "slo",
            "store",
            "telemetry",
        ],
    ),
    // Builds everything from the config and runs it.
    (
        "app",
        &[
            "alerts",
            "answers",
            "auth",
            "config",
            "events",
            "heal",
            "http",
            "limits",
            "metrics",
            "probe",
            "selfwatch",
            "services",
            "slo",
            "store",
            "supervise",
        ],
    ),
    // The HTTP services (actix): routes translate HTTP into calls below. Each service's `assemble` builds
    // its engines, which share the event bus.
    (
        "services",
        &[
            "alerts",
            "answers",
            "auth",
            "breaker",
            "config",
            "events",
            "heal",
            "http",
            "mcp",
            "metrics",
            "probe",
            "records",
            "slo",
            "store",
            "supervise",
            "workflows",
        ],
    ),
    // The operator's commands that read a running hale and its database: `hale status`, `hale verify`.
    (
        "ops",
        &[
            "answers", "auth", "breaker", "config", "export", "metrics", "probe", "records", "slo",
            "store",
        ],
    ),
    // The MCP client side (the bridge's connections, catalog and call path) and hale's own MCP server, whose
    // tools call the answers (and the parts they take: the monitor, the healer, the SLO board).
    (
        "mcp",
        &[
            "answers",
            "auth",
            "backoff",
            "breaker",
            "config",
            "heal",
            "metrics",
            "probe",
            "records",
            "slo",
            "store",
            "supervise",
        ],
    ),
    // One actix-free function per question hale answers, and the schema types of the answers.
    (
        "answers",
        &[
            "alerts",
            "auth",
            "backoff",
            "breaker",
            "config",
            "events",
            "export",
            "heal",
            "history",
            "limits",
            "metrics",
            "probe",
            "records",
            "selfwatch",
            "slo",
            "store",
            "supervise",
            "workflows",
        ],
    ),
    // What every HTTP service shares: middleware, errors, the guard.
    (
        "http",
        &["auth", "config", "metrics", "records", "store", "telemetry"],
    ),
    // The engines.
    ("export", &["alerts", "config", "metrics"]),
    ("history", &["breaker", "metrics", "records", "store"]),
    ("selfwatch", &["limits", "store"]),
    (
        "alerts",
        &[
            "backoff", "breaker", "config", "events", "metrics", "probe", "records", "slo", "store",
        ],
    ),
    (
        "heal",
        &[
            "backoff",
            "config",
            "events",
            "metrics",
            "probe",
            "records",
            "slo",
            "store",
            "supervise",
        ],
    ),
    ("slo", &["config", "metrics", "records", "store"]),
    (
        "probe",
        &[
            "backoff", "breaker", "config", "events", "limits", "metrics", "records", "store",
        ],
    ),
    (
        "supervise",
        &["backoff", "config", "events", "metrics", "records", "store"],
    ),
    // Boss API's workflows: definitions, templates and risk (pure), over the config's checks.
    (
        "workflows",
        &[
            "config",
            "events",
            "metrics",
            "records",
            "store",
            "supervise",
        ],
    ),
    // The store: the only module that knows SQL; nothing above it.
    ("store", &["backoff", "breaker", "metrics", "records"]),
    ("events", &["breaker", "metrics", "records"]),
    ("limits", &[]),
    ("telemetry", &[]),
    ("auth", &["config"]),
    ("config", &["backoff", "breaker", "records"]),
    ("metrics", &["breaker", "records"]),
    ("records", &["breaker"]),
    ("breaker", &[]),
    ("backoff", &[]),
];

/// Modules named in the tables while a change is adding them; remove a name once its module exists.
const COMING: &[&str] = &[];

/// Crates with a framework's reach, and the only places that may name them (a folder ends in `/`).
const CONFINED: &[(&str, &[&str])] = &[
    ("sqlx", &["store/"]),
    ("actix", &["services/", "http/", "app.rs"]),
    ("prometheus", &["metrics/"]),
    ("clap", &["cli/", "main.rs"]),
    ("rmcp", &["mcp/"]),
];

#[test]
fn the_layering_table_is_acyclic_and_names_real_modules() {
    let table = table();
    let mut problems = Vec::new();
    if let Some(cycle) = find_cycle(&table) {
        problems.push(format!(
            "the LAYERING table in tests/architecture.rs has a cycle: {}",
            cycle.join(" -> ")
        ));
    }
    let modules = top_level_modules();
    let named = table
        .iter()
        .flat_map(|(m, deps)| std::iter::once(*m).chain(deps.iter().copied()))
        .chain(LEAVES.iter().copied());
    for name in named.collect::<BTreeSet<_>>() {
        if !modules.contains(name) && !COMING.contains(&name) {
            problems.push(format!(
                "the LAYERING table in tests/architecture.rs names `{name}`, which is no module in src/: \
                 remove it (or list it in COMING while it is being added)"
            ));
        }
    }
    for leaf in LEAVES {
        if table.contains_key(leaf) {
            problems.push(format!(
                "`{leaf}` is both in LEAVES and in LAYERING: keep it in one"
            ));
        }
    }
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}

#[test]
fn imports_follow_the_layering() {
    let table = table();
    let mut problems = Vec::new();
    for file in source_files() {
        let module = top_level_module(&file.relative);
        if module == "lib" {
            continue; // `pub mod` lines only
        }
        let allowed = table.get(module.as_str());
        let leaf = LEAVES.contains(&module.as_str());
        if allowed.is_none() && !leaf {
            problems.push(format!(
                "src/{}: module `{module}` is not in the LAYERING table of tests/architecture.rs: add a row for \
                 it (or add it to LEAVES if it imports nothing from the crate), and to the layering section of \
                 docs/architecture.md",
                file.relative
            ));
            continue;
        }
        let root = if module == "main" { "hale" } else { "crate" };
        for (line, to) in imports(&file.relative, &file.code, root) {
            if to == module {
                continue;
            }
            let ok = LEAVES.contains(&to.as_str())
                || allowed.is_some_and(|deps| deps.contains(&to.as_str()));
            if !ok {
                let why = if leaf {
                    format!("`{module}` is a leaf (LEAVES): it may import nothing from the crate")
                } else {
                    format!("`{to}` is not in the row of `{module}`")
                };
                problems.push(format!(
                    "src/{}:{line}: import {module} -> {to}: {why}; change the code, or the LAYERING table in \
                     tests/architecture.rs and the layering section of docs/architecture.md (the table must \
                     stay acyclic)",
                    file.relative
                ));
            }
        }
    }
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}

#[test]
fn framework_crates_stay_in_their_modules() {
    let mut problems = Vec::new();
    for file in source_files() {
        for (line, word) in identifiers(&file.code) {
            let Some(krate) = confined_crate(word) else {
                continue;
            };
            let places = CONFINED
                .iter()
                .find(|(name, _)| *name == krate)
                .map_or(&[][..], |(_, places)| *places);
            if !places.iter().any(|p| within(&file.relative, p)) {
                problems.push(format!(
                    "src/{}:{line}: `{word}` names the {krate} crate, which only {} may use (CONFINED in \
                     tests/architecture.rs)",
                    file.relative,
                    places.join(", ")
                ));
            }
        }
    }
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}

/// Only the command line prints a command's result and picks the exit status: the engines return values
/// and typed errors (logs go through `tracing`).
#[test]
fn only_the_command_line_prints_and_exits() {
    let mut problems = Vec::new();
    for file in source_files() {
        if within(&file.relative, "cli/") || file.relative == "main.rs" {
            continue;
        }
        let tokens = tokens(&file.code);
        for (i, (line, token)) in tokens.iter().enumerate() {
            let next = tokens.get(i + 1).map(|t| &t.1);
            let found = match token {
                Token::Ident(m @ ("print" | "println" | "eprint" | "eprintln" | "dbg"))
                    if next == Some(&Token::Punct('!')) =>
                {
                    format!("{m}!")
                }
                Token::Ident("ExitCode") => "ExitCode".to_owned(),
                Token::Ident("exit")
                    if i >= 2
                        && tokens[i - 1].1 == Token::Path
                        && tokens[i - 2].1 == Token::Ident("process") =>
                {
                    "process::exit".to_owned()
                }
                _ => continue,
            };
            problems.push(format!(
                "src/{}:{line}: `{found}` outside cli/: return a value or a typed error and let cli/ print it \
                 and choose the exit status",
                file.relative
            ));
        }
    }
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}

#[test]
fn every_file_opens_with_what_it_is_for() {
    let missing: Vec<String> = source_files()
        .into_iter()
        .filter(|f| {
            let first = f.text.lines().find(|l| !l.trim().is_empty());
            !first.is_some_and(|l| l.starts_with("//!"))
        })
        .map(|f| {
            format!(
                "src/{}: the first line is not a `//!` line saying what the file is for",
                f.relative
            )
        })
        .collect();
    assert!(missing.is_empty(), "\n{}\n", missing.join("\n"));
}

/// The scanner itself: grouped and nested imports count, comments, strings, `$crate` and lifetimes do not.
#[test]
fn the_scanner_finds_imports_in_code_only() {
    let text = r####"
use crate::{alpha, beta::{x, y}, self};
// use crate::comment;
/* use crate::block; /* nested */ use crate::still_comment; */
let s = "crate::string"; let r = r#"crate::raw "quoted""#; let c = '"'; let b = b"crate::bytes";
fn f<'a>(x: &'a str) -> &'a str { crate::gamma::call(x) }
macro_rules! m { () => { $crate::macro_path } }
let q = '\''; crate::delta
    ::deep();
"####;
    let code = strip(text);
    let found: Vec<(usize, String)> = imports("x.rs", &code, "crate");
    let names: Vec<&str> = found.iter().map(|(_, m)| m.as_str()).collect();
    assert_eq!(names, ["alpha", "beta", "gamma", "delta"], "{code}");
    assert_eq!(found[0].0, 2);
    assert_eq!(found[3].0, 8);
    let sample = strip("use sqlx::Row; // prometheus\nlet a = \"clap\"; actix_web::main");
    let words: Vec<&str> = identifiers(&sample)
        .into_iter()
        .filter_map(|(_, w)| confined_crate(w))
        .collect();
    assert_eq!(words, ["sqlx", "actix"]);
    // `super::super::x` from src/a/b.rs reaches the top-level module `x`.
    let up = imports(
        "a/b.rs",
        &strip("use super::super::other::T; use super::sibling;\nmod tests { use super::super::up_one; }"),
        "crate",
    );
    assert_eq!(up, [(1, "other".to_owned())]);
}

// ---- the table --------------------------------------------------------------------------------------

fn table() -> BTreeMap<&'static str, &'static [&'static str]> {
    let mut table = BTreeMap::new();
    for (module, deps) in LAYERING {
        assert!(
            table.insert(*module, *deps).is_none(),
            "`{module}` has two rows in LAYERING"
        );
    }
    table
}

/// A cycle of the table, as the modules on it with the first repeated at the end.
fn find_cycle(
    table: &BTreeMap<&'static str, &'static [&'static str]>,
) -> Option<Vec<&'static str>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        node: &'static str,
        table: &BTreeMap<&'static str, &'static [&'static str]>,
        marks: &mut BTreeMap<&'static str, Mark>,
        path: &mut Vec<&'static str>,
    ) -> Option<Vec<&'static str>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let start = path.iter().position(|n| *n == node).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(node);
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(node, Mark::Open);
        path.push(node);
        for dep in table.get(node).copied().unwrap_or(&[]) {
            if let Some(cycle) = visit(dep, table, marks, path) {
                return Some(cycle);
            }
        }
        path.pop();
        marks.insert(node, Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in table.keys() {
        let mut path = Vec::new();
        if let Some(cycle) = visit(node, table, &mut marks, &mut path) {
            return Some(cycle);
        }
    }
    None
}

// ---- reading src/ -----------------------------------------------------------------------------------

struct SourceFile {
    /// The path under src/, with `/` separators.
    relative: String,
    text: String,
    /// `text` with comments and string and character literals blanked out (lines kept).
    code: String,
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn source_files() -> Vec<SourceFile> {
    let mut files = Vec::new();
    let mut folders = vec![src()];
    while let Some(folder) = folders.pop() {
        let entries = std::fs::read_dir(&folder)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", folder.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
                let relative = path
                    .strip_prefix(src())
                    .expect("under src/")
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                let code = strip(&text);
                files.push(SourceFile {
                    relative,
                    text,
                    code,
                });
            }
        }
    }
    files.sort_by(|a, b| a.relative.cmp(&b.relative));
    assert!(
        files.len() > 20,
        "found only {} files under src/",
        files.len()
    );
    files
}

fn top_level_module(relative: &str) -> String {
    let first = relative.split('/').next().unwrap_or(relative);
    first.strip_suffix(".rs").unwrap_or(first).to_owned()
}

fn top_level_modules() -> BTreeSet<String> {
    source_files()
        .iter()
        .map(|f| top_level_module(&f.relative))
        .filter(|m| m != "lib")
        .collect()
}

/// True when `relative` (under src/) is `place`: a file such as `app.rs`, or a folder such as `store/`
/// (with `store.rs` beside it, which declares the folder's modules).
fn within(relative: &str, place: &str) -> bool {
    match place.strip_suffix('/') {
        Some(folder) => relative.starts_with(place) || relative == format!("{folder}.rs"),
        None => relative == place,
    }
}

/// The crate of `CONFINED` an identifier names, if any.
fn confined_crate(word: &str) -> Option<&'static str> {
    if word == "actix" || word.starts_with("actix_") || word == "utoipa_actix_web" {
        return Some("actix");
    }
    CONFINED
        .iter()
        .map(|(name, _)| *name)
        .find(|name| *name == word)
}

// ---- a small Rust scanner ---------------------------------------------------------------------------

/// `text` with every comment and string, byte-string and character literal replaced by spaces; newlines
/// are kept, so line numbers still hold.
fn strip(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if c == 'r'
            && (i == 0
                || !is_ident(chars[i - 1])
                || (chars[i - 1] == 'b' && (i < 2 || !is_ident(chars[i - 2]))))
            && matches!(next, Some('"') | Some('#'))
            && {
                let hashes = chars[i + 1..].iter().take_while(|c| **c == '#').count();
                chars.get(i + 1 + hashes) == Some(&'"')
            }
        {
            // A raw string: r"...", r#"..."#, ...
            let hashes = chars[i + 1..].iter().take_while(|c| **c == '#').count();
            let body = i + 2 + hashes;
            let mut end = body;
            while end < chars.len() {
                if chars[end] == '"'
                    && chars[end + 1..]
                        .iter()
                        .take(hashes)
                        .filter(|c| **c == '#')
                        .count()
                        == hashes
                {
                    break;
                }
                end += 1;
            }
            let stop = (end + 1 + hashes).min(chars.len());
            out.extend(chars[i..stop].iter().map(|c| blank(*c)));
            i = stop;
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < chars.len() {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' && next == Some('\\') {
            // An escaped character: '\n', '\'', '\u{1F600}'.
            out.push_str("  ");
            i += 2;
            while i < chars.len() && chars[i] != '\'' {
                out.push(' ');
                i += 1;
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' && chars.get(i + 2) == Some(&'\'') {
            out.push_str("   ");
            i += 3;
        } else {
            // Code, or a lifetime's quote.
            out.push(c);
            i += 1;
        }
    }
    out
}

/// The identifiers of stripped code, with their line numbers.
fn identifiers(code: &str) -> Vec<(usize, &str)> {
    let mut found = Vec::new();
    for (n, line) in code.lines().enumerate() {
        for word in line.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
            if word.starts_with(|c: char| c.is_alphabetic() || c == '_') {
                found.push((n + 1, word));
            }
        }
    }
    found
}

/// A token of stripped code: an identifier, `::`, or one other character.
#[derive(Debug, PartialEq)]
enum Token<'a> {
    Ident(&'a str),
    Path,
    Punct(char),
}

fn tokens(code: &str) -> Vec<(usize, Token<'_>)> {
    let mut out = Vec::new();
    let mut line = 1;
    let mut rest = code;
    while let Some(c) = rest.chars().next() {
        if c == '\n' {
            line += 1;
        }
        if c.is_alphabetic() || c == '_' {
            let len = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            out.push((line, Token::Ident(&rest[..len])));
            rest = &rest[len..];
        } else if rest.starts_with("::") {
            out.push((line, Token::Path));
            rest = &rest[2..];
        } else {
            if !c.is_whitespace() {
                out.push((line, Token::Punct(c)));
            }
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// The top-level modules a file imports, with the line of each import: `root::x` paths (`crate`, or
/// `hale` for the binary), the items of grouped `root::{x, y::z}`, and `super::` chains that climb out of
/// the top-level module.
fn imports(relative: &str, code: &str, root: &str) -> Vec<(usize, String)> {
    // How many `super` reach the crate root: src/a.rs and src/a/mod.rs are one level down, src/a/b.rs two.
    let parts: Vec<&str> = relative.split('/').collect();
    let depth = match parts.last() {
        Some(&"mod.rs") => parts.len() - 1,
        _ => parts.len(),
    };
    let tokens = tokens(code);
    let mut found = Vec::new();
    // Inline `mod x { ... }` blocks add a level each: the brace depth each one closes at.
    let mut braces = 0usize;
    let mut inline_mods: Vec<usize> = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let (line, token) = &tokens[i];
        let after_path = i > 0 && matches!(tokens[i - 1].1, Token::Path | Token::Punct('$'));
        match token {
            Token::Punct('{') => braces += 1,
            Token::Punct('}') => {
                braces = braces.saturating_sub(1);
                if inline_mods.last() == Some(&braces) {
                    inline_mods.pop();
                }
            }
            Token::Ident("mod") => {
                if let (Some((_, Token::Ident(_))), Some((_, Token::Punct('{')))) =
                    (tokens.get(i + 1), tokens.get(i + 2))
                {
                    inline_mods.push(braces);
                }
            }
            Token::Ident(word)
                if *word == root
                    && !after_path
                    && tokens.get(i + 1).map(|t| &t.1) == Some(&Token::Path) =>
            {
                match tokens.get(i + 2) {
                    Some((_, Token::Ident(name))) => found.push((*line, (*name).to_owned())),
                    Some((_, Token::Punct('{'))) => {
                        group_heads(&tokens[i + 3..], *line, &mut found);
                    }
                    _ => {}
                }
            }
            Token::Ident("super") if !after_path => {
                let mut j = i;
                let mut ups = 0;
                while let (Some((_, Token::Ident("super"))), Some((_, Token::Path))) =
                    (tokens.get(j), tokens.get(j + 1))
                {
                    ups += 1;
                    j += 2;
                }
                if ups >= depth + inline_mods.len() {
                    if let Some((_, Token::Ident(name))) = tokens.get(j) {
                        found.push((*line, (*name).to_owned()));
                    }
                }
                i = j.max(i + 1);
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    found.retain(|(_, name)| name != "self" && name != "super" && name != "crate");
    found
}

/// The first identifier of each comma-separated item of a `{...}` group (the tokens after its `{`).
fn group_heads(tokens: &[(usize, Token<'_>)], line: usize, found: &mut Vec<(usize, String)>) {
    let mut depth = 0;
    let mut at_item_start = true;
    for (_, token) in tokens {
        match token {
            Token::Punct('{') => depth += 1,
            Token::Punct('}') if depth == 0 => return,
            Token::Punct('}') => depth -= 1,
            Token::Punct(',') if depth == 0 => at_item_start = true,
            Token::Ident(name) if at_item_start && depth == 0 => {
                found.push((line, (*name).to_owned()));
                at_item_start = false;
            }
            _ => {}
        }
    }
}
