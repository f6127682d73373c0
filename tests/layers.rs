//! The layers of `src/` import only downward, and no files import each other in a circle.
//!
//! Reads the library's source (no build, no server; `src/bin/` is left out, see [`rust_files`]):
//! every `crate::<module>` path in the shipped code of a file of module A must name A itself or a module of a lower layer (test code may use any layer); the names `super::` and `crate::` resolve to files, and
//! those file-to-file references must have no cycle. A failure names the file, the line and the
//! offending path. The layers are the README's map ("Layers"); a new top-level module must be added
//! to [`LAYERS`] in the place that says what it may use.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level modules from the ground up. Modules on one line share a layer and never import each
/// other.
const LAYERS: &[&[&str]] = &[
    &["tls"],
    &["web"],
    &["config"],
    &["chat"],
    &["measure"],
    &["report", "alerts"],
    &["store"],
    &["traffic", "probes", "e2e"],
    &["daemon"],
    &["cli"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Binaries of their own under `src/bin/` (chatsvc) are separate crates: they may use only the
/// library's public API, so the library's layers do not apply to them.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("entry").path();
        if path == src().join("bin") {
            continue;
        }
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file: `src/probes/mod.rs` is `["probes"]`, `src/probes/pagination.rs` is
/// `["probes", "pagination"]`, `src/lib.rs` is `[]`.
fn module_path(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src()).expect("under src/");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// Code lines of a file with their numbers: comments (whole-line and trailing) left out.
fn code_lines(text: &str) -> Vec<(usize, String)> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim_start().starts_with("//"))
        .map(|(i, l)| {
            let code = match l.find(" //") {
                Some(at) if !l[..at].contains('"') => &l[..at],
                _ => l,
            };
            (i + 1, code.to_string())
        })
        .collect()
}

/// Every path after `prefix` on a line: `crate::measure::slo::Slo` gives `["measure", "slo", "Slo"]`.
/// Braced groups (`crate::chat::{table, cache}`) give the part before the brace.
fn paths_after<'a>(line: &'a str, prefix: &str) -> Vec<Vec<&'a str>> {
    let mut out = vec![];
    let mut rest = line;
    while let Some(at) = rest.find(prefix) {
        let before = rest[..at].chars().last();
        let after = &rest[at + prefix.len()..];
        let end = after
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(after.len());
        if !before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            out.push(after[..end].split("::").filter(|s| !s.is_empty()).collect());
        }
        rest = &after[end..];
    }
    out
}

/// The file a module path names, going as deep as files exist.
fn file_of(modules: &BTreeMap<Vec<String>, PathBuf>, path: &[String]) -> Option<PathBuf> {
    (1..=path.len())
        .rev()
        .find_map(|n| modules.get(&path[..n].to_vec()).cloned())
}

#[test]
fn layers_import_only_downward_and_files_have_no_cycle() {
    let mut files = vec![];
    rust_files(&src(), &mut files);
    files.sort();
    let modules: BTreeMap<Vec<String>, PathBuf> =
        files.iter().map(|f| (module_path(f), f.clone())).collect();
    let mut problems = vec![];
    let mut edges: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    for file in &files {
        let me = module_path(file);
        let shown = file
            .strip_prefix(src().parent().unwrap())
            .unwrap()
            .display();
        let Some(top) = me.first() else {
            continue; // lib.rs and main.rs tie the layers together
        };
        let Some(my_layer) = layer_of(top) else {
            problems.push(format!(
                "{shown}: module `{top}` is in no layer: add it to LAYERS (tests/layers.rs) and the README's map"
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).expect("readable");
        // Test code (after `#[cfg(test)]`, or a `tests.rs` of its own) is compiled alone and may
        // take any layer as a fixture (the real probe catalog, say): only the shipped code is held
        // to the layers, and only it can tie a circle.
        let in_tests = if file.ends_with("tests.rs") {
            0
        } else {
            text.find("#[cfg(test)]")
                .map_or(usize::MAX, |at| text[..at].lines().count() + 1)
        };
        for (number, line) in code_lines(&text) {
            let mut targets: Vec<Vec<String>> = vec![];
            for p in paths_after(&line, "crate::") {
                let Some(first) = p.first() else { continue };
                let to = *first;
                if to != top.as_str() && number < in_tests {
                    match layer_of(to) {
                        Some(l) if l < my_layer => {}
                        Some(l) => problems.push(format!(
                            "{shown}:{number}: `{}`: {top} (layer {}) imports {to} (layer {}); a layer imports only the layers below it",
                            line.trim(),
                            my_layer + 1,
                            l + 1
                        )),
                        None => {}
                    }
                }
                targets.push(p.iter().map(|s| s.to_string()).collect());
            }
            for p in paths_after(&line, "super::") {
                // `super::` of src/a/b.rs (or of src/a/b/mod.rs) is a.
                let parent = if file.ends_with("mod.rs") {
                    me[..me.len().saturating_sub(1)].to_vec()
                } else {
                    me[..me.len() - 1].to_vec()
                };
                targets.push(
                    parent
                        .into_iter()
                        .chain(p.iter().map(|s| s.to_string()))
                        .collect(),
                );
            }
            if file.ends_with("mod.rs") {
                // A folder's mod.rs names its own files by relative paths too (`pacer::Pacer`).
                for (child, _) in modules
                    .iter()
                    .filter(|(m, _)| m.len() == me.len() + 1 && m.starts_with(&me))
                {
                    let name = child.last().expect("a child has a name");
                    for p in paths_after(&line, &format!("{name}::")) {
                        targets.push(
                            child
                                .iter()
                                .cloned()
                                .chain(p.iter().map(|s| s.to_string()))
                                .collect(),
                        );
                    }
                }
            }
            for p in paths_after(&line, "self::") {
                targets.push(
                    me.iter()
                        .cloned()
                        .chain(p.iter().map(|s| s.to_string()))
                        .collect(),
                );
            }
            for t in targets.into_iter().filter(|_| number < in_tests) {
                if let Some(to) = file_of(&modules, &t).filter(|to| to != file) {
                    edges.entry(file.clone()).or_default().insert(to);
                }
            }
        }
    }
    while let Some(cycle) = find_cycle(&edges) {
        let names: Vec<String> = cycle
            .iter()
            .map(|f| {
                f.strip_prefix(src().parent().unwrap())
                    .unwrap()
                    .display()
                    .to_string()
            })
            .collect();
        problems.push(format!(
            "files import each other in a circle: {}",
            names.join(" -> ")
        ));
        // Cut the circle's last arrow and look for another.
        let (from, to) = (&cycle[cycle.len() - 2], &cycle[cycle.len() - 1]);
        edges.get_mut(from).expect("on the circle").remove(to);
    }
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}

/// A cycle of the graph, as its files in order (first repeated at the end), if there is one.
fn find_cycle(edges: &BTreeMap<PathBuf, BTreeSet<PathBuf>>) -> Option<Vec<PathBuf>> {
    fn visit(
        at: &PathBuf,
        edges: &BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        stack: &mut Vec<PathBuf>,
        done: &mut BTreeSet<PathBuf>,
    ) -> Option<Vec<PathBuf>> {
        if let Some(i) = stack.iter().position(|f| f == at) {
            let mut cycle = stack[i..].to_vec();
            cycle.push(at.clone());
            return Some(cycle);
        }
        if done.contains(at) {
            return None;
        }
        stack.push(at.clone());
        for next in edges.get(at).into_iter().flatten() {
            if let Some(c) = visit(next, edges, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(at.clone());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|f| visit(f, edges, &mut vec![], &mut done))
}

#[test]
fn the_checker_sees_an_upward_import_and_a_cycle() {
    assert_eq!(
        paths_after("use crate::daemon::http::{self, Health};", "crate::"),
        vec![vec!["daemon", "http"]]
    );
    assert!(paths_after("let x = mycrate::a;", "crate::").is_empty());
    assert!(layer_of("daemon") > layer_of("traffic"));
    assert_eq!(layer_of("traffic"), layer_of("probes"));
    let (a, b) = (PathBuf::from("a"), PathBuf::from("b"));
    let edges = BTreeMap::from([
        (a.clone(), BTreeSet::from([b.clone()])),
        (b.clone(), BTreeSet::from([a.clone()])),
    ]);
    assert_eq!(find_cycle(&edges), Some(vec![a.clone(), b.clone(), a]));
    assert_eq!(find_cycle(&BTreeMap::from([(b, BTreeSet::new())])), None);
}
