//! `ue8 import-gguf` as a user runs it: exit codes, messages, files, --force, --dtype.

use std::path::PathBuf;
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../ue8-io/tests/fixtures/gguf")
        .join(name)
}

fn ue8() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ue8"))
}

#[test]
fn imports_the_tiny_model() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tiny");
    let o = ue8()
        .arg("import-gguf")
        .arg(fixture("tiny-llama.gguf"))
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("21 tensors"), "{stdout}");
    for f in [
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["torch_dtype"], "bfloat16");

    // A second run refuses to overwrite, exit code 1, and says how to proceed.
    let o = ue8()
        .arg("import-gguf")
        .arg(fixture("tiny-llama.gguf"))
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("--force"), "{stderr}");

    let o = ue8()
        .args(["import-gguf", "--force", "--dtype", "f32", "-q"])
        .arg(fixture("tiny-llama.gguf"))
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.stdout.is_empty(), "--quiet printed something");
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["torch_dtype"], "float32");
}

#[test]
fn errors_name_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let o = ue8()
        .arg("import-gguf")
        .arg(fixture("unsupported-q5_0.gguf"))
        .arg(dir.path().join("m"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("unsupported-q5_0.gguf"), "{stderr}");

    let not_gguf = dir.path().join("x.gguf");
    std::fs::write(&not_gguf, b"not a gguf file at all").unwrap();
    let o = ue8()
        .arg("import-gguf")
        .arg(&not_gguf)
        .arg(dir.path().join("m"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a GGUF file"));
    assert!(!dir.path().join("m").exists());
}

#[test]
fn bad_command_line_exits_2() {
    let o = ue8()
        .args(["import-gguf", "--dtype", "f8"])
        .arg(fixture("tiny-llama.gguf"))
        .arg("/tmp/never")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}
