//! `import_gguf` end to end on the committed tiny Llama: weights bit for bit against the oracle's
//! expectation (tools/golden/gen_gguf.py: `gguf.quants.dequantize` plus the inverse of llama.cpp's
//! own Q/K `permute`), config.json, tokenizer files, and the output directory's life cycle.

use std::path::{Path, PathBuf};

use safetensors::SafeTensors;
use ue8_io::gguf::import::{import_gguf, ImportDtype, ImportOptions};
use ue8_io::gguf::GgufError;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/gguf")
        .join(name)
}

fn opts(dtype: ImportDtype) -> ImportOptions {
    ImportOptions {
        dtype,
        force: false,
    }
}

fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn f32s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[test]
fn f32_import_matches_the_oracle_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tiny");
    let report = import_gguf(&fixture("tiny-llama.gguf"), &out, &opts(ImportDtype::F32)).unwrap();
    assert_eq!(report.tensors, 21);
    assert_eq!(report.pre_tokenizer, "smollm");

    let expected_bytes = std::fs::read(fixture("tiny-llama.expected.safetensors")).unwrap();
    let expected = SafeTensors::deserialize(&expected_bytes).unwrap();
    let got_bytes = std::fs::read(out.join("model.safetensors")).unwrap();
    let got = SafeTensors::deserialize(&got_bytes).unwrap();
    let mut want_names: Vec<String> = expected.names().into_iter().map(String::from).collect();
    let mut got_names: Vec<String> = got.names().into_iter().map(String::from).collect();
    want_names.sort();
    got_names.sort();
    assert_eq!(got_names, want_names);
    for name in &want_names {
        let (w, g) = (expected.tensor(name).unwrap(), got.tensor(name).unwrap());
        assert_eq!(g.dtype(), safetensors::Dtype::F32, "{name}");
        assert_eq!(g.shape(), w.shape(), "{name}");
        let same = f32s(g.data())
            .iter()
            .zip(f32s(w.data()))
            .all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same, "{name}: values differ from the oracle");
    }
    // The file says it is a PyTorch-layout checkpoint (transformers checks this).
    let (_, meta) = SafeTensors::read_metadata(&got_bytes).unwrap();
    assert_eq!(
        meta.metadata()
            .as_ref()
            .and_then(|m| m.get("format"))
            .map(String::as_str),
        Some("pt")
    );
}

#[test]
fn bf16_import_is_the_f32_import_rounded_to_nearest_even() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("f32"), dir.path().join("bf16"));
    import_gguf(&fixture("tiny-llama.gguf"), &a, &opts(ImportDtype::F32)).unwrap();
    import_gguf(&fixture("tiny-llama.gguf"), &b, &opts(ImportDtype::Bf16)).unwrap();
    let (fa, fb) = (
        std::fs::read(a.join("model.safetensors")).unwrap(),
        std::fs::read(b.join("model.safetensors")).unwrap(),
    );
    let (sa, sb) = (
        SafeTensors::deserialize(&fa).unwrap(),
        SafeTensors::deserialize(&fb).unwrap(),
    );
    for name in sa.names() {
        let (ta, tb) = (sa.tensor(name).unwrap(), sb.tensor(name).unwrap());
        assert_eq!(tb.dtype(), safetensors::Dtype::BF16);
        let want: Vec<u8> = f32s(ta.data())
            .iter()
            .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
            .collect();
        assert_eq!(tb.data(), &want[..], "{name}");
    }
    assert_eq!(read_json(&b.join("config.json"))["torch_dtype"], "bfloat16");
    assert_eq!(read_json(&a.join("config.json"))["torch_dtype"], "float32");
}

#[test]
fn config_json_has_every_field_a_loader_needs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m");
    import_gguf(&fixture("tiny-llama.gguf"), &out, &opts(ImportDtype::Bf16)).unwrap();
    let c = read_json(&out.join("config.json"));
    assert_eq!(c["architectures"][0], "LlamaForCausalLM");
    assert_eq!(c["model_type"], "llama");
    assert_eq!(c["hidden_size"], 64);
    assert_eq!(c["intermediate_size"], 256);
    assert_eq!(c["num_hidden_layers"], 2);
    assert_eq!(c["num_attention_heads"], 4);
    assert_eq!(c["num_key_value_heads"], 2);
    assert_eq!(c["head_dim"], 16);
    assert_eq!(c["rms_norm_eps"].as_f64(), Some(1e-5));
    assert_eq!(c["rope_theta"].as_f64(), Some(50000.0));
    assert_eq!(c["max_position_embeddings"], 512);
    assert_eq!(c["vocab_size"], 272);
    assert_eq!(c["tie_word_embeddings"], false);
    assert_eq!(c["bos_token_id"], 1);
    assert_eq!(c["eos_token_id"], 2);
    assert_eq!(c["hidden_act"], "silu");

    let t = read_json(&out.join("tokenizer_config.json"));
    assert_eq!(t["add_bos_token"], true);
    assert_eq!(t["bos_token"], "<|im_start|>");
    assert_eq!(t["eos_token"], "<|im_end|>");
    assert!(t["chat_template"]
        .as_str()
        .unwrap()
        .contains("<|im_start|>"));
}

#[test]
fn tied_embeddings_and_no_bos() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m");
    let r = import_gguf(
        &fixture("tiny-llama-tied.gguf"),
        &out,
        &opts(ImportDtype::Bf16),
    )
    .unwrap();
    assert_eq!(r.tensors, 20);
    assert_eq!(
        read_json(&out.join("config.json"))["tie_word_embeddings"],
        true
    );
    assert_eq!(
        read_json(&out.join("tokenizer_config.json"))["add_bos_token"],
        false
    );
    let tok = tokenizers::Tokenizer::from_file(out.join("tokenizer.json")).unwrap();
    let enc = tok.encode("the", true).unwrap();
    assert_ne!(
        enc.get_ids().first(),
        Some(&1),
        "BOS added although add_bos_token is false"
    );
}

/// The tokenizer of the tiny model: byte-level BPE with 13 merges; control tokens split out whole.
#[test]
fn tiny_tokenizer_encodes_as_bpe_should() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m");
    import_gguf(&fixture("tiny-llama.gguf"), &out, &opts(ImportDtype::Bf16)).unwrap();
    let tok = tokenizers::Tokenizer::from_file(out.join("tokenizer.json")).unwrap();
    let vocab = tok.get_vocab(true);
    let id = |t: &str| *vocab.get(t).unwrap_or_else(|| panic!("{t} not in vocab"));
    let enc = tok.encode("<|im_start|> the and 7", true).unwrap();
    // BOS (add_bos_token = true), the control token whole, then "Ġthe", "Ġand", "Ġ", "7".
    assert_eq!(
        enc.get_ids(),
        &[1, 1, id("Ġthe"), id("Ġand"), id("Ġ"), id("7")]
    );
    assert_eq!(
        tok.decode(&enc.get_ids()[2..], false).unwrap(),
        " the and 7"
    );
}

#[test]
fn existing_output_needs_force() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("keep.txt"), "x").unwrap();
    let e = import_gguf(&fixture("tiny-llama.gguf"), &out, &opts(ImportDtype::Bf16)).unwrap_err();
    assert!(matches!(e, GgufError::OutputExists { .. }), "{e}");
    assert!(out.join("keep.txt").exists());
    let forced = ImportOptions {
        dtype: ImportDtype::Bf16,
        force: true,
    };
    import_gguf(&fixture("tiny-llama.gguf"), &out, &forced).unwrap();
    assert!(!out.join("keep.txt").exists());
    assert!(out.join("model.safetensors").exists());
}

#[test]
fn unsupported_type_is_refused_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m");
    let e = import_gguf(
        &fixture("unsupported-q5_0.gguf"),
        &out,
        &opts(ImportDtype::Bf16),
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("unsupported-q5_0.gguf"), "{msg}");
    assert!(!out.exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "temporary directory left behind"
    );
}

#[test]
fn failure_mid_write_leaves_no_output() {
    // A truncated copy of the tiny model: the header parses only if the data is complete, so cut the
    // last tensor's bytes: the reader refuses it before anything is written.
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture("tiny-llama.gguf")).unwrap();
    let src = dir.path().join("cut.gguf");
    std::fs::write(&src, &bytes[..bytes.len() - 100]).unwrap();
    let out = dir.path().join("m");
    let e = import_gguf(&src, &out, &opts(ImportDtype::Bf16)).unwrap_err();
    assert!(matches!(e, GgufError::TensorOutOfFile { .. }), "{e}");
    assert!(!out.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn vocabulary_only_files_are_not_models() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m");
    // vocab-smollm.gguf has no tensors at all: an import would be an empty model.
    let r = import_gguf(
        &fixture("vocab-smollm.gguf"),
        &out,
        &opts(ImportDtype::Bf16),
    );
    assert!(r.is_err(), "imported a model without tensors");
    assert!(!out.exists());
}
