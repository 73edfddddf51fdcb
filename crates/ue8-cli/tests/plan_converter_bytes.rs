//! `ue8 plan`'s weight bytes against what `ue8 quantize` actually writes, on SmolLM2-135M (fetched data):
//! the sum of tensor byte ranges in each output's safetensors header must equal the plan's figure for that
//! format, exactly. Runs only with UE8_SLOW=1 (it needs ~/.cache/ue8-data and converts three times).

use std::path::{Path, PathBuf};
use std::process::Command;

fn ue8(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ue8"))
        .args(args)
        .output()
        .expect("run ue8")
}

fn ok(args: &[&str]) -> String {
    let out = ue8(args);
    assert!(
        out.status.success(),
        "ue8 {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Sum of every tensor's byte range in a safetensors file (header excluded).
fn tensor_bytes(file: &Path) -> u64 {
    let bytes = std::fs::read(file).expect("read safetensors");
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).expect("header json");
    header
        .as_object()
        .expect("object")
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(_, v)| {
            let o = v["data_offsets"].as_array().expect("offsets");
            o[1].as_u64().expect("end") - o[0].as_u64().expect("start")
        })
        .sum()
}

fn plan_bytes(model: &str, extra: &[&str]) -> Vec<(String, u64)> {
    let mut args = vec!["plan", model, "--chip", "h100-sxm", "--no-cpu", "--json"];
    args.extend_from_slice(extra);
    let doc: serde_json::Value = serde_json::from_str(&ok(&args)).expect("json");
    doc["formats"]
        .as_array()
        .expect("formats")
        .iter()
        .map(|f| {
            (
                f["format"].as_str().expect("name").to_string(),
                f["weight_bytes"].as_u64().expect("bytes"),
            )
        })
        .collect()
}

#[test]
fn plan_weight_bytes_equal_the_converter_output_on_smollm2() {
    if std::env::var("UE8_SLOW").as_deref() != Ok("1") {
        eprintln!("skipped: set UE8_SLOW=1 to convert SmolLM2 and compare byte counts");
        return;
    }
    let home = std::env::var("HOME").expect("HOME");
    let gguf = PathBuf::from(home).join(".cache/ue8-data/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        gguf.exists(),
        "UE8_SLOW=1 but {} is missing",
        gguf.display()
    );
    let dir = std::env::temp_dir().join(format!("ue8-plan-bytes-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp");
    let src = dir.join("bf16");
    ok(&[
        "import-gguf",
        gguf.to_str().expect("path"),
        src.to_str().expect("path"),
        "-q",
    ]);
    let src_s = src.to_str().expect("path");
    let cases: [(&str, &[&str]); 3] = [
        ("fp8-ue8m0", &[]),
        ("mxfp4", &[]),
        ("fp8-ue8m0", &["--quantize-lm-head"]),
    ];
    for (format, flags) in cases {
        let out = dir.join(format!("{format}{}", flags.len()));
        let mut args = vec![
            "quantize",
            src_s,
            out.to_str().expect("path"),
            "--to",
            format,
            "-q",
        ];
        args.extend_from_slice(flags);
        ok(&args);
        let written = tensor_bytes(&out.join("model.safetensors"));
        // The imported directory's own config.json and the built-in config must agree.
        for model in [src_s, "smollm2-135m"] {
            let planned = plan_bytes(model, flags);
            let (_, bytes) = planned
                .iter()
                .find(|(f, _)| f == format)
                .unwrap_or_else(|| panic!("no {format} in plan"));
            assert_eq!(*bytes, written, "{model} {format} {flags:?}");
        }
    }
    let bf16 = tensor_bytes(&src.join("model.safetensors"));
    assert_eq!(
        plan_bytes("smollm2-135m", &[])[0],
        ("bf16".to_string(), bf16)
    );
    std::fs::remove_dir_all(&dir).expect("cleanup");
}
