//! The fuzz targets' seeds (`fuzz/corpus/NAME/`) and every input a fuzzer
//! once crashed on (`fuzz/regressions/NAME/`) run through the same
//! functions the fuzzer calls (`vpoller::fuzzing`), without libFuzzer: a
//! bug found once stays fixed, and a target whose seeds no longer run is
//! noticed by `make test`, not at the next fuzzing session.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use vpoller::fuzzing::TARGETS;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files in `dir`, sorted; none when it does not exist.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

/// The names in `dir` of the entries that `keep` picks, sorted.
fn names(dir: &Path, keep: impl Fn(&Path) -> Option<String>) -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .filter_map(|entry| keep(&entry.unwrap().path()))
        .collect();
    found.sort();
    found
}

#[test]
fn every_seed_and_every_regression_runs_without_a_panic() {
    let mut failures = Vec::new();
    let mut ran = 0;
    let mut found = 0;
    for (name, target) in TARGETS {
        let seeds = inputs(&fuzz_dir().join("corpus").join(name));
        assert!(!seeds.is_empty(), "fuzz/corpus/{name}/ has no seeds");
        let regressions = inputs(&fuzz_dir().join("regressions").join(name));
        found += seeds.len() + regressions.len();
        for path in seeds.iter().chain(&regressions) {
            let data = std::fs::read(path).unwrap();
            match catch_unwind(AssertUnwindSafe(|| target(&data))) {
                Ok(()) => ran += 1,
                Err(_) => failures.push(format!("{name}: {} panicked", path.display())),
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(ran, found, "every input ran to its end");
    assert!(ran >= 5 * TARGETS.len(), "a handful of seeds per target");
}

/// Each function of `vpoller::fuzzing::TARGETS` has its cargo-fuzz target
/// file, its `[[bin]]`, its seeds and its place in `make fuzz`, and
/// nothing is there without its function.
#[test]
fn every_target_is_wired_up() {
    let mut expected: Vec<String> = TARGETS.iter().map(|(name, _)| (*name).to_owned()).collect();
    expected.sort();
    let mut unique = expected.clone();
    unique.dedup();
    assert_eq!(unique, expected, "a target name twice in TARGETS");
    let files = names(&fuzz_dir().join("fuzz_targets"), |path| {
        let stem = path.file_stem()?.to_str()?.to_owned();
        (path.extension()? == "rs").then_some(stem)
    });
    assert_eq!(files, expected, "fuzz/fuzz_targets/*.rs");
    let corpora = names(&fuzz_dir().join("corpus"), |path| {
        path.is_dir()
            .then(|| path.file_name()?.to_str().map(str::to_owned))?
    });
    assert_eq!(corpora, expected, "fuzz/corpus/*/");
    if fuzz_dir().join("regressions").is_dir() {
        for name in names(&fuzz_dir().join("regressions"), |path| {
            path.file_name()?.to_str().map(str::to_owned)
        }) {
            assert!(
                expected.contains(&name),
                "fuzz/regressions/{name} has no target"
            );
        }
    }
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    let makefile =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Makefile")).unwrap();
    let mut listed = fuzz_list(&makefile);
    listed.sort();
    assert_eq!(listed, expected, "the Makefile's FUZZ_LIST (NAME:MAX_LEN)");
    for name in &expected {
        let source =
            std::fs::read_to_string(fuzz_dir().join("fuzz_targets").join(format!("{name}.rs")))
                .unwrap();
        assert!(
            source.contains(&format!("vpoller::fuzzing::{name}(")),
            "fuzz/fuzz_targets/{name}.rs calls vpoller::fuzzing::{name}"
        );
        assert!(
            manifest.contains(&format!("path = \"fuzz_targets/{name}.rs\"")),
            "fuzz/Cargo.toml has a [[bin]] for {name}"
        );
    }
}

/// The names in the Makefile's `FUZZ_LIST := NAME:MAX_LEN ...` (continued
/// over lines ending in a backslash); each MAX_LEN must be a number.
fn fuzz_list(makefile: &str) -> Vec<String> {
    let mut lines = makefile
        .lines()
        .skip_while(|line| !line.starts_with("FUZZ_LIST"));
    let mut words = Vec::new();
    let mut line = lines.next().expect("the Makefile sets FUZZ_LIST");
    line = line.split_once(":=").expect("FUZZ_LIST := ...").1;
    loop {
        let continued = line.trim_end().ends_with('\\');
        words.extend(
            line.trim_end()
                .trim_end_matches('\\')
                .split_whitespace()
                .map(str::to_owned),
        );
        match (continued, lines.next()) {
            (true, Some(next)) => line = next,
            _ => break,
        }
    }
    words
        .iter()
        .map(|word| {
            let (name, max_len) = word.split_once(':').expect("NAME:MAX_LEN");
            assert!(
                max_len.parse::<usize>().is_ok_and(|bytes| bytes > 0),
                "{word}"
            );
            name.to_owned()
        })
        .collect()
}
