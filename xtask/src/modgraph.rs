//! Module layering inside a crate: the modules of a crate must not import each other in a
//! circle (docs/architecture.md: "a module never imports one above it").
//!
//! A module's imports are the `crate::...`, `super::...` and `self::...` paths in its file
//! (comments and string literals removed), `use` trees expanded; each path is resolved to the
//! deepest module it names. `crate::X` where the crate root re-exports `X` (`pub use a::X;`)
//! counts as a use of module `a`. A module declaring a child (`mod child;`) is not an import.
//! Circles are the strongly connected components of more than one module.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use anyhow::{Context, Result};

/// Module path (`["http", "files"]`; the crate root is `[]`) to the modules it imports.
pub(crate) type Graph = BTreeMap<Vec<String>, BTreeSet<Vec<String>>>;

/// The import graph of the crate whose sources are under `src`.
pub(crate) fn graph(src: &Path) -> Result<Graph> {
    let mut files = BTreeMap::new();
    collect(src, src, &mut files)?;
    let modules: BTreeSet<Vec<String>> = files.keys().cloned().collect();
    let mut reexports: HashMap<String, Vec<String>> = HashMap::new();
    if let Some(root) = files.get(&Vec::new()) {
        let text = strip(root);
        for stmt in statements(&text, "pub use ") {
            for path in expand(&stmt) {
                let path = drop_prefix(&path);
                if let Some((last, module)) = path.split_last() {
                    reexports.insert(last.clone(), module.to_vec());
                }
            }
        }
    }
    let mut graph = Graph::new();
    for (module, text) in &files {
        let text = without_test_modules(&strip(text));
        let mut deps = BTreeSet::new();
        for path in paths(&text) {
            let absolute = match path.first().map(String::as_str) {
                Some("crate") => path[1..].to_vec(),
                Some("self") => module.iter().chain(&path[1..]).cloned().collect(),
                Some("super") => {
                    let ups = path.iter().take_while(|s| *s == "super").count();
                    let Some(base) = module.len().checked_sub(ups) else {
                        continue;
                    };
                    module[..base].iter().chain(&path[ups..]).cloned().collect()
                }
                _ => continue,
            };
            let mut target = deepest_module(&absolute, &modules);
            if target.is_empty()
                && let Some(m) = absolute.first().and_then(|first| reexports.get(first))
            {
                target = deepest_module(m, &modules);
            }
            if !target.is_empty() && &target != module {
                deps.insert(target);
            }
        }
        graph.insert(module.clone(), deps);
    }
    Ok(graph)
}

/// The circles of `graph`: strongly connected components of two or more modules, each sorted.
pub(crate) fn circles(graph: &Graph) -> Vec<Vec<String>> {
    // Tarjan's algorithm over the modules in sorted order (deterministic output).
    struct State<'g> {
        graph: &'g Graph,
        index: HashMap<&'g Vec<String>, usize>,
        low: HashMap<&'g Vec<String>, usize>,
        stack: Vec<&'g Vec<String>>,
        on_stack: BTreeSet<&'g Vec<String>>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g Vec<String>) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flatten() {
            let Some((w, _)) = s.graph.get_key_value(w) else {
                continue;
            };
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(name(w));
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.out.push(component);
            }
        }
    }
    let mut s = State {
        graph,
        index: HashMap::new(),
        low: HashMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.out.sort();
    s.out
}

/// `http::files`, or `lib` for the root.
pub(crate) fn name(module: &[String]) -> String {
    if module.is_empty() {
        "lib".to_owned()
    } else {
        module.join("::")
    }
}

fn collect(src: &Path, dir: &Path, files: &mut BTreeMap<Vec<String>, String>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect(src, &path, files)?;
            continue;
        }
        if path.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let rel = path
            .strip_prefix(src)
            .expect("under src")
            .with_extension("");
        let mut module: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if module.last().is_some_and(|m| m == "mod") {
            module.pop();
        }
        if module == ["lib"] || module == ["main"] {
            module.clear();
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        files.insert(module, text);
    }
    Ok(())
}

fn deepest_module(path: &[String], modules: &BTreeSet<Vec<String>>) -> Vec<String> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| modules.contains(p))
        .unwrap_or_default()
}

fn drop_prefix(path: &[String]) -> Vec<String> {
    match path.first().map(String::as_str) {
        Some("crate" | "self") => path[1..].to_vec(),
        _ => path.to_vec(),
    }
}

/// Source without comments, string and character literals (lifetimes kept).
pub(crate) fn strip(text: &str) -> String {
    let b: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            '/' if b.get(i + 1) == Some(&'/') => {
                while i < b.len() && b[i] != '\n' {
                    i += 1;
                }
            }
            '/' if b.get(i + 1) == Some(&'*') => {
                let mut depth = 0;
                while i < b.len() {
                    if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                        depth += 1;
                        i += 2;
                    } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                out.push(' ');
            }
            'r' if matches!(b.get(i + 1), Some('"' | '#'))
                && !b
                    .get(i.wrapping_sub(1))
                    .is_some_and(|c| c.is_alphanumeric() || *c == '_') =>
            {
                // Raw string r"..." or r#"..."#.
                let mut j = i + 1;
                let mut hashes = 0;
                while b.get(j) == Some(&'#') {
                    hashes += 1;
                    j += 1;
                }
                if b.get(j) != Some(&'"') {
                    out.push(b[i]);
                    i += 1;
                    continue;
                }
                j += 1;
                while j < b.len() {
                    if b[j] == '"' && (1..=hashes).all(|k| b.get(j + k) == Some(&'#')) {
                        j += 1 + hashes;
                        break;
                    }
                    j += 1;
                }
                out.push_str("\"\"");
                i = j;
            }
            '"' => {
                i += 1;
                while i < b.len() && b[i] != '"' {
                    if b[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
                out.push_str("\"\"");
            }
            '\'' => {
                if b.get(i + 1) == Some(&'\\') {
                    // '\n', '\'', '\u{..}'
                    let mut j = i + 2;
                    while j < b.len() && b[j] != '\'' {
                        j += 1;
                    }
                    i = j + 1;
                    out.push_str("' '");
                } else if b.get(i + 2) == Some(&'\'') {
                    i += 3;
                    out.push_str("' '");
                } else {
                    out.push('\'');
                    i += 1;
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// `text` without `#[cfg(test)] mod NAME { ... }` blocks: test code may import anything, and
/// `super::` inside it names the file's own module.
pub(crate) fn without_test_modules(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "#[cfg(test)]".len()..];
        let trimmed = after.trim_start();
        let is_mod = trimmed.starts_with("mod ")
            && trimmed
                .find(['{', ';'])
                .is_some_and(|i| trimmed.as_bytes()[i] == b'{');
        if !is_mod {
            out.push_str("#[cfg(test)]");
            rest = after;
            continue;
        }
        let open = after.find('{').expect("checked");
        let mut depth = 0usize;
        let mut end = after.len();
        for (i, c) in after[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// The statements of `text` starting with `keyword` (up to the `;`).
fn statements(text: &str, keyword: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(keyword) {
        let after = &rest[at + keyword.len()..];
        let end = after.find(';').unwrap_or(after.len());
        out.push(after[..end].to_owned());
        rest = &after[end..];
    }
    out
}

/// Every `crate::` / `super::` / `self::` path in the text, use trees expanded.
fn paths(text: &str) -> Vec<Vec<String>> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let boundary = i == 0 || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
        if boundary {
            for head in ["crate::", "super::", "self::"] {
                let h: Vec<char> = head.chars().collect();
                if chars[i..].starts_with(&h) {
                    // Take the path (and a use tree after it) up to a character that ends it.
                    let mut j = i;
                    let mut depth = 0i32;
                    while j < chars.len() {
                        let c = chars[j];
                        if c == '{' {
                            depth += 1;
                        } else if c == '}' {
                            if depth == 0 {
                                break;
                            }
                            depth -= 1;
                        } else if depth == 0
                            && !(c.is_alphanumeric() || c == '_' || c == ':' || c == '*')
                        {
                            break;
                        }
                        j += 1;
                    }
                    let tree: String = chars[i..j].iter().collect();
                    out.extend(expand(&tree));
                    i = j;
                    break;
                }
            }
        }
        i += 1;
    }
    out
}

/// `a::b::{c, d::{e, f}}` to `[a b c] [a b d e] [a b d f]`; `self` inside a tree means the
/// path before it; `as` renames are dropped.
fn expand(tree: &str) -> Vec<Vec<String>> {
    let tree: String = tree
        .chars()
        .filter(|c| !c.is_whitespace() || *c == ' ')
        .collect();
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        let path = tree.split(" as ").next().unwrap_or(tree).trim();
        let segs: Vec<String> = path
            .split("::")
            .map(str::trim)
            .filter(|s| !s.is_empty() && *s != "*")
            .map(str::to_owned)
            .collect();
        return if segs.is_empty() {
            Vec::new()
        } else {
            vec![segs]
        };
    };
    let prefix: Vec<String> = tree[..open]
        .split("::")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let inner = tree[open + 1..]
        .trim_end()
        .strip_suffix('}')
        .unwrap_or(&tree[open + 1..]);
    let mut out = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    let bytes = inner.as_bytes();
    for (k, &c) in bytes.iter().enumerate() {
        match c {
            b'{' => depth += 1,
            b'}' => depth -= 1,
            b',' if depth == 0 => {
                push_item(&prefix, &inner[start..k], &mut out);
                start = k + 1;
            }
            _ => {}
        }
    }
    push_item(&prefix, &inner[start..], &mut out);
    out
}

fn push_item(prefix: &[String], item: &str, out: &mut Vec<Vec<String>>) {
    let item = item.trim();
    if item.is_empty() {
        return;
    }
    if item == "self" {
        out.push(prefix.to_vec());
        return;
    }
    for sub in expand(item) {
        out.push(prefix.iter().cloned().chain(sub).collect());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Vec<String> {
        s.split("::").map(str::to_owned).collect()
    }

    #[test]
    fn use_trees_expand() {
        assert_eq!(
            expand("crate::{a::X, b, c::{d::Y, self}}"),
            vec![
                v("crate::a::X"),
                v("crate::b"),
                v("crate::c::d::Y"),
                v("crate::c")
            ]
        );
        assert_eq!(expand("super::x as y"), vec![v("super::x")]);
    }

    #[test]
    fn comments_and_strings_do_not_count() {
        let text = strip(
            "// use crate::a;\nlet s = \"crate::b\"; let c = '\"'; fn f<'a>() {} crate::c::f();",
        );
        let found = paths(&text);
        assert_eq!(found, vec![v("crate::c::f")]);
    }

    #[test]
    fn test_modules_do_not_count() {
        let text = without_test_modules(
            "use crate::a;\n#[cfg(test)]\nmod tests { use super::*; fn f() { crate::b::g(); } }\nuse crate::c;",
        );
        assert_eq!(paths(&text), vec![v("crate::a"), v("crate::c")]);
    }

    #[test]
    fn a_circle_is_found_and_a_chain_is_not() {
        let dir = std::env::temp_dir().join(format!("modgraph-{}", std::process::id()));
        let src = dir.join("src");
        std::fs::create_dir_all(src.join("net")).unwrap();
        std::fs::write(
            src.join("lib.rs"),
            "mod a; mod b; mod net; pub use a::Thing;",
        )
        .unwrap();
        std::fs::write(src.join("a.rs"), "use crate::b::B; pub struct Thing;").unwrap();
        std::fs::write(src.join("b.rs"), "pub struct B; fn f(_: crate::Thing) {}").unwrap();
        std::fs::write(src.join("net/mod.rs"), "mod io;").unwrap();
        std::fs::write(src.join("net/io.rs"), "use super::super::a::Thing;").unwrap();
        let g = graph(&src).unwrap();
        assert_eq!(circles(&g), vec![vec!["a".to_owned(), "b".to_owned()]]);
        assert!(g[&v("net::io")].contains(&v("a")));
        std::fs::write(src.join("b.rs"), "pub struct B;").unwrap();
        assert!(circles(&graph(&src).unwrap()).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
