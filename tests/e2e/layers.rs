//! The host's layers point down: no import circle between the files of
//! `host/src`, and no top-level module imports one of a higher layer (the
//! state, the sandbox, sources and sinks never import the runtime, the
//! coordinator or the server; config imports none of them).
//!
//! Imports are read from the source text (`use crate::…`, `use super::…`
//! and `crate::a::b` paths), leaving out `#[cfg(test)]` modules, comments,
//! and a `mod.rs` re-exporting its own children.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The top-level modules of `host/src`, lowest layer first: a module may
/// import only modules of a lower layer.
const LAYERS: &[&[&str]] = &[
    &[
        "clock",
        "confined",
        "keygroup",
        "machine",
        "metrics",
        "timers",
        "watermark",
    ],
    &["config"],
    &["channel", "spec"],
    &["state"],
    &["kafka", "objectstore"],
    &["sandbox", "source", "sink"],
    &["checkpoint"],
    &["runtime"],
    &["session"],
    &["reporting"],
    &["server"],
    &["client"],
    &["bench"],
    &["fuzz"],
];

type Module = Vec<String>;

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`, by module path (`["checkpoint", "hub"]`).
fn modules(dir: &Path, prefix: &[String], out: &mut BTreeMap<Module, PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src").flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if name == "bin" && prefix.is_empty() {
                continue; // the binary imports the library as `weir::`
            }
            let mut p = prefix.to_vec();
            p.push(name);
            modules(&path, &p, out);
        } else if let Some(stem) = name.strip_suffix(".rs") {
            let mut p = prefix.to_vec();
            if !matches!(stem, "mod" | "lib" | "main") {
                p.push(stem.to_owned());
            }
            out.insert(p, path);
        }
    }
}

/// The text of a file without comments and `#[cfg(test)]` modules.
fn code(text: &str) -> String {
    let mut out = String::new();
    let mut skip_depth: Option<i32> = None;
    let mut cfg_test = false;
    for line in text.lines() {
        let line = line.split("//").next().unwrap_or("");
        if let Some(depth) = skip_depth.as_mut() {
            *depth += line.matches('{').count() as i32 - line.matches('}').count() as i32;
            if *depth <= 0 {
                skip_depth = None;
            }
            continue;
        }
        if line.trim() == "#[cfg(test)]" {
            cfg_test = true;
            continue;
        }
        if cfg_test && line.trim_start().starts_with("mod ") && line.contains('{') {
            skip_depth = Some(line.matches('{').count() as i32 - line.matches('}').count() as i32);
            cfg_test = false;
            continue;
        }
        cfg_test = false;
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The paths a `use` tree names: `a::{b, c::d}` gives `a::b` and `a::c::d`.
fn expand(tree: &str) -> Vec<Vec<String>> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        return vec![tree.split("::").map(|s| s.trim().to_owned()).collect()];
    };
    let head: Vec<String> = tree[..open]
        .split("::")
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().to_owned())
        .collect();
    let close = tree.rfind('}').filter(|&c| c > open).unwrap_or(tree.len());
    let body = &tree[open + 1..close];
    let (mut items, mut depth, mut cur) = (Vec::new(), 0, String::new());
    for c in body.chars() {
        match c {
            ',' if depth == 0 => items.push(std::mem::take(&mut cur)),
            '{' => {
                depth += 1;
                cur.push(c)
            }
            '}' => {
                depth -= 1;
                cur.push(c)
            }
            _ => cur.push(c),
        }
    }
    items.push(cur);
    items
        .iter()
        .filter(|i| !i.trim().is_empty())
        .flat_map(|i| expand(i).into_iter().map(|t| [head.clone(), t].concat()))
        .collect()
}

/// Whether `s` is nothing or a visibility (`pub`, `pub(crate)`, ...).
fn is_visibility(s: &str) -> bool {
    s.is_empty() || s == "pub" || (s.starts_with("pub(") && s.ends_with(')') && !s.contains(' '))
}

/// The modules file `module` imports.
fn imports(
    module: &Module,
    is_mod_rs: bool,
    text: &str,
    all: &BTreeMap<Module, PathBuf>,
) -> BTreeSet<Module> {
    let resolve = |segs: &[String]| -> Option<Module> {
        (1..=segs.len())
            .rev()
            .map(|i| segs[..i].to_vec())
            .find(|p| all.contains_key(p))
    };
    // `super` is the parent module, for `a/b.rs` and `a/b/mod.rs` alike.
    let parent: Module = module[..module.len().saturating_sub(1)].to_vec();
    let mut out = BTreeSet::new();
    let code = code(text);
    for stmt in code.split(';') {
        let stmt = stmt.trim();
        let (reexport, rest) = match stmt.find("use ") {
            Some(i) if is_visibility(stmt[..i].trim()) => {
                (!stmt[..i].trim().is_empty(), stmt[i + 4..].trim())
            }
            _ => continue,
        };
        if !["crate", "super", "self"]
            .iter()
            .any(|p| rest.starts_with(p))
        {
            continue;
        }
        for path in expand(rest) {
            let segs: Module = match path.first().map(String::as_str) {
                Some("crate") => path[1..].to_vec(),
                Some("super") => {
                    let ups = path.iter().take_while(|s| *s == "super").count();
                    let base = &parent[..parent.len().saturating_sub(ups - 1)];
                    [base.to_vec(), path[ups..].to_vec()].concat()
                }
                Some("self") => [module.clone(), path[1..].to_vec()].concat(),
                _ => continue,
            };
            let Some(target) = resolve(&segs) else {
                continue;
            };
            let own_child = is_mod_rs && target.starts_with(module);
            if target != *module && !(reexport && own_child) {
                out.insert(target);
            }
        }
    }
    for (i, _) in code.match_indices("crate::") {
        let segs: Module = code[i + 7..]
            .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .next()
            .unwrap_or("")
            .split("::")
            .map(str::to_owned)
            .collect();
        if let Some(t) = resolve(&segs[..segs.len().saturating_sub(1)]).filter(|t| t != module) {
            out.insert(t);
        }
    }
    out
}

/// The strongly connected components of more than one node (Tarjan).
fn circles(edges: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    struct T<'a> {
        edges: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'a Module, usize>,
        low: BTreeMap<&'a Module, usize>,
        stack: Vec<&'a Module>,
        found: Vec<Vec<Module>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a Module) {
        let n = t.index.len();
        t.index.insert(v, n);
        t.low.insert(v, n);
        t.stack.push(v);
        for w in t.edges.get(v).into_iter().flatten() {
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if t.stack.contains(&w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut c = Vec::new();
            while let Some(w) = t.stack.pop() {
                c.push(w.clone());
                if w == v {
                    break;
                }
            }
            if c.len() > 1 {
                t.found.push(c);
            }
        }
    }
    let mut t = T {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for v in edges.keys() {
        if !t.index.contains_key(v) {
            visit(&mut t, v);
        }
    }
    t.found
}

fn file_graph() -> BTreeMap<Module, BTreeSet<Module>> {
    let mut all = BTreeMap::new();
    modules(&src_dir(), &[], &mut all);
    all.iter()
        .map(|(m, path)| {
            let text = std::fs::read_to_string(path).expect("read");
            let is_mod_rs = path
                .file_name()
                .is_some_and(|n| n == "mod.rs" || n == "lib.rs" || n == "main.rs");
            (m.clone(), imports(m, is_mod_rs, &text, &all))
        })
        .collect()
}

#[test]
fn no_import_circle_between_the_files_of_the_host() {
    let found = circles(&file_graph());
    let names: Vec<String> = found
        .iter()
        .map(|c| {
            c.iter()
                .map(|m| m.join("/"))
                .collect::<Vec<_>>()
                .join(" -> ")
        })
        .collect();
    assert!(names.is_empty(), "import circles between files: {names:#?}");
}

#[test]
fn every_top_level_module_imports_only_lower_layers() {
    let layer = |m: &Module| -> Option<usize> {
        let top = m.first()?;
        LAYERS.iter().position(|l| l.contains(&top.as_str()))
    };
    let mut wrong = Vec::new();
    for (from, targets) in file_graph() {
        let Some(top) = from.first() else { continue };
        let Some(lf) = layer(&from) else {
            wrong.push(format!("{top}: not in LAYERS"));
            continue;
        };
        for to in targets.iter().filter(|t| t.first() != from.first()) {
            match layer(to) {
                Some(lt) if lt < lf => {}
                _ => wrong.push(format!("{} imports {}", from.join("/"), to.join("/"))),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports that point up or sideways: {wrong:#?}"
    );
}

#[test]
fn the_layer_check_sees_a_circle() {
    let m = |s: &str| -> Module { s.split('/').map(str::to_owned).collect() };
    let mut edges = BTreeMap::new();
    edges.insert(m("a"), BTreeSet::from([m("b")]));
    edges.insert(m("b"), BTreeSet::from([m("c")]));
    edges.insert(m("c"), BTreeSet::from([m("a")]));
    edges.insert(m("d"), BTreeSet::from([m("a")]));
    assert_eq!(circles(&edges).len(), 1);
    let text = "use crate::state::{KeyedStateBackend, ttl::TtlBackend};\n#[cfg(test)]\nmod tests {\n use crate::runtime::x;\n}\n";
    let mut all = BTreeMap::new();
    for p in ["sandbox", "state", "state/ttl", "runtime"] {
        all.insert(m(p), PathBuf::new());
    }
    let found = imports(&m("sandbox"), true, text, &all);
    assert_eq!(found, BTreeSet::from([m("state"), m("state/ttl")]));
}
