//! Every fixture config: valid ones parse, hostile ones fail with the expected message.

use std::path::Path;

use bulwark_core::Config;

fn fixtures(kind: &str) -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures").join(kind);
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
}

#[test]
fn valid_fixtures_parse() {
    for path in fixtures("valid") {
        Config::load_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

#[test]
fn hostile_fixtures_are_refused_with_file_line_and_key() {
    for path in fixtures("hostile") {
        let text = std::fs::read_to_string(&path).unwrap();
        let expect =
            text.lines().next().and_then(|l| l.strip_prefix("# expect: ")).expect("first line is `# expect: ...`");
        let err = Config::load_file(&path).expect_err(&format!("{} must be refused", path.display())).to_string();
        assert!(err.starts_with(&path.display().to_string()), "{err}");
        assert!(err.contains(expect), "{}: {err:?} lacks {expect:?}", path.display());
    }
}
