//! The rules of ARCHITECTURE.md, checked on the source: no import circles between the daemon's
//! modules, `AppState` only at the edges (`api/`, `admin/`, `daemon.rs` and its parts in
//! `daemon/`), the store naming no domain module, the wallet and Lightning crates knowing nothing of the daemon or of each other,
//! files under 600 lines and functions under 60 (tests aside). Each rule carries the list of
//! places that still break it: a new break fails, and so does a listed one that was mended (so
//! that the list only shrinks).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const FILE_LINES: usize = 600;
const FN_LINES: usize = 60;

/// Import circles still in the daemon (each as its sorted modules).
const KNOWN_CIRCLES: &[&[&str]] = &[];
/// Domain modules that still take `AppState`.
const KNOWN_STATE_USERS: &[&str] = &[];
/// Domain modules the store still names.
const KNOWN_STORE_IMPORTS: &[&str] = &[];
/// Files still over the limit.
const KNOWN_LONG_FILES: &[&str] = &[];
/// Functions still over the limit (`file::function`).
const KNOWN_LONG_FNS: &[&str] = &[];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace").to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The text before the file's `#[cfg(test)]` module.
fn without_tests(text: &str) -> &str {
    text.find("#[cfg(test)]").map_or(text, |i| &text[..i])
}

/// `daemon/src/payment/saga.rs` → `payment::saga`; `…/mod.rs` → its folder; `lib.rs` → ``.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src").with_extension("");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts.join("::")
}

/// Every module a module's code names through `crate::…` or `super::…` (the longest known prefix).
fn imports(module: &str, text: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    // `super` of `a::b` (in a/b.rs) and of `a` (in a/mod.rs) alike is the module's parent.
    let parent = module.rsplit_once("::").map_or(String::new(), |(p, _)| p.to_owned());
    for (prefix, base) in [("crate::", String::new()), ("super::", parent)] {
        for (i, _) in text.match_indices(prefix) {
            if text[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let rest = &text[i + prefix.len()..];
            let path: Vec<&str> = rest
                .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .next()
                .unwrap_or_default()
                .split("::")
                .take_while(|s| s.chars().next().is_some_and(|c| c.is_ascii_lowercase()))
                .collect();
            for k in (1..=path.len()).rev() {
                let candidate =
                    if base.is_empty() { path[..k].join("::") } else { format!("{base}::{}", path[..k].join("::")) };
                if known.contains(&candidate) {
                    if candidate != module && !module.starts_with(&format!("{candidate}::")) {
                        found.insert(candidate);
                    }
                    break;
                }
            }
        }
    }
    found
}

/// Strongly connected components of more than one module (Tarjan).
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> BTreeSet<Vec<String>> {
    struct Walk<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        out: BTreeSet<Vec<String>>,
    }
    fn visit<'a>(w: &mut Walk<'a>, v: &'a str) {
        let n = w.index.len();
        w.index.insert(v, n);
        w.low.insert(v, n);
        w.stack.push(v);
        for next in w.graph.get(v).into_iter().flatten() {
            if !w.index.contains_key(next.as_str()) {
                visit(w, next);
                let l = w.low[next.as_str()].min(w.low[v]);
                w.low.insert(v, l);
            } else if w.stack.contains(&next.as_str()) {
                let l = w.index[next.as_str()].min(w.low[v]);
                w.low.insert(v, l);
            }
        }
        if w.low[v] == w.index[v] {
            let at = w.stack.iter().rposition(|m| *m == v).unwrap_or(0);
            let mut comp: Vec<String> = w.stack.drain(at..).map(str::to_owned).collect();
            if comp.len() > 1 {
                comp.sort();
                w.out.insert(comp);
            }
        }
    }
    let mut w = Walk { graph, index: BTreeMap::new(), low: BTreeMap::new(), stack: vec![], out: BTreeSet::new() };
    for v in graph.keys() {
        if !w.index.contains_key(v.as_str()) {
            visit(&mut w, v);
        }
    }
    w.out
}

/// Top-level and impl functions longer than `FN_LINES`, outside tests: `file::name`.
fn long_functions(rel: &str, text: &str) -> Vec<String> {
    let lines: Vec<&str> = without_tests(text).lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        let sig = trimmed
            .trim_start_matches("pub(crate) ")
            .trim_start_matches("pub(super) ")
            .trim_start_matches("pub ")
            .trim_start_matches("async ");
        let Some(name) = sig.strip_prefix("fn ") else { continue };
        let name: String = name.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        let end = lines[i + 1..].iter().position(|l| *l == format!("{indent}}}"));
        if end.is_some_and(|e| e + 2 > FN_LINES) {
            out.push(format!("{rel}::{name}"));
        }
    }
    out
}

/// Compares what is found with what is listed: new breaks and mended ones both fail.
fn ratchet(rule: &str, found: BTreeSet<String>, known: &[&str], problems: &mut Vec<String>) {
    let known: BTreeSet<String> = known.iter().map(|s| (*s).to_owned()).collect();
    for new in found.difference(&known) {
        problems.push(format!("{rule}: {new}"));
    }
    for mended in known.difference(&found) {
        problems.push(format!("{rule}: {mended} is mended — remove it from the list in tests/architecture.rs"));
    }
}

#[test]
fn the_architecture_holds() {
    let root = workspace();
    let src = root.join("daemon/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.retain(|f| !f.starts_with(src.join("bin")));
    let texts: BTreeMap<String, String> =
        files.iter().map(|f| (module_of(&src, f), std::fs::read_to_string(f).expect("read"))).collect();
    let known: BTreeSet<String> = texts.keys().cloned().collect();
    let graph: BTreeMap<String, BTreeSet<String>> =
        texts.iter().map(|(m, text)| (m.clone(), imports(m, without_tests(text), &known))).collect();
    let mut problems = Vec::new();

    let found: BTreeSet<String> = circles(&graph).into_iter().map(|c| c.join(" ")).collect();
    let listed: Vec<String> = KNOWN_CIRCLES.iter().map(|c| c.join(" ")).collect();
    ratchet("import circle", found, &listed.iter().map(String::as_str).collect::<Vec<_>>(), &mut problems);

    let edge = |m: &str| {
        m == "daemon"
            || m.starts_with("daemon::")
            || m == "state"
            || m == "api"
            || m.starts_with("api::")
            || m == "admin"
            || m.starts_with("admin::")
    };
    let state_users: BTreeSet<String> =
        graph.iter().filter(|(m, deps)| deps.contains("state") && !edge(m)).map(|(m, _)| m.clone()).collect();
    ratchet("AppState outside the edges", state_users, KNOWN_STATE_USERS, &mut problems);

    let plumbing = ["store", "ledger", "secret", "audit", "config", "logging", "supervise", "devchain", ""];
    let store_imports: BTreeSet<String> = graph
        .iter()
        .filter(|(m, _)| *m == "store" || m.starts_with("store::"))
        .flat_map(|(_, deps)| deps.iter().filter(|d| !plumbing.contains(&d.as_str()) && !d.starts_with("store")))
        .cloned()
        .collect();
    ratchet("the store naming a domain module", store_imports, KNOWN_STORE_IMPORTS, &mut problems);

    let mut all = Vec::new();
    for krate in ["daemon/src", "wallet/src", "lightning/src"] {
        rust_files(&root.join(krate), &mut all);
    }
    let mut long_files = BTreeSet::new();
    let mut long_fns = BTreeSet::new();
    for f in &all {
        let rel = f.strip_prefix(&root).expect("in the workspace").to_string_lossy().into_owned();
        let text = std::fs::read_to_string(f).expect("read");
        if without_tests(&text).lines().count() > FILE_LINES {
            long_files.insert(rel.clone());
        }
        long_fns.extend(long_functions(&rel, &text));
    }
    ratchet(&format!("file over {FILE_LINES} lines"), long_files, KNOWN_LONG_FILES, &mut problems);
    ratchet(&format!("function over {FN_LINES} lines"), long_fns, KNOWN_LONG_FNS, &mut problems);

    // The library crates know nothing of the daemon, nor of each other.
    for (krate, other) in [("wallet", "sendero-lightning"), ("lightning", "sendero-wallet")] {
        let manifest = std::fs::read_to_string(root.join(krate).join("Cargo.toml")).expect("manifest");
        let deps: Vec<&str> = manifest.lines().filter_map(|l| l.split(['=', '.', ' ']).next()).collect();
        for name in [other, "sendero"] {
            if deps.contains(&name) {
                problems.push(format!("crate {krate} depends on {name}"));
            }
        }
    }
    assert!(problems.is_empty(), "ARCHITECTURE.md's rules are broken:\n  {}", problems.join("\n  "));
}
