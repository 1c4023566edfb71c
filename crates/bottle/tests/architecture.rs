//! The library does no terminal or process-stdio I/O of its own: it
//! reaches the user only through `bottle::ui::Ui`, which the command line
//! implements. This reads the library's own source to keep it so (a
//! module's tests excepted).

use std::path::Path;

/// What would let a module print, read stdin, draw progress or listen
/// for terminal signals by itself.
const FORBIDDEN: &[&str] = &[
    "print!(",
    "println!(",
    "eprint!(",
    "eprintln!(",
    "dbg!(",
    "io::stdout(",
    "io::stderr(",
    "io::stdin(",
    "indicatif",
    "window_change",
];

fn sources(dir: &Path, found: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

#[test]
fn no_module_of_the_library_touches_the_terminal_or_the_process_streams() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    assert!(files.len() > 20, "the sources were not found: {files:?}");
    let mut offences = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        // A module's own tests, which end it, may say why they skip.
        let lines: Vec<&str> = text.lines().collect();
        let library = lines
            .windows(2)
            .position(|pair| pair[0].trim() == "#[cfg(test)]" && pair[1].starts_with("mod tests"))
            .unwrap_or(lines.len());
        for (number, line) in lines[..library].iter().enumerate() {
            for token in FORBIDDEN.iter().filter(|t| line.contains(*t)) {
                offences.push(format!(
                    "{}:{}: `{token}`",
                    file.strip_prefix(root).unwrap().display(),
                    number + 1
                ));
            }
        }
    }
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    if manifest.contains("indicatif") {
        offences.push("Cargo.toml: `indicatif`".to_owned());
    }
    assert!(offences.is_empty(), "{}", offences.join("\n"));
}
