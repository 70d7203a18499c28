//! A short run of each fuzz target inside the test suite: the seeds and any saved corpus, then
//! random mutations of them for a bounded time. The long, coverage-guided runs are
//! `make fuzz`; this catches a panic the moment a change brings one back.
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[path = "../../fuzz/bodies/connectwise_callback.rs"]
mod connectwise_callback;
#[path = "../../fuzz/bodies/duo_response.rs"]
mod duo_response;
#[path = "../../fuzz/bodies/psa_webhooks.rs"]
mod psa_webhooks;
#[path = "../../fuzz/bodies/verify_link.rs"]
mod verify_link;

/// Seconds each target runs; `FUZZ_SHORT_SECONDS` changes it.
fn budget() -> Duration {
    let seconds = std::env::var("FUZZ_SHORT_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(3.0);
    Duration::from_secs_f64(seconds)
}

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The committed seeds and, where `make fuzz` has run, the corpus it grew.
fn inputs(target: &str) -> Vec<Vec<u8>> {
    inputs_from(target, &["seeds", "corpus"])
}

/// The files of `target` in the given folders of `fuzz/`.
fn inputs_from(target: &str, folders: &[&str]) -> Vec<Vec<u8>> {
    let mut found = Vec::new();
    for folder in folders {
        let Ok(entries) = std::fs::read_dir(fuzz_dir().join(folder).join(target)) else {
            continue;
        };
        for entry in entries.flatten() {
            if let Ok(bytes) = std::fs::read(entry.path()) {
                found.push(bytes);
            }
        }
    }
    found
}

/// Bytes that often sit on parsing edges.
const EDGES: &[u8] = b"\0\x7f\x80\xff\"\\{}[]:,.-+eE0123456789 \n\t%&=?/@#";

/// One random change: a flipped bit, an edge byte, an insertion, a deletion, a repeat, a cut
/// or a splice with another input.
fn mutate(rng: &mut StdRng, input: &mut Vec<u8>, others: &[Vec<u8>]) {
    let len = input.len();
    match rng.gen_range(0..7) {
        0 if len > 0 => {
            let at = rng.gen_range(0..len);
            input[at] ^= 1 << rng.gen_range(0..8);
        }
        1 if len > 0 => {
            let at = rng.gen_range(0..len);
            input[at] = EDGES[rng.gen_range(0..EDGES.len())];
        }
        2 => {
            let at = rng.gen_range(0..=len);
            let count = rng.gen_range(1..=8);
            for _ in 0..count {
                input.insert(at, rng.gen());
            }
        }
        3 if len > 0 => {
            let from = rng.gen_range(0..len);
            let to = rng.gen_range(from..=len.min(from + 32));
            input.drain(from..to);
        }
        4 if len > 0 => {
            let from = rng.gen_range(0..len);
            let to = rng.gen_range(from..=len.min(from + 64));
            let piece = input[from..to].to_vec();
            let at = rng.gen_range(0..=input.len());
            input.splice(at..at, piece);
        }
        5 if len > 0 => input.truncate(rng.gen_range(0..len)),
        _ => {
            if let Some(other) = others.get(rng.gen_range(0..others.len().max(1))) {
                let cut = rng.gen_range(0..=input.len());
                let from = rng.gen_range(0..=other.len());
                input.truncate(cut);
                input.extend_from_slice(&other[from..]);
            }
        }
    }
}

/// Runs `body` on every input and on mutations of them until the budget is spent; a panic
/// fails the test and leaves the input beside the target's seeds for `cargo fuzz run`.
fn run(target: &str, body: fn(&[u8])) -> u64 {
    run_on(target, inputs(target), body)
}

/// [`run`] starting from `seeds`.
fn run_on(target: &str, seeds: Vec<Vec<u8>>, body: fn(&[u8])) -> u64 {
    assert!(!seeds.is_empty(), "no seeds for {target}");
    let mut rng = StdRng::seed_from_u64(0x6465_736b);
    let deadline = Instant::now() + budget();
    let mut executions = 0u64;
    let mut current = seeds[0].clone();
    let check = |input: &[u8]| {
        if catch_unwind(AssertUnwindSafe(|| body(input))).is_err() {
            let dir = std::env::temp_dir().join(format!("deskproof-fuzz-{target}"));
            let _ = std::fs::create_dir_all(&dir);
            let file = dir.join(format!("crash-{}", input.len()));
            let _ = std::fs::write(&file, input);
            panic!("{target} panicked on an input saved as {}", file.display());
        }
    };
    for seed in &seeds {
        check(seed);
        executions += 1;
    }
    while Instant::now() < deadline {
        // Mostly stack changes on the last input; now and then start again from a seed.
        if rng.gen_ratio(1, 16) || current.len() > 1 << 16 {
            current = seeds[rng.gen_range(0..seeds.len())].clone();
        }
        for _ in 0..rng.gen_range(1..=4) {
            mutate(&mut rng, &mut current, &seeds);
        }
        check(&current);
        executions += 1;
    }
    println!("{target}: {executions} executions without a panic");
    executions
}

#[test]
fn connectwise_callback_short_run() {
    assert!(run("connectwise_callback", connectwise_callback::run) > 0);
}

#[test]
fn duo_response_short_run() {
    assert!(run("duo_response", duo_response::run) > 0);
}

#[test]
fn psa_webhooks_short_run() {
    assert!(run("psa_webhooks", psa_webhooks::run) > 0);
}

#[test]
fn verify_link_short_run() {
    assert!(run("verify_link", verify_link::run) > 0);
}

/// The committed link seed is signed with the key the body verifies with, so the fuzzer starts
/// from a token that gets past the signature check.
#[test]
fn the_verify_link_seed_is_signed_with_the_fuzz_key() {
    let token = std::fs::read_to_string(fuzz_dir().join("seeds/verify_link/token")).expect("seed");
    let claims = deskproof::verify::link::verify(&verify_link::KEY, token.trim(), 0);
    assert!(claims.is_ok(), "{claims:?}");
}

/// The body signs payloads exactly as deskproof signs links, so what it feeds the reader gets
/// past the signature check.
#[test]
fn the_fuzz_body_signs_payloads_as_deskproof_signs_links() {
    use deskproof::verify::link::{verify, LinkClaims};
    assert_eq!(
        verify(
            &verify_link::KEY,
            &verify_link::signed_payload("5.6.4102444800.9"),
            0
        ),
        Ok(LinkClaims {
            case_id: 5,
            organization_id: 6,
            expires_at: 4_102_444_800
        })
    );
}

/// The short run really catches a panic: a body that panics on a byte no seed holds is found.
#[test]
fn a_panicking_body_is_caught() {
    fn fragile(data: &[u8]) {
        if data.contains(&0xff) {
            panic!("a byte no seed has");
        }
    }
    // The committed seeds only: a corpus left by `make fuzz` may hold any byte.
    let seeds = inputs_from("duo_response", &["seeds"]);
    assert!(!seeds.iter().any(|seed| seed.contains(&0xff)));
    let caught = catch_unwind(|| run_on("duo_response", seeds, fragile));
    assert!(caught.is_err(), "the mutation run never produced the byte");
}
