//! What `chunkup upload DIR|GLOB|FILE...` means: inputs resolved once, then
//! walked lazily (directory entries are read as the walk goes, so memory does
//! not grow with the number of files), filtered by `--include/--exclude`.
//!
//! Remote names: a file given by name is its file name; a directory's files
//! are `DIR_NAME/sub/path`; a glob's matches are their path below the glob's
//! literal base directory. Separators are always `/`.

use std::ops::ControlFlow;
use std::path::{Component, Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};

/// One input of the command line.
#[derive(Debug, Clone)]
pub(crate) enum Root {
    /// A file (canonical path, remote name).
    File { path: PathBuf, name: String },
    /// A directory (canonical path, the prefix of its files' remote names).
    Dir { path: PathBuf, prefix: String },
    /// A glob pattern (as typed) and its canonical literal base.
    Glob { pattern: String, base: PathBuf },
    /// Nothing there: reported as a failed file.
    Missing { path: PathBuf },
}

impl Root {
    /// How the batch id sees this input.
    pub(crate) fn canonical(&self) -> String {
        match self {
            Root::File { path, .. } | Root::Dir { path, .. } | Root::Missing { path } => {
                path.to_string_lossy().into_owned()
            }
            Root::Glob { pattern, base } => {
                let rest = Path::new(pattern)
                    .strip_prefix(literal_base(pattern))
                    .map_or_else(|_| pattern.clone(), slashed);
                format!("{}/{rest}", base.to_string_lossy())
            }
        }
    }
}

fn is_glob(text: &str) -> bool {
    text.contains(['*', '?', '[', '{'])
}

/// The leading components of `pattern` without glob characters.
fn literal_base(pattern: &str) -> PathBuf {
    let mut base = PathBuf::new();
    for component in Path::new(pattern).components() {
        if is_glob(&component.as_os_str().to_string_lossy()) {
            break;
        }
        base.push(component);
    }
    if base.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        base
    }
}

/// `a/b/c` with `/` whatever the platform.
fn slashed(path: &Path) -> String {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(part) => Some(part.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Turns the command line's inputs into roots. A path that does not exist
/// and has glob characters is a glob; one without is missing.
pub(crate) fn resolve(inputs: &[PathBuf]) -> Result<Vec<Root>, String> {
    let mut roots = Vec::new();
    for input in inputs {
        let text = input.to_string_lossy().into_owned();
        match std::fs::canonicalize(input) {
            Ok(path) if path.is_dir() => {
                let prefix = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                roots.push(Root::Dir { path, prefix });
            }
            Ok(path) => {
                let name = path
                    .file_name()
                    .map_or_else(|| text.clone(), |n| n.to_string_lossy().into_owned());
                roots.push(Root::File { path, name });
            }
            Err(_) if is_glob(&text) => {
                glob::Pattern::new(&text).map_err(|e| format!("bad glob {text:?}: {e}"))?;
                let literal = literal_base(&text);
                let base = std::fs::canonicalize(&literal).unwrap_or(literal);
                roots.push(Root::Glob {
                    pattern: text,
                    base,
                });
            }
            Err(_) => roots.push(Root::Missing {
                path: input.clone(),
            }),
        }
    }
    Ok(roots)
}

/// `--include` / `--exclude`: globs over remote names (`*` also crosses
/// `/`, so `*.jpg` matches `photos/2024/a.jpg`). A file is taken when it
/// matches an include (or there are none) and no exclude; a directory whose
/// name matches an exclude is not entered.
#[derive(Debug, Clone, Default)]
pub(crate) struct Filters {
    include: Option<GlobSet>,
    exclude: Option<GlobSet>,
}

impl Filters {
    pub(crate) fn new(include: &[String], exclude: &[String]) -> Result<Self, String> {
        let build = |patterns: &[String]| -> Result<Option<GlobSet>, String> {
            if patterns.is_empty() {
                return Ok(None);
            }
            let mut builder = GlobSetBuilder::new();
            for pattern in patterns {
                builder.add(Glob::new(pattern).map_err(|e| format!("bad glob {pattern:?}: {e}"))?);
            }
            builder.build().map(Some).map_err(|e| e.to_string())
        };
        Ok(Filters {
            include: build(include)?,
            exclude: build(exclude)?,
        })
    }

    pub(crate) fn admits(&self, name: &str) -> bool {
        self.include.as_ref().is_none_or(|set| set.is_match(name))
            && !self.exclude.as_ref().is_some_and(|set| set.is_match(name))
    }

    fn prunes(&self, dir_name: &str) -> bool {
        self.exclude
            .as_ref()
            .is_some_and(|set| set.is_match(dir_name))
    }
}

/// What the walk finds.
#[derive(Debug)]
pub(crate) enum Found {
    /// A regular file to upload (not canonical yet: the uploader opens it).
    File { path: PathBuf, name: String },
    /// Something that could not be read (a missing input, a directory
    /// without permission).
    Unreadable { path: PathBuf, reason: String },
}

fn join(prefix: &str, rest: &str) -> String {
    match (prefix.is_empty(), rest.is_empty()) {
        (true, _) => rest.to_string(),
        (_, true) => prefix.to_string(),
        _ => format!("{prefix}/{rest}"),
    }
}

/// Walks `roots` in order, calling `visit` for each admitted file and each
/// unreadable thing, until `visit` breaks. Blocking: run it on a blocking
/// thread.
pub(crate) fn walk(
    roots: &[Root],
    filters: &Filters,
    mut visit: impl FnMut(Found) -> ControlFlow<()>,
) -> ControlFlow<()> {
    for root in roots {
        match root {
            Root::File { path, name } => {
                // A file named on the command line is taken as asked.
                visit(Found::File {
                    path: path.clone(),
                    name: name.clone(),
                })?;
            }
            Root::Missing { path } => visit(Found::Unreadable {
                path: path.clone(),
                reason: format!("cannot read {}: no such file or directory", path.display()),
            })?,
            Root::Dir { path, prefix } => walk_dir(path, prefix, filters, &mut visit)?,
            Root::Glob { pattern, .. } => {
                let literal = literal_base(pattern);
                let matches = match glob::glob(pattern) {
                    Ok(matches) => matches,
                    Err(e) => {
                        visit(Found::Unreadable {
                            path: PathBuf::from(pattern),
                            reason: format!("bad glob {pattern:?}: {e}"),
                        })?;
                        continue;
                    }
                };
                for entry in matches {
                    let path = match entry {
                        Ok(path) => path,
                        Err(e) => {
                            visit(Found::Unreadable {
                                path: e.path().to_path_buf(),
                                reason: e.to_string(),
                            })?;
                            continue;
                        }
                    };
                    let name = path
                        .strip_prefix(&literal)
                        .map_or_else(|_| slashed(&path), slashed);
                    if path.is_dir() {
                        if !filters.prunes(&name) {
                            walk_dir(&path, &name, filters, &mut visit)?;
                        }
                    } else if path.is_file() && filters.admits(&name) {
                        visit(Found::File { path, name })?;
                    }
                }
            }
        }
    }
    ControlFlow::Continue(())
}

fn walk_dir(
    dir: &Path,
    prefix: &str,
    filters: &Filters,
    visit: &mut impl FnMut(Found) -> ControlFlow<()>,
) -> ControlFlow<()> {
    let mut entries = walkdir::WalkDir::new(dir).min_depth(1).into_iter();
    while let Some(entry) = entries.next() {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                let path = e
                    .path()
                    .map_or_else(|| dir.to_path_buf(), Path::to_path_buf);
                visit(Found::Unreadable {
                    reason: format!("cannot read {}: {}", path.display(), e),
                    path,
                })?;
                continue;
            }
        };
        let relative = entry
            .path()
            .strip_prefix(dir)
            .map(slashed)
            .unwrap_or_default();
        let name = join(prefix, &relative);
        let file_type = entry.file_type();
        if file_type.is_dir() {
            if filters.prunes(&name) {
                entries.skip_current_dir();
            }
            continue;
        }
        // Symlinks to files are taken; symlinked directories are not entered
        // (no loops, no walking out of the tree).
        let is_file = file_type.is_file()
            || (file_type.is_symlink() && entry.path().metadata().is_ok_and(|m| m.is_file()));
        if is_file && filters.admits(&name) {
            visit(Found::File {
                path: entry.into_path(),
                name,
            })?;
        }
    }
    ControlFlow::Continue(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_match_remote_names() {
        let filters = Filters::new(&["*.jpg".into()], &["**/skip/**".into()]).unwrap_or_default();
        assert!(filters.admits("a/b/c.jpg"));
        assert!(!filters.admits("a/b/c.png"));
        assert!(!filters.admits("a/skip/c.jpg"));
        assert!(Filters::new(&["[".into()], &[]).is_err());
        assert!(Filters::default().admits("anything"));
    }

    #[test]
    fn glob_bases() {
        assert_eq!(literal_base("data/*.jpg"), PathBuf::from("data"));
        assert_eq!(literal_base("*.jpg"), PathBuf::from("."));
        assert_eq!(literal_base("/a/b/**/c"), PathBuf::from("/a/b"));
    }

    #[test]
    fn walks_dirs_and_globs_with_remote_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("top");
        std::fs::create_dir_all(root.join("a/b")).expect("mkdir");
        std::fs::create_dir_all(root.join("skip")).expect("mkdir");
        for file in ["x.txt", "a/y.jpg", "a/b/z.jpg", "skip/w.jpg"] {
            std::fs::write(root.join(file), b"1").expect("write");
        }
        let roots = resolve(std::slice::from_ref(&root)).expect("resolve");
        let filters = Filters::new(&[], &["top/skip".into()]).expect("filters");
        let mut names = Vec::new();
        let _ = walk(&roots, &filters, |found| {
            if let Found::File { name, .. } = found {
                names.push(name);
            }
            ControlFlow::Continue(())
        });
        names.sort();
        assert_eq!(names, ["top/a/b/z.jpg", "top/a/y.jpg", "top/x.txt"]);

        let pattern = format!("{}/a/**/*.jpg", root.display());
        let roots = resolve(&[PathBuf::from(&pattern)]).expect("resolve");
        let mut names = Vec::new();
        let _ = walk(&roots, &Filters::default(), |found| {
            if let Found::File { name, .. } = found {
                names.push(name);
            }
            ControlFlow::Continue(())
        });
        names.sort();
        assert_eq!(names, ["b/z.jpg", "y.jpg"]);
    }
}
