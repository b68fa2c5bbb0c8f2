//! The fuzz targets on stable: every committed seed in `fuzz/corpus/<target>/`
//! and a few thousand inputs derived from them (bit flips, truncations,
//! splices, repeats) go through the same entry points the cargo-fuzz targets
//! call (`fuzz/src/lib.rs`), with the same property checks. A crash that
//! `infra/fuzz.sh` finds is fixed and its input added to the corpus, so this
//! test keeps it fixed. No emulator needed.
//!
//! "Does not panic" holds for a parser that rejects everything, so the
//! known-good deliveries in `fuzz/valid/<target>/` (one or more per source,
//! signed by the entry points with the fuzz secrets) must also come out as the
//! leads written by hand in `fuzz/valid/expected.json`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use integration_tests::repo_path;
use lead_demo::dataset::Rng;
use leads_domain::directory::Platform;
use leads_domain::intake::{IntakeError, IntakeMessage, Outcome};
use leads_domain::lead::CanonicalLead;

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

type Answer = fn(&[u8]) -> Option<Result<Outcome, IntakeError>>;

const INTAKE_TARGETS: [(&str, Answer); 3] = [
    ("douyin", leads_fuzz::douyin_outcome),
    ("hmac_sources", leads_fuzz::hmac_sources_outcome),
    ("wecom", leads_fuzz::wecom_outcome),
];

/// `lead <platform> <account> <E.164 or -> <natural|paid>`, the shape of
/// `fuzz/valid/expected.json`.
fn describe_lead(l: &CanonicalLead) -> String {
    format!(
        "lead {} {} {} {}",
        l.platform.as_str(),
        l.account_id,
        l.phone.as_ref().map_or("-", |p| p.e164()),
        leads_domain::wire_name(&l.traffic)
    )
}

fn describe(answer: Result<Outcome, IntakeError>) -> Vec<String> {
    match answer {
        Ok(Outcome::Accepted { messages, .. }) => messages
            .iter()
            .map(|m| match m {
                IntakeMessage::Lead(l) => describe_lead(l),
                IntakeMessage::ContentStats(s) => format!("stats {}", s.platform_account),
                IntakeMessage::ContactDeleted(d) => format!("contact deleted {}", d.corp_id),
                IntakeMessage::CrmStatus(c) => format!("crm status {} {:?}", c.lead_id, c.event),
                IntakeMessage::CrmDispatch(d) => {
                    format!("crm dispatch {} {}", d.lead_id, d.dealer_id)
                }
            })
            .collect(),
        Ok(Outcome::Handshake(_)) => vec!["handshake".into()],
        Ok(Outcome::Ignored { .. }) => vec!["ignored".into()],
        Err(e) => vec![format!("rejected {}: {e}", e.status())],
    }
}

#[test]
fn known_good_deliveries_of_every_source_are_accepted_as_the_expected_leads() {
    let expected: BTreeMap<String, Vec<String>> = serde_json::from_str(
        &std::fs::read_to_string(repo_path("fuzz/valid/expected.json")).unwrap(),
    )
    .unwrap();
    let mut got: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, answer) in INTAKE_TARGETS {
        for (path, data) in seeds(&format!("../valid/{name}")) {
            let file = path.file_name().unwrap().to_string_lossy();
            let out = answer(&data).expect("a non-empty input");
            got.insert(format!("{name}/{file}"), describe(out));
        }
    }
    for (path, data) in seeds("../valid/normalise") {
        let file = path.file_name().unwrap().to_string_lossy();
        let out = match leads_fuzz::normalise_outcome(&data).expect("a non-empty input") {
            Ok(lead) => describe_lead(&lead),
            Err(e) => format!("rejected {}: {e}", e.status()),
        };
        got.insert(format!("normalise/{file}"), vec![out]);
    }
    assert_eq!(got, expected, "known-good deliveries (got, expected)");
    // Every platform has a delivery through the intake, and the stats feed too.
    let seen: BTreeSet<&str> = got
        .iter()
        .filter(|(k, _)| !k.starts_with("normalise/"))
        .flat_map(|(_, v)| v.iter())
        .filter_map(|d| d.split(' ').nth(1).filter(|_| d.starts_with("lead ")))
        .collect();
    let all: BTreeSet<&str> = Platform::ALL.iter().map(|p| p.as_str()).collect();
    assert_eq!(seen, all, "a known-good delivery per platform");
    assert!(got.values().flatten().any(|d| d.starts_with("stats ")));
}
