//! The fuzz targets on stable: every committed seed in `fuzz/corpus/<target>/`
//! and a few thousand inputs derived from them (bit flips, truncations,
//! splices, repeats) go through the same entry points the cargo-fuzz targets
//! call (`fuzz/src/lib.rs`), with the same property checks. A crash that
//! `infra/fuzz.sh` finds is fixed and its input added to the corpus, so this
//! test keeps it fixed. No emulator needed.

use std::path::PathBuf;

use integration_tests::repo_path;
use lead_demo::dataset::Rng;

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 6] = [
    ("phone", leads_fuzz::phone),
    ("normalise", leads_fuzz::normalise),
    ("douyin", leads_fuzz::douyin),
    ("hmac_sources", leads_fuzz::hmac_sources),
    ("wecom", leads_fuzz::wecom),
    ("wecom_decrypt", leads_fuzz::wecom_decrypt),
];

/// Derived inputs per target (each run is deterministic).
const MUTATIONS: usize = 400;

fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = repo_path(&format!("fuzz/corpus/{target}"));
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let data = std::fs::read(&p).unwrap();
            (p, data)
        })
        .collect();
    out.sort();
    out
}

fn mutate(rng: &mut Rng, seeds: &[(PathBuf, Vec<u8>)]) -> Vec<u8> {
    let mut data = rng.pick(seeds).1.clone();
    for _ in 0..1 + rng.below(4) {
        match rng.below(7) {
            0 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] ^= 1 << rng.below(8);
            }
            1 if !data.is_empty() => {
                let cut = rng.below(data.len());
                data.truncate(cut);
            }
            2 => {
                let other = &rng.pick(seeds).1;
                let at = rng.below(data.len() + 1);
                let from = rng.below(other.len() + 1);
                data.splice(at..at, other[from..].iter().copied());
            }
            3 if !data.is_empty() => {
                let i = rng.below(data.len());
                let b = *rng.pick(&[0u8, 0xff, b'"', b'{', b'[', b'<', b'\\', 0x1f, 0xc0]);
                data.insert(i, b);
            }
            4 if data.len() > 1 => {
                let i = 1 + rng.below(data.len() - 1);
                let n = 1 + rng.below(64.min(data.len() - i));
                let chunk: Vec<u8> = data[i..i + n].to_vec();
                for _ in 0..rng.below(50) {
                    data.splice(i..i, chunk.iter().copied());
                }
            }
            5 if !data.is_empty() => {
                // A digit run, to exercise the phone parser inside the others.
                let i = rng.below(data.len());
                let digits = format!("1{}", rng.next_u64() % 10_000_000_000);
                data.splice(i..i, digits.bytes());
            }
            _ if !data.is_empty() => data[0] = rng.next_u64() as u8,
            _ => {}
        }
    }
    data
}

#[test]
fn corpus_and_derived_inputs_pass_every_fuzz_target() {
    for (name, target) in TARGETS {
        let seeds = seeds(name);
        assert!(!seeds.is_empty(), "fuzz/corpus/{name} has seeds");
        for (path, data) in &seeds {
            let result = std::panic::catch_unwind(|| target(data));
            assert!(result.is_ok(), "{name}: {} fails", path.display());
        }
        let mut rng = Rng::new(0x5EED ^ name.len() as u64);
        for i in 0..MUTATIONS {
            let data = mutate(&mut rng, &seeds);
            let result = std::panic::catch_unwind(|| target(&data));
            assert!(
                result.is_ok(),
                "{name}: derived input {i} fails: {:?}",
                String::from_utf8_lossy(&data)
            );
        }
    }
}
