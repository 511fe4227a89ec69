//! Imports between the top-level modules of every workspace crate form no cycle.
//!
//! For each crate, every `src/` file belongs to one top-level module (`src/x.rs`,
//! `src/x/mod.rs` and everything under `src/x/` are module `x`; `lib.rs` and `main.rs` are the
//! root and belong to none). A file of module `x` that names `crate::y` (in a `use`, a
//! `use crate::{y, ..}` group, or a path in code), or reaches `y` through enough `super::`,
//! makes an edge `x -> y`. Comments and string literals are skipped. A cycle fails the test
//! and is printed; `umbrald-server` is held to it strictly, and so is every crate not listed
//! in [`KNOWN_CYCLES`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Crates with a known cycle, left to their owners: the cycle is printed, not failed.
const KNOWN_CYCLES: &[&str] = &[];

/// Top-level module -> the top-level modules it names.
type Graph = BTreeMap<String, BTreeSet<String>>;

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Punct(char),
}

/// The identifiers and punctuation of Rust source, without comments, strings, characters and
/// lifetimes.
fn tokens(src: &str) -> Vec<Token> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    while i < chars.len() {
        let c = chars[i];
        if c == '/' && at(i + 1) == '/' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c == 'r' && (at(i + 1) == '#' || at(i + 1) == '"') && raw_string_at(&chars, i) {
            i = skip_raw_string(&chars, i + 1);
        } else if c == 'b' && at(i + 1) == 'r' && raw_string_at(&chars, i + 1) {
            i = skip_raw_string(&chars, i + 2);
        } else if c == 'b' && (at(i + 1) == '"' || at(i + 1) == '\'') {
            // A byte string or byte: the literal follows.
            i += 1;
        } else if c == '\'' {
            // A character literal ('x', '\n', '\u{..}') or a lifetime ('a).
            if at(i + 1) == '\\' {
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if at(i + 2) == '\'' {
                i += 3;
            } else {
                i += 1;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
            }
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Token::Ident(chars[start..i].iter().collect()));
        } else if c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
        } else {
            if !c.is_whitespace() {
                out.push(Token::Punct(c));
            }
            i += 1;
        }
    }
    out
}

/// Whether a raw string (`r"`, `r#"`, ...) starts at `chars[i] == 'r'`.
fn raw_string_at(chars: &[char], i: usize) -> bool {
    let mut j = i + 1;
    while chars.get(j) == Some(&'#') {
        j += 1;
    }
    chars.get(j) == Some(&'"')
}

/// The index after the raw string whose hashes start at `i`.
fn skip_raw_string(chars: &[char], mut i: usize) -> usize {
    let mut hashes = 0;
    while chars.get(i) == Some(&'#') {
        hashes += 1;
        i += 1;
    }
    i += 1;
    while i < chars.len() {
        if chars[i] == '"' && (1..=hashes).all(|k| chars.get(i + k) == Some(&'#')) {
            return i + 1 + hashes;
        }
        i += 1;
    }
    i
}

fn is_path_sep(t: &[Token], i: usize) -> bool {
    t.get(i) == Some(&Token::Punct(':')) && t.get(i + 1) == Some(&Token::Punct(':'))
}

/// The first names of a path continuing at `t[i]`: one identifier, or each item of a
/// `{a, b::c, ..}` group.
fn heads(t: &[Token], i: usize) -> Vec<String> {
    match t.get(i) {
        Some(Token::Ident(name)) => vec![name.clone()],
        Some(Token::Punct('{')) => {
            let mut names = Vec::new();
            let mut depth = 0;
            let mut expect = true;
            for tok in &t[i..] {
                match tok {
                    Token::Punct('{') => {
                        depth += 1;
                        expect = depth == 1;
                    }
                    Token::Punct('}') => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    Token::Punct(',') if depth == 1 => expect = true,
                    Token::Ident(name) if expect && depth == 1 => {
                        names.push(name.clone());
                        expect = false;
                    }
                    _ => {
                        if depth == 1 {
                            expect = false;
                        }
                    }
                }
            }
            names
        }
        _ => Vec::new(),
    }
}

/// Top-level names a file `depth` modules below the crate root (`src/x.rs`: 1,
/// `src/x/y.rs`: 2) reaches through `crate::` and `super::` paths.
fn named_roots(src: &str, depth: usize) -> BTreeSet<String> {
    let t = tokens(src);
    let mut names = BTreeSet::new();
    // Brace depths at which inline modules (`mod tests { .. }`) opened.
    let mut inline: Vec<usize> = Vec::new();
    let mut braces = 0usize;
    let mut i = 0;
    while i < t.len() {
        match &t[i] {
            Token::Punct('{') => braces += 1,
            Token::Punct('}') => {
                braces = braces.saturating_sub(1);
                while inline.last().is_some_and(|&d| d > braces) {
                    inline.pop();
                }
            }
            Token::Ident(kw) if kw == "mod" => {
                if let (Some(Token::Ident(_)), Some(Token::Punct('{'))) =
                    (t.get(i + 1), t.get(i + 2))
                {
                    inline.push(braces + 1);
                }
            }
            Token::Ident(kw) if kw == "crate" => {
                let after_dollar = i > 0 && t[i - 1] == Token::Punct('$');
                let in_path = i >= 2 && is_path_sep(&t, i - 2);
                if !after_dollar && !in_path && is_path_sep(&t, i + 1) {
                    names.extend(heads(&t, i + 3));
                }
            }
            Token::Ident(kw) if kw == "super" && !(i >= 2 && is_path_sep(&t, i - 2)) => {
                let mut ups = 0;
                let mut j = i;
                while t.get(j) == Some(&Token::Ident("super".into())) && is_path_sep(&t, j + 1) {
                    ups += 1;
                    j += 3;
                }
                if ups > 0 && ups == depth + inline.len() {
                    names.extend(heads(&t, j));
                }
                i = j.max(i + 1);
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    names
}

/// The module graph of a crate whose `src/` holds `files` (paths relative to `src/`).
fn graph(files: &[(String, String)]) -> Graph {
    let module_of = |path: &str| -> Option<(String, usize)> {
        let parts: Vec<&str> = path.split('/').collect();
        let top = parts[0].trim_end_matches(".rs");
        if parts.len() == 1 && (top == "lib" || top == "main") || top == "bin" {
            return None;
        }
        let depth = if parts.last() == Some(&"mod.rs") {
            parts.len() - 1
        } else {
            parts.len()
        };
        Some((top.to_owned(), depth))
    };
    let modules: BTreeSet<String> = files
        .iter()
        .filter_map(|(path, _)| module_of(path).map(|(m, _)| m))
        .collect();
    let mut graph = Graph::new();
    for (path, src) in files {
        let Some((module, depth)) = module_of(path) else {
            continue;
        };
        let edges = graph.entry(module.clone()).or_default();
        for name in named_roots(src, depth) {
            if name != module && modules.contains(&name) {
                edges.insert(name);
            }
        }
    }
    graph
}

/// A cycle of `graph`, as the modules along it with the first repeated at the end.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, done, path) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut done, &mut Vec::new()))
}

fn rust_files(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, root, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            let rel = path
                .strip_prefix(root)
                .expect("under src")
                .to_string_lossy()
                .replace('\\', "/");
            let text = std::fs::read_to_string(&path).expect("readable source");
            out.push((rel, text));
        }
    }
}

/// Every workspace member with a `src/`: its package name and directory.
fn workspace_crates() -> Vec<(String, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("workspace manifest");
    let members = manifest
        .split_once("members")
        .and_then(|(_, rest)| rest.split_once('['))
        .and_then(|(_, rest)| rest.split_once(']'))
        .map(|(list, _)| list)
        .expect("a members list");
    members
        .split('"')
        .skip(1)
        .step_by(2)
        .filter_map(|member| {
            let dir = root.join(member);
            let text = std::fs::read_to_string(dir.join("Cargo.toml")).ok()?;
            let name = text
                .lines()
                .find_map(|l| l.trim().strip_prefix("name = \""))?
                .trim_end_matches('"')
                .to_owned();
            dir.join("src").is_dir().then_some((name, dir))
        })
        .collect()
}

#[test]
fn no_crate_has_a_module_cycle() {
    let crates = workspace_crates();
    assert!(
        crates.iter().any(|(name, _)| name == "umbrald-server"),
        "the workspace's crates were not found: {crates:?}"
    );
    let mut failures = Vec::new();
    for (name, dir) in &crates {
        let src = dir.join("src");
        let mut files = Vec::new();
        rust_files(&src, &src, &mut files);
        let graph = graph(&files);
        match find_cycle(&graph) {
            Some(cycle) => {
                let line = format!("{name}: {}", cycle.join(" -> "));
                if KNOWN_CYCLES.contains(&name.as_str()) && name != "umbrald-server" {
                    eprintln!("known module cycle (left to its owners): {line}");
                } else {
                    failures.push(line);
                }
            }
            None if KNOWN_CYCLES.contains(&name.as_str()) => {
                eprintln!("{name} has no module cycle any more: remove it from KNOWN_CYCLES");
            }
            None => {}
        }
    }
    assert!(
        failures.is_empty(),
        "module cycles:\n{}",
        failures.join("\n")
    );
}

#[cfg(test)]
mod checker {
    use super::*;

    fn files(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(p, s)| ((*p).to_owned(), (*s).to_owned()))
            .collect()
    }

    #[test]
    fn a_cycle_through_groups_paths_and_super_is_found() {
        let crate_src = files(&[
            ("lib.rs", "mod a; mod b; mod c; mod d; pub use a::*;"),
            ("a.rs", "use crate::b::Thing;\nfn f() {}"),
            ("b/mod.rs", "mod inner;"),
            (
                "b/inner.rs",
                "use crate::{d, c::{self, More}};\nfn g() { super::super::d::h(); }",
            ),
            ("c.rs", "fn k() { let _ = crate::a::f(); }"),
            (
                "d.rs",
                "//! See [`crate::a`].\n/// Also crate::b.\nfn h() -> &'static str { \"crate::c::x\" }\n\
                 mod tests { use super::*; fn t() -> char { 'a' } }",
            ),
        ]);
        let g = graph(&crate_src);
        assert_eq!(g["a"], BTreeSet::from(["b".to_owned()]));
        assert_eq!(g["b"], BTreeSet::from(["c".to_owned(), "d".to_owned()]));
        assert_eq!(g["c"], BTreeSet::from(["a".to_owned()]));
        assert!(
            g["d"].is_empty(),
            "comments and strings are no imports: {g:?}"
        );
        let cycle = find_cycle(&g).expect("a -> b -> c -> a");
        assert_eq!(cycle.first(), cycle.last());
        assert_eq!(cycle.len(), 4, "{cycle:?}");
    }

    #[test]
    fn a_dag_passes_and_inline_modules_count_their_supers() {
        let crate_src = files(&[
            ("a.rs", "use crate::b;\nmod tests { use super::super::c; }"),
            ("b.rs", "pub(crate) fn f() { $crate::a::x(); }"),
            ("c.rs", "fn g() { r#\"crate::a\"#; b'x'; }"),
        ]);
        let g = graph(&crate_src);
        assert_eq!(
            g["a"],
            BTreeSet::from(["b".to_owned(), "c".to_owned()]),
            "{g:?}"
        );
        assert!(g["b"].is_empty() && g["c"].is_empty(), "{g:?}");
        assert_eq!(find_cycle(&g), None);
    }
}
