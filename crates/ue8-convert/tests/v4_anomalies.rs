//! `inspect` and the converters on malformed DeepSeek-V4 checkpoints: a missing `.scale`, mismatched
//! grids, 0xFF scales, a contradicting or missing `expert_dtype`. Inspect lists every problem; the
//! converters refuse with an error naming the file and the tensor, and write nothing.

use std::collections::BTreeMap;
use std::path::Path;
use ue8_convert::v4::{dequantize_v4, inspect_v4, requantize_v4, V4RequantizeOptions};
use ue8_convert::{NoProgress, OutDtype, RunOptions};
use ue8_io::{Checkpoint, Dtype, SafetensorsWriter, TensorSpec};

type Tensor = (&'static str, Dtype, Vec<usize>, Vec<u8>);

fn write(dir: &Path, tensors: Vec<Tensor>, config: serde_json::Value) {
    std::fs::create_dir_all(dir).expect("dir");
    std::fs::write(dir.join("config.json"), config.to_string()).expect("config");
    let specs = tensors
        .iter()
        .map(|(n, d, s, _)| TensorSpec::new(*n, *d, s.clone()))
        .collect();
    let mut w = SafetensorsWriter::create(&dir.join("model.safetensors"), specs, &BTreeMap::new())
        .expect("writer");
    for (n, _, _, b) in &tensors {
        w.write_tensor(n, b).expect("tensor");
    }
    ue8_io::writer::finish_file(w).expect("finish");
}

/// FP8 weight [out, in] with E8M0 scales of the right grid.
fn fp8(name: &'static str, scale: &'static str, out: usize, inp: usize) -> Vec<Tensor> {
    let grid = vec![out.div_ceil(128), inp.div_ceil(128)];
    let n = grid[0] * grid[1];
    vec![
        (name, Dtype::F8E4M3, vec![out, inp], vec![0x38; out * inp]),
        (scale, Dtype::F8E8M0, grid, vec![120; n]),
    ]
}

/// FP4 expert [out, in] (I8 [out, in/2]) with scales [out, in/32].
fn fp4(name: &'static str, scale: &'static str, out: usize, inp: usize) -> Vec<Tensor> {
    vec![
        (
            name,
            Dtype::I8,
            vec![out, inp / 2],
            vec![0x21; out * inp / 2],
        ),
        (
            scale,
            Dtype::F8E8M0,
            vec![out, inp / 32],
            vec![127; out * inp / 32],
        ),
    ]
}

fn good() -> Vec<Tensor> {
    let mut t = vec![(
        "embed.weight",
        Dtype::BF16,
        vec![4, 64],
        vec![0u8; 4 * 64 * 2],
    )];
    t.extend(fp8(
        "layers.0.attn.wq_a.weight",
        "layers.0.attn.wq_a.scale",
        130,
        64,
    ));
    t.extend(fp4(
        "layers.0.ffn.experts.0.w1.weight",
        "layers.0.ffn.experts.0.w1.scale",
        40,
        64,
    ));
    t
}

fn config(expert_dtype: Option<&str>) -> serde_json::Value {
    let mut c = serde_json::json!({"model_type": "deepseek_v4", "hidden_size": 64});
    if let Some(e) = expert_dtype {
        c["expert_dtype"] = e.into();
    }
    c
}

fn opts() -> RunOptions {
    RunOptions {
        max_shard_size: u64::MAX,
        force: false,
        command_line: Vec::new(),
    }
}

/// Inspect flags `needle`; dequantize and requantize refuse naming `tensor`, and write nothing.
fn check(tensors: Vec<Tensor>, cfg: serde_json::Value, tensor: &str, needle: &str) {
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    write(&input, tensors, cfg);
    let ck = Checkpoint::open(&input).expect("opens");
    let r = inspect_v4(&ck);
    assert!(
        r.anomalies
            .iter()
            .any(|a| a.contains(tensor) && a.contains(needle)),
        "{needle}: {:?}",
        r.anomalies
    );
    let out = tmp.path().join("out");
    let e1 = dequantize_v4(&ck, OutDtype::Bf16, &out, &opts(), &NoProgress)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    let e2 = requantize_v4(
        &ck,
        V4RequantizeOptions::default(),
        &out,
        &opts(),
        &NoProgress,
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    for e in [e1, e2] {
        assert!(e.contains(tensor) && e.contains(needle), "{e}");
        assert!(
            e.contains("model.safetensors") || e.contains("config.json"),
            "{e}"
        );
    }
    assert!(!out.exists());
}

#[test]
fn well_formed_has_no_anomaly() {
    let tmp = tempfile::tempdir().expect("tmp");
    write(tmp.path(), good(), config(Some("fp4")));
    let r = inspect_v4(&Checkpoint::open(tmp.path()).expect("opens"));
    assert!(r.anomalies.is_empty(), "{:?}", r.anomalies);
    assert_eq!((r.fp4_experts, r.fp4_reencode_exact), (1, 1));
}

#[test]
fn missing_scale() {
    let t: Vec<Tensor> = good()
        .into_iter()
        .filter(|t| t.0 != "layers.0.attn.wq_a.scale")
        .collect();
    check(
        t,
        config(Some("fp4")),
        "layers.0.attn.wq_a.weight",
        "missing 'layers.0.attn.wq_a.scale'",
    );
    let t: Vec<Tensor> = good()
        .into_iter()
        .filter(|t| t.0 != "layers.0.ffn.experts.0.w1.scale")
        .collect();
    check(
        t,
        config(Some("fp4")),
        "layers.0.ffn.experts.0.w1.weight",
        "FP4 expert weight without its scale",
    );
}

#[test]
fn mismatched_grids() {
    let mut t = good();
    t[2].2 = vec![1, 1]; // wq_a [130, 64] needs a [2, 1] grid
    t[2].3 = vec![120];
    check(
        t,
        config(Some("fp4")),
        "layers.0.attn.wq_a.scale",
        "mismatched grid",
    );
    let mut t = good();
    t[4].2 = vec![40, 1]; // expert [40, 64] needs [40, 2]
    t[4].3 = vec![127; 40];
    check(
        t,
        config(Some("fp4")),
        "layers.0.ffn.experts.0.w1.scale",
        "mismatched grid",
    );
}

#[test]
fn nan_scales() {
    let mut t = good();
    t[2].3[1] = 0xFF;
    check(t, config(Some("fp4")), "layers.0.attn.wq_a.scale", "0xFF");
    let mut t = good();
    t[4].3[7] = 0xFF;
    check(
        t,
        config(Some("fp4")),
        "layers.0.ffn.experts.0.w1.scale",
        "0xFF",
    );
}

#[test]
fn wrong_scale_dtype_and_orphan_scale() {
    let mut t = good();
    t[2].1 = Dtype::BF16;
    t[2].3 = vec![0; 4];
    check(
        t,
        config(Some("fp4")),
        "layers.0.attn.wq_a.scale",
        "scale dtype BF16",
    );
    let mut t = good();
    t.push((
        "layers.0.attn.wkv.scale",
        Dtype::F8E8M0,
        vec![1, 1],
        vec![120],
    ));
    check(
        t,
        config(Some("fp4")),
        "layers.0.attn.wkv.scale",
        "scale without a weight",
    );
}

#[test]
fn expert_dtype_contradicting_or_missing() {
    check(
        good(),
        config(Some("fp8")),
        "expert_dtype",
        "config.json says \"fp8\"",
    );
    let tmp = tempfile::tempdir().expect("tmp");
    write(tmp.path(), good(), config(None));
    let r = inspect_v4(&Checkpoint::open(tmp.path()).expect("opens"));
    assert!(r.anomalies.is_empty(), "{:?}", r.anomalies);
    assert!(
        r.expert_dtype_inferred && r.expert_dtype.starts_with("fp4"),
        "{}",
        r.expert_dtype
    );
}

#[test]
fn output_inside_or_over_the_input_is_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    write(&input, good(), config(Some("fp4")));
    let ck = Checkpoint::open(&input).expect("opens");
    let before = std::fs::read_dir(&input).map(|d| d.count()).ok();
    for out in [input.join("sub"), input.clone(), tmp.path().to_path_buf()] {
        let mut o = opts();
        o.force = true;
        let e = requantize_v4(&ck, V4RequantizeOptions::default(), &out, &o, &NoProgress)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("inputs are never written"),
            "{}: {e}",
            out.display()
        );
    }
    assert_eq!(std::fs::read_dir(&input).map(|d| d.count()).ok(), before);
}

#[test]
fn v3_and_mx_checkpoints_are_not_taken_for_v4() {
    let tmp = tempfile::tempdir().expect("tmp");
    let v3 = tmp.path().join("v3");
    write(
        &v3,
        vec![
            (
                "layers.0.mlp.w.weight",
                Dtype::F8E4M3,
                vec![2, 2],
                vec![0x38; 4],
            ),
            (
                "layers.0.mlp.w.weight_scale_inv",
                Dtype::F32,
                vec![1, 1],
                1f32.to_le_bytes().to_vec(),
            ),
        ],
        serde_json::json!({"model_type": "deepseek_v3"}),
    );
    let mx = tmp.path().join("mx");
    write(
        &mx,
        vec![
            ("w.weight", Dtype::F8E4M3, vec![1, 32], vec![0x38; 32]),
            ("w.weight_scale", Dtype::F8E8M0, vec![1, 1], vec![127]),
        ],
        serde_json::json!({"model_type": "llama"}),
    );
    for d in [&v3, &mx] {
        let ck = Checkpoint::open(d).expect("opens");
        assert!(!ue8_io::layout_v4::is_v4(&ck), "{}", d.display());
    }
    let v4 = tmp.path().join("v4");
    write(&v4, good(), serde_json::json!({"model_type": "custom"}));
    assert!(ue8_io::layout_v4::is_v4(
        &Checkpoint::open(&v4).expect("opens")
    ));
}
