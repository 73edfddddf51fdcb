//! End-to-end tests of the converter commands through the `ue8` binary: every format round trip
//! (quantize -> verify -> inspect -> dequantize -> diff), --quantize-lm-head on a tied model, --json
//! purity, sharding, tampering caught by verify, bad inputs, and a run killed mid-way.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use ue8_io::{Checkpoint, Dtype, SafetensorsWriter, TensorSpec};

fn ue8(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ue8"))
        .args(args)
        .output()
        .expect("run ue8")
}

fn ok(args: &[&str]) -> Output {
    let o = ue8(args);
    assert!(
        o.status.success(),
        "ue8 {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn fail(args: &[&str]) -> String {
    let o = ue8(args);
    assert_eq!(
        o.status.code(),
        Some(1),
        "ue8 {args:?} should fail with exit 1"
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    // The whole of stdout must be exactly one JSON document (issue 8 item 1).
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}): {}",
            String::from_utf8_lossy(&o.stdout)
        )
    })
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Deterministic values, roughly Gaussian with std ~0.3 and a few larger ones.
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let u = |v: u64| ((v >> 40) as f32) / (1u64 << 24) as f32 - 0.5;
            let g = u(x) + u(x.rotate_left(21)) + u(x.rotate_left(42));
            if i % 97 == 0 {
                g * 8.0
            } else {
                g
            }
        })
        .collect()
}

/// A tiny Llama-like model with tied embeddings and odd shapes.
fn tied_model(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let tensors: Vec<(&str, Vec<usize>)> = vec![
        ("model.embed_tokens.weight", vec![64, 96]),
        ("model.layers.0.input_layernorm.weight", vec![96]),
        ("model.layers.0.self_attn.q_proj.weight", vec![33, 96]),
        ("model.layers.0.mlp.down_proj.weight", vec![96, 65]),
        ("model.layers.0.mlp.up_proj.weight", vec![129, 31]),
        ("model.norm.weight", vec![96]),
    ];
    let specs = tensors
        .iter()
        .map(|(n, sh)| TensorSpec::new(*n, Dtype::BF16, sh.clone()))
        .collect();
    let mut w =
        SafetensorsWriter::create(&dir.join("model.safetensors"), specs, &BTreeMap::new()).unwrap();
    for (i, (n, sh)) in tensors.iter().enumerate() {
        let v = values(sh.iter().product(), i as u64 + 1);
        let b: Vec<u8> = v
            .iter()
            .flat_map(|x| ue8_formats::f32_to_bf16_rne(*x).to_le_bytes())
            .collect();
        w.write_tensor(n, &b).unwrap();
    }
    ue8_io::writer::finish_file(w).unwrap();
    std::fs::write(
        dir.join("config.json"),
        br#"{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "tie_word_embeddings": true, "torch_dtype": "bfloat16"}"#,
    )
    .unwrap();
    std::fs::write(dir.join("tokenizer.json"), b"{\"version\": \"1.0\"}").unwrap();
    dir.to_path_buf()
}

/// SNR floors per element type on this data: E4M3 keeps 3 mantissa bits (RNE error RMS ~ 2^-4/sqrt(3)
/// of a value, ~29 dB), E5M2 and E3M2 2 bits (~23 dB), E2M3 3 bits but a 2-binade range that pushes
/// small values into subnormals, E2M1 1 bit (~17 dB); block scaling (power of two) costs up to ~6 dB
/// and the few 8x outliers of `values` lower each block further. Floors sit ~4 dB under measured.
fn snr_floor_db(format: &str) -> f64 {
    match format {
        "fp8-ue8m0" | "fp8" | "mxfp8" => 20.0,
        "mxfp8-e5m2" | "mxfp6-e3m2" => 14.0,
        "mxfp6-e2m3" => 14.0,
        "mxfp4" => 5.0,
        _ => unreachable!(),
    }
}

#[test]
fn every_format_round_trips_through_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tied_model(&tmp.path().join("in"));
    for f in [
        "fp8-ue8m0",
        "fp8",
        "mxfp8",
        "mxfp8-e5m2",
        "mxfp6-e3m2",
        "mxfp6-e2m3",
        "mxfp4",
    ] {
        let q = tmp.path().join(format!("q-{f}"));
        let m = json(&ok(&["quantize", s(&input), s(&q), "--to", f, "--json"]));
        assert_eq!(m["target"], f);
        assert_eq!(
            m["tensors"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|t| t["action"] == "quantized")
                .count(),
            3,
            "{f}"
        );
        assert!(
            q.join("tokenizer.json").is_file(),
            "non-weight files copied"
        );
        let v = json(&ok(&["verify", s(&q), "--json"]));
        assert_eq!(v["ok"], true, "{f}: {v}");
        let i = json(&ok(&["inspect", s(&q), "--json"]));
        assert_eq!(i["layout"], f, "{f}");
        assert_eq!(i["anomalies"].as_array().unwrap().len(), 0, "{f}: {i}");
        assert_eq!(i["lm_head"], "tied to the embeddings");
        let d = tmp.path().join(format!("d-{f}"));
        ok(&["dequantize", s(&q), s(&d), "--dtype", "f32", "--quiet"]);
        let diff = json(&ok(&["diff", s(&input), s(&d), "--json"]));
        assert!(
            diff["only_in_a"].as_array().unwrap().is_empty()
                && diff["only_in_b"].as_array().unwrap().is_empty()
        );
        for t in diff["tensors"].as_array().unwrap() {
            let name = t["name"].as_str().unwrap();
            if name.contains("proj") {
                let snr = t["snr_db"].as_f64().unwrap();
                assert!(snr > snr_floor_db(f), "{f} {name}: SNR {snr:.2} dB");
            } else {
                assert!(t["snr_db"].is_null(), "{f} {name} must be unchanged");
            }
        }
    }
}

#[test]
fn quantize_lm_head_unties_a_tied_model() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tied_model(&tmp.path().join("in"));
    for f in ["fp8-ue8m0", "mxfp4"] {
        let q = tmp.path().join(format!("q-{f}"));
        ok(&[
            "quantize",
            s(&input),
            s(&q),
            "--to",
            f,
            "--quantize-lm-head",
            "--quiet",
        ]);
        let ck = Checkpoint::open(&q).unwrap();
        let inp = Checkpoint::open(&input).unwrap();
        let head = if f == "mxfp4" {
            "lm_head.weight_blocks"
        } else {
            "lm_head.weight"
        };
        assert!(ck.contains(head), "{f}: {head}");
        assert_eq!(ck.config().unwrap()["tie_word_embeddings"], false);
        assert_eq!(
            ck.tensor("model.embed_tokens.weight").unwrap().bytes,
            inp.tensor("model.embed_tokens.weight").unwrap().bytes,
            "the embedding stays as it was"
        );
        let i = json(&ok(&["inspect", s(&q), "--json"]));
        assert!(
            i["lm_head"].as_str().unwrap().starts_with("quantized"),
            "{i}"
        );
        let d = tmp.path().join(format!("d-{f}"));
        ok(&["dequantize", s(&q), s(&d), "--quiet"]);
        let dk = Checkpoint::open(&d).unwrap();
        assert_eq!(dk.tensor("lm_head.weight").unwrap().shape, &[64, 96]);
        assert_eq!(dk.config().unwrap()["tie_word_embeddings"], false);
    }
}

#[test]
fn sharded_output_verifies_and_reads_back() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tied_model(&tmp.path().join("in"));
    let q = tmp.path().join("q");
    ok(&[
        "quantize",
        s(&input),
        s(&q),
        "--to",
        "fp8-ue8m0",
        "--max-shard-size",
        "8KB",
        "--quiet",
    ]);
    assert!(q.join("model.safetensors.index.json").is_file());
    assert!(
        q.join("model-00001-of-00004.safetensors").is_file(),
        "{:?}",
        std::fs::read_dir(&q)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect::<Vec<_>>()
    );
    ok(&["verify", s(&q)]);
    let d = tmp.path().join("d");
    ok(&["dequantize", s(&q), s(&d), "--quiet"]);
    assert_eq!(Checkpoint::open(&d).unwrap().len(), 6);
}

#[test]
fn verify_catches_changed_extra_and_missing_files() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tied_model(&tmp.path().join("in"));
    let q = tmp.path().join("q");
    ok(&["quantize", s(&input), s(&q), "--to", "mxfp8", "--quiet"]);
    let st = q.join("model.safetensors");
    let mut bytes = std::fs::read(&st).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&st, &bytes).unwrap();
    std::fs::write(q.join("extra.txt"), b"x").unwrap();
    std::fs::remove_file(q.join("tokenizer.json")).unwrap();
    let o = ue8(&["verify", s(&q), "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let v = json(&o);
    let problems = v["problems"].to_string();
    assert!(problems.contains("model.safetensors: sha256"), "{problems}");
    assert!(
        problems.contains("extra.txt: present but not in the manifest"),
        "{problems}"
    );
    assert!(
        problems.contains("tokenizer.json: listed in the manifest but unreadable"),
        "{problems}"
    );
}

#[test]
fn bad_inputs_fail_with_the_file_and_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tied_model(&tmp.path().join("in"));
    // OUTPUT exists.
    let out = tmp.path().join("exists");
    std::fs::create_dir(&out).unwrap();
    let e = fail(&["quantize", s(&input), s(&out), "--to", "fp8"]);
    assert!(e.contains("already exists") && e.contains("--force"), "{e}");
    // Truncated file.
    let trunc = tmp.path().join("trunc.safetensors");
    let b = std::fs::read(input.join("model.safetensors")).unwrap();
    std::fs::write(&trunc, &b[..b.len() - 10]).unwrap();
    let e = fail(&["inspect", s(&trunc)]);
    assert!(
        e.contains("trunc.safetensors") && e.contains("truncated"),
        "{e}"
    );
    // Header length past the end.
    std::fs::write(&trunc, [255u8, 0, 0, 0, 0, 0, 0, 0, b'{', b'}']).unwrap();
    let e = fail(&[
        "quantize",
        s(&trunc),
        s(&tmp.path().join("o1")),
        "--to",
        "fp8",
    ]);
    assert!(e.contains("runs past the end"), "{e}");
    // Missing shard named in the index.
    let sh = tmp.path().join("sharded");
    ok(&[
        "quantize",
        s(&input),
        s(&sh),
        "--to",
        "fp8",
        "--max-shard-size",
        "8KB",
        "--quiet",
    ]);
    std::fs::remove_file(sh.join("model-00002-of-00004.safetensors")).unwrap();
    let e = fail(&["dequantize", s(&sh), s(&tmp.path().join("o2"))]);
    assert!(
        e.contains("model-00002-of-00004.safetensors") && e.contains("missing"),
        "{e}"
    );
    assert!(!tmp.path().join("o2").exists());
    // Unknown format.
    let e = fail(&[
        "quantize",
        s(&input),
        s(&tmp.path().join("o3")),
        "--to",
        "int3",
    ]);
    assert!(e.contains("unknown format 'int3'"), "{e}");
}

#[test]
fn killed_mid_run_leaves_no_output_and_an_untouched_input() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("big");
    std::fs::create_dir_all(&dir).unwrap();
    // 16 tensors of 1024x1024 BF16 (32 MiB): long enough to be caught mid-run.
    let names: Vec<String> = (0..16)
        .map(|i| format!("model.layers.{i}.mlp.up_proj.weight"))
        .collect();
    let specs = names
        .iter()
        .map(|n| TensorSpec::new(n.clone(), Dtype::BF16, vec![1024, 1024]))
        .collect();
    let mut w =
        SafetensorsWriter::create(&dir.join("model.safetensors"), specs, &BTreeMap::new()).unwrap();
    let row: Vec<u8> = values(1024 * 1024, 3)
        .iter()
        .flat_map(|x| ue8_formats::f32_to_bf16_rne(*x).to_le_bytes())
        .collect();
    for n in &names {
        w.write_tensor(n, &row).unwrap();
    }
    ue8_io::writer::finish_file(w).unwrap();
    let before = ue8_io::writer::hash_file(&dir.join("model.safetensors")).unwrap();
    let out = tmp.path().join("out");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ue8"))
        .args([
            "quantize",
            s(&dir),
            s(&out),
            "--to",
            "mxfp4",
            "--threads",
            "1",
            "--quiet",
        ])
        .spawn()
        .unwrap();
    // Wait until the run has started writing (its hidden partial directory exists), then kill it.
    let started = std::time::Instant::now();
    let partial_exists = || {
        std::fs::read_dir(tmp.path()).unwrap().flatten().any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".out.ue8-partial-")
        })
    };
    while !partial_exists() && started.elapsed() < std::time::Duration::from_secs(20) {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the run finished before it could be killed; make the input larger"
    );
    assert!(
        !out.exists(),
        "a killed run must leave nothing under OUTPUT's name"
    );
    assert_eq!(
        ue8_io::writer::hash_file(&dir.join("model.safetensors")).unwrap(),
        before,
        "input untouched"
    );
    // The next run cleans up nothing of the user's and succeeds.
    ok(&["quantize", s(&dir), s(&out), "--to", "fp8-ue8m0", "--quiet"]);
    ok(&["verify", s(&out)]);
}

/// SLOW (UE8_SLOW=1): the shipped SmolLM2 GGUF through `inspect`.
#[test]
fn inspect_reads_gguf() {
    if std::env::var("UE8_SLOW").as_deref() != Ok("1") {
        eprintln!("skipped: set UE8_SLOW=1 to inspect ~/.cache/ue8-data/smollm2 GGUF");
        return;
    }
    let home = std::env::var("HOME").unwrap();
    let p = PathBuf::from(home).join(".cache/ue8-data/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    let i = json(&ok(&["inspect", s(&p), "--json"]));
    assert_eq!(i["format"], "gguf");
    assert_eq!(i["architecture"], "llama");
    assert_eq!(i["tensors"], 272);
}
