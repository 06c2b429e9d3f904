//! The gateway's modules depend on each other one way only: no module,
//! directly or through others, uses a module that uses it back (issue 11).
//!
//! Read from the sources: every `crate::…` path outside comments and
//! `#[cfg(test)]` blocks is an edge from the file's module to the longest
//! module it names. Checked twice: between files, and between top-level
//! modules (`resilience::set` → `config::layers` counts as `resilience` →
//! `config`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source dir") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `resilience/set.rs` → `resilience::set`, `config/mod.rs` → `config`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts.join("::")
}

/// Module paths named by `crate::…` in the non-test, non-comment code.
fn uses(text: &str) -> BTreeSet<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
    let mut found = BTreeSet::new();
    for line in code.lines() {
        let line = line.trim_start();
        if line.starts_with("//") {
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let path: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_' || *c == ':')
                .collect();
            found.insert(path.trim_end_matches(':').to_owned());
        }
    }
    found
}

fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_owned(), 1);
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            match state.get(next) {
                Some(1) => {
                    let from = stack.iter().position(|n| n == next).unwrap_or(0);
                    let mut c = stack[from..].to_vec();
                    c.push(next.clone());
                    return Some(c);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(next, graph, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(node.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if !state.contains_key(node) {
            if let Some(c) = visit(node, graph, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn no_module_uses_a_module_that_uses_it_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let modules: BTreeMap<String, BTreeSet<String>> = files
        .iter()
        .map(|f| {
            (
                module_of(&src, f),
                uses(&std::fs::read_to_string(f).unwrap()),
            )
        })
        .filter(|(m, _)| m != "lib")
        .collect();
    // Each named path resolves to the longest module it starts with.
    let resolve = |path: &str| -> Option<String> {
        let parts: Vec<&str> = path.split("::").collect();
        (1..=parts.len())
            .rev()
            .map(|k| parts[..k].join("::"))
            .find(|m| modules.contains_key(m))
    };
    let files_graph: BTreeMap<String, BTreeSet<String>> = modules
        .iter()
        .map(|(m, paths)| {
            let deps = paths
                .iter()
                .filter_map(|p| resolve(p))
                .filter(|d| d != m)
                .collect();
            (m.clone(), deps)
        })
        .collect();
    assert!(files_graph.len() > 30, "sources not found: {files_graph:?}");
    assert_eq!(cycle(&files_graph), None, "a circle between files");
    let top = |m: &str| m.split("::").next().unwrap_or(m).to_owned();
    let mut top_graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, deps) in &files_graph {
        let entry = top_graph.entry(top(m)).or_default();
        entry.extend(deps.iter().map(|d| top(d)).filter(|d| *d != top(m)));
    }
    assert_eq!(
        cycle(&top_graph),
        None,
        "a circle between top-level modules"
    );
}

#[test]
fn the_checker_finds_a_circle() {
    let graph: BTreeMap<String, BTreeSet<String>> =
        [("a", vec!["b"]), ("b", vec!["c"]), ("c", vec!["a"])]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
            .collect();
    assert_eq!(
        cycle(&graph),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    assert_eq!(
        uses(
            "use crate::a::b;\n// crate::c\nfn f() { crate::d::e() }\n#[cfg(test)]\nuse crate::z;"
        ),
        ["a::b", "d::e"].into_iter().map(str::to_owned).collect()
    );
}
